"""The fork suggester: finds related published work across peers and areas
and proposes forks to the people it fits.

For each new public work W by C, it looks for work by *others* close to W:
through the search index's ``related()`` when one is given (links, same
subject, full text, and meaning when the semantic extra is installed), and
by TF-IDF over everything published otherwise.  Each match R above the
threshold becomes a ``creative.feedback.suggestion`` in C's hub
(``peer.<C>.feedback``): "you may want to fork R", with the links in
``data.extra``.  A suggestion's id is derived from (C, R), so nobody gets
the same suggestion twice, whatever the agent sees again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...access import Identity
from ...errors import HubError
from ...event import Event, derive_id
from ...topics import published
from ..context import AgentContext
from ..spec import Agent, AgentSettings
from .library import SHARED_TOPICS, WORK_TYPES, Library
from .text import event_text, event_title, terms

if TYPE_CHECKING:
    from ...index import HubIndex

__all__ = ["DEFAULT_THRESHOLD", "fork_suggester"]

#: what can be forked: made work, not calls for work (issues) or gatherings
FORKABLE = (
    "creative.narrative.",
    "creative.metadata.",
    "creative.engineering.commit",
    "creative.engineering.pull",
)
DEFAULT_THRESHOLD = 0.2  # cosine similarity (TF-IDF) a match needs
DEFAULT_LIMIT = 3  # suggestions per new work


def _peer(creator: str | None) -> str | None:
    """The peer hub ``creator`` has, if any: never a source (``arxiv``, ``github``, ...),
    which writes what it brings in but is nobody to suggest or ask things of."""
    from ...origins import is_source_principal
    from ...principals import _PRINCIPAL_ID

    ok = creator and _PRINCIPAL_ID.match(creator) and not is_source_principal(creator)
    return creator if ok else None


async def _related(
    ctx: AgentContext, library: Library, index: HubIndex | None, event: Event, limit: int
) -> list[tuple[str, float, list[str]]]:
    """(work id, score, why) of related work by other creators, best first."""
    mine = library.by_creator.get(event.creator or "", set())
    if index is not None:
        try:
            await index.refresh(ctx.hub.acting(ctx.agent.id) if ctx.hub.trusted else ctx.hub)
            found = await index.related(Identity(ctx.agent.id, authenticated=True), event.id, limit=limit * 4)
        except HubError:
            found = []
        if found:
            top = max(r.score for r in found) or 1.0
            return [
                (r.id, round(r.score / top, 4), list(r.why))
                for r in found
                if r.creator != event.creator and r.id in library.works
            ][:limit]
    scored = library.corpus.similar(terms(event_text(event)), limit=limit * 4, exclude=mine | {event.id})
    return [(doc, score, ["similar text"]) for doc, score in scored][:limit]


def fork_suggester(
    id: str = "fork-suggester",
    *,
    topics: Sequence[str] = SHARED_TOPICS,
    follows: Sequence[str] = (),
    threshold: float = DEFAULT_THRESHOLD,
    limit: int = DEFAULT_LIMIT,
    index: HubIndex | None = None,
    settings: AgentSettings | None = None,
) -> Agent:
    """The fork-suggester agent (``index``: use the search index's related())."""
    library = Library(topics=tuple(dict.fromkeys([*topics, *(published(p) for p in follows)])))
    suggested: set[tuple[str, str]] = set()  # (person, work): one suggestion each

    async def suggest(ctx: AgentContext, event: Event) -> None:
        await library.load(ctx.hub)
        library.add(event)
        to = _peer(event.creator)
        if to is None or event.creator == ctx.agent.id:
            return
        for work_id, score, why in await _related(ctx, library, index, event, limit):
            other = library.works[work_id]
            if score < threshold or (to, work_id) in suggested or not other.type.startswith(FORKABLE):
                continue
            suggested.add((to, work_id))
            extra: dict[str, Any] = {
                "kind": "fork",
                "for": to,
                "related": event.id,
                "fork": work_id,
                "owner": other.creator,
                "score": score,
                "why": why,
                "links": {"yours": event.id, "fork": work_id, "subject": other.subject},
            }
            text = (
                f"{other.creator}'s “{event_title(other)}” is close to your “{event_title(event)}” "
                f"(score {score:.2f}): fork it with `creative-hub peer fork {work_id}`."
            )
            await ctx.publish(
                Event(
                    type="creative.feedback.suggestion",
                    id=derive_id("agents.fork-suggestion", ctx.agent.id, to, work_id),
                    subject=other.subject,
                    hub=to,
                    visibility="public",
                    data={"on": work_id, "text": text, "extra": extra},
                ),
                inputs=[work_id],  # provenance: made from the new work and the one it matched
            )

    return Agent(
        id=id,
        handler=suggest,
        topics=list(library.topics),
        types=WORK_TYPES,
        description="proposes forks of related work across peers and areas",
        settings=settings or AgentSettings(),
        config={"threshold": threshold, "limit": limit, "index": index is not None},
    )
