"""``replay --json`` and ``story show --json``: what a script reads, in the documented shapes.

``replay --json`` prints one object a line, ``{"topic", "position", "time_ms", "event"}``
(the HTTP API's shape), so a script can resume with ``--after``; with ``--to`` it says
what it wrote.  ``story show --json`` prints ``{"title", "parts", "characters",
"plot_points"}`` for an ingested story and for a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.sqlite

CLI = [sys.executable, "-m", "creative_hub"]

TALE = """# The Fox and the Geese

## 1. The meadow

A fox came to a meadow where a flock of geese sat. "I will eat you up," said the fox.
The geese begged for their lives. "Let us pray first," said the eldest goose.

## 2. The prayer

The geese began to pray, and the fox waited.
"""


def cli(db: Path, *args: str) -> str:
    env = {**os.environ, "CREATIVE_HUB_LOG": f"sqlite:///{db}", "COLUMNS": "200"}
    env.pop("CREATIVE_HUB_TOKEN", None)
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    return r.stdout


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_replay_json_lines_carry_the_position_to_resume_from(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    titles = [f"note {i}" for i in range(3)]
    for title in titles:
        data = json.dumps({"story": "wood", "title": title, "text": "..."})
        cli(db, "publish", "-t", "creative.narrative.fragment", "--subject", "story:wood", "--data", data)

    rows = lines(cli(db, "replay", "creative.narrative", "--json"))
    assert [set(r) for r in rows] == [{"topic", "position", "time_ms", "event"}] * 3
    assert [r["event"]["data"]["title"] for r in rows] == titles
    assert all(r["topic"] == "creative.narrative" and r["event"]["specversion"] == "1.0" for r in rows)
    assert all(isinstance(r["time_ms"], int) for r in rows)

    rest = lines(cli(db, "replay", "creative.narrative", "--json", "--after", rows[0]["position"]))
    assert [r["event"]["id"] for r in rest] == [r["event"]["id"] for r in rows[1:]]
    assert lines(cli(db, "replay", "creative.narrative", "--json", "--limit", "1")) == rows[:1]

    out = tmp_path / "all.jsonl"
    said = json.loads(cli(db, "replay", "creative.narrative", "--json", "--to", str(out)))
    assert said == {"events": 3, "to": str(out)}
    assert [e["id"] for e in lines(out.read_text())] == [r["event"]["id"] for r in rows]


@pytest.mark.slow
def test_story_show_json_for_an_ingested_story_and_a_file(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    tale = tmp_path / "fox.md"
    tale.write_text(TALE)
    cli(db, "ingest", "story", str(tale))
    stories = {
        r["event"]["data"].get("story") for r in lines(cli(db, "replay", "creative.narrative", "--json"))
    }
    (story,) = stories

    shown = json.loads(cli(db, "story", "show", story, "--json"))
    assert set(shown) == {"title", "parts", "characters", "plot_points"}
    assert [p["title"] for p in shown["parts"]] == ["1. The meadow", "2. The prayer"]
    assert "fox" in {c["name"] for c in shown["characters"]}
    assert any("eat you up" in p.get("evidence", "") for p in shown["plot_points"])

    from_file = json.loads(cli(db, "story", "show", str(tale), "--json"))
    assert from_file == json.loads(cli(db, "story", "outline", str(tale), "--json"))
