"""Run a source into a hub: publish in batches, keep going past bad items, sum it up.

    summary = await ingest(hub, GitSource("."))
    print(summary.line())     # git: 120 ingested, 0 already there, 1 skipped

A batch the hub refuses as a whole (one event fails its schema, or reuses an
id with other content) is retried one event at a time, so one bad item costs
only itself.  ``checkpoint()`` runs after each stored batch, so incremental
state (the last IMAP UID) never runs ahead of what the hub holds.

An id already in the hub with other content is a skip ("changed at the
source?"), unless the source says the two are one thing: ``content_ids``
(the id is the content's), or ``differs(stored, new)`` returning None (a copy
of a mail message that only the transport changed); what ``differs`` returns
otherwise is the skip's reason.

Who writes: each source names its source principal as the events' creator
(``arxiv``, ``feeds``, ...; ``creative_hub.origins``), registered with a key
on first use so the hub signs as it; ``writer=`` (the person who ran the
ingest, proved by their token) replaces it, and the events become theirs
(``origins.personal``: ``alice~<id>``, ``/peers/alice/<source>``).  Never an
author the material names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..errors import IdConflict, NotFound, ValidationError
from ..event import Event
from ..hub import Hub
from ..origins import is_source_principal, personal
from .base import Item, ItemError, Source

__all__ = ["DEFAULT_BATCH", "ListSource", "Summary", "ingest", "ingest_with_progress"]

#: ``source.differs(stored, new)``: None when ``new`` is the stored thing again, else why not
Differs = Callable[[Event, Event], str | None]
DEFAULT_BATCH = 200  # events per publish: one transaction on SQLite, one round trip on brokers


@dataclass
class Summary:
    """What one run of a source did."""

    source: str
    ingested: int = 0  #: new events stored
    already: int = 0  #: events whose id was already in the hub (a re-run)
    skipped: list[ItemError] = field(default_factory=list)  #: items not stored, with why
    ids: list[str] = field(default_factory=list)  #: every event id seen, new or not, in order

    @property
    def seen(self) -> int:
        return self.ingested + self.already + len(self.skipped)

    def line(self) -> str:
        """``git: 12 ingested, 3 already there, 1 skipped``."""
        return (
            f"{self.source}: {self.ingested} ingested, {self.already} already there, "
            f"{len(self.skipped)} skipped"
        )

    def __str__(self) -> str:
        return "\n".join([self.line(), *(f"  skipped {e}" for e in self.skipped)])


class ListSource:
    """Items already in hand (a batch of watched changes) as a Source."""

    def __init__(self, name: str, items: Iterable[Item]) -> None:
        self.name = name
        self.items = list(items)

    async def iter_items(self) -> AsyncIterator[Item]:
        """The items, in order."""
        for item in self.items:
            yield item

    def checkpoint(self) -> None:
        """Nothing to save."""


async def ingest(
    hub: Hub,
    source: Source,
    *,
    batch: int = DEFAULT_BATCH,
    on_item: Callable[[Summary], None] | None = None,
    writer: str | None = None,
) -> Summary:
    """Publish everything ``source`` yields; returns the summary.  Raises only
    when the source as a whole fails (or the engine does).

    ``writer``: the principal every event is written by and signed as (the
    person who ran the ingest); by default the source principal the source
    names (registered with a key on first use)."""
    summary = Summary(source.name)
    content_ids = bool(getattr(source, "content_ids", False))
    differs: Differs | None = getattr(source, "differs", None)
    writers: set[str] = set()
    pending: list[Event] = []
    async for item in source.iter_items():
        if isinstance(item, ItemError):
            summary.skipped.append(item)
        else:
            if writer is not None:
                personal(item, writer)  # theirs: ids and source in their namespace
            await _ensure_writer(hub, item.creator, writers)
            pending.append(item)
            if len(pending) >= batch:
                await _flush(hub, pending, summary, content_ids, differs)
                source.checkpoint()
                pending = []
        if on_item is not None:
            on_item(summary)
    await _flush(hub, pending, summary, content_ids, differs)
    source.checkpoint()
    if on_item is not None:
        on_item(summary)
    return summary


async def _ensure_writer(hub: Hub, creator: str | None, done: set[str]) -> None:
    """A source principal writes with a key of its own: register it on first use."""
    if creator is None or creator in done:
        return
    done.add(creator)
    if is_source_principal(creator) and hub.trusted and hub.keystore is not None:
        await hub.registry.ensure_source(creator)


async def _flush(
    hub: Hub, events: list[Event], summary: Summary, content_ids: bool = False, differs: Differs | None = None
) -> None:
    if not events:
        return
    try:
        receipts = await hub.publish(events)
    except (ValidationError, IdConflict):
        # Someone in the batch is bad: find out who, one at a time.
        for event in events:
            await _publish_one(hub, event, summary, content_ids, differs)
        return
    for r in receipts:
        summary.ids.append(r.id)
        if r.duplicate:
            summary.already += 1
        else:
            summary.ingested += 1


async def _publish_one(
    hub: Hub, event: Event, summary: Summary, content_ids: bool = False, differs: Differs | None = None
) -> None:
    ref = event.subject or event.id
    try:
        (r,) = await hub.publish(event)
    except IdConflict:
        why = None if content_ids else await _why_not_the_same(hub, event, differs)
        if why is None:
            # The id is the content's (these bytes, seen at another path), or the
            # source knows the stored event for the same thing (a copy of a message).
            summary.ids.append(event.id)
            summary.already += 1
            return
        summary.skipped.append(ItemError(ref, why))
        return
    except ValidationError as e:
        summary.skipped.append(ItemError(ref, f"refused by the hub: {e}"))
        return
    summary.ids.append(r.id)
    if r.duplicate:
        summary.already += 1
    else:
        summary.ingested += 1


async def _why_not_the_same(hub: Hub, event: Event, differs: Differs | None) -> str | None:
    """None if the event stored under ``event.id`` is the same thing, else the skip's reason."""
    if differs is not None:
        try:
            stored = (await hub.get(event.id)).event
        except NotFound:
            stored = None  # not readable here: say what is known
        if stored is not None:
            why = differs(stored, event)
            return None if why is None else f"id {event.id} is already in the hub: {why}"
    return f"id {event.id} is already in the hub with other content (changed at the source?)"


async def ingest_with_progress(
    hub: Hub, source: Source, console: Console, *, batch: int = DEFAULT_BATCH, writer: str | None = None
) -> Summary:
    """``ingest`` with a rich progress bar on ``console`` (stderr in the CLI)."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"ingest {source.name}", total=None, counts="")

        def step(s: Summary) -> None:
            progress.update(
                task,
                completed=s.seen,
                counts=f"{s.ingested} new · {s.already} already there · {len(s.skipped)} skipped",
            )

        return await ingest(hub, source, batch=batch, on_item=step, writer=writer)
