"""arXiv: papers from the arXiv API (Atom) by query or id list, or from saved responses.

Each entry becomes a ``creative.metadata.paper`` event whose id comes from the
arXiv id without its version (``arxiv_paper_id``), so a commit message naming
``arXiv:cond-mat/0603029`` links to it, and every version is one paper.

    ArxivSource(query="au:del_maestro AND ti:checkerboard")
    ArxivSource(ids=["cond-mat/0603029", "2101.00001"])
    ArxivSource(files=[Path("saved.xml")])             # offline

The response is parsed incrementally, so a truncated document still yields
every entry that arrived whole, then one error for the rest.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import httpx

from ..errors import ValidationError
from ..schemas import Paper
from ._fetch import API_LIMITS, FetchLimits, FetchRefused, api_get
from ._files import read_bounded
from .base import (
    Item,
    ItemError,
    Principals,
    arxiv_paper_id,
    doi_link,
    normalize_arxiv_id,
    paper_event,
)

__all__ = ["API_URL", "PAGE_DELAY", "ArxivSource", "parse_feed"]

API_URL = "https://export.arxiv.org/api/query"
PAGE_SIZE = 100  # entries per API call
PAGE_DELAY = 3.0  # seconds between calls: arXiv's API terms ask for one request every 3 s
ARXIV = "arxiv"  # the source principal that writes (and signs) arXiv papers
_A = "{http://www.w3.org/2005/Atom}"
_X = "{http://arxiv.org/schemas/atom}"
_OS = "{http://a9.com/-/spec/opensearch/1.1/}"


def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return re.sub(r"\s+", " ", el.text).strip() or None


def parse_feed(data: bytes, where: str, principals: Principals | None = None) -> Iterator[Item]:
    """Paper events from one Atom response; a broken document ends with an ItemError."""
    principals = principals or Principals()
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
    n = 0
    try:
        # Fed in slices so entries parsed before a truncation are not lost.
        for i in range(0, len(data), 65536):
            parser.feed(data[i : i + 65536])
            for el in _ended(parser):
                if el.tag == f"{_A}entry":
                    n += 1
                    yield _entry(el, f"{where}#{n}", principals)
                    el.clear()
        parser.close()
        for el in _ended(parser):
            if el.tag == f"{_A}entry":
                n += 1
                yield _entry(el, f"{where}#{n}", principals)
    except (ET.ParseError, LookupError) as e:  # LookupError: an XML declaration naming no known encoding
        yield ItemError(where, f"not a complete arXiv Atom document after {n} entries: {e}")


def _ended(parser: ET.XMLPullParser[ET.Element]) -> Iterator[ET.Element]:
    """Elements whose end tag the parser has seen (only "end" events are asked for)."""
    for event in parser.read_events():
        _, el = cast(tuple[str, object], event)  # typeshed's union covers start-ns events too
        if isinstance(el, ET.Element):
            yield el


def _entry(el: ET.Element, ref: str, principals: Principals) -> Item:
    raw_id = _text(el.find(f"{_A}id"))
    title = _text(el.find(f"{_A}title"))
    if raw_id is None or title is None:
        # The API reports errors as an entry without a paper (title "Error").
        summary = _text(el.find(f"{_A}summary")) or "entry has no id or title"
        return ItemError(ref, f"arXiv entry without a paper: {summary}")
    if title == "Error":
        return ItemError(ref, f"arXiv API error: {_text(el.find(f'{_A}summary'))}")
    arxiv_id = normalize_arxiv_id(raw_id)
    version = re.search(r"v(\d+)$", raw_id)
    authors = [n for a in el.findall(f"{_A}author") if (n := _text(a.find(f"{_A}name")))]
    doi = _text(el.find(f"{_X}doi"))
    published = _text(el.find(f"{_A}published"))
    when = None
    if published:
        try:
            when = datetime.fromisoformat(published.replace("Z", "+00:00"))
        except ValueError:
            return ItemError(ref, f"published {published!r} is not a date")
        if when.tzinfo is None:  # arXiv's times are UTC
            when = when.replace(tzinfo=UTC)
    url = pdf = None
    for ln in el.findall(f"{_A}link"):
        if ln.get("rel") == "alternate":
            url = ln.get("href")
        elif ln.get("title") == "pdf":
            pdf = ln.get("href")
    primary = el.find(f"{_X}primary_category")
    extra: dict[str, object] = {
        "categories": [c.get("term") for c in el.findall(f"{_A}category") if c.get("term")],
    }
    if primary is not None and primary.get("term"):
        extra["primary_category"] = primary.get("term")
    if version:
        extra["version"] = int(version.group(1))
    for key, tag in (("comment", "comment"), ("updated", None)):
        value = _text(el.find(f"{_X}{tag}")) if tag else _text(el.find(f"{_A}updated"))
        if value:
            extra[key] = value
    if pdf:
        extra["pdf"] = pdf
    if doi:
        extra["links"] = [doi_link("same-as", doi)]
    data = Paper(
        title=title,
        authors=authors,
        arxiv_id=arxiv_id,
        doi=doi,
        abstract=_text(el.find(f"{_A}summary")),
        published=when.date().isoformat() if when else None,
        venue=_text(el.find(f"{_X}journal_ref")),
        url=url,
        extra=extra,
    )
    return paper_event(
        data,
        id=arxiv_paper_id(arxiv_id),
        writer=ARXIV,
        subject=f"arXiv:{arxiv_id}",
        time=when,
        principals=principals,
        claims=authors,
    )


class ArxivSource:
    """Papers from the arXiv API or from saved Atom responses."""

    name = "arxiv"

    def __init__(
        self,
        *,
        query: str | None = None,
        ids: Sequence[str] = (),
        files: Sequence[Path] = (),
        max_results: int = 100,
        principals: Principals | None = None,
        api_url: str = API_URL,
        client: httpx.AsyncClient | None = None,
        page_delay: float = PAGE_DELAY,
        limits: FetchLimits = API_LIMITS,
    ) -> None:
        if not (query or ids or files):
            raise ValidationError("arxiv", "give a query, ids or files")
        self.query = query
        self.ids = [normalize_arxiv_id(i) for i in ids]
        self.files = list(files)
        self.max_results = max_results
        self.principals = principals or Principals()
        self.api_url = api_url
        self.client = client
        self.page_delay = page_delay
        self.limits = limits  #: each API answer's size and time

    async def iter_items(self) -> AsyncIterator[Item]:
        """Entries of every file, then of every API page."""
        for path in self.files:
            try:
                data = read_bounded(Path(path))
            except OSError as e:
                yield ItemError(str(path), f"cannot read: {e.strerror}")
                continue
            for item in parse_feed(data, str(path), self.principals):
                yield item
        if self.query or self.ids:
            async for item in self._fetch():
                yield item

    async def _fetch(self) -> AsyncIterator[Item]:
        client = self.client or httpx.AsyncClient(timeout=60, follow_redirects=True)
        try:
            start = 0
            while start < self.max_results:
                params = {"start": str(start), "max_results": str(min(PAGE_SIZE, self.max_results - start))}
                if self.query:
                    params["search_query"] = self.query
                if self.ids:
                    params["id_list"] = ",".join(self.ids)
                ref = f"{self.api_url}?start={start}"
                try:
                    answer = await api_get(client, self.api_url, self.limits, params=params)
                except FetchRefused as e:
                    yield ItemError(ref, str(e))
                    return
                status, body = answer.status_code, answer.content
                if status != 200:
                    yield ItemError(ref, f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
                    return
                entries = 0
                for item in parse_feed(body, ref, self.principals):
                    entries += 1
                    yield item
                total = _total(body)
                start += PAGE_SIZE
                if entries == 0 or self.ids or (total is not None and start >= total):
                    return
                await asyncio.sleep(self.page_delay)
        finally:
            if self.client is None:
                await client.aclose()

    def checkpoint(self) -> None:
        """Stateless: ids make re-runs safe."""


def _total(data: bytes) -> int | None:
    m = re.search(rb"<opensearch:totalResults[^>]*>(\d+)<", data)
    return int(m.group(1)) if m else None
