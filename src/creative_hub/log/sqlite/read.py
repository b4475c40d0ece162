"""Reading a SQLite topic: positions, where a read starts, and one chunk of rows.

``SQLiteLog.read`` runs these on a reader connection.  Positions are the
events table's ``seq``; a read from before what retention removed
(``topics.trimmed_upto``) raises PositionGone instead of skipping.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ...errors import PositionGone, ValidationError
from . import retention as _retention

__all__ = ["chunk", "parse_position", "start_cursor"]


def parse_position(position: str | None, name: str = "after") -> int:
    """A position given by a caller (``None`` or ``""``: the start) -> its ``seq``."""
    if position is None or position == "":
        return 0
    try:
        value = int(position)
    except (TypeError, ValueError):
        raise ValidationError(name, f"{position!r} is not a position of this log (a whole number)") from None
    if value < 0:
        raise ValidationError(name, f"position must be >= 0, got {value}")
    return value


def _gone(conn: sqlite3.Connection, topic: str, table: str, cursor: int) -> PositionGone:
    first = conn.execute(f"SELECT min(seq) FROM {table}").fetchone()[0]
    return PositionGone(topic, str(cursor), str(first) if first is not None else None)


def start_cursor(
    conn: sqlite3.Connection, topic: str, table: str, cursor: int, *, resume: bool, since: float | None
) -> int:
    """The ``seq`` a read starts after: ``cursor`` when resuming (``after`` given; PositionGone if
    retention removed what follows it), else the first kept record; ``since`` moves it later."""
    trimmed = conn.execute("SELECT trimmed_upto FROM topics WHERE name = ?", (topic,)).fetchone()[0]
    if resume and cursor < trimmed:
        raise _gone(conn, topic, table, cursor)
    c = cursor if resume else max(cursor, trimmed)  # from the start: what is kept
    if since is not None:
        c = max(c, _retention.seq_at_time(conn, table, int(since * 1000)))
    return c


def chunk(conn: sqlite3.Connection, *, topic: str, table: str, cursor: int, n: int) -> list[Any]:
    """Up to ``n`` rows after ``cursor``, in one read transaction with the check that
    retention has not removed rows after ``cursor`` since the read began (a read
    overtaken by retention raises PositionGone; it never skips silently)."""
    conn.execute("BEGIN")  # one snapshot (WAL) for the check and the rows
    try:
        trimmed = conn.execute("SELECT trimmed_upto FROM topics WHERE name = ?", (topic,)).fetchone()
        if trimmed is not None and trimmed[0] > cursor:
            raise _gone(conn, topic, table, cursor)
        sql = f"SELECT seq, id, key, body, time_ms FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?"
        return conn.execute(sql, (cursor, n)).fetchall()
    finally:
        conn.execute("COMMIT")
