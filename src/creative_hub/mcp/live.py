"""Live resources: cursor pages of topics, peer streams and subjects, and change notifications.

    hub://topics/{topic}?after=CURSOR&limit=N      a topic, in log order
    hub://peers/{peer}/{stream}?after=...          peer.<peer>.<stream> (drafts: as the hub's rules say)
    hub://subjects/{subject}?after=...             events about a subject in the peer hubs and shared topics

Reading.  A page is JSON: ``events``, ``more`` (more are already there) and
``next``, the URI of the page after this one.  ``next`` is always given: at
the end of a stream it is the URI to read again once something new arrives,
so a client that follows ``next`` sees every event once, with no gap.  Every
read goes through the caller's hub (``HubState.caller()``), so the hub's
access rules apply.  A subject's cursor is opaque (the position reached in
each topic); a copy of a peer's published event in the shared topic is left
out there, the peer's stream has it.

Subscribing.  Two wires, one mechanism:

- 2026-07-28 clients open ``subscriptions/listen`` with resource URIs (the
  SDK's ``Client.listen(resource_subscriptions=[...])``).  The listen request
  is the subscription: it ends when the client closes it or goes away.
- 2025-era clients send ``resources/subscribe`` / ``resources/unsubscribe`` on
  a session (stdio, stateful streamable HTTP); the session's end
  unsubscribes everything it subscribed.

Either way the URI is parsed and checked as the caller first (a stream the
caller may not read is refused), then watched: one follow-read per topic
(``Hub.replay(follow=True)`` as the hub itself), shared by every URI and
client watching that topic; subjects are watched by one poller of the topic
list (``RESCAN``), since a subject can turn up in any peer's stream.  A new
event marks the URIs that match it, for each subscriber who may read its
topic, and one flusher sends ``notifications/resources/updated`` for them:
bursts coalesce, at most one notification per ``COALESCE`` seconds per URI
and subscriber.  The last unsubscribe stops the tails, the poller and the
flusher.  The notification says only "read again": the client then reads
the URI it last got as ``next``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import json
import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import msgspec
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

from ..access import Identity, can_read_event
from ..errors import HubError, NotFound, ValidationError
from ..event import Event, decode_event
from ..hub import Hub, StoredEvent
from ..ids import About
from ..log.base import check_topic
from ..topics import CREATIVE_PREFIX, PEER_PREFIX, peer, published
from .common import EventOut, HubState, event_out

__all__ = [
    "COALESCE",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "RESCAN",
    "STREAMS",
    "Live",
    "LiveBus",
    "PageOut",
    "Target",
    "install",
    "page",
    "parse_uri",
]

logger = logging.getLogger(__name__)

COALESCE = 0.1  # seconds: at most one update notification per URI and subscriber in this time
RESCAN = 0.5  # seconds between looks at the topic list while subjects are watched
SEND_TIMEOUT = 10.0  # seconds a notification may take to leave before its subscriber is dropped
DEFAULT_LIMIT, MAX_LIMIT = 50, 500  # events per page
STREAMS = ("published", "drafts", "contributions", "feedback")
SUBJECT_PREFIXES = (CREATIVE_PREFIX, PEER_PREFIX)  # where events about a subject live
TASK_PREFIX = "creative-hub-live"  #: the name of every task this module starts


class PageOut(BaseModel):
    """One page of a live resource."""

    uri: str = Field(description="This page")
    topic: str | None = Field(default=None, description="The topic paged (none for a subject)")
    subject: str | None = None
    events: list[EventOut]
    more: bool = Field(description="More events are already there: read 'next' now")
    next: str = Field(description="The next page; read it again after an update notification")


# -- URIs ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """What a live URI is about: one topic, or a subject across topics."""

    base: str  #: the URI without its query
    topic: str | None = None
    subject: str | None = None


def parse_uri(uri: str) -> Target:
    """The target of a live resource URI; ValidationError for anything else."""
    parts = urlsplit(uri)
    segments = [unquote(s) for s in parts.path.split("/")[1:]]
    base = f"hub://{parts.netloc}{parts.path}"
    if parts.scheme == "hub" and len(segments) == 1 and segments[0]:
        if parts.netloc == "topics":
            check_topic(segments[0])
            return Target(base, topic=segments[0])
        if parts.netloc == "peers":  # hub://peers/alice: her published work
            return Target(base, topic=published(segments[0]))
        if parts.netloc == "subjects":
            return Target(base, subject=segments[0])
    if parts.scheme == "hub" and parts.netloc == "peers" and len(segments) == 2 and segments[0]:
        if segments[1] not in STREAMS:
            raise ValidationError("stream", f"one of {', '.join(STREAMS)}, got {segments[1]!r}")
        return Target(base, topic=peer(segments[0], segments[1]))
    raise ValidationError(
        "uri",
        f"{uri!r} is not a live resource: hub://topics/{{topic}}, hub://peers/{{peer}}[/{{stream}}] "
        "or hub://subjects/{subject}",
    )


def _limit(limit: str | int | None) -> int:
    if limit is None or limit == "":
        return DEFAULT_LIMIT
    try:
        n = int(limit)
    except ValueError:
        raise ValidationError("limit", f"a whole number, got {limit!r}") from None
    if not 1 <= n <= MAX_LIMIT:
        raise ValidationError("limit", f"between 1 and {MAX_LIMIT}, got {n}")
    return n


def _page_uri(base: str, after: str | None, limit: str | int | None) -> str:
    query = [f"after={quote(after, safe='')}"] if after else []
    if limit not in (None, ""):
        query.append(f"limit={limit}")
    return base + ("?" + "&".join(query) if query else "")


def _is_mirror(topic: str, hub: str | None) -> bool:
    """A peer's published event (``hub``: its attribute) copied to the shared topic of its area."""
    return topic.startswith(CREATIVE_PREFIX) and bool(hub) and hub != "shared"


def _encode_cursor(positions: dict[str, str]) -> str:
    raw = json.dumps(positions, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(after: str | None) -> dict[str, str]:
    if not after:
        return {}
    try:
        raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4))
        value = json.loads(raw)
    except ValueError:
        raise ValidationError("after", "not a cursor of this subject (use the 'next' URI)") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValidationError("after", "not a cursor of this subject (use the 'next' URI)")
    return {str(k): v for k, v in value.items()}


# -- pages ---------------------------------------------------------------------------
async def page(caller: Hub, target: Target, after: str | None, limit: str | int | None) -> PageOut:
    """The page of ``target`` after ``after``, read as ``caller``."""
    n = _limit(limit)
    if target.topic is not None:
        return await _topic_page(caller, target, after, limit, n)
    return await _subject_page(caller, target, after, limit, n)


async def _topic_page(caller: Hub, target: Target, after: str | None, limit: Any, n: int) -> PageOut:
    assert target.topic is not None
    got = [s async for s in caller.replay(target.topic, after=after or None, limit=n + 1)]
    events, more = got[:n], len(got) > n
    last = events[-1].position if events else after
    return PageOut(
        uri=_page_uri(target.base, after, limit),
        topic=target.topic,
        events=[event_out(s.topic, s.event, full=False) for s in events],
        more=more,
        next=_page_uri(target.base, last, limit),
    )


async def _subject_page(caller: Hub, target: Target, after: str | None, limit: Any, n: int) -> PageOut:
    """Events about a subject, merged across topics by store time, from the subject index.

    Each topic's events about the subject after its cursor position are a range of
    the index (``ids.py``), so a page costs the index rows it looks at and one read
    per event it shows, not a read of every topic.  Topics the caller may not read
    for this subject (someone's drafts without a grant of it) are never looked at.
    The merge takes a prefix of each topic's events, and a topic's cursor is the
    last of its events handed out, so following ``next`` gives every event once."""
    assert target.subject is not None
    subject, who = target.subject, caller.identity
    cursor = _decode_cursor(after)
    if who.grants is not None:
        await caller.grants.refresh()
    ids = caller.ids
    await ids.catch_up()  # what other writers added since the index last looked
    per_topic: list[list[About]] = []
    # Every topic the caller may open, with those only subject grants open (someone's drafts:
    # not listed by ``topics()``, but the granted events are about this subject).
    for name in ids.subject_topics(subject):
        if not name.startswith(SUBJECT_PREFIXES) or not can_read_event(who, name, subject):
            continue
        try:
            rows = ids.about(subject, name, after=cursor.get(name))
        except ValueError:
            raise ValidationError("after", "not a cursor of this subject (use the 'next' URI)") from None
        with contextlib.closing(rows):
            per_topic.append(list(itertools.islice((r for r in rows if not _is_mirror(name, r.hub)), n + 1)))
    merged = list(heapq.merge(*per_topic, key=lambda r: (r.time_ms, r.topic)))
    shown, more = merged[:n], len(merged) > n
    new = dict(cursor)
    for r in shown:
        new[r.topic] = r.position
    records = await asyncio.gather(*(ids.fetch(r.place, r.id) for r in shown))
    events: list[StoredEvent] = []
    for r, record in zip(shown, records, strict=True):
        if record is None:
            continue  # a stale row (retention, a log replaced): the event is gone
        try:
            event = decode_event(record.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            logger.warning("skipping %s@%s: not a valid event (%s)", r.topic, r.position, e)
            continue
        if event.subject == subject and can_read_event(who, r.topic, event.subject):
            events.append(StoredEvent(r.topic, record.position, record.time_ms, event))
    # Audited and remembered as the topic replays they stand for.
    by_topic: dict[str, list[Event]] = {}
    for s in events:
        by_topic.setdefault(s.topic, []).append(s.event)
    for name, handed in by_topic.items():
        await caller.handed(name, handed, "replay")
    return PageOut(
        uri=_page_uri(target.base, after, limit),
        subject=subject,
        events=[event_out(s.topic, s.event, full=False) for s in events],
        more=more,
        next=_page_uri(target.base, _encode_cursor(new) if new else None, limit),
    )


# -- subscribers ---------------------------------------------------------------------
class _Subscriber:
    """Someone to notify: a listen stream or a 2025-era session."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    async def notify(self, uri: str) -> bool:
        """Send one update notification; False when the subscriber is gone."""
        raise NotImplementedError


class _ListenSubscriber(_Subscriber):
    """A ``subscriptions/listen`` stream; the SDK's ListenHandler hands us its deliver callback."""

    def __init__(self, identity: Identity) -> None:
        super().__init__(identity)
        self.deliver: Callable[[ServerEvent], None] | None = None
        self.early: list[str] = []  # marked before the handler subscribed to the bus

    def connect(self, deliver: Callable[[ServerEvent], None]) -> None:
        self.deliver = deliver
        for uri in self.early:
            deliver(ResourceUpdated(uri=uri))
        self.early.clear()

    async def notify(self, uri: str) -> bool:
        if self.deliver is None:
            self.early.append(uri)
        else:
            self.deliver(ResourceUpdated(uri=uri))  # the handler filters by its URIs and queues
        return True


class _SessionSubscriber(_Subscriber):
    """A 2025-era session's ``resources/subscribe`` URIs."""

    def __init__(self, identity: Identity, session: ServerSession) -> None:
        super().__init__(identity)
        self.session = session  # its connection's standalone channel carries the notifications
        self.uris: set[str] = set()

    async def notify(self, uri: str) -> bool:
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.session.send_resource_updated(uri)
        except Exception as e:  # a closed or stuck connection: stop notifying it
            logger.info("dropping a subscriber of %s: %r", uri, e)
            return False
        return True


_listening: ContextVar[_ListenSubscriber | None] = ContextVar("creative_hub_live_listen", default=None)


class LiveBus(InMemorySubscriptionBus):
    """The SDK's in-process bus, which also hands each listen stream's
    deliver callback to the subscriber the listen wrapper registered."""

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        sub = _listening.get()
        if sub is not None and sub.deliver is None:
            sub.connect(listener)
        return super().subscribe(listener)


# -- the registry --------------------------------------------------------------------
class Live:
    """Watched URIs, their subscribers, and the tasks that notice changes."""

    def __init__(self, hub: Hub, *, coalesce: float = COALESCE, rescan: float = RESCAN) -> None:
        if not hub.trusted:
            raise ValueError("Live needs the hub itself (it tails topics for every subscriber)")
        self.hub = hub
        self.coalesce = coalesce
        self.rescan = rescan
        self._watches: dict[str, tuple[Target, set[_Subscriber]]] = {}  # uri -> target, subscribers
        self._tails: dict[str, asyncio.Task[None]] = {}  # topic -> its follow-read
        self._scanner: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._dirty: dict[_Subscriber, set[str]] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks running for subscribers now (none once nobody subscribes)."""
        tasks = [*self._tails.values(), self._scanner, self._flusher]
        return [t for t in tasks if t is not None and not t.done()]

    async def attach(self, sub: _Subscriber, targets: Sequence[tuple[str, Target]]) -> None:
        """Watch each ``(uri, target)`` for ``sub``; returns once changes from now on are seen."""
        async with self._lock:
            for uri, target in targets:
                _, subs = self._watches.setdefault(uri, (target, set()))
                subs.add(sub)
                if target.topic is not None and not self._running(self._tails.get(target.topic)):
                    self._tails[target.topic] = await self._start_tail(target.topic)
                if target.subject is not None and not self._running(self._scanner):
                    self._scanner = await self._start_scanner()
            if not self._running(self._flusher):
                self._flusher = asyncio.create_task(self._flush(), name=f"{TASK_PREFIX}-flush")
            self._prune()  # in case a subscriber left while we waited

    def detach(self, sub: _Subscriber, uris: Sequence[str] | None = None) -> None:
        """Stop watching ``uris`` (default: all) for ``sub``; stops what nobody needs any more."""
        for uri in list(self._watches) if uris is None else uris:
            entry = self._watches.get(uri)
            if entry is None:
                continue
            entry[1].discard(sub)
            if not entry[1]:
                del self._watches[uri]
        if uris is None:
            self._dirty.pop(sub, None)
        elif sub in self._dirty:
            self._dirty[sub].difference_update(uris)
        self._prune()

    def _prune(self) -> None:
        """Stop the tails, the subject scanner and the flusher nobody needs."""
        needed = {t.topic for t, _ in self._watches.values() if t.topic is not None}
        for topic in [t for t in self._tails if t not in needed]:
            self._tails.pop(topic).cancel()
        if self._scanner is not None and not any(t.subject for t, _ in self._watches.values()):
            self._scanner.cancel()
            self._scanner = None
        if not self._watches and self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None

    @staticmethod
    def _running(task: asyncio.Task[None] | None) -> bool:
        return task is not None and not task.done()

    # -- noticing ----------------------------------------------------------------
    def _mark(self, topic: str, stored: StoredEvent) -> None:
        """``stored`` arrived in ``topic``: mark the URIs it changes, for who may read it."""
        for uri, (target, subs) in self._watches.items():
            if target.topic is not None:
                hit = target.topic == topic
            else:
                hit = stored.event.subject == target.subject and not _is_mirror(topic, stored.event.hub)
            if not hit:
                continue
            for sub in subs:
                # A topic watch was checked when subscribed; a subject spans topics; and
                # in someone else's drafts each event is the grants' to decide.
                if can_read_event(sub.identity, topic, stored.event.subject):
                    self._dirty.setdefault(sub, set()).add(uri)
                    self._wake.set()

    async def _start_tail(self, topic: str) -> asyncio.Task[None]:
        # The start is fixed before the subscription is acknowledged: nothing after it is missed.
        try:
            start = await self.hub.end(topic)
        except NotFound:
            start = None  # not there yet: everything in it will be new
        return asyncio.create_task(self._tail(topic, start), name=f"{TASK_PREFIX}-tail:{topic}")

    async def _tail(self, topic: str, start: str | None) -> None:
        try:
            async for stored in self.hub.replay(topic, after=start, follow=True):
                self._mark(topic, stored)
        except HubError as e:
            logger.warning("live tail of %s stopped: %s", topic, e)
        except Exception:
            logger.exception("live tail of %s failed", topic)

    async def _snapshot(self) -> dict[str, str | None]:
        return {t.name: t.last for t in await self.hub.topics() if t.name.startswith(SUBJECT_PREFIXES)}

    async def _start_scanner(self) -> asyncio.Task[None]:
        seen = await self._snapshot()
        return asyncio.create_task(self._scan(seen), name=f"{TASK_PREFIX}-subjects")

    async def _scan(self, seen: dict[str, str | None]) -> None:
        """Subjects: every RESCAN seconds, read what is new in any topic that grew."""
        while True:
            await asyncio.sleep(self.rescan)
            try:
                for topic, last in (await self._snapshot()).items():
                    if last is None or last == seen.get(topic):
                        continue
                    async for stored in self.hub.replay(topic, after=seen.get(topic)):
                        self._mark(topic, stored)
                        seen[topic] = stored.position
            except HubError as e:  # e.g. a position removed by retention: go on from the ends
                logger.warning("live subject scan: %s", e)
                with contextlib.suppress(HubError):
                    seen = await self._snapshot()

    async def _flush(self) -> None:
        """Send what is marked, then rest COALESCE seconds: bursts become one notification."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._dirty = self._dirty, {}
            for sub, uris in batch.items():
                for uri in sorted(uris):
                    if not await sub.notify(uri):
                        self.detach(sub)
                        break
            await asyncio.sleep(self.coalesce)


# -- wiring into the SDK's server ----------------------------------------------------
async def _resolve(caller: Hub, uri: str) -> Target:
    """Parse ``uri`` and check that ``caller`` may read it, as the hub's read path does."""
    try:
        target = parse_uri(uri)
        if target.topic is not None:
            async for _ in caller.replay(target.topic, limit=1):  # raises AccessDenied if refused
                break
    except HubError as e:
        raise MCPError(INVALID_PARAMS, str(e), {"uri": uri}) from e
    return target


def _lowlevel(server: MCPServer) -> Server[Any]:
    # MCPServer (SDK 2.3) has no public way to add resources/subscribe; its lowlevel
    # server's add_request_handler is the documented way to serve a method.
    lowlevel: Server[Any] = server._lowlevel_server
    return lowlevel


def install(server: MCPServer, state: HubState, live: Live) -> None:
    """Serve subscriptions on ``server`` (built with ``subscriptions=LiveBus()``):
    wrap ``subscriptions/listen``, add ``resources/subscribe`` / ``unsubscribe``."""
    lowlevel = _lowlevel(server)
    entry = lowlevel.get_request_handler("subscriptions/listen")
    if entry is None:
        raise ValueError("the server does not serve subscriptions/listen: build it with a LiveBus")
    listen_handler = entry.handler

    async def listen(ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams) -> Any:
        caller = state.caller()
        uris = list(params.notifications.resource_subscriptions or ())
        targets = [(uri, await _resolve(caller, uri)) for uri in uris]
        sub = _ListenSubscriber(caller.identity)
        if targets:
            await live.attach(sub, targets)
        token = _listening.set(sub)
        try:
            return await listen_handler(ctx, params)
        finally:
            _listening.reset(token)
            live.detach(sub)

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        caller = state.caller()
        uri = str(params.uri)
        target = await _resolve(caller, uri)
        sub = _session_subscriber(live, ctx.session, caller.identity)
        await live.attach(sub, [(uri, target)])
        sub.uris.add(uri)
        return EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        sub = _session_subscriber(live, ctx.session, state.caller().identity)
        uri = str(params.uri)
        sub.uris.discard(uri)
        live.detach(sub, [uri])
        return EmptyResult()

    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listen)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


_SESSION_KEY = "creative_hub.live"


def _session_subscriber(live: Live, session: ServerSession, identity: Identity) -> _SessionSubscriber:
    """The subscriber of this session's connection and principal; the connection's
    end detaches it (where the SDK exposes the connection: 2.3 keeps it on the session)."""
    connection = getattr(session, "_connection", None)
    state: dict[str, Any] = connection.state if connection is not None else {}
    subs: dict[Identity, _SessionSubscriber] = state.setdefault(_SESSION_KEY, {})
    sub = subs.get(identity)
    if sub is None:
        sub = subs[identity] = _SessionSubscriber(identity, session)
        if connection is not None:
            connection.exit_stack.callback(live.detach, sub)
    return sub
