"""Reading a Redis topic: its partition streams merged by id, the append order.

A topic's records live in ``partitions`` streams; ids are ``<ms>-<seq>``
(the stream id the append script gave, one clock across the partitions), so
merging the streams by id gives the append order.  ``MergedReader`` reads
each stream in chunks (XRANGE), raises PositionGone when retention removed
what it was about to read, and with ``follow`` waits on XREAD BLOCK.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ...errors import PositionGone, ValidationError
from ..base import Record
from .names import command, id_key, make_record

if TYPE_CHECKING:
    from .engine import RedisLog

__all__ = ["MergedReader", "parse_position", "position_of"]

READ_CHUNK = 512  # records per XRANGE while reading
FOLLOW_BLOCK = 1.0  # seconds one XREAD BLOCK waits while following


def position_of(key: tuple[int, int]) -> str:
    return f"{key[0]}-{key[1]}"


def parse_position(position: str, name: str = "after") -> tuple[int, int]:
    try:
        ms, seq = id_key(position)
    except (ValueError, AttributeError):
        raise ValidationError(name, f"{position!r} is not a position of this log (<ms>-<seq>)") from None
    if ms < 0 or seq < 0:
        raise ValidationError(name, f"{position!r} is not a position of this log (<ms>-<seq>)")
    return ms, seq


class MergedReader:
    """Reads one topic's partitions in chunks and merges them by id (the append order)."""

    def __init__(self, log: RedisLog, topic: str, parts: int, start: tuple[int, int], resume: bool) -> None:
        self.log = log
        self.topic = topic
        self.meta = f"{log.base(topic)}:meta"
        self.streams = [log.stream(topic, p) for p in range(parts)]
        self.cursor = [start] * parts  # last id seen per partition (exclusive bound)
        self.buffers: list[list[tuple[bytes, list[bytes]]]] = [[] for _ in range(parts)]
        self.at = [0] * parts
        self.exhausted = [False] * parts
        # The position a resumed read must not be behind (retention's watermark).
        self.last: tuple[int, int] | None = start if resume else None

    async def records(self, follow: bool) -> AsyncIterator[Record]:
        heap: list[tuple[tuple[int, int], int]] = []
        in_heap = [False] * len(self.streams)
        while True:
            need = [p for p in range(len(self.streams)) if not in_heap[p] and not self.exhausted[p]]
            if need:
                await self._fill(need)
            for p in need:
                if self.at[p] < len(self.buffers[p]):
                    heapq.heappush(heap, (id_key(self.buffers[p][self.at[p]][0]), p))
                    in_heap[p] = True
            if not heap:
                if not follow:
                    return
                await self._wait()
                continue
            key, p = heapq.heappop(heap)
            in_heap[p] = False
            sid, fields = self.buffers[p][self.at[p]]
            self.at[p] += 1
            self.cursor[p] = key
            self.last = key
            if self.at[p] < len(self.buffers[p]):
                heapq.heappush(heap, (id_key(self.buffers[p][self.at[p]][0]), p))
                in_heap[p] = True
            yield make_record(self.topic, sid, fields)

    async def _fill(self, need: list[int]) -> None:
        client = self.log.client

        async def fetch() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.hget(self.meta, "removed")
            for p in need:
                ms, seq = self.cursor[p]
                pipe.execute_command("XRANGE", self.streams[p], f"({ms}-{seq}", "+", "COUNT", READ_CHUNK)
            return list(await pipe.execute())

        replies = await self.log._retry(fetch)
        removed = replies[0]
        if removed is not None and self.last is not None and self.last < id_key(removed):
            raise PositionGone(self.topic, position_of(self.last), await self._earliest())
        for p, entries in zip(need, replies[1:], strict=True):
            self.buffers[p] = entries or []
            self.at[p] = 0
            self.exhausted[p] = len(self.buffers[p]) < READ_CHUNK

    async def _earliest(self) -> str | None:
        info = await self.log._info(self.topic)
        return info.first if info else None

    async def _wait(self) -> None:
        """Block until some partition has a record after our cursors (XREAD BLOCK)."""
        client = self.log.client
        ids = [position_of(c) for c in self.cursor]
        # A blocking read must answer well within the socket timeout.
        block_ms = max(1, int(min(FOLLOW_BLOCK, self.log.options.socket_timeout / 2) * 1000))
        # A cursor after a `since` start is (ms-1)-MAX: valid for XREAD as is.
        await self.log._retry(
            lambda: command(client, "XREAD", "COUNT", 1, "BLOCK", block_ms, "STREAMS", *self.streams, *ids)
        )
        # What XREAD returned is read again by _fill, in merged order: this is a wake-up.
        self.exhausted = [False] * len(self.streams)
