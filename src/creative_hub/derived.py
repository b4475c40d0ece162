"""A grant is read access only: what is made from granted drafts stays their owner's.

The hub runs ``confine`` on every event a principal (not the hub itself)
writes, before anything is appended.  It looks at what the event says it was
made from -- ``inputs`` (the read set of an agent's handling, which the
runtime records), ``causationid``, ``supersedes`` and ``forkedfrom`` -- and:

* none of them is another principal's draft: nothing changes;
* a draft of ``alice`` (read through a grant alice gave the writer) is named
  in ``supersedes`` or ``forkedfrom``: refused -- forking or publishing a draft
  you reached through a grant would make alice's private work yours, or public;
* it is named in ``inputs`` or ``causationid``: the event is stored private,
  in ``peer.alice.drafts`` (``hub`` alice, ``visibility`` private), whatever
  topic the writer asked for -- alice reads it, and whoever her grants let
  read that subject; nobody else;
* drafts of two owners: refused (the work cannot be private to both);
* a draft no grant of the writer ever covered: refused (it could not be read).

For agent principals the hub also checks ``inputs`` itself: every id must
name an event the agent may read now (``check_inputs``), so an agent cannot
claim it worked from something it never saw, nor hide a granted draft behind
an id it could not have read.  What the hub handed the agent in this process
is known (``ReadLog``); other ids are looked up in the id index (``ids.py``),
as the drafts an event names are.

This works from the *declared* read set.  The runtime declares it for every
agent it runs (the handled event, every ``ctx.get``); a program that copies a
draft's text into a new event without naming it cannot be caught by any
system that lets it read the draft -- which is why grants are given to agents
for a task, expire, and every read through them is audited.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from .access import can_read, can_read_event, peer_of
from .errors import AccessDenied
from .event import Event, decode_event
from .topics import drafts as drafts_topic

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["ReadLog", "check_inputs", "confine", "confined_copy", "references"]

READ_LOG_SIZE = 65_536  # (reader, id) pairs remembered per process


class ReadLog:
    """The events this process handed to each principal lately (bounded, newest kept)."""

    def __init__(self, size: int = READ_LOG_SIZE) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, reader: str, ids: Iterable[str]) -> None:
        for i in ids:
            key = (reader, i)
            self._seen[key] = None
            self._seen.move_to_end(key)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def has(self, reader: str, event_id: str) -> bool:
        return (reader, event_id) in self._seen


def references(event: Event) -> list[str]:
    """The ids ``event`` says it was made from, each once."""
    refs = [event.causationid, event.supersedes, event.forkedfrom, *event.input_ids]
    return list(dict.fromkeys(r for r in refs if r))


async def confine(hub: Hub, event: Event) -> str | None:
    """The owner whose drafts ``event`` was made from through a grant (it must be
    stored private in their drafts), or None.  AccessDenied when it may not be
    written at all (see the module docstring)."""
    who = hub.identity
    refs = references(event)
    if who.trusted or not refs:
        return None
    book = hub.grants
    await book.refresh()
    grants = [g for g in book.given_to(who.principal) if g.owner != who.principal]
    if not grants:
        return None  # never granted anything: cannot have read another's drafts
    topics = {drafts_topic(g.owner) for g in grants}
    found: dict[str, tuple[str, str | None]] = {}  # ref -> (drafts topic, subject)
    for ref in refs:
        for topic, copy in await _copies(hub, ref):
            if topic in topics:
                found[ref] = (topic, copy.subject)
    if not found:
        return None
    for ref, (topic, subject) in found.items():
        if not any(g.covers(topic, subject) for g in grants):
            raise AccessDenied(f"{ref!r} is a draft {who.principal!r} may not read")
    if {event.supersedes, event.forkedfrom} & found.keys():
        raise AccessDenied(
            "a grant is read access only: a draft read through a grant cannot be forked, "
            "revised or published by anyone but its owner"
        )
    owners = sorted({peer_of(topic) or "" for topic, _ in found.values()})
    if len(owners) > 1:
        raise AccessDenied(
            f"made from the drafts of more than one principal ({', '.join(owners)}): it cannot be "
            "private to each of them; write one event per owner"
        )
    return owners[0]


async def check_inputs(hub: Hub, event: Event) -> None:
    """AccessDenied unless every id in ``event.inputs`` names an event the writer may read."""
    who = hub.identity
    for i in event.input_ids:
        if hub.reads.has(who.principal, i):
            continue
        if not any(
            can_read(who, topic) and can_read_event(who, topic, e.subject)
            for topic, e in await _copies(hub, i)
        ):
            raise AccessDenied(f"inputs: {i!r} is not an event {who.principal!r} may read")


async def _copies(hub: Hub, event_id: str) -> list[tuple[str, Event]]:
    """Every stored copy of ``event_id`` (topic, event), found through the id index."""
    out = []
    for place in await hub.ids.locate(event_id):
        record = await hub.ids.fetch(place, event_id)
        if record is None:
            continue
        try:
            out.append((place.topic, decode_event(record.body)))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # junk is nothing anybody could have read
    return out


def confined_copy(event: Event, owner: str) -> Event:
    """``event`` as a private draft of ``owner`` (to be stamped and signed again)."""
    return msgspec.structs.replace(event, hub=owner, visibility="private", signature=None)
