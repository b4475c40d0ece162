"""A record handed out by a Redis consumer-group member, decoded only when asked.

Its ack is queued on its subscription (``RedisSubscription``) and sent with
the member's next round trip; see ``group.py`` for the member itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._subscription import LazyDelivery, SubState
from ..base import Record
from .names import make_record

if TYPE_CHECKING:
    from .group import RedisSubscription

__all__ = ["RedisDelivery"]


class RedisDelivery(LazyDelivery):
    """A Delivery whose ack is queued on its subscription (sent with the next batch).

    It keeps the stream entry's fields as Redis sent them and makes the Record
    only when asked: a handler that reads ``body`` (and ``id``) costs no
    decoding of positions and keys, which is most of the consume path's work.
    """

    __slots__ = ("_at", "_fields", "_part", "_sid", "_sub")

    def __init__(
        self, fields: list[bytes], delivery_count: int, sub: RedisSubscription, part: int, sid: bytes
    ) -> None:
        # Not Delivery.__init__: ack/nack are methods here, no closures per record.
        self._fields = fields
        self._rec: Record | None = None
        self._at = 0.0  # when it was handed out (monotonic)
        self.delivery_count = delivery_count
        self._done = False
        self._owner = self._sub = sub  # (no _token: _part and _sid are the token)
        self._part = part
        self._sid = sid  # the stream id as Redis sent it, for XACK without re-encoding

    def _make_record(self) -> Record:
        return make_record(self._sub.topic, self._sid, self._fields)

    @property
    def body(self) -> bytes:
        f = self._fields
        if len(f) == 10 and f[8] == b"event":  # an entry this engine wrote (see make_record)
            return f[9]
        return self.record.body

    @property
    def id(self) -> str:
        f = self._fields
        if len(f) == 10 and f[0] == b"id" and f[8] == b"event":
            return f[1].decode()
        return self.record.id

    async def ack(self) -> None:
        """Mark handled; the XACK goes out with the subscription's next round trip."""
        if not self._done:
            self._done = True
            sub = self._sub
            if sub.state is SubState.OPEN:
                # Inlined (this runs once per record): forget it, queue the XACK.
                sub._outstanding.pop(self._sid, None)
                acks = sub._acks.get(self._part)
                if acks is None:
                    sub._acks[self._part] = [self._sid]
                else:
                    acks.append(self._sid)
            else:
                await sub._ack_now(self)

    async def nack(self, delay: float = 0.0) -> None:
        """Not handled: deliver again after ``delay`` seconds."""
        if not self._done:
            self._done = True
            self._sub._nacked(self, delay)
