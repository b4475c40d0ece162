"""Market: tasks are announced, bidders bid until a deadline, the lowest bid wins and executes.

    python examples/market.py --log sqlite:///hub.db
    python examples/market.py --log redis://127.0.0.1:6379/0 --tasks 4

Three print shops bid on printing jobs: ``quick-print`` is cheapest on
short jobs, ``bulk-press`` on long ones, ``corner-copy`` takes anything at
a flat price.  The auctioneer awards each job to the lowest bid in time;
the winner prints it (an effect, recorded once) and reports the result.
``--role worker`` runs only ``quick-print`` (the tests kill it mid-job).
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
from creative_hub.agents.patterns import Auctioneer, bidder
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger

#: price per page by shop, and the pages above which a shop does not bid
SHOPS = {"quick-print": (1.0, 20), "bulk-press": (2.0, 1000), "corner-copy": (3.0, 1000)}


def jobs(n: int) -> list[dict[str, Any]]:
    return [{"title": f"zine {i}", "pages": 4 + 13 * i} for i in range(n)]


def make_shop(name: str, settings: AgentSettings, crash: CrashPoint | None = None, *, job: str) -> Agent:
    rate, most = SHOPS[name]

    def price(task: Task) -> float | None:
        pages = int(task.input["pages"])
        return rate * pages if pages <= most else None

    async def print_it(ctx: AgentContext, task: Task) -> Mapping[str, Any]:
        record_effect(ctx, task.task, name)
        if crash is not None:
            await crash.after_effect(task.task)
        return {"printed": task.input["title"], "by": name}

    return bidder(name, job, price=price, execute=print_it, settings=settings)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv, tasks=4)
    ledger = EffectLedger(args.ledger)
    crash = CrashPoint(args.hang_after, args.marker)
    async with Hub.connect(args.log, keys=args.keys) as hub:
        settings = settings_from(args)
        if args.role == "worker":
            await serve(hub, [make_shop("quick-print", settings, crash, job=args.job)], ledger, args.ready)
            return 0
        shops = [make_shop(name, settings, job=args.job) for name in SHOPS]
        async with AgentRunner(hub, shops, ledger=ledger):
            auction = Auctioneer(hub, args.job, window=2.0)
            awards, results = await auction.run(jobs(args.tasks), timeout=args.timeout)
    for tid in sorted(awards, key=lambda t: int(t[1:])):
        a = awards[tid]
        done = results.get(tid)
        ok = bool(done and done.ok)
        print(f"{tid:>4}  {a.input['title']:<8} to {a.winner} at {a.price} ({a.bids} bids): {ok}")
    counts = effect_counts(ledger)
    ok = len(results) == args.tasks and all(c == 1 for c in counts.values())
    print(f"every job printed exactly once: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
