"""BibTeX files: each entry a paper event, LaTeX accents and braces decoded.

Parsed with bibtexparser 2 (its LaTeX decoding middleware turns ``{\\'e}``
into ``é``).  An entry's id comes from its DOI when it has one, else from
its arXiv id, else from its citation key and title; it links ``same-as`` to
the events the CrossRef and arXiv connectors derive for the same DOI / id.
A block the parser cannot read is an ItemError with its line.

    BibtexSource([Path("refs.bib")], principals=Principals({"Renes, Joseph M.": "joe"}))
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..origins import source_id
from ..schemas import Paper
from ._files import FileSource
from .base import (
    Item,
    ItemError,
    Principals,
    arxiv_link,
    doi_link,
    normalize_arxiv_id,
    normalize_doi,
    paper_event,
)

try:
    import bibtexparser
    import bibtexparser.middlewares as mw
    from bibtexparser.middlewares.names import InvalidNameError, parse_single_name_into_parts
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('The BibTeX source needs: pip install "creative-hub[sources]"') from e

__all__ = ["BibtexSource", "parse_bibtex"]

# bibtexparser logs each failed block; we report them as ItemErrors instead.
logging.getLogger("bibtexparser").setLevel(logging.ERROR)

BIBTEX = "bibtex"  # the source principal that writes (and signs) BibTeX entries, and their `source`
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    # Double-braced titles ({{Title}}) keep their case protection as braces.
    text = re.sub(r"\s+", " ", value.replace("{", "").replace("}", "")).strip()
    return text or None


def _person(name: str) -> str | None:
    """``Renes, Joseph M.`` -> ``Joseph M. Renes``; ``Reagle, Jr., Joseph M.`` -> ``Joseph M. Reagle Jr.``.

    BibTeX's three name forms ("First von Last", "von Last, First", "von Last,
    Jr, First") split by bibtexparser; a braced name (``{Barnes and Noble, Inc.}``)
    stays whole."""
    try:
        parts = parse_single_name_into_parts(name.strip(), strict=False)
    except (InvalidNameError, ValueError, IndexError):
        return _clean(name)
    return _clean(" ".join([*parts.first, *parts.von, *parts.last, *parts.jr]))


def parse_bibtex(text: str, where: str, principals: Principals | None = None) -> Iterator[Item]:
    """Paper events from BibTeX text, in file order; unreadable blocks as ItemErrors."""
    principals = principals or Principals()
    library = bibtexparser.parse_string(  # type: ignore[attr-defined]
        _keyed(text), append_middleware=[mw.LatexDecodingMiddleware(), mw.SeparateCoAuthors()]
    )
    if not any(type(b).__name__ != "ImplicitComment" for b in library.blocks) and text.strip():
        # Nothing but free text: not BibTeX at all (a binary file, the wrong file named).
        what = "a binary file (NUL bytes)" if "\x00" in text else "text with no @type{key, ...} entry"
        yield ItemError(where, f"not BibTeX: {what}")
        return
    blocks = sorted(
        [*library.entries, *library.failed_blocks], key=lambda b: b.start_line if b.start_line else 0
    )
    for block in blocks:
        line = (block.start_line or 0) + 1
        if isinstance(block, bibtexparser.model.Entry):
            yield _entry(block, f"{where}:{line}", where, principals)
        else:
            error = getattr(block, "error", None)
            raw = re.sub(_NO_KEY_MARK + r"\d+", "", getattr(block, "raw", "") or "")
            first = raw.strip().splitlines()[:1]
            yield ItemError(
                f"{where}:{line}",
                f"unreadable BibTeX block {first[0][:60] if first else ''!r}: "
                f"{type(error).__name__ if error else 'parse error'} (an unclosed brace or a missing comma?)",
            )


def _entry(entry: Any, ref: str, where: str, principals: Principals) -> Item:
    fields = {f.key.lower(): f.value for f in entry.fields}
    title = _clean(fields.get("title"))
    key = "" if entry.key.startswith(_NO_KEY_MARK) else entry.key
    if not title:
        return ItemError(f"{ref} @{entry.entry_type}{{{key}}}", "entry has no title")
    raw_authors = fields.get("author") or []
    if isinstance(raw_authors, str):
        raw_authors = [raw_authors]
    authors = [a for a in (_person(x) for x in raw_authors if isinstance(x, str)) if a]
    doi = normalize_doi(fields["doi"]) if isinstance(fields.get("doi"), str) and fields["doi"] else None
    odd_doi = None
    if doi is not None and not doi.startswith("10."):  # a URL that names no DOI: keep it, link nothing
        odd_doi, doi = _clean(fields["doi"]), None
    arxiv = fields.get("eprint") or fields.get("arxivid")
    is_arxiv = isinstance(arxiv, str) and (
        str(fields.get("archiveprefix", "")).lower() == "arxiv" or "arxivid" in fields
    )
    arxiv_id = normalize_arxiv_id(arxiv) if is_arxiv and isinstance(arxiv, str) else None
    year = _clean(fields.get("year"))
    month = _MONTHS.get(str(fields.get("month", "")).strip().lower()[:3])
    published = f"{year}-{month:02d}" if year and month else year
    # ASCII digits of a year datetime can hold ("²".isdigit() is true, year 0 is out of range).
    dated = year is not None and year.isascii() and year.isdigit() and 1 <= int(year) <= 9999
    when = datetime(int(year), month or 1, 1, tzinfo=UTC) if dated and year else None
    links = []
    if doi:
        links.append(doi_link("same-as", doi))
    if arxiv_id:
        links.append(arxiv_link("same-as", arxiv_id))
    extra: dict[str, Any] = {"key": key, "entry_type": entry.entry_type}
    for k in ("publisher", "volume", "number", "pages", "keywords", "isbn", "issn"):
        if _clean(fields.get(k)):
            extra[k] = _clean(fields.get(k))
    if links:
        extra["links"] = links
    if odd_doi:
        extra["doi_field"] = odd_doi
    data = Paper(
        title=title,
        authors=authors,
        doi=doi,
        arxiv_id=arxiv_id,
        abstract=_clean(fields.get("abstract")),
        published=published,
        venue=_clean(fields.get("journal") or fields.get("booktitle")),
        url=_clean(fields.get("url")),
        extra=extra,
    )
    # Ids from what names the work, not from the file: the same entry in two files is one
    # event.  Two entries (two keys) for one DOI or arXiv id are two events, each linked
    # same-as to the one work.  An edited entry is a new revision (what was read is part of
    # its id), not a conflict with the one stored.
    revision = hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:16]
    if doi:
        eid = source_id("bibtex", "doi", doi, key, revision)
    elif arxiv_id:
        eid = source_id("bibtex", "arxiv", arxiv_id, key, revision)
    else:
        eid = source_id("bibtex", "key", key, title, revision)
    return paper_event(
        data,
        id=eid,
        writer=BIBTEX,  # also the source, never the file's name: the same entry in another file is one event
        subject=f"doi:{doi}" if doi else f"arXiv:{arxiv_id}" if arxiv_id else f"bibtex:{key or title}",
        time=when,
        principals=principals,
        claims=[*authors, *(a for a in raw_authors if isinstance(a, str))],
    )


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECLARED = re.compile(rb"^%\s*Encoding:\s*([A-Za-z0-9._-]+)")  # JabRef's first line


def _text(raw: bytes) -> str:
    """A BibTeX file's text, in the encoding it was saved in.

    BibTeX itself is byte-oriented and reference managers save in the encoding
    a person picks: a byte-order mark says which (JabRef writes UTF-16 and UTF-8
    with one); UTF-16 without one shows in the NULs of its ASCII; JabRef's
    ``% Encoding: windows-1252`` first line names it; else UTF-8, else
    Windows-1252 (old Windows exports; Latin-1 would turn its quotes and euro
    sign into control characters)."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom) :].decode(codec, "replace")
    head = raw[:4096]
    if len(head) >= 4 and head.count(0) * 3 >= len(head):  # ASCII in UTF-16: every other byte NUL
        little = head[1::2].count(0) > head[0::2].count(0)
        return raw.decode("utf-16-le" if little else "utf-16-be", "replace")
    declared = _DECLARED.match(raw)
    codecs_to_try = ["utf-8", "cp1252"]
    if declared:
        try:
            codecs_to_try.insert(0, codecs.lookup(declared.group(1).decode()).name)
        except LookupError:
            pass
    for codec in codecs_to_try:
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # every byte is a character: never fails


_NO_KEY = re.compile(r"(@(?!(?:comment|string|preamble)\b)[A-Za-z]+\s*\{)\s*,", re.IGNORECASE)
_NO_KEY_MARK = "creative-hub-no-key-"


def _keyed(text: str) -> str:
    """``@article{,`` (JabRef's entry imported without a citation key) with a placeholder
    key bibtexparser can read, one per entry; ``_entry`` gives it back as no key."""
    count = iter(range(1, 1 << 62))
    return _NO_KEY.sub(lambda m: f"{m.group(1)}{_NO_KEY_MARK}{next(count)},", text)


class BibtexSource(FileSource):
    """Entries of BibTeX files."""

    name = "bibtex"

    def parse(self, raw: bytes, where: str) -> Iterable[Item]:
        return parse_bibtex(_text(raw), where, self.principals)
