"""Fixtures shared by every test: engines (with their real servers) and hubs.

``log_url`` is parametrised over every engine whose module exists; each
param carries the engine's marker, so ``pytest -m redis`` runs the Redis part
alone.  Broker servers start once per session, on free loopback ports, in a
temp directory, and stop at the end.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from creative_hub.log import Log, open_log
from creative_hub.testing.servers import Server, start_server

# Property tests (tests/fuzz and others): CI runs the same examples every time
# (derandomized), so a red run is a regression, never a lucky new find that
# blocks unrelated work; a hunt (CREATIVE_HUB_FUZZ_SCALE=N, N times the
# examples) draws new ones each run.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("hunt")
settings.load_profile("hunt" if "CREATIVE_HUB_FUZZ_SCALE" in os.environ else "ci")

ENGINES = ["sqlite", "redis", "kafka", "nats"]


class Servers:
    """Broker servers for this session, started on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[str, Server] = {}

    def get(self, engine: str) -> Server:
        if engine not in self.running:
            self.running[engine] = start_server(engine, self.root / engine)
        server = self.running[engine]
        if not server.running:  # a fault test left it stopped
            server.start()
        return server

    def stop_all(self) -> None:
        for server in self.running.values():
            server.stop()


DUMP_BEFORE_TIMEOUT = 10.0  # seconds before pytest-timeout fires


def _print_tasks(loop: asyncio.AbstractEventLoop) -> None:
    out = io.StringIO()
    tasks = asyncio.all_tasks(loop)
    print(f"--- {len(tasks)} asyncio tasks, {DUMP_BEFORE_TIMEOUT:.0f} s before the timeout ---", file=out)
    for task in tasks:
        print(f"{task.get_name()}:", file=out)
        # The whole await chain (Task.print_stack shows a coroutine's outer frame only).
        node: object = task.get_coro()
        while node is not None:
            frame = getattr(node, "cr_frame", None) or getattr(node, "ag_frame", None)
            frame = frame or getattr(node, "gi_frame", None)
            if frame is None:
                print(f"    awaiting {node!r}", file=out)
                break
            print(f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}", file=out)
            awaited = getattr(node, "cr_await", None) or getattr(node, "ag_await", None)
            node = awaited or getattr(node, "gi_yieldfrom", None)
    sys.stderr.write(out.getvalue())


def _dump_running_loops() -> None:
    # pytest-timeout interrupts the event loop's select(), so its report shows
    # only that frame: print what every task was waiting for, from the loop's
    # own thread (the report's "Captured stderr call").
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running():
            obj.call_soon_threadsafe(_print_tasks, obj)


@pytest.fixture(autouse=True)
def _tasks_shown_on_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("timeout")
    limit = marker.args[0] if marker is not None and marker.args else request.config.getini("timeout")
    limit = float(request.config.getoption("timeout", None) or limit or 0)
    if limit <= DUMP_BEFORE_TIMEOUT * 2:
        yield
        return
    timer = threading.Timer(limit - DUMP_BEFORE_TIMEOUT, _dump_running_loops)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    s = Servers(tmp_path_factory.mktemp("servers"))
    try:
        yield s
    finally:
        s.stop_all()


def engine_params(engines: list[str] | None = None) -> list[object]:
    """``pytest.param`` per engine, each with its marker."""
    return [pytest.param(e, marks=getattr(pytest.mark, e), id=e) for e in (engines or ENGINES)]


@pytest.fixture(params=engine_params())
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def log_url(engine: str, servers: Servers, tmp_path: Path) -> str:
    """A URL for a fresh log on ``engine``; brokers are shared, topics are unique per test."""
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return servers.get(engine).url


@pytest.fixture
async def log(log_url: str) -> AsyncIterator[Log]:
    lg = open_log(log_url)
    await lg.open()
    try:
        yield lg
    finally:
        await lg.close()


@pytest.fixture
def fixtures_dir() -> Path:
    """The shared real-world fixtures (../shared/fixtures beside the repo)."""
    here = Path(__file__).resolve().parent.parent
    path = Path(os.environ.get("CREATIVE_HUB_FIXTURES", here.parent / "shared" / "fixtures"))
    if not path.is_dir():
        pytest.fail(f"shared fixtures not found at {path}; set CREATIVE_HUB_FIXTURES")
    return path
