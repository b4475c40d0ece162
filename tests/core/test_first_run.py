"""A newcomer's first run: `creative-hub up` as a person (or a script) starts and stops it.

Real processes on free ports: a taken port is one line and no file, SIGINT and SIGTERM stop
the hub the same way (also when it was started with SIGINT ignored, as a script's
background job is), the banner leads with the dashboard, the log stays quiet.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from creative_hub.testing.servers import free_port

pytestmark = pytest.mark.sqlite

CLI = [sys.executable, "-m", "creative_hub"]


def env() -> dict[str, str]:
    e = {**os.environ, "COLUMNS": "200", "CREATIVE_HUB_PRINCIPAL": "alice"}
    e.pop("CREATIVE_HUB_PORT", None)
    return e


def start_up(
    cwd: Path, port: int, *, ignore_sigint: bool = False, extra: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    def child() -> None:
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a non-interactive shell does

    proc = subprocess.Popen(
        [*CLI, "up", "--port", str(port), "--log", f"sqlite:///{cwd / 'hub.db'}", *extra],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        preexec_fn=child,
    )
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "up did not answer in 60 s"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running 30 s after signal {sig}:\n{out}\n{err}")
    return proc.returncode, out, err


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_on_a_taken_port_says_so_in_one_line_and_creates_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        workdir = tmp_path / "fresh"
        workdir.mkdir()
        r = subprocess.run(
            [*CLI, "up", "--port", str(port)],
            cwd=workdir,
            capture_output=True,
            text=True,
            env=env(),
            timeout=120,
        )
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        f"error: port {port} is in use; try --port {port + 1} or CREATIVE_HUB_PORT"
    ], r.stderr
    assert r.stdout == ""
    assert list(workdir.iterdir()) == [], "nothing may be created when the hub cannot start"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_up_fully_and_it_says_stopped(tmp_path: Path, sig: int) -> None:
    port = free_port()
    proc = start_up(tmp_path, port)
    code, out, err = stop(proc, sig)
    assert code == 0, err
    assert out.rstrip().endswith("stopped"), out
    assert "Traceback" not in err
    assert not listening(port)


def test_started_with_sigint_ignored_sigint_still_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    proc = start_up(tmp_path, port, ignore_sigint=True)
    code, out, err = stop(proc, signal.SIGINT)  # before: the HTTP server stopped, the process stayed
    assert code == 0, err
    assert out.rstrip().endswith("stopped")
    assert not listening(port)


def test_the_banner_leads_with_the_dashboard_and_the_log_is_quiet(tmp_path: Path) -> None:
    port = free_port()
    proc = start_up(tmp_path, port)
    httpx.post(f"http://127.0.0.1:{port}/mcp/hub/", json={}, timeout=30)  # wakes an MCP session manager
    code, out, err = stop(proc, signal.SIGTERM)
    assert code == 0
    assert out.splitlines()[0] == f"creative-hub is up: open http://127.0.0.1:{port}/dashboard/"
    assert "StreamableHTTP" not in err and "INFO" not in err, err
    proc = start_up(tmp_path, port, extra=("--verbose",))
    code, out, err = stop(proc, signal.SIGTERM)
    assert "StreamableHTTP session manager started" in err
    assert all(line.startswith(("INFO ", "WARNING ")) for line in err.splitlines() if line), err


def test_publish_of_deeply_nested_json_is_one_line_and_a_failure(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"type": "creative.metadata.file", "data": ' + "[" * 100_000 + "]" * 100_000 + "}")
    r = subprocess.run(
        [*CLI, "publish", str(deep), "--log", f"sqlite:///{tmp_path / 'hub.db'}"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
    )
    assert r.returncode != 0
    (line,) = r.stderr.strip().splitlines()
    assert "nested deeper than 64 levels" in line and "RecursionError" not in line
