"""The log contract suite: one set of tests every engine must pass.

In-repo engines run it from ``tests/contract/test_log.py``; a third-party
engine imports it and provides two fixtures::

    from creative_hub.testing.contract import LogContract

    class TestMyEngine(LogContract):
        @pytest.fixture
        def log_url(self): return "myengine://..."        # a server the test owns

        @pytest.fixture
        async def log(self, log_url):
            log = open_log(log_url); await log.open(); yield log; await log.close()

Every test uses topics of its own, so engines may share one server per
session.  No test measures speed; waits are bounded and only there so that a
broken engine fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ..errors import IdConflict, LogClosed, NotFound, PositionGone, ValidationError
from ..ledger import EffectLedger
from ..log import Delivery, Entry, Gap, Log, Record, Retention, Start, open_log
from .worker import record_effect

__all__ = ["OPTIONAL_FEATURES", "LogContract", "eventually", "make_entries", "new_topic"]

WAIT = 60.0  # seconds a test waits for something that should happen soon

# What an engine may declare in its class's FEATURES (creative_hub.log.Feature values).
OPTIONAL_FEATURES = frozenset({"delete", "atomic_append", "gap_counts"})

# subscribe() arguments every engine refuses with a ValidationError naming the argument.
BAD_SUBSCRIBE: list[tuple[str, dict[str, object]]] = [
    ("topic", {"topic": "Not A Topic"}),
    ("group", {"group": ""}),
    ("group", {"group": "two words"}),
    ("group", {"group": "tab\there"}),
    ("group", {"group": "line\nbreak"}),
    ("group", {"group": "g" * 201}),
    ("group", {"group": 7}),
    ("consumer", {"consumer": ""}),
    ("consumer", {"consumer": "a b"}),
    ("ack_timeout", {"ack_timeout": 0}),
    ("ack_timeout", {"ack_timeout": -1.0}),
    ("ack_timeout", {"ack_timeout": float("nan")}),
    ("ack_timeout", {"ack_timeout": float("inf")}),
    ("ack_timeout", {"ack_timeout": "30"}),
    ("start", {"start": "sideways"}),
    ("batch", {"batch": 0}),
    ("batch", {"batch": -5}),
    ("batch", {"batch": 1.5}),
    ("batch", {"batch": True}),
]


def features(log: Log) -> frozenset[str]:
    """What ``log``'s engine declares it can do beyond the contract (its class's FEATURES)."""
    declared = getattr(type(log), "FEATURES", None)
    return frozenset(str(f) for f in declared) if isinstance(declared, frozenset) else frozenset()


def new_topic(prefix: str = "contract") -> str:
    """A topic name no other test uses."""
    return f"{prefix}.t{uuid.uuid4().hex[:12]}"


def make_entries(n: int, *, keys: list[str] | None = None, tag: str = "") -> list[Entry]:
    """``n`` entries with fresh ids; ``keys`` are used round-robin (default one key)."""
    keys = keys or ["alice"]
    out = []
    for i in range(n):
        key = keys[i % len(keys)]
        eid = uuid.uuid4().hex
        body = json.dumps({"id": eid, "key": key, "n": i, "tag": tag}).encode()
        out.append(Entry(eid, key, body, hashlib.sha256(body).hexdigest()[:32], creator=key))
    return out


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT, what: str = "") -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not true after {timeout}s: {what}")
        await asyncio.sleep(0.1)


async def read_all(log: Log, topic: str, **kw: object) -> list[Record]:
    return [r async for r in log.read(topic, **kw)]  # type: ignore[arg-type]


class LogContract:
    """The rules of ``creative_hub.log.base.Log``, one test each."""

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
        topic = new_topic()
        entries = make_entries(20, keys=["a", "b", "c"])
        await log.append(topic, entries)
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
        await eventually(lambda: _true(len(seen) == 2), what="history read")
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

    # -- consumer groups -------------------------------------------------------
    async def test_group_shares_records_keeps_key_order(self, log: Log) -> None:
        # Three members, six keys: every record is handled once, by one member,
        # each key in append order and never by two members at the same time.
        # More records than a member prefetches (256): the first member to join holds
        # every partition until the others have joined, and with fewer records it
        # could fetch them all before it hands any partition over (seen under load).
        topic, group = new_topic(), "workers"
        keys = [f"key{i}" for i in range(6)]
        entries = make_entries(600, keys=keys)
        subs = [log.subscribe(topic, group, consumer=f"m{i}", ack_timeout=20) for i in range(3)]
        for s in subs:
            await s.__aenter__()
        handled: list[tuple[str, str, int]] = []  # (member, key, n)
        busy: set[str] = set()
        overlap: list[str] = []
        done = asyncio.Event()

        async def member(i: int) -> None:
            sub = subs[i]
            while not done.is_set():
                try:
                    d = await sub.next(timeout=0.5)
                except TimeoutError:
                    continue
                if d.key in busy:
                    overlap.append(d.key)
                busy.add(d.key)
                await asyncio.sleep(random.uniform(0.001, 0.02))
                handled.append((f"m{i}", d.key, json.loads(d.body)["n"]))
                busy.discard(d.key)
                await d.ack()
                if len(handled) >= len(entries):
                    done.set()

        tasks = [asyncio.create_task(member(i)) for i in range(3)]
        for i in range(0, len(entries), 20):
            await log.append(topic, entries[i : i + 20])
        try:
            await asyncio.wait_for(done.wait(), 120)
        finally:
            done.set()
            await asyncio.gather(*tasks)
            for s in subs:
                await s.close()
        assert not overlap, f"keys handled by two members at once: {overlap}"
        assert len(handled) == len(entries), "a record was handled twice"
        assert sorted(n for _, _, n in handled) == list(range(len(entries)))
        for key in keys:
            ns = [n for _, k, n in handled if k == key]
            assert ns == sorted(ns), f"{key} out of order: {ns}"
        assert len({m for m, _, _ in handled}) >= 2, "one member did all the work"

    async def test_unacked_delivery_comes_back_after_ack_timeout(self, log: Log) -> None:
        topic = new_topic()
        entry = make_entries(1)[0]
        await log.append(topic, [entry])
        async with log.subscribe(topic, "g", ack_timeout=1.0) as sub:
            first = await sub.next(timeout=WAIT)
            assert first.id == entry.id and first.delivery_count == 1
            again = await sub.next(timeout=WAIT)  # never acked the first time
            assert again.id == entry.id
            assert again.delivery_count >= 2
            await again.ack()
            with pytest.raises(TimeoutError):
                await sub.next(timeout=2.5)

    async def test_nack_redelivers(self, log: Log) -> None:
        topic = new_topic()
        entry = make_entries(1)[0]
        await log.append(topic, [entry])
        async with log.subscribe(topic, "g", ack_timeout=30) as sub:
            d = await sub.next(timeout=WAIT)
            await d.nack(0.2)
            d2 = await sub.next(timeout=WAIT)
            assert d2.id == entry.id and d2.delivery_count >= 2
            await d2.ack()

    async def test_member_that_leaves_hands_unacked_to_the_group(self, log: Log) -> None:
        topic = new_topic()
        entries = make_entries(6)
        await log.append(topic, entries)
        first = log.subscribe(topic, "g", consumer="first", ack_timeout=30)
        async with first:
            for _ in range(2):
                await (await first.next(timeout=WAIT)).ack()
            await first.next(timeout=WAIT)  # the third, never acked
        seen: list[str] = []
        async with log.subscribe(topic, "g", consumer="second", ack_timeout=30) as second:
            while len(seen) < 4:
                d = await second.next(timeout=WAIT)
                seen.append(d.id)
                await d.ack()
        assert seen == [e.id for e in entries[2:]]

    async def test_killed_member_mid_batch_effect_happens_once(
        self, log: Log, log_url: str, tmp_path: Path
    ) -> None:
        # A member in another process does the effect of its 4th event, then is
        # SIGKILLed before acking.  The group redelivers what it did not ack;
        # with the ledger every effect happens exactly once.
        topic, group = new_topic(), "effects"
        entries = make_entries(30, keys=["a", "b", "c"])
        await log.append(topic, entries)
        ledger_path, marker = tmp_path / "ledger.db", tmp_path / "marker"
        ledger = EffectLedger(ledger_path)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "creative_hub.testing.worker",
                log_url,
                topic,
                group,
                str(ledger_path),
                str(marker),
                "--ack-timeout",
                "2",
                "--hang-after",
                "3",
            ],
        )
        try:
            deadline = time.monotonic() + WAIT
            while not marker.exists():
                assert proc.poll() is None, f"worker exited with {proc.returncode}"
                assert time.monotonic() < deadline, "worker never reached its 4th event"
                await asyncio.sleep(0.05)
            hung_on = marker.read_text()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        redelivered: list[str] = []
        async with log.subscribe(topic, group, consumer="survivor", ack_timeout=2) as sub:
            while len(ledger.handled(group)) < len(entries):
                d = await sub.next(timeout=WAIT)
                if not record_effect(ledger, group, d.id, "survivor"):
                    redelivered.append(d.id)
                await d.ack()
        effects = ledger.connection.execute("SELECT id, count(*) FROM effects GROUP BY id").fetchall()
        assert {i for i, _ in effects} == {e.id for e in entries}
        assert all(c == 1 for _, c in effects), "an effect happened twice"
        assert hung_on in redelivered, "the un-acked event was not redelivered"
        ledger.close()

    async def test_new_group_catches_up_then_gets_live_records(self, log: Log) -> None:
        topic = new_topic()
        history, live = make_entries(5), make_entries(3)
        await log.append(topic, history)
        got: list[str] = []
        async with log.subscribe(topic, "late-joiner", ack_timeout=30) as sub:
            for _ in range(5):
                d = await sub.next(timeout=WAIT)
                got.append(d.id)
                await d.ack()
            await log.append(topic, live)
            for _ in range(3):
                d = await sub.next(timeout=WAIT)
                got.append(d.id)
                await d.ack()
        assert got == [e.id for e in history + live]

    async def test_group_resumes_after_its_last_ack(self, log: Log) -> None:
        topic = new_topic()
        entries = make_entries(8)
        await log.append(topic, entries)
        async with log.subscribe(topic, "resumer", ack_timeout=30) as sub:
            for _ in range(5):
                await (await sub.next(timeout=WAIT)).ack()
        async with log.subscribe(topic, "resumer", ack_timeout=30) as sub:
            rest = []
            for _ in range(3):
                d = await sub.next(timeout=WAIT)
                rest.append(d.id)
                await d.ack()
            with pytest.raises(TimeoutError):
                await sub.next(timeout=1.0)
        assert rest == [e.id for e in entries[5:]]

    async def test_start_latest_skips_history(self, log: Log) -> None:
        topic = new_topic()
        await log.append(topic, make_entries(4))
        async with log.subscribe(topic, "fresh", start=Start.LATEST, ack_timeout=30) as sub:
            with pytest.raises(TimeoutError):
                await sub.next(timeout=1.0)
            live = make_entries(2)
            await log.append(topic, live)
            got = []
            for _ in range(2):
                d = await sub.next(timeout=WAIT)
                got.append(d.id)
                await d.ack()
        assert got == [e.id for e in live]

    async def test_groups_are_independent(self, log: Log) -> None:
        topic = new_topic()
        entries = make_entries(3)
        await log.append(topic, entries)
        for group in ("one", "two"):
            async with log.subscribe(topic, group, ack_timeout=30) as sub:
                got: list[Delivery] = [await sub.next(timeout=WAIT) for _ in range(3)]
                for d in got:
                    await d.ack()
            assert [d.id for d in got] == [e.id for e in entries]
        assert sorted(await log.groups(topic)) == ["one", "two"]

    async def test_lag_counts_what_the_group_has_not_acked(self, log: Log) -> None:
        topic = new_topic()
        await log.append(topic, make_entries(10))
        async with log.subscribe(topic, "lagging", ack_timeout=30) as sub:
            for _ in range(4):
                await (await sub.next(timeout=WAIT)).ack()

        async def lag_is_6() -> bool:
            return (await log.lag(topic, "lagging")).lag == 6

        await eventually(lag_is_6, what="lag == 6 after 4 of 10 acked")

    # -- batches -----------------------------------------------------------------
    async def test_next_batch_keeps_key_order_and_max(self, log: Log) -> None:
        # Batches of at most `max`, never empty, every record once, each key in append order.
        topic = new_topic()
        entries = make_entries(45, keys=["k1", "k2", "k3"])
        await log.append(topic, entries)
        got: list[Delivery] = []
        async with log.subscribe(topic, "batches", ack_timeout=30) as sub:
            while len(got) < len(entries):
                batch = await sub.next_batch(7, timeout=WAIT)
                assert 1 <= len(batch) <= 7
                got.extend(batch)
                await sub.ack_many(batch)
            assert all(d.done for d in got)
        assert sorted(d.id for d in got) == sorted(e.id for e in entries)
        for key in ("k1", "k2", "k3"):
            ns = [json.loads(d.body)["n"] for d in got if d.key == key]
            assert ns == sorted(ns), f"{key} out of order: {ns}"
        assert all(d.delivery_count == 1 and d.topic == topic for d in got)

    async def test_ack_many_acks_them_all(self, log: Log) -> None:
        # One ack_many settles the whole batch: the lag drops to zero and
        # nothing comes back after the ack timeout; acking again is harmless.
        topic = new_topic()
        entries = make_entries(20, keys=["a", "b"])
        await log.append(topic, entries)
        async with log.subscribe(topic, "bulk", ack_timeout=1.0) as sub:
            got: list[Delivery] = []
            while len(got) < len(entries):
                got.extend(await sub.next_batch(100, timeout=WAIT))
            assert len(got) == len(entries)
            await sub.ack_many(got)
            await sub.ack_many(got)  # twice: harmless
            await got[0].ack()
            with pytest.raises(TimeoutError):
                await sub.next_batch(timeout=2.5)  # past the ack timeout: nothing redelivered

            async def lag_is_0() -> bool:
                return (await log.lag(topic, "bulk")).lag == 0

            await eventually(lag_is_0, what="lag == 0 after ack_many of everything")

    async def test_unacked_batch_member_comes_back_after_ack_timeout(self, log: Log) -> None:
        topic = new_topic()
        entries = make_entries(5)
        await log.append(topic, entries)
        async with log.subscribe(topic, "g", ack_timeout=1.0) as sub:
            got: list[Delivery] = []
            while len(got) < len(entries):
                got.extend(await sub.next_batch(5, timeout=WAIT))
            assert [d.id for d in got] == [e.id for e in entries]
            kept = got[2]
            await sub.ack_many([d for d in got if d is not kept])
            again = await sub.next_batch(5, timeout=WAIT)
            assert [d.id for d in again] == [kept.id]
            assert again[0].delivery_count >= 2
            await sub.ack_many(again)
            with pytest.raises(TimeoutError):
                await sub.next_batch(timeout=2.5)

    async def test_next_batch_on_empty_topic_times_out(self, log: Log) -> None:
        topic = new_topic()
        async with log.subscribe(topic, "idle", ack_timeout=30) as sub:
            t = time.monotonic()
            with pytest.raises(TimeoutError):
                await sub.next_batch(10, timeout=1.0)
            assert time.monotonic() - t < WAIT

    # -- retention -------------------------------------------------------------
    async def test_retention_by_count_keeps_the_newest(self, log: Log) -> None:
        topic = new_topic()
        entries = make_entries(12)
        receipts = await log.append(topic, entries)
        await log.set_retention(topic, Retention(max_count=5))
        await log.apply_retention(topic)
        remaining = [r.id for r in await read_all(log, topic)]
        assert remaining == [e.id for e in entries[-5:]]
        info = await log.topic_info(topic)
        assert info.count == 5
        assert info.retention.max_count == 5
        # Reading from a removed position is an error, never a silent jump.
        with pytest.raises(PositionGone):
            await read_all(log, topic, after=receipts[2].position)
        # From the last removed one is fine: nothing after it is missing.
        assert len(await read_all(log, topic, after=receipts[6].position)) == 5

    async def test_retention_passes_at_once_from_two_processes_agree(self, log: Log, log_url: str) -> None:
        # Two hub processes (two Log objects) apply a count retention to the
        # same topic at the same moment, round after round, with appends in
        # between: each pass succeeds (one may find what it was reading removed
        # by the other: it starts again) and the newest ``max_count`` remain.
        topic = new_topic()
        other = open_log(log_url)
        await other.open()
        try:
            await log.append(topic, make_entries(40))
            await log.set_retention(topic, Retention(max_count=10))
            appended = []
            for _ in range(4):
                batch = make_entries(30)
                await log.append(topic, batch)
                appended += batch
                await asyncio.gather(log.apply_retention(topic), other.apply_retention(topic))
                assert (await log.topic_info(topic)).count == 10
            assert [r.id for r in await read_all(log, topic)] == [e.id for e in appended[-10:]]
        finally:
            await other.close()

    async def test_a_read_overtaken_by_retention_raises_instead_of_skipping(self, log: Log) -> None:
        # A reader takes one record; retention then removes all but the newest
        # five while it is mid-read.  What it reads next must be the records
        # after the first, in order (what it had already fetched is fine),
        # until a PositionGone -- never a jump over removed records.  The
        # bodies are big enough (~20 MB in all) that no engine fetches them all
        # ahead: a Kafka read prefetches at most 4 MiB.
        topic = new_topic()
        rng = random.Random(7)  # random padding: a producer's compression must not shrink it
        entries = []
        for e in make_entries(2400):
            pad = base64.b64encode(rng.randbytes(6000)).decode()
            body = e.body[:-1] + f', "pad": "{pad}"}}'.encode()
            entries.append(Entry(e.id, e.key, body, hashlib.sha256(body).hexdigest()[:32], creator=e.creator))
        for i in range(0, len(entries), 400):
            await log.append(topic, entries[i : i + 400])
        records = aiter(log.read(topic))
        got = [(await anext(records)).id]
        await log.set_retention(topic, Retention(max_count=5))
        await log.apply_retention(topic)
        with pytest.raises(PositionGone) as gone:
            async for r in records:
                got.append(r.id)
                assert r.id == entries[len(got) - 1].id, f"record {len(got)} skipped ahead to {r.id}"
            raise AssertionError(f"the read of {len(got)} records ended without PositionGone")
        assert len(got) < len(entries) - 5, f"the read went on through removed records ({len(got)})"
        assert gone.value.earliest is not None

    async def test_retention_by_age(self, log: Log) -> None:
        topic = new_topic()
        old = make_entries(3)
        await log.append(topic, old)
        await asyncio.sleep(2.2)
        new = make_entries(2)
        await log.append(topic, new)
        await log.set_retention(topic, Retention(max_age=2.0))
        await log.apply_retention(topic)

        async def only_new() -> bool:
            return [r.id for r in await read_all(log, topic)] == [e.id for e in new]

        await eventually(only_new, what="events older than max_age removed")

    # -- gaps: a group behind retention ------------------------------------------
    async def test_group_behind_retention_is_told_of_the_gap_then_continues(self, log: Log) -> None:
        # A group acks 3 of 20 events and leaves; retention then keeps the
        # newest 5.  The group's next member is told of the gap -- the 12
        # events it never got -- before its first delivery, counted where the
        # engine can count, then gets the 5 retained events in order.
        topic, group = new_topic(), "behind"
        entries = make_entries(20)
        receipts = await log.append(topic, entries)
        async with log.subscribe(topic, group, ack_timeout=30) as sub:
            for _ in range(3):
                await (await sub.next(timeout=WAIT)).ack()
        await log.set_retention(topic, Retention(max_count=5))
        await log.apply_retention(topic)
        told: list[Gap] = []
        got: list[str] = []
        sub = log.subscribe(topic, group, ack_timeout=30)
        sub.on_gap = told.append  # set before joining: a gap may be found as it joins
        async with sub:
            while len(got) < 5:
                d = await sub.next(timeout=WAIT)
                assert told, f"{d.id} was handed out before the gap was reported"
                got.append(d.id)
                await d.ack()
            gaps = sub.gaps()
            with pytest.raises(TimeoutError):
                await sub.next(timeout=1.0)
        assert got == [e.id for e in entries[-5:]]
        assert gaps == told and all(g.topic == topic and g.group == group for g in gaps)
        counts = "gap_counts" in features(log)
        assert all(isinstance(g.upto, str) and g.upto for g in gaps), gaps
        if counts:
            assert sum(g.count or 0 for g in gaps) == 12, gaps
            assert sub.skipped == 12
        else:  # the engine cannot count: the gaps give ranges only
            assert all(g.count is None or g.count >= 0 for g in gaps), gaps
        assert receipts  # positions are the engine's own: the contract never parses them

        async def reported() -> bool:
            lag = await log.lag(topic, group)
            ok = lag.gaps >= 1 and lag.lag == 0
            if counts:
                ok = ok and lag.skipped == 12
            return ok

        await eventually(reported, what="lag reports the gap (skipped == 12 where counted)")

    # -- topics and lifecycle --------------------------------------------------
    async def test_topics_are_listed_with_counts(self, log: Log) -> None:
        a, b = new_topic("listed"), new_topic("listed")
        await log.append(a, make_entries(3))
        await log.append(b, make_entries(1))
        infos = {t.name: t for t in await log.topics()}
        assert infos[a].count == 3 and infos[b].count == 1
        assert (await log.topic_info(a)).count == 3
        assert (await log.health()).ok

    async def test_close_is_idempotent_and_use_after_close_fails(self, log_url: str) -> None:
        log = open_log(log_url)
        await log.open()
        await log.append(new_topic(), make_entries(1))
        await log.close()
        await log.close()
        with pytest.raises(LogClosed):
            await log.append(new_topic(), make_entries(1))

    async def test_use_before_open_raises_log_closed(self, log_url: str) -> None:
        # Every call on a log never opened raises LogClosed saying to open it,
        # on every engine (not a bare LogError, not an AttributeError).
        log = open_log(log_url)
        topic = new_topic()

        async def join() -> None:
            async with log.subscribe(topic, "before-open", ack_timeout=5):
                pass

        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "append": lambda: log.append(topic, make_entries(1)),
            "read": lambda: read_all(log, topic),
            "subscribe": join,
            "topics": log.topics,
            "topic_info": lambda: log.topic_info(topic),
            "set_retention": lambda: log.set_retention(topic, Retention(max_count=5)),
            "apply_retention": lambda: log.apply_retention(topic),
            "groups": lambda: log.groups(topic),
            "lag": lambda: log.lag(topic, "before-open"),
        }
        wrong = {}
        for name, call in calls.items():
            try:
                await call()
            except LogClosed as e:
                if "open()" not in str(e):
                    wrong[name] = f"LogClosed without saying to call open(): {e}"
            except Exception as e:
                wrong[name] = f"{type(e).__name__}: {e}"
            else:
                wrong[name] = "no error"
        await log.close()  # closing a log that was never opened is fine
        assert not wrong, wrong

    async def test_subscribe_checks_every_argument_before_joining(self, log: Log) -> None:
        # One set of rules on every engine, applied by subscribe() itself
        # (nothing is created): a ValidationError naming the argument.
        wrong = []
        for field_name, bad in BAD_SUBSCRIBE:
            args: dict[str, Any] = {"topic": new_topic(), "group": "g", **bad}
            try:
                log.subscribe(**args)
            except ValidationError as e:
                if e.field != field_name:
                    wrong.append(f"{bad}: names {e.field!r}, not {field_name!r}")
            except Exception as e:
                wrong.append(f"{bad}: {type(e).__name__}: {e}")
            else:
                wrong.append(f"{bad}: accepted")
        assert not wrong, wrong
        # The limits themselves are fine.
        topic = new_topic()
        await log.append(topic, make_entries(1))
        longest = "g-" + "x" * 198
        sub = log.subscribe(topic, longest, consumer="c-1", ack_timeout=0.5, start=Start.LATEST, batch=1)
        async with sub:
            assert (sub.group, sub.consumer) == (longest, "c-1")
        async with log.subscribe(topic, "grp.with_dots-1", ack_timeout=5) as other:
            await (await other.next(timeout=WAIT)).ack()

    async def test_retention_by_bytes_keeps_about_the_newest(self, log: Log) -> None:
        # 40 records of ~1 kB, max_bytes 10 kB: what stays is the newest ones,
        # in order, no more of them than fit in 10 kB (engines count at least
        # the bodies; some count their own overhead too, so maybe fewer).
        topic = new_topic()
        entries = []
        for e in make_entries(40):
            body = e.body[:-1] + b', "pad": "' + b"p" * 1000 + b'"}'
            entries.append(Entry(e.id, e.key, body, hashlib.sha256(body).hexdigest()[:32], creator=e.creator))
        await log.append(topic, entries)
        await log.set_retention(topic, Retention(max_bytes=10_000))
        assert (await log.topic_info(topic)).retention.max_bytes == 10_000
        await log.apply_retention(topic)
        fits = 10_000 // len(entries[0].body)

        async def trimmed() -> bool:
            await log.apply_retention(topic)
            return 1 <= len(await read_all(log, topic)) <= fits

        await eventually(trimmed, what=f"between 1 and {fits} records kept")
        kept = [r.id for r in await read_all(log, topic)]
        assert kept == [e.id for e in entries[-len(kept) :]], "retention kept other than the newest"

    async def test_topic_info_of_a_missing_topic_is_not_found(self, log: Log) -> None:
        with pytest.raises(NotFound):
            await log.topic_info(new_topic("missing"))

    async def test_optional_features_are_declared(self, log: Log) -> None:
        # Declared in one place, the engine class's FEATURES (a frozenset of
        # creative_hub.log.Feature): nobody has to probe for methods.
        declared = getattr(type(log), "FEATURES", None)
        assert isinstance(declared, frozenset), f"{type(log).__name__}.FEATURES is not declared"
        assert features(log) <= OPTIONAL_FEATURES, features(log) - OPTIONAL_FEATURES
        assert ("delete" in features(log)) == callable(getattr(log, "delete", None))

    async def test_delete_removes_single_records_where_declared(self, log: Log) -> None:
        if "delete" not in features(log):
            pytest.skip(f"{type(log).__name__} does not declare delete")
        delete = log.delete  # type: ignore[attr-defined]
        topic = new_topic()
        entries = make_entries(5)
        await log.append(topic, entries)
        assert await delete(topic, [entries[1].id, entries[3].id, "no-such-id"]) == 2
        assert [r.id for r in await read_all(log, topic)] == [entries[i].id for i in (0, 2, 4)]
        assert (await log.topic_info(topic)).count == 3
        assert await delete(topic, [entries[1].id]) == 0  # already gone
        assert await delete(new_topic("missing"), ["x"]) == 0  # no topic: nothing to delete


async def _true(value: bool) -> bool:
    return value
