"""Follow a peer's hub on another machine over HTTP.

    follower = Follower(hub, "http://other-host:8080", "alice")
    result = await follower.run_once()      # or: await follower.run(interval=5)

Only public streams are followed (``peer.<id>.published`` and
``peer.<id>.feedback``).  Every event must carry a valid signature by its
creator; the creator's public key comes from the remote hub the first time
and is kept in the local registry -- a remote that later presents another
key for the same principal is refused.  Unverifiable events are refused,
reported and never stored; verified ones are stored under the same topic,
id and body.  The cursor (the remote position per topic) is kept in the
local log (``system.federation``), so a restarted follower resumes where it
stopped; and since ids dedup, a repeated page stores nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from .errors import EngineUnavailable, ValidationError
from .event import Event, decode_event, digest, encode_event, now, parse_event
from .hub import Hub
from .log import Entry
from .principals import check_principal_id, verify_signature

__all__ = ["FOLLOWED_STREAMS", "FollowResult", "Follower"]

logger = logging.getLogger(__name__)

FEDERATION_TOPIC = "system.federation"
FOLLOWED_STREAMS = ("published", "feedback")
PAGE = 500


@dataclass(slots=True)
class FollowResult:
    fetched: int = 0
    stored: int = 0
    already: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  #: (event id, reason)


class _Cursor(msgspec.Struct):
    remote: str
    topic: str
    position: str


class Follower:
    """Pulls a remote peer's public streams into the local (trusted) hub."""

    def __init__(self, hub: Hub, remote: str, peer: str, *, client: httpx.AsyncClient | None = None) -> None:
        if not hub.trusted:
            raise ValidationError(
                "hub", "a follower stores events for the hub itself: give it the trusted hub"
            )
        self.hub = hub
        self.remote = remote.rstrip("/")
        self.peer = check_principal_id(peer)
        self._client = client
        self.cursors: dict[str, str | None] = {}

    async def _load_cursors(self) -> None:
        async for r in self.hub.log.read(FEDERATION_TOPIC):
            raw = msgspec.json.decode(r.body)
            # A creative.system.cursor event; earlier versions wrote the bare cursor.
            data = raw.get("data", {}) if isinstance(raw, dict) and "specversion" in raw else raw
            c = msgspec.convert(data, _Cursor)
            if c.remote == self.remote:
                self.cursors[c.topic] = c.position

    async def _save_cursor(self, topic: str, position: str) -> None:
        # A CloudEvent like every record on every topic, so any consumer of the
        # broker can read it; the id is the cursor's own (a retry stores it once).
        cursor = {"remote": self.remote, "topic": topic, "position": position}
        rid = hashlib.blake2b(msgspec.json.encode(cursor), digest_size=16).hexdigest()
        event = Event(
            id=rid, source="/hub/federation", type="creative.system.cursor", subject=topic,
            time=now(), data=cursor, creator="hub", partitionkey=topic,
        )  # fmt: skip
        body = encode_event(event)
        await self.hub.log.append(FEDERATION_TOPIC, [Entry(rid, topic, body, digest(event), "hub")])
        self.cursors[topic] = position

    async def _get(self, client: httpx.AsyncClient, path: str, **params: Any) -> Any:
        try:
            r = await client.get(
                self.remote + path, params={k: v for k, v in params.items() if v is not None}
            )
        except httpx.HTTPError as e:
            raise EngineUnavailable(self.remote, f"cannot reach the remote hub: {e}") from e
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise EngineUnavailable(self.remote, f"GET {path} answered {r.status_code}: {r.text[:200]}")
        return r.json()

    async def _key(self, client: httpx.AsyncClient, creator: str) -> str | None:
        known = self.hub.registry.public_key(creator)
        if known is not None:
            return known
        info = await self._get(client, f"/v1/principals/{creator}")
        if not info or not info.get("public_key"):
            return None
        p = await self.hub.registry.add_remote(
            creator,
            info["public_key"],
            kind=info.get("kind", "person"),
            name=info.get("name"),
            origin=self.remote,
        )
        return p.public_key

    async def run_once(self) -> FollowResult:
        """Fetch what is new on every followed stream; store what verifies."""
        result = FollowResult()
        await self.hub.registry.refresh()
        if not self.cursors:
            await self._load_cursors()
        client = self._client or httpx.AsyncClient(timeout=30)
        try:
            for stream in FOLLOWED_STREAMS:
                topic = f"peer.{self.peer}.{stream}"
                while True:
                    page = await self._get(
                        client, f"/v1/topics/{topic}/events", after=self.cursors.get(topic), limit=PAGE
                    )
                    if not page or not page["events"]:
                        break
                    await self._store(client, topic, page["events"], result)
                    await self._save_cursor(topic, page["events"][-1]["position"])
                    if page.get("next") is None:
                        break
        finally:
            if self._client is None:
                await client.aclose()
        return result

    async def _store(
        self, client: httpx.AsyncClient, topic: str, items: list[dict[str, Any]], result: FollowResult
    ) -> None:
        entries: list[Entry] = []
        for item in items:
            result.fetched += 1
            raw = item.get("event") or {}
            eid = str(raw.get("id", "?"))
            try:
                event = parse_event(raw)
            except ValidationError as e:
                result.refused.append((eid, f"not a valid event: {e}"))
                continue
            creator = event.creator or ""
            key = await self._key(client, creator) if creator else None
            if key is None:
                reason = f"no public key for creator {creator!r}"
            elif not verify_signature(event, key):
                reason = f"bad or missing signature for creator {creator!r}"
            else:
                body = encode_event(event)
                assert decode_event(body).signature == event.signature
                entries.append(Entry(event.id, event.partitionkey or creator, body, digest(event), creator))
                continue
            logger.warning("refused %s from %s (%s): %s", eid, self.remote, topic, reason)
            result.refused.append((eid, reason))
        if entries:
            for a in await self.hub.log.append(topic, entries):
                if a.duplicate:
                    result.already += 1
                else:
                    result.stored += 1
