"""Reading files named on the command line, or found in a folder: regular files only, bounded.

``creative-hub ingest calendar /dev/zero`` read forever and a FIFO blocked
the open; a source reads a whole document to parse it, so the document is
bounded.  Both refusals are ``OSError``s with a ``strerror`` a person can
act on, so every source's existing ``except OSError`` reports them per file.
A folder's walk (stories, notebooks) follows a link only to a file inside
the folder, as ``ingest folder`` does: a link out would publish a file
nobody put there.

    raw = read_bounded(Path("team.ics"))           # bytes, at most MAX_FILE
    for f in files_under(Path("book"), "*.md"): ...  # Path, or an ItemError for a link out
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path

from .base import Item, ItemError, Principals

__all__ = ["MAX_FILE", "FileSource", "files_under", "parse_each", "read_bounded"]

MAX_FILE = 64 * 1024 * 1024  # bytes of one calendar, BibTeX, saved API response ...


def read_bounded(path: Path, limit: int = MAX_FILE) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; OSError otherwise."""
    # Non-blocking, so a FIFO cannot hang the open; checked on the descriptor, so what is
    # read is what was checked.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a device, FIFO or socket)")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"over {limit} bytes, the limit for one file")
    return data


def files_under(root: Path, pattern: str = "*") -> Iterator[Path | ItemError]:
    """The files under ``root`` matching ``pattern``, in path order, hidden names below it left out.

    A link counts only when its target is a file inside ``root``; a link out of it
    (to ``/etc/passwd``, ``/dev/zero``), broken or looping, is an ItemError.  A
    device, FIFO or socket is no file: not listed."""
    base = root.resolve()
    for f in sorted(root.rglob(pattern)):
        if any(part.startswith(".") for part in f.relative_to(root).parts):
            continue
        if f.is_symlink():
            try:
                target = f.resolve(strict=True)
            except (OSError, RuntimeError):
                yield ItemError(str(f), "a broken or looping link: left out")
                continue
            if not target.is_relative_to(base):
                yield ItemError(str(f), f"a link out of the folder (to {target}): left out")
                continue
        if f.is_file():
            yield f


async def parse_each(
    files: Sequence[Path], parse: Callable[[bytes, str], Iterable[Item]]
) -> AsyncIterator[Item]:
    """``parse(bytes, where)``'s items for every file in turn (each read by ``read_bounded``);
    a file that cannot be read is one ItemError, and the others still come."""
    for path in files:
        try:
            raw = read_bounded(path)
        except OSError as e:
            yield ItemError(str(path), f"cannot read: {e.strerror}")
            continue
        for item in parse(raw, str(path)):
            yield item


class FileSource:
    """A source over files named on the command line: each read within ``MAX_FILE``
    and parsed by ``parse``; stateless, since the items' ids make re-runs safe."""

    name: str

    def __init__(self, files: Sequence[Path], *, principals: Principals | None = None) -> None:
        self.files = [Path(f) for f in files]
        self.principals = principals or Principals()

    def iter_items(self) -> AsyncIterator[Item]:
        """Every item of every file, in order."""
        return parse_each(self.files, self.parse)

    def parse(self, raw: bytes, where: str) -> Iterable[Item]:
        """The items of one file's bytes (``where``: its path, for ids and errors)."""
        raise NotImplementedError

    def checkpoint(self) -> None:
        """Stateless: ids make re-runs safe."""
