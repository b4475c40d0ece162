"""Effects that happen once per group, even when an event is delivered twice.

Delivery is at-least-once on every engine: a member that crashes after its
effect but before its ack gets the event redelivered.  An ``EffectLedger``
records which event ids a group has handled, in the *same* SQLite
transaction as the effect, so the effect and the record commit together or
not at all.

    ledger = EffectLedger("effects.db")
    with ledger.once("indexer", event.id) as tx:
        if tx is not None:                  # first time for this group
            tx.execute("INSERT INTO words ...")
    await delivery.ack()

For effects outside the ledger's database (an HTTP call, a file), use
``ledger.run_once(group, id, effect)``: the id is recorded right after the
effect, so only a crash between the two can repeat it -- make such effects
idempotent on their side too.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from typing import TypeVar

from .files import private_file

__all__ = ["EffectLedger"]

T = TypeVar("T")


class EffectLedger:
    """A SQLite file of (group, event id) pairs already handled."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = path
        private_file(path)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS handled (grp TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (grp, id))"
        )
        self._lock = threading.Lock()

    @property
    def connection(self) -> sqlite3.Connection:
        """The ledger's connection, for reading the effects it guarded."""
        return self._conn

    @contextmanager
    def once(self, group: str, event_id: str) -> Iterator[sqlite3.Connection | None]:
        """A transaction for the effect of ``event_id`` in ``group``, or None if already done.

        The id is recorded when the ``with`` block exits without an error, in
        the same transaction as whatever the block wrote through the connection.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO handled (grp, id) VALUES (?, ?)", (group, event_id)
                )
                yield self._conn if cur.rowcount == 1 else None
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def run_once(self, group: str, event_id: str, effect: Callable[[], T]) -> bool:
        """Run ``effect()`` unless ``group`` already handled ``event_id``; True if it ran."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM handled WHERE grp = ? AND id = ?", (group, event_id)
            ).fetchone()
        if row is not None:
            return False
        effect()
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO handled (grp, id) VALUES (?, ?)", (group, event_id))
        return True

    def done(self, group: str, event_id: str) -> bool:
        """True if ``group`` has already handled ``event_id`` (one indexed lookup)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM handled WHERE grp = ? AND id = ?", (group, event_id)
            ).fetchone()
        return row is not None

    def handled(self, group: str) -> set[str]:
        """Every id ``group`` has handled."""
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM handled WHERE grp = ?", (group,))}

    def close(self) -> None:
        self._conn.close()
