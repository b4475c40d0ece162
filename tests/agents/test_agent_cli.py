"""``creative-hub agent run`` and ``agent list`` as a person uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sqlite

CLI = [sys.executable, "-m", "creative_hub"]
FRAG = '{"story": "s1", "title": "Into the wood", "text": "Hansel and Gretel went deep into the forest."}'


def run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREATIVE_HUB_LOG": f"sqlite:///{db}", "COLUMNS": "200"}
    env.pop("CREATIVE_HUB_LLM_BASE_URL", None)
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def test_run_several_agents_then_list_them_with_lag(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    r = run(db, "publish", "--as", "writer", "--type", "creative.narrative.fragment", "--data", FRAG)
    assert r.returncode == 0, r.stderr
    r = run(
        db,
        "agent",
        "run",
        "creative_hub.agents.builtin:analyst",
        "creative_hub.agents.builtin:fork_suggester",
        "--exit-after",
        "3",
    )
    assert r.returncode == 0, r.stderr
    assert "offline (no LLM)" in r.stderr
    assert "analyst: 1 handled" in r.stderr and "fork-suggester: 1 handled" in r.stderr
    assert (tmp_path / "hub.db.agents.db").exists()  # the ledger beside the log
    r = run(db, "tail", "creative.feedback")
    assert "analyst" in r.stdout
    r = run(db, "agent", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["agent"]: row for row in json.loads(r.stdout)}
    assert rows["analyst"]["registered"] and rows["analyst"]["lag"] == 0
    assert {t["topic"] for t in rows["analyst"]["topics"]} >= {"creative.narrative"}
    r = run(db, "agent", "list", "creative_hub.agents.builtin:contribution_matcher")
    assert r.returncode == 0 and "contribution-matcher" in r.stdout and "analyst" in r.stdout


def test_a_name_that_is_not_an_agent_is_refused(tmp_path: Path) -> None:
    r = run(tmp_path / "hub.db", "agent", "run", "creative_hub.hub:route")
    assert r.returncode == 2 and "not an Agent" in r.stderr
    r = run(tmp_path / "hub.db", "agent", "run", "no_such_module:x")
    assert r.returncode == 2 and "cannot import" in r.stderr
