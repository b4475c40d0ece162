"""Files the hub creates hold draft text: they are created readable by their user only.

SQLite makes a database's ``-wal``, ``-shm`` and journal files with the mode
of the database file itself, so creating the database 0600 before SQLite
opens it is enough for the whole set.  An existing file keeps its mode (its
owner chose it).
"""

from __future__ import annotations

import os
from os import PathLike

__all__ = ["private_file"]


def private_file(path: str | PathLike[str]) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (``:memory:`` and URIs: nothing)."""
    name = os.fspath(path)
    if name in ("", ":memory:") or name.startswith("file:"):
        return
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
