"""Peer hubs: every principal's own hub that others watch, fork and contribute to.

    alice = PeerHub(hub.acting("alice", authenticated=True))
    d1 = await alice.draft("creative.narrative.fragment", "story:wood", {...})
    d2 = await alice.revise(d1.id, {"text": "better"})
    p1 = await alice.publish(d2.id)                 # also mirrored to creative.narrative
    bob = PeerHub(hub.acting("bob", authenticated=True))
    f1 = await bob.fork(p1.id)                      # a draft in bob's hub, forkedfrom p1
    c1 = await bob.contribute("alice", p1.id, "Sharper ending", changes={"text": "..."})
    await alice.accept(c1.id)                       # a decision + a new published revision

Streams per principal ``<id>``: ``peer.<id>.drafts`` (owner only),
``peer.<id>.published``, ``peer.<id>.contributions`` (anyone signed in
proposes; the owner decides), ``peer.<id>.feedback``.  Every operation is an
event with its links (``supersedes``, ``forkedfrom``, ``causationid``), which
is what ``creative_hub.lineage`` walks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from . import topics
from .errors import NotFound, ValidationError
from .event import Event
from .hub import PRIVATE, PUBLIC, Hub, HubDelivery, Receipt, StoredEvent
from .log import Start
from .schemas import Comment, Decision, Proposed

__all__ = ["PeerHub"]

MAX_DRAFT_CHAIN = 1000  # revisions of a draft followed back to find the fork it started from


class PeerHub:
    """The peer-hub operations of ``hub.principal``."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.me = hub.principal

    def _topic(self, stream: str, peer: str | None = None) -> str:
        return topics.peer(peer or self.me, stream)

    async def _one(self, event: Event) -> Receipt:
        (receipt,) = await self.hub.publish(event)
        return receipt

    async def _own(self, event_id: str, stream: str) -> StoredEvent:
        try:
            return await self.hub.get(event_id, self._topic(stream))
        except NotFound:
            raise NotFound(f"no event {event_id!r} in {self._topic(stream)}") from None

    async def latest(
        self, subject: str, stream: str = "published", peer: str | None = None
    ) -> StoredEvent | None:
        """The newest event about ``subject`` in a stream of a peer's hub."""
        found = None
        async for s in self.hub.replay(self._topic(stream, peer)):
            if s.event.subject == subject:
                found = s
        return found

    # -- my own work -----------------------------------------------------------
    async def draft(
        self,
        type: str,
        subject: str,
        data: Mapping[str, Any],
        *,
        supersedes: str | None = None,
        forkedfrom: str | None = None,
    ) -> Receipt:
        """A private revision in my drafts."""
        if not subject:
            raise ValidationError("subject", "a draft needs a subject (the work it belongs to)")
        return await self._one(
            Event(
                type=type,
                subject=subject,
                data=dict(data),
                hub=self.me,
                visibility=PRIVATE,
                supersedes=supersedes,
                forkedfrom=forkedfrom,
            )
        )

    async def revise(self, previous: str, changes: Mapping[str, Any]) -> Receipt:
        """A new draft revision that supersedes ``previous`` (one of my drafts)."""
        prev = (await self._own(previous, "drafts")).event
        data = {**prev.data, **changes}
        return await self.draft(prev.type, prev.subject or "", data, supersedes=previous)

    async def publish(self, draft_id: str) -> Receipt:
        """Publish a draft: a public revision in my hub, mirrored to the shared topic."""
        draft = (await self._own(draft_id, "drafts")).event
        prior = await self.latest(draft.subject or "")
        event = Event(
            type=draft.type,
            subject=draft.subject,
            data=draft.data,
            hub=self.me,
            visibility=PUBLIC,
            supersedes=draft_id,
            forkedfrom=await self._forked_from(draft),
            causationid=draft_id,
            correlationid=prior.event.correlationid if prior else None,
        )
        return await self._publish_mirrored(event)

    async def _forked_from(self, draft: Event) -> str | None:
        """What a draft, or the earlier draft it revises, was forked from: its publication says so
        (the fork draft is private; without this a published fork looks like new work)."""
        event: Event = draft
        for _ in range(MAX_DRAFT_CHAIN):
            if event.forkedfrom or not event.supersedes:
                return event.forkedfrom
            try:
                event = (await self._own(event.supersedes, "drafts")).event
            except NotFound:  # folded by compaction (a fork itself never is)
                return None
        return None

    async def _publish_mirrored(self, event: Event) -> Receipt:
        """Publish to my hub and put the very same event (id, body, signature)
        on the shared topic of its area."""
        topic, event, entry = self.hub.prepare(event)
        (receipt,) = await self.hub.append(topic, [(event, entry)])
        await self.hub.append(topics.creative(event.area), [(event, entry)])
        return receipt

    async def fork(self, source_id: str, *, subject: str | None = None) -> Receipt:
        """A draft in my hub copied from any event I may read, ``forkedfrom`` it."""
        src = (await self.hub.get(source_id)).event
        return await self.draft(
            src.type, subject or src.subject or source_id, src.data or {}, forkedfrom=source_id
        )

    # -- others' hubs ----------------------------------------------------------
    async def contribute(
        self,
        to: str,
        on: str,
        title: str,
        *,
        changes: Mapping[str, Any] | None = None,
        content: str | None = None,
        description: str | None = None,
        causation: str | None = None,
    ) -> Receipt:
        """Propose a change to ``to``'s published work ``on``."""
        base = (await self.hub.get(on, self._topic("published", to))).event
        proposal = Proposed(
            to=to,
            title=title,
            description=description,
            content=content,
            on=on,
            changes=dict(changes or {}),
        )
        return await self._one(_reply("creative.contributions.proposed", base, to, causation, proposal))

    async def _decide(
        self, contribution_id: str, kind: str, reason: str | None
    ) -> tuple[Event, Event, Receipt]:
        prop = (await self._own(contribution_id, "contributions")).event
        if prop.type != "creative.contributions.proposed":
            raise ValidationError("contribution", f"{contribution_id!r} is not a proposal")
        async for s in self.hub.replay(self._topic("contributions")):
            if s.event.causationid == contribution_id and s.event.type != prop.type:
                raise ValidationError(
                    "contribution", f"{contribution_id!r} was already decided ({s.event.type})"
                )
        data = Decision(contribution=contribution_id, reason=reason)
        decision = _reply(f"creative.contributions.{kind}", prop, self.me, contribution_id, data)
        return prop, decision, await self._one(decision)

    async def accept(self, contribution_id: str, reason: str | None = None) -> tuple[Receipt, Receipt]:
        """Accept a proposal: a decision, then a new published revision built on it."""
        prop, decision, decided = await self._decide(contribution_id, "accepted", reason)
        data = prop.data if isinstance(prop.data, dict) else {}
        current = await self.latest(prop.subject or "")
        if current is None:
            raise NotFound(f"nothing published about {prop.subject!r} to build on")
        revision = Event(
            type=current.event.type,
            subject=current.event.subject,
            data={**current.event.data, **data.get("changes", {})},
            hub=self.me,
            visibility=PUBLIC,
            supersedes=current.event.id,
            causationid=decision.id,
            correlationid=contribution_id,
        )
        return decided, await self._publish_mirrored(revision)

    async def reject(self, contribution_id: str, reason: str | None = None) -> Receipt:
        """Reject a proposal, with a reason."""
        return (await self._decide(contribution_id, "rejected", reason))[2]

    async def feedback(self, on: str, text: str, *, rating: int | None = None) -> Receipt:
        """A comment on any event I may read, in its owner's feedback stream."""
        target = (await self.hub.get(on)).event
        owner = target.hub if target.hub and target.hub != "shared" else "shared"
        comment = Comment(on=on, text=text, rating=rating)
        return await self._one(_reply("creative.feedback.comment", target, owner, on, comment))

    async def follow(
        self, peer: str, group: str, *, ack_timeout: float = 30.0, start: Start = Start.EARLIEST
    ) -> AsyncIterator[HubDelivery]:
        """Everything ``peer`` publishes and the feedback they get, as one stream."""
        queue: asyncio.Queue[HubDelivery] = asyncio.Queue(maxsize=256)

        async def pump(stream: str) -> None:
            sub = self.hub.subscribe(self._topic(stream, peer), group, ack_timeout=ack_timeout, start=start)
            async with sub:
                async for d in sub:
                    await queue.put(d)

        tasks = [asyncio.create_task(pump(s)) for s in ("published", "feedback")]
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait([getter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _reply(type_: str, to: Event, hub: str, cause: str | None, data: Any) -> Event:
    """A public event in ``hub``'s streams about what ``to`` is about, caused by ``cause``
    (a proposal on published work, the owner's decision on it, a comment)."""
    return Event(type=type_, subject=to.subject, hub=hub, visibility=PUBLIC, causationid=cause, data=data)
