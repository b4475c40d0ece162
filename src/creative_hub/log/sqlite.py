"""Embedded engine: the whole log in one SQLite file (WAL), no server.

Layout:

* ``topics`` -- one row per topic: its events table, partition count,
  retention, and ``trimmed_upto`` (the highest position retention removed,
  so a read from before it raises PositionGone instead of skipping).
* ``ev_<n>`` -- one events table per topic.  ``seq`` (AUTOINCREMENT, never
  reused) is the position; ``id`` is UNIQUE, which is the dedup; ``part`` is
  ``crc32(key) % partitions``, indexed, so a group member reads its partitions
  in seq order.
* ``groups`` -- one row per (topic, group, partition): the committed position
  (every record up to it is acked), the lease (owner, until, generation).
* ``members`` -- group members seen alive, for sharing out partitions.

Consumer groups work like Kafka's: a topic has ``partitions`` (default 8)
partitions, each leased to one live member at a time, so records with the
same key are handled in order and never by two members at once.  A lease
lasts one ack timeout and is renewed while the member lives; a member that is
killed or paused loses it, and the next owner resumes from the committed
position (at-least-once).  Commits are fenced by the lease generation, so a
paused member that wakes up cannot move a partition it lost.

Leases use ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on
the machine, immune to wall-clock jumps) together with the kernel's boot id,
so a lease written before a reboot is treated as expired.

One writer thread per process owns the write connection and runs each batch
of queued jobs in one ``BEGIN IMMEDIATE`` transaction (a savepoint per job,
so one failed job does not fail the others).  Readers use their own
connections in a small thread pool.  Several processes may share the file:
SQLite's locking serialises their writers, and subscribers notice other
processes' appends by polling (``poll_interval``, default 50 ms); appends in
the same process wake them at once.

Durability: ``synchronous=NORMAL`` by default -- in WAL mode a committed
append survives a crash of any process, but the last transactions can roll
back on power loss.  ``?synchronous=full`` makes every acked append survive
power loss too, at several times the cost per transaction.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
import queue
import sqlite3
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from ..errors import EngineUnavailable, IdConflict, LogClosed, NotFound, PositionGone, ValidationError
from .base import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_BATCH,
    Appended,
    Delivery,
    Entry,
    GroupLag,
    Health,
    Record,
    Retention,
    Start,
    TopicInfo,
    check_topic,
)

__all__ = ["SQLiteLog"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PARTITIONS = 8
DEFAULT_POLL_INTERVAL = 0.05  # seconds between looks for other processes' appends
BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another process's write lock
MAX_JOBS_PER_TRANSACTION = 64  # queued writes committed together
RETENTION_EVERY = 1.0  # seconds between automatic retention passes per topic
_CHUNK = 500  # ids per "IN (...)" lookup, under SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    max_age REAL, max_count INTEGER, max_bytes INTEGER,
    trimmed_upto INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    topic TEXT NOT NULL, grp TEXT NOT NULL, part INTEGER NOT NULL,
    committed INTEGER NOT NULL, delivered INTEGER NOT NULL,
    owner TEXT, lease_until REAL, boot TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, grp, part)
);
CREATE TABLE IF NOT EXISTS members (
    topic TEXT NOT NULL, grp TEXT NOT NULL, consumer TEXT NOT NULL,
    until REAL NOT NULL, boot TEXT NOT NULL,
    PRIMARY KEY (topic, grp, consumer)
);
"""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: leases then only hold within one boot by luck
        return "unknown"


BOOT = _boot_id()


def _partition(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def _parse_position(position: str | None, name: str = "after") -> int:
    if position is None or position == "":
        return 0
    try:
        value = int(position)
    except (TypeError, ValueError):
        raise ValidationError(name, f"{position!r} is not a position of this log (a whole number)") from None
    if value < 0:
        raise ValidationError(name, f"position must be >= 0, got {value}")
    return value


@dataclass(slots=True)
class _Topic:
    name: str
    table: str
    partitions: int


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


class _Writer(threading.Thread):
    """The one thread that writes; commits queued jobs together."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(name="creative-hub-sqlite-writer", daemon=True)
        self._connect = connect
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.ready: Future[None] = Future()

    def run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as e:  # surfaced to open()
            self.ready.set_exception(e)
            return
        self.ready.set_result(None)
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < MAX_JOBS_PER_TRANSACTION:
                    try:
                        more = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._run_batch(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """Run jobs in one transaction; if one fails, run each in its own.

        No savepoints on the happy path: SQLite journals every page a
        savepoint could roll back, which costs a third of an insert.  Jobs
        must therefore be safe to run again (they read, then write).
        """
        if len(batch) > 1:
            try:
                conn.execute("BEGIN IMMEDIATE")
                results = [job.fn(conn) for job in batch]
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
            else:
                for job, value in zip(batch, results, strict=True):
                    job.future.set_result(value)
                return
        for job in batch:
            try:
                conn.execute("BEGIN IMMEDIATE")
                value = job.fn(conn)
                conn.execute("COMMIT")
            except BaseException as e:
                # Nothing of this job is stored: never ack an unpersisted event.
                _rollback(conn)
                job.future.set_exception(e)
            else:
                job.future.set_result(value)


def _fetchall(conn: sqlite3.Connection, *, sql: str, args: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, args).fetchall()


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            logger.exception("rollback failed")


class SQLiteLog:
    """The embedded engine.

    SQLiteLog("hub.db")                                  # or open_log("sqlite:///hub.db")
    SQLiteLog("/var/hub/hub.db", partitions=16, synchronous="FULL")
    """

    engine = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        partitions: int = DEFAULT_PARTITIONS,
        synchronous: str = "NORMAL",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        if partitions < 1:
            raise ValidationError("partitions", f"must be >= 1, got {partitions}")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValidationError("synchronous", f"must be NORMAL, FULL, EXTRA or OFF, got {synchronous!r}")
        self.path = Path(path)
        self.url = f"sqlite:///{path}"
        self.partitions = partitions
        self.synchronous = synchronous.upper()
        self.poll_interval = poll_interval
        self._writer: _Writer | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._topics: dict[str, _Topic] = {}
        self._topics_lock = threading.Lock()
        self._wakeups: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[_SQLiteSubscription] = set()
        self._retention_due: dict[str, float] = {}
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteLog:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``, options in the query."""
        parts = urlsplit(url)
        if parts.netloc:
            raise ValidationError("url", f"{url!r}: use sqlite:///relative.db or sqlite:////absolute.db")
        path = url[len("sqlite:///") :].split("?", 1)[0] if url.startswith("sqlite:///") else ""
        if not path:
            raise ValidationError("url", f"{url!r}: no file path; use sqlite:///hub.db")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        kwargs: dict[str, Any] = {}
        if "partitions" in query:
            kwargs["partitions"] = int(query["partitions"])
        if "synchronous" in query:
            kwargs["synchronous"] = query["synchronous"]
        if "poll_interval" in query:
            kwargs["poll_interval"] = float(query["poll_interval"])
        kwargs.update(options)
        return cls(path, **kwargs)

    def __repr__(self) -> str:
        return (
            f"SQLiteLog({str(self.path)!r}, partitions={self.partitions}, synchronous={self.synchronous!r})"
        )

    # -- connections -------------------------------------------------------
    def _connect(self, *, write: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if write:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            if not write:
                conn.execute("PRAGMA query_only=1")
        except sqlite3.Error as e:
            raise EngineUnavailable(self.url, f"cannot open the SQLite file: {e}") from e
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(write=False)
            self._local.conn = conn
            self._reader_conns.append(conn)
        return conn

    async def open(self) -> None:
        if self._closed:
            raise LogClosed("sqlite log")
        if self._writer is not None:
            return
        self._loop = asyncio.get_running_loop()
        if self.path.parent and not self.path.parent.exists():
            raise EngineUnavailable(self.url, f"directory {self.path.parent} does not exist")
        writer = _Writer(lambda: self._connect(write=True))
        writer.start()
        try:
            await asyncio.wrap_future(writer.ready)
        except EngineUnavailable:
            raise
        except Exception as e:
            raise EngineUnavailable(self.url, str(e)) from e
        self._writer = writer
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="creative-hub-sqlite-reader")

    async def close(self) -> None:
        if self._closed:
            return
        for sub in list(self._subs):
            await sub.close()
        self._closed = True
        if self._writer is not None:
            self._writer.jobs.put(None)
            await asyncio.to_thread(self._writer.join)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        for conn in self._reader_conns:
            conn.close()
        self._reader_conns.clear()
        for ev in self._wakeups.values():
            ev.set()

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosed("sqlite log")
        if self._writer is None:
            raise LogClosed("sqlite log (not opened: await log.open() first)")

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        assert self._writer is not None
        future: Future[T] = Future()
        self._writer.jobs.put(_Job(fn, future))
        try:
            return await asyncio.wrap_future(future)
        except sqlite3.Error as e:
            raise EngineUnavailable(self.url, f"write failed: {e}") from e

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        assert self._readers is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))
        except sqlite3.Error as e:
            raise EngineUnavailable(self.url, f"read failed: {e}") from e

    # -- topics ------------------------------------------------------------
    def _lookup_topic(self, conn: sqlite3.Connection, name: str) -> _Topic | None:
        with self._topics_lock:
            t = self._topics.get(name)
        if t is not None:
            return t
        row = conn.execute("SELECT id, partitions FROM topics WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        t = _Topic(name, f"ev_{row[0]}", row[1])
        with self._topics_lock:
            self._topics[name] = t
        return t

    def _create_topic(self, conn: sqlite3.Connection, name: str) -> _Topic:
        t = self._lookup_topic(conn, name)
        if t is not None:
            return t
        cur = conn.execute(
            "INSERT INTO topics (name, partitions, created_ms) VALUES (?, ?, ?)",
            (name, self.partitions, int(time.time() * 1000)),
        )
        table = f"ev_{cur.lastrowid}"
        conn.execute(
            f"CREATE TABLE {table} (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
            "part INTEGER NOT NULL, key TEXT NOT NULL, creator TEXT NOT NULL, digest TEXT NOT NULL, "
            "time_ms INTEGER NOT NULL, body BLOB NOT NULL)"
        )
        conn.execute(f"CREATE INDEX {table}_part ON {table} (part)")
        # Cached only once the transaction commits (see append); a rolled-back
        # create must not leave a cache entry pointing at nothing.
        return _Topic(name, table, self.partitions)

    # -- append ------------------------------------------------------------
    async def append(self, topic: str, entries: Sequence[Entry]) -> list[Appended]:
        check_topic(topic)
        self._check_open()
        if not entries:
            return []
        entries = list(entries)
        created: list[_Topic] = []

        def job(conn: sqlite3.Connection) -> list[Appended]:
            t = self._lookup_topic(conn, topic)
            if t is None:
                t = self._create_topic(conn, topic)
                created.append(t)
            return self._append_rows(conn, t, entries)

        result = await self._write(job)
        for t in created:
            with self._topics_lock:
                self._topics[t.name] = t
        self._wake(topic)
        if self._retention_due.get(topic, math.inf) <= time.monotonic():
            await self.apply_retention(topic)
        return result

    def _append_rows(self, conn: sqlite3.Connection, t: _Topic, entries: list[Entry]) -> list[Appended]:
        table = t.table
        row = conn.execute(f"SELECT seq, time_ms FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
        before = row[0] if row else 0
        # Stored times never go backwards, even if the wall clock does, so
        # time-based reads can rely on seq order (as Redis stream ids do).
        now_ms = max(int(time.time() * 1000), row[1] if row else 0)
        parts = t.partitions
        sql = f"INSERT INTO {table} (id, part, key, creator, digest, time_ms, body) VALUES (?,?,?,?,?,?,?)"
        # Fast path: no id seen before, so one executemany does it.  On a
        # UNIQUE violation the rows inserted so far are removed again (each row
        # is its own statement) and the careful path dedups.
        try:
            conn.executemany(
                sql,
                [
                    (e.id, _partition(e.key, parts), e.key, e.creator, e.digest, now_ms, e.body)
                    for e in entries
                ],
            )
        except sqlite3.IntegrityError:
            conn.execute(f"DELETE FROM {table} WHERE seq > ?", (before,))
            return self._append_careful(conn, t, entries, now_ms)
        # One writer holds the write lock and AUTOINCREMENT only goes up,
        # so the rows just inserted have consecutive seqs.
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        first = last - len(entries) + 1
        return [Appended(str(first + i)) for i in range(len(entries))]

    def _append_careful(
        self, conn: sqlite3.Connection, t: _Topic, entries: list[Entry], now_ms: int
    ) -> list[Appended]:
        """Append a batch with ids seen before: dedup, or refuse a conflict."""
        table = t.table
        ids = [e.id for e in entries]
        known: dict[str, tuple[int, str]] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for id_, seq, digest in conn.execute(
                f"SELECT id, seq, digest FROM {table} WHERE id IN ({marks})", chunk
            ):
                known[id_] = (seq, digest)
        rows: list[tuple[str, int, str, str, str, int, bytes]] = []
        batch_ids: dict[str, tuple[int, str]] = {}  # id -> (index in rows, digest)
        plan: list[tuple[bool, int]] = []  # (duplicate?, seq or row index)
        parts = t.partitions
        for e in entries:
            old = known.get(e.id)
            if old is not None:
                if old[1] != e.digest:
                    raise IdConflict(t.name, e.id)
                plan.append((True, old[0]))
                continue
            mine = batch_ids.get(e.id)
            if mine is not None:
                if mine[1] != e.digest:
                    raise IdConflict(t.name, e.id)
                plan.append((True, -1 - mine[0]))
                continue
            batch_ids[e.id] = (len(rows), e.digest)
            plan.append((False, len(rows)))
            rows.append((e.id, _partition(e.key, parts), e.key, e.creator, e.digest, now_ms, e.body))
        first = 0
        if rows:
            conn.executemany(
                f"INSERT INTO {table} (id, part, key, creator, digest, time_ms, body) VALUES (?,?,?,?,?,?,?)",
                rows,
            )
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            first = last - len(rows) + 1
        out: list[Appended] = []
        for dup, n in plan:
            if not dup:
                out.append(Appended(str(first + n)))
            elif n >= 0:
                out.append(Appended(str(n), duplicate=True))
            else:
                out.append(Appended(str(first + (-1 - n)), duplicate=True))
        return out

    def _wake(self, topic: str) -> None:
        ev = self._wakeups.pop(topic, None)
        if ev is not None:
            ev.set()

    async def _wait_for_append(self, topic: str, timeout: float) -> None:
        ev = self._wakeups.get(topic)
        if ev is None:
            ev = self._wakeups[topic] = asyncio.Event()
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except TimeoutError:
            pass

    # -- read --------------------------------------------------------------
    @staticmethod
    def _seq_at_time(conn: sqlite3.Connection, table: str, time_ms: int) -> int:
        """The position just before the first record stored at or after ``time_ms``.

        Stored times never decrease along seq, so "the first record at or after
        seq x is late enough" is monotone in x: binary search for the least x.
        """
        lo, hi = conn.execute(f"SELECT min(seq), max(seq) FROM {table}").fetchone()
        if lo is None:
            return 0
        hi += 1  # past the end: nothing there, so the predicate holds
        while lo < hi:
            mid = (lo + hi) // 2
            row = conn.execute(f"SELECT time_ms FROM {table} WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,))
            if row.fetchone()[0] >= time_ms:
                hi = mid
            else:
                lo = mid + 1
        return int(lo) - 1

    async def read(
        self,
        topic: str,
        *,
        after: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[Record]:
        check_topic(topic)
        cursor = _parse_position(after)
        self._check_open()
        remaining = limit if limit is not None else math.inf
        if remaining <= 0:
            return

        def start(conn: sqlite3.Connection) -> tuple[_Topic | None, int]:
            t = self._lookup_topic(conn, topic)
            if t is None:
                return None, cursor
            trimmed = conn.execute("SELECT trimmed_upto FROM topics WHERE name = ?", (topic,)).fetchone()[0]
            if after is not None and cursor < trimmed:
                first = conn.execute(f"SELECT min(seq) FROM {t.table}").fetchone()[0]
                raise PositionGone(topic, str(cursor), str(first) if first is not None else None)
            c = cursor
            if since is not None:
                c = max(c, self._seq_at_time(conn, t.table, int(since * 1000)))
            return t, c

        t, cursor = await self._read(start)
        while True:
            if t is None:
                if not follow:
                    return
                await self._wait_for_append(topic, self.poll_interval)
                t = await self._read(lambda conn: self._lookup_topic(conn, topic))
                continue
            sql = f"SELECT seq, id, key, body, time_ms FROM {t.table} WHERE seq > ? ORDER BY seq LIMIT ?"
            n = int(min(remaining, DEFAULT_BATCH))
            args = (cursor, n)
            rows = await self._read(partial(_fetchall, sql=sql, args=args))
            for seq, id_, key, body, time_ms in rows:
                yield Record(topic, str(seq), id_, key, body, time_ms)
                cursor = seq
                remaining -= 1
                if remaining <= 0:
                    return
            if len(rows) < n:
                if not follow:
                    return
                await self._wait_for_append(topic, self.poll_interval)
                if self._closed:
                    return

    # -- subscribe ---------------------------------------------------------
    def subscribe(
        self,
        topic: str,
        group: str,
        *,
        consumer: str | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        start: Start = Start.EARLIEST,
        batch: int = DEFAULT_BATCH,
    ) -> _SQLiteSubscription:
        check_topic(topic)
        if not group:
            raise ValidationError("group", "a consumer group name is required")
        if ack_timeout <= 0:
            raise ValidationError("ack_timeout", f"must be > 0 seconds, got {ack_timeout}")
        return _SQLiteSubscription(
            self, topic, group, consumer or f"c-{uuid.uuid4().hex[:12]}", ack_timeout, Start(start), batch
        )

    # -- topics, retention, lag ---------------------------------------------
    def _info(self, conn: sqlite3.Connection, name: str, table: str, row: tuple[Any, ...]) -> TopicInfo:
        count, first, last, size = conn.execute(
            f"SELECT count(*), min(seq), max(seq), sum(length(body)) FROM {table}"
        ).fetchone()
        return TopicInfo(
            name=name,
            count=count,
            first=None if first is None else str(first),
            last=None if last is None else str(last),
            bytes=size or 0,
            retention=Retention(max_age=row[0], max_count=row[1], max_bytes=row[2]),
        )

    async def topics(self) -> list[TopicInfo]:
        def job(conn: sqlite3.Connection) -> list[TopicInfo]:
            rows = conn.execute(
                "SELECT name, id, max_age, max_count, max_bytes FROM topics ORDER BY name"
            ).fetchall()
            return [self._info(conn, r[0], f"ev_{r[1]}", r[2:]) for r in rows]

        return await self._read(job)

    async def topic_info(self, topic: str) -> TopicInfo:
        check_topic(topic)

        def job(conn: sqlite3.Connection) -> TopicInfo:
            r = conn.execute(
                "SELECT name, id, max_age, max_count, max_bytes FROM topics WHERE name = ?", (topic,)
            ).fetchone()
            if r is None:
                raise NotFound(f"topic {topic!r} does not exist")
            return self._info(conn, r[0], f"ev_{r[1]}", r[2:])

        return await self._read(job)

    async def set_retention(self, topic: str, retention: Retention) -> None:
        check_topic(topic)

        def job(conn: sqlite3.Connection) -> None:
            if self._lookup_topic(conn, topic) is None:
                self._create_topic(conn, topic)
            conn.execute(
                "UPDATE topics SET max_age = ?, max_count = ?, max_bytes = ? WHERE name = ?",
                (retention.max_age, retention.max_count, retention.max_bytes, topic),
            )

        await self._write(job)
        self._retention_due[topic] = -math.inf if not retention.unlimited else math.inf
        if not retention.unlimited:
            await self.apply_retention(topic)

    async def apply_retention(self, topic: str) -> int:
        check_topic(topic)

        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT id, max_age, max_count, max_bytes FROM topics WHERE name = ?", (topic,)
            ).fetchone()
            if row is None:
                return 0
            table, max_age, max_count, max_bytes = f"ev_{row[0]}", row[1], row[2], row[3]
            cut = 0
            if max_age is not None:
                cut = max(cut, self._seq_at_time(conn, table, int((time.time() - max_age) * 1000)))
            if max_count is not None:
                r = conn.execute(
                    f"SELECT seq FROM {table} ORDER BY seq DESC LIMIT 1 OFFSET ?", (max_count,)
                ).fetchone()
                if r is not None:
                    cut = max(cut, r[0])
            if max_bytes is not None:
                r = conn.execute(
                    f"SELECT seq FROM (SELECT seq, sum(length(body)) OVER (ORDER BY seq DESC) AS total "
                    f"FROM {table}) WHERE total > ? ORDER BY seq DESC LIMIT 1",
                    (max_bytes,),
                ).fetchone()
                if r is not None:
                    cut = max(cut, r[0])
            if not cut:
                return 0
            removed = conn.execute(f"DELETE FROM {table} WHERE seq <= ?", (cut,)).rowcount
            conn.execute("UPDATE topics SET trimmed_upto = max(trimmed_upto, ?) WHERE name = ?", (cut, topic))
            return int(removed)

        removed = await self._write(job)
        self._retention_due[topic] = time.monotonic() + RETENTION_EVERY
        return removed

    async def delete(self, topic: str, ids: Sequence[str]) -> int:
        """Remove single records by id (compaction); returns how many went.

        Not part of the Log contract: engines that cannot delete single
        records (Kafka) leave folded revisions to retention.
        """
        check_topic(topic)
        ids = list(ids)

        def job(conn: sqlite3.Connection) -> int:
            t = self._lookup_topic(conn, topic)
            if t is None:
                return 0
            removed = 0
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                removed += conn.execute(f"DELETE FROM {t.table} WHERE id IN ({marks})", chunk).rowcount
            return removed

        return await self._write(job)

    async def groups(self, topic: str) -> list[str]:
        check_topic(topic)
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT DISTINCT grp FROM groups WHERE topic = ? ORDER BY grp", (topic,)
            ).fetchall()
        )
        return [r[0] for r in rows]

    async def lag(self, topic: str, group: str) -> GroupLag:
        check_topic(topic)

        def job(conn: sqlite3.Connection) -> GroupLag:
            t = self._lookup_topic(conn, topic)
            parts = conn.execute(
                "SELECT part, committed, delivered FROM groups WHERE topic = ? AND grp = ?", (topic, group)
            ).fetchall()
            if t is None or not parts:
                raise NotFound(f"group {group!r} has not joined topic {topic!r}")
            lag = pending = 0
            for part, committed, delivered in parts:
                lag += conn.execute(
                    f"SELECT count(*) FROM {t.table} WHERE part = ? AND seq > ?", (part, committed)
                ).fetchone()[0]
                if delivered > committed:
                    pending += conn.execute(
                        f"SELECT count(*) FROM {t.table} WHERE part = ? AND seq > ? AND seq <= ?",
                        (part, committed, delivered),
                    ).fetchone()[0]
            members = conn.execute(
                "SELECT count(*) FROM members WHERE topic = ? AND grp = ? AND until > ? AND boot = ?",
                (topic, group, time.monotonic(), BOOT),
            ).fetchone()[0]
            return GroupLag(topic, group, lag, pending, members)

        return await self._read(job)

    async def health(self) -> Health:
        try:
            await self._read(lambda conn: conn.execute("SELECT 1").fetchone())
        except Exception as e:
            return Health(False, self.engine, self.url, str(e))
        return Health(True, self.engine, self.url, f"WAL, synchronous={self.synchronous}")


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


@dataclass(slots=True)
class _Flight:
    """A delivery waiting for its ack."""

    part: int
    record: Record
    count: int
    due: float  # monotonic time to deliver it again
    generation: int


class _SQLiteSubscription:
    """A member of a consumer group on one topic of a SQLiteLog."""

    def __init__(
        self,
        log: SQLiteLog,
        topic: str,
        group: str,
        consumer: str,
        ack_timeout: float,
        start: Start,
        batch: int,
    ) -> None:
        self.log = log
        self.topic = topic
        self.group = group
        self.consumer = consumer
        self.ack_timeout = ack_timeout
        self.start = start
        self.batch = batch
        self.max_pending = max(4 * batch, 1024)
        self.gaps = 0  # times the group found records removed by retention before it read them
        self._parts: dict[int, _Part] = {}
        self._buffer: deque[tuple[int, Delivery]] = deque()
        # Insertion-ordered, so the first entry is the oldest un-acked delivery.
        self._inflight: dict[int, _Flight] = {}
        self._nacks: list[tuple[float, int]] = []  # (due, seq) heap of nacked deliveries
        self._next_maintain = 0.0
        self._joined = False
        self._closed = False
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<SQLite subscription {self.topic} group={self.group} consumer={self.consumer}>"

    async def __aenter__(self) -> _SQLiteSubscription:
        await self._join()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery]:
        while True:
            try:
                yield await self.next()
            except LogClosed:
                return

    # -- membership ----------------------------------------------------------
    async def _join(self) -> None:
        if self._joined:
            return
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
        self._joined = True
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
                    f"UPDATE groups SET {sql}, committed = ?, delivered = ? "
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
            self._parts[part] = _Part(gen, committed, delivered, until, committed=committed, saved=committed)
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
                    "UPDATE groups SET committed = ?, delivered = ? "
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
    async def next(self, timeout: float | None = None) -> Delivery:
        if not self._joined:
            await self._join()
        deadline = None if timeout is None else time.monotonic() + timeout
        async with self._lock:
            while True:
                if self._closed or self.log._closed:
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
                if deadline is not None:
                    if now >= deadline:
                        raise TimeoutError(f"no delivery on {self.topic} within {timeout}s")
                    wait = min(wait, deadline - now)
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
        part, gen = f.part, f.generation

        async def ack() -> None:
            self._ack(part, seq, gen)

        async def nack(delay: float) -> None:
            flight = self._inflight.get(seq)
            if flight is not None and flight.generation == gen:
                flight.due = time.monotonic() + max(delay, 0.0)
                heapq.heappush(self._nacks, (flight.due, seq))

        return Delivery(f.record, f.count, ack, nack)

    def _ack(self, part: int, seq: int, gen: int) -> None:
        s = self._parts.get(part)
        f = self._inflight.get(seq)
        if s is None or f is None or s.generation != gen or f.generation != gen:
            return  # a late ack for a partition we lost: its new owner redelivers
        del self._inflight[seq]
        s.acked.add(seq)
        while s.order and s.order[0] in s.acked:
            head = s.order.popleft()
            s.acked.discard(head)
            s.committed = head

    async def _fetch(self) -> None:
        now = time.monotonic()
        want = {p: s.cursor for p, s in self._parts.items() if not s.releasing and s.lease_deadline > now}
        if not want:
            return
        log, topic = self.log, self.topic
        per_part = max(self.batch // len(want), 16)

        def job(conn: sqlite3.Connection) -> tuple[list[tuple[int, int, str, str, bytes, int]], int]:
            t = log._lookup_topic(conn, topic)
            if t is None:
                return [], 0
            trimmed = conn.execute("SELECT trimmed_upto FROM topics WHERE name = ?", (topic,)).fetchone()[0]
            out: list[tuple[int, int, str, str, bytes, int]] = []
            for part, cursor in want.items():
                out.extend(
                    (part, *r)
                    for r in conn.execute(
                        f"SELECT seq, id, key, body, time_ms FROM {t.table} "
                        "WHERE part = ? AND seq > ? ORDER BY seq LIMIT ?",
                        (part, cursor, per_part),
                    )
                )
            return out, trimmed

        rows, trimmed = await log._read(job)
        rows.sort(key=lambda r: r[1])
        due = time.monotonic() + self.ack_timeout
        for part, seq, id_, key, body, time_ms in rows:
            s = self._parts.get(part)
            if s is None or seq <= s.cursor:
                continue
            if s.cursor < trimmed:
                self.gaps += 1
                logger.warning(
                    "%s group %s partition %d: records up to position %d were removed by retention "
                    "before the group read them",
                    topic,
                    self.group,
                    part,
                    trimmed,
                )
            s.cursor = seq
            s.order.append(seq)
            f = _Flight(
                part,
                Record(topic, str(seq), id_, key, body, time_ms),
                2 if seq <= s.prev_delivered else 1,
                due,
                s.generation,
            )
            self._inflight[seq] = f
            self._buffer.append((part, self._delivery(seq, f)))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.log._subs.discard(self)
        if not self._joined or self.log._writer is None or self.log._closed:
            return
        topic, group, me = self.topic, self.group, self.consumer
        parts = {p: (s.generation, s.committed, s.cursor) for p, s in self._parts.items()}

        def job(conn: sqlite3.Connection) -> None:
            for part, (gen, committed, cursor) in parts.items():
                # Un-acked deliveries stay after `committed`: the next owner gets them.
                conn.execute(
                    "UPDATE groups SET owner = NULL, lease_until = NULL, committed = ?, delivered = ? "
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
