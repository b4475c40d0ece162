"""Reading a NATS topic: direct gets in batches, from a position or a time, following new records.

``NatsReader`` is the reading half of ``NatsLog`` (a base class of it): a
read asks the stream for up to a batch of records at a time through DIRECT.GET
on the client's own reply inbox, checks the stream's first sequence so a
position retention removed raises PositionGone, and with ``follow`` waits
for the stream to grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub
from nats.js import api

from ...errors import PositionGone, ValidationError
from .._reads import Reads
from ..base import DEFAULT_BATCH, ReadRange, Record
from .client import NatsClient, State, Topic, Transient, status_of
from .names import record_of

__all__ = ["NatsReader"]


def _ts_ms(stamp: str) -> int:
    """Milliseconds since the epoch of a JetStream RFC 3339 time (nanosecond digits allowed)."""
    base = datetime.fromisoformat(stamp[:19] + "+00:00")
    frac = stamp[20:].rstrip("Z")[:3] if len(stamp) > 19 and stamp[19] == "." else ""
    return int(base.timestamp()) * 1000 + (int(frac.ljust(3, "0")) if frac else 0)


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_position(position: str | None, name: str = "after") -> int:
    if position is None or position == "":
        return 0
    try:
        value = int(position)
    except ValueError:
        raise ValidationError(name, f"{position!r} is not a position of this log (a whole number)") from None
    if value < 0:
        raise ValidationError(name, f"position must be >= 0, got {value}")
    return value


class NatsReader(Reads, NatsClient):
    """``read()`` and the stream lookups it needs (also used by retention)."""

    async def _direct_get(self, t: Topic, req: dict[str, Any]) -> Msg | None:
        """One stored message (by ``seq`` or ``start_time``), or None."""
        msg = await self.request(f"$JS.API.DIRECT.GET.{t.stream}", json.dumps(req).encode())
        status = status_of(msg)
        if status == "404":
            return None
        if status is not None:
            raise Transient(f"direct get answered {status} {(msg.headers or {}).get('Description', '')}")
        return msg

    async def _seq_at_time(self, t: Topic, epoch: float, after_last: int) -> int:
        """The position of the first record stored at or after ``epoch``; ``after_last`` if none."""
        msg = await self._direct_get(t, {"start_time": _rfc3339(epoch)})
        if msg is None:
            return after_last
        return int((msg.headers or {})["Nats-Sequence"])

    async def _stream_state(self, t: Topic) -> api.StreamState:
        return (await self.js.stream_info(t.stream)).state

    def _records(self, topic: str, span: ReadRange) -> AsyncIterator[Record]:
        """Records in log order, fetched in batches with DIRECT.GET (no consumer is created)."""
        cursor = _parse_position(span.after)  # a bad position is refused at once, not on first use
        return self._read(topic, cursor, span.after is not None, span.since, span.limit, span.follow)

    async def _read(
        self, topic: str, cursor: int, resume: bool, since: float | None, limit: int | None, follow: bool
    ) -> AsyncIterator[Record]:
        self.check_open()
        remaining = limit if limit is not None else math.inf
        if remaining <= 0:
            return
        nc = self.nc
        wake = asyncio.Event()
        wake_sub: NatsSub | None = None
        if follow:
            # Subscribed before the catch-up read, so nothing appended in between is missed.
            async def on_append(_: Msg) -> None:
                wake.set()

            wake_sub = await nc.subscribe(f"{topic}.*.*", cb=on_append)
        inbox = f"{self.reply_prefix}.r{nc._nuid.next().decode()}"
        replies = await nc.subscribe(inbox)
        try:
            t = await self.topic_of(topic, create=False)
            while t is None:
                if not follow:
                    return
                await self._wait(wake, 0.5)
                t = await self.topic_of(topic, create=False)
            with self.guard(f"read {topic}"):
                state = await self._stream_state(t)
            first = state.first_seq
            if resume and cursor < first - 1:
                raise PositionGone(topic, str(cursor), str(first) if state.messages else None)
            start = cursor + 1 if resume else max(1, first)
            if since is not None:
                with self.guard(f"read {topic}"):
                    start = max(start, await self._seq_at_time(t, since, state.last_seq + 1))
            end = state.last_seq  # a read without follow stops at what was there when it began
            lagging = 0
            while True:
                if not follow and start > end:
                    return
                want = int(min(remaining, DEFAULT_BATCH))
                with self.guard(f"read {topic}"):
                    batch = await self._direct_batch(t, replies, start, want)
                if batch and batch[0][0] > start:
                    # Retention removed records ahead of this reader: say so, never skip silently.
                    with self.guard(f"read {topic}"):
                        state = await self._stream_state(t)
                    if state.first_seq > start:
                        raise PositionGone(topic, str(start - 1), str(state.first_seq))
                for seq, rec in batch:
                    if not follow and seq > end:
                        return
                    yield rec
                    start = seq + 1
                    remaining -= 1
                    if remaining <= 0:
                        return
                if len(batch) < want:
                    if follow:
                        await self._wait(wake, 1.0)
                    elif start <= end:
                        # A replica that answered may lag the leader (clusters): retry briefly.
                        lagging += 1
                        if lagging > 50:
                            return
                        await asyncio.sleep(0.02)
                if self._state is not State.OPEN:
                    return
        finally:
            with contextlib.suppress(Exception):
                await replies.unsubscribe()
                if wake_sub is not None:
                    await wake_sub.unsubscribe()

    @staticmethod
    async def _wait(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: see sqlite/engine.py's _wait_for_append
                await event.wait()
        event.clear()

    async def _direct_batch(
        self, t: Topic, replies: NatsSub, start: int, n: int
    ) -> list[tuple[int, Record]]:
        """Up to ``n`` records from position ``start`` on, in one DIRECT.GET batch."""
        # Leftovers of an earlier, timed-out batch would be mistaken for answers.
        while replies.pending_msgs:
            with contextlib.suppress(Exception):
                await replies.next_msg(timeout=0.001)
        await self.nc.publish(
            f"$JS.API.DIRECT.GET.{t.stream}",
            json.dumps({"seq": start, "batch": n}).encode(),
            reply=replies.subject,
        )
        out: list[tuple[int, Record]] = []
        while True:
            msg = await replies.next_msg(timeout=self.options.timeout)
            status = status_of(msg)
            if status is not None:
                if status in ("204", "404"):  # end of batch / nothing there
                    return out
                raise Transient(f"direct get answered {status}")
            h = msg.headers or {}
            seq = int(h["Nats-Sequence"])
            out.append((seq, record_of(t.name, seq, _ts_ms(h["Nats-Time-Stamp"]), msg)))

