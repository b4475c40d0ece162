"""How the Redis engine spells things: stream ids, stored entries, raw commands.

A record is a stream entry whose fields the append script writes in a fixed
order (``id``, ``key``, ``digest``, ``creator``, ``event``); its position is
the stream id ``<ms>-<seq>``.  An entry added by hand is read too
(``make_record`` takes it as it can; the hub dead-letters what is not an event).
"""

from __future__ import annotations

import json
from typing import Any

from ..base import Record

__all__ = ["command", "id_key", "make_record", "text"]


async def command(client: Any, *args: Any) -> Any:
    """``client.execute_command(*args)`` (untyped in redis-py)."""
    return await client.execute_command(*args)


def text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def id_key(position: str | bytes) -> tuple[int, int]:
    """``b"<ms>-<seq>"`` as a sortable pair."""
    s = position.decode() if isinstance(position, bytes) else position
    ms, _, seq = s.partition("-")
    return int(ms), int(seq)


def make_record(topic: str, sid: bytes, fields: list[bytes]) -> Record:
    """The Record of one raw stream entry (``sid``, flat ``[field, value, ...]``)."""
    # Fast path: an entry this engine wrote (fixed field order, see APPEND).
    if len(fields) == 10 and fields[0] == b"id" and fields[2] == b"key" and fields[8] == b"event":
        pos = sid.decode()
        time_ms = int(pos[: pos.index("-")])
        return Record(topic, pos, fields[1].decode(), fields[3].decode(), fields[9], time_ms)
    return _foreign_record(topic, sid, fields or [])


def _foreign_record(topic: str, sid: bytes, fields: list[bytes]) -> Record:
    # An entry added by hand.  With an `event` field it is taken as an event;
    # without one, its fields become a JSON object (the hub dead-letters it).
    pairs = {fields[i]: fields[i + 1] for i in range(0, len(fields) - 1, 2)}
    pos = sid.decode()
    time_ms = int(pos[: pos.index("-")])
    key = pairs.get(b"key", b"").decode(errors="replace")
    if b"event" in pairs:
        eid = pairs.get(b"id", sid).decode(errors="replace")
        return Record(topic, pos, eid, key, pairs[b"event"], time_ms)
    text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs.items()}
    return Record(topic, pos, pos, key, json.dumps(text, ensure_ascii=False).encode(), time_ms)
