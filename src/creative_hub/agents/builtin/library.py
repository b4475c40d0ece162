"""Published work the built-in agents compare against, kept as a TF-IDF corpus.

The library fills itself on first use by replaying its topics (so an agent
that restarts knows everything published before), then grows with every
event the agent handles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import AccessDenied
from ...event import Event
from ...hub import Hub
from .text import Corpus, event_text

__all__ = ["SHARED_TOPICS", "WORK_TYPES", "Library"]

#: event types that are *work* (what people make), as opposed to talk about work
WORK_TYPES = (
    "creative.narrative.*",
    "creative.engineering.commit",
    "creative.engineering.pull_request",
    "creative.engineering.issue",
    "creative.metadata.paper",
    "creative.metadata.webpage",
    "creative.ceremony.session",
)
SHARED_TOPICS = ("creative.narrative", "creative.engineering", "creative.metadata", "creative.ceremony")


def is_work(event: Event) -> bool:
    from fnmatch import fnmatchcase

    return any(fnmatchcase(event.type, p) for p in WORK_TYPES) and event.visibility != "private"


@dataclass
class Library:
    """Works by id, by creator, and as a corpus."""

    topics: tuple[str, ...] = SHARED_TOPICS
    works: dict[str, Event] = field(default_factory=dict)
    by_creator: dict[str, set[str]] = field(default_factory=dict)
    corpus: Corpus = field(default_factory=Corpus)
    loaded: bool = False

    async def load(self, hub: Hub) -> None:
        """Read every topic once (what was published before this agent ran)."""
        if self.loaded:
            return
        for topic in self.topics:
            try:
                async for stored in hub.replay(topic):
                    self.add(stored.event)
            except AccessDenied:
                continue
        self.loaded = True

    def add(self, event: Event) -> bool:
        """Keep ``event`` if it is public work with words; True if new."""
        if event.id in self.works or not is_work(event):
            return False
        text = event_text(event)
        if not text.strip():
            return False
        self.works[event.id] = event
        self.by_creator.setdefault(event.creator or "", set()).add(event.id)
        self.corpus.add(event.id, text)
        return True

    def profile(self, creator: str) -> str:
        """Everything ``creator`` has published, as one text (their past work)."""
        return "\n".join(event_text(self.works[i]) for i in sorted(self.by_creator.get(creator, ())))
