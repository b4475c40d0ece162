"""The contribution matcher: matches open calls to practitioners by their past work.

An *open call* is an open issue labelled "help wanted" (or "good first
issue"), or narrative work marked open (``data.extra["open"]`` true or
``data.extra["status"] == "open"``).  For each call it ranks the people
who have published work (everyone but the caller) by the TF-IDF similarity
between the call and their best-matching past work, and sends the best ``limit``
above the threshold a contribution request: a
``creative.feedback.suggestion`` in their hub (``peer.<id>.feedback``) with
``data.extra = {"kind": "contribution-request", "call": ..., "score": ...}``.
Ids are derived (person, call): one request per person per call.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...event import Event, derive_id
from ..context import AgentContext
from ..spec import Agent, AgentSettings
from .forks import _peer
from .library import SHARED_TOPICS, WORK_TYPES, Library
from .text import _field, event_text, event_title, terms

__all__ = ["OPEN_LABELS", "contribution_matcher", "is_open_call"]

OPEN_LABELS = frozenset({"help wanted", "help-wanted", "good first issue", "contributions welcome"})
DEFAULT_THRESHOLD = 0.1  # cosine similarity between the call and a person's work
DEFAULT_LIMIT = 3  # people asked per call


def is_open_call(event: Event) -> bool:
    """An open issue labelled help wanted, or narrative work marked open."""
    if event.type == "creative.engineering.issue":
        labels = {str(x).lower() for x in (_field(event.data, "labels") or [])}
        return _field(event.data, "state") == "open" and bool(labels & OPEN_LABELS)
    if event.type.startswith("creative.narrative."):
        extra = _field(event.data, "extra") or {}
        return bool(extra.get("open")) or extra.get("status") == "open"
    return False


def contribution_matcher(
    id: str = "contribution-matcher",
    *,
    topics: Sequence[str] = SHARED_TOPICS,
    threshold: float = DEFAULT_THRESHOLD,
    limit: int = DEFAULT_LIMIT,
    settings: AgentSettings | None = None,
) -> Agent:
    """The contribution-matcher agent."""
    library = Library(topics=tuple(topics))

    async def match(ctx: AgentContext, event: Event) -> None:
        await library.load(ctx.hub)
        library.add(event)
        if not is_open_call(event):
            return
        # A person's fit is their best-matching past work (a long body of work
        # would dilute one profile vector).
        best: dict[str, tuple[float, str]] = {}  # person -> (score, their best-matching work)
        for work_id, score in library.corpus.similar(terms(event_text(event)), limit=200, exclude={event.id}):
            person = library.works[work_id].creator or ""
            if person and person != event.creator and person != ctx.agent.id and _peer(person):
                if score > best.get(person, (0.0, ""))[0]:
                    best[person] = (score, work_id)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
        for person, (score, work_id) in ranked:
            if score < threshold:
                continue
            url = _field(event.data, "url")
            text = f"“{event_title(event)}” asks for help, and your past work fits (score {score:.2f})." + (
                f" See {url}." if isinstance(url, str) else ""
            )
            await ctx.publish(
                Event(
                    type="creative.feedback.suggestion",
                    id=derive_id("agents.contribution-request", ctx.agent.id, person, event.id),
                    subject=event.subject,
                    hub=person,
                    visibility="public",
                    data={
                        "on": event.id,
                        "text": text,
                        "extra": {
                            "kind": "contribution-request",
                            "for": person,
                            "call": event.id,
                            "caller": event.creator,
                            "score": score,
                            "links": {"call": event.id, "url": url},
                        },
                    },
                ),
                inputs=[work_id],  # provenance: the call and the past work that fits
            )

    return Agent(
        id=id,
        handler=match,
        topics=list(library.topics),
        types=WORK_TYPES,
        description="matches open calls to practitioners and asks them to contribute",
        settings=settings or AgentSettings(),
        config={"threshold": threshold, "limit": limit},
    )
