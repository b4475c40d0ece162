"""``hub://subjects/...`` pages come from the subject index (``ids.py``), with drafts private.

On every engine: a page lists the subject's events across topics, reads nothing
of the log but what is new and the events it shows, sees what another writer
added, and never shows someone's drafts to another principal -- a subject only
drafts are about shows nothing at all to them.  On SQLite: an index file of the
old schema (ids only) is emptied and indexed again when opened.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from creative_hub.errors import ValidationError
from creative_hub.hub import Hub
from creative_hub.ids import VERSION, EventIds, default_ids_path
from creative_hub.mcp.live import PageOut, page, parse_uri
from creative_hub.peers import PeerHub

pytestmark = pytest.mark.timeout(300)

FRAGMENT = "creative.narrative.fragment"


def fragment(story: str, title: str) -> dict[str, Any]:
    return {
        "type": FRAGMENT,
        "id": str(uuid.uuid4()),
        "subject": f"story:{story}",
        "data": {"story": story, "title": title, "text": "..."},
    }


async def read_all(hub: Hub, uri: str, limit: int) -> tuple[list[str], PageOut]:
    """Follow ``next`` from ``uri`` until a page is empty: every id seen, and the last page."""
    ids: list[str] = []
    after = parse_after(uri)
    target = parse_uri(uri)
    while True:
        got = await page(hub, target, after, limit)
        ids += [e.id for e in got.events]
        if not got.events:
            return ids, got
        after = parse_after(got.next)


def parse_after(uri: str) -> str | None:
    values = parse_qs(urlsplit(uri).query).get("after")
    return values[0] if values else None


async def test_subject_pages_come_from_the_index_and_see_other_writers(log_url: str) -> None:
    story, other = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    uri = f"hub://subjects/story:{story}"
    async with Hub.connect(log_url) as reader, Hub.connect(log_url) as writer:
        mine = [fragment(story, f"n{i}") for i in range(5)]
        await writer.publish([fragment(other, "elsewhere"), *mine[:3], fragment(other, "more")])
        ids, last = await read_all(reader, uri, 2)
        assert ids == [str(e["id"]) for e in mine[:3]]
        built = reader.ids.caught_up

        # Another process writes: the next read of ``next`` has exactly the new events,
        # and the index read the new records only, not the log again.
        await writer.publish([mine[3], fragment(other, "again"), mine[4]])
        more, _ = await read_all(reader, last.uri, 2)
        assert more == [str(e["id"]) for e in mine[3:]]
        assert reader.ids.caught_up == built + 3
        # The index alone knows the subject's topic; a foreign cursor is refused, naming the field.
        assert reader.ids.subject_topics(f"story:{story}") == ["creative.narrative"]
        with pytest.raises(ValidationError, match="after"):
            await page(reader, parse_uri(f"hub://subjects/story:{other}"), parse_after(last.next), 2)


async def test_a_subject_only_drafts_are_about_shows_nothing_to_another_principal(log_url: str) -> None:
    story = uuid.uuid4().hex[:8]
    tag = uuid.uuid4().hex[:6]
    alice_name, bob_name = f"alice{tag}", f"bob{tag}"
    async with Hub.connect(log_url) as hub:
        for name in (alice_name, bob_name):
            await hub.registry.add(name)
        alice = hub.acting(alice_name, authenticated=True)
        drafted = [
            (
                await PeerHub(alice).draft(
                    FRAGMENT, f"story:{story}", {"story": story, "title": t, "text": "."}
                )
            ).id
            for t in ("one", "two")
        ]
        uri = f"hub://subjects/story:{story}"
        # alice sees her drafts (so the probe can fail) ...
        assert (await read_all(alice, uri, 1))[0] == drafted
        # ... bob and an anonymous reader see nothing, and no cursor hints at them.
        for other in (hub.acting(bob_name, authenticated=True), hub.acting("anonymous")):
            got = await page(other, parse_uri(uri), None, 50)
            assert got.events == [] and not got.more
            assert "after=" not in got.next


@pytest.mark.sqlite
async def test_an_index_file_of_the_old_schema_is_rebuilt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    path = default_ids_path(url)
    assert path is not None
    story = uuid.uuid4().hex[:8]
    events = [fragment(story, f"n{i}") for i in range(3)]
    async with Hub.connect(url) as hub:
        await hub.publish(events)
    # An index file as the hub wrote it before subjects were indexed: ids and upto,
    # caught up to the end (so without a rebuild nothing would ever fill the subjects).
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(
        """
        CREATE TABLE ids (id TEXT NOT NULL, topic TEXT NOT NULL, position TEXT NOT NULL, previous TEXT,
                          PRIMARY KEY (id, topic)) WITHOUT ROWID;
        CREATE TABLE upto (topic TEXT PRIMARY KEY, position TEXT NOT NULL, previous TEXT, id TEXT NOT NULL)
                          WITHOUT ROWID;
        """
    )
    async with Hub.connect(url) as hub:
        previous = None
        async for r in hub.log.read("creative.narrative"):
            old.execute("INSERT INTO ids VALUES (?, ?, ?, ?)", (r.id, r.topic, r.position, previous))
            previous, last = r.position, r
        old.execute(
            "INSERT INTO upto VALUES (?, ?, ?, ?)", ("creative.narrative", last.position, None, last.id)
        )
        old.close()

        ids = EventIds(hub.log, path)
        try:
            await ids.catch_up()
            assert ids.caught_up == 3, "the old file was emptied and the log indexed again"
            assert [a.id for a in ids.about(f"story:{story}", "creative.narrative")] == [
                e["id"] for e in events
            ]
        finally:
            ids.close()
    (version,) = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == VERSION
