"""The SQLite engine's writer thread outlives callers that went away."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from creative_hub.log.sqlite.writer import Job, Writer

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
