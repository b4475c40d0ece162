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
  (every record up to it is acked), ``delivered`` (the highest position a
  member fetched; written with each fetch), the lease (owner, until,
  generation), and ``skipped`` / ``gaps``: what retention removed before the
  group got it.
* ``gaps`` -- gap notices not yet handed to the group: retention writes one
  per (group, partition) it cut into, with the exact count of the records no
  member had fetched, and moves ``delivered`` past them in the same
  transaction; the partition's owner takes it with its next fetch (see
  ``creative_hub.log.base.Gap``).
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
so one failed job does not fail the others); a checkpoint thread copies the
WAL into the database file beside it (see ``writer``).  Readers use their own
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
import logging
import math
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from ...errors import EngineUnavailable, IdConflict, LogClosed, ValidationError
from ...files import private_file
from .._reads import Reads
from .._subscription import SubscribeArgs, Subscribes
from ..base import (
    DEFAULT_BATCH,
    Appended,
    Entry,
    Feature,
    GroupLag,
    Health,
    ReadRange,
    Record,
    Retention,
    TopicInfo,
    check_topic,
)
from . import retention as _retention
from .group import SQLiteSubscription
from .read import chunk, parse_position, start_cursor
from .writer import Job, Writer

__all__ = ["SQLiteLog"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PARTITIONS = 8
DEFAULT_POLL_INTERVAL = 0.05  # seconds between looks for other processes' appends
BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another process's write lock
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
    skipped INTEGER NOT NULL DEFAULT 0,
    gaps INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, grp, part)
);
CREATE TABLE IF NOT EXISTS gaps (
    topic TEXT NOT NULL, grp TEXT NOT NULL, part INTEGER NOT NULL,
    after INTEGER NOT NULL, upto INTEGER NOT NULL, count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    topic TEXT NOT NULL, grp TEXT NOT NULL, consumer TEXT NOT NULL,
    until REAL NOT NULL, boot TEXT NOT NULL,
    PRIMARY KEY (topic, grp, consumer)
);
"""


def _partition(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def _upgrade(conn: sqlite3.Connection) -> None:
    """Add the columns a file made by an older version lacks."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(groups)")}
    for column in ("skipped", "gaps"):
        if column not in have:
            conn.execute(f"ALTER TABLE groups ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")


@dataclass(slots=True)
class _Topic:
    name: str
    table: str
    partitions: int


class SQLiteLog(Reads, Subscribes[SQLiteSubscription]):
    """The embedded engine.

    SQLiteLog("hub.db")                                  # or open_log("sqlite:///hub.db")
    SQLiteLog("/var/hub/hub.db", partitions=16, synchronous="FULL")
    """

    engine = "sqlite"
    # A batch is one transaction: all of it is stored, or none.
    FEATURES = frozenset({Feature.DELETE, Feature.ATOMIC_APPEND, Feature.GAP_COUNTS})

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
        self._writer: Writer | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._topics: dict[str, _Topic] = {}
        self._topics_lock = threading.Lock()
        self._wakeups: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[SQLiteSubscription] = set()
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
            if write:
                private_file(self.path)  # draft text: the user's alone (and so the WAL)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if write:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                _upgrade(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            if not write:
                conn.execute("PRAGMA query_only=1")
        except sqlite3.Error as e:
            raise EngineUnavailable(self.url, f"cannot open the SQLite file: {e}") from e
        return conn

    def _checkpoint_connection(self) -> sqlite3.Connection:
        """The checkpoint thread's own connection (see ``writer.Checkpointer``)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
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
        writer = Writer(lambda: self._connect(write=True), checkpoint=self._checkpoint_connection)
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
        self._writer.jobs.put(Job(fn, future))
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
        # A batch's events share few keys (one principal's, often): each key's partition once.
        part = {k: _partition(k, parts) for k in {e.key for e in entries}}
        try:
            conn.executemany(
                sql, [(e.id, part[e.key], e.key, e.creator, e.digest, now_ms, e.body) for e in entries]
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

    async def _wait_for_append(self, topic: str, timeout: float) -> bool:
        """Wait up to ``timeout`` s for an append to ``topic`` in this process: True if one came."""
        ev = self._wakeups.get(topic)
        if ev is None:
            ev = self._wakeups[topic] = asyncio.Event()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for turns a
        # cancellation that lands while it times out into a TimeoutError, which
        # would be swallowed here and leave a cancelled subscriber running.
        try:
            async with asyncio.timeout(timeout):
                await ev.wait()
        except TimeoutError:
            return False
        return True

    # -- read --------------------------------------------------------------
    async def _records(self, topic: str, span: ReadRange) -> AsyncIterator[Record]:
        after, follow = span.after, span.follow
        cursor = parse_position(after)
        self._check_open()
        remaining = span.limit if span.limit is not None else math.inf
        if remaining <= 0:
            return

        def start(conn: sqlite3.Connection) -> tuple[_Topic | None, int]:
            t = self._lookup_topic(conn, topic)
            if t is None:
                return None, cursor
            return t, start_cursor(conn, topic, t.table, cursor, resume=after is not None, since=span.since)

        t, cursor = await self._read(start)
        while True:
            if t is None:
                if not follow:
                    return
                await self._wait_for_append(topic, self.poll_interval)
                t = await self._read(lambda conn: self._lookup_topic(conn, topic))
                continue
            n = int(min(remaining, DEFAULT_BATCH))
            rows = await self._read(partial(chunk, topic=topic, table=t.table, cursor=cursor, n=n))
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
    def _member(self, args: SubscribeArgs) -> SQLiteSubscription:
        return SQLiteSubscription(self, args)

    # -- topics, retention, lag ---------------------------------------------
    async def topics(self) -> list[TopicInfo]:
        return await self._read(_retention.topics)

    async def topic_ends(self) -> dict[str, str | None]:
        """Every topic's last position (None: empty), by name: ``topics()`` without counting
        each one (the id index asks this on every miss; a count reads the whole topic)."""

        def job(conn: sqlite3.Connection) -> dict[str, str | None]:
            ends: dict[str, str | None] = {}
            for name, tid in conn.execute("SELECT name, id FROM topics ORDER BY name").fetchall():
                last = conn.execute(f"SELECT max(seq) FROM ev_{tid}").fetchone()[0]
                ends[name] = None if last is None else str(last)
            return ends

        return await self._read(job)

    async def topic_info(self, topic: str) -> TopicInfo:
        check_topic(topic)
        return await self._read(partial(_retention.topic_info, topic=topic))

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
        removed = await self._write(partial(_retention.apply, topic=topic))
        self._retention_due[topic] = time.monotonic() + RETENTION_EVERY
        return removed

    async def delete(self, topic: str, ids: Sequence[str]) -> int:
        """Remove single records by id (compaction, ``Feature.DELETE``); returns how many went."""
        check_topic(topic)
        return await self._write(partial(_retention.delete, topic=topic, ids=list(ids)))

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
        return await self._read(partial(_retention.lag, topic=topic, group=group))

    async def health(self) -> Health:
        try:
            await self._read(lambda conn: conn.execute("SELECT 1").fetchone())
        except Exception as e:
            return Health(False, self.engine, self.url, str(e))
        return Health(True, self.engine, self.url, f"WAL, synchronous={self.synchronous}")
