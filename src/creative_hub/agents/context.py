"""What a handler gets besides the event: publish (linked, idempotent, with
provenance), reads that count as inputs, effects (once, with the ledger), the
LLM (usage accounted) and the trace."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..event import PROVENANCE, Event, derive_id
from ..hub import Hub, HubDelivery, Receipt, StoredEvent
from ..ledger import EffectLedger
from .provenance import Provenance
from .spec import Agent, Permanent
from .tracing import SpanContext, child_of, parse

if TYPE_CHECKING:
    from .llm import LLMClient, Usage
    from .runtime import AgentRunner

__all__ = ["AgentContext"]

T = TypeVar("T")


class AgentContext:
    """What a handler gets besides the event: publish, effects, LLM, trace."""

    def __init__(
        self,
        runner: AgentRunner,
        spec: Agent,
        hub: Hub,
        delivery: HubDelivery,
        attempt: int,
        llm: LLMClient | None,
        provenance: Provenance | None = None,
    ) -> None:
        self.agent = spec
        self.hub = hub  #: the hub as the agent principal sees it
        self.delivery = delivery
        self.event = delivery.event
        self.attempt = attempt  #: 1 on the first run of this delivery
        self.llm = llm  #: None unless configured
        self.span: SpanContext = child_of(parse(self.event.traceparent), spec.id, self.event.id)
        self.usage: list[Usage] = []  #: LLM calls made while handling (accounted in what it publishes)
        self.provenance = provenance or Provenance.of(spec, llm)
        self.inputs: list[str] = [self.event.id]  #: events read while handling (the ``inputs`` attribute)
        #: the principal this handling works for (an A2A caller): ``get`` reads only what they may read too
        self.on_behalf_of: str | None = None
        self._runner = runner
        self._published = 0
        self._effects = 0

    @property
    def group(self) -> str:
        return self.agent.group_name

    @property
    def ledger(self) -> EffectLedger:
        return self._runner.ledger

    @property
    def correlationid(self) -> str:
        """The conversation this event belongs to (its own id when it starts one)."""
        return self.event.correlationid or self.event.id

    def effect(self, fn: Callable[[sqlite3.Connection], T], name: str | None = None) -> bool:
        """Run ``fn(tx)`` once for this event and this group; True if it ran now.

        ``tx`` is the ledger's connection inside a transaction: whatever ``fn``
        writes there commits with the record that it ran, so a redelivered
        event does not run it again.  ``fn`` is synchronous on purpose: the
        transaction must not stay open across awaits.
        """
        self._effects += 1
        key = f"{self.event.id}#effect:{name or self._effects}"
        with self.ledger.once(self.group, key) as tx:
            if tx is None:
                return False
            fn(tx)
            return True

    async def get(self, event_id: str, topic: str | None = None) -> StoredEvent:
        """An event the agent may read (``hub.get``) -- and, working for someone
        (``on_behalf_of``), that they may read too -- counted as an input of what it publishes next."""
        stored = await self.hub.get(event_id, topic)
        if self.on_behalf_of is not None:
            # NotFound, like any event the caller may not see: their rights bound this task.
            await self.hub.acting(self.on_behalf_of, authenticated=True).get(stored.event.id, stored.topic)
        self.used(stored.event.id)
        return stored

    def used(self, *event_ids: str) -> None:
        """Count events read some other way (the index, a replay, a cache) as inputs."""
        self.inputs.extend(i for i in event_ids if i not in self.inputs)

    def record_usage(self, usage: Usage) -> None:
        """Account an LLM call (the LLM client calls this through ``ctx.chat``)."""
        self.usage.append(usage)

    async def chat(self, messages: Sequence[Mapping[str, Any]], **kw: Any) -> Any:
        """``self.llm.chat(...)`` with the usage accounted to this handling."""
        if self.llm is None:
            raise Permanent("no LLM configured (set CREATIVE_HUB_LLM_BASE_URL)")
        reply = await self.llm.chat(messages, **kw)
        self.record_usage(reply.usage)
        return reply

    def stamp(self, item: Event | Mapping[str, Any], inputs: Sequence[str] = ()) -> Event | dict[str, Any]:
        """``item`` with a derived id, causation, correlation, trace, provenance and LLM usage set.

        Provenance (``model``, ``modelprovider``, ``confighash``, ``inputs``)
        is the runtime's to set: what the item says there is replaced, except
        the input ids it names, kept after the ones read through this context.
        """
        self._published += 1
        n = self._published
        links = {
            "causationid": self.event.id,
            "correlationid": self.correlationid,
            "traceparent": self.span.traceparent,
        }
        default_id = derive_id("agent", self.agent.id, self.event.id, str(n))
        declared = item.inputs if isinstance(item, Event) else item.get("inputs")
        named = declared.split(" ") if isinstance(declared, str) else []
        prov = self.provenance.attributes(self.usage, [*self.inputs, *inputs, *named])
        if isinstance(item, Event):
            changes: dict[str, Any] = {k: v for k, v in links.items() if getattr(item, k) is None}
            if not item.id:
                changes["id"] = default_id
            changes.update({k: prov.get(k) for k in PROVENANCE})
            event = msgspec.structs.replace(item, **changes)
            if self.usage:
                _add_usage(event.data, self.usage)
            return event
        obj = dict(item)
        for k, v in links.items():
            obj.setdefault(k, v)
        obj.setdefault("id", default_id)
        for k in PROVENANCE:
            obj.pop(k, None)
        obj.update(prov)
        if self.usage and isinstance(obj.get("data"), Mapping):
            obj["data"] = dict(obj["data"])
            _add_usage(obj["data"], self.usage)
        return obj

    async def publish(
        self, item: Event | Mapping[str, Any], *, topic: str | None = None, inputs: Sequence[str] = ()
    ) -> Receipt:
        """Publish one event as the agent, linked to the event being handled.

        ``topic`` (else the agent's ``output``, else routing by type) says
        where.  ``inputs``: ids this one output was made from besides those
        read through the context (``ctx.get`` / ``ctx.used``).  Publishing the
        same derived id again (a re-run) stores nothing; a re-run that
        produced *other* content keeps the first.
        """
        stamped = self.stamp(item, inputs)
        return await self._runner.publish(self.hub, stamped, topic or self.agent.output)


def _add_usage(data: Any, usage: Sequence[Usage]) -> None:
    """Put the LLM accounting in ``data.extra["llm"]`` (every payload has ``extra``)."""
    summary = {
        "model": usage[-1].model,
        "provider": usage[-1].provider,
        "calls": len(usage),
        "prompt_tokens": sum(u.prompt_tokens for u in usage),
        "completion_tokens": sum(u.completion_tokens for u in usage),
        "cost": round(sum(u.cost or 0.0 for u in usage), 8),
    }
    if isinstance(data, dict):
        extra = dict(data.get("extra") or {})
        extra.setdefault("llm", summary)
        data["extra"] = extra
    elif hasattr(data, "extra") and isinstance(data.extra, dict):
        data.extra.setdefault("llm", summary)
