"""Market: a task is announced, bids are collected until a deadline, the
lowest bid is awarded, and the winner executes.

    auction = Auctioneer(hub, "print-9", window=2.0)
    awards, results = await auction.run([{"pages": 12}, {"pages": 3}])

    b = bidder("fast-press", "print-9",
               price=lambda task: 1.5 * task.input["pages"],   # None: no bid
               execute=print_it)

Topics: ``agents.<job>.announce`` (tasks with a ``deadline``),
``agents.<job>.bids``, ``agents.<job>.awards``, ``agents.<job>.results``.

Every bidder has a consumer group of its own (``<job>-bidder-<id>``): each
bidder sees every announcement and every award; several processes running
the same bidder share its work.  Bids stored after the deadline do not
count; the lowest price wins, ties go to the bidder id that sorts first.
A task nobody bid on is announced again (``rounds`` times, then awarded to
nobody).  Ids are derived (job, task, round), so an auctioneer or winner
that crashes and runs again stores nothing twice, and the winner's effect
(``ctx.effect``) happens once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ...event import Event, derive_id
from ...hub import Hub
from ...log import check_topic
from ..context import AgentContext
from ..payloads import Award, Bid, Result, Task
from ..spec import Agent, AgentSettings, Permanent
from .orchestrator import JobTopics, Orchestrator, WorkFn, task_of

__all__ = ["Auctioneer", "MarketTopics", "bidder", "market_topics"]

DEFAULT_WINDOW = 2.0  # seconds bids are collected for
DEFAULT_ROUNDS = 3  # announcements of a task nobody bid on


@dataclass(frozen=True, slots=True)
class MarketTopics:
    announce: str
    bids: str
    awards: str
    results: str


def market_topics(job: str) -> MarketTopics:
    base = f"agents.{job}"
    return MarketTopics(*(check_topic(f"{base}.{t}") for t in ("announce", "bids", "awards", "results")))


class Auctioneer:
    """Announces tasks, awards them to the lowest bid in time, gathers results."""

    def __init__(
        self,
        hub: Hub,
        job: str,
        *,
        window: float = DEFAULT_WINDOW,
        rounds: int = DEFAULT_ROUNDS,
        creator: str = "auctioneer",
    ) -> None:
        self.hub = hub
        self.job = job
        self.topics = market_topics(job)
        self.window = window
        self.rounds = rounds
        # The results topic is read like an orchestrator's (first result per task).
        self._gatherer = Orchestrator(hub, job, creator=creator)
        self._gatherer.topics = JobTopics(self.topics.announce, self.topics.results)
        self.creator = creator
        self.tasks: dict[str, Task] = {}

    async def _append(self, topic: str, event: Event) -> None:
        await self._gatherer.publish(event, topic)

    async def announce(
        self, inputs: Iterable[Mapping[str, Any]], *, kind: str = "task", round: int = 1
    ) -> list[str]:
        """Announce one task per input with a deadline ``window`` seconds ahead."""
        deadline = time.time() + self.window
        ids = []
        for n, inp in enumerate(inputs):
            tid = f"t{n}"
            ids.append(tid)
            self.tasks[tid] = Task(job=self.job, task=tid, kind=kind, input=dict(inp), deadline=deadline)
            await self._announce(tid, round)
        return ids

    async def _announce(self, tid: str, round: int) -> None:
        task = self.tasks[tid]
        await self._append(
            self.topics.announce,
            Event(
                type="creative.agents.task",
                id=derive_id("agents.announce", self.topics.announce, tid, str(round)),
                subject=f"job:{self.job}/{tid}",
                partitionkey=tid,
                data=task,
            ),
        )

    async def bids(self) -> dict[str, list[tuple[Bid, float]]]:
        """Every bid so far per task, with when it was stored (epoch seconds)."""
        out: dict[str, list[tuple[Bid, float]]] = {}
        async with contextlib.aclosing(self.hub.replay(self.topics.bids)) as events:
            async for stored in events:  # closed here even when cancelled
                if stored.event.type == "creative.agents.bid":
                    bid = msgspec.convert(stored.event.data, Bid)
                    out.setdefault(bid.task, []).append((bid, stored.time_ms / 1000))
        return out

    async def award(self, task_ids: Iterable[str]) -> dict[str, Award]:
        """Wait for the deadlines, pick the lowest bid in time per task, publish the awards."""
        pending = list(task_ids)
        awards: dict[str, Award] = {}
        for round in range(1, self.rounds + 1):
            deadline = max(self.tasks[t].deadline or 0.0 for t in pending)
            await asyncio.sleep(max(0.0, deadline - time.time()) + 0.05)
            offers = await self.bids()
            again = []
            for tid in pending:
                task = self.tasks[tid]
                in_time = [b for b, at in offers.get(tid, []) if at <= (task.deadline or 0.0)]
                if not in_time and round < self.rounds:
                    again.append(tid)
                    continue
                best = min(in_time, key=lambda b: (b.price, b.bidder), default=None)
                awards[tid] = await self._publish_award(task, best, len(in_time))
            if not again:
                break
            new_deadline = time.time() + self.window * (round + 1)
            for tid in again:
                self.tasks[tid] = msgspec.structs.replace(self.tasks[tid], deadline=new_deadline)
                await self._announce(tid, round + 1)
            pending = again
        return awards

    async def _publish_award(self, task: Task, best: Bid | None, count: int) -> Award:
        award = Award(
            job=self.job,
            task=task.task,
            winner=best.bidder if best else None,
            price=best.price if best else None,
            bids=count,
            kind=task.kind,
            input=task.input,
        )
        await self._append(
            self.topics.awards,
            Event(
                type="creative.agents.award",
                id=derive_id("agents.award", self.topics.awards, task.task),
                subject=f"job:{self.job}/{task.task}",
                partitionkey=task.task,
                data=award,
            ),
        )
        return award

    async def gather(self, task_ids: Iterable[str], *, timeout: float = 120.0) -> dict[str, Result]:
        """The first result of each awarded task (TimeoutError naming the missing)."""
        return await self._gatherer.gather(task_ids, timeout=timeout)

    async def run(
        self, inputs: Iterable[Mapping[str, Any]], *, kind: str = "task", timeout: float = 120.0
    ) -> tuple[dict[str, Award], dict[str, Result]]:
        """Announce, award, then gather the results of the awarded tasks."""
        ids = await self.announce(inputs, kind=kind)
        awards = await self.award(ids)
        won = [tid for tid, a in awards.items() if a.winner is not None]
        return awards, await self.gather(won, timeout=timeout)


def bidder(
    id: str,
    job: str,
    *,
    price: Callable[[Task], float | None],
    execute: WorkFn,
    settings: AgentSettings | None = None,
) -> Agent:
    """An agent that bids ``price(task)`` on announcements and executes what it wins."""
    topics = market_topics(job)

    async def handle(ctx: AgentContext, event: Event) -> None:
        if event.type == "creative.agents.task":
            task = task_of(event)
            offer = price(task)
            if offer is None or (task.deadline is not None and time.time() > task.deadline):
                return  # not interested, or too late to count
            bid = Bid(job=job, task=task.task, bidder=id, price=float(offer))
            await ctx.publish(
                Event(type="creative.agents.bid", subject=event.subject, partitionkey=task.task, data=bid),
                topic=topics.bids,
            )
        elif event.type == "creative.agents.award":
            award = msgspec.convert(event.data, Award)
            if award.winner != id:
                return
            task = Task(job=award.job, task=award.task, kind=award.kind, input=award.input, assignee=id)
            output = await execute(ctx, task)
            await ctx.publish(
                Event(
                    type="creative.agents.result",
                    id=derive_id("agents.result", topics.results, task.task),
                    subject=event.subject,
                    partitionkey=task.task,
                    data=Result(job=job, task=task.task, output=dict(output), worker=id),
                ),
                topic=topics.results,
            )
        else:
            raise Permanent(f"{event.type} is not for a bidder")

    return Agent(
        id=id,
        handler=handle,
        topics=[topics.announce, topics.awards],
        types=["creative.agents.task", "creative.agents.award"],
        group=f"{job}-bidder-{id}",
        description=f"bidder in market {job}",
        settings=settings or AgentSettings(),
    )
