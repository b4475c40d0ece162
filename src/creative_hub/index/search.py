"""Search the index: full text (FTS5, bm25), filters, snippets, related work.

    hits = search(store, who, SearchQuery(text="witch oven", area="narrative", creator="alice"))
    for h in hits.hits:
        print(h.score, h.title, h.snippet)
    near = related(store, who, event_id)

Access is decided here, at query time, for every query: the topics the
caller may read come from ``creative_hub.access.read_scope`` (the hub's one
rule), and only documents stored under those topics are considered -- in a
topic grants open (someone else's drafts), only documents about the subjects
they name.  So someone else's private draft is never a hit, a neighbour, a
link or a count unless a live grant covers it.

Query text: words are ANDed; ``"a phrase"``, ``prefix*``, ``-excluded`` and
``OR`` between words work; anything else is matched as plain words (no FTS5
syntax errors reach the caller).  ``raw=True`` passes FTS5 syntax through.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from ..access import ALL, Identity, can_read_event, read_scope
from ..errors import NotFound, ValidationError
from .store import IndexStore, meta_token

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Hit", "Related", "SearchQuery", "SearchResult", "fts_query", "related", "search"]

MAX_LIMIT = 200
# A query matching more documents than this ranks (bm25) the newest RANK_WINDOW
# matches only: bm25 over every match of a word in half the corpus costs
# ~0.7 us a match (0.7 s at 1M), the newest window a few ms.  If the window
# holds too few hits after the filters, the full ranking runs instead.
RANK_WINDOW = 5000
Mode = Literal["auto", "fts", "hybrid"]
_TOKEN = re.compile(r'-?"[^"]*"|\S+')
_WORD = re.compile(r"\w", re.UNICODE)


class Row:
    """A result row (each subclass a dataclass): ``to_dict()`` is the JSON the faces answer."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(cast("DataclassInstance", self))


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchQuery:
    """SearchQuery(text="oven", area="narrative", since="2026-01-01", limit=10)

    Times are epoch seconds, ISO 8601 strings or datetimes.  Every filter is
    optional; with no text the newest events come first.
    """

    text: str = ""
    topic: str | None = None
    area: str | None = None
    type: str | None = None
    creator: str | None = None
    source: str | None = None
    subject: str | None = None
    agent: str | None = None  #: made by this agent principal
    model: str | None = None  #: made with this model: ``name``, ``provider`` or ``provider/name``
    made_by: Literal["agent", "person"] | None = None  #: the creator's kind
    since: float | str | datetime | None = None
    until: float | str | datetime | None = None
    limit: int = 20
    offset: int = 0
    raw: bool = False
    mode: Mode = "auto"

    @classmethod
    def from_params(cls, text: str, params: Mapping[str, Any]) -> SearchQuery:
        """The query a face's search parameters spell: ``text``, then each of
        ``FACE_PARAMS`` from ``params`` (the face's ``locals()``).

        The HTTP route, the MCP tool and the CLI command declare these
        parameters their own way (OpenAPI, the tool's schema, ``--help``) but
        name them after the fields, so their mapping is written once, here."""
        return cls(text=text, **{name: params[name] for name in FACE_PARAMS})


#: The filters and paging every search face takes, named as SearchQuery's fields.
FACE_PARAMS = (
    "topic", "area", "type", "creator", "source", "subject", "agent", "model", "made_by",
    "since", "until", "limit", "offset",
)  # fmt: skip


@dataclass(slots=True)
class Hit(Row):
    """One search result."""

    id: str
    topic: str
    position: str
    type: str
    creator: str
    source: str
    subject: str
    time: str  #: RFC 3339, UTC
    title: str
    snippet: str
    score: float  #: higher is better (bm25 negated; fused rank in hybrid mode)
    madeby: str = ""  #: the creator's kind when indexed: agent, person ("" if not registered)
    model: str = ""  #: provenance: the model that made it ("" if none declared)
    modelprovider: str = ""  #: who served the model, or offline


@dataclass(slots=True)
class SearchResult:
    hits: list[Hit]
    more: bool  #: another page exists (pass offset + limit)
    mode: str  #: what ranked them: fts, hybrid, or recent (no text)

    def to_dict(self) -> dict[str, Any]:
        return {"hits": [h.to_dict() for h in self.hits], "more": self.more, "mode": self.mode}


@dataclass(slots=True)
class Related(Row):
    """A neighbour of an event, and why."""

    id: str
    topic: str
    type: str
    creator: str
    subject: str
    time: str
    title: str
    score: float
    why: list[str] = field(default_factory=list)  #: link:<rel>, same subject, similar text, semantic


def to_ms(value: float | str | datetime | None, name: str) -> int | None:
    """Epoch seconds / ISO 8601 / datetime -> epoch milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    if isinstance(value, (int, float)):
        return int(float(value) * 1000)
    try:
        return int(float(value) * 1000)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(name, f"{value!r} is not a time (ISO 8601 or epoch seconds)") from None
    return to_ms(dt, name)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def fts_query(text: str) -> str:
    """User text -> a safe FTS5 query: quoted words (ANDed), phrases, prefix*, -not, OR."""
    positive: list[str] = []
    negative: list[str] = []
    for tok in _TOKEN.findall(text):
        neg = tok.startswith("-") and len(tok) > 1
        body = tok[1:] if neg else tok
        if body == "OR" and not neg:
            if positive and positive[-1] != "OR":
                positive.append("OR")
            continue
        if body.startswith('"') and body.endswith('"') and len(body) >= 2:
            inner = body[1:-1]
            if not _WORD.search(inner):
                continue
            term = _quote(inner)
        else:
            prefix = body.endswith("*")
            word = body.rstrip("*")
            if not _WORD.search(word):
                continue
            term = _quote(word) + ("*" if prefix else "")
        (negative if neg else positive).append(term)
    while positive and positive[-1] == "OR":
        positive.pop()
    if not positive:
        if negative:
            raise ValidationError("q", "a query needs at least one word that is not excluded")
        return ""
    q = " ".join(positive)
    for term in negative:
        q = f"({q}) NOT {term}"
    return q


def _filters(q: SearchQuery, who: Identity, store: IndexStore) -> tuple[list[str], list[Any]] | None:
    """SQL conditions on ``d`` for the query's filters and the caller's access;
    None when nothing can match (e.g. a topic the caller may not read)."""
    where: list[str] = []
    args: list[Any] = []
    since, until = to_ms(q.since, "since"), to_ms(q.until, "until")  # bad input is refused first
    if q.topic is not None:
        scope = read_scope(who, q.topic)
        if scope is None or scope == frozenset():
            return None  # not even "access denied": the topic is not named to them
        where.append("d.topic = ?")
        args.append(q.topic)
        if isinstance(scope, frozenset):  # grants on some subjects of someone's drafts
            where.append(f"d.subject IN ({','.join('?' * len(scope))})")
            args.extend(sorted(scope))
    elif not who.trusted:
        topics = store.topics()
        scopes = {t: read_scope(who, t) for t in topics}
        readable = [t for t, sc in scopes.items() if sc is ALL]
        partial = [(t, sorted(sc)) for t, sc in scopes.items() if isinstance(sc, frozenset) and sc]
        if not readable and not partial:
            return None
        if len(readable) < len(topics):
            ors = [f"d.topic IN ({','.join('?' * len(readable))})"] if readable else []
            ors_args: list[Any] = list(readable)
            for t, subjects in partial:
                ors.append(f"(d.topic = ? AND d.subject IN ({','.join('?' * len(subjects))}))")
                ors_args.extend([t, *subjects])
            where.append("(" + " OR ".join(ors) + ")")
            args.extend(ors_args)
    for col, value in (
        ("area", q.area),
        ("type", q.type),
        ("creator", q.creator),
        ("source", q.source),
        ("subject", q.subject),
    ):
        if value:
            where.append(f"d.{col} = ?")
            args.append(value.removeprefix("creative.") if col == "area" else value)
    where_made, args_made = _made(q)
    where.extend(where_made)
    args.extend(args_made)
    if since is not None:
        where.append("d.time_ms >= ?")
        args.append(since)
    if until is not None:
        where.append("d.time_ms < ?")
        args.append(until)
    return where, args


def _made(q: SearchQuery) -> tuple[list[str], list[Any]]:
    """Conditions for "made by agent X / with model Y / by an agent or a person"."""
    where: list[str] = []
    args: list[Any] = []
    if q.made_by is not None:
        if q.made_by not in ("agent", "person"):
            raise ValidationError("made_by", f"must be 'agent' or 'person', got {q.made_by!r}")
        where.append("d.madeby = ?")
        args.append(q.made_by)
    if q.agent:
        where.append("d.creator = ? AND d.madeby = 'agent'")
        args.append(q.agent)
    if q.model:
        provider, sep, name = q.model.partition("/")
        if sep:  # provider/name (a name may hold more slashes; a provider never does)
            where.append("d.modelprovider = ? AND d.model = ?")
            args.extend([provider, name])
        else:  # a model's name, or every model of a provider ("offline")
            where.append("(d.model = ? OR d.modelprovider = ?)")
            args.extend([q.model, q.model])
    return where, args


_COLS = "d.rowid, d.id, d.topic, d.position, d.type, d.creator, d.source, d.subject, d.time_ms, d.title"


def _fields(row: Any) -> dict[str, Any]:
    """The fields of a result (a Hit, a Related) that a ``_COLS`` row holds."""
    return {
        "id": row[1],
        "topic": row[2],
        "type": row[4],
        "creator": row[5],
        "subject": row[7],
        "time": iso(row[8]),
        "title": row[9],
    }


def _hit(row: Any, snippet: str, score: float) -> Hit:
    return Hit(**_fields(row), position=row[3], source=row[6], snippet=snippet, score=score)


def _dedupe(hits: list[Hit]) -> list[Hit]:
    """One hit per event id: a published revision sits in the peer's hub and
    in the shared topic; show the first (best ranked) of them."""
    seen: set[str] = set()
    out = []
    for h in hits:
        if h.id not in seen:
            seen.add(h.id)
            out.append(h)
    return out


def _with_made(store: IndexStore, hits: list[Hit]) -> list[Hit]:
    """Fill in who made each hit and how (the creator's kind, the model) from the index."""
    if hits:
        rows = store.query(
            "SELECT id, topic, madeby, model, modelprovider FROM docs "
            f"WHERE id IN ({','.join('?' * len(hits))})",
            [h.id for h in hits],
        )
        made = {(r[0], r[1]): r[2:] for r in rows}
        for h in hits:
            h.madeby, h.model, h.modelprovider = made.get((h.id, h.topic), ("", "", ""))
    return hits


def search(store: IndexStore, who: Identity, q: SearchQuery, *, embedder: Any | None = None) -> SearchResult:
    """Run ``q`` as ``who``.  ``embedder`` (a semantic.Embedder) enables hybrid ranking."""
    if not 1 <= q.limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be between 1 and {MAX_LIMIT}, got {q.limit}")
    if q.offset < 0:
        raise ValidationError("offset", f"must not be negative, got {q.offset}")
    built = _filters(q, who, store)
    if built is None:
        return SearchResult([], False, "fts" if q.text else "recent")
    where, args = built
    match = q.text.strip() if q.raw else fts_query(q.text)
    if match:
        # The same filters inside the MATCH: FTS5 intersects doclists (cheap)
        # instead of ranking every match and dropping most (the SQL filters stay).
        filters = [(f, v) for f, v in (("area", q.area), ("type", q.type), ("creator", q.creator),
                                       ("source", q.source), ("subject", q.subject)) if v]  # fmt: skip
        if filters:
            match = f"({match})" + "".join(
                f' AND meta : "{meta_token(f, v.removeprefix("creative.") if f == "area" else v)}"'
                for f, v in filters
            )
    want = (q.offset + q.limit) * 2 + 1  # room for duplicates of mirrored events
    if not match:
        sql = f"SELECT {_COLS} FROM docs d"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        sql += " ORDER BY d.time_ms DESC, d.rowid DESC LIMIT ?"
        rows = store.query(sql, [*args, want])
        hits = _dedupe([_hit(r, "", 0.0) for r in rows])
        page = _with_made(store, hits[q.offset : q.offset + q.limit])
        return SearchResult(page, len(hits) > q.offset + q.limit, "recent")
    sql = (
        f"SELECT {_COLS}, snippet(fts, 1, '[', ']', '…', 16), bm25(fts, 4.0, 1.0, 0.0) AS score, "
        "highlight(fts, 0, '[', ']') "
        f"FROM fts JOIN docs d ON d.rowid = fts.rowid WHERE fts MATCH ?"
    )
    tail = "".join(" AND " + w for w in where) + " ORDER BY score LIMIT ?"
    try:
        ranked: list[Any] | None = None
        cut = store.query(
            "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rowid DESC LIMIT 1 OFFSET ?",
            (match, RANK_WINDOW - 1),
        )
        if cut:  # a big result set: rank the newest window first
            ranked = store.query(sql + " AND fts.rowid >= ?" + tail, [match, cut[0][0], *args, want])
            if len(ranked) < want:
                ranked = None
        rows = ranked if ranked is not None else store.query(sql + tail, [match, *args, want])
    except sqlite3.OperationalError as e:
        raise ValidationError("q", f"not a valid search: {e}") from None
    # The text's snippet, or the title highlighted when only the title matched.
    hits = _dedupe([_hit(r, r[10] if "[" in r[10] else r[12], -float(r[11])) for r in rows])
    mode = "fts"
    if embedder is not None and q.mode != "fts":
        from .semantic import fuse

        fused = fuse(store, who, q, embedder, hits, where, args, want)
        if fused is not None:
            hits, mode = _dedupe(fused), "hybrid"
    page = _with_made(store, hits[q.offset : q.offset + q.limit])
    return SearchResult(page, len(hits) > q.offset + q.limit, mode)


def _doc(store: IndexStore, who: Identity, event_id: str) -> Any:
    """The caller's readable document row for ``event_id``, else NotFound."""
    rows = store.query(f"SELECT {_COLS}, d.text FROM docs d WHERE d.id = ?", (event_id,))
    for r in rows:
        if can_read_event(who, r[2], r[7]):
            return r
    raise NotFound(f"no event {event_id!r}")


def _significant(title: str, text: str, n: int = 12) -> list[str]:
    """The longest distinct words of a document: a cheap stand-in for its topic words."""
    words = {w.lower() for w in re.findall(r"\w{4,}", f"{title} {title} {text[:2000]}")}
    return sorted(words, key=lambda w: (-len(w), w))[:n]


def related(
    store: IndexStore, who: Identity, event_id: str, *, limit: int = 10, embedder: Any | None = None
) -> list[Related]:
    """Events related to ``event_id``: linked (either way), about the same
    subject, similar text, and -- with the ``semantic`` extra -- close in
    meaning.  Only what ``who`` may read, the event itself left out."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}")
    me = _doc(store, who, event_id)
    rowid, subject, title, text = me[0], me[7], me[9], me[10]
    found: dict[str, Related] = {}

    def add(row: Any, score: float, why: str) -> None:
        if row[1] == event_id or not can_read_event(who, row[2], row[7]):
            return
        r = found.get(row[1])
        if r is None:
            r = found[row[1]] = Related(**_fields(row), score=0.0)
        r.score += score
        if why not in r.why:
            r.why.append(why)

    for row in store.query(
        f"SELECT {_COLS}, l.rel FROM links l JOIN docs d ON d.id = l.target WHERE l.doc = ?", (rowid,)
    ):
        add(row, 3.0, f"link:{row[10]}")
    for row in store.query(
        f"SELECT {_COLS}, l.rel FROM links l JOIN docs d ON d.rowid = l.doc WHERE l.target = ?", (event_id,)
    ):
        add(row, 3.0, f"link:{row[10]}")
    if subject:
        for row in store.query(
            f"SELECT {_COLS} FROM docs d WHERE d.subject = ? ORDER BY d.time_ms DESC LIMIT ?",
            (subject, limit * 4),
        ):
            add(row, 1.0, "same subject")
    words = _significant(title, text)
    if words:
        q = " OR ".join(_quote(w) for w in words)
        rows = store.query(
            f"SELECT {_COLS}, bm25(fts, 4.0, 1.0, 0.0) AS score FROM fts JOIN docs d ON d.rowid = fts.rowid "
            "WHERE fts MATCH ? ORDER BY score LIMIT ?",
            (q, limit * 4),
        )
        best = min((float(r[10]) for r in rows), default=-1.0) or -1.0
        for row in rows:
            add(row, float(row[10]) / best, "similar text")  # 1.0 for the best, less for the rest
    if embedder is not None:
        from .semantic import neighbours

        for row, sim in neighbours(store, who, rowid, limit * 2):
            add(row, 2.0 * sim, "semantic")
    ranked = sorted(found.values(), key=lambda r: (-r.score, r.id))
    return ranked[:limit]
