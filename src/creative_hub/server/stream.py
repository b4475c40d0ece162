"""Server-Sent Events: live tails of a topic, resumable, with slow clients dropped.

One *feed* per topic follows the log (a single reader, however many clients)
and hands every event, encoded once, to each client's bounded queue.  A
client first replays what it missed (from ``Last-Event-ID`` or ``?after=``)
through its own, access-checked view of the hub, then switches to the feed
without a gap or a duplicate: it joins the feed *before* reading history, and
skips the feed's events that history already gave it.

Slow consumers (the policy, also in the README): a client whose queue holds
``stream_queue`` events it has not taken (default 1024) is disconnected, and
``creative_hub_stream_dropped_clients_total`` counts it.  Memory per client is
bounded by that queue (of frames shared by all clients) plus the socket's
buffers; a client that stops reading cannot make the server grow.  A dropped
client reconnects with ``Last-Event-ID`` and catches up from the log, which
is what EventSource does by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..access import can_read_event, needs_grant
from ..errors import HubError, NotFound
from ..event import Event, encode_event
from ..hub import Hub, StoredEvent
from .metrics import Metrics
from .middleware import Message, Receive, Scope, Send

__all__ = ["Broadcaster", "Client", "Stream", "sse_frame"]

logger = logging.getLogger(__name__)

HEARTBEAT = 15.0  # seconds between SSE comments that keep proxies from closing an idle stream
RETRY_MS = 1000  # the reconnection delay we ask EventSource clients to use, in ms
SEND_BATCH = 256  # frames joined into one write at most (fewer syscalls under load)
LINGER = 0.02  # seconds a woken client waits for more frames before writing (one write, not dozens)


def sse_frame(s: StoredEvent) -> bytes:
    """One event as an SSE message: ``id`` is its position, ``event`` its type."""
    # encode_event gives compact JSON: no newline can end the data line early.
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        s.position.encode(),
        s.event.type.encode(),
        encode_event(s.event),
    )


@dataclass(slots=True, frozen=True)
class Frame:
    position: str
    data: bytes
    event: Event | None = None  #: for clients reading through grants (decided and audited per frame)


class Client:
    """One SSE client's queue: filled by the feed, emptied by the client's response."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.frames: deque[Frame] = deque()
        self.wake = asyncio.Event()
        self.overflowed = False  #: fell ``limit`` events behind
        self.ended = False  #: the feed stopped (the log failed or closed)
        self.on_overflow: Callable[[], None] | None = None  #: set once live: drops the client

    def push(self, frame: Frame) -> bool:
        """Queue one frame; False (and the client is marked) if the queue is full."""
        if len(self.frames) >= self.limit:
            self.overflowed = True
            self.frames.clear()  # nobody will send them: free the memory now
            self.wake.set()
            if self.on_overflow is not None:
                self.on_overflow()
            return False
        self.frames.append(frame)
        self.wake.set()
        return True

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def reset(self) -> None:
        self.frames.clear()
        self.overflowed = False
        self.wake.clear()


class _Feed:
    """The one follow-read of a topic, shared by its clients."""

    def __init__(self, hub: Hub, topic: str) -> None:
        self.hub = hub
        self.topic = topic
        self.clients: set[Client] = set()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # The start position is fixed before any client reads history, so
        # nothing appended after a client's history read can be missed.
        try:
            start = await self.hub.end(self.topic)
        except NotFound:
            start = None
        self.task = asyncio.create_task(self._run(start), name=f"sse-feed:{self.topic}")

    async def _run(self, start: str | None) -> None:
        try:
            async for s in self.hub.replay(self.topic, after=start, follow=True):
                frame = Frame(s.position, sse_frame(s), s.event)
                for client in list(self.clients):
                    if not client.push(frame):
                        self.clients.discard(client)
        except HubError as e:
            logger.warning("live feed of %s stopped: %s", self.topic, e)
        finally:
            for client in self.clients:
                client.end()


class Broadcaster:
    """Feeds by topic, started by their first client and stopped after their last."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub  # trusted: feeds read everything; each client checked its own access
        self.feeds: dict[str, _Feed] = {}
        self._lock = asyncio.Lock()

    async def attach(self, topic: str, client: Client) -> None:
        async with self._lock:
            feed = self.feeds.get(topic)
            if feed is None or (feed.task is not None and feed.task.done()):
                feed = _Feed(self.hub, topic)
                await feed.start()
                self.feeds[topic] = feed
            feed.clients.add(client)

    def detach(self, topic: str, client: Client) -> None:
        feed = self.feeds.get(topic)
        if feed is None:
            return
        feed.clients.discard(client)
        if not feed.clients and feed.task is not None:
            feed.task.cancel()
            del self.feeds[topic]

    async def close(self) -> None:
        feeds, self.feeds = list(self.feeds.values()), {}
        for feed in feeds:
            if feed.task is not None:
                feed.task.cancel()
        await asyncio.gather(*(f.task for f in feeds if f.task is not None), return_exceptions=True)


@dataclass(kw_only=True, eq=False, repr=False)
class Stream:
    """The ASGI response of one SSE client: history after ``start``, then live."""

    broadcaster: Broadcaster
    hub: Hub
    topic: str
    client: Client
    history: AsyncIterator[StoredEvent]
    first: StoredEvent | None
    metrics: Metrics
    gone: bool = field(default=False, init=False)  # the client went away, or we dropped it

    @classmethod
    async def open(
        cls,
        broadcaster: Broadcaster,
        hub: Hub,
        topic: str,
        after: str | None,
        *,
        queue: int,
        metrics: Metrics,
    ) -> Stream:
        """Join the feed, then start the history read: a refused read (403, 410, 422)
        raises here, before the response starts, so it is a problem document."""
        client = Client(queue)
        await broadcaster.attach(topic, client)
        try:
            history = hub.replay(topic, after=after)
            first = await anext(history, None)
        except BaseException:
            broadcaster.detach(topic, client)
            raise
        return cls(
            broadcaster=broadcaster,
            hub=hub,
            topic=topic,
            client=client,
            history=history,
            first=first,
            metrics=metrics,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope.get("creative_hub.raw_send")  # app.RAW_SEND (not imported: a cycle)
        task = asyncio.current_task()
        self.metrics.stream_clients.inc()
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
                    ],
                }
            )
            await self._send(send, [b"retry: %d\n: connected\n\n" % RETRY_MS])
            sent = await self._history(send)
            if sent is not None:
                await self._live(send, sent, raw_send, task)
            if not self.gone:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            self.broadcaster.detach(self.topic, self.client)
            self.metrics.stream_clients.dec()
            with contextlib.suppress(BaseException):
                await self.history.aclose()  # type: ignore[attr-defined]

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                self.client.wake.set()
                return

    async def _send(self, send: Send, chunks: list[bytes]) -> None:
        message: Message = {"type": "http.response.body", "body": b"".join(chunks), "more_body": True}
        await send(message)

    async def _history(self, send: Send) -> deque[str] | None:
        """Replay what the client missed; the last positions sent (None: the client is gone)."""
        client = self.client
        sent: deque[str] = deque(maxlen=client.limit)
        pending = self.first
        last: str | None = None
        while True:
            batch: list[bytes] = []
            while pending is not None:
                batch.append(sse_frame(pending))
                sent.append(pending.position)
                last = pending.position
                if len(batch) >= SEND_BATCH:
                    break
                pending = await anext(self.history, None)
            if batch:
                await self._send(send, batch)
                self.metrics.stream_events.inc(len(batch))
                if self.gone:
                    return None
                if pending is not None:
                    pending = await anext(self.history, None)
                continue
            if not client.overflowed:
                return sent
            # Events arrived faster than history was sent: rejoin and read on from here.
            self.broadcaster.detach(self.topic, client)
            client.reset()
            sent.clear()
            await self.broadcaster.attach(self.topic, client)
            self.history = self.hub.replay(self.topic, after=last)
            pending = await anext(self.history, None)

    async def _live(
        self, send: Send, sent: deque[str], raw_send: Any, task: asyncio.Task[Any] | None
    ) -> None:
        client = self.client
        already = set(sent)  # positions history sent that the feed may repeat (a prefix of its queue)

        def drop() -> None:
            self.gone = True
            self.metrics.stream_dropped.inc()
            logger.info("dropped a slow SSE client of %s", self.topic)
            _close_connection(raw_send, task)

        client.on_overflow = drop
        gated = needs_grant(self.hub.identity, self.topic)
        while not self.gone:
            if client.overflowed:  # overflowed between history and now
                drop()
                return
            if client.ended:
                return
            if gated:
                await self.hub.grants.refresh()  # at most every REFRESH_AGE: revocations count
            if not client.frames:
                client.wake.clear()
                try:
                    await asyncio.wait_for(client.wake.wait(), HEARTBEAT)
                except TimeoutError:
                    await self._send(send, [b": keep-alive\n\n"])
                    continue
                # Under load, events arrive faster than one write each can go out: a short
                # wait gathers them into one write (at 500 events/s to 100 clients this turns
                # 50,000 writes a second into a few thousand).  It bounds the added latency.
                await asyncio.sleep(LINGER)
                continue
            batch: list[bytes] = []
            granted: list[Event] = []
            while client.frames and len(batch) < SEND_BATCH:
                frame = client.frames.popleft()
                if already:
                    if frame.position in already:
                        continue
                    already = set()
                if gated:  # someone else's drafts: the grants in force now decide each one
                    if frame.event is None or not can_read_event(
                        self.hub.identity, self.topic, frame.event.subject
                    ):
                        continue
                    granted.append(frame.event)
                batch.append(frame.data)
            if granted:
                await self.hub.grants.record_reads(self.hub.identity, self.topic, granted, "stream")
            if batch:
                await self._send(send, batch)
                self.metrics.stream_events.inc(len(batch))


def _close_connection(raw_send: Any, task: asyncio.Task[Any] | None) -> None:
    """Close a slow client's connection now, even while a write to it is blocked.

    uvicorn's ``send`` is a method of the request cycle, which holds the
    transport: aborting it releases the blocked write and frees its buffer.
    Under another server, cancelling the response task does the same job.
    """
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
    elif task is not None:
        task.cancel()
