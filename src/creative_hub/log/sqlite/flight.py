"""What a SQLite group member keeps per fetched batch: acks, hand-outs and their deadlines.

A fetch brings, per partition, a run of records in position order.  One
``Run`` holds them as SQLite gave them (tuples of seq, id, key, body,
time_ms) with a byte per record -- pending, acked or nacked -- so an ack
sets a byte, and the partition's committed position moves over a run's
acked prefix (a run acked whole moves it in one step).

Deadlines are kept per hand-out (``HandOut``: the deliveries one ``next`` or
``next_batch`` gave, and when they lapse), not per record, and start when
the records are handed out: a record still waiting in the member's buffer
has no deadline, so it cannot be redelivered while it is also about to be
handed out.  A record handed out again (its deadline lapsed, or nacked) has
a new delivery; ``Run.counts`` names the latest, and only the latest one's
deadline brings it back again, so an older hand-out lapsing later leaves it
alone (an ack through any of them settles the record).

The one object per record is the ``SQLiteDelivery`` the handler gets; its
``Record`` is made only when asked (``body``, ``id``, ``key`` and
``position`` come from the row).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._subscription import LazyDelivery
from ..base import Record

if TYPE_CHECKING:
    from .group import SQLiteSubscription

__all__ = ["ACKED", "NACKED", "PENDING", "HandOut", "Row", "Run", "SQLiteDelivery"]

PENDING, ACKED, NACKED = 0, 1, 2

Row = tuple[int, str, str, bytes, int]  # seq, id, key, body, time_ms


class Run:
    """One partition's records of one fetch, in position order, and their acks."""

    __slots__ = ("counts", "generation", "head", "last", "left", "live", "part", "rows", "state", "topic")

    def __init__(self, topic: str, part: int, generation: int, rows: list[Row], last: int) -> None:
        self.topic = topic
        self.part = part
        self.generation = generation
        self.rows = rows  # emptied once every record is acked (the deliveries keep their own rows)
        self.last = last  # the highest position it covers
        self.state = bytearray(len(rows))  # PENDING, ACKED or NACKED per record
        self.left = len(rows)  # records not acked
        self.head = 0  # every record before it is acked
        self.live = True  # False once the partition is lost or given up: acks no longer count
        self.counts: dict[int, int] | None = None  # index -> its latest delivery's count, once redelivered

    def is_current(self, d: SQLiteDelivery) -> bool:
        """``d`` is its record's latest delivery, of a partition still held."""
        counts = self.counts
        return self.live and (counts is None or counts.get(d._i, d.delivery_count) == d.delivery_count)

    def acked_upto(self) -> int | None:
        """The highest position of the run's acked prefix (None: its first record is not acked);
        ``last`` once every record is acked."""
        if self.left == 0:
            return self.last
        state, h = self.state, self.head
        while state[h] == ACKED:  # stops: a record after head is not acked (left > 0)
            h += 1
        self.head = h
        return self.rows[h - 1][0] if h else None


class SQLiteDelivery(LazyDelivery):
    """A delivery of one row of a ``Run``: ``_i`` its index there."""

    __slots__ = ("_i", "_row", "_run")

    _owner: SQLiteSubscription

    def __init__(self, owner: SQLiteSubscription, run: Run, i: int, row: Row, count: int) -> None:
        # Not Delivery.__init__: no token, no Record until asked.
        self._rec = None
        self.delivery_count = count
        self._done = False
        self._owner = owner
        self._run = run
        self._i = i
        self._row = row

    def _make_record(self) -> Record:
        seq, id_, key, body, time_ms = self._row
        return Record(self._run.topic, str(seq), id_, key, body, time_ms)

    @property
    def body(self) -> bytes:
        return self._row[3]

    @property
    def id(self) -> str:
        return self._row[1]

    @property
    def key(self) -> str:
        return self._row[2]

    @property
    def position(self) -> str:
        return str(self._row[0])

    @property
    def topic(self) -> str:
        return self._run.topic


class HandOut:
    """The deliveries one call handed out, and when they lapse (monotonic)."""

    __slots__ = ("deliveries", "due", "scan")

    def __init__(self, due: float, deliveries: list[SQLiteDelivery]) -> None:
        self.due = due
        self.deliveries = deliveries
        self.scan = 0  # every delivery before it is settled (acked or nacked)

    def settled(self) -> bool:
        """Every delivery acked or nacked (scanning on from where the last look stopped)."""
        ds, k = self.deliveries, self.scan
        n = len(ds)
        while k < n and ds[k]._done:
            k += 1
        self.scan = k
        return k == n
