"""Jupyter notebooks as computational narratives: prose as fragments, code as cells, in order.

A notebook (any nbformat version; 3 and older are upgraded through nbformat,
never refused) becomes, cell by cell in notebook order:

- a markdown cell -> ``creative.narrative.fragment`` (its headings give the
  ``part`` and ``scene``, as in ``ingest story``: one top heading is the
  title, then the next two heading levels);
- a code or raw cell -> ``creative.engineering.cell``: source, language (the
  kernelspec, or a ``%%bash``-style cell magic), execution count, timings
  (``metadata.execution``), and outputs *summarised*: the head of stream text,
  an error's name and message without terminal colours, the MIME types and
  sizes of rich outputs -- never image bytes.

Each event links ``after`` the one before it (``extra.links``), so the
notebook reads as one chain, prose and code interleaved.

Identity, so that re-ingesting is free and edits are revisions:

- a cell's key is its nbformat 4.5 ``id``; a notebook saved before 4.5 has
  none (and nbformat's upgrade invents random ones), so there the key comes
  from the cell's kind and text (with the occurrence, for repeated cells);
- a notebook's identity is not its path: a notebook whose cells the hub
  already holds (by key, at least half of them) is that notebook, moved,
  renamed or edited; a new one is named by the hash of its cell keys;
- a cell whose content changed is a new event that ``supersedes`` the last
  revision, so ``lineage`` shows its history; unchanged cells re-ingest as
  duplicates (0 added), a moved file too.

What the hub holds already is read once per run (``Known.load``) from the
shared engineering and narrative topics: the notebook events *this writer*
wrote, so one person's edits never become revisions of another's cells.

Who writes (and signs) them: the source principal ``notebooks``, or the person
who ran the ingest with their own token (``writer=``); then the events are
theirs (``origins.personal``: ``alice~<id>`` ids, ``/peers/alice/notebook:...``
source).  Whose notebook it is, as the file or the command line claims it
(``owner=``), is kept in ``data.extra.author``: a claim, never the writer.
Ids are computed source ids (``origins.source_id``, UUIDv8), which no client
may choose, so nobody can publish first under the id a cell will get.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import warnings
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from ..errors import NotFound, ValidationError
from ..event import Event
from ..hub import Hub
from ..origins import is_source_principal, personal, source_id
from ..schemas import Cell, Fragment, Output
from ._files import files_under, read_bounded
from .base import Item, ItemError, link, make_event

__all__ = ["MAX_FILE_BYTES", "NOTEBOOKS", "Known", "NotebookSource", "notebook_events", "strip_ansi"]

NOTEBOOKS = "notebooks"  # the source principal that writes (and signs) notebook events

MAX_FILE_BYTES = 64 * 1024 * 1024  # a notebook with many plots; the bytes never reach the hub
MAX_SOURCE = 100_000  # characters of a cell's source kept
MAX_HEAD = 2_000  # characters of a stream's or result's text kept
MAX_HEAD_LINES = 40
MAX_OUTPUTS = 50  # outputs summarised per cell (a loop printing per line makes thousands)
SOURCE_PREFIX = "notebook:"
CELL_TYPE = "creative.engineering.cell"
FRAGMENT_TYPE = "creative.narrative.fragment"
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
_TEXT_MIME = re.compile(r"^(text/|application/(json|javascript|.*\+xml|.*\+json)|image/svg\+xml)")
_CELL_MAGICS = {
    "bash": "bash", "sh": "sh", "javascript": "javascript", "js": "javascript", "html": "html",
    "latex": "latex", "markdown": "markdown", "perl": "perl", "ruby": "ruby", "svg": "svg",
    "python": "python", "python3": "python", "sql": "sql", "r": "r", "script": None,
}  # fmt: skip


def strip_ansi(text: str) -> str:
    """``"\\x1b[0;31mValueError\\x1b[0m"`` -> ``"ValueError"``: terminal colours and moves removed."""
    return _ANSI.sub("", text)


def _text(value: Any) -> str:
    """nbformat multiline strings are a str or a list of lines."""
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _head(text: str) -> str:
    lines = text[:MAX_HEAD].splitlines(keepends=True)[:MAX_HEAD_LINES]
    return "".join(lines)


def _size(mime: str, value: Any) -> int:
    """Bytes of one MIME representation: binary ones are stored base64, text as text."""
    if isinstance(value, (dict, list)):  # application/json and friends
        return len(json.dumps(value, ensure_ascii=False).encode())
    text = _text(value)
    if not _TEXT_MIME.match(mime):
        try:
            return len(base64.b64decode("".join(text.split()), validate=True))
        except (binascii.Error, ValueError):
            pass
    return len(text.encode())


def summarise(output: dict[str, Any]) -> Output:
    """One output of a code cell, summarised (see the module docstring)."""
    kind = output.get("output_type", "")
    if kind == "stream":
        text = strip_ansi(_text(output.get("text")))
        return Output(output_type="stream", name=str(output.get("name") or "stdout"), text=_head(text),
                      chars=len(text))  # fmt: skip
    if kind == "error":
        return Output(
            output_type="error",
            ename=strip_ansi(str(output.get("ename", "")))[:200],
            evalue=strip_ansi(str(output.get("evalue", "")))[:MAX_HEAD],
        )
    data = output.get("data") or {}
    mime = {str(m): _size(str(m), v) for m, v in data.items()} if isinstance(data, dict) else {}
    plain = _text(data.get("text/plain")) if isinstance(data, dict) else ""
    return Output(
        output_type=kind,
        text=_head(strip_ansi(plain)) if plain else None,
        chars=len(plain) if plain else None,
        mime=mime,
    )


def _timings(meta: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    ex = meta.get("execution") if isinstance(meta, dict) else None
    if not isinstance(ex, dict):
        return None, None

    def when(*keys: str) -> datetime | None:
        for k in keys:
            v = ex.get(k)
            if isinstance(v, str):
                try:
                    t = datetime.fromisoformat(v.replace("Z", "+00:00"))
                except ValueError:
                    continue
                if t.tzinfo is not None:
                    return t
        return None

    started = when("iopub.execute_input", "shell.execute_request")
    return started, when("shell.execute_reply", "iopub.status.idle")


def _language(source: str, default: str | None) -> str | None:
    m = re.match(r"\s*%%(\w+)", source)
    if m and m.group(1).lower() in _CELL_MAGICS:
        return _CELL_MAGICS[m.group(1).lower()] or default
    return default


def content_digest(data: Any) -> str:
    """A digest of a payload as stored (key order and defaults do not matter)."""
    plain = msgspec.to_builtins(data)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


# -- what the hub already holds ------------------------------------------------
@dataclass
class Revision:
    """The newest revision of one cell in the hub, and the first (what links point to)."""

    first: str
    latest: Event
    digest: str
    order: int
    kind: str


@dataclass
class Known:
    """Notebook cells the hub holds: notebook identity -> cell key -> its revisions."""

    notebooks: dict[str, dict[str, Revision]] = field(default_factory=dict)

    @classmethod
    async def load(cls, hub: Hub, writer: str = NOTEBOOKS) -> Known:
        """Read the notebook events ``writer`` wrote to the shared engineering and narrative topics."""
        events: list[Event] = []
        for topic in ("creative.engineering", "creative.narrative"):
            try:
                async for s in hub.replay(topic):
                    if s.event.creator == writer and _notebook_source(s.event.source, writer):
                        events.append(s.event)
            except NotFound:
                continue
        known = cls()
        known.add(events)
        return known

    def add(self, events: Iterable[Event]) -> None:
        """Take events in log order: a revision replaces the one it supersedes."""
        for e in events:
            ref = _cell_ref(e)
            if ref is None:
                continue
            nb, key, order = ref
            cells = self.notebooks.setdefault(nb, {})
            prev = cells.get(key)
            if prev is not None and e.supersedes != prev.latest.id:
                continue  # an older revision read after a newer one, or a fork of the chain
            first = prev.first if prev is not None else e.id
            cells[key] = Revision(first, e, content_digest(e.data), order, _kind(e))

    def identify(self, keys: list[str]) -> str | None:
        """The known notebook sharing the most cell keys with these, if at least half."""
        best, best_n = None, 0
        wanted = set(keys)
        for nb, cells in self.notebooks.items():
            n = len(wanted & cells.keys())
            if n > best_n:
                best, best_n = nb, n
        return best if best_n and 2 * best_n >= len(wanted) else None


def _notebook_source(source: str, writer: str) -> bool:
    """``notebook:<id>`` as the source principal writes it, or in the writer's own namespace."""
    if not is_source_principal(writer):
        source = source.removeprefix(f"/peers/{writer}/")
    return source.startswith(SOURCE_PREFIX)


def _kind(e: Event) -> str:
    if e.type == FRAGMENT_TYPE:
        return "markdown"
    data = e.data if isinstance(e.data, dict) else msgspec.to_builtins(e.data)
    return str(data.get("kind", "code")) if isinstance(data, dict) else "code"


def _cell_ref(e: Event) -> tuple[str, str, int] | None:
    data = e.data if isinstance(e.data, dict) else msgspec.to_builtins(e.data)
    if not isinstance(data, dict):
        return None
    if e.type == CELL_TYPE:
        nb, key, order = data.get("notebook"), data.get("cell"), data.get("order")
    elif e.type == FRAGMENT_TYPE:
        extra = data.get("extra") or {}
        nb, key, order = extra.get("notebook"), extra.get("cell"), data.get("order")
    else:
        return None
    if isinstance(nb, str) and isinstance(key, str) and isinstance(order, int):
        return nb, key, order
    return None


# -- reading -------------------------------------------------------------------
class NotebookError(Exception):
    """A file that is not a notebook nbformat accepts."""


def read_notebook(raw: bytes) -> tuple[Any, bool]:
    """The notebook as nbformat 4, validated; and whether its cell ids are its own (4.5+)."""
    import nbformat  # the jupyter extra; imported here so the rest of the hub does not need it
    from traitlets.log import get_logger

    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise NotebookError(f"not JSON: {e}") from None
    except RecursionError:
        raise NotebookError("not a notebook: JSON nested deeper than Python can read") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("nbformat"), int):
        raise NotebookError("no nbformat version (not a Jupyter notebook)")
    minor = obj.get("nbformat_minor")
    own_ids = obj["nbformat"] > 4 or (obj["nbformat"] == 4 and isinstance(minor, int) and minor >= 5)
    log: Any = get_logger()  # the running app's logger in a kernel, else traitlets'
    level = log.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbformat warns about ids it adds or normalises
        log.setLevel(logging.CRITICAL)  # and logs what is invalid: the ItemError says it once
        try:
            nb = nbformat.reads(raw.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
            nbformat.validate(nb)
        except nbformat.ValidationError as e:
            where = "/".join(str(p) for p in getattr(e, "absolute_path", []) or [])
            msg = str(getattr(e, "message", e)).splitlines()[0][:300]
            at = f" at {where}" if where else ""
            raise NotebookError(f"fails nbformat validation{at}: {msg}") from None
        except Exception as e:  # nbformat raises many kinds on a malformed file
            raise NotebookError(f"nbformat cannot read it: {type(e).__name__}: {str(e)[:300]}") from None
        finally:
            log.setLevel(level)
    return nb, own_ids


def _cell_keys(cells: list[Any], own_ids: bool) -> list[str]:
    if own_ids:
        return [str(c.get("id")) for c in cells]
    seen: dict[str, int] = {}
    keys = []
    for c in cells:
        h = hashlib.sha256(f"{c.cell_type}\x1f{_text(c.source)}".encode()).hexdigest()[:16]
        n = seen.get(h, 0)
        seen[h] = n + 1
        keys.append(h if n == 0 else f"{h}.{n}")
    return keys


@dataclass
class _Parts:
    """Which heading levels are the title, the parts and the scenes."""

    title_level: int | None
    part_level: int | None
    scene_level: int | None

    @classmethod
    def of(cls, cells: list[Any]) -> tuple[_Parts, str | None]:
        heads = [
            (len(m.group(1)), m.group(2))
            for c in cells
            if c.cell_type == "markdown"
            for m in _HEADING.finditer(_text(c.source))
        ]
        levels = sorted({lvl for lvl, _ in heads})
        title = None
        title_level = None
        if levels and sum(1 for lvl, _ in heads if lvl == levels[0]) == 1:
            title_level = levels[0]
            title = next(t for lvl, t in heads if lvl == title_level)
            levels = levels[1:]
        part = levels[0] if levels else None
        scene = levels[1] if len(levels) > 1 else None
        return cls(title_level, part, scene), title


def notebook_events(
    raw: bytes, ref: str, known: Known, *, writer: str = NOTEBOOKS, owner: str | None = None
) -> list[Item]:
    """Every event of one notebook, in notebook order (or one ItemError, and nothing else),
    written by ``writer``; ``owner`` is the claimed author, kept in ``data.extra.author``."""
    try:
        nb, own_ids = read_notebook(raw)
    except NotebookError as e:
        return [ItemError(ref, str(e))]
    cells = list(nb.cells)
    if not cells:
        return [ItemError(ref, "the notebook has no cells")]
    keys = _cell_keys(cells, own_ids)
    if own_ids and len(set(keys)) != len(keys):
        return [ItemError(ref, "two cells share an id (nbformat 4.5 ids must be unique)")]
    nb_id = known.identify(keys) or hashlib.sha256("\x1f".join(keys).encode()).hexdigest()[:16]
    held = known.notebooks.get(nb_id, {})
    if not own_ids:
        keys = _match_edited(cells, keys, held)
    meta = nb.metadata or {}
    # nbformat's schema leaves kernelspec.language free: only a string is a language
    langs = [(meta.get("kernelspec") or {}).get("language"), (meta.get("language_info") or {}).get("name")]
    lang = next((x[:100] for x in langs if isinstance(x, str) and x.strip()), None)
    parts, title = _Parts.of(cells)
    story = f"nb-{nb_id}"
    subject = f"{SOURCE_PREFIX}{nb_id}"
    out: list[Item] = []
    part = scene = None
    part_order = -1
    prev_first: str | None = None
    new: list[Event] = []
    for order, (c, key) in enumerate(zip(cells, keys, strict=True)):
        links = [link("after", prev_first, f"cell {order - 1}")] if prev_first else []
        when: datetime | None = None
        data: Cell | Fragment
        if c.cell_type == "markdown":
            text = _text(c.source)
            own = None
            for m in _HEADING.finditer(text):
                lvl, name = len(m.group(1)), m.group(2)
                own = own or name
                if lvl == parts.part_level:
                    part, scene, part_order = name, None, part_order + 1
                elif lvl == parts.scene_level:
                    scene = name
            extra: dict[str, Any] = {"notebook": nb_id, "cell": key}
            if owner:
                extra["author"] = owner
            if title:
                extra["story_title"] = title
            if links:
                extra["links"] = links
            if c.get("attachments"):  # pasted images: named and sized, never stored
                extra["attachments"] = {
                    name[:200]: {m[:100]: _size(m, v) for m, v in (a or {}).items()}
                    for name, a in list(c.attachments.items())[:MAX_OUTPUTS]
                }
            data = Fragment(
                story=story,
                title=(own or scene or part or title or "Notes")[:500],
                text=text[:MAX_SOURCE],
                order=order,
                part=part,
                part_order=part_order if part is not None else None,
                scene=scene,
                extra=extra,
            )
            type_ = FRAGMENT_TYPE
        else:
            source = _text(c.source)
            started, finished = _timings(c.get("metadata") or {})
            duration = None
            if started and finished and finished >= started:
                duration = int((finished - started).total_seconds() * 1000)
            outputs = list(c.get("outputs") or [])
            extra = {"links": links} if links else {}
            if owner:
                extra["author"] = owner
            if len(outputs) > MAX_OUTPUTS:
                extra["outputs_total"] = len(outputs)
            if len(source) > MAX_SOURCE:
                extra["source_chars"] = len(source)
            kind: Literal["code", "raw"] = "code" if c.cell_type == "code" else "raw"
            data = Cell(
                notebook=nb_id,
                cell=key,
                order=order,
                kind=kind,
                language=_language(source, lang) if kind == "code" else None,
                source=source[:MAX_SOURCE],
                execution_count=c.get("execution_count"),
                started=started,
                finished=finished,
                duration_ms=duration,
                outputs=[summarise(o) for o in outputs[:MAX_OUTPUTS]],
                extra=extra,
            )
            type_ = CELL_TYPE
            when = started
        digest = content_digest(data)
        rev = held.get(key)
        if rev is not None and rev.digest == digest:
            out.append(rev.latest)  # unchanged: the stored event itself, a duplicate
            prev_first = rev.first
            continue
        supersedes = rev.latest.id if rev is not None else None
        ev = make_event(
            type_,
            id=source_id("notebook", nb_id, key, digest, supersedes or ""),
            source=subject,
            subject=subject,
            data=data,
            creator=writer,
            time=when,
        )
        if not is_source_principal(writer):
            personal(ev, writer)  # theirs now, so the next cell's `after` link names the final id
        ev.supersedes = supersedes
        prev_first = rev.first if rev is not None else ev.id
        out.append(ev)
        new.append(ev)
    known.add(new)  # a copy of this notebook later in the same run is this notebook
    return out


def _match_edited(cells: list[Any], keys: list[str], held: dict[str, Revision]) -> list[str]:
    """Without cell ids, an edited cell has a new content key: give it the key of the
    cell the hub held at its place (same kind) if that cell's key is gone."""
    if not held:
        return keys
    present = set(keys)
    by_order = {r.order: k for k, r in held.items() if k not in present}
    out = []
    for order, (c, key) in enumerate(zip(cells, keys, strict=True)):
        old = by_order.get(order)
        if key not in held and old is not None and held[old].kind == c.cell_type:
            out.append(old)
            del by_order[order]
        else:
            out.append(key)
    return out


class NotebookSource:
    """``.ipynb`` files, or folders of them (searched recursively, hidden ones skipped)."""

    name = "notebook"

    def __init__(
        self,
        paths: Iterable[Path | str],
        *,
        writer: str = NOTEBOOKS,
        owner: str | None = None,
        known: Known | None = None,
    ) -> None:
        """``writer``: who writes and signs (the source principal, or the person whose token
        ran the ingest); ``owner``: whose notebooks these are, a claim kept in the data;
        ``known``: what ``writer`` already wrote (``Known.load(hub, writer)``)."""
        self.paths = [Path(p) for p in paths]
        self.writer = writer
        self.owner = owner
        self.known = known or Known()

    def _files(self) -> Iterable[Path | ItemError]:
        for p in self.paths:
            if p.is_dir():
                yield from files_under(p, "*.ipynb")
            else:
                yield p

    async def iter_items(self) -> AsyncIterator[Item]:
        """Per notebook, its cells in order; a notebook that cannot be used is one ItemError."""
        try:
            import nbformat  # noqa: F401
        except ImportError:
            raise ValidationError(
                "notebook", "reading notebooks needs nbformat: pip install 'creative-hub[jupyter]'"
            ) from None
        for path in self._files():
            if isinstance(path, ItemError):
                yield path
                continue
            try:
                raw = read_bounded(path, MAX_FILE_BYTES)  # a regular file, not past the cap
            except OSError as e:
                yield ItemError(str(path), f"cannot read: {e.strerror}")
                continue
            for item in notebook_events(raw, str(path), self.known, writer=self.writer, owner=self.owner):
                yield item

    def checkpoint(self) -> None:
        """Stateless: what the hub holds is the state."""
