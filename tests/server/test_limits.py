"""Limits and their answers: body size, CORS, rate limit, readiness when the log is down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import CORS_ORIGIN, LIMITED_MAX_BODY, LiveServer

from creative_hub.errors import EngineUnavailable
from creative_hub.hub import Hub
from creative_hub.log.base import Health
from creative_hub.server import ServerSettings, create_app

pytestmark = pytest.mark.sqlite

PROBLEM = "application/problem+json"


def file_event(path: str, pad: int = 0) -> dict[str, Any]:
    return {
        "type": "creative.metadata.file",
        "data": {"path": path, "size": pad, "extra": {"pad": "x" * pad}},
    }


def body_of_size(size: int, events: list[dict[str, Any]]) -> bytes:
    """A JSON array of ``events``, padded with whitespace to exactly ``size`` bytes."""
    raw = json.dumps(events).encode()
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"]"


def count(server: LiveServer, topic: str) -> int:
    for t in httpx.get(server.url + "/v1/topics").json():
        if t["name"] == topic:
            return int(t["count"])
    return 0


def test_body_limit(limited: LiveServer) -> None:
    half = LIMITED_MAX_BODY // 2 - 1000  # two events per body, each under the 1 MiB event limit
    events = [file_event("a", half), file_event("b", half)]
    with limited.client("alice") as c:
        for size, status in ((LIMITED_MAX_BODY - 1, 201), (LIMITED_MAX_BODY, 201)):
            events = [file_event(f"{size}-a", half), file_event(f"{size}-b", half)]
            r = c.post(
                "/v1/events", content=body_of_size(size, events), headers={"content-type": "application/json"}
            )
            assert r.status_code == status, r.text
        before = count(limited, "creative.metadata")
        for size in (LIMITED_MAX_BODY + 1, 10 * LIMITED_MAX_BODY):
            r = c.post(
                "/v1/events", content=body_of_size(size, events), headers={"content-type": "application/json"}
            )
            assert r.status_code == 413 and r.headers["content-type"].startswith(PROBLEM)
            assert r.json()["title"] == "Payload too large"

        def chunked(size: int) -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
            body = body_of_size(size, events)
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        r = c.post(
            "/v1/events", content=chunked(LIMITED_MAX_BODY + 1), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413 and r.json()["status"] == 413
        r = c.post(
            "/v1/events", content=chunked(3 * LIMITED_MAX_BODY), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert count(limited, "creative.metadata") == before  # nothing half-written
        small = [file_event("chunked-ok")]
        r = c.post("/v1/events", content=iter([json.dumps(small).encode()]))
        assert r.status_code == 201
    # Huge headers: refused by the HTTP parser; the server stays up.
    try:
        r = httpx.get(limited.url + "/v1/topics", headers={"X-Big": "y" * 200_000})
        assert 400 <= r.status_code < 500
    except httpx.TransportError:
        pass  # the parser closed (or reset) the connection instead of answering
    assert httpx.get(limited.url + "/healthz").status_code == 200


def test_cors(limited: LiveServer, live: LiveServer) -> None:
    preflight = {
        "Origin": CORS_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    r = httpx.options(limited.url + "/v1/events", headers=preflight)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    r = httpx.options(limited.url + "/v1/events", headers={**preflight, "Origin": "https://evil.example"})
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
    r = httpx.get(limited.url + "/v1/topics", headers={"Origin": CORS_ORIGIN})
    assert r.headers["access-control-allow-origin"] == CORS_ORIGIN
    # Errors carry the CORS headers too, so the browser lets the page read them.
    r = httpx.post(limited.url + "/v1/events", json=file_event("x"), headers={"Origin": CORS_ORIGIN})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == CORS_ORIGIN
    r = httpx.get(limited.url + "/v1/topics", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    # A server without cors_origins sends no CORS headers at all.
    r = httpx.get(live.url + "/v1/topics", headers={"Origin": CORS_ORIGIN})
    assert "access-control-allow-origin" not in r.headers


def test_rate_limit_per_token(throttled: LiveServer) -> None:
    with throttled.client("alice") as alice, throttled.client("bob") as bob:
        statuses = [alice.get("/v1/topics") for _ in range(10)]
        assert [r.status_code for r in statuses[:3]] == [200, 200, 200]  # the burst
        refused = [r for r in statuses if r.status_code == 429]
        assert refused, "ten requests at once must pass a burst of three at 0.5/s"
        r = refused[0]
        assert r.headers["content-type"].startswith(PROBLEM) and r.json()["status"] == 429
        assert int(r.headers["retry-after"]) >= 1
        assert bob.get("/v1/topics").status_code == 200  # another token, another bucket
    assert all(httpx.get(throttled.url + "/healthz").status_code == 200 for _ in range(10))
    assert throttled.metric("creative_hub_rate_limited_requests_total") >= 1
    # --no-anonymous: the API needs a token, the dashboard's files do not.
    r = httpx.get(throttled.url + "/v1/topics")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(throttled.url + "/dashboard/").status_code == 200


class _DownLog:
    """A log whose broker is gone: health hangs or says so, every call fails."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang

    async def health(self) -> Health:
        if self.hang:
            await asyncio.sleep(3600)
        return Health(False, "fake", "fake://", "connection refused")

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: object, **kwargs: object) -> None:
            raise EngineUnavailable("fake://", "connection refused")

        return fail


@pytest.mark.parametrize("hang", [True, False], ids=["hangs", "refuses"])
async def test_readyz_is_503_at_once_when_the_log_is_down(hang: bool) -> None:
    hub = Hub(_DownLog(hang))  # type: ignore[arg-type]
    app = create_app(hub, ServerSettings(ready_timeout=0.2))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        r = await asyncio.wait_for(c.get("/readyz"), 5)  # a bound on the test, not a timing assertion
        assert r.status_code == 503 and r.json()["ok"] is False
        assert (await c.get("/healthz")).status_code == 200  # alive, not ready
        assert (await c.get("/metrics")).status_code == 200  # the counters still answer
        r = await c.get("/v1/topics")
        assert r.status_code == 503 and r.headers["content-type"].startswith(PROBLEM)
        assert r.headers["retry-after"] == "1"


async def test_github_webhook_is_mounted_with_a_secret(tmp_path: Path) -> None:
    github = pytest.importorskip("creative_hub.sources.github")
    async with Hub.connect(f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        app = create_app(hub, ServerSettings(github_secret="It's a Secret to Everybody"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
            r = await c.post("/webhooks/github", content=b"{}", headers={"X-GitHub-Event": "ping"})
            assert r.status_code == 401  # unsigned
            body = b'{"zen": "hi"}'
            headers = {
                "X-GitHub-Event": "ping",
                "X-Hub-Signature-256": github.sign("It's a Secret to Everybody", body),
            }
            assert (await c.post("/webhooks/github", content=body, headers=headers)).status_code == 200
        without = create_app(hub)  # no secret: no route
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=without), base_url="http://hub") as c:
            assert (await c.post("/webhooks/github", content=b"{}")).status_code in (404, 405)
