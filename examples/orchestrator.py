"""Orchestrator–worker: count the words of story passages with a group of workers.

    python examples/orchestrator.py --log sqlite:///hub.db
    python examples/orchestrator.py --log redis://127.0.0.1:6379/0 --workers 3 --tasks 12

The orchestrator publishes one task per passage to ``agents.<job>.tasks``;
the workers (one consumer group) share them, record each count once (an
effect in the ledger) and publish results to ``agents.<job>.results``; the
orchestrator gathers one result per task.  Run extra workers elsewhere with
``--role worker --job <same job>``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from creative_hub.agents import Agent, AgentContext, AgentRunner, AgentSettings, Task
from creative_hub.agents.demo import (
    CrashPoint,
    effect_counts,
    parse_args,
    record_effect,
    serve,
    settings_from,
)
from creative_hub.agents.patterns import Orchestrator, worker
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger

PASSAGES = [
    "Hard by a great forest dwelt a poor wood-cutter with his wife and his two children.",
    "The boy was called Hansel and the girl Gretel.",
    "He had little to bite and to break, and once when great dearth fell on the land, "
    "he could no longer procure even daily bread.",
    "Now when he thought over this by night in his bed, and tossed about in his anxiety, "
    "he groaned and said to his wife.",
    "Early in the morning came the woman, and took the children out of their beds.",
    "When they had reached the middle of the forest, the father said, now, children, pile up some wood.",
]


def inputs(n: int) -> list[dict[str, Any]]:
    return [{"text": PASSAGES[i % len(PASSAGES)], "n": i} for i in range(n)]


def make_workers(
    job: str, count: int, settings: AgentSettings, crash: CrashPoint | None = None
) -> list[Agent]:
    """``count`` members of the job's worker group."""

    async def count_words(ctx: AgentContext, task: Task) -> Mapping[str, Any]:
        words = len(task.input["text"].split())
        record_effect(ctx, task.task, str(words))
        if crash is not None:
            await crash.after_effect(task.task)
        return {"words": words}

    return [worker(f"counter-{i}", job, count_words, settings=settings) for i in range(count)]


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    ledger = EffectLedger(args.ledger)
    crash = CrashPoint(args.hang_after, args.marker)
    async with Hub.connect(args.log, keys=args.keys) as hub:
        workers = make_workers(args.job, args.workers, settings_from(args), crash)
        if args.role == "worker":
            await serve(hub, workers, ledger, args.ready)
            return 0
        async with AgentRunner(hub, workers, ledger=ledger):
            results = await Orchestrator(hub, args.job).run(inputs(args.tasks), timeout=args.timeout)
    for tid, r in sorted(results.items(), key=lambda kv: int(kv[0][1:])):
        print(f"{tid:>4}  {r.output.get('words', '-'):>3} words  by {r.worker}")
    counts = effect_counts(ledger)
    print(f"{len(results)} results; every effect once: {all(c == 1 for c in counts.values())}")
    return 0 if len(results) == args.tasks and all(c == 1 for c in counts.values()) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
