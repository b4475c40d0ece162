"""Time in the CLI: ``--since`` is when an event happened, ``--appended-since`` when the log stored
it, and the "time (UTC)" column is UTC whatever zone the event was stamped in."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creative_hub.cli import app
from creative_hub.hub import Hub

pytestmark = pytest.mark.sqlite


def fragment(n: int, when: str) -> dict[str, object]:
    data = {"story": "s1", "title": f"Part {n}", "text": "..."}
    return {"type": "creative.narrative.fragment", "id": f"f{n}", "time": when, "data": data}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "hub.db"

    async def fill() -> None:
        async with Hub.connect(f"sqlite:///{path}", principal="alice") as hub:
            # Imported history: it happened in 2001 (stamped +01:00), it is stored today.
            await hub.publish([fragment(1, "2001-02-03T10:00:00+01:00"), fragment(2, "2026-12-01T12:00:00Z")])

    asyncio.run(fill())
    return path


def cli(db: Path, *args: str) -> str:
    r = CliRunner().invoke(app, list(args), env={"CREATIVE_HUB_LOG": f"sqlite:///{db}", "COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.output


def ids(output: str) -> list[str]:
    return [json.loads(line)["id"] for line in output.splitlines() if line.startswith("{")]


def test_since_is_the_events_own_time(db: Path) -> None:
    assert ids(cli(db, "tail", "creative.narrative", "--json", "--since", "2020-01-01T00:00:00Z")) == ["f2"]
    assert ids(cli(db, "tail", "creative.narrative", "--json", "--since", "2000-01-01T00:00:00Z")) == [
        "f1",
        "f2",
    ]
    # Both were appended just now: the log's clock does not tell them apart.
    assert ids(cli(db, "tail", "creative.narrative", "--json", "--appended-since", "1h")) == ["f1", "f2"]
    assert (
        ids(cli(db, "tail", "creative.narrative", "--json", "--appended-since", "2999-01-01T00:00:00Z")) == []
    )


def test_replay_since_with_a_limit_counts_what_it_keeps(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "recent.jsonl"
    cli(
        db,
        "replay",
        "creative.narrative",
        "--since",
        "2020-01-01T00:00:00Z",
        "--limit",
        "1",
        "--to",
        str(out),
    )
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["f2"]


def test_the_utc_column_is_utc(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In a zone that is neither UTC nor the event's own: local time would show 18:00 here.
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        table = cli(db, "replay", "creative.narrative")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "2001-02-03 09:00:00" in table and "2001-02-03 10:00:00" not in table
    assert "2026-12-01 12:00:00" in table
