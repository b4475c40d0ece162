"""The contract's rules for append and read: order, positions, following, idempotency."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import pytest

from ...errors import IdConflict, ValidationError
from ...log import Entry, Log
from .support import (
    WAIT,
    eventually,
    holds,
    make_entries,
    new_topic,
    read_all,
    topic_with,
)


class RecordRules:
    """The contract's rules for append and read: order, positions, following, idempotency."""

    # -- append / read ---------------------------------------------------------
    async def test_append_then_read_in_order(self, log: Log) -> None:
        # Two batches on one key come back in append order with their bodies.
        topic = new_topic()
        first, second = make_entries(5), make_entries(7)
        r1 = await log.append(topic, first)
        r2 = await log.append(topic, second)
        assert len(r1) == 5 and len(r2) == 7
        assert not any(a.duplicate for a in r1 + r2)
        records = await read_all(log, topic)
        assert [r.id for r in records] == [e.id for e in first + second]
        assert [r.body for r in records] == [e.body for e in first + second]
        assert [r.position for r in records] == [a.position for a in r1 + r2]
        assert all(r.topic == topic and r.key == "alice" for r in records)
        assert all(r.time_ms > 0 for r in records)

    async def test_read_after_position_resumes_exactly(self, log: Log) -> None:
        topic, entries = await topic_with(log, 20, keys=["a", "b", "c"])
        records = await read_all(log, topic)
        assert sorted(r.id for r in records) == sorted(e.id for e in entries)
        for k in (0, 7, 19):
            rest = await read_all(log, topic, after=records[k].position)
            assert [r.id for r in rest] == [r.id for r in records[k + 1 :]]
        limited = await read_all(log, topic, limit=3)
        assert [r.id for r in limited] == [r.id for r in records[:3]]

    async def test_per_key_order_is_append_order(self, log: Log) -> None:
        topic = new_topic()
        entries = make_entries(60, keys=["k1", "k2", "k3", "k4"])
        for i in range(0, 60, 10):
            await log.append(topic, entries[i : i + 10])
        by_key: dict[str, list[int]] = defaultdict(list)
        for r in await read_all(log, topic):
            by_key[r.key].append(json.loads(r.body)["n"])
        assert set(by_key) == {"k1", "k2", "k3", "k4"}
        for ns in by_key.values():
            assert ns == sorted(ns)

    async def test_read_of_unknown_topic_yields_nothing(self, log: Log) -> None:
        assert await read_all(log, new_topic()) == []

    async def test_bad_topic_name_is_refused(self, log: Log) -> None:
        for bad in ["", "Upper", "a..b", "a/b", "a b", "a.>", "*", ".a", "x" * 300]:
            with pytest.raises(ValidationError) as e:
                await log.append(bad, make_entries(1))
            assert e.value.field == "topic"

    async def test_read_since_time(self, log: Log) -> None:
        topic = new_topic()
        old = make_entries(4)
        await log.append(topic, old)
        await asyncio.sleep(1.1)
        t = time.time()
        await asyncio.sleep(0.1)
        new = make_entries(3)
        await log.append(topic, new)
        assert [r.id for r in await read_all(log, topic, since=t)] == [e.id for e in new]
        assert [r.id for r in await read_all(log, topic, since=t - 3600)] == [e.id for e in old + new]
        assert await read_all(log, topic, since=time.time() + 3600) == []

    async def test_follow_waits_for_new_records(self, log: Log) -> None:
        topic = new_topic()
        await log.append(topic, make_entries(2))
        seen: list[str] = []

        async def tail() -> None:
            async for r in log.read(topic, follow=True):
                seen.append(r.id)
                if len(seen) == 5:
                    return

        task = asyncio.create_task(tail())
        await eventually(lambda: holds(len(seen) == 2), what="history read")
        later = make_entries(3)
        await log.append(topic, later)
        await asyncio.wait_for(task, WAIT)
        assert seen[2:] == [e.id for e in later]

    # -- idempotency -----------------------------------------------------------
    async def test_duplicate_id_is_stored_once(self, log: Log) -> None:
        # A publisher retrying the same batch gets the original receipts back.
        topic = new_topic()
        entries = make_entries(5)
        first = await log.append(topic, entries)
        again = await log.append(topic, entries)
        assert all(a.duplicate for a in again)
        assert [a.position for a in again] == [a.position for a in first]
        mixed = make_entries(2)
        receipts = await log.append(topic, [entries[0], mixed[0], entries[1], mixed[1]])
        assert [a.duplicate for a in receipts] == [True, False, True, False]
        assert receipts[0].position == first[0].position
        ids = [r.id for r in await read_all(log, topic)]
        assert ids == [e.id for e in entries] + [mixed[0].id, mixed[1].id]

    async def test_duplicate_within_one_batch_is_stored_once(self, log: Log) -> None:
        topic = new_topic()
        e = make_entries(2)
        receipts = await log.append(topic, [e[0], e[1], e[0]])
        assert [a.duplicate for a in receipts] == [False, False, True]
        assert receipts[2].position == receipts[0].position
        assert [r.id for r in await read_all(log, topic)] == [e[0].id, e[1].id]

    async def test_same_id_other_content_is_a_conflict_and_stores_nothing(self, log: Log) -> None:
        topic = new_topic()
        original = make_entries(1)[0]
        await log.append(topic, [original])
        forged = Entry(original.id, original.key, b'{"other": true}', "0" * 32, creator=original.creator)
        fresh = make_entries(3)
        with pytest.raises(IdConflict) as e:
            await log.append(topic, [fresh[0], forged, fresh[1]])
        assert e.value.id == original.id
        # Nothing of the refused batch was stored, and the original is intact.
        records = await read_all(log, topic)
        assert [r.id for r in records] == [original.id]
        assert records[0].body == original.body
        await log.append(topic, fresh)
        assert len(await read_all(log, topic)) == 4
