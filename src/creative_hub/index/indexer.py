"""The indexer: keeps the index file up to date with the log.

    store = IndexStore(default_index_path(url))
    indexer = Indexer(hub, store)        # hub: trusted (it indexes every topic)
    await indexer.catch_up()             # what is new since last time, then return
    await indexer.run(stop=stop_event)   # keep following until stop is set
    await indexer.rebuild()              # forget everything, index the log again

Why a catch-up reader per topic rather than a consumer group: the position
it has indexed up to lives *in the index file*, committed in the same
transaction as the documents.  So the index and its position never disagree
(a crash redoes at most the batch that did not commit, and ``INSERT OR
IGNORE`` on (id, topic) makes that a no-op), and deleting the index file is
all a full rebuild needs -- a group offset kept in the log would survive the
file and skip the history.  It reads through ``hub.replay``, so it works on
every engine.

Every topic is indexed except ``system.*`` (principals and tokens).  Drafts
are indexed too: access is decided when someone asks (see search.py), from
the topic each document keeps.  A ``creative.system.compaction`` record in
``archive.<topic>`` removes the revisions it folded, so an index kept up to
date and one rebuilt after compaction hold the same documents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..errors import PositionGone
from ..hub import Hub
from ..topics import ARCHIVE_PREFIX, SYSTEM_PREFIX
from .store import Doc, IndexStore, to_doc

__all__ = ["DEFAULT_BATCH", "Indexer"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 2000  # events per index transaction
DEFAULT_INTERVAL = 1.0  # seconds between polls for new events when following
ARCHIVE = ARCHIVE_PREFIX


def _order(topic: str) -> tuple[int, str]:
    # Archives after the topics they describe, so a compaction record removes
    # revisions the same pass has just indexed.
    return (1 if topic.startswith(ARCHIVE) else 0, topic)


class Indexer:
    """Reads every topic from where it stopped and adds the events to the index."""

    def __init__(
        self,
        hub: Hub,
        store: IndexStore,
        *,
        batch: int = DEFAULT_BATCH,
        embedder: Any | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        if not hub.trusted:
            raise ValueError("the indexer reads every topic: give it the hub itself, not hub.acting(...)")
        self.hub = hub
        self.store = store
        self.batch = batch
        self.embedder = embedder  #: a semantic.Embedder, or None (full-text only)
        self.progress = progress
        self.indexed = 0  #: documents added since this indexer started

    async def topics(self) -> list[str]:
        names = [t.name for t in await self.hub.topics()]
        return sorted((n for n in names if not n.startswith(SYSTEM_PREFIX)), key=_order)

    async def catch_up(self) -> int:
        """Index what the log has beyond the stored positions; returns how many documents were added."""
        added = 0
        positions = self.store.positions()
        await self.hub.registry.refresh()  # creators' kinds (person, agent) for the documents
        for topic in await self.topics():
            added += await self._topic(topic, positions.get(topic))
        if self.embedder is not None:
            await self.embed_missing()
        return added

    async def _topic(self, topic: str, after: str | None) -> int:
        try:
            return await self._read(topic, after)
        except PositionGone:
            # Retention removed what we had reached: start again from what is
            # left (documents already indexed are skipped by id).
            logger.warning("index: %s position %s is gone; reading the topic from its start", topic, after)
            return await self._read(topic, None)

    async def _read(self, topic: str, after: str | None) -> int:
        added = 0
        docs: list[Doc] = []
        folded: list[str] = []
        pending: asyncio.Future[int] | None = None
        last = after
        principals = self.hub.registry.principals
        async for stored in self.hub.replay(topic, after=after):
            ev = stored.event
            who = principals.get(ev.creator or "")
            docs.append(to_doc(ev, topic, stored.position, stored.time_ms, kind=who.kind if who else ""))
            if ev.type == "creative.system.compaction" and isinstance(ev.data, dict):
                folded.extend(f.get("id", "") for f in ev.data.get("folded", []) if isinstance(f, dict))
            last = stored.position
            if len(docs) >= self.batch:
                if pending is not None:
                    added += await pending
                # Commit in a thread while the loop decodes the next batch.
                pending = asyncio.ensure_future(asyncio.to_thread(self._commit, topic, docs, last, folded))
                docs, folded = [], []
        if pending is not None:
            added += await pending
        if docs:
            added += await asyncio.to_thread(self._commit, topic, docs, last or "", folded)
        return added

    def _commit(self, topic: str, docs: list[Doc], position: str, folded: list[str]) -> int:
        n = self.store.add(docs, {topic: (position, len(docs))})
        if folded and topic.startswith(ARCHIVE):
            self.store.remove(topic[len(ARCHIVE) :], folded)
        self.indexed += n
        if self.progress is not None:
            self.progress(topic, len(docs))
        return n

    async def embed_missing(self, chunk: int = 64) -> int:
        """Give every document without a vector one (needs the ``semantic`` extra)."""
        if self.embedder is None:
            return 0
        done = 0
        while True:
            rows = await asyncio.to_thread(self.store.missing_vectors, chunk)
            if not rows:
                return done
            texts = [f"{title}\n{text}" for _, title, text in rows]
            vectors = await asyncio.to_thread(self.embedder.embed, texts)
            await asyncio.to_thread(
                self.store.set_vectors, [(r[0], v.tobytes()) for r, v in zip(rows, vectors, strict=True)]
            )
            done += len(rows)

    async def run(self, *, stop: asyncio.Event | None = None, interval: float = DEFAULT_INTERVAL) -> None:
        """Follow the log: catch up, wait ``interval`` seconds, again, until ``stop`` is set."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.catch_up()
            except Exception:  # one bad pass (a broker hiccup) must not end the indexer
                logger.exception("index: catch-up failed; retrying in %.1fs", interval)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

    async def rebuild(self) -> int:
        """Forget the index and build it again from the log; returns the document count."""
        await asyncio.to_thread(self.store.clear)
        await self.catch_up()
        await asyncio.to_thread(self.store.optimize)
        return await asyncio.to_thread(self.store.count)
