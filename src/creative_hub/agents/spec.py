"""What an agent is: its id, subscriptions, filters, output and settings.

    Agent(id="analyst", handler=fn, topics=["creative.narrative"])

    @agent("echo", topics=["creative.narrative"])
    async def echo(ctx, event): ...

The runtime (``runtime.AgentRunner``) runs them; see its docstring for what
happens to each delivery.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import ValidationError
from ..event import Event
from ..log import Backoff, Start
from ..principals import check_principal_id
from ..topics import peer as peer_topic

if TYPE_CHECKING:
    from .context import AgentContext
    from .llm import LLMClient

__all__ = [
    "DEFAULT_ACK_TIMEOUT",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_GRACE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DELIVERIES",
    "Agent",
    "AgentSettings",
    "Handler",
    "Permanent",
    "agent",
]

DEFAULT_ACK_TIMEOUT = 30.0  # seconds; above the slowest handler run (LLM calls included)
DEFAULT_MAX_ATTEMPTS = 4  # handler runs per delivery before it is dead-lettered
DEFAULT_MAX_DELIVERIES = 10  # deliveries without an ack (crashes) before dead-lettering unseen
DEFAULT_CONCURRENCY = 8  # partition keys handled at once
DEFAULT_GRACE = 10.0  # seconds in-flight handlers get to finish on stop()


class Permanent(Exception):
    """Raised by a handler for a failure a retry cannot fix: dead-letter at once."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSettings:
    """How the runtime runs one agent.

    AgentSettings()                                  # defaults: 4 attempts, 8 keys at once
    AgentSettings(ack_timeout=2, max_attempts=2)     # tests: fast redelivery, quick dead letters
    """

    ack_timeout: float = DEFAULT_ACK_TIMEOUT  #: seconds before an un-acked event is redelivered
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  #: handler runs per delivery
    max_deliveries: int = DEFAULT_MAX_DELIVERIES  #: deliveries (crashes) before dead-lettering
    concurrency: int = DEFAULT_CONCURRENCY  #: partition keys in flight at once
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.1, cap=5.0))
    start: Start = Start.EARLIEST  #: where a new group begins
    skip_own: bool = True  #: ignore events this agent published (no feedback loops)

    def __post_init__(self) -> None:
        for name in ("ack_timeout", "max_attempts", "max_deliveries", "concurrency"):
            if getattr(self, name) <= 0:
                raise ValidationError(f"settings.{name}", f"must be > 0, got {getattr(self, name)!r}")


Handler = Callable[["AgentContext", Event], Awaitable[Any]]


@dataclass(kw_only=True)
class Agent:
    """An agent: who it is, what it listens to, what it does, where it writes.

    Agent(id="analyst", handler=fn, topics=["creative.narrative"])
    Agent(id="w", handler=fn, topics=["agents.job1.tasks"], types=["creative.agents.task"],
          output="agents.job1.results", group="job1-workers")
    Agent(id="fan", handler=fn, follows=["alice"])   # peer.alice.published + .feedback
    Agent(id="critic", handler=fn, topics=[...], model="offline/critic-1",
          config={"prompt": "Name one weakness.", "temperature": 0})     # provenance

    ``model``, ``config`` and ``llm`` are what the runtime records as the
    provenance of everything the agent publishes (``model``,
    ``modelprovider``, ``confighash`` and ``inputs`` on each event): the
    model that answered through ``ctx.chat`` when there was a call, else
    ``model`` (``provider/name`` of a model the handler runs itself), else
    ``offline``; ``confighash`` is a sha256 of ``config`` (the prompt and
    settings), the handler's name, ``model`` and the LLM's provider / model.
    """

    id: str  #: the agent's principal id
    handler: Handler
    topics: Sequence[str] = ()
    types: Sequence[str] = ()  #: event types it wants; ``*`` globs (``creative.narrative.*``)
    creators: Sequence[str] = ()  #: only events of these creators
    follows: Sequence[str] = ()  #: peers whose public hub it follows
    output: str | None = None  #: topic it publishes to; None: routed by type like hub.publish
    group: str | None = None  #: consumer group; default ``agent-<id>`` (members share work)
    description: str = ""
    settings: AgentSettings = field(default_factory=AgentSettings)
    model: str | None = None  #: ``provider/name`` of a model the handler runs itself (``offline/echo-1``)
    config: Mapping[str, Any] = field(default_factory=dict)  #: prompt and settings (JSON); hashed
    llm: LLMClient | None = None  #: this agent's LLM client; None: the runner's

    def __post_init__(self) -> None:
        check_principal_id(self.id)
        try:
            msgspec.json.encode(self.config)
        except (TypeError, msgspec.EncodeError) as e:
            raise ValidationError("config", f"must be JSON (prompt and settings): {e}") from None
        if self.model is not None and not self.model.strip("/"):
            raise ValidationError("model", "a model name ('echo-1') or 'provider/name'")
        if not self.subscribed_topics():
            raise ValidationError("topics", f"agent {self.id!r} subscribes to nothing (topics or follows)")

    @property
    def group_name(self) -> str:
        return self.group or f"agent-{self.id}"

    def subscribed_topics(self) -> list[str]:
        """Its topics, then the public streams of the peers it follows (no repeats)."""
        out = list(dict.fromkeys(self.topics))
        for peer in self.follows:
            for stream in ("published", "feedback"):
                t = peer_topic(peer, stream)
                if t not in out:
                    out.append(t)
        return out

    def wants(self, event: Event) -> bool:
        """True if the type and creator filters let ``event`` through."""
        if self.types and not any(fnmatch.fnmatchcase(event.type, p) for p in self.types):
            return False
        return not (self.creators and event.creator not in self.creators)


def agent(
    id: str,
    *,
    topics: Sequence[str] = (),
    types: Sequence[str] = (),
    creators: Sequence[str] = (),
    follows: Sequence[str] = (),
    output: str | None = None,
    group: str | None = None,
    settings: AgentSettings | None = None,
    model: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Callable[[Handler], Agent]:
    """Decorator: ``@agent("echo", topics=["creative.narrative"])`` over a handler."""

    def wrap(fn: Handler) -> Agent:
        return Agent(
            id=id,
            handler=fn,
            topics=topics,
            types=types,
            creators=creators,
            follows=follows,
            output=output,
            group=group,
            description=(fn.__doc__ or "").strip().split("\n")[0],
            settings=settings or AgentSettings(),
            model=model,
            config=dict(config or {}),
        )

    return wrap
