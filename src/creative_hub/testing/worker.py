"""A consumer-group member in its own process, for crash tests.

    python -m creative_hub.testing.worker URL TOPIC GROUP LEDGER MARKER \
        --ack-timeout 2 --hang-after 5

It handles events through an EffectLedger (effect = a row in ``effects``),
acks the first ``--hang-after`` of them, then performs the effect of the
next one, writes that event's id to MARKER, and hangs without acking -- the
moment a test kills it with SIGKILL ("after the effect, before the ack").
With ``--hang-after -1`` it never hangs and exits after ``--max`` events.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from ..ledger import EffectLedger
from ..log import open_log


def record_effect(ledger: EffectLedger, group: str, event_id: str, consumer: str) -> bool:
    """The test effect: one row per handled id, written with the ledger entry."""
    with ledger.once(group, event_id) as tx:
        if tx is None:
            return False
        tx.execute("CREATE TABLE IF NOT EXISTS effects (id TEXT NOT NULL, consumer TEXT NOT NULL)")
        tx.execute("INSERT INTO effects (id, consumer) VALUES (?, ?)", (event_id, consumer))
        return True


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="creative_hub.testing.worker")
    p.add_argument("url")
    p.add_argument("topic")
    p.add_argument("group")
    p.add_argument("ledger")
    p.add_argument("marker")
    p.add_argument("--ack-timeout", type=float, default=2.0)
    p.add_argument("--hang-after", type=int, default=0)
    p.add_argument("--max", type=int, default=1_000_000)
    p.add_argument(
        "--hang-seconds",
        type=float,
        default=3600.0,
        help="how long to hang before acking late and going on (a SIGSTOP makes it longer)",
    )
    p.add_argument(
        "--idle-exit", type=float, default=0.0, help="exit after this many idle seconds (0: never)"
    )
    a = p.parse_args(argv)
    ledger = EffectLedger(a.ledger)
    log = open_log(a.url)
    await log.open()
    consumer = f"worker-{os.getpid()}"
    handled = 0
    async with log.subscribe(a.topic, a.group, consumer=consumer, ack_timeout=a.ack_timeout) as sub:
        while handled < a.max:
            try:
                d = await sub.next(timeout=a.idle_exit or None)
            except TimeoutError:
                break
            record_effect(ledger, a.group, d.id, consumer)
            if handled == a.hang_after:
                tmp = Path(a.marker + ".tmp")
                tmp.write_text(d.id)
                tmp.rename(a.marker)
                await asyncio.sleep(a.hang_seconds)  # killed or stopped here: effect done, ack not sent
            await d.ack()  # late, if it hung: must be a harmless no-op then
            handled += 1
    await log.close()


if __name__ == "__main__":
    asyncio.run(main())
