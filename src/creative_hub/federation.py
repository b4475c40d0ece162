"""Follow a peer's hub on another machine over HTTP.

    follower = Follower(hub, "http://other-host:8080", "alice")
    result = await follower.run_once()      # or: await follower.run(interval=5)

Only public streams are followed (``peer.<id>.published`` and
``peer.<id>.feedback``).  Every event must carry a valid signature by its
creator; the creator's public key comes from the remote hub the first time
and is kept in the local registry.  A remote that presents another key for a
principal this hub already knows (a local person, or one learnt before) is
refused as a whole: the run stops with an error naming the principal, and
nothing of it is stored.  Each answer is bounded (``max_bytes``, default
``MAX_RESPONSE``) and each request has an overall deadline (``timeout``).  Unverifiable events are refused,
reported and never stored; verified ones are stored under the same topic,
id and body.  The cursor (the remote position per topic) is kept in the
local log (``system.federation``), so a restarted follower resumes where it
stopped; and since ids dedup, a repeated page stores nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from . import topics
from .errors import AccessDenied, EngineUnavailable, ValidationError
from .event import Event, decode_event, digest, encode_event, now, parse_event
from .hub import Hub
from .log import Entry
from .principals import check_principal_id, verify_signature

__all__ = ["FOLLOWED_STREAMS", "FollowResult", "Follower"]

logger = logging.getLogger(__name__)

FEDERATION_TOPIC = topics.system("federation")
FOLLOWED_STREAMS = ("published", "feedback")
PAGE = 500
MAX_RESPONSE = 32 * 1024 * 1024  # bytes of one answer: a page of 500 events is far below
DEFAULT_TIMEOUT = 60.0  # seconds for one request, start to last byte


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

    def __init__(
        self,
        hub: Hub,
        remote: str,
        peer: str,
        *,
        client: httpx.AsyncClient | None = None,
        max_bytes: int = MAX_RESPONSE,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not hub.trusted:
            raise ValidationError(
                "hub", "a follower stores events for the hub itself: give it the trusted hub"
            )
        self.hub = hub
        self.remote = remote.rstrip("/")
        self.peer = check_principal_id(peer)
        self._client = client
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.cursors: dict[str, str | None] = {}
        self._checked: dict[str, str | None] = {}  # creator -> key, as checked against the remote this run

    async def _load_cursors(self) -> None:
        async for r in self.hub.records(FEDERATION_TOPIC):
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
        await self.hub.append(FEDERATION_TOPIC, [(event, Entry(rid, topic, body, digest(event), "hub"))])
        self.cursors[topic] = position

    async def _get(self, client: httpx.AsyncClient, path: str, **params: Any) -> Any:
        """The JSON answer to GET ``path`` (None for 404), read to at most ``max_bytes``
        within ``timeout`` seconds: a remote cannot make us hold more, or wait longer."""
        query = {k: v for k, v in params.items() if v is not None}
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream("GET", self.remote + path, params=query) as r:
                    body = bytearray()
                    async for chunk in r.aiter_bytes():
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise ValidationError(
                                "remote",
                                f"{self.remote}: GET {path} answered more than {self.max_bytes} bytes",
                            )
        except TimeoutError:
            raise EngineUnavailable(self.remote, f"GET {path} took longer than {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            raise EngineUnavailable(self.remote, f"cannot reach the remote hub: {e}") from e
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            text = bytes(body[:200]).decode("utf-8", "replace")
            raise EngineUnavailable(self.remote, f"GET {path} answered {r.status_code}: {text}")
        try:
            return msgspec.json.decode(bytes(body))
        except msgspec.DecodeError as e:
            raise ValidationError("remote", f"{self.remote}: GET {path} is not JSON ({e})") from None

    async def _key(self, client: httpx.AsyncClient, creator: str) -> str | None:
        """``creator``'s key, as the remote presents it and this hub agrees.

        Asked of the remote once per run even when known here: a remote that
        claims a principal registered here with another key is refused (raises)."""
        if creator in self._checked:
            return self._checked[creator]
        info = await self._get(client, f"/v1/principals/{creator}")
        key = info.get("public_key") if isinstance(info, dict) else None
        if not isinstance(key, str) or not key:
            self._checked[creator] = None
            return None
        try:
            p = await self.hub.registry.add_remote(
                creator,
                key,
                kind=str(info.get("kind", "person")),
                name=info.get("name") if isinstance(info.get("name"), str) else None,
                origin=self.remote,
            )
        except ValidationError as e:
            raise AccessDenied(
                f"refusing to follow {self.remote}: it claims principal {creator!r}, registered here "
                f"with another key ({e.rule})"
            ) from None
        self._checked[creator] = p.public_key
        return p.public_key

    async def run_once(self) -> FollowResult:
        """Fetch what is new on every followed stream; store what verifies."""
        result = FollowResult()
        await self.hub.registry.refresh()
        if not self.cursors:
            await self._load_cursors()
        self._checked = {}
        client = self._client or httpx.AsyncClient(timeout=30)
        try:
            await self._key(client, self.peer)  # the followed peer is who this hub thinks it is
            for stream in FOLLOWED_STREAMS:
                topic = topics.peer(self.peer, stream)
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
        entries: list[tuple[Event, Entry]] = []
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
                entries.append(
                    (event, Entry(event.id, event.partitionkey or creator, body, digest(event), creator))
                )
                continue
            logger.warning("refused %s from %s (%s): %s", eid, self.remote, topic, reason)
            result.refused.append((eid, reason))
        if entries:
            for a in await self.hub.append(topic, entries):
                if a.duplicate:
                    result.already += 1
                else:
                    result.stored += 1
