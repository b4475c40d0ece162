"""Consumer groups of the SQLite engine: partitions leased to live members.

A topic has ``partitions`` partitions (``crc32(key) % partitions``); each is
leased to one live member of a group at a time, so records with the same key
are handled in order and never by two members at once.  A lease lasts one
ack timeout and is renewed while the member lives; a member that is killed
or paused loses it, and the next owner resumes from the committed position
(at-least-once).  Commits are fenced by the lease generation, so a paused
member that wakes up cannot move a partition it lost.  Un-acked deliveries
are redelivered after the ack timeout, counted from when they were handed
out; ``nack(delay)`` schedules one sooner.  What is kept per fetched batch
and per hand-out (not per record) is described in ``flight.py``.

Leases use ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on
the machine, immune to wall-clock jumps) together with the kernel's boot id,
so a lease written before a reboot is treated as expired.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ...errors import LogClosed
from .._subscription import LockedSubscription, SubscribeArgs, SubState
from ..base import Delivery, Gap, Start, settle_others
from .flight import ACKED, NACKED, PENDING, HandOut, Row, Run, SQLiteDelivery

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
    order: deque[Run] = field(default_factory=deque)  # fetched runs not wholly acked, oldest first
    saved: int = 0  # the committed position last written
    releasing: bool = False  # handing it to another member once all is acked
    db_delivered: int = 0  # ``delivered`` as this member last saw it in the file (retention moves it)


# A fetch's findings for one partition: `delivered` in the file before it,
# the records, and the gap notices taken (after, upto, count).
_Fetched = tuple[int, list[Row], list[tuple[int, int, int]]]


_HANDOUTS = 64  # hand-outs kept before the settled ones are swept out
_ROW = attrgetter("_row")  # a delivery's row: sorting by it sorts by position


class SQLiteSubscription(LockedSubscription):
    """A member of a consumer group on one topic of a SQLiteLog."""

    ENGINE = "SQLite"

    def __init__(self, log: SQLiteLog, args: SubscribeArgs) -> None:
        self._init_subscription(args, args.consumer or f"c-{uuid.uuid4().hex[:12]}")
        self.log = log
        self.max_pending = max(4 * self.batch, 1024)
        self._parts: dict[int, _Part] = {}
        # Fetched, not handed out yet: _buf[_pos:], in position order across partitions.
        self._buf: list[SQLiteDelivery] = []
        self._pos = 0
        self._redo: deque[SQLiteDelivery] = deque()  # redeliveries waiting to be handed out
        self._out: deque[HandOut] = deque()  # hand-outs not wholly settled, oldest (first due) first
        self._out_limit = _HANDOUTS
        self._nacks: list[tuple[float, int, SQLiteDelivery]] = []  # (due, tiebreak, delivery) heap
        self._tick = itertools.count()
        self._unacked = 0  # fetched records not acked (the buffer's too)
        self._next_maintain = 0.0
        self._busy: set[int] = set()  # partitions that had records in the last fetch
        self._woken = False  # an append in this process woke the member: records likely wait
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
        """Forget a partition lost or given up: its deliveries' acks no longer count."""
        s = self._parts.pop(part, None)
        if s is None:
            return
        for run in s.order:
            run.live = False
            self._unacked -= run.left
        self._buf, self._pos = [d for d in self._buf[self._pos :] if d._run.live], 0
        self._redo = deque(d for d in self._redo if d._run.live)

    # -- delivery ------------------------------------------------------------
    async def _more_locked(self, out: list[Delivery], max: int) -> None:
        """Redeliveries due now, then what is already fetched (``next_batch``)."""
        now = time.monotonic()
        start = len(out)
        self._expire(now)
        while len(out) < max:
            d = self._pop_redo()
            if d is None:
                break
            out.append(d)
        pos = self._pos
        n = min(max - len(out), len(self._buf) - pos)
        if n > 0:
            out.extend(self._buf[pos : pos + n])
            self._pos = pos + n
        if len(out) > start:
            self._handed(HandOut(now + self.ack_timeout, cast("list[SQLiteDelivery]", out[start:])))

    def _take_one(self, now: float) -> SQLiteDelivery | None:
        """One delivery to hand out now (a redelivery first), its deadline started."""
        self._expire(now)
        d = self._pop_redo()
        if d is None:
            if self._pos >= len(self._buf):
                return None
            d = self._buf[self._pos]
            self._pos += 1
        self._handed(HandOut(now + self.ack_timeout, [d]))
        return d

    def _handed(self, h: HandOut) -> None:
        """Keep a hand-out until it is settled or lapses.  Settled ones behind one still
        out (a handler holding a record) are dropped whenever the list doubles, so what
        is kept follows what is un-acked, not the time the oldest delivery is held."""
        out = self._out
        out.append(h)
        if len(out) > self._out_limit:
            self._out = out = deque(x for x in out if not x.settled())
            self._out_limit = max(_HANDOUTS, 2 * len(out))

    def _pop_redo(self) -> SQLiteDelivery | None:
        """The next redelivery still wanted (not acked meanwhile through an older delivery)."""
        while self._redo:
            d = self._redo.popleft()
            run = d._run
            if run.state[d._i] == PENDING and run.is_current(d):
                return d
        return None

    def _expire(self, now: float) -> None:
        """Queue a new delivery for each record whose latest hand-out lapsed or whose nack is due."""
        nacks, out, redo = self._nacks, self._out, self._redo
        while nacks and nacks[0][0] <= now:
            d = heapq.heappop(nacks)[2]
            run = d._run
            if run.state[d._i] == NACKED and run.is_current(d):
                run.state[d._i] = PENDING
                redo.append(self._again(d))
        while out and out[0].due <= now:
            for d in out.popleft().deliveries:
                run = d._run
                if not d._done and run.state[d._i] == PENDING and run.is_current(d):
                    redo.append(self._again(d))

    def _again(self, d: SQLiteDelivery) -> SQLiteDelivery:
        run, i = d._run, d._i
        count = d.delivery_count + 1
        if run.counts is None:
            run.counts = {}
        run.counts[i] = count
        return SQLiteDelivery(self, run, i, d._row, count)

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Ack them all: bookkeeping only; commits are saved with the next fetch or heartbeat."""
        mine: list[SQLiteDelivery] = []
        others: list[Delivery] = []
        for d in deliveries:  # one pass: each marked done, and sorted by owner
            if d._done:
                continue
            d._done = True
            if d._owner is self:
                mine.append(d)  # type: ignore[arg-type]  # its owner is this member
            else:
                others.append(d)
        self._ack_records(mine)
        if others:
            await settle_others(others)

    async def _settle_acks(self, deliveries: Sequence[Delivery]) -> None:
        self._ack_records(cast("Sequence[SQLiteDelivery]", deliveries))

    def _ack_records(self, deliveries: Sequence[SQLiteDelivery]) -> None:
        """Set each record's byte to acked in its run."""
        n = 0
        for d in deliveries:
            run, i = d._run, d._i
            # A late ack of a partition lost meanwhile (not live) does nothing: its new owner redelivers.
            if run.live and run.state[i] != ACKED:
                run.state[i] = ACKED
                run.left -= 1
                n += 1
                if not run.left:  # kept until the runs before it are acked too: only its bounds
                    run.rows = []
        if n:
            self._acked(n)

    def _acked(self, n: int) -> None:
        """``n`` more records acked: move the committed positions, forget settled hand-outs."""
        self._unacked -= n
        for s in self._parts.values():  # the committed positions move over what is acked in order
            order = s.order
            while order:
                upto = order[0].acked_upto()
                if upto is not None:
                    s.committed = upto
                if order[0].left:
                    break
                order.popleft()
        out = self._out
        while out and out[0].settled():
            out.popleft()

    async def _settle_nack(self, delivery: Delivery, delay: float) -> None:
        d = cast(SQLiteDelivery, delivery)
        run = d._run
        if run.state[d._i] == PENDING and run.is_current(d):
            run.state[d._i] = NACKED
            heapq.heappush(self._nacks, (time.monotonic() + max(delay, 0.0), next(self._tick), d))

    async def _next_locked(self, timeout: float | None) -> Delivery:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.state is SubState.CLOSED or self.log._closed:
                raise LogClosed("subscription")
            now = time.monotonic()
            if now >= self._next_maintain or any(now >= s.lease_deadline for s in self._parts.values()):
                await self._maintain()
                now = time.monotonic()
            d = self._take_one(now)
            if d is not None:
                return d
            if self._unacked < self.max_pending:
                await self._fetch()
                d = self._take_one(time.monotonic())
                if d is not None:
                    return d
            wait = min(self._next_maintain - now, self.log.poll_interval)
            if self._out:
                wait = min(wait, self._out[0].due - now)
            if self._nacks:
                wait = min(wait, self._nacks[0][0] - now)
            wait = self._cut_to(deadline, now, wait, timeout)
            self._woken = await self.log._wait_for_append(self.topic, max(wait, 0.001))

    async def _fetch(self) -> None:
        """Fetch each held partition's next records, save how far deliveries went and the commits.

        When commits wait to be saved, the last fetch brought records or an
        append in this process woke the member, one write transaction saves
        the commits, reads the records, saves ``delivered`` and takes the gap
        notices.  Otherwise (polling for other processes' appends) the
        records are read with a reader connection first; when some came (or
        a gap notice waits), the write transaction first checks no retention
        pass ran in between (else it reads again), so retention -- also a
        write -- always sees exactly what members have fetched.
        """
        now = time.monotonic()
        want = {
            p: (s.cursor, s.generation)
            for p, s in self._parts.items()
            if not s.releasing and s.lease_deadline > now
        }
        dirty = {
            p: (s.generation, s.committed, s.cursor) for p, s in self._parts.items() if s.committed != s.saved
        }
        if not want and not dirty:
            return
        log, topic, group, me = self.log, self.topic, self.group, self.consumer
        # Split the batch over the partitions that had records last time, the others get an
        # even share (so a fetch brings at most two batches): records all under one key are
        # in one partition, which an even split over every held one left at 1/8 of a batch.
        even = max(self.batch // max(len(want), 1), 16)
        busy = self._busy & want.keys()
        share = max(self.batch // len(busy), 16) if busy else even
        limits = {p: share if p in busy else even for p in want}
        Seen = tuple[dict[int, _Fetched], int, bool]

        def save(conn: sqlite3.Connection) -> set[int]:
            """Save the commits that moved, fenced by the lease generation; the partitions lost."""
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

        def look(conn: sqlite3.Connection, seen: Seen | None, write: bool) -> Seen:
            t = log._lookup_topic(conn, topic)
            if t is None:
                return {}, 0, False
            trimmed = conn.execute("SELECT trimmed_upto FROM topics WHERE name = ?", (topic,)).fetchone()[0]
            reuse = seen is not None and seen[1] == trimmed  # no retention pass since the read
            # The partitions this member still holds (lease and generation), with `delivered`.
            held = {
                part: delivered
                for part, delivered, gen in conn.execute(
                    "SELECT part, delivered, generation FROM groups "
                    "WHERE topic = ? AND grp = ? AND owner = ?",
                    (topic, group, me),
                )
                if part in want and want[part][1] == gen
            }  # a partition missing lost its lease: the next heartbeat drops it
            notices: dict[int, list[tuple[int, int, int]]] = {}
            waiting = False
            marks = ",".join("?" * len(held))
            if not write:  # reading: is anything waiting for the writer?
                sql = f"SELECT 1 FROM gaps WHERE topic = ? AND grp = ? AND part IN ({marks}) LIMIT 1"
                waiting = bool(held) and conn.execute(sql, (topic, group, *held)).fetchone() is not None
            elif held:
                sql = (
                    f"DELETE FROM gaps WHERE topic = ? AND grp = ? AND part IN ({marks}) "
                    "RETURNING part, after, upto, count"
                )
                for part, after, upto, count in conn.execute(sql, (topic, group, *held)).fetchall():
                    notices.setdefault(part, []).append((after, upto, count))
            out: dict[int, _Fetched] = {}
            for part, delivered in held.items():
                if reuse and seen is not None and part in seen[0]:
                    rows = seen[0][part][1]
                else:
                    rows = conn.execute(
                        f"SELECT seq, id, key, body, time_ms FROM {t.table} "
                        "WHERE part = ? AND seq > ? ORDER BY seq LIMIT ?",
                        (part, max(want[part][0], trimmed), limits[part]),
                    ).fetchall()
                if write and rows:
                    conn.execute(
                        "UPDATE groups SET delivered = max(delivered, ?) "
                        "WHERE topic = ? AND grp = ? AND part = ?",
                        (rows[-1][0], topic, group, part),
                    )
                waiting = waiting or bool(rows)
                out[part] = (delivered, rows, notices.get(part, []))
            return out, trimmed, waiting

        lost: set[int] = set()
        woken, self._woken = self._woken, False
        if dirty or busy or woken:  # one write transaction: commits, records, delivered, notices
            lost, seen = await log._write(lambda conn: (save(conn), look(conn, None, True)))
        else:
            seen = await log._read(partial(look, seen=None, write=False))
            if seen[2]:
                seen = await log._write(partial(look, seen=seen, write=True))
        for part, (_, committed, _) in dirty.items():
            s = self._parts.get(part)
            if s is not None:
                s.saved = committed
        for part in lost:
            self._drop(part)
        self._take(want, *seen[:2])

    def _take(self, want: dict[int, tuple[int, int]], fetched: dict[int, _Fetched], trimmed: int) -> None:
        """A fetch's findings: gap notices reported, each partition's records made deliveries."""
        topic, group = self.topic, self.group
        self._busy = {part for part, (_, rows, _) in fetched.items() if rows}
        runs: list[list[SQLiteDelivery]] = []
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
                    s.order.append(Run(topic, part, s.generation, [], jump))
                else:
                    s.committed = max(s.committed, jump)
            s.db_delivered = max(db_delivered, rows[-1][0] if rows else 0)
            if rows and rows[0][0] <= s.cursor:
                rows = [r for r in rows if r[0] > s.cursor]
            if not rows:
                continue
            s.cursor = rows[-1][0]
            run = Run(topic, part, s.generation, rows, s.cursor)
            s.order.append(run)
            self._unacked += len(rows)
            prev = s.prev_delivered  # what the previous owner handed out comes a second time
            if rows[0][0] > prev:
                ds = [SQLiteDelivery(self, run, i, r, 1) for i, r in enumerate(rows)]
            else:
                ds = [SQLiteDelivery(self, run, i, r, 2 if r[0] <= prev else 1) for i, r in enumerate(rows)]
            runs.append(ds)
        if not runs:
            return
        # In position order across partitions (runs are each in order).
        new = runs[0] if len(runs) == 1 else sorted(itertools.chain(*runs), key=_ROW)
        if self._pos < len(self._buf):
            new = self._buf[self._pos :] + new
        self._buf, self._pos = new, 0

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
        for part in list(self._parts):
            self._drop(part)
        self._buf, self._pos = [], 0
        self._redo.clear()
        self._out.clear()
        self._nacks.clear()
