"""Where an event is: id -> (topic, position), and subject -> its events; kept beside the log.

    ids = EventIds(log, default_ids_path(log.url))     # "<db>.ids" beside a SQLite file, else in memory
    for place in await ids.locate(event_id): ...        # Place(topic, position, previous)
    record = await ids.fetch(place, event_id)            # one read of one record, or None
    await ids.catch_up()                                 # what the log has beyond what is indexed
    ids.subject_topics("story:wood")                     # topics holding events about a subject
    for row in ids.about("story:wood", topic, after=position): ...   # About rows, in log order

``Hub.get`` used to read every topic to find one id: linear in the log (about
90 ms at 20k events), and a guessed id -- a miss -- always paid the full
scan.  This index makes a lookup two B-tree probes and one read of one
record, whatever the log's size, on every engine, without asking the
engines for anything: it only uses ``Log.read``.

How it stays right:

* **Other processes** write to the same log.  The index keeps, per topic,
  the last position it has indexed, and a miss first catches up from there
  (``read(topic, after=last)``): the cost is the records that are new, not
  the log.  Where the engine can say every topic's last position in one
  question (``topic_ends()``: SQLite, whose ``topics()`` counts every
  topic), only topics that moved are read, so a miss with nothing new is
  one trip to the log, like a hit; elsewhere every topic is read after its
  last indexed position, and new topics come from ``topics()``.
* **How to read one record**: engines read *after* a position, so each row
  keeps the position before its record (``previous``); ``read(after=previous,
  limit=1)`` is that record.  A fetched record must have the id and the
  position the row says, or the row is stale (retention, compaction, a log
  replaced under the index) and counts as a miss.
* **A log replaced under a kept file** (the SQLite file deleted and made
  anew): the first catch-up of a process checks that each topic's last
  indexed record is still where the index says; a topic where it is not is
  indexed again from its start.
* **Concurrent misses** share one catch-up (a lock): a flood of guessed ids
  costs one read per known topic each, never a scan.

Subjects.  Each record with a ``subject`` also gets a row in ``subjects``
(its topic, position, store time and ``hub`` attribute, read with a decoder
that skips everything else in the body), so the events about one subject
(``hub://subjects/...``) are a range of an index, not a read of every topic.
Each row has its record's number in its topic (``seq``, counted on from
the last record indexed, kept in ``upto``), so the subject's rows of one
topic are one range of the table, in log order (a record seen twice --
two processes catching up at once -- keeps its first row).  Nothing here decides who may see what: callers
filter the rows by topic and subject as the access rules say, and read the
records they hand out.

The file carries a schema version (``PRAGMA user_version``): a file of
another version -- one written before subjects were indexed -- is emptied
and indexed again from the log when opened, since everything in it is
derived from the log.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Generator
from dataclasses import dataclass

import msgspec

from .errors import PositionGone
from .files import private_file
from .log import Log, Record

__all__ = ["About", "EventIds", "Place", "default_ids_path"]

BATCH = 2000  # records per read and per index transaction while catching up
FETCH_WINDOW = 16  # records read after a row's predecessor when the first is not the one

VERSION = 2  # PRAGMA user_version of the file; 1 (written as 0): ids only, no subjects

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ids (
    id TEXT NOT NULL, topic TEXT NOT NULL, position TEXT NOT NULL, previous TEXT,
    PRIMARY KEY (id, topic)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS upto (
    topic TEXT PRIMARY KEY, position TEXT NOT NULL, previous TEXT, id TEXT NOT NULL, seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subjects (
    subject TEXT NOT NULL, topic TEXT NOT NULL, seq INTEGER NOT NULL, position TEXT NOT NULL,
    previous TEXT, id TEXT NOT NULL, time_ms INTEGER NOT NULL, hub TEXT,
    PRIMARY KEY (subject, topic, seq), UNIQUE (topic, position)
) WITHOUT ROWID;
"""
_TABLES = ("ids", "upto", "subjects")


class _Heading(msgspec.Struct):
    """The attributes of a stored event the subject rows keep (the rest of the body is skipped)."""

    subject: str | None = None
    hub: str | None = None


_heading = msgspec.json.Decoder(_Heading)


@dataclass(frozen=True, slots=True)
class Place:
    """Where one copy of an event is: its topic, its position, and the position before it."""

    topic: str
    position: str
    previous: str | None  #: None: the first record the index saw in the topic


@dataclass(frozen=True, slots=True)
class About:
    """One event about a subject, as the index knows it (read the record with ``place``)."""

    id: str
    topic: str
    position: str
    previous: str | None
    time_ms: int  #: when the log stored it
    hub: str | None  #: the event's ``hub`` attribute

    @property
    def place(self) -> Place:
        return Place(self.topic, self.position, self.previous)


def default_ids_path(log_url: str) -> str | None:
    """``<db>.ids`` beside a SQLite log file; None (in memory) for other engines and ``:memory:``."""
    if isinstance(log_url, str) and log_url.startswith("sqlite:///"):
        path = log_url[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:":
            return path + ".ids"
    return None


class EventIds:
    """The index of the module docstring, over ``log``; ``path`` None keeps it in memory."""

    def __init__(self, log: Log, path: str | os.PathLike[str] | None = None) -> None:
        self.log = log
        self.path = None if path is None else os.fspath(path)
        self._db: sqlite3.Connection | None = None
        # topic -> (position, previous, id, seq) of the last record indexed; seq counts the topic's records
        self._upto: dict[str, tuple[str, str | None, str, int]] = {}
        self._checked = False  # the kept file checked against the log (once per process)
        self._lock = asyncio.Lock()
        self.caught_up = 0  #: records indexed by this process (tests and benchmarks read it)

    # -- storage ---------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path:
                private_file(self.path)  # ids and topics of drafts: the user's alone
            db = sqlite3.connect(self.path or ":memory:", timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a lost tail is re-read from the log
            _open_schema(db)
            self._db = db
            self._load_upto()
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- lookups ---------------------------------------------------------------
    def places(self, event_id: str) -> list[Place]:
        """Where the index has seen ``event_id`` (topics in name order); nothing is read."""
        rows = self._conn().execute(
            "SELECT topic, position, previous FROM ids WHERE id = ? ORDER BY topic", (event_id,)
        )
        return [Place(t, p, prev) for t, p, prev in rows]

    async def locate(self, event_id: str) -> list[Place]:
        """``places``, after a catch-up if there were none (a miss may be a record just written)."""
        found = self.places(event_id)
        if not found:
            await self.catch_up()
            found = self.places(event_id)
        return found

    def subject_topics(self, subject: str) -> list[str]:
        """The topics where the index has seen events about ``subject`` (in name order).
        One probe per topic (the next name after the last), however many events there are."""
        db, last = self._conn(), ""
        out: list[str] = []
        while True:
            (name,) = db.execute(
                "SELECT min(topic) FROM subjects WHERE subject = ? AND topic > ?", (subject, last)
            ).fetchone()
            if name is None:
                return out
            out.append(name)
            last = name

    def about(self, subject: str, topic: str, after: str | None = None) -> Generator[About, None, None]:
        """The events about ``subject`` in ``topic``, in log order, after the one at position
        ``after`` (which must be one of them: ValueError now otherwise).  Lazy: rows are read
        from the index as the caller takes them (take them before awaiting anything); nothing
        is read from the log."""
        db = self._conn()
        start = 0
        if after is not None:
            row = db.execute(
                "SELECT seq FROM subjects WHERE topic = ? AND position = ? AND subject = ?",
                (topic, after, subject),
            ).fetchone()
            if row is None:
                raise ValueError(f"no event about {subject!r} at {after!r} in {topic!r}")
            start = row[0]
        rows = db.execute(
            "SELECT id, position, previous, time_ms, hub FROM subjects"
            " WHERE subject = ? AND topic = ? AND seq > ? ORDER BY seq",
            (subject, topic, start),
        )
        return (About(i, topic, p, prev, t, h) for i, p, prev, t, h in rows)

    async def fetch(self, place: Place, event_id: str) -> Record | None:
        """The record at ``place`` if it is still ``event_id``'s; None if the row is stale."""
        for window in (1, FETCH_WINDOW):
            try:
                got = [r async for r in self.log.read(place.topic, after=place.previous, limit=window)]
            except PositionGone:
                # Retention took the record before it: then this one is the oldest left, if still there.
                got = [r async for r in self.log.read(place.topic, limit=window)]
            for r in got:
                if r.id == event_id and r.position == place.position:
                    return r
            if len(got) < window:
                return None
        # Not right after its predecessor (an engine that merges partitions may order a
        # re-read differently): not found rather than a scan.
        return None

    # -- keeping up --------------------------------------------------------------
    async def catch_up(self) -> int:
        """Index what the log holds beyond the indexed positions; returns how many records."""
        async with self._lock:
            # Another process may have caught up further: start from the furthest anyone got.
            self._load_upto()
            if not self._checked:
                await self._check_kept()
            ends = getattr(self.log, "topic_ends", None)
            if ends is not None:
                # One question for every topic's end: only topics that moved are read, so a
                # miss with nothing new costs what a hit does (one trip to the log).
                last: dict[str, str | None] = await ends()
                moved = [
                    n for n, end in last.items() if end is not None and self._upto.get(n, ("",))[0] != end
                ]
                added = sum(await asyncio.gather(*(self._topic(name) for name in moved)))
            else:
                # Known topics and the list of topics at once, then the topics new to the index:
                # a miss waits for the slowest read, not for the sum of them.
                known = sorted(self._upto)
                listing = asyncio.ensure_future(self.log.topics())
                try:
                    added = sum(await asyncio.gather(*(self._topic(name) for name in known)))
                finally:
                    names = [t.name for t in await listing]
                new = [name for name in names if name not in known]
                added += sum(await asyncio.gather(*(self._topic(name) for name in new)))
            self.caught_up += added
            return added

    async def _topic(self, topic: str) -> int:
        last = self._upto.get(topic)
        after = last[0] if last else None
        seq = last[3] if last else 0
        added = 0
        while True:
            try:
                records = [r async for r in self.log.read(topic, after=after, limit=BATCH)]
            except PositionGone:
                after = None  # retention passed the index by: what is left, from its start
                records = [r async for r in self.log.read(topic, limit=BATCH)]
            if not records:
                return added
            rows = []
            about: list[tuple[str, str, int, str, str | None, str, int, str | None]] = []
            previous = after
            for r in records:
                rows.append((r.id, topic, r.position, previous))
                seq += 1
                try:
                    head = _heading.decode(r.body)
                except msgspec.MsgspecError:
                    head = _Heading()  # not an event this hub wrote: found by id, about nothing
                if head.subject:
                    about.append((head.subject, topic, seq, r.position, previous, r.id, r.time_ms, head.hub))
                previous = r.position
            tail = records[-1]
            self._store(topic, rows, about, (tail.position, rows[-1][3], tail.id, seq))
            added += len(records)
            after = tail.position
            if len(records) < BATCH:
                return added

    def _store(
        self,
        topic: str,
        rows: list[tuple[str, str, str, str | None]],
        about: list[tuple[str, str, int, str, str | None, str, int, str | None]],
        upto: tuple[str, str | None, str, int],
    ) -> None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            # A record indexed before (another process caught up the same records) keeps its row.
            db.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?, ?, ?)", rows)
            db.executemany("INSERT OR IGNORE INTO subjects VALUES (?, ?, ?, ?, ?, ?, ?, ?)", about)
            db.execute("INSERT OR REPLACE INTO upto VALUES (?, ?, ?, ?, ?)", (topic, *upto))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._upto[topic] = upto

    def _load_upto(self) -> None:
        rows = self._conn().execute("SELECT topic, position, previous, id, seq FROM upto")
        self._upto = {t: (p, prev, i, n) for t, p, prev, i, n in rows}

    async def _check_kept(self) -> None:
        """Topics whose last indexed record is not where the index says start again (a new log)."""
        for topic, (position, previous, event_id, _) in list(self._upto.items()):
            if await self.fetch(Place(topic, position, previous), event_id) is None:
                db = self._conn()
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM ids WHERE topic = ?", (topic,))
                db.execute("DELETE FROM subjects WHERE topic = ?", (topic,))
                db.execute("DELETE FROM upto WHERE topic = ?", (topic,))
                db.execute("COMMIT")
                del self._upto[topic]
        self._checked = True


def _open_schema(db: sqlite3.Connection) -> None:
    """Make the tables; a file of another schema version is emptied first (rebuilt from the log)."""
    db.execute("BEGIN IMMEDIATE")  # two processes opening an old file: one rebuilds it
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version != VERSION:
            for table in _TABLES:
                db.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
