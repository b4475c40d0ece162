"""The source contract: a Source yields events, or a per-item error, and never stops a batch.

Every connector (git, GitHub, arXiv, mail, ...) is one module with one class
that satisfies ``Source``.  The pieces they share live here:

- ``ItemError``: an item the source could not turn into an event, with why;
- ``Principals``: login / e-mail -> principal, configurable, a slug by default;
- ``make_event``: the shared-hub, public event with a derived id;
- the ids other sources derive (``paper_id_for_doi`` ...) and ``find_refs``,
  so a commit message naming ``arXiv:2101.00001`` links to the paper event
  the arXiv connector would publish.

    async for item in source.iter_items():
        if isinstance(item, ItemError): print(item)
        else: await hub.publish(item)
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote

import msgspec
from anyascii import anyascii

from ..errors import ValidationError
from ..event import Event
from ..origins import source_id
from ..schemas import Paper, Payload

__all__ = [
    "Item",
    "ItemError",
    "Principals",
    "Source",
    "arxiv_link",
    "arxiv_paper_id",
    "checked",
    "commit_id",
    "doi_link",
    "doi_paper_id",
    "find_refs",
    "link",
    "make_event",
    "paper_event",
    "normalize_arxiv_id",
    "normalize_doi",
    "slug",
    "source_id",
    "with_mapped",
]


@dataclass(frozen=True, slots=True)
class ItemError:
    """One input the source could not use; the rest of the batch goes on."""

    ref: str  #: which item: a path, "file.mbox#3", a URL, an entry key
    reason: str  #: what was wrong, in words a person can act on

    def __str__(self) -> str:
        return f"{self.ref}: {self.reason}"


Item = Event | ItemError


@runtime_checkable
class Source(Protocol):
    """Something that turns outside material into events.

    ``iter_items`` yields, in source order, an ``Event`` per thing found (its
    id derived from the source's own ids, so a re-run yields the same ids) or
    an ``ItemError`` for a thing it could not read.  It raises only when the
    source as a whole is unusable (no such repository, server refuses login).
    """

    name: str  #: what shows in progress bars and summaries ("git", "arxiv", ...)

    def iter_items(self) -> AsyncIterator[Item]:
        """Events and per-item errors, in source order."""
        ...

    def checkpoint(self) -> None:
        """Called after everything yielded so far is stored: save incremental
        state (the last IMAP UID, the last ETag).  A no-op for stateless sources."""
        ...


# -- principals ----------------------------------------------------------------
_SLUG = re.compile(r"[^a-z0-9_-]+")


def slug(text: str) -> str:
    """``Hervé Boutemy`` -> ``herve-boutemy``; ``alice@example.org`` -> ``alice-example-org``.

    Letters outside ASCII are transliterated (anyascii: ``Boström`` -> ``bostrom``,
    ``Rogério`` -> ``rogerio``, ``北京`` -> ``beijing``), never dropped.  The
    result is a valid principal / peer id (a-z, 0-9, ``_``, ``-``; at most 64).
    """
    s = _SLUG.sub("-", anyascii(text).strip().lower()).strip("-_")
    return (s or "unknown")[:64]


class Principals:
    """Who a login or an e-mail address is in this hub.

    Principals({"octocat": "alice", "bob@example.org": "bob"})
    Principals.load("people.toml", extra=["mona=carol"])   # file + --map options
    p.principal("Octocat", "octo@github.com")              # first mapped key wins, else a slug

    Keys are matched case-insensitively against a login, an e-mail address or
    a name, in the order given.  Unmapped people get ``slug()`` of the first
    non-empty key, so the default needs no configuration and is stable.
    """

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = {k.strip().lower(): v for k, v in (mapping or {}).items()}

    @classmethod
    def load(cls, path: Path | str | None = None, extra: Iterable[str] = ()) -> Principals:
        """From a TOML or JSON file (``login = "principal"`` pairs, optionally
        under ``[principals]``) and ``login=principal`` strings; the strings win."""
        mapping: dict[str, str] = {}
        if path is not None:
            p = Path(path)
            try:
                text = p.read_text(encoding="utf-8")
                data: Any = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
            except (OSError, ValueError) as e:
                raise ValidationError("map", f"{p}: cannot read the principal map ({e})") from None
            if isinstance(data, dict) and isinstance(data.get("principals"), dict):
                data = data["principals"]
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise ValidationError("map", f"{p}: must map names to principal strings")
            mapping.update(data)
        for pair in extra:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ValidationError("map", f"{pair!r} is not login=principal")
            mapping[key.strip()] = value.strip()
        return cls(mapping)

    def principal(self, *keys: str | None) -> str:
        """The principal for the first key that is mapped, else a slug of the first key."""
        present = [k for k in keys if k and k.strip()]
        for k in present:
            found = self.mapping.get(k.strip().lower())
            if found:
                return found
        return slug(present[0]) if present else "unknown"

    def mapped(self, *keys: str | None) -> list[dict[str, str]]:
        """What the explicit mapping says about the names ``keys`` (authors, logins,
        e-mail addresses a source found): ``[{"claim": key, "principal": p}, ...]``
        for each one mapped, in order, once each.

        This is what a source records in ``extra["mapped"]``: a mapping never
        makes a claimed author the ``creator`` (see ``creative_hub.origins``);
        the event stays written and signed by whoever ingested it."""
        out: list[dict[str, str]] = []
        seen: set[str] = set()
        for k in keys:
            if not k or not k.strip() or k.strip().lower() in seen:
                continue
            seen.add(k.strip().lower())
            found = self.mapping.get(k.strip().lower())
            if found:
                out.append({"claim": k.strip(), "principal": found})
        return out

    def targets(self) -> set[str]:
        """Every principal the mapping names."""
        return set(self.mapping.values())

    def __repr__(self) -> str:
        return f"Principals({len(self.mapping)} mapped)"


# -- cross-links ---------------------------------------------------------------
_NEW_ARXIV = r"\d{4}\.\d{4,5}"
_OLD_ARXIV = r"[a-z][a-z.-]+(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_IN_TEXT = re.compile(
    rf"(?:arxiv:\s*|arxiv\.org/(?:abs|pdf)/)({_NEW_ARXIV}|{_OLD_ARXIV})(v\d+)?", re.IGNORECASE
)
_DOI_IN_TEXT = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.IGNORECASE)


def normalize_arxiv_id(text: str) -> str:
    """``http://arxiv.org/abs/cond-mat/0603029v1`` -> ``cond-mat/0603029`` (no version)."""
    t = text.strip()
    t = re.sub(r"^(?:https?://(?:export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:)", "", t, flags=re.IGNORECASE)
    t = re.sub(r"\.pdf$", "", t)
    return re.sub(r"v\d+$", "", t)


_DOI_PREFIX = re.compile(
    r"^(?:(?:info:doi/|urn:doi:|doi:)\s*|(?:https?://|(?!10\.))[^/\s]+/(?:doi/(?:abs/|full/|pdf/)?)?)(?=10\.)",
    re.IGNORECASE,
)


def normalize_doi(text: str) -> str:
    """``https://doi.org/10.1371/JOURNAL.pone.0033693`` -> ``10.1371/journal.pone.0033693``.

    Any resolver URL whose path is the DOI (doi.org, dx.doi.org, doi.acm.org,
    ``https://dl.acm.org/doi/10...``; with or without its scheme), a ``doi:``,
    ``info:doi/`` or ``urn:doi:`` prefix and %-escapes go;
    DOIs are case-insensitive, so the id derived from one is too."""
    t = unquote(text.strip())
    t = _DOI_PREFIX.sub("", t)
    return t.rstrip(".,;)]").lower()


def arxiv_paper_id(arxiv_id: str) -> str:
    """The event id the arXiv connector gives the paper with this arXiv id (any version)."""
    return source_id("arxiv", normalize_arxiv_id(arxiv_id))


def doi_paper_id(doi: str) -> str:
    """The event id the CrossRef connector gives the work with this DOI."""
    return source_id("doi", normalize_doi(doi))


def commit_id(sha: str) -> str:
    """The event id the git connector gives a commit (a sha names it in any clone)."""
    return source_id("git", "commit", sha.lower())


def with_mapped(extra: dict[str, Any], principals: Principals, *claims: str | None) -> dict[str, Any]:
    """``extra`` with ``"mapped"`` recording which claimed authors the ingest's
    explicit map resolved to principals (nothing added when none was)."""
    mapped = principals.mapped(*claims)
    if mapped:
        extra["mapped"] = mapped
    return extra


def link(rel: str, id: str, ref: str) -> dict[str, str]:
    """One entry of ``extra["links"]``: how it relates, the target event id, the human reference."""
    return {"rel": rel, "id": id, "ref": ref}


def doi_link(rel: str, doi: str) -> dict[str, str]:
    """A link to the paper with this DOI (``doi:<doi>``), by the id the CrossRef connector gives it."""
    return link(rel, doi_paper_id(doi), f"doi:{doi}")


def arxiv_link(rel: str, arxiv_id: str) -> dict[str, str]:
    """A link to the paper with this arXiv id (``arXiv:<id>``), by the id the arXiv connector gives it."""
    return link(rel, arxiv_paper_id(arxiv_id), f"arXiv:{arxiv_id}")


def find_refs(text: str, rel: str = "mentions") -> list[dict[str, str]]:
    """Links to the papers an arbitrary text names by arXiv id or DOI, in order, once each."""
    found: list[dict[str, str]] = []
    seen: set[str] = set()
    for m in _ARXIV_IN_TEXT.finditer(text):
        aid = m.group(1)
        if aid not in seen:
            seen.add(aid)
            found.append(arxiv_link(rel, aid))
    for m in _DOI_IN_TEXT.finditer(text):
        doi = normalize_doi(m.group(1))
        if doi not in seen:
            seen.add(doi)
            found.append(doi_link(rel, doi))
    return found


# -- events --------------------------------------------------------------------
def make_event(
    type: str,
    *,
    id: str,
    source: str,
    subject: str | None,
    data: Any,
    creator: str,
    time: datetime | None = None,
) -> Event:
    """An event for the shared hub, public, with a derived ``id``.

    ``time`` is when the thing happened at the source (a commit's date), so a
    re-run restamps nothing; without it the hub stamps the publish time.
    """
    if time is not None and time.tzinfo is None:
        raise ValidationError("time", f"must carry a timezone, got {time.isoformat()}")
    return Event(
        type=type,
        id=id,
        source=source,
        subject=subject,
        time=time,
        data=data,
        creator=creator,
        hub="shared",
        visibility="public",
    )


def paper_event(
    paper: Paper,
    *,
    id: str,
    writer: str,
    subject: str,
    time: datetime | None,
    principals: Principals,
    claims: Iterable[str | None],
) -> Event:
    """A paper a bibliographic source found, written by that source's principal
    (``writer``, also its ``source``): the authors are claims of the material, in
    ``data.authors`` and mapped in ``data.extra``, never the writer."""
    with_mapped(paper.extra, principals, *claims)
    return make_event(
        "creative.metadata.paper",
        id=id,
        source=writer,
        subject=subject,
        data=paper,
        creator=writer,
        time=time,
    )


def checked(item: Item, ref: str) -> Item:
    """``item``, or an ItemError when its payload breaks its schema.

    Payloads built in code are not validated by msgspec (nor by publish, which
    trusts a typed payload), so a field copied from outside input -- a webhook's
    commit id that is not hex, an array where a branch name goes -- is checked
    here, and the item is refused on its own.
    """
    if isinstance(item, ItemError) or not isinstance(item.data, Payload):
        return item
    try:
        msgspec.convert(msgspec.to_builtins(item.data), type(item.data))
        msgspec.json.encode(item.data)
    except UnicodeEncodeError:  # a lone surrogate, from a "\ud800" escape in the input's JSON
        return ItemError(ref, f"{item.type}: text that is not valid Unicode (a lone surrogate)")
    except ValueError as e:  # msgspec.ValidationError, or a payload's own __post_init__ check
        return ItemError(ref, f"{item.type}: the data does not fit its schema ({e})")
    return item
