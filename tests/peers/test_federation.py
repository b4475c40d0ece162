"""Two hubs on loopback: one follows a peer hub of the other over HTTP."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from creative_hub.errors import AccessDenied, ValidationError
from creative_hub.event import decode_event, encode_event
from creative_hub.federation import FEDERATION_TOPIC, Follower
from creative_hub.hub import Hub
from creative_hub.log import Entry, open_log
from creative_hub.peers import PeerHub
from creative_hub.principals import Keystore, verify_signature
from creative_hub.server import serve
from creative_hub.testing.servers import free_port

pytestmark = pytest.mark.sqlite


@pytest.fixture
async def remote(tmp_path: Path) -> AsyncIterator[tuple[Hub, str]]:
    """Hub A with its HTTP server on a free loopback port."""
    log = open_log(f"sqlite:///{tmp_path / 'a.db'}")
    await log.open()
    hub = Hub(log, keystore=Keystore(tmp_path / "a.keys"))
    port = free_port()
    started = asyncio.Event()
    task = asyncio.create_task(serve(hub, port=port, started=started))
    await asyncio.wait_for(started.wait(), 30)
    try:
        yield hub, f"http://127.0.0.1:{port}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await log.close()


async def test_follow_a_peer_hub_over_http(remote: tuple[Hub, str], tmp_path: Path) -> None:
    hub_a, url = remote
    await hub_a.registry.add("alice")
    await hub_a.registry.add("carol")
    alice = PeerHub(hub_a.acting("alice", authenticated=True))
    carol = PeerHub(hub_a.acting("carol", authenticated=True))
    published = []
    for i in range(3):
        d = await alice.draft(
            "creative.narrative.fragment", f"story:{i}", {"story": "s", "title": f"t{i}", "text": "x"}
        )
        published.append((await alice.publish(d.id)).id)
    secret = await alice.draft(
        "creative.narrative.fragment", "story:secret", {"story": "s", "title": "no", "text": "x"}
    )
    await carol.feedback(published[0], "Lovely")

    log_b = open_log(f"sqlite:///{tmp_path / 'b.db'}")
    await log_b.open()
    try:
        hub_b = Hub(log_b, keystore=Keystore(tmp_path / "b.keys"))
        result = await Follower(hub_b, url, "alice").run_once()
        assert result.refused == []
        assert (result.fetched, result.stored) == (4, 4)
        got = [s.event async for s in hub_b.replay("peer.alice.published")]
        assert [e.id for e in got] == published
        assert secret.id not in {s.event.id async for s in hub_b.replay("peer.alice.published")}
        assert [t.name for t in await hub_b.topics() if "drafts" in t.name] == []
        key = hub_b.registry.public_key("alice")
        assert key and all(verify_signature(e, key) for e in got)
        (fb,) = [s.event async for s in hub_b.replay("peer.alice.feedback")]
        assert fb.creator == "carol" and verify_signature(fb, hub_b.registry.public_key("carol") or "")

        # A forged event on A (signature by another key) is refused and nothing is stored.
        good = decode_event(encode_event(got[0]))
        forged = msgspec.structs.replace(
            good,
            id="forged-1",
            data={**good.data, "title": "forged"},
            signature=base64.b64encode(b"x" * 64).decode(),
        )
        unsigned = msgspec.structs.replace(good, id="unsigned-1", signature=None)
        for ev in (forged, unsigned):
            body = encode_event(ev)
            await hub_a.log.append("peer.alice.published", [Entry(ev.id, "alice", body, ev.id, "alice")])
        d = await alice.draft(
            "creative.narrative.fragment", "story:new", {"story": "s", "title": "new", "text": "x"}
        )
        newest = (await alice.publish(d.id)).id

        # A restarted follower resumes from its cursor.
        again = await Follower(hub_b, url, "alice").run_once()
        assert again.fetched == 3 and again.stored == 1
        assert sorted(i for i, _ in again.refused) == ["forged-1", "unsigned-1"]
        assert all("signature" in reason for _, reason in again.refused)
        ids = [s.event.id async for s in hub_b.replay("peer.alice.published")]
        assert ids == [*published, newest]
        assert (await Follower(hub_b, url, "alice").run_once()).fetched == 0
        # The cursors are kept as CloudEvents, like every record on every topic (issue 24).
        cursors = [r.body async for r in log_b.read(FEDERATION_TOPIC)]
        assert cursors
        for body in cursors:
            ce = JSONFormat().read(CloudEvent, body)
            assert ce.get_type() == "creative.system.cursor" and ce.get_data()["remote"] == url
    finally:
        await log_b.close()


async def test_follow_refuses_a_remote_claiming_a_local_principal(
    remote: tuple[Hub, str], tmp_path: Path
) -> None:
    """B has its own alice; A's alice (another key) is not taken for her, nor stored."""
    hub_a, url = remote
    await hub_a.registry.add("alice")
    alice = PeerHub(hub_a.acting("alice", authenticated=True))
    d = await alice.draft("creative.narrative.fragment", "story:x", {"story": "s", "title": "t", "text": "x"})
    await alice.publish(d.id)
    log_b = open_log(f"sqlite:///{tmp_path / 'b.db'}")
    await log_b.open()
    try:
        hub_b = Hub(log_b, keystore=Keystore(tmp_path / "b.keys"))
        local = await hub_b.registry.add("alice")
        with pytest.raises(AccessDenied, match="alice.*another key"):
            await Follower(hub_b, url, "alice").run_once()
        assert [t.name for t in await hub_b.topics() if t.name.startswith("peer.")] == []
        assert hub_b.registry.public_key("alice") == local.public_key
    finally:
        await log_b.close()


class _Huge(BaseHTTPRequestHandler):
    """A hostile 'hub' whose every answer is 4 MiB of JSON."""

    def do_GET(self) -> None:
        body = b'{"events": [], "pad": "' + b"x" * (4 << 20) + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_follow_bounds_what_a_remote_sends(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Huge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    log = open_log(f"sqlite:///{tmp_path / 'b.db'}")
    await log.open()
    try:
        hub = Hub(log, keystore=Keystore(tmp_path / "b.keys"))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ValidationError, match="more than 1048576 bytes"):
            await Follower(hub, url, "alice", max_bytes=1 << 20).run_once()
    finally:
        await log.close()
        server.shutdown()
        server.server_close()
