"""Blackboard: a shared topic of key/value notes that agents read and write.

Every write is a ``creative.agents.note`` with the key, the value, the
revision (1, 2, 3 ... per key) and ``supersedes`` = the id of the revision
it was based on.  Everyone folds the topic in log order with one rule, so
every reader on every engine sees the same board:

* a note is **accepted** when it builds on the current head of its key
  (``supersedes`` is the head's id, or it is revision 1 of a new key);
* otherwise it lost a race (someone extended the head first) and is
  **rejected**: a conflict, resolved by revision, visible to its writer.

``update(key, fn)`` is the optimistic loop: read the head, write
``fn(value)`` on top of it, check it was accepted, else try again on the
new head.  Note ids are derived from (board, key, revision, base, value),
so a writer that crashes and writes the same note again stores it once.

    board = Blackboard(hub, "plot-42")
    await board.put("todo:1", {"text": "..."})
    await board.update("tally", lambda v: {**(v or {}), "todo:1": 12})
    (await board.read())["tally"].value

The topic is ``agents.<board>.board``; superseded revisions can be folded
away by ``creative-hub compact agents.<board>.board`` (lineage keeps what
they were): the fold accepts a note whose base was compacted away when its
revision follows the head's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ...errors import IdConflict
from ...event import Event, derive_id
from ...hub import Hub
from ...log import check_topic
from ..context import AgentContext
from ..payloads import Note

__all__ = ["Blackboard", "Conflict", "Entry", "board_topic"]

DEFAULT_ATTEMPTS = 50  # optimistic retries before giving up on an update


def board_topic(board: str) -> str:
    return check_topic(f"agents.{board}.board")


@dataclass(frozen=True, slots=True)
class Entry:
    """The accepted head of one key."""

    key: str
    value: Any
    revision: int
    id: str  #: the note event's id (what the next revision supersedes)
    creator: str


class Conflict(Exception):
    """An update kept losing races for ``attempts`` tries."""


class Blackboard:
    """One board: a local fold of its topic, caught up on every read."""

    def __init__(self, hub: Hub, board: str, *, ctx: AgentContext | None = None) -> None:
        self.hub = hub
        self.board = board
        self.topic = board_topic(board)
        self.ctx = ctx  #: inside a handler: notes are linked to the handled event
        self.heads: dict[str, Entry] = {}
        self.rejected: list[str] = []  #: ids of notes that lost a race, in log order
        self._seen: set[str] = set()
        self._after: str | None = None

    async def read(self) -> dict[str, Entry]:
        """The board now: the accepted head of every key."""
        async with contextlib.aclosing(self.hub.replay(self.topic, after=self._after)) as events:
            async for stored in events:  # closed here even when cancelled
                self._after = stored.position
                self._apply(stored.event)
        return dict(self.heads)

    def _apply(self, event: Event) -> None:
        if event.type != "creative.agents.note" or event.id in self._seen:
            return
        self._seen.add(event.id)
        note = msgspec.convert(event.data, Note)
        head = self.heads.get(note.key)
        if head is None:
            ok = note.revision == 1 or (event.supersedes not in self._seen and note.revision > 1)
        else:
            ok = event.supersedes == head.id or (
                event.supersedes not in self._seen and note.revision == head.revision + 1
            )
        if ok:
            self.heads[note.key] = Entry(note.key, note.value, note.revision, event.id, event.creator or "")
        else:
            self.rejected.append(event.id)

    async def get(self, key: str) -> Entry | None:
        return (await self.read()).get(key)

    async def write(self, key: str, value: Any, base: Entry | None) -> tuple[bool, Entry | None]:
        """Write ``value`` on top of ``base`` (None: a new key); True if accepted.

        Returns (accepted, the head of the key after the write).
        """
        revision = base.revision + 1 if base else 1
        body = msgspec.json.encode(value).decode()
        note_id = derive_id("agents.note", self.topic, key, str(revision), base.id if base else "", body)
        event = Event(
            type="creative.agents.note",
            id=note_id,
            subject=f"board:{self.board}/{key}",
            partitionkey=key,
            supersedes=base.id if base else None,
            data=Note(board=self.board, key=key, value=value, revision=revision),
        )
        if self.ctx is not None:
            await self.ctx.publish(event, topic=self.topic)
        else:
            try:
                await self.hub.publish(event, topic=self.topic)  # the write rules apply here too
            except IdConflict:
                pass  # the same note by another writer: the first one stands
        head = (await self.read()).get(key)
        accepted = note_id in self._seen and note_id not in self.rejected
        return accepted, head

    async def put(self, key: str, value: Any) -> Entry:
        """Set ``key`` to ``value`` whatever it was (last writer wins, by revision)."""
        return await self.update(key, lambda _old: value)

    async def update(self, key: str, fn: Callable[[Any], Any], *, attempts: int = DEFAULT_ATTEMPTS) -> Entry:
        """Write ``fn(current value)`` (``None`` for a new key) until it is accepted.

        When ``fn`` returns the value unchanged, nothing is written.  Conflict
        after ``attempts`` lost races.
        """
        for _ in range(attempts):
            head = await self.get(key)
            old = head.value if head else None
            new = fn(old)
            if head is not None and new == old:
                return head
            accepted, now = await self.write(key, new, head)
            if accepted and now is not None:
                return now
        raise Conflict(f"board {self.board}: {key!r} still contested after {attempts} attempts")
