"""Fixtures for the source connectors: a fresh embedded SQLite hub per test."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from creative_hub.event import Event
from creative_hub.hub import Hub

Stored = Callable[[str], Awaitable[list[Event]]]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with Hub.connect(f"sqlite:///{tmp_path / 'hub.db'}", principal="ingester") as h:
        yield h


@pytest.fixture
def stored(hub: Hub) -> Stored:
    """``await stored(topic)``: every event of ``topic`` in log order."""

    async def read(topic: str) -> list[Event]:
        return [s.event async for s in hub.replay(topic)]

    return read


# -- a local HTTP server with recorded responses ----------------------------------
Response = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class Recorded:
    """Serves recorded responses on a free loopback port; ``routes`` maps a path
    to a response or to a function of the request; ``seen`` lists requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Response | Callable[[Seen], Response]] = {}
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                req = Seen(
                    "GET", url.path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()}
                )
                outer.seen.append(req)
                route = outer.routes.get(url.path)
                if route is None:
                    status, headers, body = 404, {"Content-Type": "text/plain"}, b"not recorded"
                else:
                    status, headers, body = route(req) if callable(route) else route
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_server() -> Iterator[Recorded]:
    server = Recorded()
    try:
        yield server
    finally:
        server.close()
