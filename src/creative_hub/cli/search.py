"""CLI commands over the index: search, reindex, and the analytics.

creative-hub search "witch oven" --area narrative --since 7d
creative-hub reindex
creative-hub activity --by creator --bucket week
creative-hub collaborators
creative-hub links --rel mentions
creative-hub contributions --to alice

Each query command first catches the index up with the log (``--no-refresh``
skips that), then asks it as the caller (``--token`` / ``CREATIVE_HUB_TOKEN``,
else anonymous: public topics only).  The index file defaults to
``<db>.index.db`` beside a SQLite log (``--index`` / ``CREATIVE_HUB_INDEX``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from ..hub import Hub
from ..index import Hit, HubIndex, SearchQuery
from .common import (
    DEFAULT_LOG,
    AsOpt,
    JsonOpt,
    LogOpt,
    TokenOpt,
    out,
    parse_since,
    run_async,
    with_hub,
    with_options,
)

__all__ = ["register"]

T = TypeVar("T")

IndexOpt = Annotated[
    str | None,
    typer.Option(
        "--index",
        envvar="CREATIVE_HUB_INDEX",
        help="Index file (default: <db>.index.db beside a SQLite log, else .creative-hub/index.db).",
    ),
]
RefreshOpt = Annotated[
    bool, typer.Option("--refresh/--no-refresh", help="Catch the index up with the log first.")
]
SinceOpt = Annotated[str | None, typer.Option(help="From a time (ISO) or an age (10m, 7d).")]
UntilOpt = Annotated[str | None, typer.Option(help="Up to a time (ISO) or an age (1d = a day ago).")]


class MadeBy(StrEnum):
    agent = "agent"
    person = "person"


def _time(text: str | None) -> float | None:
    return parse_since(text) if text else None


def trusted_view(hub: Hub) -> Hub:
    """The hub itself over the same log, for the indexer (it reads every topic;
    what a caller sees is filtered when they ask)."""
    return hub.trusted_view("indexer")


async def _with_index(
    log: str,
    index: str | None,
    as_: str | None,
    token: str | None,
    refresh: bool,
    fn: Callable[[HubIndex, Hub], Awaitable[T]],
) -> T:
    async def run(hub: Hub) -> T:
        ix = HubIndex.for_log(log, index, semantic=None)
        try:
            if refresh:
                await ix.refresh(trusted_view(hub), force=True)
            return await fn(ix, hub)
        finally:
            ix.close()

    return await with_hub(log, as_, run, token=token)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(escape(c) for c in r))  # snippets mark matches with [ ]: not markup
    return t


Answer = tuple[Any, Table]  # what --json prints, and the table shown without it


def _index_options(
    log: LogOpt = DEFAULT_LOG,
    index: IndexOpt = None,
    refresh: RefreshOpt = True,
    as_: AsOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The options every query command ends with (only its signature is used)."""


def _index_query(action: Callable[..., Awaitable[Answer]]) -> Callable[..., None]:
    """A query command: ``action``'s own parameters, then ``_index_options``'.

    ``action`` gets the index (caught up with the log unless ``--no-refresh``), the
    caller's hub and the command's arguments, and answers for both outputs."""

    def command(
        *,
        log: str,
        index: str | None,
        refresh: bool,
        as_: str | None,
        token: str | None,
        as_json: bool,
        **own: Any,
    ) -> None:
        async def main(ix: HubIndex, hub: Hub) -> None:
            doc, table = await action(ix, hub, **own)
            if as_json:
                out.print_json(json.dumps(doc))
            else:
                out.print(table)

        run_async(_with_index(log, index, as_, token, refresh, main))

    return with_options(command, action, _index_options, skip=2)  # skip the index and the hub


def _made_by(hit: Hit) -> str:
    """``agent · offline/critic-1``: the creator's kind and the model, what is known of them."""
    model = f"{hit.modelprovider}/{hit.model}" if hit.model and hit.modelprovider else hit.model
    return " · ".join(x for x in (hit.madeby, model or hit.modelprovider) if x)


@_index_query
async def search_cmd(
    ix: HubIndex,
    hub: Hub,
    query: Annotated[str, typer.Argument(help='Words (ANDed), "phrases", prefix*, -excluded, OR.')] = "",
    topic: Annotated[str | None, typer.Option(help="Only this topic.")] = None,
    area: Annotated[str | None, typer.Option(help="Only this area (narrative, engineering, ...).")] = None,
    type: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    creator: Annotated[str | None, typer.Option(help="Only events by this principal.")] = None,
    source: Annotated[str | None, typer.Option(help="Only events from this source.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only events about this subject.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only work made by this agent.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Only work made with this model: NAME, PROVIDER or PROVIDER/NAME.")
    ] = None,
    made_by: Annotated[
        MadeBy | None, typer.Option("--made-by", help="Only work made by an agent or by a person.")
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many hits.")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many hits (paging).")] = 0,
) -> Answer:
    """Search every topic you may read: full text (bm25), filters, snippets."""
    # the times take ages here (7d); the query itself takes epoch seconds or ISO 8601
    own = {"made_by": made_by.value if made_by else None, "since": _time(since), "until": _time(until)}
    q = SearchQuery.from_params(query, {**locals(), **own})
    result = await ix.search(hub.identity, q)
    rows = [
        [h.time[:19].replace("T", " "), h.type.removeprefix("creative."), h.creator, _made_by(h)]
        + [h.subject, h.title, h.snippet]
        for h in result.hits
    ]
    title = f"{len(result.hits)} hit(s) ({result.mode}){' -- more with --offset' if result.more else ''}"
    columns = ["time (UTC)", "type", "creator", "made by", "subject", "title", "snippet"]
    return result.to_dict(), _table(title, columns, rows)


def reindex_cmd(
    log: LogOpt = DEFAULT_LOG,
    index: IndexOpt = None,
    semantic: Annotated[
        bool | None,
        typer.Option("--semantic/--no-semantic", help="Embeddings too (default: if the extra is installed)."),
    ] = None,
) -> None:
    """Rebuild the search index from the log (drops it first; running it twice gives the same index)."""

    async def main(hub: Hub) -> None:
        ix = HubIndex.for_log(log, index, semantic=semantic)
        try:
            n = await ix.rebuild(hub)
        finally:
            ix.close()
        extra = " with embeddings" if ix.embedder else ""
        out.print(f"indexed {n} document(s) into {ix.store.path}{extra}")

    run_async(with_hub(log, None, main, trusted=True))


@_index_query
async def activity_cmd(
    ix: HubIndex,
    hub: Hub,
    by: Annotated[str, typer.Option(help="area, creator, type, topic or source.")] = "area",
    bucket: Annotated[str, typer.Option(help="hour, day, week, month or year.")] = "day",
    area: Annotated[str | None, typer.Option(help="Only this area.")] = None,
    creator: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> Answer:
    """Activity over time: events per day / week / month, per area or creator (with a bar per row)."""
    rows = await ix.activity(
        hub.identity,
        by=by,
        bucket=bucket,
        area=area,
        creator=creator,
        since=_time(since),
        until=_time(until),
    )
    top = max((r.count for r in rows), default=1)
    table = [[r.bucket, r.key, str(r.count), "█" * max(1, round(30 * r.count / top))] for r in rows]
    return [r.to_dict() for r in rows], _table(
        f"activity per {bucket} and {by}", [bucket, by, "events", ""], table
    )


@_index_query
async def collaborators_cmd(
    ix: HubIndex,
    hub: Hub,
    principal: Annotated[str | None, typer.Argument(help="Only pairs with this principal.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many pairs.")] = 30,
) -> Answer:
    """Who works with whom: shared subjects, forks, contributions and feedback between principals."""
    pairs = await ix.collaborators(hub.identity, principal=principal, limit=limit)
    cols = ["a", "b", "weight", "subjects", "forks", "contributions", "feedback", "e.g."]
    rows = [
        [p.a, p.b, *(str(x) for x in (p.weight, p.subjects, p.forks, p.contributions, p.feedback))]
        + [", ".join(p.examples)]
        for p in pairs
    ]
    return [p.to_dict() for p in pairs], _table("who works with whom", cols, rows)


@_index_query
async def links_cmd(
    ix: HubIndex,
    hub: Hub,
    event: Annotated[str | None, typer.Argument(help="Only links from or to this event id.")] = None,
    rel: Annotated[str | None, typer.Option(help="Only this relation (mentions, same-as, on, ...).")] = None,
    cross_source: Annotated[
        bool, typer.Option("--cross-source", help="Only links between different sources.")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many links.")] = 100,
) -> Answer:
    """Cross-source links: commits naming papers, stories citing commits, forks, feedback targets."""
    found = await ix.links(hub.identity, id=event, rel=rel, cross_source=cross_source, limit=limit)
    rows = [
        [x.from_type.removeprefix("creative."), x.from_title, x.rel, x.ref or x.to_id, x.to_title or ""]
        for x in found
    ]
    return [x.to_dict() for x in found], _table("links", ["from", "title", "rel", "to", "to title"], rows)


@_index_query
async def contributions_cmd(
    ix: HubIndex,
    hub: Hub,
    to: Annotated[str | None, typer.Option(help="Only proposals to this peer's hub.")] = None,
) -> Answer:
    """Open contributions: proposals still waiting for the owner's accept or reject."""
    found = await ix.open_contributions(hub.identity, to=to)
    rows = [[c.time[:19].replace("T", " "), c.creator, c.to, c.title, c.id] for c in found]
    cols = ["time (UTC)", "from", "to", "title", "id"]
    return [c.to_dict() for c in found], _table(f"{len(found)} open contribution(s)", cols, rows)


def register(app: typer.Typer) -> None:
    """Mount these commands on the main app."""
    app.command("search")(search_cmd)
    app.command("reindex")(reindex_cmd)
    app.command("activity")(activity_cmd)
    app.command("collaborators")(collaborators_cmd)
    app.command("links")(links_cmd)
    app.command("contributions")(contributions_cmd)
