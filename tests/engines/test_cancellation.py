"""Cancellation safety, on every engine: a subscriber or an agent runner cancelled
at any await point of a delivery stops, leaks no task and loses nothing.

The cancellation is injected, not timed.  ``Stepper`` drives a coroutine the
way its task would, counts the times it suspends, and at the n-th one calls a
trigger (``task.cancel()``, or ``runner.stop()``) in one of two ways:

* ``pending``: before the coroutine's awaited future is done -- the ordinary
  cancellation, that future is cancelled;
* ``done``: after the awaited future completed but before the coroutine ran
  on -- the moment at which Python 3.11's ``asyncio.wait_for`` (used inside
  nats-py) returns the result and drops the cancellation.  That is how
  ``test_hierarchy_leaf_worker_killed_mid_task[nats]`` hung in CI: the
  runner's ``stop()`` waited for ever for a pump that never saw its cancel.

Each case runs n = 1, 2, ... until a round ends before its n-th suspension,
one fresh event per round on one topic and group; then a last member drains
the group: every event is acked in some round or delivered again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import pytest

import creative_hub.agents.runtime as runtime
from creative_hub.agents import Agent, AgentContext, AgentRunner, AgentSettings
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.log import Delivery, Log
from creative_hub.testing.contract import make_entries, new_topic

ACK_TIMEOUT = 2.0  # seconds: what a round leaves un-acked and unreleased comes back this soon
BOUND = 60.0  # seconds: a round that does not end by then hangs (never reached when it works)
MAX_STEPS = 1000  # suspensions of one delivery at most, so a broken stepper cannot loop for ever
MODES = ["pending", "done"]


class Stepper:
    """Await ``coro`` through this, and ``trigger()`` is called at its ``n``-th suspension."""

    def __init__(
        self, coro: Coroutine[Any, Any, Any], n: int, mode: str, trigger: Callable[[], object]
    ) -> None:
        self.coro = coro
        self.n = n
        self.mode = mode
        self.trigger = trigger
        self.steps = 0
        self.fired = False

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            self.steps += 1
            fire = self.steps == self.n
            if fire and self.mode == "pending":
                self.fired = True
                self.trigger()  # the task's cancel reaches the future yielded next
            try:
                value = yield yielded
            except BaseException as e:  # the future's exception, or the task's cancellation
                error = e
                continue
            if fire and self.mode == "done":
                # The awaited future is done; the cancellation comes before the coroutine runs on.
                self.fired = True
                self.trigger()
                parked = asyncio.get_running_loop().create_future()
                parked._asyncio_future_blocking = True
                try:
                    yield parked  # only the task's cancellation wakes it
                except BaseException as e:
                    error = e  # thrown into the coroutine, whose awaited future is done
                    value = None
                    continue
                raise AssertionError("the parked future was resolved")


async def _warm_up(log: Log) -> None:
    """One subscription made and closed first: what a connection sets up once stays out of the count.

    (nats-py opens its reply subscription, with its task, on the first request.)
    """
    topic = new_topic("warm")
    await log.append(topic, make_entries(1))
    async with log.subscribe(topic, "warm", ack_timeout=ACK_TIMEOUT) as sub:
        await (await sub.next(timeout=BOUND)).ack()


def _others(baseline: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t not in baseline and not t.done()}


async def _no_task_left(baseline: set[asyncio.Task[Any]], what: str) -> None:
    # Tasks ended by the stop may need one loop turn to finish their last step.
    for _ in range(20):
        if not _others(baseline):
            return
        await asyncio.sleep(0)
    left = sorted(f"{t.get_name()}: {t.get_coro()!r}" for t in _others(baseline))
    raise AssertionError(f"{what}: tasks left running: {left}")


# -- a subscription's iterator ---------------------------------------------------------------------------


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", MODES)
async def test_subscription_iterator_cancelled_at_every_await(log: Log, mode: str) -> None:
    topic, group = new_topic("cancel"), f"g{uuid.uuid4().hex[:8]}"
    appended: list[str] = []
    acked: set[str] = set()  # acks that were at least started (they may or may not count)
    await _warm_up(log)
    baseline = set(asyncio.all_tasks())
    n = 0
    while True:
        n += 1
        assert n <= MAX_STEPS, "a delivery took more than MAX_STEPS suspensions"
        (entry,) = make_entries(1, tag=f"round {n}")
        await log.append(topic, [entry])
        appended.append(entry.id)
        sub = log.subscribe(topic, group, ack_timeout=ACK_TIMEOUT)

        async def consume() -> None:
            # Joining, one delivery and its ack, leaving: all of it is stepped.
            async with sub:  # noqa: B023 -- this round's subscription
                async for d in sub:  # noqa: B023
                    acked.add(d.id)
                    await d.ack()
                    break

        task: asyncio.Task[Any] | None = None
        stepper = Stepper(consume(), n, mode, lambda: task.cancel() if task else None)  # noqa: B023

        async def run() -> Any:
            return await stepper  # noqa: B023

        task = asyncio.create_task(run(), name=f"consume-{n}")
        async with asyncio.timeout(BOUND):
            done = await asyncio.gather(task, return_exceptions=True)
        assert stepper.fired == isinstance(done[0], asyncio.CancelledError), (n, done, stepper.steps)
        async with asyncio.timeout(BOUND):
            await sub.close()  # a close cancelled in the round finishes; else it returns at once
        await _no_task_left(baseline, f"round {n} ({mode})")
        if not stepper.fired:
            break  # the whole delivery ran in fewer than n suspensions: every point was tried
    assert n > 1, "the stepper saw no await of the delivery"
    # Nothing lost: what no round acked comes back to the group.
    got = await _drain(log, topic, group, set(appended) - acked)
    assert set(appended) - acked <= got


async def _drain(log: Log, topic: str, group: str, want: set[str]) -> set[str]:
    got: set[str] = set()
    async with log.subscribe(topic, group, ack_timeout=ACK_TIMEOUT) as sub:
        while not want <= got:
            d: Delivery = await sub.next(timeout=BOUND)
            got.add(d.id)
            await d.ack()
    return got


# -- an agent runner -------------------------------------------------------------------------------------


def _event(n: int) -> dict[str, Any]:
    return {
        "type": "creative.narrative.fragment",
        "subject": "story:cancel",
        "data": {"story": "cancel", "title": f"part {n}", "text": f"text {n}", "order": n},
    }


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", ["pump", "handler"])
async def test_runner_stopped_at_every_await(
    log_url: str, tmp_path: Path, mode: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``pump``: the runner's stop() lands at the n-th suspension of the loop
    # that takes deliveries from the subscription.  ``handler``: the task
    # handling a delivery (handler, ledger, ack) is cancelled at its n-th
    # suspension, as stop() does after its grace; then the runner stops.
    topic = f"agents.cancel{uuid.uuid4().hex[:8]}.in"
    ledger = EffectLedger(tmp_path / "ledger.db")
    handled: list[str] = []

    async def note(ctx: AgentContext, event: Event) -> dict[str, Any]:
        handled.append(event.id)
        # What it returns is published (an append: more awaits inside the handling).
        return {"type": "creative.feedback.comment", "data": {"on": event.id, "text": "seen"}}

    spec = Agent(
        id=f"canceller-{uuid.uuid4().hex[:6]}",
        handler=note,
        topics=[topic],
        output=topic.replace(".in", ".out"),
        settings=AgentSettings(ack_timeout=ACK_TIMEOUT, concurrency=2),
    )
    appended: list[str] = []
    async with Hub.connect(log_url, keys=str(tmp_path / "keys")) as hub:
        await _warm_up(hub.log)
        baseline = set(asyncio.all_tasks())
        n = 0
        while True:
            n += 1
            assert n <= MAX_STEPS, "a delivery took more than MAX_STEPS suspensions"
            _, event, entry = hub.prepare(_event(n))
            await hub.log.append(topic, [entry])
            appended.append(event.id)
            fired = await _runner_round(hub, spec, ledger, event.id, handled, n, mode, where, monkeypatch)
            await _no_task_left(baseline, f"round {n} ({where}, {mode})")
            if not fired:
                break
        assert n > 1, "the stepper saw no await of the delivery"
        # Nothing lost: a new runner handles every event no round finished.
        async with AgentRunner(hub, [spec], ledger=ledger):
            async with asyncio.timeout(BOUND):
                while not all(ledger.done(spec.group_name, i) for i in appended):
                    await asyncio.sleep(0.05)
    assert set(handled) >= set(appended)


async def _runner_round(
    hub: Hub,
    spec: Agent,
    ledger: EffectLedger,
    event_id: str,
    handled: list[str],
    n: int,
    mode: str,
    where: str,
    monkeypatch: pytest.MonkeyPatch,
) -> bool:
    """One runner, stepped where asked; whether the trigger fired."""
    runner = AgentRunner(hub, [spec], ledger=ledger)
    steppers: list[Stepper] = []
    stops: list[asyncio.Future[None]] = []
    target = "_pump" if where == "pump" else "handle"
    original = getattr(runtime._AgentWorker, target)

    def stop_runner() -> None:
        stops.append(asyncio.ensure_future(runner.stop()))

    def stepped(self: Any, *args: Any) -> Any:
        if steppers:  # only the first run in the round is stepped
            return original(self, *args)
        if target == "_pump":
            trigger = stop_runner
        else:
            me = asyncio.current_task()  # the task handling the delivery, as stop() cancels it
            assert me is not None
            trigger = me.cancel
        stepper = Stepper(original(self, *args), n, mode, trigger)
        steppers.append(stepper)

        async def run() -> Any:
            return await stepper

        return run()

    monkeypatch.setattr(runtime._AgentWorker, target, stepped)
    try:
        await runner.start()
        async with asyncio.timeout(BOUND):
            # The round ends when the event is handled or the trigger fired.
            while event_id not in handled and not (steppers and steppers[0].fired):
                await asyncio.sleep(0.01)
            await runner.stop(grace=1.0)
            await asyncio.gather(*stops)
    finally:
        monkeypatch.setattr(runtime._AgentWorker, target, original)
    return bool(steppers and steppers[0].fired)
