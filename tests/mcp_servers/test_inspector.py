"""The MCP Inspector's CLI (npm @modelcontextprotocol/inspector) against `creative-hub mcp hub`.

scripts/install-mcp-inspector.sh puts it in .tools/mcp-inspector (make test
runs it); without node / npm the test skips and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _world import World

pytestmark = pytest.mark.sqlite

INSPECTOR = (
    Path(__file__).resolve().parents[2]
    / ".tools"
    / "mcp-inspector"
    / "node_modules"
    / ".bin"
    / "mcp-inspector"
)


def inspect(world: World, *args: str) -> dict[str, object]:
    if not INSPECTOR.exists():
        pytest.skip("MCP Inspector not installed: run scripts/install-mcp-inspector.sh (needs node and npm)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATIVE_HUB_")}
    cmd = [
        str(INSPECTOR),
        "--cli",
        sys.executable,
        "-m",
        "creative_hub",
        "mcp",
        "hub",
        "--log",
        world.url,
        *args,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    out: dict[str, object] = json.loads(r.stdout)
    return out


async def test_inspector_lists_and_calls_tools(world: World) -> None:
    tools = inspect(world, "--method", "tools/list")["tools"]
    assert "search_events" in {t["name"] for t in tools}  # type: ignore[attr-defined]
    result = inspect(
        world, "--method", "tools/call", "--tool-name", "search_events", "--tool-arg", "query=oven"
    )
    hits = result["structuredContent"]["hits"]  # type: ignore[index]
    assert "Gretel pushes the witch into the oven" in [h["title"] for h in hits]
    resources = inspect(world, "--method", "resources/list")["resources"]
    assert {r["uri"] for r in resources} == {"hub://topics", "hub://peers"}  # type: ignore[attr-defined]
    bad = inspect(world, "--method", "tools/call", "--tool-name", "get_event", "--tool-arg", "id=nope")
    assert bad["isError"] is True
