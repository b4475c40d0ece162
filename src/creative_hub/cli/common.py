"""What every ``creative-hub`` command shares: consoles, options, errors, the caller's hub.

    from .common import DEFAULT_LOG, JsonOpt, LogOpt, out, run_async, with_hub

The log URL comes from ``--log`` or ``CREATIVE_HUB_LOG`` (default
``sqlite:///hub.db``); the acting principal from ``--as`` or
``CREATIVE_HUB_PRINCIPAL``.  Errors print one line naming the field and the
rule, and exit non-zero (2 for bad input, 5 for an engine that failed).
"""

from __future__ import annotations

import asyncio
import getpass
import inspect
import os
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ..access import ANONYMOUS
from ..errors import AccessDenied, HubError, ValidationError
from ..hub import Hub, StoredEvent
from ..log import Retention

T = TypeVar("T")

DEFAULT_LOG = "sqlite:///hub.db"

out = Console()
err = Console(stderr=True)

LogOpt = Annotated[
    str,
    typer.Option(
        "--log",
        envvar="CREATIVE_HUB_LOG",
        help="Log URL: sqlite:///path.db, redis://host:port/db, kafka://host:port, nats://host:port.",
    ),
]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", envvar="CREATIVE_HUB_PRINCIPAL", help="Principal to act as (default: your user name)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="CREATIVE_HUB_TOKEN",
        help="API token of the principal to act as.",
        show_default=False,
    ),
]

SinceOpt = Annotated[
    str | None,
    typer.Option(
        help="Only events whose own time (when it happened at the source) is at or after this: "
        "an ISO time or an age (10m, 2h)."
    ),
]
AppendedSinceOpt = Annotated[
    str | None,
    typer.Option(
        "--appended-since",
        help="Start at what the log stored at or after this time (the log's clock: ISO or an age).",
    ),
]


def with_options(
    command: Callable[..., None], own: Callable[..., Any], options: Callable[..., Any], skip: int = 0
) -> Callable[..., None]:
    """``command`` as typer sees it: ``own``'s parameters (less its first ``skip``), then ``options``'.

    For a group whose commands all end with the same options: each command declares
    only its own parameters and help, and one ``command(**kwargs)`` receives them all.
    """
    params = [*inspect.signature(own, eval_str=True).parameters.values()][skip:]
    params += inspect.signature(options, eval_str=True).parameters.values()
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = own.__doc__
    return command


def principal_name(value: str | None) -> str:
    if value:
        return value
    try:
        return re.sub(r"[^a-z0-9_-]", "", getpass.getuser().lower()) or "local"
    except Exception:
        return "local"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; turn hub errors into one red line and a non-zero exit."""
    try:
        return asyncio.run(coro)
    except HubError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def with_hub(
    url: str,
    principal: str | None,
    fn: Callable[[Hub], Awaitable[T]],
    *,
    token: str | None = None,
    trusted: bool = False,
) -> T:
    """Run ``fn`` with the hub as the caller may use it.

    A token (``--token`` / ``CREATIVE_HUB_TOKEN``) proves who the caller is.
    Without one, the caller acts under a name that proves nothing: it may read
    public topics and publish to the shared hub, and it may not be the name of
    a registered principal.  ``trusted`` commands (principal admin,
    compaction, retention, migration) act as the hub itself: whoever can run
    them can read the log's files anyway.
    """
    async with Hub.connect(url) as root:
        if trusted:
            return await fn(root)
        token = token or os.environ.get("CREATIVE_HUB_TOKEN") or None
        if token:
            who = await root.registry.authenticate(token)
            return await fn(root.acting(who, authenticated=True))
        name = principal_name(principal)
        await root.registry.refresh()
        if root.registry.is_registered(name):
            if principal:
                raise AccessDenied(
                    f"{name!r} is a registered principal: pass their token (--token or CREATIVE_HUB_TOKEN)"
                )
            name = ANONYMOUS
        return await fn(root.acting(name))


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, name: str) -> float:
    """``90``, ``30s``, ``15m``, ``2h``, ``7d``, ``1w`` -> seconds."""
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise ValidationError(name, f"{text!r} is not a duration like 30s, 15m, 2h, 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_size(text: str, name: str) -> int:
    """``1000``, ``64k``, ``10M``, ``1G`` -> bytes."""
    m = re.match(r"^(\d+)([kmg]?)i?b?$", text.strip().lower())
    if not m:
        raise ValidationError(name, f"{text!r} is not a size like 500k, 10M, 1G")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)]


def parse_since(text: str) -> float:
    """An ISO time (``2026-11-24T10:00:00Z``) or an age (``10m`` ago) -> epoch seconds."""
    try:
        return time.time() - parse_duration(text, "since")
    except ValidationError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("since", f"{text!r} is neither an ISO time nor an age like 10m") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()
    return dt.timestamp()


def happened_since(text: str | None) -> Callable[[StoredEvent], bool]:
    """``--since``: keep events whose own ``time`` (else when stored) is at or after ``text``.

    Imported history (a git log, a mailbox) is stored today but happened years
    ago: its own time is what a person browses by.  No index orders events by
    it, so the whole topic is read and filtered."""
    if text is None:
        return lambda s: True
    cut = parse_since(text)
    return lambda s: (s.event.time.timestamp() if s.event.time else s.time_ms / 1000) >= cut


def retention_text(r: Retention) -> str:
    parts = []
    if r.max_age is not None:
        parts.append(f"age<={r.max_age:g}s")
    if r.max_count is not None:
        parts.append(f"count<={r.max_count}")
    if r.max_bytes is not None:
        parts.append(f"bytes<={r.max_bytes}")
    return ", ".join(parts) or "keep all"


async def stats_table(hub: Hub) -> Table:
    t = Table(title="topics and consumer groups", title_justify="left")
    for col in ("topic", "events", "group", "lag", "pending", "members"):
        t.add_column(col, justify="left" if col in ("topic", "group") else "right")
    for info, lags in await hub.stats():
        t.add_row(info.name, str(info.count), "", "", "", "")
        for g in lags:
            t.add_row("", "", g.group, str(g.lag), str(g.pending), str(g.members))
    return t
