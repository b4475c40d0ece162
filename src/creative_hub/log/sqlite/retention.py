"""Topic counts, retention, deletes and lag on the SQLite engine: the SQL each runs on a connection.

``SQLiteLog`` runs these as jobs (``apply`` on the writer thread, the others
on a reader).  Retention removes a prefix of the topic's table (by age,
count and body bytes, whichever cuts most) after ``record_gaps`` has told
every group what it loses; ``trimmed_upto`` remembers the cut, so a read
from before it raises PositionGone instead of skipping.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ...errors import NotFound
from ..base import GroupLag, Retention, TopicInfo
from .group import BOOT

__all__ = ["apply", "delete", "info", "lag", "record_gaps", "seq_at_time", "topic_info", "topics"]

CHUNK = 500  # ids per "IN (...)" of one DELETE, under SQLite's variable limit


def info(conn: sqlite3.Connection, name: str, table: str, row: tuple[Any, ...]) -> TopicInfo:
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


def seq_at_time(conn: sqlite3.Connection, table: str, time_ms: int) -> int:
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


def record_gaps(conn: sqlite3.Connection, topic: str, table: str, cut: int) -> None:
    """Before retention removes every record up to ``cut``: note what each group loses.

    Per (group, partition), the records after what the group still has --
    ``delivered`` while a live member holds the partition (it keeps what it
    fetched and still hands it out), else ``committed`` -- are counted
    (exactly: they are still there), added to ``skipped``, and left as a gap
    notice for the partition's owner; ``delivered`` and, with no live owner,
    ``committed`` move to ``cut``.
    """
    rows = conn.execute(
        "SELECT grp, part, committed, delivered, owner, lease_until, boot FROM groups "
        "WHERE topic = ? AND committed < ?",
        (topic, cut),
    ).fetchall()
    now = time.monotonic()
    for grp, part, committed, delivered, owner, lease_until, boot in rows:
        live = owner is not None and boot == BOOT and lease_until is not None and lease_until > now
        base = delivered if live else committed
        if base >= cut:
            continue
        n = conn.execute(
            f"SELECT count(*) FROM {table} WHERE part = ? AND seq > ? AND seq <= ?", (part, base, cut)
        ).fetchone()[0]
        new_committed = committed if live and committed < delivered else cut
        conn.execute(
            "UPDATE groups SET delivered = max(delivered, ?), committed = ?, skipped = skipped + ?, "
            "gaps = gaps + ? WHERE topic = ? AND grp = ? AND part = ?",
            (cut, new_committed, n, 1 if n else 0, topic, grp, part),
        )
        if n:
            conn.execute(
                "INSERT INTO gaps (topic, grp, part, after, upto, count) VALUES (?,?,?,?,?,?)",
                (topic, grp, part, base, cut, n),
            )


def apply(conn: sqlite3.Connection, *, topic: str) -> int:
    """Remove what ``topic``'s retention no longer keeps (groups told of their gaps); how many went."""
    row = conn.execute(
        "SELECT id, max_age, max_count, max_bytes FROM topics WHERE name = ?", (topic,)
    ).fetchone()
    if row is None:
        return 0
    table, max_age, max_count, max_bytes = f"ev_{row[0]}", row[1], row[2], row[3]
    cut = 0
    if max_age is not None:
        cut = max(cut, seq_at_time(conn, table, int((time.time() - max_age) * 1000)))
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
    record_gaps(conn, topic, table, cut)
    removed = conn.execute(f"DELETE FROM {table} WHERE seq <= ?", (cut,)).rowcount
    conn.execute("UPDATE topics SET trimmed_upto = max(trimmed_upto, ?) WHERE name = ?", (cut, topic))
    return int(removed)


def lag(conn: sqlite3.Connection, *, topic: str, group: str) -> GroupLag:
    """How far ``group`` is behind on ``topic`` (NotFound if it never joined)."""
    t = conn.execute("SELECT id FROM topics WHERE name = ?", (topic,)).fetchone()
    parts = conn.execute(
        "SELECT part, committed, delivered, skipped, gaps FROM groups WHERE topic = ? AND grp = ?",
        (topic, group),
    ).fetchall()
    if t is None or not parts:
        raise NotFound(f"group {group!r} has not joined topic {topic!r}")
    lag = pending = 0
    skipped = sum(r[3] for r in parts)
    gaps = sum(r[4] for r in parts)
    for part, committed, delivered, _, _ in parts:
        lag += conn.execute(
            f"SELECT count(*) FROM ev_{t[0]} WHERE part = ? AND seq > ?", (part, committed)
        ).fetchone()[0]
        if delivered > committed:
            pending += conn.execute(
                f"SELECT count(*) FROM ev_{t[0]} WHERE part = ? AND seq > ? AND seq <= ?",
                (part, committed, delivered),
            ).fetchone()[0]
    members = conn.execute(
        "SELECT count(*) FROM members WHERE topic = ? AND grp = ? AND until > ? AND boot = ?",
        (topic, group, time.monotonic(), BOOT),
    ).fetchone()[0]
    return GroupLag(topic, group, lag, pending, members, skipped, gaps)


def topics(conn: sqlite3.Connection) -> list[TopicInfo]:
    """Every topic with its counts, sorted by name."""
    rows = conn.execute("SELECT name, id, max_age, max_count, max_bytes FROM topics ORDER BY name").fetchall()
    return [info(conn, r[0], f"ev_{r[1]}", r[2:]) for r in rows]


def topic_info(conn: sqlite3.Connection, *, topic: str) -> TopicInfo:
    """One topic's counts; NotFound if it does not exist."""
    r = conn.execute(
        "SELECT name, id, max_age, max_count, max_bytes FROM topics WHERE name = ?", (topic,)
    ).fetchone()
    if r is None:
        raise NotFound(f"topic {topic!r} does not exist")
    return info(conn, r[0], f"ev_{r[1]}", r[2:])


def delete(conn: sqlite3.Connection, *, topic: str, ids: list[str]) -> int:
    """Remove single records of ``topic`` by id; how many went (no such topic: 0)."""
    t = conn.execute("SELECT id FROM topics WHERE name = ?", (topic,)).fetchone()
    if t is None:
        return 0
    removed = 0
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        marks = ",".join("?" * len(chunk))
        removed += conn.execute(f"DELETE FROM ev_{t[0]} WHERE id IN ({marks})", chunk).rowcount
    return removed
