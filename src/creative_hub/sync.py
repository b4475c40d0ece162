"""A thin synchronous facade over Hub, for scripts and notebooks.

    from creative_hub.sync import connect
    with connect("sqlite:///hub.db", principal="alice") as hub:
        hub.publish({"type": "creative.narrative.fragment", "data": {...}})
        for stored in hub.replay("creative.narrative"):
            print(stored.event.data["title"])

The hub runs on an event loop in a background thread; every call waits for
its result.  For consumer groups and live tails, use the async Hub.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from .event import Event
from .hub import Hub, Receipt, StoredEvent
from .log import TopicInfo

__all__ = ["SyncHub", "connect"]

T = TypeVar("T")


class SyncHub:
    """Blocking calls on a Hub that lives on its own thread."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="creative-hub-sync", daemon=True)
        self._thread.start()
        self._connect = Hub.connect(url, **kwargs)
        self.hub: Hub = self._call(self._connect.__aenter__())
        self._closed = False

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def publish(
        self, events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]]
    ) -> list[Receipt]:
        """Validate and append; see ``Hub.publish``."""
        return self._call(self.hub.publish(events))

    def replay(
        self, topic: str, *, after: str | None = None, since: float | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]:
        """A topic's events in order (the history; no live tail)."""

        async def collect() -> list[StoredEvent]:
            return [s async for s in self.hub.replay(topic, after=after, since=since, limit=limit)]

        return iter(self._call(collect()))

    def topics(self) -> list[TopicInfo]:
        return self._call(self.hub.topics())

    def get(self, event_id: str) -> StoredEvent:
        return self._call(self.hub.get(event_id))

    def close(self) -> None:
        """Close the log and stop the thread.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._connect.__aexit__(None, None, None))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> SyncHub:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def connect(url: str, **kwargs: Any) -> SyncHub:
    """A blocking hub on ``url`` (keyword arguments as for ``Hub.connect``)."""
    return SyncHub(url, **kwargs)
