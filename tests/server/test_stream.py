"""Server-Sent Events against the real server: resume, hand-off to live, slow consumers."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LIMITED_QUEUE, LiveServer, SSEReader

pytestmark = pytest.mark.sqlite


def ceremony(title: str) -> dict[str, Any]:
    return {"type": "creative.ceremony.session", "data": {"title": title, "start": "2026-11-24T10:00:00Z"}}


def publish(server: LiveServer, who: str, events: list[dict[str, Any]]) -> list[str]:
    r = httpx.post(server.url + "/v1/events", json=events, headers=server.headers(who), timeout=30)
    assert r.status_code == 201, r.text
    return [x["position"] for x in r.json()]


def test_resume_with_last_event_id(live: LiveServer) -> None:
    tag = uuid.uuid4().hex[:6]
    p = publish(live, "alice", [ceremony(f"{tag}-{i}") for i in range(3)])
    url = live.url + "/v1/topics/creative.ceremony/stream"
    with httpx.Client(timeout=30) as c:
        with c.stream("GET", url, headers={"Last-Event-ID": p[0]}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            sse = SSEReader(r)
            got = sse.next(2)
            assert [m.id for m in got] == p[1:]
            assert got[0].event == "creative.ceremony.session"
            assert json.loads(got[0].data)["data"]["title"] == f"{tag}-1"
            q = publish(live, "bob", [ceremony(f"{tag}-3"), ceremony(f"{tag}-4")])  # live, after history
            live_msgs = sse.next(2)
            assert [m.id for m in live_msgs] == q
            assert json.loads(live_msgs[1].data)["creator"] == "bob"
        # Reconnect where the client stopped: no gap, no duplicate.
        with c.stream("GET", url, headers={"Last-Event-ID": q[0]}) as r:
            assert [m.id for m in SSEReader(r).next(1)] == [q[1]]
        with c.stream("GET", url, params={"after": p[2]}) as r:
            assert [m.id for m in SSEReader(r).next(2)] == q
        with c.stream("GET", url, params={"tail": 1}) as r:
            assert [m.id for m in SSEReader(r).next(1)] == [q[1]]
        with c.stream("GET", url) as r:  # no start: from the beginning
            first = SSEReader(r).next(1)[0]
            assert first.id is not None and int(first.id) <= int(p[0])
        r = c.get(url, headers={"Last-Event-ID": "not-a-position"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("server_name", ["live", "limited"])
def test_catch_up_hands_off_to_live_without_gap_or_duplicate(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    """History read while events keep coming (on `limited` the queue of 16 overflows during
    the catch-up, which makes the stream rejoin the live feed)."""
    server: LiveServer = request.getfixturevalue(server_name)
    topic = "creative.narrative"
    tag = uuid.uuid4().hex[:6]
    ev = lambda i: {  # noqa: E731
        "type": "creative.narrative.fragment",
        "subject": f"story:{tag}",
        "data": {"story": tag, "title": f"{tag}-{i}", "text": "x" * 200},
    }
    start = publish(server, "alice", [ev(0)])[0]
    publish(server, "alice", [ev(i) for i in range(1, 300)])
    done = threading.Event()

    def keep_publishing() -> None:
        for k in range(20):
            publish(server, "bob", [ev(300 + k * 10 + j) for j in range(10)])
        done.set()

    t = threading.Thread(target=keep_publishing)
    titles: list[str] = []
    ids: list[int] = []
    last = start
    drops = 0
    with httpx.Client(timeout=60) as c:
        while len(titles) < 499:
            # A client that falls behind the queue is dropped by policy; it resumes the way
            # EventSource does, with Last-Event-ID -- and still sees no gap, no duplicate.
            try:
                with c.stream(
                    "GET", f"{server.url}/v1/topics/{topic}/stream", headers={"Last-Event-ID": last}
                ) as r:
                    if not t.is_alive() and not done.is_set():
                        t.start()
                    sse = SSEReader(r)
                    while len(titles) < 499:
                        got = sse.next(1)
                        if not got:
                            raise httpx.RemoteProtocolError("the stream ended")
                        for m in got:
                            ids.append(int(m.id or 0))
                            last = m.id or last
                            title = json.loads(m.data)["data"]["title"]
                            if title.startswith(tag):
                                titles.append(title)
            except httpx.RemoteProtocolError:
                drops += 1
                assert drops < 100
        t.join()
    assert done.is_set()
    assert ids == sorted(ids) and len(ids) == len(set(ids))  # in order, no duplicate
    assert titles == [f"{tag}-{i}" for i in range(1, 500)]  # no gap


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_client_that_does_not_read_is_dropped(limited: LiveServer) -> None:
    """Slow-consumer policy: a client that stops reading falls LIMITED_QUEUE events behind
    and is disconnected; server memory stays bounded while publishing goes on."""
    host, port = limited.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small: the server fills it fast
    sock.connect((host, int(port)))
    try:
        sock.sendall(b"GET /v1/topics/creative.engineering/stream?tail=0 HTTP/1.1\r\nHost: hub\r\n\r\n")
        head = b""
        while b": connected" not in head:
            head += sock.recv(1024)
        deadline = time.monotonic() + 10  # an earlier test's client may still be leaving
        while limited.metric("creative_hub_stream_clients") != 1:
            assert time.monotonic() < deadline, "this client is not the only one counted"
            time.sleep(0.05)
        dropped_before = limited.metric("creative_hub_stream_dropped_clients_total")
        rss_before = _rss_kb(limited.proc.pid)
        commit = {"repo": "r", "sha": "abcd", "message": "m" * 60_000}
        published = 0
        while limited.metric("creative_hub_stream_dropped_clients_total") == dropped_before:
            batch = [{"type": "creative.engineering.commit", "data": commit} for _ in range(10)]
            publish(limited, "alice", batch)
            published += len(batch)
            assert published < 5000, "the silent client was never dropped"
        # The dropped client is gone from the gauge, and the server did not hoard its events.
        deadline = time.monotonic() + 30
        while limited.metric("creative_hub_stream_clients") != 0:
            assert time.monotonic() < deadline, "the dropped client is still counted"
            time.sleep(0.05)
        growth_mb = (_rss_kb(limited.proc.pid) - rss_before) / 1024
        assert growth_mb < 64, f"server grew {growth_mb:.0f} MB for one silent client"
        assert published * 60_000 > LIMITED_QUEUE * 60_000  # it took more than the queue to drop it
        sock.settimeout(10)
        try:  # the connection ends (after what the kernel buffered)
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    assert httpx.get(limited.url + "/healthz").status_code == 200
