"""Web: RSS / Atom feeds (feedparser) and single pages (title, description, OpenGraph, canonical URL).

Every feed entry and every page is a ``creative.metadata.webpage`` event.
Ids come from the entry's own id (or link) and its ``updated`` stamp, and from
a page's URL and the hash of what was extracted, so re-reading an unchanged
feed or page adds nothing and a revised one adds a revision.

    FeedSource(["https://github.com/gulpjs/gulp/releases.atom", Path("saved.rss")])
    PageSource(["https://example.org/post", Path("saved.html")])

URLs are fetched within ``FetchLimits`` (``_fetch``): public addresses only
(``allow_private`` opts out), a body cap (5 MiB), one deadline per URL
(30 s); a file is read up to the same cap.

A feed that is not well-formed (truncated) still gives the entries parsed
before the break, minus the last one, which may be cut: that one is an
ItemError saying so.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import html
import io
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from ..origins import source_id
from ..schemas import Webpage
from . import _charsets as charsets
from ._fetch import FetchLimits, FetchRefused, fetch, guarded_client
from ._files import read_bounded
from .base import Item, ItemError, Principals, find_refs, make_event, with_mapped

try:
    import feedparser
    from bs4 import BeautifulSoup
    from bs4.exceptions import ParserRejectedMarkup
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('The feed and page sources need: pip install "creative-hub[sources]"') from e

__all__ = ["FeedSource", "PageSource", "parse_feed", "parse_page"]

FEEDS = "feeds"  # the source principal that writes (and signs) feed entries
WEB = "web"  # ... and single pages
MAX_DESCRIPTION = 2000  # characters of an entry's summary kept as its description
USER_AGENT = "creative-hub (+https://github.com/creative-hub)"


def _plain(markup: str | None) -> str | None:
    if not markup:
        return None
    try:
        text = BeautifulSoup(markup, "html.parser").get_text(" ")
    except ParserRejectedMarkup:  # markup html.parser gives up on: drop the tags by hand
        text = re.sub(r"<[^>]*>", " ", markup)
    text = re.sub(r"\s+", " ", html.unescape(text)).strip()
    return text[:MAX_DESCRIPTION] or None


def _when(parsed: Any) -> datetime | None:
    # feedparser normalises every date it understands to a UTC struct_time.
    if not parsed:
        return None
    y, mo, d, h, mi, s = parsed[:6]
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def _leading_space_dropped(raw: bytes) -> bytes:
    """The document without whitespace before its first ``<`` (after a UTF-8 BOM): feeds
    written by templates often start with a newline, which XML forbids before
    ``<?xml ...?>``, and feedparser then calls the whole feed not well-formed."""
    bom = codecs.BOM_UTF8 if raw.startswith(codecs.BOM_UTF8) else b""
    body = raw[len(bom) :]
    rest = body.lstrip(b" \t\r\n")
    return bom + rest if rest is not body and rest.startswith(b"<") else raw


def parse_feed(raw: bytes, where: str, principals: Principals | None = None) -> Iterator[Item]:
    """Webpage events of a feed document's entries, in document order."""
    principals = principals or Principals()
    raw = _leading_space_dropped(raw)
    try:
        # A stream, not bytes: given bytes, feedparser first tries them as a local file name.
        d = feedparser.parse(io.BytesIO(raw))
    except Exception as e:  # feedparser is lenient; this is its own failure on hostile bytes
        yield ItemError(where, f"not a feed: {type(e).__name__}: {e}")
        return
    entries = list(d.entries)
    broken = bool(d.bozo) and not isinstance(d.get("bozo_exception"), feedparser.CharacterEncodingOverride)
    if broken and not entries:
        yield ItemError(where, f"not a feed: {d.get('bozo_exception')}")
        return
    if broken:
        cut = entries.pop()
    feed_title = d.feed.get("title")
    # RSS channel <managingEditor> / <dc:creator>, Atom feed-level <author>: whoever wrote
    # the feed wrote the entries that name nobody (RFC 4287 4.2.1).
    feed_author = d.feed.get("author")
    remote = where.startswith(("http://", "https://"))
    base = d.feed.get("link") or (where if remote else "")
    # The feed as it names itself (its id, its link), else its URL: never a file's path,
    # so a saved copy anywhere is the same feed.
    feed = d.feed.get("id") or d.feed.get("link") or (where if remote else None)
    for n, entry in enumerate(entries, 1):
        if not entry.get("author") and isinstance(feed_author, str) and feed_author.strip():
            entry["author"] = feed_author
        yield _entry(entry, f"{where}#{n}", feed, base, feed_title, principals)
    if broken:
        yield ItemError(
            f"{where}#{len(entries) + 1}",
            f"the feed is not well-formed ({d.get('bozo_exception')}); entry "
            f"{cut.get('title', '?')!r} was left out since it may be cut short",
        )


def _entry(
    entry: Any, ref: str, feed: str | None, base: str, feed_title: str | None, principals: Principals
) -> Item:
    link = entry.get("link")
    if not link:
        return ItemError(ref, f"entry {entry.get('title', '?')!r} has no link")
    url = _join(base, link) if base else link
    if url is None:
        return ItemError(ref, f"entry link {link!r} is not a URL")
    key = entry.get("id") or url
    # An entry a planet or digest carries names the feed it came from (Atom's <source>,
    # RSS's <source url>): it is that feed's entry, the same event as the original's.
    origin = entry.get("source") or {}
    origin_feed = origin.get("id") or origin.get("href") or origin.get("link")
    if isinstance(origin_feed, str) and origin_feed:
        feed, feed_title = origin_feed, origin.get("title") or feed_title
    # dict.get: feedparser's own get("updated*") maps to "published*" with a DeprecationWarning.
    revision = dict.get(entry, "updated") or entry.get("published") or ""
    published = _when(entry.get("published_parsed")) or _when(dict.get(entry, "updated_parsed"))
    summary = _plain(entry.get("summary"))
    extra: dict[str, Any] = {"entry_id": key}
    tags = [t.get("term") for t in entry.get("tags") or [] if t.get("term")]
    if tags:
        extra["tags"] = tags
    if entry.get("author"):
        extra["author"] = entry["author"]
    links = find_refs(" ".join(filter(None, [entry.get("title"), summary])))
    if links:
        extra["links"] = links
    with_mapped(extra, principals, entry.get("author"))
    data = Webpage(
        url=url,
        title=entry.get("title"),
        description=summary,
        site_name=feed_title,
        published=published,
        feed=feed,
        extra=extra,
    )
    return make_event(
        "creative.metadata.webpage",
        # The entry as its feed carries it: the same entry id in another feed (that does not
        # name it as its origin) is another event, not a "change at the source".
        id=source_id("feeds", feed or "", key, revision),
        source=f"feed:{feed}" if feed else FEEDS,
        subject=url,
        data=data,
        creator=FEEDS,  # the author is a claim of the feed: data.extra.author, never the writer
        time=published,
    )


def parse_page(raw: bytes, url: str, principals: Principals | None = None, *, saved: bool = False) -> Item:
    """The webpage event of one HTML document fetched from (or saved for) ``url``.

    ``saved``: ``url`` is only where a saved copy lies (a ``file:`` URI); the
    page is then known by the URL it names as canonical (or ``og:url``), else
    by its content, never by the file's path."""
    principals = principals or Principals()
    try:
        soup = BeautifulSoup(_html_text(raw), "html.parser")
    except ParserRejectedMarkup as e:
        return ItemError(url, f"not an HTML page the parser can read: {e}")

    def meta(*names: str) -> str | None:
        for name in names:
            tag = soup.find("meta", attrs={"property": name}) or soup.find("meta", attrs={"name": name})
            content = tag.get("content") if tag is not None else None
            if isinstance(content, str) and content.strip():
                return content.strip()
        return None

    title_tag = soup.find("title")
    title = meta("og:title", "twitter:title") or (title_tag.get_text(" ", strip=True) if title_tag else None)
    canonical_tag = soup.find("link", rel="canonical")
    href = canonical_tag.get("href") if canonical_tag is not None else None
    canonical = (_join(url, href) if isinstance(href, str) and href else None) or meta("og:url")
    if not (title or canonical or meta("description", "og:description")):
        return ItemError(url, "no title, description or canonical URL: not an HTML page?")
    if saved:
        named = meta("og:url") or (href if isinstance(href, str) and re.match(r"^https?://", href) else None)
        canonical = named
        url = named or f"urn:sha256:{hashlib.sha256(raw).hexdigest()}"
    published = None
    stamp = meta("article:published_time", "og:published_time", "date")
    if stamp:
        try:
            published = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            if published.tzinfo is None:
                published = published.replace(tzinfo=UTC)
        except ValueError:
            published = None
    image = meta("og:image", "twitter:image")
    if saved and image and not re.match(r"^https?://", image) and not canonical:
        image = None  # relative to where the copy lies: nothing to resolve it against
    data = Webpage(
        url=url,
        title=title,
        description=meta("og:description", "description", "twitter:description"),
        canonical_url=canonical,
        site_name=meta("og:site_name"),
        image=_join(url, image) if image else None,
        published=published,
        extra={k: v for k, v in {"type": meta("og:type"), "author": meta("author")}.items() if v},
    )
    # Same page, same extracted metadata -> same id; a revised page is a new revision.
    fingerprint = hashlib.sha256(json.dumps(_struct(data), sort_keys=True).encode()).hexdigest()[:16]
    with_mapped(data.extra, principals, meta("author"))
    return make_event(
        "creative.metadata.webpage",
        id=source_id("web", canonical or url, fingerprint),
        source=WEB,
        subject=canonical or url,
        data=data,
        creator=WEB,  # the author is a claim of the page: data.extra.author, never the writer
        time=published,
    )


_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)


def _html_text(raw: bytes) -> str | bytes:
    """A page's text in the charset its ``<meta>`` declares, read as browsers read the label
    (``shift_jis`` as CP932, ``iso-8859-1`` as Windows-1252: ``_charsets``); with a BOM, no
    declaration or one that does not fit, the bytes, for BeautifulSoup to detect."""
    declared = _META_CHARSET.search(raw[:4096])
    if declared is None or raw.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw
    try:
        return charsets.decode(raw, declared.group(1).decode("ascii"))
    except (LookupError, UnicodeDecodeError):
        return raw


def _join(base: str, link: str) -> str | None:
    """``link`` resolved against ``base``; None if either is no URL (``http://[::1`` raises)."""
    try:
        return urljoin(base, link)
    except ValueError:
        return None


def _struct(data: Webpage) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = msgspec.to_builtins(data)
    return out


async def _read(
    target: str | Path, client: httpx.AsyncClient, limits: FetchLimits
) -> tuple[str, bytes] | ItemError:
    """(url or path, body) of a URL fetched within ``limits``, or of a local file (as capped)."""
    if isinstance(target, Path) or not re.match(r"^https?://", str(target)):
        path = Path(target)
        try:
            return path.resolve().as_uri(), read_bounded(path, limits.max_bytes)
        except OSError as e:
            hint = " (--max-bytes raises it)" if e.errno == errno.EFBIG else ""
            return ItemError(str(target), f"cannot read: {e.strerror}{hint}")
    try:
        return await fetch(client, str(target), limits, {"User-Agent": USER_AGENT})
    except FetchRefused as e:
        return ItemError(str(target), str(e))


class _Fetched:
    """A source that reads URLs (through the address-checked client) or saved files."""

    def __init__(
        self,
        targets: Sequence[str | Path],
        *,
        principals: Principals | None = None,
        client: httpx.AsyncClient | None = None,
        limits: FetchLimits | None = None,
    ) -> None:
        self.targets = list(targets)
        self.principals = principals or Principals()
        self.client = client  #: only for tests that bring their own transport: it skips the address check
        self.limits = limits or FetchLimits()

    def checkpoint(self) -> None:
        """Stateless: ids make re-runs safe."""

    async def iter_items(self) -> AsyncIterator[Item]:
        """The items of every target, in order; one that cannot be read is an ItemError."""
        client = self.client or guarded_client(self.limits)
        try:
            for target in self.targets:
                got = await _read(target, client, self.limits)
                if isinstance(got, ItemError):
                    yield got
                    continue
                for item in self._parse(target, *got):
                    yield item
        finally:
            if self.client is None:
                await client.aclose()

    def _parse(self, target: str | Path, url: str, body: bytes) -> Iterable[Item]:
        """The items of one target read from ``url`` (a file: URI for a file)."""
        raise NotImplementedError


class FeedSource(_Fetched):
    """Entries of RSS / Atom feeds, from URLs or files."""

    name = "feed"

    def _parse(self, target: str | Path, url: str, body: bytes) -> Iterable[Item]:
        return parse_feed(body, str(target) if isinstance(target, Path) else url, self.principals)


class PageSource(_Fetched):
    """Single web pages, from URLs or saved HTML files: one event per page."""

    name = "page"

    def _parse(self, target: str | Path, url: str, body: bytes) -> Iterable[Item]:
        saved = isinstance(target, Path) or not re.match(r"^https?://", str(target))
        return [parse_page(body, url, self.principals, saved=saved)]
