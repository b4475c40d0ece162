"""`creative-hub mcp config`: each client's documented shape, merged writes read back, a working server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from creative_hub.hub import Hub
from creative_hub.ide.mcp_config import CLIENTS, load_jsonc

pytestmark = pytest.mark.sqlite

FIXTURES = Path(__file__).parent / "fixtures" / "mcp"
SERVER_MAPS = ("servers", "mcpServers", "context_servers")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "creative_hub", "mcp", "config", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def shape(value: Any, path: str = "") -> Any:
    """Keys and value types; server names and env variable names are free."""
    if isinstance(value, dict):
        if path.split("/")[-1] in SERVER_MAPS:
            return {"<server>": shape(next(iter(value.values())), path + "/<server>")} if value else {}
        if path.endswith("/env"):
            return "map<str>"
        return {k: shape(v, f"{path}/{k}") for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0], path + "[]")] if value else []
    return type(value).__name__


@pytest.mark.parametrize("client", CLIENTS)
def test_printed_entry_has_the_documented_shape(client: str, tmp_path: Path) -> None:
    r = cli("--client", client, "--log", "sqlite:///hub.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)
    documented = json.loads((FIXTURES / f"{client}.json").read_text())
    if client == "claude-code":  # args: the doc example has none; ours has some
        documented["mcpServers"]["server-name"]["args"] = ["x"]
    assert shape(ours) == shape(documented)
    (server,) = next(ours[k] for k in SERVER_MAPS if k in ours).values()
    assert server["command"] == sys.executable and server["args"] == ["-m", "creative_hub", "mcp", "hub"]
    assert server["env"]["CREATIVE_HUB_LOG"] == f"sqlite:///{tmp_path.resolve() / 'hub.db'}"
    token_ref = {
        "vscode": "${input:creative-hub-token}",
        "cursor": "${env:CREATIVE_HUB_TOKEN}",
        "claude-code": "${CREATIVE_HUB_TOKEN}",
        "claude-desktop": "<your creative-hub token>",
        "zed": "<your creative-hub token>",
    }[client]
    assert server["env"]["CREATIVE_HUB_TOKEN"] == token_ref


EXISTING = {
    "vscode": '{"inputs": [{"type": "promptString", "id": "other", "password": true}],\n'
    ' "servers": {"other": {"type": "stdio", "command": "other-server"}}}',
    "cursor": '{"mcpServers": {"other": {"command": "other-server"}}}',
    "claude-code": '{"mcpServers": {"other": {"type": "stdio", "command": "other-server"}}}',
    "claude-desktop": '{"mcpServers": {"other": {"command": "other-server"}},'
    ' "globalShortcut": "Ctrl+Space"}',
    "zed": '// Zed settings\n{\n  "theme": "One Dark", // the look\n  "context_servers": {\n'
    '    "other": {"source": "custom", "command": "other-server", "args": [],},\n  },\n}\n',
}


@pytest.mark.parametrize("client", CLIENTS)
def test_write_merges_with_what_is_there_and_parses_back(client: str, tmp_path: Path) -> None:
    path = tmp_path / "config" / f"{client}.json"
    path.parent.mkdir()
    path.write_text(EXISTING[client])
    for _ in range(2):  # twice: the second write changes nothing
        r = cli("--client", client, "--write", "--file", str(path), "--log", "sqlite:///hub.db", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert str(path) in r.stdout
    back = json.loads(path.read_text())  # plain JSON now
    servers = next(back[k] for k in SERVER_MAPS if k in back)
    assert set(servers) == {"other", "creative-hub"}
    assert servers["other"]["command"] == "other-server"
    ours = {k: {"creative-hub": back[k]["creative-hub"]} for k in back if k in SERVER_MAPS}
    if "inputs" in back:
        ours["inputs"] = [i for i in back["inputs"] if i["id"] == "creative-hub-token"]
    documented = json.loads((FIXTURES / f"{client}.json").read_text())
    if client == "claude-code":
        documented["mcpServers"]["server-name"]["args"] = ["x"]
    assert shape(ours) == shape(documented)
    if client == "vscode":
        assert [i["id"] for i in back["inputs"]] == ["other", "creative-hub-token"]
    if client == "claude-desktop":
        assert back["globalShortcut"] == "Ctrl+Space"
    if client == "zed":
        assert back["theme"] == "One Dark"


def test_default_locations_and_a_broken_file(tmp_path: Path) -> None:
    r = cli("--client", "claude-code", "--write", "--project", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "creative-hub" in json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]
    r = cli("--client", "vscode", "--write", "--project", str(tmp_path), cwd=tmp_path)
    assert "creative-hub" in json.loads((tmp_path / ".vscode" / "mcp.json").read_text())["servers"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"mcpServers": ')
    r = cli("--client", "cursor", "--write", "--file", str(broken))
    assert r.returncode == 2 and "not JSON" in r.stderr
    assert broken.read_text() == '{"mcpServers": '  # untouched
    r = cli("--client", "emacs")
    assert r.returncode == 2 and "not one of" in r.stderr


def test_jsonc() -> None:
    text = '// c\n{"a": "http://x//y", /* b */ "b": [1, 2,],}'
    assert load_jsonc(text, "t") == {"a": "http://x//y", "b": [1, 2]}


async def test_the_written_entry_starts_a_working_server(tmp_path: Path) -> None:
    """Claude Desktop's entry (literal env) run as the client would: an MCP session lists tools."""
    db = tmp_path / "hub.db"
    async with Hub.connect(f"sqlite:///{db}") as hub:
        await hub.registry.add("alice")
        token = await hub.registry.issue_token("alice")
    path = tmp_path / "claude_desktop_config.json"
    r = cli(
        "--client",
        "claude-desktop",
        "--write",
        "--file",
        str(path),
        "--token",
        token,
        "--log",
        f"sqlite:///{db}",
    )
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds a token
    server = json.loads(path.read_text())["mcpServers"]["creative-hub"]
    assert server["env"]["CREATIVE_HUB_TOKEN"] == token
    params = StdioServerParameters(
        command=server["command"], args=server["args"], env=server["env"], cwd=tmp_path
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
    assert len(tools.tools) > 3
