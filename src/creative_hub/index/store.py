"""The index file: documents, their FTS5 index, links, positions and vectors.

One SQLite file of its own (``<db>.index.db`` beside a SQLite log, else
``.creative-hub/index.db``), never the log's file: it can be deleted and
rebuilt from the log at any time (``creative-hub reindex``).

==============  ==============================================================
``docs``        one row per (topic, event id): the attributes search filters
                on, the text it matches, the event itself (JSON)
``fts``         FTS5 over ``docs(title, text, meta)`` (external content: the
                text is stored once, in ``docs``; ``snippet()`` reads it
                there).  ``meta`` holds one token per filterable attribute
                (area, type, creator, source, subject) so filters join the MATCH
``links``       cross-source links: ``extra["links"]`` entries and the
                event's own references (forkedfrom, data.on / to / contribution,
                the ``inputs`` an agent made it from)
``positions``   per topic, the log position indexed up to -- committed in the
                same transaction as the documents, so the two never disagree
``vectors``     optional sentence embeddings (float32), one per document
==============  ==============================================================

Every document keeps its ``topic``: access is decided at query time from the
topic with ``creative_hub.access.can_read`` -- the index itself holds
everything, like the log.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..access import Identity, can_read
from ..event import Event, encode_event
from ..files import private_file

__all__ = ["Doc", "IndexStore", "default_index_path", "to_doc"]

SCHEMA_VERSION = "3"  # a file with another version is dropped and rebuilt (it is only a cache)
MAX_TEXT = 32 * 1024  # characters of payload text indexed per event (the title is always in)
_TITLE_KEYS = ("title", "summary", "subject", "name", "message", "text", "path", "url", "reason", "character")
_REF_KEYS = ("on", "to", "contribution")  # payload fields that point at another event or peer
_SKIP_KEYS = frozenset({"links", "sha", "sha256", "signature", "body"})  # not prose (body: see _BODY_TYPES)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    position TEXT NOT NULL,
    type TEXT NOT NULL,
    area TEXT NOT NULL,
    creator TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    meta TEXT NOT NULL,
    target TEXT,
    forkedfrom TEXT,
    supersedes TEXT,
    correlationid TEXT,
    body BLOB NOT NULL,
    madeby TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    modelprovider TEXT NOT NULL DEFAULT '',
    UNIQUE (id, topic)
);
CREATE INDEX IF NOT EXISTS docs_time ON docs (time_ms);
CREATE INDEX IF NOT EXISTS docs_creator ON docs (creator, time_ms);
CREATE INDEX IF NOT EXISTS docs_subject ON docs (subject);
CREATE INDEX IF NOT EXISTS docs_model ON docs (model, modelprovider);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5 (
    title, text, meta, content='docs', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS links (
    doc INTEGER NOT NULL,
    rel TEXT NOT NULL,
    target TEXT NOT NULL,
    ref TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS links_doc ON links (doc);
CREATE INDEX IF NOT EXISTS links_target ON links (target);
CREATE TABLE IF NOT EXISTS positions (topic TEXT PRIMARY KEY, position TEXT NOT NULL, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (doc INTEGER PRIMARY KEY, vec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERT_DOC = (
    "INSERT OR IGNORE INTO docs (id, topic, position, type, area, creator, source, subject, time_ms, "
    "title, text, meta, target, forkedfrom, supersedes, correlationid, body, madeby, model, modelprovider) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DROP = (
    "DROP TABLE IF EXISTS docs; DROP TABLE IF EXISTS fts; DROP TABLE IF EXISTS links; "
    "DROP TABLE IF EXISTS positions; DROP TABLE IF EXISTS vectors; DROP TABLE IF EXISTS meta;"
)
META_FIELDS = {"area": "a", "type": "t", "creator": "c", "source": "s", "subject": "j"}


def meta_token(field: str, value: str) -> str:
    """The FTS token standing for ``field = value``: filters become part of the
    MATCH, so FTS5 intersects doclists instead of ranking every match of a
    common word and dropping most of them afterwards."""
    return META_FIELDS[field] + hashlib.blake2b(value.encode(), digest_size=8).hexdigest()


def default_index_path(log_url: str) -> str:
    """``<db>.index.db`` beside a SQLite log, else ``.creative-hub/index.db``."""
    if log_url.startswith("sqlite:///"):
        return log_url[len("sqlite:///") :].split("?", 1)[0] + ".index.db"
    return os.path.join(".creative-hub", "index.db")


@dataclass(slots=True)
class Doc:
    """What the index keeps of one event in one topic."""

    id: str
    topic: str
    position: str
    type: str
    creator: str
    source: str
    subject: str
    time_ms: int
    title: str
    text: str
    body: bytes
    target: str | None = None  #: data.on / data.to / data.contribution
    forkedfrom: str | None = None
    supersedes: str | None = None
    correlationid: str | None = None
    links: list[tuple[str, str, str]] = field(default_factory=list)  #: (rel, target id, ref)
    made_by: str = ""  #: the creator's kind: person, agent ("" if not registered)
    model: str = ""  #: provenance: the model that made it
    modelprovider: str = ""  #: who served it, or offline

    @property
    def meta(self) -> str:
        return " ".join(
            meta_token(f, v)
            for f, v in (
                ("area", self.area),
                ("type", self.type),
                ("creator", self.creator),
                ("source", self.source),
                ("subject", self.subject),
            )
            if v
        )

    @property
    def area(self) -> str:
        parts = self.type.split(".")
        return parts[1] if len(parts) > 1 else ""

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.topic,
            self.position,
            self.type,
            self.area,
            self.creator,
            self.source,
            self.subject,
            self.time_ms,
            self.title,
            self.text,
            self.meta,
            self.target,
            self.forkedfrom,
            self.supersedes,
            self.correlationid,
            self.body,
            self.made_by,
            self.model,
            self.modelprovider,
        )


def _strings(value: Any, out: list[str], budget: list[int]) -> None:
    """Collect the prose of a payload, depth first, until the budget is spent."""
    if budget[0] <= 0:
        return
    if isinstance(value, str):
        if value:
            out.append(value)
            budget[0] -= len(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in _SKIP_KEYS:
                _strings(v, out, budget)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out, budget)


def _title(data: Any, event: Event) -> str:
    if isinstance(data, dict):
        for key in _TITLE_KEYS:
            v = data.get(key)
            if isinstance(v, str) and v.strip():
                return v.strip().splitlines()[0][:300]
    return event.subject or event.type


def to_doc(
    event: Event, topic: str, position: str, time_ms: int, body: bytes | None = None, kind: str = ""
) -> Doc:
    """The document of ``event`` as stored at ``topic``/``position``.

    ``time_ms`` is the log's time, used when the event carries none; an
    event's own ``time`` (when it happened at the source) wins.  ``kind`` is
    the creator's kind in the registry (person, agent); an unregistered
    creator of an event with an agent's provenance (``confighash``) counts
    as an agent.
    """
    data = event.data
    if data is not None and not isinstance(data, dict):  # a typed payload built in code
        data = msgspec.to_builtins(data)
    parts: list[str] = []
    _strings(data, parts, [MAX_TEXT])
    text = "\n".join(parts)[:MAX_TEXT]
    links: list[tuple[str, str, str]] = []
    target = None
    if isinstance(data, dict):
        extra = data.get("extra")
        raw = extra.get("links") if isinstance(extra, dict) else None
        if isinstance(raw, list):
            for item in raw:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    links.append((str(item.get("rel") or "links"), item["id"], str(item.get("ref") or "")))
        for key in _REF_KEYS:
            v = data.get(key)
            if isinstance(v, str) and v:
                target = v
                if key != "to":  # "to" names a peer, not an event
                    links.append((key, v, ""))
                break
    if event.forkedfrom:
        links.append(("forkedfrom", event.forkedfrom, ""))
    links.extend(("input", i, "") for i in event.input_ids if i != event.id)
    when = int(event.time.timestamp() * 1000) if event.time is not None else time_ms
    return Doc(
        id=event.id,
        topic=topic,
        position=position,
        type=event.type,
        creator=event.creator or "",
        source=event.source,
        subject=event.subject or "",
        time_ms=when,
        title=_title(data, event),
        text=text,
        body=body if body is not None else encode_event(event),
        target=target,
        forkedfrom=event.forkedfrom,
        supersedes=event.supersedes,
        correlationid=event.correlationid,
        links=links,
        made_by=kind or ("agent" if event.confighash else ""),
        model=event.model or "",
        modelprovider=event.modelprovider or "",
    )


class IndexStore:
    """The index file.  Thread-safe: one write connection and one read
    connection, each behind its own lock (WAL lets reads run during writes).

    store = IndexStore("hub.db.index.db")
    store.add([doc, ...], positions={"creative.narrative": "42"})
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._write = self._connect()
        try:
            found = self._write.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            found = None
        if found is not None and found[0] != SCHEMA_VERSION:
            self._write.executescript(_DROP)  # an older layout: rebuilt from the log on the next catch-up
        self._write.executescript(_SCHEMA)
        self._write.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
        self._read = self._connect() if self.path != ":memory:" else self._write
        self._wlock = threading.Lock()
        self._rlock = threading.Lock() if self._read is not self._write else self._wlock
        self._topics: list[str] | None = None  # cache of distinct topics, reset on write

    def _connect(self) -> sqlite3.Connection:
        private_file(self.path)  # it holds draft text: the user's alone (and so the WAL)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # The index can always be rebuilt from the log: durability is the log's job.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-131072")  # 128 MiB of page cache
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def close(self) -> None:
        """Close both connections (safe to call twice)."""
        for conn in {id(self._read): self._read, id(self._write): self._write}.values():
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass

    # -- writing ---------------------------------------------------------------
    def add(self, docs: Sequence[Doc], positions: dict[str, tuple[str, int]] | None = None) -> int:
        """Store ``docs`` (a (topic, id) already there is skipped) and move the
        topics' positions, in one transaction.  Returns how many were new."""
        added = 0
        with self._wlock:
            conn = self._write
            conn.execute("BEGIN IMMEDIATE")
            try:
                fts_rows: list[tuple[int, str, str, str]] = []
                link_rows: list[tuple[int, str, str, str]] = []
                for d in docs:
                    cur = conn.execute(_INSERT_DOC, d.row())
                    if cur.rowcount != 1:
                        continue
                    rowid = cur.lastrowid
                    assert rowid is not None
                    added += 1
                    fts_rows.append((rowid, d.title, d.text, d.meta))
                    link_rows.extend((rowid, rel, tid, ref) for rel, tid, ref in d.links)
                conn.executemany("INSERT INTO fts (rowid, title, text, meta) VALUES (?, ?, ?, ?)", fts_rows)
                if link_rows:
                    conn.executemany(
                        "INSERT INTO links (doc, rel, target, ref) VALUES (?, ?, ?, ?)", link_rows
                    )
                for topic, (position, n) in (positions or {}).items():
                    conn.execute(
                        "INSERT INTO positions (topic, position, count) VALUES (?, ?, ?) "
                        "ON CONFLICT (topic) DO UPDATE SET position = excluded.position, "
                        "count = positions.count + excluded.count",
                        (topic, position, n),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if positions:
                self._topics = None
        return added

    def remove(self, topic: str, ids: Iterable[str]) -> int:
        """Drop documents (revisions compaction folded away); returns how many."""
        removed = 0
        with self._wlock:
            conn = self._write
            conn.execute("BEGIN IMMEDIATE")
            try:
                for eid in ids:
                    row = conn.execute(
                        "SELECT rowid, title, text, meta FROM docs WHERE id = ? AND topic = ?", (eid, topic)
                    ).fetchone()
                    if row is None:
                        continue
                    conn.execute(
                        "INSERT INTO fts (fts, rowid, title, text, meta) VALUES ('delete', ?, ?, ?, ?)", row
                    )
                    for table, col in (("links", "doc"), ("vectors", "doc"), ("docs", "rowid")):
                        conn.execute(f"DELETE FROM {table} WHERE {col} = ?", (row[0],))
                    removed += 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return removed

    def clear(self) -> None:
        """Forget everything (before a rebuild)."""
        with self._wlock:
            self._write.executescript(
                "BEGIN IMMEDIATE; DELETE FROM docs; DELETE FROM links; DELETE FROM positions; "
                "DELETE FROM vectors; INSERT INTO fts (fts) VALUES ('delete-all'); COMMIT;"
            )
            self._topics = None

    def set_vectors(self, rows: Sequence[tuple[int, bytes]]) -> None:
        with self._wlock:
            self._write.execute("BEGIN IMMEDIATE")
            self._write.executemany("INSERT OR REPLACE INTO vectors (doc, vec) VALUES (?, ?)", rows)
            self._write.execute("COMMIT")

    def optimize(self) -> None:
        """Merge the FTS segments (after a bulk load: faster queries)."""
        with self._wlock:
            self._write.execute("INSERT INTO fts (fts) VALUES ('optimize')")
            self._write.execute("PRAGMA optimize")

    # -- reading ---------------------------------------------------------------
    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The read connection, held for one query."""
        with self._rlock:
            yield self._read

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self.reading() as conn:
            return conn.execute(sql, args).fetchall()

    def positions(self) -> dict[str, str]:
        """Per topic, the log position indexed up to."""
        return {t: p for t, p in self.query("SELECT topic, position FROM positions")}

    def topics(self) -> list[str]:
        """The topics indexed so far (from ``positions``: no scan of the documents)."""
        if self._topics is None:
            self._topics = [r[0] for r in self.query("SELECT topic FROM positions ORDER BY topic")]
        return list(self._topics)

    def readable(self, who: Identity) -> list[str]:
        """The indexed topics ``who`` may read -- the access rule, asked at query time."""
        return [t for t in self.topics() if can_read(who, t)]

    def count(self) -> int:
        return int(self.query("SELECT count(*) FROM docs")[0][0])

    def missing_vectors(self, limit: int) -> list[tuple[int, str, str]]:
        """Documents without an embedding yet: (rowid, title, text)."""
        return self.query(
            "SELECT d.rowid, d.title, d.text FROM docs d LEFT JOIN vectors v ON v.doc = d.rowid "
            "WHERE v.doc IS NULL ORDER BY d.rowid LIMIT ?",
            (limit,),
        )
