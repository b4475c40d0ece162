"""The embedded SQLite engine: ``sqlite:///path/to/hub.db``, the whole log in one WAL file.

The same nouns as every engine package:

* ``engine.py`` -- ``SQLiteLog``: the file layout, append, read, topics,
  retention, lag (the module docstring describes the tables);
* ``read.py`` -- positions, where a read starts, one chunk of rows;
* ``retention.py`` -- the SQL of counts, retention, deletes and lag;
* ``group.py`` -- ``SQLiteSubscription``: consumer groups, partitions leased
  to members through the ``groups`` table;
* ``writer.py`` -- the one writer thread per process that every write goes through.
"""

from .engine import SQLiteLog
from .group import SQLiteSubscription

__all__ = ["SQLiteLog", "SQLiteSubscription"]
