"""Orchestrator–worker: tasks fanned out through a consumer group, results gathered.

    orch = Orchestrator(hub, job="wordcount-7")
    results = await orch.run([{"text": "..."}, {"text": "..."}], timeout=60)

    async def count(ctx: AgentContext, task: Task) -> dict:
        return {"words": len(task.input["text"].split())}

    runner = AgentRunner(hub, [worker("counter", "wordcount-7", count)], ledger=ledger)

Topics (one pair per job, so jobs never see each other's work):
``agents.<job>.tasks`` (one ``creative.agents.task`` per task, keyed by task
id so tasks spread over the group's members) and ``agents.<job>.results``.

Every id is derived (job, task), so an orchestrator that crashes and runs
again resubmits nothing new, and ``gather`` keeps the first result per task:
a worker killed mid-task and redelivered to another member cannot make a
task count twice.  A task whose handler fails on its last attempt gets a
result with ``ok=False`` (and goes to the dead-letter topic), so gathering
always ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ...errors import ValidationError
from ...event import Event, derive_id
from ...hub import Hub, Receipt
from ...log import check_topic
from ..context import AgentContext
from ..payloads import Result, Task
from ..spec import Agent, AgentSettings, Permanent

__all__ = ["JobTopics", "Orchestrator", "WorkFn", "check_job", "job_topics", "task_of", "worker"]

WorkFn = Callable[[AgentContext, Task], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class JobTopics:
    tasks: str
    results: str


def job_topics(job: str, level: str | None = None) -> JobTopics:
    """``agents.<job>[.<level>].tasks`` and ``...results``."""
    base = f"agents.{job}" + (f".{level}" if level else "")
    check_topic(base + ".tasks")
    return JobTopics(base + ".tasks", base + ".results")


def task_of(event: Event) -> Task:
    """The Task payload of a ``creative.agents.task`` event."""
    if event.type != "creative.agents.task":
        raise Permanent(f"{event.id} is a {event.type}, not a task")
    return msgspec.convert(event.data, Task) if not isinstance(event.data, Task) else event.data


class Orchestrator:
    """Submits a job's tasks and gathers their results.

    Orchestrator(hub, "job-1")                          # top level, as the hub's principal
    Orchestrator(ctx.hub, "job-1", level="l1", ctx=ctx) # inside a handler: linked to its event
    """

    def __init__(
        self,
        hub: Hub,
        job: str,
        *,
        level: str | None = None,
        ctx: AgentContext | None = None,
        creator: str = "orchestrator",
    ) -> None:
        self.hub = hub
        self.job = job
        self.topics = job_topics(job, level)
        self.ctx = ctx
        self.creator = creator

    def task_id(self, n: int | str, parent: str | None = None) -> str:
        return f"{parent}.{n}" if parent else f"t{n}"

    async def submit(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        kind: str = "task",
        parent: str | None = None,
        deadline: float | None = None,
    ) -> list[str]:
        """Publish one task per input; returns the task ids (``t0``, ``t1`` ... or ``<parent>.0`` ...)."""
        ids: list[str] = []
        for n, inp in enumerate(inputs):
            tid = self.task_id(n, parent)
            ids.append(tid)
            await self.submit_task(tid, inp, kind=kind, parent=parent, deadline=deadline)
        return ids

    async def submit_task(
        self,
        task_id: str,
        input: Mapping[str, Any],
        *,
        kind: str = "task",
        parent: str | None = None,
        deadline: float | None = None,
        correlationid: str | None = None,
    ) -> Receipt:
        """Publish one task with a given id (an A2A task id, an issue number ...)."""
        task = Task(
            job=self.job, task=task_id, kind=kind, input=dict(input), parent=parent, deadline=deadline
        )
        return await self.publish(
            Event(
                type="creative.agents.task",
                id=derive_id("agents.task", self.topics.tasks, task_id),
                subject=f"job:{self.job}/{task_id}",
                partitionkey=task_id,
                correlationid=correlationid,
                data=task,
            ),
            self.topics.tasks,
        )

    async def publish(self, event: Event, topic: str) -> Receipt:
        """Append to ``topic``: through the handling context when there is one (links, trace)."""
        if self.ctx is not None:
            return await self.ctx.publish(event, topic=topic)
        if event.correlationid is None:
            event.correlationid = self.job
        if self.hub.trusted and event.creator is None:
            event.creator = self.creator
        (receipt,) = await self.hub.publish(event, topic=topic)  # the write rules apply here too
        return receipt

    async def gather(self, task_ids: Iterable[str], *, timeout: float = 120.0) -> dict[str, Result]:
        """The first result of every task in ``task_ids``; TimeoutError naming the missing ones."""
        want = set(task_ids)
        got: dict[str, Result] = {}
        deadline = time.monotonic() + timeout

        async def collect() -> None:
            # aclosing: the follow-read is closed here, when collecting ends or is
            # cancelled, not later by the garbage collector in a task of its own.
            async with contextlib.aclosing(self.hub.replay(self.topics.results, follow=True)) as results:
                async for stored in results:
                    if stored.event.type != "creative.agents.result":
                        continue
                    r = msgspec.convert(stored.event.data, Result)
                    if r.task in want and r.task not in got:
                        got[r.task] = r
                        if len(got) == len(want):
                            return

        if want:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancellation.
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await collect()
            except TimeoutError:
                missing = sorted(want - set(got))
                raise TimeoutError(f"job {self.job}: no result after {timeout}s for {missing}") from None
        return got

    async def run(
        self, inputs: Iterable[Mapping[str, Any]], *, kind: str = "task", timeout: float = 120.0
    ) -> dict[str, Result]:
        """Submit, then gather: ``{task id: Result}``."""
        return await self.gather(await self.submit(inputs, kind=kind), timeout=timeout)


def worker(
    id: str,
    job: str,
    fn: WorkFn,
    *,
    level: str | None = None,
    kinds: Iterable[str] = (),
    group: str | None = None,
    settings: AgentSettings | None = None,
) -> Agent:
    """An agent that does ``job``'s tasks with ``fn`` and publishes their results.

    Every instance with the same ``group`` (default ``<job>-workers``) shares
    the tasks; run several in one process or in many.
    """
    topics = job_topics(job, level)
    wanted = set(kinds)
    spec_settings = settings or AgentSettings()

    async def handle(ctx: AgentContext, event: Event) -> None:
        task = task_of(event)
        if wanted and task.kind not in wanted:
            raise Permanent(f"{id} does not do tasks of kind {task.kind!r}")
        try:
            output = await fn(ctx, task)
        except Exception as e:
            if ctx.attempt < spec_settings.max_attempts and not isinstance(e, Permanent):
                raise
            # The last attempt: report the failure so gathering ends, then dead-letter.
            failed = _result(topics, task, ok=False, error=f"{type(e).__name__}: {e}", worker=id)
            await ctx.publish(failed, topic=topics.results)
            raise
        await ctx.publish(
            _result(topics, task, ok=True, output=dict(output), worker=id), topic=topics.results
        )

    if not group:
        group = f"{job}-{level}-workers" if level else f"{job}-workers"
    return Agent(
        id=id,
        handler=handle,
        topics=[topics.tasks],
        types=["creative.agents.task"],
        output=topics.results,
        group=group,
        description=f"worker of job {job}",
        settings=spec_settings,
    )


def _result(
    topics: JobTopics,
    task: Task,
    *,
    ok: bool,
    worker: str,
    output: dict[str, Any] | None = None,
    error: str | None = None,
) -> Event:
    # One id per task whoever does it: a re-run after a crash (by this member
    # or another) publishes the same id, and the first result stands.
    return Event(
        type="creative.agents.result",
        id=derive_id("agents.result", topics.results, task.task),
        subject=f"job:{task.job}/{task.task}",
        partitionkey=task.task,
        data=Result(job=task.job, task=task.task, ok=ok, output=output or {}, error=error, worker=worker),
    )


def check_job(job: str) -> str:
    """A job name must be one topic word: a-z, 0-9, '_' and '-'."""
    if "." in job:
        raise ValidationError("job", f"{job!r}: one word of a-z, 0-9, '_' and '-' (no dots)")
    job_topics(job)
    return job
