"""The id index behind ``Hub.get``: every engine, other writers, stale rows, a replaced log.

A lookup must not read the log's history: the tests count the records the index reads
(``EventIds.caught_up``) and check a miss costs the records that are new, not the log.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from creative_hub.errors import NotFound
from creative_hub.hub import Hub
from creative_hub.ids import EventIds, default_ids_path

pytestmark = pytest.mark.timeout(300)


def fragment(story: str, title: str = "t") -> dict[str, object]:
    return {
        "type": "creative.narrative.fragment",
        "id": str(uuid.uuid4()),
        "subject": f"story:{story}",
        "data": {"story": story, "title": title, "text": "..."},
    }


async def test_get_finds_what_another_writer_wrote_reading_only_what_is_new(log_url: str) -> None:
    story = uuid.uuid4().hex[:8]
    async with Hub.connect(log_url) as reader, Hub.connect(log_url) as writer:
        first = fragment(story)
        await writer.publish([first])
        assert (await reader.get(str(first["id"]))).event.data["story"] == story  # builds the index
        built = reader.ids.caught_up
        assert built >= 1

        with pytest.raises(NotFound):
            await reader.get(str(uuid.uuid4()))  # a miss catches up: nothing new, nothing read
        assert reader.ids.caught_up == built

        later = [fragment(story, f"n{i}") for i in range(3)]
        await writer.publish(later)  # another hub: the reader's index knows nothing of it
        got = await reader.get(str(later[1]["id"]))
        assert got.event.data["title"] == "n1"
        assert reader.ids.caught_up == built + 3, "the miss read the three new records, not the log"
        for e in later:  # hits from now on: no catching up at all
            await reader.get(str(e["id"]))
        assert reader.ids.caught_up == built + 3


async def test_get_in_a_named_topic_and_access_rules(log_url: str) -> None:
    story = uuid.uuid4().hex[:8]
    async with Hub.connect(log_url) as hub:
        await hub.registry.add("alice")
        e = fragment(story)
        (receipt,) = await hub.publish([e])
        got = await hub.get(str(e["id"]), topic=receipt.topic)
        assert got.position == receipt.position
        with pytest.raises(NotFound):
            await hub.get(str(e["id"]), topic="creative.elsewhere")
        draft = await hub.acting("alice", authenticated=True).publish(
            [{**fragment(story), "type": "creative.narrative.fragment"}]
        )
        anyone = hub.acting("bob")
        assert (await anyone.get(str(e["id"]))).event.id == e["id"]
        assert draft  # published to the shared topic: readable by anyone
        with pytest.raises(NotFound):
            await anyone.get(str(uuid.uuid4()))


@pytest.mark.sqlite
async def test_a_stale_row_is_a_miss_and_a_replaced_log_is_indexed_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    assert default_ids_path(url) == str(tmp_path / "hub.db") + ".ids"
    old = fragment("old")
    async with Hub.connect(url) as hub:
        await hub.publish([old])
        await hub.get(str(old["id"]))
    assert (tmp_path / "hub.db.ids").exists(), "kept beside the log: a restart does not read it all again"
    async with Hub.connect(url) as hub:
        await hub.get(str(old["id"]))
        assert hub.ids.caught_up == 0, "the kept index answered without reading the log"
    for f in tmp_path.glob("hub.db*"):
        if not f.name.startswith("hub.db.ids"):
            f.unlink()  # the log is gone; the index file is not
    new = fragment("new")
    async with Hub.connect(url) as hub:
        await hub.publish([new])
        assert (await hub.get(str(new["id"]))).event.data["story"] == "new"
        with pytest.raises(NotFound):
            await hub.get(str(old["id"]))


@pytest.mark.sqlite
async def test_retention_leaves_no_false_hits(tmp_path: Path) -> None:
    from creative_hub.log import Retention

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    async with Hub.connect(url) as hub:
        events = [fragment("r", f"e{i}") for i in range(5)]
        receipts = await hub.publish(events)
        await hub.get(str(events[0]["id"]))
        topic = receipts[0].topic
        await hub.set_retention(topic, Retention(max_count=2))
        await hub.log.apply_retention(topic)
        with pytest.raises(NotFound):
            await hub.get(str(events[0]["id"]))
        # The record before it is gone: it is the oldest left, and still found.
        assert (await hub.get(str(events[3]["id"]))).event.data["title"] == "e3"
        assert (await hub.get(str(events[4]["id"]))).event.data["title"] == "e4"


@pytest.mark.sqlite
async def test_an_index_in_memory_for_other_engines(tmp_path: Path) -> None:
    assert default_ids_path("redis://127.0.0.1:6379/0") is None
    assert default_ids_path("sqlite:///:memory:") is None
    async with Hub.connect(f"sqlite:///{tmp_path / 'hub.db'}") as root:
        hub = Hub(root.log, ids=EventIds(root.log, None))
        e = fragment("m")
        await hub.publish([e])
        assert hub.ids.path is None
        assert (await hub.get(str(e["id"]))).event.id == e["id"]
        assert (await hub.acting("bob").get(str(e["id"]))).event.id == e["id"]
    assert not (tmp_path / "hub.db.ids").exists()
