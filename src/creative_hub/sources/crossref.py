"""CrossRef: works by DOI or by query from the REST API, or from saved JSON responses.

Each work becomes a ``creative.metadata.paper`` event with the id
``doi_paper_id(doi)``, so anything that names the DOI (a commit message, a
BibTeX entry, an arXiv record) links to it.  The work's references that carry
a DOI become ``cites`` links.

    CrossrefSource(dois=["10.1371/journal.pone.0033693"], mailto="me@example.org")
    CrossrefSource(query="methylphenidate microglia", rows=20)
    CrossrefSource(files=[Path("work.json")])               # offline
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import ValidationError
from ..schemas import Paper
from ._fetch import API_LIMITS, FetchLimits, FetchRefused, api_get
from ._files import read_bounded
from .base import (
    Item,
    ItemError,
    Principals,
    checked,
    doi_paper_id,
    link,
    normalize_doi,
    paper_event,
)

__all__ = ["API_URL", "CrossrefSource", "parse_response", "work_event"]

API_URL = "https://api.crossref.org"
CROSSREF = "crossref"  # the source principal that writes (and signs) CrossRef works
MAX_CITES = 500  # reference links kept per work (review articles cite thousands)


def parse_response(raw: bytes, where: str, principals: Principals | None = None) -> Iterator[Item]:
    """Paper events from a ``/works/{doi}`` or ``/works?query=`` response body."""
    principals = principals or Principals()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        yield ItemError(where, f"not valid JSON: {e}")
        return
    except RecursionError:  # "[[[[..." twenty thousand deep: no response is shaped like that
        yield ItemError(where, "not valid JSON: nested too deeply")
        return
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        yield ItemError(where, "not a CrossRef response (no 'message' object)")
        return
    message = body["message"]
    if body.get("message-type") == "work-list":
        items = message.get("items") or []
        if not isinstance(items, list):
            yield ItemError(where, f"a work-list's items must be a list, got {type(items).__name__}")
            return
        for i, work in enumerate(items, 1):
            yield work_event(work, f"{where}#{i}", principals)
    else:
        yield work_event(message, where, principals)


def _date(work: dict[str, Any]) -> tuple[str | None, datetime | None]:
    for key in ("published", "published-print", "published-online", "issued", "created"):
        parts = (work.get(key) or {}).get("date-parts") or [[]]
        p = [int(x) for x in parts[0] if isinstance(x, int)] if parts and parts[0] else []
        if p:
            text = "-".join(f"{x:02d}" if i else str(x) for i, x in enumerate(p))
            when = datetime(p[0], p[1] if len(p) > 1 else 1, p[2] if len(p) > 2 else 1, tzinfo=UTC)
            return text, when
    return None, None


def _author(a: dict[str, Any]) -> str | None:
    name = " ".join(x for x in (a.get("given"), a.get("family")) if isinstance(x, str) and x)
    return name or (a.get("name") if isinstance(a.get("name"), str) else None)


def work_event(work: Any, ref: str, principals: Principals) -> Item:
    """One CrossRef work object as a paper event (or why not)."""
    try:
        return checked(_work_event(work, ref, principals), ref)
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # a field of the wrong shape or range
        return ItemError(ref, f"malformed CrossRef work ({type(e).__name__}: {e})")


def _work_event(work: Any, ref: str, principals: Principals) -> Item:
    if not isinstance(work, dict):
        return ItemError(ref, f"work must be an object, got {type(work).__name__}")
    doi = work.get("DOI")
    titles = [t for t in work.get("title") or [] if isinstance(t, str) and t.strip()]
    if not isinstance(doi, str) or not doi:
        return ItemError(ref, "work has no DOI")
    if not titles:
        return ItemError(ref, f"work {doi} has no title")
    doi = normalize_doi(doi)
    authors = [n for a in work.get("author") or [] if isinstance(a, dict) and (n := _author(a))]
    published, when = _date(work)
    abstract = work.get("abstract")
    if isinstance(abstract, str):
        # JATS markup (<jats:p>...) is not part of the text.
        abstract = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", abstract)).strip()
    cites = [
        link("cites", doi_paper_id(r["DOI"]), f"doi:{normalize_doi(r['DOI'])}")
        for r in work.get("reference") or []
        if isinstance(r, dict) and isinstance(r.get("DOI"), str)
    ]
    extra: dict[str, Any] = {
        k: work[k]
        for k in ("type", "publisher", "volume", "issue", "page", "ISSN", "subject", "is-referenced-by-count")
        if work.get(k) not in (None, [], "")
    }
    if len(cites) > MAX_CITES:
        extra["cites_total"] = len(cites)
    if cites:
        extra["links"] = cites[:MAX_CITES]
    venue = next((v for v in work.get("container-title") or [] if isinstance(v, str)), None)
    data = Paper(
        title=re.sub(r"\s+", " ", titles[0]).strip(),
        authors=authors,
        doi=doi,
        abstract=abstract if isinstance(abstract, str) and abstract else None,
        published=published,
        venue=venue,
        url=work.get("URL") if isinstance(work.get("URL"), str) else f"https://doi.org/{doi}",
        extra=extra,
    )
    return paper_event(
        data,
        id=doi_paper_id(doi),
        writer=CROSSREF,
        subject=f"doi:{doi}",
        time=when,
        principals=principals,
        claims=authors,
    )


class CrossrefSource:
    """Works from the CrossRef REST API or from saved responses."""

    name = "crossref"

    def __init__(
        self,
        *,
        dois: Sequence[str] = (),
        query: str | None = None,
        rows: int = 20,
        files: Sequence[Path] = (),
        mailto: str | None = None,
        principals: Principals | None = None,
        api_url: str = API_URL,
        client: httpx.AsyncClient | None = None,
        limits: FetchLimits = API_LIMITS,
    ) -> None:
        if not (dois or query or files):
            raise ValidationError("crossref", "give DOIs, a query or files")
        self.dois = [normalize_doi(d) for d in dois]
        self.query = query
        self.rows = rows
        self.files = list(files)
        self.mailto = mailto
        self.principals = principals or Principals()
        self.api_url = api_url.rstrip("/")
        self.client = client
        self.limits = limits  #: each API answer's size and time

    async def iter_items(self) -> AsyncIterator[Item]:
        """Works from the files, then each DOI, then the query."""
        for path in self.files:
            try:
                raw = read_bounded(Path(path))
            except OSError as e:
                yield ItemError(str(path), f"cannot read: {e.strerror}")
                continue
            for item in parse_response(raw, str(path), self.principals):
                yield item
        if not (self.dois or self.query):
            return
        # CrossRef's "polite pool" wants a contact address in the User-Agent / mailto.
        headers = {"User-Agent": "creative-hub" + (f" (mailto:{self.mailto})" if self.mailto else "")}
        client = self.client or httpx.AsyncClient(timeout=60, follow_redirects=True)
        try:
            requests: list[tuple[str, dict[str, str]]] = [
                (f"{self.api_url}/works/{quote(d, safe='/')}", {}) for d in self.dois
            ]
            if self.query:
                requests.append((f"{self.api_url}/works", {"query": self.query, "rows": str(self.rows)}))
            for url, params in requests:
                try:
                    answer = await api_get(client, url, self.limits, params=params, headers=headers)
                except FetchRefused as e:
                    yield ItemError(url, str(e))
                    continue
                status, body = answer.status_code, answer.content
                if status == 404:
                    yield ItemError(url, "no such DOI at CrossRef (404)")
                    continue
                if status != 200:
                    yield ItemError(url, f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
                    continue
                for item in parse_response(body, url, self.principals):
                    yield item
        finally:
            if self.client is None:
                await client.aclose()

    def checkpoint(self) -> None:
        """Stateless: ids make re-runs safe."""
