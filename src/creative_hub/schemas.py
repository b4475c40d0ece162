"""Typed payloads: the ``data`` of each event type, ``creative.<area>.<kind>``.

Each payload is a msgspec Struct: validated on publish, exported as JSON
Schema (``creative-hub schema TYPE``).  Every payload may carry ``extra`` (a
free-form object) for what its source knows beyond the common fields.

The area names the shared-hub topic an event is routed to:
``creative.narrative.plot_point`` goes to topic ``creative.narrative``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

__all__ = ["AREAS", "PAYLOADS", "Payload", "json_schema", "register"]

NonEmpty = Annotated[str, Meta(min_length=1)]
Count = Annotated[int, Meta(ge=0)]


class Payload(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every payload."""

    extra: dict[str, Any] = field(default_factory=dict)


# -- engineering ---------------------------------------------------------------
class Person(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: str | None = None
    email: str | None = None
    login: str | None = None


class Commit(Payload, kw_only=True):
    """A commit in a repository."""

    repo: NonEmpty
    sha: Annotated[str, Meta(min_length=4, max_length=64, pattern=r"^[0-9a-f]+$")]
    message: str
    author: Person | None = None
    committer: Person | None = None
    branch: str | None = None
    files: list[str] = field(default_factory=list)
    additions: Count | None = None
    deletions: Count | None = None
    url: str | None = None
    parents: list[str] = field(default_factory=list)


class PullRequest(Payload, kw_only=True):
    repo: NonEmpty
    number: Annotated[int, Meta(ge=1)]
    title: NonEmpty
    state: Literal["open", "closed", "merged", "draft"]
    author: Person | None = None
    body: str | None = None
    base: str | None = None
    head: str | None = None
    url: str | None = None
    action: str | None = None


class Review(Payload, kw_only=True):
    repo: NonEmpty
    pull_request: Annotated[int, Meta(ge=1)]
    state: Literal["approved", "changes_requested", "commented", "dismissed", "pending"]
    reviewer: Person | None = None
    body: str | None = None
    url: str | None = None


class Issue(Payload, kw_only=True):
    repo: NonEmpty
    number: Annotated[int, Meta(ge=1)]
    title: NonEmpty
    state: Literal["open", "closed"]
    author: Person | None = None
    body: str | None = None
    labels: list[str] = field(default_factory=list)
    url: str | None = None
    action: str | None = None


class Ref(Payload, kw_only=True):
    """A branch or tag created or deleted."""

    repo: NonEmpty
    ref: NonEmpty
    ref_type: Literal["branch", "tag"]
    action: Literal["created", "deleted"]
    sha: str | None = None
    url: str | None = None


class Fork(Payload, kw_only=True):
    """A repository forked into another."""

    repo: NonEmpty  #: the original
    fork: NonEmpty  #: the new repository
    owner: Person | None = None
    url: str | None = None


class Release(Payload, kw_only=True):
    repo: NonEmpty
    tag: NonEmpty
    name: str | None = None
    body: str | None = None
    action: str | None = None
    prerelease: bool = False
    draft: bool = False
    author: Person | None = None
    url: str | None = None


# -- narrative -----------------------------------------------------------------
class Fragment(Payload, kw_only=True):
    """A piece of a story: a scene, a chapter, a passage."""

    story: NonEmpty
    title: NonEmpty
    text: str
    order: Count | None = None
    chapter: str | None = None
    scene: str | None = None
    characters: list[str] = field(default_factory=list)
    part: str | None = None  #: title of the sub-story it belongs to ("1. HOW THEY WENT ...")
    part_order: Count | None = None  #: 0-based index of that part


class PlotPoint(Payload, kw_only=True):
    """Something that happens: who did what, in story order."""

    story: NonEmpty
    summary: NonEmpty
    order: Count | None = None
    characters: list[str] = field(default_factory=list)
    actor: str | None = None
    action: str | None = None
    scene: str | None = None
    evidence: str | None = None  #: the verbatim sentence the summary is made of
    generated: bool = False  #: the summary is a model's paraphrase (the model in the provenance)
    speech: bool = False  #: a quoted turn, attributed to ``actor``
    part: str | None = None
    part_order: Count | None = None


class ArcStep(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    scene: str
    state: str
    order: Count | None = None


class CharacterArc(Payload, kw_only=True):
    story: NonEmpty
    character: NonEmpty
    steps: list[ArcStep] = field(default_factory=list)
    summary: str | None = None
    aliases: list[str] = field(default_factory=list)  #: every other name they go by


class Finding(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One thing an insight says, with the plot points and text it rests on."""

    statement: NonEmpty  #: the lesson, the precondition, or the problem
    plot_points: list[str] = field(default_factory=list)  #: ids of the plot points that carry it
    evidence: list[str] = field(default_factory=list)  #: the story's own words for it
    values: list[str] = field(default_factory=list)  #: morals: the values the lesson holds up
    established: bool | None = None  #: causal: is the precondition established earlier?
    flag: str | None = None  #: unexplained_turn, unresolved_setup, acts_after_exit, name_clash ...
    character: str | None = None


class Insight(Payload, kw_only=True):
    """What an insight agent found in a story: its morals, causal gaps, or continuity problems.

    Who made it and from what is in the event's provenance (``model``,
    ``modelprovider``, ``inputs`` = the plot points and fragments used)."""

    story: NonEmpty
    kind: Literal["morals", "causal", "continuity"]
    summary: NonEmpty
    findings: list[Finding] = field(default_factory=list)
    on: str | None = None  #: the fragment or revision checked (continuity)


# -- ceremony ------------------------------------------------------------------
class Phase(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: NonEmpty
    minutes: Annotated[float, Meta(ge=0)] | None = None
    start: datetime | None = None
    description: str | None = None


class Session(Payload, kw_only=True):
    """A ceremony: a gathering with an intention, phases and participants.

    A timed session has ``start`` (and ``end``); an all-day one (an iCalendar
    ``VALUE=DATE``) has ``all_day``, ``start_date`` and ``end_date`` (exclusive,
    as in iCalendar) instead: a day is not an instant, so no midnight in any zone.
    """

    title: NonEmpty
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool = False
    start_date: date | None = None
    end_date: date | None = None
    intention: str | None = None
    place: str | None = None
    participants: list[str] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    recurrence: str | None = None

    def __post_init__(self) -> None:
        if self.all_day:
            if self.start_date is None or self.start is not None or self.end is not None:
                raise ValueError("start_date: required for an all-day session (and no start/end times)")
            if self.end_date is not None and self.end_date < self.start_date:
                raise ValueError("end_date: must not be before start_date")
            return
        if self.start is None or self.start_date is not None or self.end_date is not None:
            raise ValueError("start: required (a time; start_date only with all_day)")
        if self.end is not None and self.end < self.start:
            raise ValueError("end: must not be before start")


# -- feedback ------------------------------------------------------------------
class Comment(Payload, kw_only=True):
    on: NonEmpty  #: id of the event this is about
    text: NonEmpty
    rating: Annotated[int, Meta(ge=1, le=5)] | None = None


class Suggestion(Payload, kw_only=True):
    on: NonEmpty
    text: NonEmpty
    patch: str | None = None


# -- contributions -------------------------------------------------------------
class Proposed(Payload, kw_only=True):
    to: NonEmpty  #: the peer whose hub it is proposed to
    title: NonEmpty
    description: str | None = None
    content: str | None = None
    on: str | None = None  #: the event it builds on
    changes: dict[str, Any] = field(default_factory=dict)  #: fields of ``on``'s data to replace


class Decision(Payload, kw_only=True):
    contribution: NonEmpty  #: id of the proposal
    reason: str | None = None


# -- metadata ------------------------------------------------------------------
class Paper(Payload, kw_only=True):
    title: NonEmpty
    authors: list[str] = field(default_factory=list)
    doi: str | None = None
    arxiv_id: str | None = None
    abstract: str | None = None
    published: str | None = None
    venue: str | None = None
    url: str | None = None


class Message(Payload, kw_only=True):
    """A mail (metadata only)."""

    message_id: NonEmpty
    subject: str
    sender: str
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    date: datetime | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    thread: str | None = None
    mailbox: str | None = None


class File(Payload, kw_only=True):
    path: NonEmpty
    size: Count
    media_type: str | None = None
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    modified: datetime | None = None


class Webpage(Payload, kw_only=True):
    url: NonEmpty
    title: str | None = None
    description: str | None = None
    canonical_url: str | None = None
    site_name: str | None = None
    image: str | None = None
    published: datetime | None = None
    feed: str | None = None


class Output(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What one output of a notebook cell showed, summarised: never the image bytes."""

    output_type: Literal["stream", "execute_result", "display_data", "error", "update_display_data"]
    name: str | None = None  #: a stream's name (stdout, stderr)
    text: str | None = None  #: the head of a stream's text, or of a result's text/plain
    chars: Count | None = None  #: how long that text really was
    ename: str | None = None  #: an error's class name
    evalue: str | None = None  #: an error's message, without terminal colour codes
    mime: dict[str, Count] = field(default_factory=dict)  #: MIME type -> bytes, for rich outputs


class Cell(Payload, kw_only=True):
    """A code (or raw) cell of a notebook as it was saved: source, run, outputs summarised."""

    notebook: NonEmpty  #: the notebook's identity (kept through moves, renames and edits)
    cell: NonEmpty  #: the cell's identity in it: its nbformat 4.5 id, else derived from its content
    order: Count  #: its place among the notebook's cells, from 0
    kind: Literal["code", "raw"] = "code"
    language: str | None = None  #: from the kernelspec, or the cell magic (%%bash)
    source: str
    execution_count: Count | None = None
    started: datetime | None = None  #: when the kernel began it (metadata.execution)
    finished: datetime | None = None
    duration_ms: Count | None = None
    outputs: list[Output] = field(default_factory=list)


# -- agents (creative_hub.agents: tasks, results, bids, awards, blackboard notes) --
class Task(Payload, kw_only=True):
    """A unit of work, fanned out to workers or announced to bidders."""

    job: NonEmpty  #: the workflow this task belongs to (also its correlation id)
    task: NonEmpty  #: this task's id within the job
    kind: NonEmpty = "task"  #: what to do; workers pick the tasks they know
    title: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    assignee: str | None = None  #: a directed task (the winner of an award)
    deadline: float | None = None  #: epoch seconds: bids after it do not count (market)
    parent: str | None = None  #: the task this one was split from (hierarchy)


class Result(Payload, kw_only=True):
    """The outcome of a task."""

    job: NonEmpty
    task: NonEmpty
    ok: bool = True
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None  #: the agent that did it


class Bid(Payload, kw_only=True):
    """An offer to do an announced task; the lowest price wins."""

    job: NonEmpty
    task: NonEmpty
    bidder: NonEmpty
    price: Annotated[float, Meta(ge=0)]
    note: str | None = None


class Award(Payload, kw_only=True):
    """The decision of an announcement: who does the task, out of how many bids."""

    job: NonEmpty
    task: NonEmpty
    winner: str | None  #: None when nobody bid in time
    price: float | None = None
    bids: Annotated[int, Meta(ge=0)] = 0
    kind: str = "task"  #: the task's kind and input, so the winner needs nothing else
    input: dict[str, Any] = field(default_factory=dict)


class Note(Payload, kw_only=True):
    """One revision of a blackboard entry; ``revision`` counts from 1 per key."""

    board: NonEmpty
    key: NonEmpty
    value: Any = None
    revision: Annotated[int, Meta(ge=1)]


# -- system --------------------------------------------------------------------
class DeadLetter(Payload, kw_only=True):
    """A record a subscriber could not use, kept with the reason."""

    topic: NonEmpty
    position: str
    reason: NonEmpty
    group: str | None = None
    record_id: str | None = None
    body: str  #: the original bytes, as text (invalid UTF-8 replaced)


class Folded(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A revision compaction removed from the hot log: enough to prove it existed."""

    id: str
    creator: str
    time: datetime | None = None
    digest: str  #: content hash of the removed revision (its stored body, blake2b-128)
    supersedes: str | None = None


class Compaction(Payload, kw_only=True):
    """What compaction folded into a surviving revision (kept in ``archive.<topic>``)."""

    topic: NonEmpty
    subject: str | None = None
    survivor: NonEmpty  #: the revision that stays
    folded: list[Folded]


class GrantGiven(Payload, kw_only=True):
    """An owner lets a grantee read their drafts until ``expires`` (kept in ``system.grants``)."""

    grant: NonEmpty  #: the grant's id
    owner: NonEmpty
    grantee: NonEmpty
    stream: Literal["drafts"] | None = None  #: every draft of the owner ...
    subject: str | None = None  #: ... or only the drafts about this subject
    expires: datetime  #: aware; the grant ends then
    reason: str | None = None


class GrantRevoked(Payload, kw_only=True):
    """An owner ends a grant before it expires (kept in ``system.grants``)."""

    grant: NonEmpty
    owner: NonEmpty
    reason: str | None = None


class DraftRead(Payload, kw_only=True):
    """Someone other than the owner read drafts through a grant (kept in ``peer.<owner>.audit``)."""

    reader: NonEmpty
    how: NonEmpty  #: get, replay, subscribe, search, lineage, stream; prefixed by the face (mcp:, http:)
    topic: NonEmpty
    ids: list[str]  #: the drafts read, in the order read
    grants: list[str]  #: the grant(s) that allowed it


class RetentionSet(Payload, kw_only=True):
    """A topic's retention as an engine keeps it beside the log (Kafka's compacted
    ``_creative_hub.meta`` topic: Kafka has no count limit of its own)."""

    topic: NonEmpty
    max_age: float | None = None  #: seconds
    max_count: int | None = None
    max_bytes: int | None = None


class RegistryChange(Payload, kw_only=True):
    """A change to who is who (kept in ``system.registry``): a principal added or
    revoked, a token issued or revoked.  Never a token's secret: ``token_mac`` is an
    HMAC keyed by the hub's keystore, useless to whoever reads the broker."""

    principal: NonEmpty
    kind: str | None = None  #: person or agent
    name: str | None = None
    public_key: str | None = None  #: raw Ed25519 public key, base64
    token_id: str | None = None
    token_mac: str | None = None
    token_hash: str | None = None  #: earlier versions' bare sha256 (read, never written)
    expires: float | None = None  #: epoch seconds a token stops working


class Cursor(Payload, kw_only=True):
    """How far ``follow`` has pulled a remote peer's stream (kept in ``system.federation``)."""

    remote: NonEmpty  #: the remote hub's URL
    topic: NonEmpty
    position: str


class WebhookDelivery(Payload, kw_only=True):
    """A webhook delivery handled (kept in ``system.webhooks.github``), so a redelivery
    of the same ``X-GitHub-Delivery`` stores nothing, whichever process receives it."""

    delivery: NonEmpty  #: GitHub's delivery GUID
    event: NonEmpty  #: the X-GitHub-Event name


PAYLOADS: dict[str, type[Payload]] = {
    "creative.engineering.commit": Commit,
    "creative.engineering.pull_request": PullRequest,
    "creative.engineering.review": Review,
    "creative.engineering.issue": Issue,
    "creative.engineering.ref": Ref,
    "creative.engineering.fork": Fork,
    "creative.engineering.release": Release,
    "creative.engineering.cell": Cell,
    "creative.narrative.fragment": Fragment,
    "creative.narrative.plot_point": PlotPoint,
    "creative.narrative.character_arc": CharacterArc,
    "creative.narrative.insight": Insight,
    "creative.ceremony.session": Session,
    "creative.feedback.comment": Comment,
    "creative.feedback.suggestion": Suggestion,
    "creative.contributions.proposed": Proposed,
    "creative.contributions.accepted": Decision,
    "creative.contributions.rejected": Decision,
    "creative.metadata.paper": Paper,
    "creative.metadata.message": Message,
    "creative.metadata.file": File,
    "creative.metadata.webpage": Webpage,
    "creative.agents.task": Task,
    "creative.agents.result": Result,
    "creative.agents.bid": Bid,
    "creative.agents.award": Award,
    "creative.agents.note": Note,
    "creative.system.deadletter": DeadLetter,
    "creative.system.compaction": Compaction,
    "creative.system.grant": GrantGiven,
    "creative.system.grant_revoked": GrantRevoked,
    "creative.system.draft_read": DraftRead,
    "creative.system.retention": RetentionSet,
    "creative.system.cursor": Cursor,
    "creative.system.webhook_delivery": WebhookDelivery,
    "creative.system.principal": RegistryChange,
    "creative.system.token": RegistryChange,
    "creative.system.token_revoked": RegistryChange,
    "creative.system.principal_revoked": RegistryChange,
}

AREAS = sorted({t.split(".")[1] for t in PAYLOADS})


def register(type_: str, payload: type[Payload]) -> None:
    """Add an event type (``creative.<area>.<kind>``) with its payload schema."""
    parts = type_.split(".")
    if len(parts) != 3 or parts[0] != "creative" or not all(parts):
        raise ValueError(f"type {type_!r}: must be creative.<area>.<kind>")
    PAYLOADS[type_] = payload
    if parts[1] not in AREAS:
        AREAS.append(parts[1])
        AREAS.sort()


def json_schema(type_: str | None = None) -> dict[str, Any]:
    """JSON Schema of one type's payload, or of every type (keyed by type)."""
    if type_ is not None:
        schema: dict[str, Any] = msgspec.json.schema(PAYLOADS[type_])
        schema["title"] = type_
        return schema
    return {t: json_schema(t) for t in sorted(PAYLOADS)}
