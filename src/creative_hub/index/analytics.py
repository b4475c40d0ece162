"""Analytics over the index: activity, who works with whom, links, open contributions.

    activity(store, who, by="creator", bucket="week")        # [ActivityRow(bucket, key, count)]
    collaborators(store, who)                                # [Pair(a, b, weight, subjects, forks, ...)]
    links(store, who, rel="mentions")                        # [Link(from..., rel, to...)]
    open_contributions(store, who, to="alice")               # proposals nobody decided yet

Every figure is computed over the documents ``who`` may read (the same
``can_read`` rule as search), so someone else's drafts never count.  An
event that sits in two topics (a published revision: the peer's hub and the
shared topic) counts once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from typing import Any, Literal

from ..access import Identity, can_read
from ..errors import ValidationError
from .search import Row, SearchQuery, _filters, iso
from .store import IndexStore

__all__ = [
    "ActivityRow",
    "Link",
    "OpenContribution",
    "Pair",
    "activity",
    "collaborators",
    "links",
    "open_contributions",
]

By = Literal["area", "creator", "type", "topic", "source"]
Bucket = Literal["hour", "day", "week", "month", "year"]
_BUCKETS = {
    "hour": "%Y-%m-%dT%H:00",
    "day": "%Y-%m-%d",
    "week": "%Y-W%W",
    "month": "%Y-%m",
    "year": "%Y",
}
_BY = ("area", "creator", "type", "topic", "source")
MAX_CREATORS_PER_SUBJECT = 50  # a subject everyone touches says little about who works with whom
Time = float | str | datetime | None


@dataclass(slots=True)
class ActivityRow(Row):
    bucket: str  #: e.g. 2026-11-24 (day), 2026-W47 (week), 2026-11 (month)
    key: str  #: the area / creator / type / topic / source
    count: int


@dataclass(slots=True)
class Pair(Row):
    """Two principals and what they did together (undirected; a < b)."""

    a: str
    b: str
    weight: int = 0  #: the sum of the counts below
    subjects: int = 0  #: subjects both created events about
    forks: int = 0  #: forks of one's work by the other
    contributions: int = 0  #: proposals from one to the other's hub
    feedback: int = 0  #: comments / suggestions by one on the other's events
    examples: list[str] = field(default_factory=list)  #: a few shared subjects


@dataclass(slots=True)
class Link(Row):
    """A link from one event to another (``extra["links"]``, forks, feedback targets)."""

    from_id: str
    from_type: str
    from_source: str
    from_title: str
    rel: str
    to_id: str
    ref: str
    to_type: str | None = None  #: None when the target is not indexed or not readable
    to_source: str | None = None
    to_title: str | None = None


@dataclass(slots=True)
class OpenContribution(Row):
    id: str
    creator: str
    to: str
    title: str
    on: str | None
    subject: str
    time: str


def _scope(
    store: IndexStore, who: Identity, since: Time, until: Time, **filters: str | None
) -> tuple[str, list[Any]] | None:
    """`` WHERE ...`` for the caller's readable documents in a time range (None: nothing readable)."""
    built = _filters(SearchQuery(since=since, until=until, **filters), who, store)  # type: ignore[arg-type]
    if built is None:
        return None
    where, args = built
    return (" WHERE " + " AND ".join(where)) if where else "", args


def activity(
    store: IndexStore,
    who: Identity,
    *,
    by: By = "area",
    bucket: Bucket = "day",
    since: Time = None,
    until: Time = None,
    area: str | None = None,
    creator: str | None = None,
) -> list[ActivityRow]:
    """Events per time bucket and per ``by`` (area, creator, type, topic or source), oldest first."""
    if by not in _BY:
        raise ValidationError("by", f"must be one of {', '.join(_BY)}, got {by!r}")
    if bucket not in _BUCKETS:
        raise ValidationError("bucket", f"must be one of {', '.join(_BUCKETS)}, got {bucket!r}")
    scope = _scope(store, who, since, until, area=area, creator=creator)
    if scope is None:
        return []
    where, args = scope
    sql = (
        f"SELECT strftime('{_BUCKETS[bucket]}', d.time_ms / 1000, 'unixepoch') AS b, d.{by}, "
        f"count(DISTINCT d.id) FROM docs d{where} GROUP BY b, d.{by} ORDER BY b, d.{by}"
    )
    return [ActivityRow(b, k, n) for b, k, n in store.query(sql, args)]


def collaborators(
    store: IndexStore,
    who: Identity,
    *,
    principal: str | None = None,
    since: Time = None,
    until: Time = None,
    limit: int = 50,
) -> list[Pair]:
    """Who works with whom: co-activity on subjects, forks, contributions and
    feedback between principals, strongest first (``principal``: only their pairs)."""
    scope = _scope(store, who, since, until)
    if scope is None:
        return []
    where, args = scope
    pairs: dict[tuple[str, str], Pair] = {}

    def pair(x: str, y: str) -> Pair | None:
        if not x or not y or x == y:
            return None
        a, b = sorted((x, y))
        p = pairs.get((a, b))
        if p is None:
            p = pairs[(a, b)] = Pair(a, b)
        return p

    by_subject: dict[str, set[str]] = defaultdict(set)
    sub_where = where + (" AND " if where else " WHERE ") + "d.subject != ''"
    for subject, creator in store.query(f"SELECT DISTINCT d.subject, d.creator FROM docs d{sub_where}", args):
        by_subject[subject].add(creator)
    for subject, creators in by_subject.items():
        if 2 <= len(creators) <= MAX_CREATORS_PER_SUBJECT:
            for x, y in combinations(sorted(creators), 2):
                p = pair(x, y)
                if p is not None:
                    p.subjects += 1
                    if len(p.examples) < 3:
                        p.examples.append(subject)
    # Forks and feedback point at another event: count them only when the
    # caller may read that event too (its creator is part of what it says).
    for kind, cond in (
        ("forks", "d.forkedfrom IS NOT NULL AND s.id = d.forkedfrom"),
        ("feedback", "d.area = 'feedback' AND s.id = d.target"),
    ):
        sql = f"SELECT DISTINCT d.id, d.creator, s.creator, s.topic FROM docs d JOIN docs s ON {cond}" + (
            where.replace(" WHERE ", " WHERE (") + ")" if where else ""
        )
        done: set[str] = set()  # a published event sits in two topics: count the act once
        for eid, x, y, topic in store.query(sql, args):
            p = pair(x, y)
            if p is not None and eid not in done and can_read(who, topic):
                done.add(eid)
                setattr(p, kind, getattr(p, kind) + 1)
    proposals = where + (" AND " if where else " WHERE ") + "d.type = 'creative.contributions.proposed'"
    to = "json_extract(CAST(d.body AS TEXT), '$.data.to')"
    for _, x, y in store.query(f"SELECT DISTINCT d.id, d.creator, {to} FROM docs d{proposals}", args):
        p = pair(x, y or "")
        if p is not None:
            p.contributions += 1
    out = []
    for p in pairs.values():
        p.weight = p.subjects + p.forks + p.contributions + p.feedback
        if principal is None or principal in (p.a, p.b):
            out.append(p)
    out.sort(key=lambda p: (-p.weight, p.a, p.b))
    return out[:limit]


def links(
    store: IndexStore,
    who: Identity,
    *,
    id: str | None = None,
    rel: str | None = None,
    cross_source: bool = False,
    limit: int = 100,
) -> list[Link]:
    """Links between events the caller may read from (``id``: from or to that
    event).  ``cross_source``: only links whose two ends come from different
    sources (a commit naming a paper, a story citing a commit)."""
    scope = _scope(store, who, None, None)
    if scope is None:
        return []
    where, args = scope
    conds = [where.removeprefix(" WHERE ")] if where else []
    if rel:
        conds.append("l.rel = ?")
        args = [*args, rel]
    if id:
        conds.append("(d.id = ? OR l.target = ?)")
        args = [*args, id, id]
    sql = (
        "SELECT DISTINCT d.id, d.type, d.source, d.title, l.rel, l.target, l.ref, "
        "t.type, t.source, t.title, t.topic "
        "FROM links l JOIN docs d ON d.rowid = l.doc LEFT JOIN docs t ON t.id = l.target"
        + (" WHERE " + " AND ".join(conds) if conds else "")
        + " ORDER BY d.time_ms DESC"
    )
    out: list[Link] = []
    seen: set[tuple[str, str, str]] = set()
    for row in store.query(sql, args):
        key = (row[0], row[4], row[5])
        readable_target = row[10] is not None and can_read(who, row[10])
        if key in seen and not readable_target:
            continue
        link = Link(row[0], row[1], row[2], row[3], row[4], row[5], row[6])
        if readable_target:
            link.to_type, link.to_source, link.to_title = row[7], row[8], row[9]
        if cross_source and (link.to_source is None or link.to_source == link.from_source):
            continue
        if key in seen:  # a second row for the same link: keep the one that resolved
            out = [x for x in out if (x.from_id, x.rel, x.to_id) != key]
        seen.add(key)
        out.append(link)
        if len(out) >= limit:
            break
    return out


def open_contributions(store: IndexStore, who: Identity, *, to: str | None = None) -> list[OpenContribution]:
    """Proposals with no acceptance or rejection yet, oldest first (``to``: to one peer's hub)."""
    scope = _scope(store, who, None, None, type="creative.contributions.proposed")
    if scope is None:
        return []
    where, args = scope
    peer = "json_extract(CAST(d.body AS TEXT), '$.data.to')"
    if to:
        where += f" AND {peer} = ?"
        args = [*args, to]
    sql = (
        f"SELECT DISTINCT d.id, d.creator, {peer}, d.title, d.subject, d.time_ms, d.body "
        f"FROM docs d{where} "
        "AND NOT EXISTS (SELECT 1 FROM docs x WHERE x.target = d.id AND x.type IN "
        "('creative.contributions.accepted', 'creative.contributions.rejected')) ORDER BY d.time_ms"
    )
    import msgspec

    out = []
    for eid, creator, target, title, subject, ms, body in store.query(sql, args):
        data = msgspec.json.decode(body).get("data") or {}
        out.append(OpenContribution(eid, creator, target or "", title, data.get("on"), subject, iso(ms)))
    return out
