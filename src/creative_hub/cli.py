"""The ``creative-hub`` command: a thin face over Hub (parse, call, print).

The log URL comes from ``--log`` or ``CREATIVE_HUB_LOG`` (default
``sqlite:///hub.db``); the acting principal from ``--as`` or
``CREATIVE_HUB_PRINCIPAL``.  Errors print one line naming the field and the
rule, and exit non-zero (2 for bad input, 5 for an engine that failed).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import schemas
from .access import ANONYMOUS
from .errors import AccessDenied, HubError, ValidationError
from .event import encode_event
from .hub import Hub, StoredEvent, migrate
from .jsonlimits import check_depth, decode_json
from .log import Retention, open_log, redact

T = TypeVar("T")

DEFAULT_LOG = "sqlite:///hub.db"

app = typer.Typer(
    name="creative-hub",
    help="An event hub for creative work: publish, tail, replay and move events between engines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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


def _principal(value: str | None) -> str:
    if value:
        return value
    try:
        return re.sub(r"[^a-z0-9_-]", "", getpass.getuser().lower()) or "local"
    except Exception:
        return "local"


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; turn hub errors into one red line and a non-zero exit."""
    try:
        return asyncio.run(coro)
    except HubError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _with_hub(
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
        name = _principal(principal)
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


def _command_name() -> str:
    """``creative-hub`` if that is on PATH, else the path that runs it (e.g. .venv/bin/creative-hub)."""
    import shutil

    if shutil.which("creative-hub"):
        return "creative-hub"
    script = Path(sys.executable).parent / "creative-hub"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _read_events(source: str) -> list[Any]:
    """Events from a file or stdin: one object, an array, or JSON lines."""
    if source == "-":
        raw = sys.stdin.buffer.read()
        where = "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise ValidationError("file", f"{source}: no such file")
        raw = path.read_bytes()
        where = source
    text = raw.strip()
    if not text:
        raise ValidationError("event", f"{where} is empty")
    check_depth(text, where)
    try:
        obj = msgspec.json.decode(text)
    except msgspec.DecodeError:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(msgspec.json.decode(line))
            except msgspec.DecodeError as e:
                raise ValidationError("event", f"{where} line {n}: not valid JSON ({e})") from None
        return items
    return obj if isinstance(obj, list) else [obj]


def _event_row(s: StoredEvent) -> list[str]:
    e = s.event
    title = ""
    if isinstance(e.data, dict):
        for k in ("title", "summary", "message", "subject", "text", "name", "reason"):
            if isinstance(e.data.get(k), str):
                title = e.data[k].splitlines()[0][:70] if e.data[k] else ""
                break
    # The column says UTC: an event stamped +01:00 at its source is shown in UTC, not its own zone.
    when = e.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if e.time else ""
    return [s.position, when, e.type.removeprefix("creative."), e.creator or "", e.subject or "", title]


def _events_table(title: str) -> Table:
    t = Table(title=title, title_justify="left", expand=False)
    for col in ("pos", "time (UTC)", "type", "creator", "subject", "title"):
        t.add_column(col, overflow="fold")
    return t


# -- commands -------------------------------------------------------------------
def _quiet_logs(verbose: bool) -> None:
    """Warnings only (INFO with ``--verbose``), one line each: set before the MCP servers, whose
    library would otherwise turn the root logger to INFO with a wrapping handler."""
    import logging

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _browser_host(host: str) -> str:
    """Where a browser on this machine reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)


@app.command()
def up(
    log: LogOpt = DEFAULT_LOG,
    host: Annotated[
        str, typer.Option(envvar="CREATIVE_HUB_HOST", help="Address the HTTP API listens on.")
    ] = ("127.0.0.1"),
    port: Annotated[
        int, typer.Option(envvar="CREATIVE_HUB_PORT", help="Port of the HTTP API (0: none).")
    ] = 8080,
    anonymous: Annotated[
        bool,
        typer.Option("--anonymous/--no-anonymous", help="Let requests without a token read public streams."),
    ] = True,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Origin browsers may call the API from (repeatable)."),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(help="Requests per second per token or anonymous address [default: 50; 0: no limit]."),
    ] = None,
    rate_burst: Annotated[
        int | None, typer.Option(help="Requests a token may make at once [default: 200].")
    ] = None,
    max_body: Annotated[str, typer.Option(help="Largest request body (e.g. 8M).")] = "8M",
    github_secret: Annotated[
        str | None,
        typer.Option(
            envvar="CREATIVE_HUB_GITHUB_SECRET", help="Enables POST /webhooks/github with this secret."
        ),
    ] = None,
    refresh: Annotated[float, typer.Option(help="Seconds between refreshes of the live view.")] = 2.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the server's INFO log lines too.")
    ] = False,
    exit_after: Annotated[float | None, typer.Option(hidden=True)] = None,
) -> None:
    """Start the hub: open the log, serve the HTTP API, keep retention running, show live counts.

    SIGINT (Ctrl-C) and SIGTERM stop it the same way: the server closes, "stopped" is printed.
    """
    from .server import ServerSettings, listen, serve, stop_signals

    _quiet_logs(verbose)
    limits = {"rate_limit": rate_limit, "rate_burst": rate_burst}
    settings = ServerSettings(
        allow_anonymous=anonymous,
        cors_origins=tuple(cors_origin or ()),
        max_body=parse_size(max_body, "max_body"),
        github_secret=github_secret,
        **{k: v for k, v in limits.items() if v is not None},  # type: ignore[arg-type]
    )

    async def main() -> None:
        # The port first: if it is taken, say so before any file is created.
        sock = listen(host, port) if port else None
        try:
            async with Hub.connect(log) as hub:
                with stop_signals() as stop:
                    await _serve_and_watch(hub, sock, stop)
        finally:
            if sock is not None:
                sock.close()
        if not out.is_terminal:
            out.line()  # the live view ends without one when not on a terminal
        out.print("stopped")

    async def _serve_and_watch(hub: Hub, sock: Any, stop: asyncio.Event) -> None:
        health = await hub.health()
        server: asyncio.Task[None] | None = None
        if sock is not None:
            started = asyncio.Event()
            server = asyncio.create_task(
                serve(hub, host=host, port=port, settings=settings, started=started, sock=sock)
            )
            waiter = asyncio.create_task(started.wait())
            await asyncio.wait([server, waiter], return_when=asyncio.FIRST_COMPLETED)
            if server.done():
                waiter.cancel()
                e = server.exception()
                raise HubError(f"the HTTP API could not listen on {host}:{port}: {e}")
        try:
            url = f"http://{_browser_host(host)}:{port}"
            if sock is not None:
                out.print(f"[bold green]creative-hub is up:[/] open [cyan]{url}/dashboard/[/]")
            else:
                out.print("[bold green]creative-hub is up[/] (no HTTP API: --port 0)")
            out.print(f"  log:      [cyan]{redact(log)}[/] ({health.detail})")
            if log.startswith("sqlite:///"):
                out.print(f"  log file: [cyan]{Path(log[len('sqlite:///') :].split('?')[0]).resolve()}[/]")
            if sock is not None:
                out.print(f"  HTTP API: [cyan]{url}[/]  (OpenAPI: {url}/docs, health: /readyz)")
            exe = _command_name()
            out.print(
                f"  publish:  {exe} publish --type creative.narrative.fragment "
                '--data \'{"story": "s1", "title": "Hello", "text": "..."}\''
            )
            out.print(f"  watch:    {exe} tail -f creative.narrative")
            out.print("  Ctrl-C stops.")
            started_at = time.monotonic()
            with Live(await _stats_table(hub), console=out, refresh_per_second=1, transient=False) as live:
                while exit_after is None or time.monotonic() - started_at < exit_after:
                    wait = refresh if exit_after is None else min(refresh, exit_after)
                    try:
                        await asyncio.wait_for(stop.wait(), wait)
                        break
                    except TimeoutError:
                        pass
                    await hub.apply_retention()  # every topic with limits
                    live.update(await _stats_table(hub))
        finally:
            if server is not None:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)

    _run(main())


@app.command()
def follow(
    remote: Annotated[str, typer.Argument(help="Base URL of the other hub, e.g. http://10.0.0.2:8080.")],
    peer: Annotated[str, typer.Argument(help="The principal whose public streams to follow.")],
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Fetch what is new, then stop.")] = False,
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Follow a peer's public streams on another hub: verified events are copied here, others refused."""
    from .federation import Follower

    async def main(hub: Hub) -> None:
        follower = Follower(hub, remote, peer)
        while True:
            r = await follower.run_once()
            out.print(
                f"{remote} {peer}: fetched {r.fetched}, stored {r.stored}, already here {r.already}, "
                f"refused {len(r.refused)}"
            )
            for eid, reason in r.refused:
                err.print(f"  [red]refused[/] {eid}: {reason}", highlight=False)
            if once:
                return
            await asyncio.sleep(interval)

    _run(_with_hub(log, None, main, trusted=True))


@app.command()
def publish(
    file: Annotated[
        str | None, typer.Argument(help="JSON file (object, array or JSON lines); '-' for stdin.")
    ] = None,
    type: Annotated[
        str | None, typer.Option("--type", "-t", help="Event type, creative.<area>.<kind>.")
    ] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="Payload as a JSON object.")] = None,
    subject: Annotated[
        str | None, typer.Option(help="What the event is about (story id, repo, DOI).")
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="Event id (default: a new UUID).")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Partition key (default: the creator).")] = None,
    log: LogOpt = DEFAULT_LOG,
    as_: AsOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the event ids, one a line.")
    ] = False,
) -> None:
    """Publish events from flags, a JSON file, or stdin.  A bad event stops the batch: none is stored."""
    if file is not None and (type or data):
        raise typer.BadParameter("give a FILE or --type/--data, not both")
    if file is None and not type:
        raise typer.BadParameter("give a FILE ('-' for stdin) or --type and --data")

    async def main(hub: Hub) -> None:
        if file is not None:
            items = _read_events(file)
        else:
            payload = decode_json(data, "data") if data else {}
            item: dict[str, Any] = {"type": type, "data": payload}
            for name, value in (("subject", subject), ("id", id), ("partitionkey", key)):
                if value is not None:
                    item[name] = value
            items = [item]
        receipts = await hub.publish(items)
        if as_json:
            out.print_json(
                json.dumps([r.__dict__ if hasattr(r, "__dict__") else _receipt(r) for r in receipts])
            )
            return
        if quiet:
            for r in receipts:
                print(r.id)
            return
        t = Table(title=f"published {len(receipts)} event(s)", title_justify="left")
        for col in ("id", "topic", "position", "note"):
            t.add_column(col)
        for r in receipts:
            t.add_row(r.id, r.topic, r.position, "already there (retry)" if r.duplicate else "")
        out.print(t)

    _run(_with_hub(log, as_, main, token=token))


def _receipt(r: Any) -> dict[str, Any]:
    return {"id": r.id, "topic": r.topic, "position": r.position, "duplicate": r.duplicate}


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


def _happened_since(text: str | None) -> Callable[[StoredEvent], bool]:
    """``--since``: keep events whose own ``time`` (else when stored) is at or after ``text``.

    Imported history (a git log, a mailbox) is stored today but happened years
    ago: its own time is what a person browses by.  No index orders events by
    it, so the whole topic is read and filtered."""
    if text is None:
        return lambda s: True
    cut = parse_since(text)
    return lambda s: (s.event.time.timestamp() if s.event.time else s.time_ms / 1000) >= cut


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help="Topic, e.g. creative.narrative.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new events.")] = False,
    after: Annotated[str | None, typer.Option(help="Start after this position.")] = None,
    since: SinceOpt = None,
    appended_since: AppendedSinceOpt = None,
    lines: Annotated[
        int, typer.Option("-n", help="Without -f/--after/--since/--appended-since: the last N events.")
    ] = 10,
    log: LogOpt = DEFAULT_LOG,
    as_json: JsonOpt = False,
) -> None:
    """Print a topic's newest events; with -f, keep printing new ones as they arrive."""
    keep = _happened_since(since)

    async def main(hub: Hub) -> None:
        appended = parse_since(appended_since) if appended_since else None
        if after is None and since is None and appended is None:
            # The last N in one pass over the history (each record decoded, and a
            # bad one warned about, once), then on from the last one with -f.
            last: deque[StoredEvent] = deque(maxlen=max(lines, 0))
            end: str | None = None
            async for s in hub.replay(topic):
                last.append(s)
                end = s.position
            for s in last:
                show(s)
            if not follow:
                return
            rest = hub.replay(topic, after=end, follow=True)
        else:
            rest = hub.replay(topic, after=after, since=appended, follow=follow)
        async for s in rest:
            if keep(s):
                show(s)

    def show(s: StoredEvent) -> None:
        if as_json:
            sys.stdout.write(encode_event(s.event).decode() + "\n")
            sys.stdout.flush()
            return
        row = _event_row(s)
        out.print(
            f"[dim]{row[0]:>6}[/] {row[1]} [magenta]{row[2]}[/] [cyan]{row[3]}[/] {row[4]} [bold]{row[5]}[/]",
            highlight=False,
            soft_wrap=True,
        )

    _run(_with_hub(log, None, main))


@app.command()
def replay(
    topic: Annotated[str, typer.Argument(help="Topic to replay.")],
    after: Annotated[str | None, typer.Option(help="Start after this position.")] = None,
    since: SinceOpt = None,
    appended_since: AppendedSinceOpt = None,
    limit: Annotated[int | None, typer.Option(help="At most this many events.")] = None,
    to: Annotated[
        Path | None, typer.Option("--to", help="Write JSON lines to this file (with progress).")
    ] = None,
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Replay a topic from a position or a time, in order: to the screen or to a JSON-lines file."""

    keep = _happened_since(since)

    async def events(hub: Hub) -> AsyncIterator[StoredEvent]:
        """The topic's events from ``after`` / ``--appended-since``, kept by ``--since``, up to ``limit``."""
        appended = parse_since(appended_since) if appended_since else None
        n = 0
        # With --since the log cannot count for us: the limit applies to the events kept.
        async for s in hub.replay(topic, after=after, since=appended, limit=None if since else limit):
            if keep(s):
                yield s
                n += 1
                if limit is not None and n >= limit:
                    return

    async def main(hub: Hub) -> None:
        if to is None:
            table = _events_table(f"{topic}")
            async for s in events(hub):
                table.add_row(*_events_table_row(s))
            out.print(table)
            return
        info = {t.name: t for t in await hub.topics()}.get(topic)
        total = min(info.count if info else 0, limit or sys.maxsize)
        n = 0
        tmp = to.with_name(to.name + ".partial")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as progress:
            task = progress.add_task(f"replay {topic}", total=total)
            with tmp.open("wb") as f:
                async for s in events(hub):
                    f.write(encode_event(s.event) + b"\n")
                    n += 1
                    if n % 500 == 0:
                        progress.update(task, completed=n)
                progress.update(task, completed=n, total=max(total, n))
        tmp.replace(to)  # all or nothing: no half-written file under the final name
        err.print(f"wrote {n} events to {to}")

    _run(_with_hub(log, None, main))


def _events_table_row(s: StoredEvent) -> list[str]:
    return _event_row(s)


@app.command()
def topics(log: LogOpt = DEFAULT_LOG, as_json: JsonOpt = False) -> None:
    """List topics with their event counts and retention."""

    async def main(hub: Hub) -> None:
        infos = await hub.topics()
        if as_json:
            out.print_json(
                json.dumps(
                    [
                        {"name": i.name, "count": i.count, "first": i.first, "last": i.last, "bytes": i.bytes}
                        for i in infos
                    ]
                )
            )
            return
        t = Table(title="topics", title_justify="left")
        for col in ("topic", "events", "first", "last", "bytes", "retention"):
            t.add_column(col, justify="right" if col in ("events", "bytes") else "left")
        for i in infos:
            t.add_row(
                i.name, str(i.count), i.first or "", i.last or "", str(i.bytes or ""), _retention(i.retention)
            )
        out.print(t)

    _run(_with_hub(log, None, main))


def _retention(r: Retention) -> str:
    parts = []
    if r.max_age is not None:
        parts.append(f"age<={r.max_age:g}s")
    if r.max_count is not None:
        parts.append(f"count<={r.max_count}")
    if r.max_bytes is not None:
        parts.append(f"bytes<={r.max_bytes}")
    return ", ".join(parts) or "keep all"


async def _stats_table(hub: Hub) -> Table:
    t = Table(title="topics and consumer groups", title_justify="left")
    for col in ("topic", "events", "group", "lag", "pending", "members"):
        t.add_column(col, justify="left" if col in ("topic", "group") else "right")
    for info, lags in await hub.stats():
        t.add_row(info.name, str(info.count), "", "", "", "")
        for g in lags:
            t.add_row("", "", g.group, str(g.lag), str(g.pending), str(g.members))
    return t


@app.command()
def stats(log: LogOpt = DEFAULT_LOG, as_json: JsonOpt = False) -> None:
    """Per topic: event counts; per consumer group: lag, pending and live members."""

    async def main(hub: Hub) -> None:
        if as_json:
            rows = [
                {
                    "topic": i.name,
                    "count": i.count,
                    "groups": [
                        {"group": g.group, "lag": g.lag, "pending": g.pending, "members": g.members}
                        for g in lags
                    ],
                }
                for i, lags in await hub.stats()
            ]
            out.print_json(json.dumps(rows))
            return
        out.print(await _stats_table(hub))

    _run(_with_hub(log, None, main))


@app.command()
def retention(
    topic: Annotated[str, typer.Argument(help="Topic to bound.")],
    max_age: Annotated[str | None, typer.Option(help="Drop events older than this (30s, 15m, 7d).")] = None,
    max_count: Annotated[int | None, typer.Option(help="Keep at most this many events.")] = None,
    max_bytes: Annotated[str | None, typer.Option(help="Keep at most this much (500k, 10M, 1G).")] = None,
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Set a topic's retention (none given: keep everything) and apply it now."""

    async def main(hub: Hub) -> None:
        r = Retention(
            max_age=parse_duration(max_age, "max_age") if max_age else None,
            max_count=max_count,
            max_bytes=parse_size(max_bytes, "max_bytes") if max_bytes else None,
        )
        await hub.set_retention(topic, r)
        removed = await hub.apply_retention(topic)
        out.print(f"{topic}: {_retention(r)}; removed {removed} event(s) now")

    _run(_with_hub(log, None, main, trusted=True))


@app.command()
def schema(
    type: Annotated[str | None, typer.Argument(help="Event type; all types when omitted.")] = None,
) -> None:
    """Print the JSON Schema of an event type's payload (or of every type)."""
    if type is not None and type not in schemas.PAYLOADS:
        err.print(
            f"[bold red]error:[/] type: unknown type {type!r}; known: {', '.join(sorted(schemas.PAYLOADS))}"
        )
        raise typer.Exit(2)
    sys.stdout.write(json.dumps(schemas.json_schema(type), indent=2) + "\n")


@app.command(name="migrate")
def migrate_cmd(
    from_: Annotated[str, typer.Option("--from", help="Source log URL.")],
    to: Annotated[str, typer.Option("--to", help="Target log URL.")],
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="Only these topics (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy every topic from one log to another, ids and order kept; running it twice adds nothing."""

    async def main() -> None:
        src, dst = open_log(from_), open_log(to)
        await src.open()
        try:
            await dst.open()
            try:
                with Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=err,
                ) as progress:
                    tasks: dict[str, Any] = {}

                    def step(name: str, done: int, total: int) -> None:
                        if name not in tasks:
                            tasks[name] = progress.add_task(name, total=total)
                        progress.update(tasks[name], completed=done, total=max(total, done))

                    result = await migrate(src, dst, topics=topic, progress=step)
            finally:
                await dst.close()
        finally:
            await src.close()
        if as_json:
            rows = [{"topic": n, "copied": c, "already": d} for n, (c, d) in result.items()]
            out.print_json(json.dumps(rows))
            return
        t = Table(title=f"migrated {redact(from_)} -> {redact(to)}", title_justify="left")
        for col in ("topic", "copied", "already there"):
            t.add_column(col, justify="left" if col == "topic" else "right")
        for name, (copied, dup) in result.items():
            t.add_row(name, str(copied), str(dup))
        out.print(t)

    _run(main())


from .cli_peers import register as _register_peer_commands  # noqa: E402 -- needs the helpers above

_register_peer_commands(app)

from .cli_grants import register as _register_grant_commands  # noqa: E402

_register_grant_commands(app)


from .sources.cli import ingest_app  # noqa: E402

app.add_typer(ingest_app, name="ingest")

from .index.cli import register as _register_index_commands  # noqa: E402

_register_index_commands(app)

from .mcp.cli import mcp_app  # noqa: E402

app.add_typer(mcp_app, name="mcp")

from .ide.cli import register as _register_ide_commands  # noqa: E402 -- hooks, mcp config

_register_ide_commands(app, mcp_app)

from .agents.cli import agent_app  # noqa: E402

app.add_typer(agent_app, name="agent")

from .narrative.cli import story_app  # noqa: E402

app.add_typer(story_app, name="story")

from .cli_model import model_app  # noqa: E402

app.add_typer(model_app, name="model")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
