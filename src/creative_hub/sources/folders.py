"""Folders (a local drive): file metadata — path, size, media type, SHA-256, modified time.

One-shot by default; ``watch()`` then follows changes with watchfiles.  An
event's id comes from the file's content (its SHA-256) alone: an unchanged
file adds nothing on a re-run, the same folder moved, a file renamed or copied
adds nothing either (identity, not location), and an edited file adds a new
event.  Events are written by ``folder`` (or the person who ran the ingest);
an ``owner`` given is a claim, kept in ``data.extra.owner``.  Hidden files and
directories (``.git``) are left out.  Only regular
files are read: a device, FIFO or socket is an ItemError (a link to
``/dev/zero`` must not hang the walk), and so is a link whose target is
outside the folder unless ``follow_links`` (its hash would publish a file
nobody put in the folder).

    FolderSource(Path("~/drive").expanduser(), owner="alice")
    async for batch in FolderSource(path).watch(): ...   # lists of items as files change
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ValidationError
from ..origins import source_id
from ..schemas import File
from .base import Item, ItemError, Principals, checked, make_event, with_mapped

__all__ = ["FOLDER", "FolderSource"]

FOLDER = "folder"  # the source principal that writes (and signs) file metadata, and their `source`

_CHUNK = 1 << 20  # bytes per read while hashing


def _sha256(path: Path) -> tuple[os.stat_result, str]:
    """(stat, SHA-256) of a regular file; ValueError for anything else.

    Opened without following a last-component link and without blocking (a
    FIFO swapped in after the walk would hang a plain open), then checked on
    the open descriptor, so what is hashed is what was checked."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file (a device, FIFO or socket): left out")
        h = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return st, h.hexdigest()


class FolderSource:
    """Every visible file under ``root``, as ``creative.metadata.file`` events."""

    name = "folder"
    #: ids are the content's: the same bytes at another path (or with another
    #: mtime) are already there, not "changed at the source"
    content_ids = True

    def __init__(
        self,
        root: Path | str,
        *,
        owner: str | None = None,
        principals: Principals | None = None,
        include_hidden: bool = False,
        follow_links: bool = False,
    ) -> None:
        self.root = Path(root)
        self.follow_links = follow_links  #: also read links whose target is outside the folder
        self.principals = principals or Principals()
        # Files carry no author; whose they are is the ingest's claim, recorded, never the creator.
        self.extra: dict[str, object] = {"owner": owner} if owner else {}
        if owner:
            with_mapped(self.extra, self.principals, owner)
        self.include_hidden = include_hidden

    def _visible(self, path: Path) -> bool:
        rel = path.relative_to(self.root)
        return self.include_hidden or not any(part.startswith(".") for part in rel.parts)

    async def iter_items(self) -> AsyncIterator[Item]:
        """One event per file, in path order."""
        if not self.root.is_dir():
            raise ValidationError("path", f"{self.root}: no such directory")
        try:
            str(self.root.resolve()).encode()
        except UnicodeEncodeError:
            raise ValidationError("path", f"{self.root}: the folder's own path is not UTF-8") from None
        for item in self.items(sorted(p for p in self.root.rglob("*") if p.is_file() or p.is_symlink())):
            yield item

    def items(self, paths: Iterable[Path]) -> Iterable[Item]:
        """Events (or errors) for the given files under the root."""
        for path in paths:
            if not self._visible(path):
                continue
            yield self.file_event(path)

    def file_event(self, path: Path) -> Item:
        """The metadata event of one file, or why it cannot be read."""
        rel = path.relative_to(self.root).as_posix()
        try:
            rel.encode()
        except UnicodeEncodeError:  # the name's bytes are not UTF-8: an event's subject is text
            shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
            return ItemError(shown, "the file name is not UTF-8; rename it to publish it")
        try:
            st, digest = _sha256(self._target(path))
        except ValueError as e:
            return ItemError(rel, str(e))
        except OSError as e:
            return ItemError(rel, f"cannot read: {e.strerror or e}")
        modified = datetime.fromtimestamp(st.st_mtime, UTC).replace(microsecond=0)
        media_type, _ = mimetypes.guess_type(path.name)
        data = File(
            path=rel,
            size=st.st_size,
            media_type=media_type,
            sha256=digest,
            modified=modified,
            extra=dict(self.extra),
        )
        event = make_event(
            "creative.metadata.file",
            id=source_id("folder", digest),
            source=FOLDER,
            subject=rel,
            data=data,
            creator=FOLDER,
            time=modified,
        )
        return checked(event, rel)

    def _target(self, path: Path) -> Path:
        """The file to read for ``path``: itself, or a link's target when that is inside the
        folder (or ``follow_links``); ValueError for a link out of the folder."""
        if not path.is_symlink():
            return path
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise ValueError("a broken or looping link: left out") from None
        if not self.follow_links and not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"a link out of the folder (to {target}): left out (--follow-links reads it)")
        return target

    async def watch(self, *, stop: object = None) -> AsyncIterator[list[Item]]:
        """After the caller has run ``iter_items`` once: items for each batch of changes.

        A deleted file yields nothing (the hub keeps its history).  ``stop`` is
        passed to watchfiles (an ``asyncio.Event`` ends the watch).
        """
        try:
            from watchfiles import Change, awatch
        except ImportError as e:  # pragma: no cover - the extra is missing
            raise ImportError('Watching a folder needs: pip install "creative-hub[sources]"') from e
        async for changes in awatch(self.root, stop_event=stop, recursive=True):
            paths = sorted({Path(p) for kind, p in changes if kind != Change.deleted and Path(p).is_file()})
            items = list(self.items(paths))
            if items:
                yield items

    def checkpoint(self) -> None:
        """Stateless: ids make re-runs safe."""
