"""The agent runtime: links on what agents publish, retries, dead letters,
filters, per-key order, duplicates and graceful stop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from _agents import until
from creative_hub.agents import Agent, AgentContext, AgentRunner, AgentSettings, Permanent, agent
from creative_hub.agents.tracing import child_of, parse
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger

FAST = AgentSettings(ack_timeout=3.0, max_attempts=3, concurrency=4)
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def fragment(story: str, n: int, *, key: str | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "type": "creative.narrative.fragment",
        "subject": f"story:{story}",
        "partitionkey": key,
        "data": {"story": story, "title": f"part {n}", "text": f"text {n}", "order": n},
        **kw,
    }


async def test_published_events_carry_causation_correlation_and_trace(
    hub: Hub, ledger: EffectLedger, uid: str
) -> None:
    # Runs on every engine: an echo agent comments on each fragment it sees.
    topic = f"agents.{uid}.in"
    out_topic = f"agents.{uid}.out"

    async def echo(ctx: AgentContext, event: Event) -> dict[str, Any]:
        return {"type": "creative.feedback.comment", "data": {"on": event.id, "text": "seen"}}

    spec = Agent(id=f"echo-{uid}", handler=echo, topics=[topic], output=out_topic, settings=FAST)
    first = await _append(hub, topic, fragment("s", 1, traceparent=TRACE))
    second = await _append(hub, topic, fragment("s", 2, correlationid="conv-1"))
    async with AgentRunner(hub, [spec], ledger=ledger) as runner:
        await until(lambda: runner.stats[spec.id].handled == 2, "both handled")
    out = {s.event.causationid: s.event async for s in hub.replay(out_topic)}
    assert set(out) == {first, second}
    a, b = out[first], out[second]
    assert a.creator == spec.id and a.signature  # the agent principal, signed with its key
    assert a.correlationid == first  # it started a conversation
    assert b.correlationid == "conv-1"  # it continued one
    incoming = parse(TRACE)
    assert incoming is not None
    span = parse(a.traceparent)
    assert span is not None and span.trace_id == incoming.trace_id and span.span_id != incoming.span_id
    assert a.traceparent == child_of(incoming, spec.id, first).traceparent
    assert parse(b.traceparent) is not None  # a fresh trace for an untraced event
    principal = hub.registry.principals[spec.id]
    assert principal.kind == "agent"


async def _append(hub: Hub, topic: str, item: dict[str, Any]) -> str:
    """Put one event on an agents.* topic (what a pattern does); its id."""
    _, event, entry = hub.prepare({k: v for k, v in item.items() if v is not None})
    await hub.log.append(topic, [entry])
    return event.id


@pytest.mark.sqlite
async def test_retries_with_backoff_then_succeeds(sqlite_hub: Hub, ledger: EffectLedger, uid: str) -> None:
    calls: list[int] = []

    @agent("flaky", topics=["creative.narrative"], settings=FAST)
    async def flaky(ctx: AgentContext, event: Event) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("try again")

    await sqlite_hub.publish(fragment("s", 1))
    async with AgentRunner(sqlite_hub, [flaky], ledger=ledger) as runner:
        await until(lambda: runner.stats["flaky"].handled == 1, "handled after retries")
        assert runner.stats["flaky"].retries == 2
    assert calls == [1, 2, 3]


@pytest.mark.sqlite
async def test_poison_event_is_dead_lettered_with_the_error_and_others_flow(
    sqlite_hub: Hub, ledger: EffectLedger
) -> None:
    handled: list[int] = []

    @agent("picky", topics=["creative.narrative"], settings=FAST)
    async def picky(ctx: AgentContext, event: Event) -> None:
        if event.data["order"] == 2:
            raise ValueError("cannot read part 2")
        handled.append(event.data["order"])

    receipts = await sqlite_hub.publish([fragment("s", n) for n in (1, 2, 3)])
    async with AgentRunner(sqlite_hub, [picky], ledger=ledger) as runner:
        await until(lambda: runner.stats["picky"].dead_lettered == 1 and len(handled) == 2, "poison handled")
    assert handled == [1, 3]  # same key: order kept, the poison did not block it for good
    letters = [s.event async for s in sqlite_hub.replay("deadletter.creative.narrative")]
    assert len(letters) == 1
    data = letters[0].data
    assert data["record_id"] == receipts[1].id and data["group"] == "agent-picky"
    assert "ValueError: cannot read part 2" in data["reason"] and "attempts 3" in data["reason"]


@pytest.mark.sqlite
async def test_permanent_failure_is_dead_lettered_at_once(sqlite_hub: Hub, ledger: EffectLedger) -> None:
    @agent("strict", topics=["creative.narrative"], settings=FAST)
    async def strict(ctx: AgentContext, event: Event) -> None:
        raise Permanent("not for me")

    await sqlite_hub.publish(fragment("s", 1))
    async with AgentRunner(sqlite_hub, [strict], ledger=ledger) as runner:
        await until(lambda: runner.stats["strict"].dead_lettered == 1, "dead-lettered")
        assert runner.stats["strict"].retries == 0


@pytest.mark.sqlite
async def test_type_and_creator_filters_and_own_events(sqlite_hub: Hub, ledger: EffectLedger) -> None:
    seen: list[str] = []

    @agent("filter", topics=["creative.narrative"], types=["creative.narrative.plot_*"], creators=["alice"])
    async def filt(ctx: AgentContext, event: Event) -> None:
        seen.append(f"{event.creator}:{event.type}")

    plot = {"type": "creative.narrative.plot_point", "data": {"story": "s", "summary": "x"}}
    await sqlite_hub.publish(
        [
            {**plot, "creator": "alice"},
            {**plot, "creator": "bob"},
            {**fragment("s", 1), "creator": "alice"},
            {**plot, "creator": "filter"},  # its own: skipped even if it matched
        ]
    )
    async with AgentRunner(sqlite_hub, [filt], ledger=ledger) as runner:
        await until(lambda: runner.stats["filter"].skipped == 3, "three skipped")
    assert seen == ["alice:creative.narrative.plot_point"]


@pytest.mark.sqlite
async def test_keys_run_concurrently_one_key_in_order(sqlite_hub: Hub, ledger: EffectLedger) -> None:
    running: dict[str, int] = {}
    overlap: list[str] = []
    order: dict[str, list[int]] = {}
    both = asyncio.Event()

    @agent("keys", topics=["creative.narrative"], settings=AgentSettings(concurrency=4, ack_timeout=10))
    async def per_key(ctx: AgentContext, event: Event) -> None:
        key = event.partitionkey or ""
        if running.get(key):
            overlap.append(key)
        running[key] = running.get(key, 0) + 1
        if sum(1 for v in running.values() if v) >= 2:
            both.set()  # two keys in flight at once
        await asyncio.sleep(0.02)
        order.setdefault(key, []).append(event.data["order"])
        running[key] -= 1

    await sqlite_hub.publish([fragment("s", n, key=f"k{n % 2}") for n in range(10)])
    async with AgentRunner(sqlite_hub, [per_key], ledger=ledger) as runner:
        await until(lambda: runner.stats["keys"].handled == 10, "all handled")
    assert not overlap, "one key handled twice at once"
    assert both.is_set(), "keys were never handled concurrently"
    assert order == {"k0": [0, 2, 4, 6, 8], "k1": [1, 3, 5, 7, 9]}


@pytest.mark.sqlite
async def test_redelivered_event_already_handled_is_skipped(sqlite_hub: Hub, ledger: EffectLedger) -> None:
    effects: list[str] = []

    @agent("once", topics=["creative.narrative"], settings=FAST)
    async def once(ctx: AgentContext, event: Event) -> None:
        ctx.effect(lambda tx: effects.append(event.id))

    (r,) = await sqlite_hub.publish(fragment("s", 1))
    # As if a run had handled it and crashed before the ack.
    with ledger.once("agent-once", r.id):
        pass
    async with AgentRunner(sqlite_hub, [once], ledger=ledger) as runner:
        await until(lambda: runner.stats["once"].duplicates == 1, "skipped as a duplicate")
    assert effects == []


@pytest.mark.sqlite
async def test_stop_lets_in_flight_handlers_finish(sqlite_hub: Hub, ledger: EffectLedger) -> None:
    started, finished = asyncio.Event(), []

    @agent("slow", topics=["creative.narrative"], settings=FAST)
    async def slow(ctx: AgentContext, event: Event) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(event.id)

    (r,) = await sqlite_hub.publish(fragment("s", 1))
    runner = AgentRunner(sqlite_hub, [slow], ledger=ledger)
    await runner.start()
    await asyncio.wait_for(started.wait(), 30)
    await runner.stop(grace=10)
    await runner.stop()  # twice is fine
    assert finished == [r.id]
    assert ledger.done("agent-slow", r.id)
    lag = (await sqlite_hub.log.lag("creative.narrative", "agent-slow")).lag
    assert lag == 0


@pytest.mark.sqlite
async def test_stop_past_grace_releases_the_event_to_the_group(sqlite_hub: Hub, ledger: EffectLedger) -> None:
    started = asyncio.Event()

    @agent("stuck", topics=["creative.narrative"], settings=FAST)
    async def stuck(ctx: AgentContext, event: Event) -> None:
        started.set()
        await asyncio.sleep(3600)

    (r,) = await sqlite_hub.publish(fragment("s", 1))
    runner = AgentRunner(sqlite_hub, [stuck], ledger=ledger)
    await runner.start()
    await asyncio.wait_for(started.wait(), 30)
    await runner.stop(grace=0.1)
    assert not ledger.done("agent-stuck", r.id)
    got: list[str] = []

    @agent("stuck", topics=["creative.narrative"], settings=FAST)
    async def again(ctx: AgentContext, event: Event) -> None:
        got.append(event.id)

    async with AgentRunner(sqlite_hub, [again], ledger=ledger) as second:
        await until(lambda: second.stats["stuck"].handled == 1, "the released event handled")
    assert got == [r.id]


@pytest.mark.sqlite
def test_agent_needs_a_subscription() -> None:
    from creative_hub.errors import ValidationError

    async def h(ctx: AgentContext, event: Event) -> None:
        return None

    with pytest.raises(ValidationError):
        Agent(id="nothing", handler=h)
    assert Agent(id="fan", handler=h, follows=["alice"]).subscribed_topics() == [
        "peer.alice.published",
        "peer.alice.feedback",
    ]
