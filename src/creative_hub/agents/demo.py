"""What the pattern examples in ``examples/`` share: arguments, effects, crash points.

Each example runs whole in one process (``--role all``, the default) or
split: ``--role worker`` runs only its workers until killed, which is how
the tests put a worker in a subprocess and SIGKILL it mid-task
(``--hang-after N --marker PATH``: do the effect of the N+1th task, write
its id to PATH, hang before the ack).

The *effect* of a task is one row in the ``effects`` table of the ledger's
database, written in the same transaction as the ledger's record
(``ctx.effect``), so ``effect_counts()`` shows whether every task happened
exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from ..hub import Hub
from ..ledger import EffectLedger
from .context import AgentContext
from .runtime import AgentRunner
from .spec import Agent, AgentSettings

__all__ = ["CrashPoint", "effect_counts", "parse_args", "record_effect", "serve", "settings_from"]


def parse_args(description: str, argv: Sequence[str] | None = None, *, tasks: int = 6) -> argparse.Namespace:
    """The options every example takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--log", default=os.environ.get("CREATIVE_HUB_LOG", "sqlite:///hub.db"), help="log URL")
    p.add_argument("--job", default=f"demo-{uuid.uuid4().hex[:8]}", help="job (or board / market) name")
    p.add_argument("--ledger", default=None, help="effect ledger file (default: a temp file)")
    p.add_argument("--keys", default=None, help="keystore directory (default: beside the log)")
    p.add_argument("--role", choices=["all", "worker"], default="all", help="run everything, or only workers")
    p.add_argument("--workers", type=int, default=2, help="workers (members of the group) in this process")
    p.add_argument("--tasks", type=int, default=tasks, help="how many tasks")
    p.add_argument(
        "--ack-timeout", type=float, default=5.0, help="seconds before an un-acked task comes back"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for all results")
    p.add_argument("--hang-after", type=int, default=-1, help="(tests) hang on the effect of task N+1")
    p.add_argument("--marker", default=None, help="(tests) where to write the id of the task hung on")
    p.add_argument("--ready", default=None, help="(tests) file written once the workers have joined")
    a = p.parse_args(argv)
    if a.ledger is None:
        a.ledger = str(Path(tempfile.gettempdir()) / f"creative-hub-{a.job}.ledger.db")
    return a


def settings_from(args: argparse.Namespace, **kw: object) -> AgentSettings:
    return AgentSettings(ack_timeout=args.ack_timeout, **kw)  # type: ignore[arg-type]


def record_effect(ctx: AgentContext, task: str, value: str = "") -> bool:
    """The example effect: one ``effects`` row per task, once per group (ledger)."""

    def insert(tx: sqlite3.Connection) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS effects (task TEXT, worker TEXT, pid INTEGER, value TEXT)")
        tx.execute(
            "INSERT INTO effects (task, worker, pid, value) VALUES (?, ?, ?, ?)",
            (task, ctx.agent.id, os.getpid(), value),
        )

    return ctx.effect(insert, name="example")


def effect_counts(ledger: EffectLedger) -> dict[str, int]:
    """``{task: times its effect happened}``."""
    try:
        rows = ledger.connection.execute("SELECT task, count(*) FROM effects GROUP BY task").fetchall()
    except sqlite3.OperationalError:
        return {}  # no effect yet
    return {str(t): int(c) for t, c in rows}


class CrashPoint:
    """``await crash.after_effect(task)``: hangs (for a SIGKILL) at the N+1th effect."""

    def __init__(self, hang_after: int, marker: str | None) -> None:
        self.hang_after = hang_after
        self.marker = marker
        self.effects = 0

    async def after_effect(self, task: str) -> None:
        if self.hang_after < 0 or self.marker is None:
            return
        self.effects += 1
        if self.effects == self.hang_after + 1:
            tmp = Path(self.marker + ".tmp")
            tmp.write_text(task)
            tmp.rename(self.marker)  # atomic: the test never reads half an id
            await asyncio.sleep(3600)  # SIGKILLed here: effect done, result and ack not


async def serve(hub: Hub, agents: Sequence[Agent], ledger: EffectLedger, ready: str | None) -> None:
    """Run ``agents`` until cancelled or killed; write ``ready`` once they joined."""
    async with AgentRunner(hub, agents, ledger=ledger) as runner:
        if ready:
            Path(ready).write_text(str(os.getpid()))
        await runner.wait()
