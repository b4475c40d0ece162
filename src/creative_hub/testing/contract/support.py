"""What the contract's tests share: fresh topics and entries, bounded waits, declared features.

Engines' own tests use these too (``new_topic``, ``make_entries``, ``WAIT``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Unpack

import pytest

from ...log import Delivery, Entry, Log, Record
from ...log.base import ReadOptions

WAIT = 60.0  # seconds a test waits for something that should happen soon

# What an engine may declare in its class's FEATURES (creative_hub.log.Feature values).
OPTIONAL_FEATURES = frozenset({"delete", "atomic_append", "gap_counts", "append_hint"})

# subscribe() arguments every engine refuses with a ValidationError naming the argument.
BAD_SUBSCRIBE: list[tuple[str, dict[str, object]]] = [
    ("topic", {"topic": "Not A Topic"}),
    ("group", {"group": ""}),
    ("group", {"group": "two words"}),
    ("group", {"group": "tab\there"}),
    ("group", {"group": "line\nbreak"}),
    ("group", {"group": "g" * 201}),
    ("group", {"group": 7}),
    ("consumer", {"consumer": ""}),
    ("consumer", {"consumer": "a b"}),
    ("ack_timeout", {"ack_timeout": 0}),
    ("ack_timeout", {"ack_timeout": -1.0}),
    ("ack_timeout", {"ack_timeout": float("nan")}),
    ("ack_timeout", {"ack_timeout": float("inf")}),
    ("ack_timeout", {"ack_timeout": "30"}),
    ("start", {"start": "sideways"}),
    ("batch", {"batch": 0}),
    ("batch", {"batch": -5}),
    ("batch", {"batch": 1.5}),
    ("batch", {"batch": True}),
]


def features(log: Log) -> frozenset[str]:
    """What ``log``'s engine declares it can do beyond the contract (its class's FEATURES)."""
    declared = getattr(type(log), "FEATURES", None)
    return frozenset(str(f) for f in declared) if isinstance(declared, frozenset) else frozenset()


def new_topic(prefix: str = "contract") -> str:
    """A topic name no other test uses."""
    return f"{prefix}.t{uuid.uuid4().hex[:12]}"


def make_entries(n: int, *, keys: list[str] | None = None, tag: str = "") -> list[Entry]:
    """``n`` entries with fresh ids; ``keys`` are used round-robin (default one key)."""
    keys = keys or ["alice"]
    out = []
    for i in range(n):
        key = keys[i % len(keys)]
        eid = uuid.uuid4().hex
        body = json.dumps({"id": eid, "key": key, "n": i, "tag": tag}).encode()
        out.append(Entry(eid, key, body, hashlib.sha256(body).hexdigest()[:32], creator=key))
    return out


async def topic_with(log: Log, n: int, *, keys: list[str] | None = None) -> tuple[str, list[Entry]]:
    """A new topic holding ``n`` fresh entries (``make_entries(n, keys=keys)``), and the entries."""
    topic = new_topic()
    entries = make_entries(n, keys=keys)
    await log.append(topic, entries)
    return topic, entries


def assert_each_once_in_key_order(got: Sequence[Delivery], entries: Sequence[Entry], topic: str) -> None:
    """``got`` is every entry once, each first delivered, each key's in append order."""
    assert sorted(d.id for d in got) == sorted(e.id for e in entries)
    for key in sorted({e.key for e in entries}):
        ns = [json.loads(d.body)["n"] for d in got if d.key == key]
        assert ns == sorted(ns), f"{key} out of order: {ns}"
    assert all(d.delivery_count == 1 and d.topic == topic for d in got)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT, what: str = "") -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not true after {timeout}s: {what}")
        await asyncio.sleep(0.1)


async def read_all(log: Log, topic: str, **options: Unpack[ReadOptions]) -> list[Record]:
    """Every record ``log.read(topic, **options)`` yields, as a list."""
    return [r async for r in log.read(topic, **options)]


async def holds(value: bool) -> bool:
    """``value``, awaitable: for ``eventually(lambda: holds(...))`` on a plain condition."""
    return value
