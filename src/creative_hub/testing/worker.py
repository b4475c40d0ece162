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
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from ..ledger import EffectLedger
from ..log import Subscription, open_log


def record_effect(ledger: EffectLedger, group: str, event_id: str, consumer: str) -> bool:
    """The test effect: one row per handled id, written with the ledger entry."""
    with ledger.once(group, event_id) as tx:
        if tx is None:
            return False
        tx.execute("CREATE TABLE IF NOT EXISTS effects (id TEXT NOT NULL, consumer TEXT NOT NULL)")
        tx.execute("INSERT INTO effects (id, consumer) VALUES (?, ?)", (event_id, consumer))
        return True


def assert_effects_once(ledger: EffectLedger, ids: Iterable[str]) -> None:
    """The test effect (``record_effect``'s rows) happened for exactly ``ids``, each once."""
    effects = dict(ledger.connection.execute("SELECT id, count(*) FROM effects GROUP BY id").fetchall())
    assert set(effects) == set(ids), "the effects are not those of the events handled"
    assert all(c == 1 for c in effects.values()), "an effect happened twice"


def spawn(
    url: str, topic: str, group: str, ledger: Path, marker: Path, *, hang_after: int, ack_timeout: float = 2.0
) -> subprocess.Popen[bytes]:
    """This module as a worker process that hangs after ``hang_after`` events (see the module doc)."""
    return subprocess.Popen(
        [sys.executable, "-m", __name__, url, topic, group, str(ledger), str(marker),
         "--ack-timeout", str(ack_timeout), "--hang-after", str(hang_after)],
    )  # fmt: skip


async def hung_on(proc: subprocess.Popen[bytes], marker: Path, timeout: float) -> str:
    """The id of the event a ``spawn``ed worker hangs on, once it has written its marker."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"worker wrote no marker within {timeout}s")
        await asyncio.sleep(0.05)
    return marker.read_text()


async def survive(
    sub: Subscription, ledger: EffectLedger, group: str, count: int, *, timeout: float
) -> dict[str, int]:
    """As the member left after a worker died: handle (effect, then ack) what ``sub`` gets
    until ``count`` ids are in the ledger.  Returns those whose effect was already done
    (redelivered), each with its delivery count."""
    redelivered: dict[str, int] = {}
    while len(ledger.handled(group)) < count:
        d = await sub.next(timeout=timeout)
        if not record_effect(ledger, group, d.id, "survivor"):
            redelivered[d.id] = d.delivery_count
        await d.ack()
    return redelivered


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
