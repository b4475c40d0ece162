"""Child processes the package starts (the local model server, the test brokers): stopping one.

    stop_process(proc, timeout=10.0)    # SIGTERM, then SIGKILL after 10 s; reaped either way
"""

from __future__ import annotations

import subprocess
from typing import Any

__all__ = ["stop_process"]


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """Stop ``proc`` if it still runs: SIGTERM, then SIGKILL if it has not exited within
    ``timeout`` seconds.  Either way it is waited for, so no zombie is left."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
