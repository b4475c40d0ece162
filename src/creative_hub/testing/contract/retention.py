"""The contract's rules for retention, gaps, topics and the log's lifecycle (open, close, features)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ...errors import LogClosed, NotFound, PositionGone, ValidationError
from ...log import Entry, Gap, Log, Retention, Start, open_log
from .support import (
    BAD_SUBSCRIBE,
    OPTIONAL_FEATURES,
    WAIT,
    eventually,
    features,
    make_entries,
    new_topic,
    read_all,
    topic_with,
)


class RetentionRules:
    """The contract's rules for retention, gaps, topics and the log's lifecycle (open, close, features)."""

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
        assert ("append_hint" in features(log)) == callable(getattr(log, "will_append", None))

    async def test_delete_removes_single_records_where_declared(self, log: Log) -> None:
        if "delete" not in features(log):
            pytest.skip(f"{type(log).__name__} does not declare delete")
        delete = log.delete  # type: ignore[attr-defined]
        topic, entries = await topic_with(log, 5)
        assert await delete(topic, [entries[1].id, entries[3].id, "no-such-id"]) == 2
        assert [r.id for r in await read_all(log, topic)] == [entries[i].id for i in (0, 2, 4)]
        assert (await log.topic_info(topic)).count == 3
        assert await delete(topic, [entries[1].id]) == 0  # already gone
        assert await delete(new_topic("missing"), ["x"]) == 0  # no topic: nothing to delete
