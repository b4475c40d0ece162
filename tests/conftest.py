"""Fixtures shared by every test: engines (with their real servers) and hubs.

``log_url`` is parametrised over every engine whose module exists; each
param carries the engine's marker, so ``pytest -m redis`` runs the Redis part
alone.  Broker servers start once per session, on free loopback ports, in a
temp directory, and stop at the end.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from creative_hub.log import Log, open_log
from creative_hub.testing.servers import Server, start_server

ALL_ENGINES = ["sqlite", "redis", "kafka", "nats"]


def _landed(engine: str) -> bool:
    return importlib.util.find_spec(f"creative_hub.log.{engine}") is not None


ENGINES = [e for e in ALL_ENGINES if _landed(e)]


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
