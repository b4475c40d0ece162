"""Consumer groups of the SQLite engine: partitions leased to live members.

A topic has ``partitions`` partitions (``crc32(key) % partitions``); each is
leased to one live member of a group at a time, so records with the same key
are handled in order and never by two members at once.  A lease lasts one
ack timeout and is renewed while the member lives; a member that is killed
or paused loses it, and the next owner resumes from the committed position
(at-least-once).  Commits are fenced by the lease generation, so a paused
member that wakes up cannot move a partition it lost.  Un-acked deliveries
are redelivered after the ack timeout; ``nack(delay)`` schedules one sooner.

Leases use ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on
the machine, immune to wall-clock jumps) together with the kernel's boot id,
so a lease written before a reboot is treated as expired.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import LogClosed
from .._subscription import LockedSubscription, SubscribeArgs, SubState
from ..base import Delivery, Gap, Record, Start, settle_others, unsettled

if TYPE_CHECKING:
    from .engine import SQLiteLog

__all__ = ["BOOT", "SQLiteSubscription"]

logger = logging.getLogger(__name__)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: leases then only hold within one boot by luck
        return "unknown"


BOOT = _boot_id()


@dataclass(slots=True)
class _Part:
    """A partition this member holds."""

    generation: int
    cursor: int  # highest seq fetched
    prev_delivered: int  # the previous owner's high-water mark (for delivery counts)
    lease_deadline: float  # monotonic; renew before it, deliver nothing after it
    committed: int = 0
    order: deque[int] = field(default_factory=deque)  # fetched, un-acked seqs, oldest first
    acked: set[int] = field(default_factory=set)  # acked out of order, above `committed`
    saved: int = 0  # the committed position last written
    releasing: bool = False  # handing it to another member once all is acked
    db_delivered: int = 0  # ``delivered`` as this member last saw it in the file (retention moves it)


# A fetch's findings for one partition: `delivered` in the file before it,
# the records, and the gap notices taken (after, upto, count).
_Fetched = tuple[int, list[tuple[int, str, str, bytes, int]], list[tuple[int, int, int]]]


@dataclass(slots=True)
class _Flight:
    """A delivery waiting for its ack (its deliveries' token)."""

    seq: int
    part: int
    record: Record
    count: int
    due: float  # monotonic time to deliver it again
    generation: int


class SQLiteSubscription(LockedSubscription):
    """A member of a consumer group on one topic of a SQLiteLog."""

    ENGINE = "SQLite"

    def __init__(self, log: SQLiteLog, args: SubscribeArgs) -> None:
        self._init_subscription(args, args.consumer or f"c-{uuid.uuid4().hex[:12]}")
        self.log = log
        self.max_pending = max(4 * self.batch, 1024)
        self._parts: dict[int, _Part] = {}
        self._buffer: deque[tuple[int, Delivery]] = deque()
        # Insertion-ordered, so the first entry is the oldest un-acked delivery.
        self._inflight: dict[int, _Flight] = {}
        self._nacks: list[tuple[float, int]] = []  # (due, seq) heap of nacked deliveries
        self._next_maintain = 0.0
        self._busy: set[int] = set()  # partitions that had records in the last fetch
        self._lock = asyncio.Lock()

    # -- membership ----------------------------------------------------------
    async def _enter(self) -> None:
        self.log._check_open()
        self.log._subs.add(self)
        topic, group, start = self.topic, self.group, self.start
        log = self.log

        def job(conn: sqlite3.Connection) -> None:
            t = log._lookup_topic(conn, topic) or log._create_topic(conn, topic)
            exists = conn.execute(
                "SELECT 1 FROM groups WHERE topic = ? AND grp = ? LIMIT 1", (topic, group)
            ).fetchone()
            if not exists:
                begin = 0
                if start is Start.LATEST:
                    begin = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {t.table}").fetchone()[0]
                conn.executemany(
                    "INSERT OR IGNORE INTO groups (topic, grp, part, committed, delivered) "
                    "VALUES (?,?,?,?,?)",
                    [(topic, group, p, begin, begin) for p in range(t.partitions)],
                )

        await log._write(job)
        self.state = SubState.OPEN
        await self._maintain()

    async def _maintain(self) -> None:
        """Heartbeat, renew leases, share partitions out fairly, save commits."""
        now = time.monotonic()
        until = now + self.ack_timeout
        topic, group, me = self.topic, self.group, self.consumer
        snapshot = {
            p: (s.generation, s.releasing and not s.order, s.committed, s.cursor)
            for p, s in self._parts.items()
        }

        def job(conn: sqlite3.Connection) -> tuple[dict[int, tuple[int, int, int]], set[int], int]:
            conn.execute(
                "INSERT OR REPLACE INTO members (topic, grp, consumer, until, boot) VALUES (?,?,?,?,?)",
                (topic, group, me, until, BOOT),
            )
            conn.execute(
                "DELETE FROM members WHERE topic = ? AND grp = ? AND (until < ? OR boot != ?)",
                (topic, group, now, BOOT),
            )
            lost: set[int] = set()
            released = 0
            for part, (gen, release, committed, cursor) in snapshot.items():
                if release:
                    sql = "owner = NULL, lease_until = NULL"
                    args: tuple[Any, ...] = ()
                    released += 1
                else:
                    sql = "lease_until = ?, boot = ?"
                    args = (until, BOOT)
                cur = conn.execute(
                    f"UPDATE groups SET {sql}, committed = max(committed, ?), delivered = max(delivered, ?) "
                    "WHERE topic = ? AND grp = ? AND part = ? AND owner = ? AND generation = ?",
                    (*args, committed, cursor, topic, group, part, me, gen),
                )
                if cur.rowcount == 0:
                    lost.add(part)
            members = conn.execute(
                "SELECT count(*) FROM members WHERE topic = ? AND grp = ?", (topic, group)
            ).fetchone()[0]
            rows = conn.execute(
                "SELECT part, owner, lease_until, boot FROM groups WHERE topic = ? AND grp = ? ORDER BY part",
                (topic, group),
            ).fetchall()
            target = math.ceil(len(rows) / max(members, 1))
            held = len(snapshot) - len(lost) - released
            gained: dict[int, tuple[int, int, int]] = {}
            for part, owner, lease_until, boot in rows:
                if held >= target:
                    break
                if part in snapshot:
                    continue
                free = owner is None or boot != BOOT or (lease_until is not None and lease_until < now)
                if not free:
                    continue
                gen, committed, delivered = conn.execute(
                    "UPDATE groups SET owner = ?, lease_until = ?, boot = ?, generation = generation + 1 "
                    "WHERE topic = ? AND grp = ? AND part = ? RETURNING generation, committed, delivered",
                    (me, until, BOOT, topic, group, part),
                ).fetchone()
                gained[part] = (gen, committed, delivered)
                held += 1
            return gained, lost, target

        gained, lost, target = await self.log._write(job)
        for part, (_, release, committed, _) in snapshot.items():
            s = self._parts.get(part)
            if s is None:
                continue
            if part in lost or release:
                self._drop(part)
            else:
                s.lease_deadline = until
                s.saved = committed
        for part, (gen, committed, delivered) in gained.items():
            self._parts[part] = _Part(
                gen, committed, delivered, until, committed=committed, saved=committed, db_delivered=delivered
            )
        # Too many partitions (a member joined): give back the highest ones once
        # their deliveries are acked, so per-key order survives the handover.
        active = sorted(p for p, s in self._parts.items() if not s.releasing)
        for part in active[target:]:
            self._parts[part].releasing = True
        self._next_maintain = time.monotonic() + min(self.ack_timeout / 3, 1.0)

    def _drop(self, part: int) -> None:
        self._parts.pop(part, None)
        self._buffer = deque((p, d) for p, d in self._buffer if p != part)
        for seq in [seq for seq, f in self._inflight.items() if f.part == part]:
            del self._inflight[seq]

    async def _flush(self) -> None:
        """Save committed positions that moved, fenced by the lease generation."""
        dirty = {
            p: (s.generation, s.committed, s.cursor) for p, s in self._parts.items() if s.committed != s.saved
        }
        if not dirty:
            return
        topic, group, me = self.topic, self.group, self.consumer

        def job(conn: sqlite3.Connection) -> set[int]:
            lost = set()
            for part, (gen, committed, cursor) in dirty.items():
                cur = conn.execute(
                    "UPDATE groups SET committed = max(committed, ?), delivered = max(delivered, ?) "
                    "WHERE topic = ? AND grp = ? AND part = ? AND owner = ? AND generation = ?",
                    (committed, cursor, topic, group, part, me, gen),
                )
                if cur.rowcount == 0:
                    lost.add(part)
            return lost

        lost = await self.log._write(job)
        for part, (_, committed, _) in dirty.items():
            s = self._parts.get(part)
            if s is not None:
                s.saved = committed
        for part in lost:
            self._drop(part)

    # -- delivery ------------------------------------------------------------
    async def _more_locked(self, out: list[Delivery], max: int) -> None:
        """Redeliveries due now, then what is already fetched (``next_batch``)."""
        now = time.monotonic()
        while len(out) < max:
            d = self._due(now)
            if d is None:
                break
            out.append(d)
        buffer = self._buffer
        n = min(max - len(out), len(buffer))
        if n > 0:
            popleft = buffer.popleft
            out.extend([popleft()[1] for _ in range(n)])

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Ack them all: bookkeeping only; commits are saved with the next fetch or heartbeat."""
        mine, others = unsettled(self, deliveries)
        for d in mine:
            self._ack(d._token)
        if others:
            await settle_others(others)

    async def _settle_acks(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            self._ack(d._token)

    async def _settle_nack(self, delivery: Delivery, delay: float) -> None:
        f: _Flight = delivery._token
        flight = self._inflight.get(f.seq)
        if flight is f:
            f.due = time.monotonic() + max(delay, 0.0)
            heapq.heappush(self._nacks, (f.due, f.seq))

    async def _next_locked(self, timeout: float | None) -> Delivery:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.state is SubState.CLOSED or self.log._closed:
                raise LogClosed("subscription")
            now = time.monotonic()
            if now >= self._next_maintain or any(now >= s.lease_deadline for s in self._parts.values()):
                await self._maintain()
                now = time.monotonic()
            d = self._due(now)
            if d is not None:
                return d
            if self._buffer:
                return self._buffer.popleft()[1]
            if len(self._inflight) < self.max_pending:
                await self._flush()
                await self._fetch()
                if self._buffer:
                    return self._buffer.popleft()[1]
            wait = min(self._next_maintain - now, self.log.poll_interval)
            if self._inflight:
                wait = min(wait, next(iter(self._inflight.values())).due - now)
            if self._nacks:
                wait = min(wait, self._nacks[0][0] - now)
            wait = self._cut_to(deadline, now, wait, timeout)
            await self.log._wait_for_append(self.topic, max(wait, 0.001))

    def _due(self, now: float) -> Delivery | None:
        """An un-acked delivery whose time has come again, if any."""
        while self._nacks and self._nacks[0][0] <= now:
            due, seq = heapq.heappop(self._nacks)
            f = self._inflight.get(seq)
            if f is not None and f.due == due:
                return self._redeliver(seq, f)
        if self._inflight:
            seq, f = next(iter(self._inflight.items()))
            if f.due <= now:
                return self._redeliver(seq, f)
        return None

    def _redeliver(self, seq: int, f: _Flight) -> Delivery:
        del self._inflight[seq]  # re-inserted at the end: the dict stays oldest-first
        f.count += 1
        f.due = time.monotonic() + self.ack_timeout
        self._inflight[seq] = f
        return self._delivery(seq, f)

    def _delivery(self, seq: int, f: _Flight) -> Delivery:
        return Delivery(f.record, f.count, owner=self, token=f)

    def _ack(self, f: _Flight) -> None:
        seq = f.seq
        s = self._parts.get(f.part)
        if s is None or self._inflight.get(seq) is not f or s.generation != f.generation:
            return  # a late ack for a partition we lost: its new owner redelivers
        del self._inflight[seq]
        s.acked.add(seq)
        while s.order and s.order[0] in s.acked:
            head = s.order.popleft()
            s.acked.discard(head)
            s.committed = head

    async def _fetch(self) -> None:
        """Fetch each held partition's next records and save how far deliveries went.

        Records are read with a reader connection; when some came (or a gap
        notice waits), ``delivered`` is saved and the notices taken in one
        write transaction that first checks no retention pass ran in between
        (else it reads again, in the writer), so retention -- also a write --
        always sees exactly what members have fetched.
        """
        now = time.monotonic()
        want = {
            p: (s.cursor, s.generation)
            for p, s in self._parts.items()
            if not s.releasing and s.lease_deadline > now
        }
        if not want:
            return
        log, topic, group, me = self.log, self.topic, self.group, self.consumer
        # Split the batch over the partitions that had records last time, the others get an
        # even share (so a fetch brings at most two batches, whose ack deadlines start now):
        # records all under one key are in one partition, which an even split over every
        # held one left at 1/8 of a batch per fetch.
        even = max(self.batch // len(want), 16)
        busy = self._busy & want.keys()
        share = max(self.batch // len(busy), 16) if busy else even
        limits = {p: share if p in busy else even for p in want}
        Seen = tuple[dict[int, _Fetched], int, bool]

        def look(conn: sqlite3.Connection, seen: Seen | None) -> Seen:
            t = log._lookup_topic(conn, topic)
            if t is None:
                return {}, 0, False
            trimmed = conn.execute("SELECT trimmed_upto FROM topics WHERE name = ?", (topic,)).fetchone()[0]
            reuse = seen is not None and seen[1] == trimmed  # no retention pass since the read
            out: dict[int, _Fetched] = {}
            waiting = False
            for part, (cursor, gen) in want.items():
                row = conn.execute(
                    "SELECT delivered FROM groups "
                    "WHERE topic = ? AND grp = ? AND part = ? AND owner = ? AND generation = ?",
                    (topic, group, part, me, gen),
                ).fetchone()
                if row is None:
                    continue  # lost the lease: the next heartbeat drops it
                if reuse and seen is not None and part in seen[0]:
                    rows = seen[0][part][1]
                else:
                    rows = conn.execute(
                        f"SELECT seq, id, key, body, time_ms FROM {t.table} "
                        "WHERE part = ? AND seq > ? ORDER BY seq LIMIT ?",
                        (part, max(cursor, trimmed), limits[part]),
                    ).fetchall()
                notices: list[tuple[int, int, int]] = []
                if seen is None:  # reading: is anything waiting for the writer?
                    sql = "SELECT 1 FROM gaps WHERE topic = ? AND grp = ? AND part = ? LIMIT 1"
                    waiting = waiting or bool(rows) or conn.execute(sql, (topic, group, part)).fetchone()
                else:
                    if rows:
                        conn.execute(
                            "UPDATE groups SET delivered = max(delivered, ?) "
                            "WHERE topic = ? AND grp = ? AND part = ?",
                            (rows[-1][0], topic, group, part),
                        )
                    notices = conn.execute(
                        "DELETE FROM gaps WHERE topic = ? AND grp = ? AND part = ? "
                        "RETURNING after, upto, count",
                        (topic, group, part),
                    ).fetchall()
                out[part] = (row[0], rows, notices)
            return out, trimmed, waiting

        seen = await log._read(partial(look, seen=None))
        if seen[2]:
            seen = await log._write(partial(look, seen=seen))
        fetched, trimmed, _ = seen
        self._busy = {part for part, (_, rows, _) in fetched.items() if rows}
        due = time.monotonic() + self.ack_timeout
        batch: list[tuple[int, int, str, str, bytes, int]] = []
        for part, (db_delivered, rows, notices) in fetched.items():
            s = self._parts.get(part)
            if s is None or s.generation != want[part][1]:
                continue
            for after, upto, count in sorted(notices, key=lambda n: int(n[1])):
                gap = Gap(topic, group, part, str(after) if after else None, str(upto), int(count))
                self._report_gap(gap)
            # What retention removed after this member's cursor is counted in
            # a notice, except records a member that died held un-acked
            # (up to the `delivered` it left): report their range, uncounted.
            lost_upto = min(s.prev_delivered, trimmed)
            if lost_upto > s.cursor:
                after_pos = str(s.cursor) if s.cursor else None
                self._report_gap(Gap(topic, group, part, after_pos, str(lost_upto), None))
            # Retention moved `delivered` past the cursor: resume after it.
            jump = max(trimmed, db_delivered if db_delivered > s.db_delivered else 0)
            if jump > s.cursor:
                s.cursor = jump
                if s.order:  # committed catches up once what is in flight is acked
                    s.order.append(jump)
                    s.acked.add(jump)
                else:
                    s.committed = max(s.committed, jump)
            s.db_delivered = max(db_delivered, rows[-1][0] if rows else 0)
            batch.extend((part, *r) for r in rows)
        batch.sort(key=lambda r: r[1])
        for part, seq, id_, key, body, time_ms in batch:
            s = self._parts.get(part)
            if s is None or seq <= s.cursor:
                continue
            s.cursor = seq
            s.order.append(seq)
            f = _Flight(
                seq,
                part,
                Record(topic, str(seq), id_, key, body, time_ms),
                2 if seq <= s.prev_delivered else 1,
                due,
                s.generation,
            )
            self._inflight[seq] = f
            self._buffer.append((part, self._delivery(seq, f)))

    async def _close(self) -> None:
        if self.state is SubState.CLOSED:
            return
        joined, self.state = self.state is SubState.OPEN, SubState.CLOSED
        self.log._subs.discard(self)
        if not joined or self.log._writer is None or self.log._closed:
            return
        topic, group, me = self.topic, self.group, self.consumer
        parts = {p: (s.generation, s.committed, s.cursor) for p, s in self._parts.items()}

        def job(conn: sqlite3.Connection) -> None:
            for part, (gen, committed, cursor) in parts.items():
                # Un-acked deliveries stay after `committed`: the next owner gets them.
                conn.execute(
                    "UPDATE groups SET owner = NULL, lease_until = NULL, committed = max(committed, ?), "
                    "delivered = max(delivered, ?) "
                    "WHERE topic = ? AND grp = ? AND part = ? AND owner = ? AND generation = ?",
                    (committed, cursor, topic, group, part, me, gen),
                )
            conn.execute(
                "DELETE FROM members WHERE topic = ? AND grp = ? AND consumer = ?", (topic, group, me)
            )

        try:
            await self.log._write(job)
        except Exception:  # leaving is best effort: leases expire anyway
            logger.exception("could not leave group %s cleanly", group)
        self._parts.clear()
        self._buffer.clear()
        self._inflight.clear()
