"""Scripting the CLI: every peer command takes --json, and -q prints the ids it made.

A whole peer workflow (draft, revise, publish, fork, contribute, accept, reject, feedback)
driven the way a shell script does it: ids captured from -q, fields from --json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sqlite

CLI = [sys.executable, "-m", "creative_hub"]


class Shell:
    def __init__(self, db: Path) -> None:
        self.env = {**os.environ, "CREATIVE_HUB_LOG": f"sqlite:///{db}", "COLUMNS": "200"}
        self.env.pop("CREATIVE_HUB_TOKEN", None)

    def __call__(self, *args: str, token: str | None = None) -> str:
        env = {**self.env, **({"CREATIVE_HUB_TOKEN": token} if token else {})}
        r = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, f"{args}: {r.stderr}"
        return r.stdout

    def token(self, name: str) -> str:
        self("principal", "add", name)
        return self("principal", "token", name).strip()

    def ids(self, *args: str, token: str) -> list[str]:
        lines = self(*args, "-q", token=token).splitlines()
        assert lines and all(len(line.split()) == 1 for line in lines), lines
        return lines

    def receipts(self, *args: str, token: str) -> list[dict[str, object]]:
        rows = json.loads(self(*args, "--json", token=token))
        assert isinstance(rows, list) and all(
            {"id", "topic", "position", "duplicate"} <= set(r) for r in rows
        )
        return rows


def test_a_peer_workflow_scripted_with_ids_and_json(tmp_path: Path) -> None:
    sh = Shell(tmp_path / "hub.db")
    alice, bob = sh.token("alice"), sh.token("bob")
    data = json.dumps({"story": "wood", "title": "The wood", "text": "Once"})
    (draft,) = sh.ids(
        "peer",
        "draft",
        "-t",
        "creative.narrative.fragment",
        "--subject",
        "story:wood",
        "-d",
        data,
        token=alice,
    )
    (revision,) = sh.receipts("peer", "revise", draft, "-d", '{"title": "The dark wood"}', token=alice)
    assert revision["topic"] == "peer.alice.drafts"
    (published,) = sh.ids("peer", "publish", str(revision["id"]), token=alice)
    (fork,) = sh.receipts("peer", "fork", published, token=bob)
    assert fork["topic"] == "peer.bob.drafts"
    (proposal,) = sh.ids(
        "peer",
        "contribute",
        "alice",
        published,
        "--title",
        "darker",
        "--changes",
        '{"text": "Dark"}',
        token=bob,
    )
    accepted = sh.receipts("peer", "accept", proposal, "--reason", "yes", token=alice)
    assert len(accepted) == 2, "a decision and the new published revision"
    (second,) = sh.ids("peer", "contribute", "alice", published, "--title", "lighter", token=bob)
    (rejected,) = sh.receipts("peer", "reject", second, token=alice)
    assert rejected["id"] != second
    (note,) = sh.ids("peer", "feedback", published, "Lovely", "--rating", "5", token=bob)
    assert note not in (published, draft)
    ids = sh.ids("publish", "-t", "creative.narrative.fragment", "-d", data, token=alice)
    assert len(ids) == 1


def test_every_peer_command_documents_json_and_quiet() -> None:
    from typer.testing import CliRunner

    from creative_hub.cli import app
    from creative_hub.cli.peers import peer_app

    runner = CliRunner()
    for command in peer_app.registered_commands:
        r = runner.invoke(app, ["peer", str(command.name), "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert "--json" in r.output and "--quiet" in r.output and "-q" in r.output, command.name
