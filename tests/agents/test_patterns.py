"""The four pattern examples on every engine, each with a worker SIGKILLed mid-task.

Each test starts the example's workers in a subprocess (``--role worker``)
that does the effect of its second task, then hangs before the ack and is
killed with SIGKILL.  Survivors in this process finish the work; the ledger
shows every task's effect exactly once and the killed worker's task
redelivered.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from _agents import WAIT, spawned, wait_file, wait_marker
from creative_hub.agents import AgentRunner, AgentSettings
from creative_hub.agents.demo import effect_counts
from creative_hub.agents.patterns import Auctioneer, Blackboard, Hierarchy, Orchestrator
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACK = 2.0  # seconds: the killed worker's task comes back quickly
TASKS = 5


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker_argv(name: str, log_url: str, job: str, tmp: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(EXAMPLES / f"{name}.py"),
        "--log", log_url,
        "--job", job,
        "--ledger", str(tmp / "ledger.db"),
        "--keys", str(tmp / "keys"),
        "--role", "worker",
        "--workers", "1",
        "--ack-timeout", str(ACK),
        "--hang-after", "1",
        "--marker", str(tmp / "marker"),
        "--ready", str(tmp / "ready"),
        *extra,
    ]  # fmt: skip


def assert_once(ledger: EffectLedger, tasks: list[str], hung_on: str, killed_pid: int) -> None:
    counts = effect_counts(ledger)
    assert sorted(counts) == sorted(tasks), f"effects {counts} for tasks {tasks}"
    assert all(c == 1 for c in counts.values()), f"an effect happened twice: {counts}"
    # The killed worker did the effect of the task it hung on; the survivor
    # that got it redelivered found it done and did not repeat it.
    (pid,) = ledger.connection.execute("SELECT pid FROM effects WHERE task = ?", (hung_on,)).fetchone()
    assert pid == killed_pid


async def test_orchestrator_worker_killed_mid_task(hub: Hub, log_url: str, tmp_path: Path, uid: str) -> None:
    ex = example("orchestrator")
    job = f"orch-{uid}"
    ledger = EffectLedger(tmp_path / "ledger.db")
    with spawned(worker_argv("orchestrator", log_url, job, tmp_path)) as proc:
        await wait_file(proc, tmp_path / "ready")
        orch = Orchestrator(hub, job)
        ids = await orch.submit(ex.inputs(TASKS))
        hung_on = await wait_marker(proc, tmp_path / "marker")
    survivors = ex.make_workers(job, 2, AgentSettings(ack_timeout=ACK))
    async with AgentRunner(hub, survivors, ledger=ledger):
        results = await orch.gather(ids, timeout=WAIT)
    assert sorted(results) == sorted(ids) and all(r.ok for r in results.values())
    assert_once(ledger, ids, hung_on, proc.pid)
    expected = {f"t{i}": len(t["text"].split()) for i, t in enumerate(ex.inputs(TASKS))}
    assert {t: r.output["words"] for t, r in results.items()} == expected


async def test_hierarchy_leaf_worker_killed_mid_task(
    hub: Hub, log_url: str, tmp_path: Path, uid: str
) -> None:
    ex = example("hierarchy")
    job = f"hier-{uid}"
    ledger = EffectLedger(tmp_path / "ledger.db")
    books = ex.chapters(2)
    async with AgentRunner(hub, ex.make_supervisors(job, 1, timeout=WAIT), ledger=ledger):
        with spawned(worker_argv("hierarchy", log_url, job, tmp_path)) as proc:
            await wait_file(proc, tmp_path / "ready")
            top = Hierarchy(hub, job)
            ids = await top.submit(books)
            hung_on = await wait_marker(proc, tmp_path / "marker")
        leaves = ex.make_leaves(job, 2, AgentSettings(ack_timeout=ACK))
        async with AgentRunner(hub, leaves, ledger=ledger):
            results = await top.gather(ids, timeout=WAIT)
    assert {t: r.output for t, r in results.items()} == {
        f"t{c}": {"title": b["title"], "words": sum(len(p.split()) for p in b["passages"])}
        for c, b in enumerate(books)
    }
    leaf_tasks = [f"t{c}.{i}" for c, b in enumerate(books) for i in range(len(b["passages"]))]
    assert_once(ledger, leaf_tasks, hung_on, proc.pid)


async def test_blackboard_counter_killed_mid_task(hub: Hub, log_url: str, tmp_path: Path, uid: str) -> None:
    ex = example("blackboard")
    board = f"board-{uid}"
    ledger = EffectLedger(tmp_path / "ledger.db")
    with spawned(worker_argv("blackboard", log_url, board, tmp_path)) as proc:
        await wait_file(proc, tmp_path / "ready")
        items = await ex.pin_todos(hub, board, TASKS)
        hung_on = await wait_marker(proc, tmp_path / "marker")
    survivors = ex.make_counters(board, 2, AgentSettings(ack_timeout=ACK))
    async with AgentRunner(hub, survivors, ledger=ledger):
        tally = await ex.wait_tally(hub, board, set(items), WAIT)
    assert tally == {k: len(v.split()) for k, v in items.items()}
    assert_once(ledger, list(items), hung_on, proc.pid)
    view = Blackboard(hub, board)
    heads = await view.read()
    assert heads["tally"].revision >= TASKS  # one accepted revision per contribution at least


async def test_market_winner_killed_mid_task(hub: Hub, log_url: str, tmp_path: Path, uid: str) -> None:
    ex = example("market")
    job = f"market-{uid}"
    ledger = EffectLedger(tmp_path / "ledger.db")
    settings = AgentSettings(ack_timeout=ACK)
    others = [ex.make_shop(name, settings, job=job) for name in ("bulk-press", "corner-copy")]
    inputs = ex.jobs(TASKS)
    async with AgentRunner(hub, others, ledger=ledger):
        with spawned(worker_argv("market", log_url, job, tmp_path)) as proc:
            await wait_file(proc, tmp_path / "ready")
            auction = Auctioneer(hub, job, window=3.0)
            ids = await auction.announce(inputs)
            awarding = asyncio.create_task(auction.award(ids))
            hung_on = await wait_marker(proc, tmp_path / "marker")
        # quick-print comes back (a new process would do the same) and finishes what it won.
        async with AgentRunner(hub, [ex.make_shop("quick-print", settings, job=job)], ledger=ledger):
            awards = await asyncio.wait_for(awarding, WAIT)
            won = [t for t, a in awards.items() if a.winner]
            results = await auction.gather(won, timeout=WAIT)
    assert sorted(won) == sorted(ids), f"unawarded: {awards}"
    assert awards[hung_on].winner == "quick-print"
    assert {t: r.worker for t, r in results.items()} == {t: a.winner for t, a in awards.items()}
    rows = dict(ledger.connection.execute("SELECT task, value FROM effects").fetchall())
    assert rows == {t: a.winner for t, a in awards.items()}  # each job printed by its winner
    assert_once(ledger, ids, hung_on, proc.pid)


@pytest.mark.parametrize("name", ["orchestrator", "hierarchy", "blackboard", "market"])
async def test_example_runs_whole(name: str, log_url: str, tmp_path: Path, uid: str) -> None:
    # `python examples/<name>.py --log URL`, in this process: exit status 0 means
    # every task got its result and every effect happened once.
    ex = example(name)
    argv = ["--log", log_url, "--job", f"{name[:5]}-{uid}", "--ledger", str(tmp_path / "l.db")]
    argv += ["--keys", str(tmp_path / "keys"), "--tasks", "3", "--timeout", str(WAIT)]
    assert await ex.main(argv) == 0


@pytest.mark.sqlite
async def test_blackboard_conflicts_are_resolved_by_revision(sqlite_hub: Hub) -> None:
    a, b = Blackboard(sqlite_hub, "b1"), Blackboard(sqlite_hub, "b1")
    first = await a.put("plot", "the wood")
    assert first.revision == 1
    # Both read revision 1, both write on top of it: the first in the log wins.
    base = await b.get("plot")
    ok_a, _ = await a.write("plot", "the oven", first)
    ok_b, head = await b.write("plot", "the river", base)
    assert ok_a and not ok_b
    assert head is not None and head.value == "the oven" and head.revision == 2
    assert len(b.rejected) == 1
    # The loser's optimistic update retries on the new head and lands.
    final = await b.update("plot", lambda v: v + " and the river")
    assert (final.value, final.revision) == ("the oven and the river", 3)
    fresh = Blackboard(sqlite_hub, "b1")
    assert (await fresh.get("plot")) == final  # every reader folds to the same board
    # Writing the same note again (a crashed writer's retry) stores nothing new.
    again, _ = await a.write("plot", "the oven", first)
    assert again and len([s async for s in sqlite_hub.replay("agents.b1.board")]) == 4
