"""The contract's rules for batch delivery: ``sub.fetch()`` / ``sub.batches()`` and ``Batch.ack``."""

from __future__ import annotations

import pytest

from ...errors import LogClosed, ValidationError
from ...log import Delivery, Log, Subscription
from .support import WAIT, assert_each_once_in_key_order, eventually, topic_with


async def _collect(sub: Subscription, n: int, max: int = 100) -> list[Delivery]:
    """Deliveries of ``n`` records, fetched batch by batch, none settled."""
    got: list[Delivery] = []
    while len(got) < n:
        got.extend(await sub.fetch(max, timeout=WAIT))
    return got


class BatchRules:
    """The contract's rules for batch delivery."""

    async def test_batches_keep_order_and_max_and_ack_settles_all(self, log: Log) -> None:
        # Batches of at most `max`, never empty, every record once, each key
        # in append order; one batch.ack() settles the batch: nothing comes
        # back after the ack timeout and the lag drops to zero.
        topic, entries = await topic_with(log, 45, keys=["k1", "k2", "k3"])
        got: list[Delivery] = []
        async with log.subscribe(topic, "batches", ack_timeout=1.0) as sub:
            async for batch in sub.batches(7, timeout=WAIT):
                assert 1 <= len(batch) <= 7 and batch.pending == len(batch)
                assert list(batch) == [batch[i] for i in range(len(batch))]
                got.extend(batch)
                await batch.ack()
                assert batch.done and batch.pending == 0
                await batch.ack()  # twice: harmless
                if len(got) >= len(entries):
                    break
            with pytest.raises(TimeoutError):
                await sub.fetch(timeout=2.5)  # past the ack timeout: nothing redelivered

            async def lag_is_0() -> bool:
                return (await log.lag(topic, "batches")).lag == 0

            await eventually(lag_is_0, what="lag == 0 after every batch acked")
        assert_each_once_in_key_order(got, entries, topic)

    async def test_batch_ack_of_a_prefix_redelivers_only_the_rest(self, log: Log) -> None:
        # One key, so a batch is in append order.  Ack the first half of the
        # first batch, nack the rest: the rest and the records not fetched yet
        # come, each once; the acked prefix never comes back.
        topic, entries = await topic_with(log, 10)
        async with log.subscribe(topic, "prefix", ack_timeout=30) as sub:
            batch = await sub.fetch(10, timeout=WAIT)
            n = len(batch)
            assert 1 <= n <= 10
            assert [d.id for d in batch] == [e.id for e in entries[:n]]
            k = n // 2
            await batch.ack(upto=k)
            assert batch.pending == n - k and all(d.done for d in batch[:k])
            for bad in (-1, n + 1, 2.5, True, "3"):
                with pytest.raises(ValidationError) as e:
                    await batch.ack(upto=bad)  # type: ignore[arg-type]
                assert e.value.field == "upto"
            await batch.nack()
            assert batch.done
            rest = await _collect(sub, len(entries) - k)
            assert sorted(d.id for d in rest) == sorted(e.id for e in entries[k:])
            resent = {d.id for d in batch[k:]}
            assert all(d.delivery_count >= 2 for d in rest if d.id in resent)
            await sub.ack_many(rest)
            with pytest.raises(TimeoutError):
                await sub.fetch(timeout=1.0)
            with pytest.raises(ValidationError) as e:
                await sub.fetch(0)
            assert e.value.field == "max"

    async def test_unacked_batch_comes_back_once_after_ack_timeout(self, log: Log) -> None:
        # A batch nobody acks comes back after the ack timeout: every record,
        # each once (not once per fetch, not doubled), counted as redelivered.
        topic, entries = await topic_with(log, 8, keys=["a", "b"])
        async with log.subscribe(topic, "lapse", ack_timeout=1.0) as sub:
            first = await _collect(sub, len(entries))
            assert sorted(d.id for d in first) == sorted(e.id for e in entries)
            again = await _collect(sub, len(entries))
            assert sorted(d.id for d in again) == sorted(e.id for e in entries)
            assert all(d.delivery_count >= 2 for d in again)
            await sub.ack_many(again)
            with pytest.raises(TimeoutError):
                await sub.fetch(timeout=2.5)

    async def test_batches_end_when_the_subscription_closes(self, log: Log) -> None:
        # The loop over batches() ends (no error) once the subscription is
        # closed; fetch() on a closed subscription is LogClosed.
        topic, entries = await topic_with(log, 3)
        seen: list[str] = []
        async with log.subscribe(topic, "closing", ack_timeout=30) as sub:
            async for batch in sub.batches(10, timeout=WAIT):
                seen += [d.id for d in batch]
                await batch.ack()
                if len(seen) >= len(entries):
                    await sub.close()
            with pytest.raises(LogClosed):
                await sub.fetch(timeout=1.0)
        assert sorted(seen) == sorted(e.id for e in entries)
