"""A Kafka consumer-group member's bookkeeping: its deliveries, its partitions, its commit marks.

``KafkaDelivery`` is one message handed out (decoded only when asked);
``Part`` what the member knows of a partition it owns;
``assignment_starts`` where newly assigned partitions start.  Commits carry
metadata ``d=<mark>;s=<skipped>;g=<gaps>``: how far deliveries went (so the
next owner counts redeliveries) and the group's gap totals (for ``lag``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import confluent_kafka as ck

from .._subscription import LazyDelivery
from ..base import Record, Start
from .names import message_record, retry

if TYPE_CHECKING:
    from .group import KafkaSubscription

__all__ = [
    "KafkaDelivery",
    "Part",
    "PartStart",
    "assignment_starts",
    "commit_metadata",
    "mark_of",
    "on_commit",
    "totals_of",
]


# (partition, start offset, previous delivery mark, skipped, gaps, (gap start, resume) or None)
PartStart = tuple[int, "int | None", int, int, int, "tuple[int, int] | None"]


class KafkaDelivery(LazyDelivery):
    """A delivery of one Kafka message, made when the message is first handed out
    (and handed out again, on redelivery, as the same object); it is also its own
    token in its partition's ``out``.

    Nothing is decoded until asked: ``body`` is the message's value as librdkafka
    gave it, and the Record (id from the headers, key, position) is made on first
    use.  Converting a message's headers costs more than consuming it (measured
    1.5 us against 1.3 us a record), and a hub handler reads the event from the
    body.
    """

    __slots__ = ("_m", "due", "off", "part")
    _owner: KafkaSubscription

    def __init__(
        self, m: ck.Message, part: Part, off: int, count: int, sub: KafkaSubscription, due: float
    ) -> None:
        # Not Delivery.__init__: ack/nack go to the subscription (no closures per
        # record, no _token: part and off are the token).  Made when handed out.
        self._m = m
        self._rec: Record | None = None
        self._owner = sub
        self._done = False
        self.delivery_count = count
        self.part = part
        self.off = off
        self.due = due  # monotonic time of redelivery

    def _make_record(self) -> Record:
        sub, p = self._owner, self.part.partition
        fmt = sub._format
        position = str(self.off) if fmt is None else f"{fmt[p][0]}{self.off}{fmt[p][1]}"
        return message_record(sub.topic, self._m, position)

    @property
    def body(self) -> bytes:
        body: bytes = self._m.value() or b""
        if body.startswith(b'{"specversion"'):  # structured mode, as this engine writes: the fast path
            return body
        return self.record.body  # anything else: a binary-mode event is converted there

    @property
    def topic(self) -> str:
        return self._owner.topic


@dataclass(slots=True, eq=False)
class Part:
    """A partition this member owns (a new object each time it is assigned)."""

    partition: int
    committed: int | None  # offset the group will resume from; None until known
    handed: int  # next offset after the last one handed to the application
    prev_mark: int  # how far the previous owner delivered (from commit metadata)
    out: dict[int, KafkaDelivery] = field(default_factory=dict)
    sent: tuple[int, int] = (-1, -1)  # (offset, mark) last committed
    fetched: int = -1  # the offset the next record from Kafka should have (-1: not known)
    skipped: int = 0  # records retention removed before the group got them (running total)
    gaps: int = 0  # gaps found on this partition (running total)


def commit_fields(metadata: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in (metadata or "").split(";"):
        name, _, value = item.partition("=")
        try:
            out[name] = int(value)
        except ValueError:
            pass
    return out


def mark_of(metadata: str | None) -> int:
    """How far deliveries went (``d=``), from a commit's metadata; -1 if not there."""
    return commit_fields(metadata).get("d", -1)


def totals_of(metadata: str | None) -> tuple[int, int]:
    """(skipped, gaps) so far, from a commit's metadata."""
    f = commit_fields(metadata)
    return f.get("s", 0), f.get("g", 0)


def commit_metadata(mark: int, skipped: int, gaps: int) -> str:
    return f"d={mark};s={skipped};g={gaps}" if gaps else f"d={mark}"


def on_commit(err: ck.KafkaError | None, partitions: list[ck.TopicPartition]) -> None:
    if err is not None:
        logging.getLogger("creative_hub.log.kafka").debug("commit failed: %s", err)


def assignment_starts(
    c: ck.Consumer, tps: list[ck.TopicPartition], ktopic: str, start: Start, timeout: float
) -> list[PartStart]:
    """Where newly assigned partitions start (see ``PartStart``), from their commits.

    A committed offset retention removed is a gap: counted (offsets are
    dense), and the low watermark committed at once with the new totals,
    so whoever owns the partition next does not count it again.  A partition
    the group never committed on starts at ``start`` and commits it at once.
    """
    committed = retry(lambda: c.committed(tps, timeout), timeout)
    out: list[PartStart] = []
    first_commit: list[ck.TopicPartition] = []
    for tp in committed:
        ask = partial(c.get_watermark_offsets, ck.TopicPartition(ktopic, tp.partition), timeout, cached=False)
        low, high = retry(ask, timeout)
        gap: tuple[int, int] | None = None
        skipped, gaps = totals_of(tp.metadata)
        if tp.offset is not None and tp.offset >= 0:
            offset = tp.offset
            mark = mark_of(tp.metadata)
            if offset < low:
                gap = (offset, low)
                skipped, gaps = skipped + low - offset, gaps + 1
                offset = low
                meta = commit_metadata(mark, skipped, gaps)
                first_commit.append(ck.TopicPartition(ktopic, tp.partition, offset, metadata=meta))
        else:
            offset = low if start is Start.EARLIEST else high
            mark = -1
            first_commit.append(ck.TopicPartition(ktopic, tp.partition, offset, metadata="d=-1"))
        out.append((tp.partition, offset, mark, skipped, gaps, gap))
    if first_commit:  # the group now exists, and starts here whoever joins next
        c.commit(offsets=first_commit, asynchronous=False)
    return out
