"""The SQLite engine's single writer: one thread, one connection, batched commits.

Jobs (functions of a connection) are queued from any coroutine; the thread
runs every job waiting in the queue in one ``BEGIN IMMEDIATE`` transaction,
so many small appends share one commit (one fsync with synchronous=FULL).
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

__all__ = ["MAX_JOBS_PER_TRANSACTION", "Writer", "fetchall", "rollback"]

logger = logging.getLogger(__name__)

MAX_JOBS_PER_TRANSACTION = 64  # queued writes committed together


@dataclass(slots=True)
class Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


class Writer(threading.Thread):
    """The one thread that writes; commits queued jobs together."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(name="creative-hub-sqlite-writer", daemon=True)
        self._connect = connect
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
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
