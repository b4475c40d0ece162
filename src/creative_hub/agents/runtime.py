"""The agent runtime: subscriptions, idempotent handling, retries, dead letters.

An agent is a principal (kind ``agent``) with subscriptions, a handler and
an output.  The runtime makes it a consumer-group member that handles every
matching event once in effect::

    async def summarise(ctx: AgentContext, event: Event) -> None:
        await ctx.publish({"type": "creative.feedback.comment",
                           "data": {"on": event.id, "text": "..."}})

    analyst = Agent(id="analyst", handler=summarise,
                    topics=["creative.narrative"], types=["creative.narrative.fragment"])

    async with AgentRunner(hub, [analyst], ledger=EffectLedger("agents.db")) as runner:
        await runner.wait()                 # until runner.stop() or a signal

What the runtime does for every delivery, in order:

1. events the agent does not want (type / creator filters, its own events)
   are acked and skipped;
2. an event the group already handled (the ledger says so: a redelivery
   after a crash between effect and ack) is acked and skipped;
3. an event delivered more than ``max_deliveries`` times (it keeps killing
   its handler's process) goes to the dead-letter topic;
4. the handler runs; on an exception it is retried in place with backoff
   (``max_attempts`` in all), then dead-lettered with the error;
5. the event is marked handled in the ledger, then acked.

Effects happen once: what the handler writes through ``ctx.effect(fn)``
commits with a ledger record, and what it publishes through ``ctx.publish``
gets an id derived from (agent, incoming event, n), so a re-run publishes
the same ids and the log stores them once.  Everything published carries
``causationid`` (the handled event), ``correlationid`` (the handled event's,
or its id when it starts a conversation) and ``traceparent`` (the same trace,
a span per hop), and its provenance: ``model`` / ``modelprovider`` (the
model that answered, or ``offline``), ``confighash`` (the agent's prompt and
settings) and ``inputs`` (the handled event and every event the handler read
through ``ctx.get``); see ``provenance``.

Events with the same partition key are handled one at a time, in delivery
order; different keys run concurrently (``concurrency`` at most).  While an
event is retried its key waits (strict per-key order); other keys flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..access import can_read, needs_grant
from ..errors import HubError, IdConflict, ValidationError
from ..event import Event
from ..hub import Hub, HubDelivery, HubSubscription, Receipt
from ..ledger import EffectLedger
from ..log import GroupLag
from .context import AgentContext
from .provenance import Provenance
from .spec import DEFAULT_GRACE, Agent, Permanent
from .tracing import otel_span

if TYPE_CHECKING:
    from .llm import LLMClient

__all__ = ["AgentRunner", "AgentStats", "RunnerState", "agent_lags", "ensure_principal"]

logger = logging.getLogger(__name__)


@dataclass
class AgentStats:
    """Counters of one agent in this process (monotonic)."""

    handled: int = 0  #: handler runs that succeeded
    skipped: int = 0  #: filtered out (type, creator, own events)
    duplicates: int = 0  #: redeliveries of events already handled
    retries: int = 0  #: handler runs that failed and were retried
    dead_lettered: int = 0
    published: int = 0


class RunnerState(Enum):
    NEW = "new"  # built, not started
    RUNNING = "running"  # subscriptions open, handling
    STOPPING = "stopping"  # no new events taken; in-flight ones finishing
    STOPPED = "stopped"  # everything closed; start() again is refused


class AgentRunner:
    """Runs agents in this process: ``async with AgentRunner(hub, agents, ledger=...)``.

    ``hub`` is a trusted hub (the hub itself); each agent acts through
    ``hub.acting(agent.id, authenticated=True)`` and is registered as an
    agent principal if it is not yet (``register=False`` to skip).
    """

    def __init__(
        self,
        hub: Hub,
        agents: Iterable[Agent],
        *,
        ledger: EffectLedger,
        llm: LLMClient | None = None,
        register: bool = True,
        consumer: str | None = None,
    ) -> None:
        self.hub = hub
        self.agents = list(agents)
        names = [a.id for a in self.agents]
        if len(set(names)) != len(names):
            raise ValidationError("agents", f"two agents with one id: {names}")
        self.ledger = ledger
        self.llm = llm
        self.register = register
        self.consumer = consumer or f"agents-{os.getpid()}"
        self.state = RunnerState.NEW
        self.stats: dict[str, AgentStats] = {a.id: AgentStats() for a in self.agents}
        self._workers: list[_AgentWorker] = []
        self._stopped = asyncio.Event()

    async def __aenter__(self) -> AgentRunner:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Register the agents and join their groups."""
        if self.state is not RunnerState.NEW:
            raise HubError(f"runner is {self.state.value}; make a new one")
        await self.hub.registry.refresh()  # the rules know an agent principal by its registered kind
        for spec in self.agents:
            if self.register:
                await ensure_principal(self.hub, spec.id)
            acting = (
                self.hub.acting(spec.id, authenticated=True) if not _acts_as(self.hub, spec.id) else self.hub
            )
            worker = _AgentWorker(self, spec, acting)
            self._workers.append(worker)
            await worker.start()
        self.state = RunnerState.RUNNING
        logger.info("agents running: %s", ", ".join(a.id for a in self.agents))

    async def wait(self) -> None:
        """Until ``stop()`` is called (or an agent's subscription fails, which is raised)."""
        waits = [asyncio.ensure_future(self._stopped.wait())] + [w.failed() for w in self._workers]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for d in done:
                d.result()
        finally:
            for w in waits:
                w.cancel()

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop taking events; let in-flight ones finish for ``grace`` seconds,
        then release the rest to the group (another member gets them).  Safe twice."""
        if self.state in (RunnerState.STOPPED, RunnerState.NEW):
            self.state = RunnerState.STOPPED
            self._stopped.set()
            return
        self.state = RunnerState.STOPPING
        await asyncio.gather(*(w.stop(grace) for w in self._workers), return_exceptions=True)
        self.state = RunnerState.STOPPED
        self._stopped.set()

    async def publish(self, hub: Hub, item: Event | Mapping[str, Any], topic: str | None) -> Receipt:
        """Append one stamped event to ``topic`` (or its routed topic), idempotently."""
        try:
            # Through hub.publish either way: it confines work made from granted drafts.
            (receipt,) = await hub.publish(item, topic=topic)
        except IdConflict as e:
            # A re-run (after a crash) produced other content for an id it had
            # already published: the first version stands.
            logger.warning("not republishing %s: an earlier run published other content", e.id)
            return Receipt(e.id, topic or "", "", True)
        if receipt.duplicate is False and hub.principal in self.stats:
            self.stats[hub.principal].published += 1
        return receipt

    async def lags(self) -> dict[str, list[GroupLag]]:
        """Per agent: its group's lag on each of its topics (joined ones only)."""
        out: dict[str, list[GroupLag]] = {}
        for spec in self.agents:
            out[spec.id] = await agent_lags(self.hub, spec)
        return out


async def agent_lags(hub: Hub, spec: Agent) -> list[GroupLag]:
    """The lag of ``spec``'s group on each topic it has joined."""
    return await hub.lags(spec.group_name, spec.subscribed_topics())


def _acts_as(hub: Hub, principal: str) -> bool:
    return not hub.trusted and hub.authenticated and hub.principal == principal


async def ensure_principal(hub: Hub, principal: str, name: str | None = None) -> None:
    """Register ``principal`` as an agent (with a signing key) unless it exists."""
    if not hub.trusted:
        return  # only the hub itself registers principals
    registry = hub.registry
    await registry.refresh()
    if registry.is_registered(principal):
        return
    try:
        await registry.add(principal, kind="agent", name=name)
    except ValidationError:
        await registry.refresh()  # another process registered it first
        if not registry.is_registered(principal):
            raise


class _AgentWorker:
    """One agent's subscriptions and its per-key dispatch."""

    def __init__(self, runner: AgentRunner, spec: Agent, hub: Hub) -> None:
        self.runner = runner
        self.spec = spec
        self.hub = hub
        self.stats = runner.stats[spec.id]
        self.settings = spec.settings
        self.queue: asyncio.Queue[HubDelivery] = asyncio.Queue(maxsize=spec.settings.concurrency)
        self.subs: list[HubSubscription] = []
        self.pumps: list[asyncio.Task[None]] = []
        self.dispatcher: asyncio.Task[None] | None = None
        self.inflight: set[asyncio.Task[None]] = set()
        self.tails: dict[str, asyncio.Task[None]] = {}
        self.slots = asyncio.Semaphore(spec.settings.concurrency)
        self.llm = spec.llm if spec.llm is not None else runner.llm
        self.provenance = Provenance.of(spec, self.llm)  # model and config hash, once

    async def start(self) -> None:
        consumer = f"{self.runner.consumer}-{self.spec.id}"
        for topic in self.spec.subscribed_topics():
            if needs_grant(self.hub.identity, topic):
                await self.hub.grants.refresh()
                if not can_read(self.hub.identity, topic):
                    # Someone's drafts and no live grant: nothing there is the agent's to read.
                    logger.warning("agent %s: no grant on %s; not subscribing to it", self.spec.id, topic)
                    continue
            sub = self.hub.subscribe(
                topic,
                self.spec.group_name,
                consumer=consumer,
                ack_timeout=self.settings.ack_timeout,
                start=self.settings.start,
                batch=max(16, self.settings.concurrency * 2),
            )
            await sub.__aenter__()
            self.subs.append(sub)
            self.pumps.append(asyncio.create_task(self._pump(sub), name=f"pump-{self.spec.id}-{topic}"))
        self.dispatcher = asyncio.create_task(self._dispatch(), name=f"dispatch-{self.spec.id}")

    def failed(self) -> asyncio.Future[None]:
        """Completes (with the error) if a pump or the dispatcher dies."""
        tasks = [*self.pumps, *([self.dispatcher] if self.dispatcher else [])]

        async def watch() -> None:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            await asyncio.Event().wait()  # finished cleanly: wait to be cancelled

        return asyncio.ensure_future(watch())

    async def _pump(self, sub: HubSubscription) -> None:
        async for d in sub:
            try:
                await self.queue.put(d)
            except asyncio.CancelledError:
                await _release(d)  # taken from the group, never queued: hand it back now
                raise

    async def _dispatch(self) -> None:
        while True:
            await self.slots.acquire()
            try:
                d = await self.queue.get()
            except asyncio.CancelledError:
                self.slots.release()
                raise
            key = d.delivery.key
            prev = self.tails.get(key)
            task = asyncio.create_task(self._after(prev, d))
            self.tails[key] = task
            self.inflight.add(task)
            task.add_done_callback(functools.partial(self._done, key=key))

    def _done(self, task: asyncio.Task[None], *, key: str) -> None:
        self.inflight.discard(task)
        self.slots.release()
        if self.tails.get(key) is task:
            del self.tails[key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("agent %s: handling failed: %r", self.spec.id, task.exception())

    async def _after(self, prev: asyncio.Task[None] | None, d: HubDelivery) -> None:
        if prev is not None:
            # Same key: strictly after the previous one (its errors are its own).
            await asyncio.gather(prev, return_exceptions=True)
        try:
            await self.handle(d)
        except asyncio.CancelledError:
            await _release(d)
            raise
        except Exception:
            # The runtime's own failure (engine down while acking ...): let the
            # ack timeout redeliver; never kill the loop.
            logger.exception("agent %s: could not finish %r", self.spec.id, d)
            await _release(d)

    async def handle(self, d: HubDelivery) -> None:
        """One delivery: filter, dedup, run with retries, dead-letter, mark, ack."""
        event, spec = d.event, self.spec
        if (self.settings.skip_own and event.creator == spec.id) or not spec.wants(event):
            self.stats.skipped += 1
            await d.ack()
            return
        group = spec.group_name
        if self.runner.ledger.done(group, event.id):
            self.stats.duplicates += 1
            await d.ack()
            return
        if d.delivery_count > self.settings.max_deliveries:
            await self._dead_letter(d, f"delivered {d.delivery_count} times without an ack", 0)
            return
        attempt = 0
        while True:
            attempt += 1
            ctx = AgentContext(self.runner, spec, self.hub, d, attempt, self.llm, self.provenance)
            try:
                with otel_span(
                    f"{spec.id} {event.type}",
                    event.traceparent,
                    {"creative_hub.agent": spec.id, "creative_hub.event_id": event.id},
                ):
                    result = await spec.handler(ctx, event)
                await self._publish_result(ctx, result)
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = f"{type(e).__name__}: {e}"
                if isinstance(e, Permanent) or attempt >= self.settings.max_attempts:
                    await self._dead_letter(d, reason, attempt)
                    return
                self.stats.retries += 1
                wait = min(self.settings.backoff.compute(attempt - 1), self.settings.ack_timeout / 4)
                logger.warning(
                    "agent %s: %s failed (attempt %d of %d), retrying in %.2fs: %s",
                    spec.id,
                    event.id,
                    attempt,
                    self.settings.max_attempts,
                    wait,
                    reason,
                )
                await asyncio.sleep(wait)
        with self.runner.ledger.once(group, event.id):
            pass  # the mark: a redelivery from here on is skipped
        self.stats.handled += 1
        await d.ack()

    async def _publish_result(self, ctx: AgentContext, result: Any) -> None:
        """A handler may return an event, a mapping, or a list of them: published like ctx.publish."""
        if result is None:
            return
        items = result if isinstance(result, (list, tuple)) else [result]
        for item in items:
            if not isinstance(item, (Event, Mapping)):
                raise Permanent(f"handler returned {type(item).__name__}, not an event")
            await ctx.publish(item)

    async def _dead_letter(self, d: HubDelivery, reason: str, attempts: int) -> None:
        group = self.spec.group_name
        text = (
            f"agent {self.spec.id}: {reason} "
            f"(attempts {attempts}, delivery {d.delivery_count}, group {group})"
        )
        try:
            await self.hub.dead_letter(d.delivery.record, text, group=group)
        except IdConflict:
            pass  # dead-lettered before a crash, with other words: that letter stands
        with self.runner.ledger.once(group, d.event.id):
            pass  # dead-lettered is handled: a redelivery does not retry it
        self.stats.dead_lettered += 1
        await d.ack()

    async def stop(self, grace: float) -> None:
        for p in self.pumps:
            p.cancel()
        if self.dispatcher is not None:
            self.dispatcher.cancel()
        await asyncio.gather(
            *self.pumps, *([self.dispatcher] if self.dispatcher else []), return_exceptions=True
        )
        if self.inflight:
            _, pending = await asyncio.wait(list(self.inflight), timeout=grace)
            for t in pending:
                t.cancel()  # _after releases its delivery to the group
            await asyncio.gather(*pending, return_exceptions=True)
        while not self.queue.empty():
            await _release(self.queue.get_nowait())
        for sub in self.subs:
            with contextlib.suppress(Exception):
                await sub.close()


async def _release(d: HubDelivery) -> None:
    """Hand an unfinished delivery back to the group at once (best effort:
    if this fails, the ack timeout redelivers it anyway)."""
    try:
        await asyncio.shield(d.nack(0.0))
    except Exception as e:  # the engine is going away; the ack timeout covers it
        logger.debug("could not release %r: %s", d, e)
