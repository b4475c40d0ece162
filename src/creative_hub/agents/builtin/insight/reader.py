"""The stories an insight agent may read, kept up to date by replaying its topics as the agent.

Everything is read through the agent's own view of the hub (``ctx.hub``), so
a draft reaches an agent only through a live grant -- and each such read is
audited for its owner by the hub.  Reads are incremental: each topic is
replayed from where the last call stopped.

    reader = StoryReader(["creative.narrative", "peer.alice.published"])
    story = await reader.story(ctx.hub, "hansel")       # StoryEvents: events with their topics
    story.line                                           # the storyline (creative_hub.storyline)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ....access import stream_of
from ....errors import AccessDenied, NotFound
from ....event import Event
from ....hub import Hub
from ....storyline import Storyline, build, current

__all__ = ["MAX_STORY_EVENTS", "StoryEvents", "StoryReader", "story_of"]

logger = logging.getLogger(__name__)

MAX_STORY_EVENTS = 5000  # events of one story kept; beyond that the oldest are dropped
INSIGHT = "creative.narrative.insight"


def story_of(event: Event) -> str | None:
    """The story an event belongs to (``data.story``), if it is a narrative event."""
    if not event.type.startswith("creative.narrative.") or not isinstance(event.data, dict):
        return None
    s = event.data.get("story")
    return s if isinstance(s, str) and s else None


@dataclass
class StoryEvents:
    """One story's narrative events as the agent sees them (insights left out), with their topics."""

    story: str
    events: list[Event] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)  #: event id -> topic it was read from

    @property
    def line(self) -> Storyline:
        return build(self.story, self.events)

    def current(self) -> list[Event]:
        return current(self.events)

    def drafts(self, ids: Iterable[str]) -> list[str]:
        """The ids among ``ids`` that were read from someone's drafts (through a grant)."""
        return [i for i in ids if stream_of(self.topics.get(i, "")) == "drafts"]

    def owners(self) -> list[str]:
        """The peers whose hubs hold the story's events (none: the shared hub alone)."""
        out = []
        for t in self.topics.values():
            parts = t.split(".")
            if parts[0] == "peer" and len(parts) >= 3 and parts[1] not in out:
                out.append(parts[1])
        return out

    def latest(self) -> str | None:
        """The id of the event that arrived last (what the story is "as of")."""
        return self.events[-1].id if self.events else None


class StoryReader:
    """Stories by id, filled from ``topics`` as the reading agent may see them."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = list(dict.fromkeys(topics))
        self.positions: dict[str, str | None] = {t: None for t in self.topics}
        self.stories: dict[str, StoryEvents] = {}

    async def refresh(self, hub: Hub, extra: Iterable[str] = ()) -> None:
        """Read what is new in every topic (and in ``extra`` ones, e.g. the handled event's)."""
        for t in extra:
            self.positions.setdefault(t, None)
        for topic, after in list(self.positions.items()):
            try:
                async for stored in hub.replay(topic, after=after):
                    self.positions[topic] = stored.position
                    self.add(stored.event, topic)
            except (AccessDenied, NotFound) as e:
                # Someone's drafts without a grant, a topic not made yet: nothing to read there.
                logger.debug("not reading %s: %s", topic, e)

    def add(self, event: Event, topic: str) -> None:
        story = story_of(event)
        if story is None or event.type == INSIGHT:
            return
        se = self.stories.setdefault(story, StoryEvents(story))
        if event.id in se.topics:
            return
        se.events.append(event)
        se.topics[event.id] = topic
        if len(se.events) > MAX_STORY_EVENTS:
            gone = se.events.pop(0)
            se.topics.pop(gone.id, None)

    async def story(self, hub: Hub, story: str, extra: Iterable[str] = ()) -> StoryEvents:
        await self.refresh(hub, extra)
        return self.stories.get(story) or StoryEvents(story)
