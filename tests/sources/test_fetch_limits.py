"""Fetching URLs from outside, against real HTTP servers on loopback started here (never mocked).

A server on 127.0.0.2 stands for "the outside" (``FetchLimits(trusted=...)``);
127.0.0.1 is "inside".  Each hostile server ends in its own per-item error,
within the limit it trips: a redirect inside, a body past the cap (declared
or not), a server trickling a byte at a time, a scheme that is not http(s).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from creative_hub.hub import Hub
from creative_hub.sources._fetch import FetchLimits, is_public
from creative_hub.sources.feeds import FeedSource, PageSource
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite

PAGE = b"<html><head><title>Internal admin</title></head><body>secret</body></html>"
Handler = Callable[[BaseHTTPRequestHandler, threading.Event], None]


class Server:
    """A ThreadingHTTPServer on ``host`` whose GETs run ``routes[path](request, stop)``."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.routes: dict[str, Handler] = {}
        self.stop = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = outer.routes.get(self.path.split("?", 1)[0])
                try:
                    if route is None:
                        self.send_error(404)
                    else:
                        route(self, outer.stop)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: that is the point of most routes here

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), H)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def inside() -> Iterator[Server]:
    s = Server("127.0.0.1")
    s.routes["/admin"] = lambda r, stop: _send(r, 200, PAGE)
    yield s
    s.close()


@pytest.fixture
def outside() -> Iterator[Server]:
    s = Server("127.0.0.2")  # all of 127/8 is loopback on Linux
    yield s
    s.close()


def _send(r: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    r.send_response(status)
    for k, v in headers.items():
        r.send_header(k.replace("_", "-"), v)
    r.send_header("Content-Length", str(len(body)))
    r.end_headers()
    r.wfile.write(body)


def _redirect(to: str) -> Handler:
    def route(r: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        _send(r, 302, b"", Location=to)

    return route


def _huge(declare: bool) -> Handler:
    def route(r: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        r.send_response(200)
        r.send_header("Content-Type", "text/html")
        if declare:
            r.send_header("Content-Length", str(200 * 2**20))
        r.end_headers()
        chunk = b"<p>" + b"x" * 65536 + b"</p>"
        for _ in range(200 * 16):  # 200 MiB, unless the client hangs up first
            if stop.is_set():
                return
            r.wfile.write(chunk)

    return route


def _trickle(r: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    r.send_response(200)
    r.send_header("Content-Type", "text/html")
    r.end_headers()
    r.wfile.write(b"<html><head><title>")
    r.wfile.flush()
    while not stop.is_set():  # a byte every 0.2 s, forever: no single read ever times out
        r.wfile.write(b"x")
        r.wfile.flush()
        time.sleep(0.2)


def test_public_and_private_addresses() -> None:
    assert is_public("93.184.216.34") and is_public("2606:2800:220:1:248:1893:25c8:1946")
    for a in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "100.100.100.200",
              "0.0.0.0", "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "224.0.0.1"):  # fmt: skip
        assert not is_public(a), a
    # IPv6 forms that carry an IPv4 address a gateway reaches for us: NAT64 (64:ff9b::/96, as
    # DNS64 answers in IPv6-only clouds), 6to4, IPv4-compatible; and deprecated site-local.
    for a in ("64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "2002:7f00:1::1",
              "2002:a9fe:a9fe::1", "::127.0.0.1", "fec0::1"):  # fmt: skip
        assert not is_public(a), a
    assert is_public("64:ff9b::5db8:d822") and is_public("2002:5db8:d822::1")  # 93.184.216.34


async def test_a_url_inside_is_refused_unless_allowed(hub: Hub, stored, inside: Server) -> None:
    s = await ingest(hub, PageSource([f"{inside.url}/admin"]))
    (e,) = s.skipped
    assert s.ingested == 0
    assert "127.0.0.1 is 127.0.0.1, not a public address" in e.reason and "--allow-private" in e.reason
    s = await ingest(hub, PageSource([f"{inside.url}/admin"], limits=FetchLimits(allow_private=True)))
    assert s.ingested == 1


async def test_a_redirect_inside_is_refused_at_that_hop(
    hub: Hub, stored, inside: Server, outside: Server
) -> None:
    outside.routes["/page"] = _redirect(f"{inside.url}/admin")
    outside.routes["/by-name"] = _redirect(f"http://localhost:{inside.url.rsplit(':', 1)[1]}/admin")
    outside.routes["/file"] = _redirect("file:///etc/passwd")
    outside.routes["/fine"] = lambda r, stop: _send(r, 200, b"<html><title>Public</title></html>")
    outside.routes["/hop"] = _redirect("/fine")
    limits = FetchLimits(trusted=("127.0.0.2",))
    urls = [f"{outside.url}/{p}" for p in ("page", "by-name", "file", "hop")]
    s = await ingest(hub, PageSource(urls, limits=limits))
    assert s.ingested == 1  # the relative redirect to a public page is followed
    inside_ip, by_name, scheme = (e.reason for e in s.skipped)
    assert "is 127.0.0.1, not a public address" in inside_ip
    assert "localhost is " in by_name and "not a public address" in by_name
    assert "only http and https URLs are fetched" in scheme
    (page,) = await stored("creative.metadata")
    assert page.data["title"] == "Public"  # and never "Internal admin"


def _gzip_bomb(r: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    # 64 MiB of feed once inflated, 64 KiB on the wire: the cap counts what is inflated.
    _send(r, 200, _BOMB, Content_Type="application/rss+xml", Content_Encoding="gzip")


_BOMB = gzip.compress(b"<rss><channel>" + b" " * (64 * 2**20), compresslevel=9)


async def test_bodies_past_the_cap_stop(hub: Hub, outside: Server) -> None:
    outside.routes["/declared"] = _huge(declare=True)
    outside.routes["/streamed"] = _huge(declare=False)
    outside.routes["/gzip"] = _gzip_bomb
    limits = FetchLimits(trusted=("127.0.0.2",), max_bytes=2**20)
    urls = [f"{outside.url}/{p}" for p in ("declared", "streamed", "gzip")]
    s = await ingest(hub, FeedSource(urls, limits=limits))
    declared, streamed, bomb = (e.reason for e in s.skipped)
    assert "over the 1048576-byte limit (Content-Length 209715200" in declared
    assert "over the 1048576-byte limit (stopped reading at " in streamed and "--max-bytes" in streamed
    assert len(_BOMB) < 2**20 and "over the 1048576-byte limit (stopped reading at " in bomb


async def test_a_trickling_server_meets_the_deadline(hub: Hub, outside: Server) -> None:
    outside.routes["/slow"] = _trickle
    limits = FetchLimits(trusted=("127.0.0.2",), deadline=1.0)
    s = await ingest(hub, PageSource([f"{outside.url}/slow"], limits=limits))
    (e,) = s.skipped
    assert e.reason == "took longer than 1 s in all (a slow or trickling server; --timeout)"


def test_the_cli_refuses_inside_and_takes_allow_private(tmp_path: Path, inside: Server) -> None:
    env = {**os.environ, "CREATIVE_HUB_LOG": f"sqlite:///{tmp_path / 'hub.db'}", "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "creative_hub", "ingest", "page", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    r = run(f"{inside.url}/admin")
    assert r.returncode == 6, r.stderr
    assert "not a public address" in r.stderr and "nothing ingested" in r.stderr
    r = run(f"{inside.url}/admin", "--allow-private", "--max-bytes", "64k", "--timeout", "10s")
    assert r.returncode == 0 and "page: 1 ingested" in r.stdout


async def test_the_connection_goes_to_the_address_that_was_checked(
    hub: Hub, stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding: a name answers a public address when checked, then an inside one.
    # The guard must connect to the address it checked and never resolve the name again
    # (a second lookup, by the loop or by the system's resolver, reaches inside or fails).
    outside = Server("127.0.0.2")
    port = int(outside.url.rsplit(":", 1)[1])
    try:
        inside = Server("127.0.0.1", port)  # the same port, inside
    except OSError:
        outside.close()
        pytest.skip(f"port {port} is taken on 127.0.0.1")
    outside.routes["/page"] = lambda r, stop: _send(r, 200, b"<html><title>Public</title></html>")
    inside.routes["/page"] = lambda r, stop: _send(r, 200, PAGE)
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    answers = iter(["127.0.0.2"])  # the first answer; any later one is the rebound address

    async def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return await real(host, port, *args, **kwargs)
        return await real(next(answers, "127.0.0.1"), port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    try:
        limits = FetchLimits(trusted=("127.0.0.2",))
        s = await ingest(hub, PageSource([f"http://rebind.test:{port}/page"], limits=limits))
    finally:
        outside.close()
        inside.close()
    assert (s.ingested, s.skipped) == (1, []), s.skipped
    (page,) = await stored("creative.metadata")
    assert page.data["title"] == "Public"  # never "Internal admin"


async def test_arxiv_and_crossref_answers_are_bounded_too(hub: Hub, outside: Server) -> None:
    # The API's address is the person's choice (--api-url); what it sends is still capped
    # in size and in time (it was read whole, with only a per-read timeout).
    from creative_hub.sources.arxiv import ArxivSource
    from creative_hub.sources.crossref import CrossrefSource

    outside.routes["/big"] = _huge(declare=False)
    outside.routes["/big/works/10.1000/x"] = _huge(declare=True)
    outside.routes["/slow"] = _trickle
    limits = FetchLimits(max_bytes=2**20, deadline=1.0, allow_private=True)
    s = await ingest(hub, ArxivSource(ids=["2101.00001"], api_url=f"{outside.url}/big", limits=limits))
    assert "over the 1048576-byte limit (stopped reading at " in s.skipped[0].reason
    s = await ingest(hub, ArxivSource(ids=["2101.00001"], api_url=f"{outside.url}/slow", limits=limits))
    assert s.skipped[0].reason == "took longer than 1 s in all (a slow or trickling server)"
    s = await ingest(hub, CrossrefSource(dois=["10.1000/x"], api_url=f"{outside.url}/big", limits=limits))
    assert "over the 1048576-byte limit (Content-Length 209715200)" in s.skipped[0].reason


async def test_github_api_answers_are_bounded_too(hub: Hub, outside: Server) -> None:
    # REST polling read every page whole with only a per-read timeout: a 200 MiB answer
    # or a server trickling a byte at a time held the ingest without end.
    from creative_hub.sources.github import GithubSource

    outside.routes["/big/repos/o/r/commits"] = _huge(declare=False)
    outside.routes["/big/repos/o/r/pulls"] = _huge(declare=True)
    outside.routes["/slow/repos/o/r/commits"] = _trickle
    limits = FetchLimits(max_bytes=2**20, deadline=1.0, allow_private=True)
    s = await ingest(hub, GithubSource("o/r", api_url=f"{outside.url}/big", limits=limits))
    reasons = {x.ref: x.reason for x in s.skipped}
    assert "over the 1048576-byte limit (stopped reading at " in reasons["github:o/r/commits"]
    assert "over the 1048576-byte limit (Content-Length 209715200)" in reasons["github:o/r/pulls"]
    assert s.ingested == 0
    s = await ingest(hub, GithubSource("o/r", api_url=f"{outside.url}/slow", limits=limits))
    reasons = {x.ref: x.reason for x in s.skipped}
    assert reasons["github:o/r/commits"] == "took longer than 1 s in all (a slow or trickling server)"
