"""A hostile client against a real server over real sockets: slow heads and bodies, silent and
idle connections, too many connections from one address, floods, guessed tokens, deep JSON.

The strict server has 3-second timeouts.  A slow client here sends a byte every 2 s for far
longer than that; each test checks the server hung up before the client ran out of bytes
(without the limit, the connection stays open as long as the bytes keep coming).
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from live_server import STRICT_CONNECTIONS, STRICT_TIMEOUT, LiveServer, start_server

from creative_hub.server import ServerSettings

pytestmark = pytest.mark.sqlite

PROBLEM = "application/problem+json"
SLOW = 2.0  # seconds between the bytes of a slow client


def connect(server: LiveServer) -> socket.socket:
    u = urlsplit(server.url)
    assert u.hostname and u.port
    return socket.create_connection((u.hostname, u.port), timeout=30)


def read_until_closed(sock: socket.socket, within: float) -> bytes | None:
    """Everything the server sends until it closes; None if it is still open after ``within`` s."""
    data = b""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def trickle(sock: socket.socket, payload: bytes) -> tuple[bytes | None, int]:
    """Send ``payload`` a byte every ``SLOW`` s; (what the server said before it hung up, bytes
    sent), or (None, all of them) if it never did."""
    sent = 0
    for byte in payload:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return b"", sent
        sent += 1
        ready, _, _ = select.select([sock], [], [], SLOW)
        if ready:
            return read_until_closed(sock, 30) or b"", sent
    return None, sent


def test_a_silent_connection_is_closed(strict: LiveServer) -> None:
    with connect(strict) as sock:
        started = time.monotonic()
        answer = read_until_closed(sock, STRICT_TIMEOUT * 5)
        assert answer == b"", (
            f"open after {time.monotonic() - started:.1f} s (idle timeout {STRICT_TIMEOUT} s)"
        )


def test_a_slow_request_head_gets_408_and_is_closed(strict: LiveServer) -> None:
    with connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")
        answer, sent = trickle(sock, b"X-Slow: abcdefgh")  # 16 bytes: 32 s if nobody hangs up
        assert answer is not None, f"still open after {sent} bytes at one per {SLOW} s"
        assert sent < 16
        assert answer.startswith(b"HTTP/1.1 408 ") and b"request head took over" in answer


def test_a_slow_body_is_closed(strict: LiveServer) -> None:
    body = json.dumps({"type": "creative.metadata.file", "data": {"path": "slow", "size": 1}}).encode()
    head = (
        b"POST /v1/events HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
        % (strict.tokens["alice"].encode(), len(body))
    )
    with connect(strict) as sock:
        sock.sendall(head)
        answer, sent = trickle(sock, body[:16])
        assert answer is not None, f"still open after {sent} body bytes at one per {SLOW} s"
        assert sent < 16
    r = httpx.get(strict.url + "/v1/topics/creative.metadata/events", timeout=30)
    events = r.json()["events"] if r.status_code == 200 else []
    assert all(e["event"]["data"]["path"] != "slow" for e in events), "a cut-off body wrote nothing"


def test_an_idle_keep_alive_connection_is_closed(strict: LiveServer) -> None:
    with connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 ")
        answer = read_until_closed(sock, STRICT_TIMEOUT * 5)
        assert answer is not None, f"a keep-alive connection idle for {STRICT_TIMEOUT * 5} s is still open"


def test_a_normal_request_still_passes(strict: LiveServer) -> None:
    with strict.client("alice") as c:
        r = c.post("/v1/events", json={"type": "creative.metadata.file", "data": {"path": "ok", "size": 1}})
        assert r.status_code == 201, r.text
        assert c.get("/v1/topics").status_code == 200


def _open_stream(server: LiveServer) -> socket.socket:
    sock = connect(server)
    sock.sendall(b"GET /v1/topics/creative.engineering/stream?tail=0 HTTP/1.1\r\nHost: hub\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"closed: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200 "), head
    return sock


def test_connections_per_address_are_capped(strict: LiveServer) -> None:
    streams = [_open_stream(strict) for _ in range(STRICT_CONNECTIONS)]  # long responses: never timed out
    try:
        with connect(strict) as extra:
            answer = read_until_closed(extra, 30)
            assert answer is not None and answer.startswith(b"HTTP/1.1 503 ")
            assert b"open connections per client address" in answer
        streams.pop().close()
        deadline = time.monotonic() + 30  # the server sees the close when the loop next runs
        while True:
            r = httpx.get(strict.url + "/healthz", timeout=30)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.status_code == 200, "a closed connection frees its place"
    finally:
        for s in streams:
            s.close()


def test_deep_json_is_a_422_naming_the_rule(strict: LiveServer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with strict.client("alice") as c:
        r = c.post("/v1/events", content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)
        problem = r.json()
        assert problem["field"] == "body" and "nested deeper than 64 levels" in problem["rule"]

        def nested(levels: int) -> object:
            value: object = 1
            for _ in range(levels):
                value = {"x": value}
            return value

        # The event object is level 1, data 2: 62 objects inside make 64 levels.
        ok = {"type": "creative.metadata.file", "data": {"path": "deep", "size": 1, "extra": nested(62)}}
        assert c.post("/v1/events", json=ok).status_code == 201
        ok["data"]["extra"] = nested(63)  # type: ignore[index]
        r = c.post("/v1/events", json=ok)
        assert r.status_code == 422 and "nested deeper than 64" in r.json()["rule"]
    assert httpx.get(strict.url + "/healthz", timeout=30).status_code == 200
    log = (Path(strict.log_url.removeprefix("sqlite:///")).parent / "server.log").read_text(errors="replace")
    assert "Traceback" not in log and "RecursionError" not in log, log[-2000:]


# -- rate limiting as shipped -----------------------------------------------------------
@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[LiveServer]:
    """``creative-hub up`` with no limit options at all (one per test: the tests spend its buckets)."""
    yield from start_server(tmp_path, ["up", "--refresh", "5"])


def test_rate_limiting_is_on_by_default(shipped: LiveServer) -> None:
    # The server states its limit and what is left of it (IETF RateLimit headers): with nothing
    # configured, a token and an anonymous address each have a bucket, and a request spends from it.
    assert ServerSettings().rate_limit > 0 and ServerSettings().auth_failures > 0
    for headers in ({}, shipped.headers("bob")):
        first = httpx.get(shipped.url + "/v1/topics", headers=headers, timeout=30)
        assert first.status_code == 200
        policy = dict(p.split("=") for p in first.headers["ratelimit-policy"].split(";")[1:])
        burst, window = int(policy["q"]), int(policy["w"])
        assert 0 < burst <= 1000 and 0 < burst / window <= 100, "a limit, and a sensible one"
        left = int(first.headers["ratelimit"].split(";")[1].removeprefix("r="))
        assert left == burst - 1
    assert "ratelimit" not in httpx.get(shipped.url + "/healthz", timeout=30).headers  # probes: never


def test_bad_tokens_are_throttled_per_address(shipped: LiveServer) -> None:
    bad = [f"guess-{i}" for i in range(30)]
    with httpx.Client(base_url=shipped.url, timeout=30) as c:
        answers = [c.get("/v1/topics", headers={"Authorization": f"Bearer {t}"}) for t in bad]
        assert [r.status_code for r in answers[:10]] == [401] * 10  # a few typos are forgiven
        throttled = [r for r in answers[10:] if r.status_code == 429]
        assert throttled, "thirty guesses at once, none throttled"
        assert "failed authentications" in throttled[0].json()["detail"]
        assert int(throttled[0].headers["retry-after"]) >= 1
        # The check comes before the token is looked at: a right guess does not get through now.
        r = c.get("/v1/topics", headers=shipped.headers("alice"))
        assert r.status_code == 429
