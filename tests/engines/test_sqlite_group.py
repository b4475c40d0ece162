"""The SQLite group member's ack deadlines: a record is redelivered once per lapse, never twice at once."""

from __future__ import annotations

import asyncio

import pytest

from creative_hub.log import Delivery, Log
from creative_hub.testing.contract.groups import slow_handler_with_a_buffer
from creative_hub.testing.contract.support import WAIT, topic_with

pytestmark = pytest.mark.sqlite


@pytest.fixture
def engine() -> str:
    return "sqlite"


async def _drain(sub: object, quiet: float) -> list[Delivery]:
    """Every delivery until none comes for ``quiet`` s, each acked at once."""
    got: list[Delivery] = []
    while True:
        try:
            d = await sub.next(timeout=quiet)  # type: ignore[attr-defined]
        except TimeoutError:
            return got
        got.append(d)
        await d.ack()


async def test_a_fetched_record_not_handed_out_yet_comes_as_a_first_delivery(log: Log) -> None:
    # The contract's scenario (test_a_fetched_record_not_handed_out_yet_is_not_
    # redelivered_beside_itself): on SQLite an ack deadline starts when the
    # record is handed out, so the five that waited in the buffer while the
    # handler held the first past its ack timeout come as first deliveries.
    first, entries, rest = await slow_handler_with_a_buffer(log)
    assert sorted(d.id for d in rest) == sorted(e.id for e in entries)
    assert all(d.delivery_count == 1 for d in rest if d.id != first.id)


async def test_a_nacked_record_comes_back_once_per_lapse(log: Log) -> None:
    # Nacked, handed out again and left un-acked: when the deadlines lapse it
    # comes once more -- the first hand-out's deadline no longer counts.
    topic, [entry] = await topic_with(log, 1)
    async with log.subscribe(topic, "nacks", ack_timeout=1.0) as sub:
        d = await sub.next(timeout=WAIT)
        await d.nack()
        d2 = await sub.next(timeout=WAIT)
        assert d2.id == entry.id and d2.delivery_count == d.delivery_count + 1
        await asyncio.sleep(1.5)
        later = await _drain(sub, 0.5)
    assert [x.id for x in later] == [entry.id]
    assert later[0].delivery_count == d2.delivery_count + 1


async def test_a_batch_acked_late_is_not_redelivered_after_its_ack(log: Log) -> None:
    # A batch acked after its deadline lapsed and it was handed out again:
    # the ack of either hand-out settles the record; nothing comes a third time.
    topic, entries = await topic_with(log, 4)
    async with log.subscribe(topic, "late", ack_timeout=1.0, batch=4) as sub:
        batch = await sub.fetch(4, timeout=WAIT)
        assert [d.id for d in batch] == [e.id for e in entries]
        await asyncio.sleep(1.3)
        again = await sub.fetch(4, timeout=WAIT)
        assert sorted(d.id for d in again) == sorted(e.id for e in entries)
        await batch.ack()  # the first hand-out, late
        assert await _drain(sub, 1.5) == []
