"""Real server processes for the HTTP tests: ``creative-hub up`` on a free port.

``live`` is the server as users start it (``python -m creative_hub up``);
``limited`` runs ``python -m creative_hub.server`` with small limits, CORS and
a short SSE queue; ``throttled`` has a per-token rate limit; ``strict`` has
short connection timeouts and a small cap on connections per address.  Each gets a
fresh SQLite log and principals alice, bob and carol with a token each.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_server import (
    CORS_ORIGIN,
    LIMITED_MAX_BODY,
    LIMITED_QUEUE,
    STRICT_CONNECTIONS,
    STRICT_TIMEOUT,
    LiveServer,
    start_server,
)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``creative-hub up`` as a user starts it."""
    yield from start_server(tmp_path_factory.mktemp("live"), ["up", "--refresh", "5"])


@pytest.fixture(scope="session")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Small body limit, a short SSE queue, CORS for one origin."""
    args = [
        "--max-body",
        str(LIMITED_MAX_BODY),
        "--stream-queue",
        str(LIMITED_QUEUE),
        "--cors-origin",
        CORS_ORIGIN,
    ]
    yield from start_server(tmp_path_factory.mktemp("limited"), args, module="creative_hub.server")


@pytest.fixture(scope="session")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Half a request a second per token, bursts of three."""
    args = ["--rate-limit", "0.5", "--rate-burst", "3", "--no-anonymous"]
    yield from start_server(tmp_path_factory.mktemp("throttled"), args, module="creative_hub.server")


@pytest.fixture(scope="session")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Short header, body and idle timeouts; a few connections per address; no rate limit
    (the tests open many connections on purpose and count only what the limits do)."""
    t = str(STRICT_TIMEOUT)
    args = ["--header-timeout", t, "--body-timeout", t, "--idle-timeout", t]
    args += ["--max-connections", str(STRICT_CONNECTIONS), "--rate-limit", "0"]
    yield from start_server(tmp_path_factory.mktemp("strict"), args, module="creative_hub.server")
