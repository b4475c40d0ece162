"""``creative-hub ingest <source> ...``: one thin subcommand per source (parse, run, print).

Each command builds a Source, runs it into the hub with a progress bar on
stderr, and prints the summary line (and each skipped item with why).  The
exit code is 0 when something was ingested or was already there, even with
items skipped (they are reported); ``NOTHING_INGESTED`` (6) when every item
failed; 2 for bad arguments, 5 when the engine fails — as everywhere in the CLI.

Who writes: without ``--token`` the events are written and signed by the
source's principal (``git``, ``arxiv``, ``feeds``, ...); with a token, by the
person it belongs to.  Never by an author the material names: ``--map``
only records which principal a claimed author is (``data.extra.mapped``),
and naming a registered principal there is for that principal (with their
token) or the hub's operator (no token) alone.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import AccessDenied, ValidationError
from ..hub import Hub
from ..origins import is_source_principal
from ..sources.base import Principals, Source
from ..sources.ingest import ListSource, Summary, ingest_with_progress
from .common import (
    DEFAULT_LOG,
    LogOpt,
    TokenOpt,
    err,
    out,
    parse_duration,
    parse_size,
    run_async,
    with_options,
)

ingest_app: typer.Typer = typer.Typer(
    help="Ingest outside material as events: git, GitHub, arXiv, CrossRef, BibTeX, mail, folders, "
    "feeds, pages, stories, calendars, ceremonies, notebooks, MCP servers.  Re-running adds nothing new.",
    no_args_is_help=True,
)

MapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="login=principal or email=principal (repeatable): recorded in the payload, never the writer.",
    ),
]
MapFileOpt = Annotated[
    Path | None,
    typer.Option("--map-file", help="TOML/JSON file of login/email -> principal (recorded, as --map)."),
]


def _people(pairs: list[str] | None, file: Path | None) -> Principals:
    return Principals.load(file, pairs or [])


NOTHING_INGESTED = 6  # exit code: items were found, every one failed, nothing is in the hub


class _Output:
    """How this process reports (one command per process; set by ``--json``'s callback)."""

    json = False


def _json_flag(value: bool) -> bool:
    _Output.json = value
    return value


IngestJsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        callback=_json_flag,
        help="Print the summary as one JSON object per run (source, ingested, already, skipped, ids).",
    ),
]


def summary_json(summary: Summary) -> str:
    """One run as JSON: counts, every skipped item with why, every event id in order."""
    return json.dumps(
        {
            "source": summary.source,
            "ingested": summary.ingested,
            "already": summary.already,
            "skipped": [{"ref": e.ref, "reason": e.reason} for e in summary.skipped],
            "ids": summary.ids,
        },
        ensure_ascii=False,
    )


def _report(summary: Summary) -> None:
    if _Output.json:
        print(summary_json(summary), flush=True)  # plain: rich would wrap a long line
        return
    out.print(summary.line(), highlight=False)
    for e in summary.skipped:
        # escape: a file name or a reason may hold "[...]", which rich would take as markup
        err.print(
            f"  [yellow]skipped[/] {escape(e.ref)}: {escape(e.reason)}", highlight=False, soft_wrap=True
        )


async def _writer(hub: Hub, token: str | None, people: Principals | None) -> str | None:
    """Who the events are written by: the token's principal, else None (the source's).

    A map naming a registered principal says "this author is that person":
    only that person (signed in) or the hub's operator (no token: they hold
    the log and the keys anyway) may say it."""
    writer = await hub.registry.authenticate(token) if token else None
    await hub.registry.refresh()
    for target in sorted(people.targets() if people is not None else ()):
        if is_source_principal(target):
            raise ValidationError("map", f"{target!r} is a source principal; map authors to people")
        if writer is not None and target != writer and hub.registry.is_registered(target):
            raise AccessDenied(
                f"--map names {target!r}: only {target!r} (with their token) or the hub's operator "
                "(without a token) may map authors to a registered principal"
            )
    return writer


async def _go(log: str, token: str | None, source: Source) -> Summary:
    async with Hub.connect(log) as hub:
        writer = await _writer(hub, token, getattr(source, "principals", None))
        summary = await ingest_with_progress(hub, source, err, writer=writer)
    _report(summary)
    return summary


def _exit_for(summary: Summary) -> None:
    """Exit NOTHING_INGESTED when every item failed (an API error page, an unreadable file)."""
    if summary.skipped and not (summary.ingested or summary.already):
        err.print(f"{summary.source}: nothing ingested, every item failed", highlight=False)
        raise typer.Exit(NOTHING_INGESTED)


def _start(log: str, token: str | None, make: Any) -> None:
    """Build the source inside the error boundary, so bad arguments print one line."""

    async def main() -> Summary:
        return await _go(log, token, make())

    _exit_for(run_async(main()))


def _ingest_options(log: LogOpt = DEFAULT_LOG, token: TokenOpt = None, json_: IngestJsonOpt = False) -> None:
    """The options every ``ingest`` command ends with (only its signature is used)."""


def _ingest_command(make: Callable[..., Source]) -> Callable[..., Source]:
    """Register ``make`` as ``ingest <its name>``: its own parameters, then ``_ingest_options``'.

    ``make`` builds the Source from the command's arguments; it runs inside the
    error boundary (``_start``), so bad arguments print one line."""

    def command(*, log: str, token: str | None, json_: bool, **own: Any) -> None:
        _start(log, token, lambda: make(**own))

    ingest_app.command(make.__name__)(with_options(command, make, _ingest_options))
    return make


@_ingest_command
def git(
    path: Annotated[Path, typer.Argument(help="A local repository.")] = Path("."),
    rev: Annotated[str, typer.Option(help="Revisions to read (git log syntax).")] = "--all",
    state: Annotated[
        Path | None, typer.Option(help="Remember ref tips here: next run reads new commits only.")
    ] = None,
    map: MapOpt = None,
    map_file: MapFileOpt = None,
) -> Source:
    """Commits of a local git repository (author, message, files, line stats)."""
    from ..sources.git import GitSource

    return GitSource(path, rev=rev, state=state, principals=_people(map, map_file))


@ingest_app.command()
def github(
    repo: Annotated[str | None, typer.Option("--repo", help="owner/name, polled by REST.")] = None,
    payload: Annotated[
        list[Path] | None,
        typer.Option(
            "--payload",
            help="Saved webhook deliveries: a JSON (or form-encoded payload=...) body, or a "
            "folder of *.json files (repeatable), stored as the webhook would.",
        ),
    ] = None,
    event: Annotated[
        str | None,
        typer.Option(
            help="With --payload: the X-GitHub-Event name (default: a NAME.headers file beside "
            "each payload, or the delivery's own request.headers)."
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="GITHUB_TOKEN", help="API token (or GITHUB_TOKEN).")
    ] = None,
    api_url: Annotated[
        str, typer.Option(help="API base URL (GitHub Enterprise).")
    ] = "https://api.github.com",
    state: Annotated[Path | None, typer.Option(help="Keep ETags here for conditional requests.")] = None,
    map: MapOpt = None,
    map_file: MapFileOpt = None,
    log: LogOpt = DEFAULT_LOG,
    hub_token: Annotated[
        str | None,
        typer.Option(
            "--hub-token",
            envvar="CREATIVE_HUB_TOKEN",
            help="Your hub token: the events are then written and signed by you (default: github).",
            show_default=False,
        ),
    ] = None,
    json_: IngestJsonOpt = False,
) -> None:
    """Poll a GitHub repository (commits, pull requests with reviews, issues; ETag-conditional),
    or store saved webhook deliveries (--payload)."""
    if bool(repo) == bool(payload):
        raise typer.BadParameter("give --repo owner/name or --payload FILE|DIR")

    def make() -> Source:
        if payload:
            from ..sources.github_payloads import PayloadSource

            return PayloadSource(payload, event=event, principals=_people(map, map_file))
        from ..sources.github import GithubSource

        assert repo is not None
        people = _people(map, map_file)
        return GithubSource(repo, token=token, api_url=api_url, state=state, principals=people)

    _start(log, hub_token, make)


@_ingest_command
def arxiv(
    query: Annotated[str | None, typer.Option(help="arXiv search query, e.g. 'au:del_maestro'.")] = None,
    id: Annotated[list[str] | None, typer.Option("--id", help="arXiv id (repeatable).")] = None,
    file: Annotated[
        list[Path] | None, typer.Option("--file", help="A saved API response (repeatable).")
    ] = None,
    max_results: Annotated[int, typer.Option(help="At most this many entries.")] = 100,
    map: MapOpt = None,
) -> Source:
    """Papers from the arXiv API (by query or ids) or saved Atom responses."""
    from ..sources.arxiv import ArxivSource

    return ArxivSource(
        query=query, ids=id or [], files=file or [], max_results=max_results, principals=_people(map, None)
    )


@_ingest_command
def crossref(
    doi: Annotated[list[str] | None, typer.Option("--doi", help="A DOI (repeatable).")] = None,
    query: Annotated[str | None, typer.Option(help="Bibliographic query.")] = None,
    rows: Annotated[int, typer.Option(help="Works per query.")] = 20,
    file: Annotated[
        list[Path] | None, typer.Option("--file", help="A saved API response (repeatable).")
    ] = None,
    mailto: Annotated[str | None, typer.Option(help="Your address, for CrossRef's polite pool.")] = None,
    map: MapOpt = None,
) -> Source:
    """Works from CrossRef by DOI or query, or saved JSON responses."""
    from ..sources.crossref import CrossrefSource

    return CrossrefSource(
        dois=doi or [],
        query=query,
        rows=rows,
        files=file or [],
        mailto=mailto,
        principals=_people(map, None),
    )


@_ingest_command
def bibtex(
    files: Annotated[list[Path], typer.Argument(help="BibTeX files.")],
    map: MapOpt = None,
) -> Source:
    """Entries of BibTeX files as papers."""
    from ..sources.bibtex import BibtexSource

    return BibtexSource(files, principals=_people(map, None))


@_ingest_command
def mail(
    paths: Annotated[list[Path] | None, typer.Argument(help="mbox / .eml files or folders of them.")] = None,
    imap: Annotated[str | None, typer.Option(help="imap(s)://user@host[:port]\\[/folder]")] = None,
    folder: Annotated[
        list[str] | None, typer.Option("--folder", help="IMAP folder (repeatable; default all).")
    ] = None,
    state: Annotated[Path | None, typer.Option(help="IMAP: keep the last UID per folder here.")] = None,
    map: MapOpt = None,
    map_file: MapFileOpt = None,
) -> Source:
    """Mail metadata from mbox/.eml files, or an IMAP server (read-only, new UIDs only)."""
    from ..sources.mail import ImapSource, MailSource

    if bool(paths) == bool(imap):
        raise typer.BadParameter("give PATH(s) or --imap URL")
    people = _people(map, map_file)
    if imap:
        password = os.environ.get("CREATIVE_HUB_IMAP_PASSWORD")
        return ImapSource(imap, folders=folder, state=state, password=password, principals=people)
    return MailSource(paths or [], principals=people)


@ingest_app.command()
def folder(
    path: Annotated[Path, typer.Argument(help="The folder.")],
    watch: Annotated[
        bool, typer.Option("--watch", help="Then keep ingesting changes (Ctrl-C stops).")
    ] = False,
    owner: Annotated[
        str | None, typer.Option(help="Whose files these are: a claim, kept in data.extra.owner.")
    ] = None,
    follow_links: Annotated[
        bool, typer.Option("--follow-links", help="Also read links whose target is outside the folder.")
    ] = False,
    log: LogOpt = DEFAULT_LOG,
    token: TokenOpt = None,
    json_: IngestJsonOpt = False,
) -> None:
    """File metadata of a folder (path, size, type, SHA-256, modified); --watch follows changes.
    Regular files only; links out of the folder are left out unless --follow-links."""
    from ..sources.folders import FolderSource

    async def main() -> None:
        source = FolderSource(path, owner=owner, follow_links=follow_links)
        summary = await _go(log, token, source)
        if not watch:
            _exit_for(summary)
        if watch:
            err.print(f"watching {path} (Ctrl-C stops)")
            async for items in source.watch():
                await _go(log, token, ListSource("folder", items))

    run_async(main())


AllowPrivateOpt = Annotated[
    bool,
    typer.Option(
        "--allow-private",
        help="Also fetch from loopback, private and link-local addresses (refused by default: "
        "a URL from outside must not reach inside).",
    ),
]
MaxBytesOpt = Annotated[str, typer.Option("--max-bytes", help="Largest body fetched or read per URL/file.")]
TimeoutOpt = Annotated[
    str, typer.Option("--timeout", help="Deadline per URL, redirects and body included (30s, 2m).")
]


def _limits(allow_private: bool, max_bytes: str, timeout: str) -> Any:
    from ..sources._fetch import FetchLimits

    return FetchLimits(
        max_bytes=parse_size(max_bytes, "max_bytes"),
        deadline=parse_duration(timeout, "timeout"),
        allow_private=allow_private,
    )


@_ingest_command
def feed(
    targets: Annotated[list[str], typer.Argument(help="Feed URLs or files.")],
    allow_private: AllowPrivateOpt = False,
    max_bytes: MaxBytesOpt = "5M",
    timeout: TimeoutOpt = "30s",
    map: MapOpt = None,
) -> Source:
    """Entries of RSS / Atom feeds (URLs: public addresses only, body and time bounded)."""
    from ..sources.feeds import FeedSource

    return FeedSource(
        [_target(t) for t in targets],
        principals=_people(map, None),
        limits=_limits(allow_private, max_bytes, timeout),
    )


@_ingest_command
def page(
    targets: Annotated[list[str], typer.Argument(help="Page URLs or saved HTML files.")],
    allow_private: AllowPrivateOpt = False,
    max_bytes: MaxBytesOpt = "5M",
    timeout: TimeoutOpt = "30s",
) -> Source:
    """Single web pages: title, description, OpenGraph, canonical URL (URLs bounded as for feeds)."""
    from ..sources.feeds import PageSource

    return PageSource([_target(t) for t in targets], limits=_limits(allow_private, max_bytes, timeout))


def _target(text: str) -> str | Path:
    return text if text.startswith(("http://", "https://")) else Path(text)


@_ingest_command
def story(
    paths: Annotated[list[Path], typer.Argument(help="Story files (.txt, .md, .fountain) or folders.")],
    owner: Annotated[
        str | None,
        typer.Option(help="The author: a claim, kept in data.extra.author (default: the file's own)."),
    ] = None,
) -> Source:
    """Stories as parts and scenes, plot points with evidence, characters with aliases (spaCy pipeline)."""
    from ..sources.stories import StorySource

    return StorySource(paths, owner=owner)


@_ingest_command
def calendar(
    files: Annotated[list[Path], typer.Argument(help=".ics files.")],
    map: MapOpt = None,
) -> Source:
    """iCalendar events (recurrence, attendees) as ceremony sessions."""
    from ..sources.calendar import CalendarSource

    return CalendarSource(files, principals=_people(map, None))


@_ingest_command
def ceremony(
    files: Annotated[list[Path], typer.Argument(help="YAML/JSON ceremony files.")],
    owner: Annotated[
        str | None, typer.Option(help="Host when a ceremony names none: a claim, kept in data.extra.host.")
    ] = None,
) -> Source:
    """Ceremonies (phases, timing, participants, intention, place) from YAML/JSON."""
    from ..sources.calendar import CeremonySource

    return CeremonySource(files, owner=owner)


@ingest_app.command()
def notebook(
    paths: Annotated[list[Path], typer.Argument(help="Notebooks (.ipynb, any nbformat) or folders of them.")],
    owner: Annotated[
        str | None, typer.Option(help="Whose notebooks these are: a claim, kept in data.extra.author.")
    ] = None,
    log: LogOpt = DEFAULT_LOG,
    token: TokenOpt = None,
    json_: IngestJsonOpt = False,
) -> None:
    """Jupyter notebooks: markdown as narrative fragments, code cells with outputs summarised.

    Written and signed by the `notebooks` source principal, or by you with --token
    (then the events are yours: ids and source in your namespace)."""
    from ..sources.notebooks import NOTEBOOKS, Known, NotebookSource

    async def main() -> Summary:
        async with Hub.connect(log) as hub:
            writer = await _writer(hub, token, None)
            # edits become revisions of what this writer already wrote
            known = await Known.load(hub, writer or NOTEBOOKS)
            source = NotebookSource(paths, writer=writer or NOTEBOOKS, owner=owner, known=known)
            summary = await ingest_with_progress(hub, source, err, writer=writer)
        _report(summary)
        return summary

    _exit_for(run_async(main()))


@ingest_app.command(name="mcp")
def mcp_cmd(
    config: Annotated[Path, typer.Argument(help="YAML/JSON: name, server {command,args | url}, calls.")],
    every: Annotated[
        str | None, typer.Option(help="Repeat at this interval (15m, 1h); Ctrl-C stops.")
    ] = None,
    log: LogOpt = DEFAULT_LOG,
    token: TokenOpt = None,
    json_: IngestJsonOpt = False,
) -> None:
    """Call an MCP server's configured tools / read its resources; publish the results."""
    from ..sources.mcp import McpSource

    async def main() -> None:
        interval = parse_duration(every, "every") if every else None
        while True:
            await _go(log, token, McpSource.from_config(config))
            if interval is None:
                return
            await asyncio.sleep(interval)

    run_async(main())


__all__ = ["ValidationError", "ingest_app"]
