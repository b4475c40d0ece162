"""What every engine's ``read()`` shares: the keywords taken one way, the topic checked first.

An engine inherits ``Reads`` and writes ``_records(topic, span)``, an async
generator of the records ``span`` (a ``ReadRange``: after, since, limit,
follow, defaults filled in) asks for.  The topic name is checked when
``read()`` is called, before the engine is touched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Unpack

from .base import ReadOptions, ReadRange, Record, check_topic

__all__ = ["Reads"]


class Reads:
    """An engine's ``read()``: one signature for every engine, then ``_records`` reads.

    class MyLog(Reads):
        async def _records(self, topic: str, span: ReadRange) -> AsyncIterator[Record]:
            ...
    """

    def read(self, topic: str, **options: Unpack[ReadOptions]) -> AsyncIterator[Record]:
        """The records of ``topic`` in log order (see ``creative_hub.log.base.Log.read``)."""
        return self._records(check_topic(topic), ReadRange(**options))

    def _records(self, topic: str, span: ReadRange) -> AsyncIterator[Record]:
        """The engine's reading of a checked ``topic`` (an async generator)."""
        raise NotImplementedError
