"""``creative-hub agent``: run agents, list them with their lag.

    creative-hub agent run creative_hub.agents.builtin:analyst
    creative-hub agent run mypkg.agents:summariser mypkg.agents:tagger   # several in one process
    creative-hub agent list

``MODULE:NAME`` names an ``Agent``, a list of agents, or a function that
returns either (called with no arguments).  The LLM comes from
``CREATIVE_HUB_LLM_*``; without it, agents that need a model (the story
insight agents: ``config["needs_model"]``) get the local one, started here
and stopped on exit (``--model``), the others run offline.  The effect ledger is a SQLite file
(``--ledger``, default ``<db>.agents.db`` beside a SQLite log, else
``.creative-hub/agents.db``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..agents.llm import LLMClient, LLMConfig
from ..agents.runtime import AgentRunner, agent_lags
from ..agents.spec import Agent
from ..errors import ValidationError
from ..hub import Hub
from ..ledger import EffectLedger
from ..localmodel import LocalModel
from .common import DEFAULT_LOG, JsonOpt, LogOpt, err, out, run_async

__all__ = ["agent_app", "load_agents"]

agent_app: typer.Typer = typer.Typer(
    name="agent",
    help="Run agents (handlers with subscriptions, retries, dead letters) and list them with their lag.",
    no_args_is_help=True,
    add_completion=False,
)

LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", envvar="CREATIVE_HUB_AGENT_LEDGER", help="Effect ledger file (SQLite)."),
]


def load_agents(spec: str) -> list[Agent]:
    """The agents ``MODULE:NAME`` names (an Agent, a list, or a factory of either)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValidationError(
            "agent", f"{spec!r}: expected MODULE:NAME, e.g. creative_hub.agents.builtin:analyst"
        )
    if "" not in sys.path:
        sys.path.insert(0, "")  # agents in the current directory, like python -m
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValidationError("agent", f"{spec!r}: cannot import {module_name} ({e})") from None
    try:
        obj: Any = getattr(module, attr)
    except AttributeError:
        raise ValidationError("agent", f"{spec!r}: {module_name} has no {attr!r}") from None
    if callable(obj) and not isinstance(obj, Agent):
        try:
            obj = obj()
        except TypeError as e:
            raise ValidationError(
                "agent", f"{spec!r} is not an Agent, nor a factory of agents ({e})"
            ) from None
    found = obj if isinstance(obj, (list, tuple)) else [obj]
    if not found or not all(isinstance(a, Agent) for a in found):
        raise ValidationError("agent", f"{spec!r} is not an Agent (or a list or factory of agents)")
    return list(found)


def default_ledger(log_url: str) -> str:
    if log_url.startswith("sqlite:///"):
        return log_url[len("sqlite:///") :].split("?", 1)[0] + ".agents.db"
    path = Path(".creative-hub")
    path.mkdir(exist_ok=True)
    return str(path / "agents.db")


@agent_app.command("run")
def run(
    agents: Annotated[
        list[str], typer.Argument(help="MODULE:NAME of each agent to run.", show_default=False)
    ],
    log: LogOpt = DEFAULT_LOG,
    ledger: LedgerOpt = None,
    grace: Annotated[float, typer.Option(help="Seconds in-flight events get to finish on stop.")] = 10.0,
    exit_after: Annotated[float | None, typer.Option(hidden=True)] = None,
    model: Annotated[
        str,
        typer.Option(
            help="auto: CREATIVE_HUB_LLM_* when set, else the local model if an agent needs one; "
            "local: always the local model; none: no model (offline)."
        ),
    ] = "auto",
) -> None:
    """Run one or more agents in this process until Ctrl-C (or SIGTERM), then stop gracefully."""

    async def main() -> None:
        if model not in ("auto", "local", "none"):
            raise ValidationError("--model", f"must be auto, local or none, got {model!r}")
        specs = [a for s in agents for a in load_agents(s)]
        config = LLMConfig() if model == "none" else LLMConfig.from_env()
        needs = any(a.config.get("needs_model") for a in specs)
        local: LocalModel | None = None
        if model == "local" or (model == "auto" and needs and not config.configured):
            err.print("starting the local model (SmolLM2-135M-Instruct on llama.cpp)…")
            local = await asyncio.to_thread(LocalModel.start)
            config = local.config(timeout=600.0)
        try:
            await serve(specs, config)
        finally:
            if local is not None:
                local.stop()

    async def serve(specs: list[Agent], config: LLMConfig) -> None:
        async with Hub.connect(log) as hub, LLMClient(config) as llm:
            book = EffectLedger(ledger or default_ledger(log))
            runner = AgentRunner(hub, specs, ledger=book, llm=llm if config.configured else None)
            await runner.start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, lambda: asyncio.ensure_future(runner.stop(grace)))
            mode = f"LLM {config.model} at {config.base_url}" if config.configured else "offline (no LLM)"
            err.print(f"[bold green]running[/] {', '.join(a.id for a in specs)} on {log} — {mode}")
            try:
                if exit_after is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(runner.wait(), exit_after)
                else:
                    await runner.wait()
            finally:
                await runner.stop(grace)
                book.close()
            for name, st in runner.stats.items():
                err.print(
                    f"{name}: {st.handled} handled, {st.skipped} skipped, {st.duplicates} duplicates, "
                    f"{st.retries} retries, {st.dead_lettered} dead-lettered, {st.published} published"
                )

    run_async(main())


@agent_app.command("list")
def list_(
    agents: Annotated[
        list[str] | None,
        typer.Argument(help="MODULE:NAME of configured agents to include.", show_default=False),
    ] = None,
    log: LogOpt = DEFAULT_LOG,
    as_json: JsonOpt = False,
) -> None:
    """Every agent principal and configured agent, with its group's lag per topic."""

    async def main() -> list[dict[str, Any]]:
        configured = [a for s in agents or [] for a in load_agents(s)]
        async with Hub.connect(log) as hub:
            await hub.registry.refresh()
            rows: dict[str, dict[str, Any]] = {}
            for a in configured:
                lags = await agent_lags(hub, a)
                rows[a.id] = _row(a.id, a.group_name, a.description, "configured", lags)
            registered = [p for p in hub.registry.principals.values() if p.kind == "agent" and not p.revoked]
            for p in registered:
                if p.id in rows:
                    rows[p.id]["registered"] = True
                    continue
                group = f"agent-{p.id}"
                lags = await hub.lags(group)
                rows[p.id] = _row(p.id, group, p.name if p.name != p.id else "", "registered", lags)
            return sorted(rows.values(), key=lambda r: r["agent"])

    rows = run_async(main())
    if as_json:
        out.print_json(json.dumps(rows))
        return
    t = Table(title="agents", title_justify="left")
    for col in ("agent", "group", "topic", "lag", "pending", "members", "description"):
        t.add_column(col, justify="right" if col in ("lag", "pending", "members") else "left")
    for r in rows:
        topics = r["topics"] or [{"topic": "-", "lag": "", "pending": "", "members": ""}]
        for i, tp in enumerate(topics):
            first = i == 0
            t.add_row(
                r["agent"] if first else "",
                r["group"] if first else "",
                tp["topic"],
                str(tp["lag"]),
                str(tp["pending"]),
                str(tp["members"]),
                r["description"] if first else "",
            )
    out.print(t)


def _row(agent: str, group: str, description: str, source: str, lags: list[Any]) -> dict[str, Any]:
    return {
        "agent": agent,
        "group": group,
        "description": description,
        "registered": source == "registered",
        "lag": sum(g.lag for g in lags),
        "topics": [
            {"topic": g.topic, "lag": g.lag, "pending": g.pending, "members": g.members} for g in lags
        ],
    }
