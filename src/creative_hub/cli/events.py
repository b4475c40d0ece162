"""The event commands: publish, tail, replay, topics, stats, retention, schema, migrate."""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .. import schemas
from ..errors import ValidationError
from ..event import encode_event
from ..hub import Hub, StoredEvent, migrate
from ..jsonlimits import check_depth, decode_json
from ..log import Retention, open_log, redact
from .common import (
    DEFAULT_LOG,
    AppendedSinceOpt,
    AsOpt,
    JsonOpt,
    LogOpt,
    SinceOpt,
    TokenOpt,
    err,
    happened_since,
    out,
    parse_duration,
    parse_since,
    parse_size,
    retention_text,
    run_async,
    stats_table,
    with_hub,
)


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


def _progress() -> Progress:
    """A progress bar on stderr (stdout stays for what the command prints): done of total, time left."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=err)


def _events_table(title: str) -> Table:
    t = Table(title=title, title_justify="left", expand=False)
    for col in ("pos", "time (UTC)", "type", "creator", "subject", "title"):
        t.add_column(col, overflow="fold")
    return t


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

    run_async(with_hub(log, as_, main, token=token))


def _receipt(r: Any) -> dict[str, Any]:
    return {"id": r.id, "topic": r.topic, "position": r.position, "duplicate": r.duplicate}


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
    keep = happened_since(since)

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

    run_async(with_hub(log, None, main))


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
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='One JSON object a line, {"topic", "position", "time_ms", "event"}, instead of the table '
            '(with --to: {"events", "to"} when the file is written).',
        ),
    ] = False,
) -> None:
    """Replay a topic from a position or a time, in order: to the screen or to a JSON-lines file."""

    keep = happened_since(since)

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
        if to is None and as_json:
            # Streamed, one line per event (a replay may be long); the shape of the HTTP API's pages.
            async for s in events(hub):
                head = json.dumps({"topic": s.topic, "position": s.position, "time_ms": s.time_ms})
                # The event as stored (its extension attributes at the top level, as --to writes it).
                sys.stdout.buffer.write(head[:-1].encode() + b',"event":' + encode_event(s.event) + b"}\n")
            sys.stdout.flush()
            return
        if to is None:
            table = _events_table(f"{topic}")
            async for s in events(hub):
                table.add_row(*_event_row(s))
            out.print(table)
            return
        info = {t.name: t for t in await hub.topics()}.get(topic)
        total = min(info.count if info else 0, limit or sys.maxsize)
        n = 0
        tmp = to.with_name(to.name + ".partial")
        with _progress() as progress:
            task = progress.add_task(f"replay {topic}", total=total)
            with tmp.open("wb") as f:
                async for s in events(hub):
                    f.write(encode_event(s.event) + b"\n")
                    n += 1
                    if n % 500 == 0:
                        progress.update(task, completed=n)
                progress.update(task, completed=n, total=max(total, n))
        tmp.replace(to)  # all or nothing: no half-written file under the final name
        if as_json:
            sys.stdout.write(json.dumps({"events": n, "to": str(to)}) + "\n")
        else:
            err.print(f"wrote {n} events to {to}")

    run_async(with_hub(log, None, main))


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
            size = str(i.bytes or "")
            t.add_row(i.name, str(i.count), i.first or "", i.last or "", size, retention_text(i.retention))
        out.print(t)

    run_async(with_hub(log, None, main))


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
        out.print(await stats_table(hub))

    run_async(with_hub(log, None, main))


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
        out.print(f"{topic}: {retention_text(r)}; removed {removed} event(s) now")

    run_async(with_hub(log, None, main, trusted=True))


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
                with _progress() as progress:
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

    run_async(main())


def register(app: typer.Typer) -> None:
    """Add the event commands to the root command, in the order ``--help`` lists them."""
    app.command()(publish)
    app.command()(tail)
    app.command()(replay)
    app.command()(topics)
    app.command()(stats)
    app.command()(retention)
    app.command()(schema)
    app.command(name="migrate")(migrate_cmd)
