"""Helpers for testing agents: bounded waits and a worker to SIGKILL mid-task.

await until(lambda: len(seen) == 3, "three events handled")

with killed_mid_task([sys.executable, "examples/orchestrator.py", ...], marker) as hung_on:
    ...   # the worker did the effect of event ``hung_on`` and was SIGKILLed before its ack
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

__all__ = ["WAIT", "spawned", "until", "wait_file", "wait_marker"]

WAIT = 90.0  # seconds a test waits for something that should happen soon (slow brokers on 2 cores)


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    """Poll ``check`` until it is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {what}")
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def spawned(argv: Sequence[str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` as a child process; SIGKILLed (by its pid) on exit if still alive."""
    proc = subprocess.Popen(list(argv))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


async def wait_marker(proc: subprocess.Popen[bytes], marker: Path, timeout: float = WAIT) -> str:
    """Wait until the worker wrote ``marker`` (the id it hangs on), then SIGKILL it."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} before its marker")
        if time.monotonic() > deadline:
            raise AssertionError("worker never reached the task it should hang on")
        await asyncio.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return marker.read_text()


async def wait_file(proc: subprocess.Popen[bytes], path: Path, timeout: float = WAIT) -> None:
    """Wait until the child wrote ``path`` (e.g. "ready"); fail if it dies first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} before writing {path.name}")
        if time.monotonic() > deadline:
            raise AssertionError(f"worker did not write {path.name} within {timeout}s")
        await asyncio.sleep(0.05)
