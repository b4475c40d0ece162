"""The SQLite engine's single writer: one thread, one connection, batched commits.

Jobs (functions of a connection) are queued from any coroutine; the thread
runs every job waiting in the queue in one ``BEGIN IMMEDIATE`` transaction,
so many small appends share one commit (one fsync with synchronous=FULL).

WAL checkpoints (copying committed pages from the WAL into the database
file) run in a thread of their own (``Checkpointer``), asked for after every
``CHECKPOINT_ROWS`` rows written -- about as often as SQLite's automatic
checkpoint, which would run inside the commit that crossed 1,000 WAL pages
(10-20 % of an append's CPU) -- so a commit does not wait for one.  The
writer keeps an automatic checkpoint at ``WAL_PAGES_FALLBACK`` pages,
should the thread fall behind.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_JOBS_PER_TRANSACTION", "Checkpointer", "Writer", "fetchall", "rollback"]

logger = logging.getLogger(__name__)

MAX_JOBS_PER_TRANSACTION = 64  # queued writes committed together
CHECKPOINT_ROWS = 5_000  # rows between WAL checkpoints: ~1,000 pages for events of a few hundred bytes
WAL_PAGES_FALLBACK = 10_000  # the writer checkpoints itself past this many WAL pages (~40 MB)


@dataclass(slots=True)
class Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


class Writer(threading.Thread):
    """The one thread that writes; commits queued jobs together."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        checkpoint: Callable[[], sqlite3.Connection] | None = None,
    ) -> None:
        super().__init__(name="creative-hub-sqlite-writer", daemon=True)
        self._connect = connect
        self._checkpointer = Checkpointer(checkpoint) if checkpoint is not None else None
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.ready: Future[None] = Future()

    def run(self) -> None:
        checkpointer = self._checkpointer
        try:
            conn = self._connect()
            if checkpointer is not None:
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES_FALLBACK}")
                checkpointer.start()
        except BaseException as e:  # surfaced to open()
            self.ready.set_exception(e)
            return
        self.ready.set_result(None)
        try:
            self._serve(conn, checkpointer)
        finally:
            if checkpointer is not None:
                checkpointer.stop()
            conn.close()

    def _serve(self, conn: sqlite3.Connection, checkpointer: Checkpointer | None) -> None:
        checkpointed = 0  # conn.total_changes when a checkpoint was last asked for
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
            if checkpointer is not None and conn.total_changes - checkpointed >= CHECKPOINT_ROWS:
                checkpointed = conn.total_changes
                checkpointer.due.set()
            if stop:
                return

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[Job]) -> None:
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
                rollback(conn)
            else:
                for job, value in zip(batch, results, strict=True):
                    _settle(job.future, value)
                return
        for job in batch:
            try:
                conn.execute("BEGIN IMMEDIATE")
                value = job.fn(conn)
                conn.execute("COMMIT")
            except BaseException as e:
                # Nothing of this job is stored: never ack an unpersisted event.
                rollback(conn)
                _settle(job.future, error=e)
            else:
                _settle(job.future, value)


class Checkpointer(threading.Thread):
    """Copies the WAL into the database file beside the writer (``PRAGMA wal_checkpoint(PASSIVE)``:
    it never waits for a lock, so neither writers nor readers wait for it)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(name="creative-hub-sqlite-checkpoint", daemon=True)
        self._connect = connect
        self.due = threading.Event()  # set by the writer when a checkpoint is due
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.due.set()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        try:
            conn = self._connect()
        except Exception:  # the writer's own checkpoint (WAL_PAGES_FALLBACK) still runs
            logger.exception("no checkpoint connection: the writer checkpoints by itself")
            return
        try:
            while True:
                self.due.wait()
                if self._stopping.is_set():
                    return
                self.due.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    logger.debug("WAL checkpoint failed (the next one retries)", exc_info=True)
        finally:
            conn.close()


def _settle(future: Future[Any], value: Any = None, error: BaseException | None = None) -> None:
    """Give a job its result.  Its caller may have been cancelled meanwhile (the
    future too): that must not kill the writer, or every later write would hang."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except InvalidStateError:
        pass  # cancelled: nobody waits for it (what it wrote is committed)


def fetchall(conn: sqlite3.Connection, *, sql: str, args: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, args).fetchall()


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            logger.exception("rollback failed")
