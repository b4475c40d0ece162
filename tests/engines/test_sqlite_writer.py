"""The SQLite engine's writer thread: it outlives callers that went away, and its WAL is checkpointed."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from creative_hub.log.sqlite.writer import Job, Writer
from creative_hub.testing.contract.support import eventually, make_entries

pytestmark = pytest.mark.sqlite


def test_a_cancelled_caller_does_not_kill_the_writer(tmp_path: Path) -> None:
    # A coroutine awaiting a write can be cancelled while the write runs (an
    # agent runner stopping, a request dropped): the write still commits, and
    # the writer must go on serving the next ones instead of dying (which left
    # every later append waiting for ever).
    writer = Writer(lambda: sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False))
    writer.start()
    writer.ready.result(timeout=10)
    running, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> int:
        running.set()
        release.wait(10)
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        return 1

    first: Future[int] = Future()
    writer.jobs.put(Job(slow, first))
    assert running.wait(10)
    assert first.cancel()  # the caller went away mid-write
    release.set()
    second: Future[int] = Future()
    writer.jobs.put(Job(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0], second))
    assert second.result(timeout=10) == 0
    writer.jobs.put(None)
    writer.join(10)
    assert not writer.is_alive()


async def test_the_wal_is_checkpointed_while_the_log_is_open(tmp_path: Path) -> None:
    # Checkpoints run beside the writer (a commit does not wait for one), but
    # they must run: what is committed reaches the database file while the log
    # is open, and the WAL stays bounded however much is appended.
    from creative_hub.log.sqlite import SQLiteLog
    from creative_hub.log.sqlite.writer import CHECKPOINT_ROWS

    path = tmp_path / "hub.db"
    log = SQLiteLog(path)
    await log.open()
    try:
        entries = make_entries(3 * CHECKPOINT_ROWS)
        for i in range(0, len(entries), 500):
            await log.append("ckpt.t", entries[i : i + 500])
        size = sum(len(e.body) for e in entries)

        async def in_the_file() -> bool:
            return path.stat().st_size > size

        await eventually(in_the_file, what=f"{size} bytes of records copied into {path.name}")
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size < 64 * 1024 * 1024
    finally:
        await log.close()
