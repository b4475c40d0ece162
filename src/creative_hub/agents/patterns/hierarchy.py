"""Hierarchical: an orchestrator of orchestrators.

The top orchestrator hands big tasks to *supervisors*; each supervisor is a
worker that splits its task into subtasks, orchestrates them on the level
below (its own consumer group of leaf workers), gathers their results and
reduces them into the result of its task::

    top = Hierarchy(hub, "book-3")                          # level l0
    results = await top.run([{"chapters": [...]}, ...])

    sup = supervisor("editor", "book-3", split=by_chapter, reduce=total)   # l0 tasks -> l1
    leaf = worker("reader", "book-3", count_words, level="l1")              # l1 tasks

Topics: ``agents.<job>.l0.{tasks,results}`` and ``agents.<job>.l1.{tasks,results}``.
Subtask ids are ``<task>.<n>`` and carry ``parent``; they are derived, so a
supervisor that crashes and is redelivered its task resubmits the same
subtasks (stored once) and gathers the results already there.  Give a
supervisor an ``ack_timeout`` above the time its subtasks take.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..context import AgentContext
from ..payloads import Result, Task
from ..spec import Agent, AgentSettings
from .orchestrator import Orchestrator, worker

__all__ = ["LEAF", "TOP", "Hierarchy", "supervisor"]

TOP, LEAF = "l0", "l1"

Split = Callable[[Task], Sequence[Mapping[str, Any]]]
Reduce = Callable[[Task, dict[str, Result]], Mapping[str, Any]]


class Hierarchy(Orchestrator):
    """The top of a hierarchy: an orchestrator on level ``l0``."""

    def __init__(self, hub: Any, job: str, **kw: Any) -> None:
        super().__init__(hub, job, level=TOP, **kw)


class SubtaskFailed(Exception):
    """A subtask failed for good; the supervisor's task fails with it."""


def supervisor(
    id: str,
    job: str,
    *,
    split: Split,
    reduce: Reduce,
    kind: str = "task",
    level: str = TOP,
    sub_level: str = LEAF,
    timeout: float = 120.0,
    group: str | None = None,
    settings: AgentSettings | None = None,
) -> Agent:
    """A worker on ``level`` that orchestrates ``split(task)`` on ``sub_level``."""

    async def orchestrate(ctx: AgentContext, task: Task) -> Mapping[str, Any]:
        below = Orchestrator(ctx.hub, job, level=sub_level, ctx=ctx)
        ids = await below.submit(split(task), kind=kind, parent=task.task)
        results = await below.gather(ids, timeout=timeout)
        failed = {tid: r.error for tid, r in results.items() if not r.ok}
        if failed:
            raise SubtaskFailed(f"subtasks failed: {failed}")
        return reduce(task, results)

    return worker(
        id,
        job,
        orchestrate,
        level=level,
        group=group or f"{job}-{level}-supervisors",
        settings=settings,
    )
