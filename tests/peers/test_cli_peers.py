"""Principals, peer hubs, lineage and verification through the CLI (SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sqlite


def cli(db: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREATIVE_HUB_LOG": f"sqlite:///{db}", "COLUMNS": "200"}
    env.pop("CREATIVE_HUB_TOKEN", None)
    env.pop("CREATIVE_HUB_PRINCIPAL", None)
    if token:
        env["CREATIVE_HUB_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "creative_hub", *args], capture_output=True, text=True, env=env, timeout=120
    )


def first_id(r: subprocess.CompletedProcess[str]) -> str:
    for line in r.stdout.splitlines():
        parts = [p.strip() for p in line.split("│") if p.strip()]
        if parts and len(parts[0]) == 36 and parts[0].count("-") == 4:
            return parts[0]
    raise AssertionError(f"no id in:\n{r.stdout}\n{r.stderr}")


def test_principals_drafts_lineage_and_revocation(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    r = cli(db, "principal", "add", "alice")
    assert r.returncode == 0, r.stderr
    alice = r.stdout.strip().splitlines()[-1]
    assert alice.startswith("chub_")
    bob = cli(db, "principal", "add", "bob").stdout.strip().splitlines()[-1]
    listed = json.loads(cli(db, "principal", "list", "--json").stdout)
    assert [p["id"] for p in listed] == ["alice", "bob"]
    assert alice not in (tmp_path / "hub.db").read_bytes().decode(errors="replace"), "a token stored in clear"

    data = json.dumps({"story": "w", "title": "A secret opening", "text": "..."})
    d1 = first_id(
        cli(
            db,
            "peer",
            "draft",
            "--type",
            "creative.narrative.fragment",
            "--subject",
            "story:w",
            "--data",
            data,
            token=alice,
        )
    )
    d2 = first_id(cli(db, "peer", "revise", d1, "--data", '{"text": "better"}', token=alice))
    p1 = first_id(cli(db, "peer", "publish", d2, token=alice))

    # Drafts: alice sees them; bob, a claimed name and nobody do not.
    assert "A secret opening" in cli(db, "tail", "peer.alice.drafts", token=alice).stdout
    for who in (bob, None):
        r = cli(db, "tail", "peer.alice.drafts", token=who)
        assert r.returncode == 3 and "may not read" in r.stderr and "secret" not in r.stdout + r.stderr
    # Claiming a registered name without the token is refused.
    r = cli(
        db,
        "publish",
        "--as",
        "alice",
        "--type",
        "creative.feedback.comment",
        "--data",
        '{"on": "x", "text": "hi"}',
    )
    assert r.returncode == 3 and "registered principal" in r.stderr
    assert "peer.alice.drafts" not in cli(db, "topics", token=bob).stdout
    assert cli(db, "lineage", d2, token=bob).returncode == 4  # not found, says nothing more

    # Lineage and signatures.
    lin = json.loads(cli(db, "lineage", p1, "--json", token=alice).stdout)
    assert lin["verified"] and lin["creators"] == ["alice"]
    assert lin["root"]["links"] == {"supersedes": d2, "causation": d2}
    assert cli(db, "verify", p1, token=bob).returncode == 0
    r = cli(db, "compact", "peer.alice.drafts")
    assert "folded 1 revision" in r.stdout, r.stdout + r.stderr
    lin = json.loads(cli(db, "lineage", p1, "--json", token=alice).stdout)
    assert lin["root"]["parents"][0]["parents"][0]["relation"] == "folded"

    # Revocation counts at once.
    assert cli(db, "principal", "revoke", "bob").returncode == 0
    r = cli(db, "topics", token=bob)
    assert r.returncode == 3 and "invalid or revoked token" in r.stderr
