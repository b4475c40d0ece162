"""The story insight agents: morals, causal check, continuity -- each a real model's reading of a story.

    creative-hub agent run creative_hub.agents.builtin:story_insight      # all three
    creative-hub agent run creative_hub.agents.builtin:morals

Each reads the story the handled event belongs to (as the agent may see it:
drafts only through a grant), asks the model one question with a JSON
schema (``prompts``), maps the answer back to plot point events and
publishes a ``creative.narrative.insight``:

* **morals**: the lesson(s) and values the story encodes, each with the plot
  points that carry it;
* **causal check**: for key plot points, what must be true before and
  whether an earlier point establishes it; unexplained turns and setups
  never paid off are flagged with their evidence;
* **continuity**: a new fragment (or revision) against the story so far --
  someone acting after leaving or dying, one name for two characters --
  posted as feedback on the owner's hub.

Provenance is the runtime's: ``model`` and ``modelprovider`` of the model
that answered (``local`` for the SmolLM2 server), ``inputs`` = the handled
event, then the fragment and the plot points the prompt showed.

Story-wide insights run once per state of a story: an event is skipped when
a later event of its story already sits in the same topic (that one will
run), and an insight's id derives from the agent, the story and the inputs,
so the same state is stored once.  Where they go: a story in the shared hub
gets its insights in ``creative.narrative``; a peer's story in that peer's
``feedback`` stream.  Made from drafts read through a grant, an insight is
the owner's alone: the hub stores it in the owner's drafts (``derived``),
whatever topic the agent asked for.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import msgspec

from ....access import peer_of
from ....event import Event, derive_id
from ....schemas import Finding, Insight
from ....storyline import Point, Storyline
from ....topics import creative, drafts, peer
from ...context import AgentContext
from ...llm import LLMBadResponse
from ...spec import Agent, AgentSettings, Handler
from . import prompts
from .reader import StoryEvents, StoryReader, story_of

__all__ = ["INSIGHT_SETTINGS", "StoryAgentOptions", "causal_check", "continuity", "morals", "story_insight"]

logger = logging.getLogger(__name__)

STORY_TYPES = (
    "creative.narrative.fragment",
    "creative.narrative.plot_point",
    "creative.narrative.character_arc",
)
DEFAULT_MAX_POINTS = 24  # plot points shown to the model (spread over the story)
#: a small local model answers in seconds idle, in minutes on a busy machine: wait for it
INSIGHT_SETTINGS = AgentSettings(ack_timeout=600.0, max_attempts=2, concurrency=1)
MAX_PROMPT_KEPT = 8000  # characters of the prompt kept in the event (what the model was asked)

Ask = Callable[[Storyline, Sequence[Point]], str]


class StoryAgentOptions(TypedDict, total=False):
    """What each insight agent takes besides its id; all optional."""

    topics: Sequence[str]  #: where it reads stories (default: creative.narrative)
    drafts_of: Sequence[str]  #: peers whose drafts it reads too (through their grants)
    max_points: int  #: plot points shown to the model (default: DEFAULT_MAX_POINTS)
    settings: AgentSettings | None  #: default: INSIGHT_SETTINGS


def _topics(topics: Sequence[str], drafts_of: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*topics, *(drafts(p) for p in drafts_of)]))


def _insight_id(agent: str, story: str, kind: str, inputs: Sequence[str]) -> str:
    digest = hashlib.sha256(" ".join(inputs).encode()).hexdigest()[:32]
    return derive_id("insight", agent, story, kind, digest)


def _target(se: StoryEvents, event: Event, topic: str, kind: str) -> str:
    """Where an insight about ``se`` goes: the owner's feedback, or the shared hub."""
    owner = peer_of(topic)
    if kind == "continuity":
        owner = owner or event.creator
    else:
        owner = owner or next(iter(se.owners()), None)
    return peer(owner, "feedback") if owner else creative("narrative")


async def _ask(ctx: AgentContext, prompt: str, schema: dict[str, Any], max_tokens: int) -> Any:
    messages = [
        {"role": "system", "content": "You read stories closely. Answer in JSON with short fields."},
        {"role": "user", "content": prompt},
    ]
    try:
        reply = await ctx.chat(messages, schema=schema, schema_name="insight", max_tokens=max_tokens)
    except LLMBadResponse:
        # Cut off at max_tokens mid-string (a small model pads fields): once more with room.
        reply = await ctx.chat(messages, schema=schema, schema_name="insight", max_tokens=max_tokens * 2)
    return reply.data


class _Insights:
    """What the three agents share: their options, the reader, the model check, publishing."""

    def __init__(self, agent_id: str, kind: str, options: StoryAgentOptions) -> None:
        unknown = options.keys() - StoryAgentOptions.__optional_keys__
        if unknown:
            raise TypeError(f"{agent_id}: unexpected keyword argument(s) {', '.join(sorted(unknown))}")
        self.agent_id, self.kind = agent_id, kind
        self.topics = _topics(options.get("topics", ("creative.narrative",)), options.get("drafts_of", ()))
        self.max_points = options.get("max_points", DEFAULT_MAX_POINTS)
        self.settings = options.get("settings") or INSIGHT_SETTINGS
        self.reader = StoryReader(self.topics)
        self.published: set[str] = set()
        self.warned = False

    def agent(
        self, handle: Handler, types: Sequence[str], description: str, schema: dict[str, Any], **config: Any
    ) -> Agent:
        """The agent running ``handle`` with these options."""
        return Agent(
            id=self.agent_id,
            handler=handle,
            topics=self.topics,
            types=tuple(types),
            description=description,
            settings=self.settings,
            config={"needs_model": True, "kind": self.kind, "schema": schema, "max_points": self.max_points}
            | config,
        )

    def has_model(self, ctx: AgentContext) -> bool:
        if ctx.llm is not None and ctx.llm.configured:
            return True
        if not self.warned:
            logger.warning(
                "%s needs a model: start the local one (creative-hub model serve, or agent run "
                "starts it) or set CREATIVE_HUB_LLM_BASE_URL; publishing nothing",
                self.agent_id,
            )
            self.warned = True
        return False

    async def publish(
        self,
        ctx: AgentContext,
        se: StoryEvents,
        *,
        findings: list[Finding],
        inputs: list[str],
        summary: str,
        prompt: str,
        on: str | None = None,
    ) -> None:
        event = ctx.event
        topic = _target(se, event, ctx.delivery.topic, self.kind)
        insight = Insight(
            story=se.story,
            kind=self.kind,  # type: ignore[arg-type]
            summary=summary[:2000],
            findings=findings,
            on=on,
            extra={"prompt": prompt[:MAX_PROMPT_KEPT], "points_shown": len(inputs) - (1 if on else 0)},
        )
        item = Event(
            type="creative.narrative.insight",
            id=_insight_id(self.agent_id, se.story, self.kind, inputs),
            subject=event.subject or f"story:{se.story}",
            hub=peer_of(topic),
            data=msgspec.to_builtins(insight),
        )
        await ctx.publish(item, topic=topic, inputs=inputs)
        self.published.add(item.id)


@dataclass(frozen=True, slots=True)
class _Reading:
    """One story-wide question: how it is asked, how the answer is read and summed up."""

    kind: str
    ask: Ask
    schema: dict[str, Any]
    parse: Callable[[Any, Sequence[Point]], list[Finding]]
    summarise: Callable[[list[Finding]], str]
    max_tokens: int
    description: str


def _story_agent(id: str, reading: _Reading, options: StoryAgentOptions) -> Agent:
    shared = _Insights(id, reading.kind, options)

    async def handle(ctx: AgentContext, event: Event) -> None:
        story = story_of(event)
        if story is None or not shared.has_model(ctx):
            return
        topic = ctx.delivery.topic
        se = await shared.reader.story(ctx.hub, story, [topic])
        later = [e for e in se.events if se.topics[e.id] == topic]
        if later and later[-1].id != event.id:
            return  # a later event of this story is in the topic: that one runs it
        line = se.line
        if len(line.points) < 2:
            return
        shown = prompts.pick(line.points, shared.max_points)
        inputs = [p.id for p in shown]
        if _insight_id(id, story, reading.kind, inputs) in shared.published:
            return
        prompt = reading.ask(line, shown)
        findings = reading.parse(await _ask(ctx, prompt, reading.schema, reading.max_tokens), shown)
        summary = reading.summarise(findings)
        await shared.publish(ctx, se, findings=findings, inputs=inputs, summary=summary, prompt=prompt)

    return shared.agent(
        handle, STORY_TYPES, reading.description, reading.schema, max_tokens=reading.max_tokens
    )


def _morals_summary(findings: list[Finding]) -> str:
    if not findings:
        return "The model named no lesson this story teaches."
    return " ".join(
        f"{f.statement}" + (f" (values: {', '.join(f.values)})" if f.values else "") for f in findings
    )


def _causal_summary(findings: list[Finding]) -> str:
    checks = [f for f in findings if f.flag != "unresolved_setup"]
    gaps = sum(1 for f in checks if not f.established)
    setups = len(findings) - len(checks)
    return (
        f"{len(checks)} key plot point(s) checked: {gaps} not established earlier; "
        f"{setups} setup(s) never paid off."
    )


_MORALS = _Reading(
    "morals", prompts.morals_prompt, prompts.MORALS_SCHEMA, prompts.parse_morals, _morals_summary, 320,
    "the lessons and values a story encodes, with the plot points that carry them",
)  # fmt: skip
_CAUSAL = _Reading(
    "causal", prompts.causal_prompt, prompts.CAUSAL_SCHEMA, prompts.parse_causal, _causal_summary, 360,
    "checks that a story establishes what its key plot points need",
)  # fmt: skip


def morals(id: str = "story-morals", **options: Unpack[StoryAgentOptions]) -> Agent:
    """The morals agent: the lessons and values a story encodes, with the plot points that carry them."""
    return _story_agent(id, _MORALS, options)


def causal_check(id: str = "story-causal", **options: Unpack[StoryAgentOptions]) -> Agent:
    """The causal check: key plot points' preconditions, unexplained turns, unresolved setups."""
    return _story_agent(id, _CAUSAL, options)


def continuity(id: str = "story-continuity", **options: Unpack[StoryAgentOptions]) -> Agent:
    """The continuity check: each new fragment or revision against the story so far, as feedback."""
    shared = _Insights(id, "continuity", options)

    async def handle(ctx: AgentContext, event: Event) -> None:
        story = story_of(event)
        if story is None or not shared.has_model(ctx):
            return
        se = await shared.reader.story(ctx.hub, story, [ctx.delivery.topic])
        line = se.line
        mine = next((s for s in line.scenes if s.event == event.id), None)
        if mine is None:
            return  # revised since: its newest revision is checked when it comes
        before = [p for p in line.points if p.scene is None or _scene_order(line, p.scene) < mine.order]
        if not line.points:
            # A story told in fragments alone: the earlier fragments are what happened so far.
            before = [
                _as_point(line, s.event, s.order, s.characters) for s in line.scenes[: mine.order] if s.event
            ]
        if not before:
            return  # the story's first scene: nothing to contradict
        shown = prompts.pick(before, shared.max_points)
        inputs = [event.id, *(p.id for p in shown)]
        text = line.fragments.get(event.id, "")
        prompt = prompts.continuity_prompt(line, shown, text)
        excerpt = " ".join(text.split())[:300]
        data = await _ask(ctx, prompt, prompts.CONTINUITY_SCHEMA, 300)
        findings = prompts.parse_continuity(data, shown, excerpt)
        title = mine.title
        summary = (
            f"{len(findings)} possible continuity problem(s) in “{title}”: "
            + "; ".join(f.statement for f in findings)
            if findings
            else f"No continuity problem found in “{title}” against {len(shown)} earlier plot point(s)."
        )
        await shared.publish(
            ctx, se, findings=findings, inputs=inputs, summary=summary, prompt=prompt, on=event.id
        )

    return shared.agent(
        handle,
        ("creative.narrative.fragment",),
        "checks each new fragment or revision against the story so far",
        prompts.CONTINUITY_SCHEMA,
    )


def _as_point(line: Storyline, fragment: str, order: int, characters: list[str]) -> Point:
    text = " ".join(line.fragments.get(fragment, "").split())[:300]
    return Point(id=fragment, order=order, summary=text, evidence=text, characters=characters)


def _scene_order(line: Storyline, key: str) -> int:
    return next((s.order for s in line.scenes if s.key == key), -1)


def story_insight() -> list[Agent]:
    """All three insight agents, on the shared hub's narrative topic."""
    return [morals(), causal_check(), continuity()]
