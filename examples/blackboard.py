"""Blackboard: agents read and write one shared board; conflicts resolved by revision.

    python examples/blackboard.py --log sqlite:///hub.db
    python examples/blackboard.py --log kafka://127.0.0.1:9092 --workers 3

The controller pins passages to the board as ``todo:<n>`` notes.  Counters
(one consumer group) take each new todo, count its words (an effect,
recorded once) and add the count to the shared ``tally`` note; a second
knowledge source keeps ``longest`` up to date.  Counters update ``tally`` at
the same time: each write names the revision it builds on, the first one in
the log wins, the loser re-reads and writes again.  Merging by key makes a
repeated contribution (after a crash) change nothing.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import msgspec

from creative_hub.agents import Agent, AgentContext, AgentRunner, AgentSettings, Note
from creative_hub.agents.demo import (
    CrashPoint,
    effect_counts,
    parse_args,
    record_effect,
    serve,
    settings_from,
)
from creative_hub.agents.patterns import Blackboard, board_topic
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger

PASSAGES = [
    "Gretel went into the stable and fetched water.",
    "The witch stretched her head into the oven.",
    "Then Gretel gave her a push that drove her far into it.",
    "They filled their pockets with pearls and precious stones.",
    "My tale is done, there runs a mouse.",
    "Whosoever catches it may make himself a big fur cap out of it.",
]


def todos(n: int) -> dict[str, str]:
    return {f"todo:{i}": PASSAGES[i % len(PASSAGES)] for i in range(n)}


def _note(event: Event) -> Note:
    return msgspec.convert(event.data, Note)


def make_counters(
    board: str, count: int, settings: AgentSettings, crash: CrashPoint | None = None
) -> list[Agent]:
    """Members of one group: each todo is counted by one of them."""

    async def count_todo(ctx: AgentContext, event: Event) -> None:
        note = _note(event)
        if not note.key.startswith("todo:") or note.revision != 1:
            return
        words = len(str(note.value).split())
        record_effect(ctx, note.key, str(words))
        if crash is not None:
            await crash.after_effect(note.key)
        shared = Blackboard(ctx.hub, board, ctx=ctx)
        await shared.update("tally", lambda v: {**(v or {}), note.key: words})

    return [
        Agent(
            id=f"counter-{i}",
            handler=count_todo,
            topics=[board_topic(board)],
            types=["creative.agents.note"],
            group=f"{board}-counters",
            settings=settings,
        )
        for i in range(count)
    ]


def make_longest(board: str, settings: AgentSettings) -> Agent:
    """Another knowledge source, in a group of its own: the longest passage so far."""

    async def longest(ctx: AgentContext, event: Event) -> None:
        note = _note(event)
        if not note.key.startswith("todo:"):
            return
        text = str(note.value)

        def keep_longer(v: Any) -> Any:
            return text if v is None or len(text) > len(v) else v

        await Blackboard(ctx.hub, board, ctx=ctx).update("longest", keep_longer)

    return Agent(
        id="longest",
        handler=longest,
        topics=[board_topic(board)],
        types=["creative.agents.note"],
        group=f"{board}-longest",
        settings=settings,
    )


async def pin_todos(hub: Hub, board: str, n: int) -> dict[str, str]:
    b = Blackboard(hub, board)
    items = todos(n)
    for key, text in items.items():
        await b.put(key, text)
    return items


async def wait_tally(hub: Hub, board: str, keys: set[str], timeout: float) -> dict[str, int]:
    """The tally once it has a count for every todo."""
    b = Blackboard(hub, board)
    deadline = time.monotonic() + timeout
    while True:
        entry = await b.get("tally")
        if entry is not None and set(entry.value) >= keys:
            return dict(entry.value)
        if time.monotonic() > deadline:
            raise TimeoutError(f"tally incomplete after {timeout}s: {entry.value if entry else None}")
        await asyncio.sleep(0.1)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    ledger = EffectLedger(args.ledger)
    crash = CrashPoint(args.hang_after, args.marker)
    async with Hub.connect(args.log, keys=args.keys) as hub:
        counters = make_counters(args.job, args.workers, settings_from(args), crash)
        if args.role == "worker":
            await serve(hub, counters, ledger, args.ready)
            return 0
        async with AgentRunner(hub, [*counters, make_longest(args.job, settings_from(args))], ledger=ledger):
            items = await pin_todos(hub, args.job, args.tasks)
            tally = await wait_tally(hub, args.job, set(items), args.timeout)
            board = Blackboard(hub, args.job)
            await board.read()
    print(f"tally (revision {board.heads['tally'].revision}): {sum(tally.values())} words")
    for key in sorted(tally):
        print(f"  {key}: {tally[key]}")
    print(f"conflicts resolved by revision: {len(board.rejected)}")
    counts = effect_counts(ledger)
    ok = all(c == 1 for c in counts.values()) and tally == {k: len(v.split()) for k, v in items.items()}
    print(f"every effect once and the tally right: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
