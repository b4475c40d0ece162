"""Hierarchical: an orchestrator of orchestrators counts the words of a book.

    python examples/hierarchy.py --log sqlite:///hub.db
    python examples/hierarchy.py --log nats://127.0.0.1:4222 --tasks 4

The top orchestrator gives each chapter to a supervisor (level ``l0``); a
supervisor splits its chapter into passages, orchestrates them on level
``l1`` where leaf workers count words (an effect, recorded once), gathers
their results and reports the chapter's total.  ``--role worker`` runs only
leaf workers (more of them, elsewhere).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from creative_hub.agents import Agent, AgentContext, AgentRunner, AgentSettings, Result, Task
from creative_hub.agents.demo import (
    CrashPoint,
    effect_counts,
    parse_args,
    record_effect,
    serve,
    settings_from,
)
from creative_hub.agents.patterns import LEAF, Hierarchy, supervisor, worker
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger

SENTENCES = [
    "Hansel and Gretel walked the whole night and the whole day.",
    "They came to a little house built of bread and covered with cakes.",
    "The windows were of clear sugar.",
    "Nibble, nibble, gnaw, who is nibbling at my little house?",
    "The old woman was a wicked witch who lay in wait for children.",
]


def chapters(n: int, per_chapter: int = 2) -> list[dict[str, Any]]:
    """``n`` chapters of ``per_chapter`` passages each."""
    return [
        {
            "title": f"chapter {c}",
            "passages": [SENTENCES[(c + i) % len(SENTENCES)] for i in range(per_chapter)],
        }
        for c in range(n)
    ]


def split(task: Task) -> Sequence[Mapping[str, Any]]:
    return [{"text": p} for p in task.input["passages"]]


def reduce(task: Task, results: dict[str, Result]) -> Mapping[str, Any]:
    return {"title": task.input["title"], "words": sum(r.output["words"] for r in results.values())}


def make_supervisors(job: str, count: int, timeout: float = 120.0) -> list[Agent]:
    # A supervisor holds its task while the level below works: a long ack timeout.
    settings = AgentSettings(ack_timeout=max(30.0, timeout / 2))
    return [
        supervisor(f"editor-{i}", job, split=split, reduce=reduce, timeout=timeout, settings=settings)
        for i in range(count)
    ]


def make_leaves(
    job: str, count: int, settings: AgentSettings, crash: CrashPoint | None = None
) -> list[Agent]:
    async def count_words(ctx: AgentContext, task: Task) -> Mapping[str, Any]:
        words = len(task.input["text"].split())
        record_effect(ctx, task.task, str(words))
        if crash is not None:
            await crash.after_effect(task.task)
        return {"words": words}

    return [worker(f"reader-{i}", job, count_words, level=LEAF, settings=settings) for i in range(count)]


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv, tasks=3)
    ledger = EffectLedger(args.ledger)
    crash = CrashPoint(args.hang_after, args.marker)
    async with Hub.connect(args.log, keys=args.keys) as hub:
        leaves = make_leaves(args.job, args.workers, settings_from(args), crash)
        if args.role == "worker":
            await serve(hub, leaves, ledger, args.ready)
            return 0
        agents = make_supervisors(args.job, 2, args.timeout) + leaves
        async with AgentRunner(hub, agents, ledger=ledger):
            results = await Hierarchy(hub, args.job).run(chapters(args.tasks), timeout=args.timeout)
    for tid, r in sorted(results.items()):
        print(f"{tid:>4}  {r.output.get('title', '-')}: {r.output.get('words', '-')} words  by {r.worker}")
    counts = effect_counts(ledger)
    once = all(c == 1 for c in counts.values())
    print(f"{len(results)} chapters, {len(counts)} passages; every effect once: {once}")
    return 0 if len(results) == args.tasks and once else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
