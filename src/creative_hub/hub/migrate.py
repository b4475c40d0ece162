"""Copying topics from one log to another (``creative-hub migrate``): ids, order and bodies kept.

A log-to-log copy: it uses no ``Hub`` (the records are copied as they are,
signatures and junk included) and no access rules (it runs with the rights
of whoever can open both logs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import msgspec

from ..errors import HubError
from ..event import decode_event, digest
from ..log import Entry, Log

__all__ = ["migrate"]


async def migrate(
    source: Log,
    target: Log,
    *,
    topics: Sequence[str] | None = None,
    batch: int = 500,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, tuple[int, int]]:
    """Copy topics from ``source`` to ``target`` with ids, order and bodies kept.

    Returns ``{topic: (copied, already_there)}``.  Running it again copies
    nothing (ids dedup).  Group positions are not copied: positions differ
    between engines, so groups on the target start from its beginning.
    ``progress(topic, done, total)`` is called after each batch.
    """
    infos = {t.name: t for t in await source.topics()}
    names = list(topics) if topics is not None else sorted(infos)
    missing = [n for n in names if n not in infos]
    if missing:
        raise HubError(f"topic(s) not in the source log: {', '.join(missing)}")
    return {
        name: await _copy_topic(source, target, name, infos[name].count, batch, progress) for name in names
    }


async def _copy_topic(
    source: Log,
    target: Log,
    name: str,
    total: int,
    batch: int,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[int, int]:
    copied = dup = done = 0
    chunk: list[Entry] = []
    records = source.read(name)
    while True:
        r = await anext(records, None)
        if r is not None:
            try:
                event = decode_event(r.body)
                d, creator = digest(event), event.creator or ""
            except (msgspec.DecodeError, msgspec.ValidationError):
                d, creator = _raw_digest(r.body), ""  # junk is copied as it is
            chunk.append(Entry(r.id, r.key, r.body, d, creator))
        if chunk and (r is None or len(chunk) >= batch):
            for a in await target.append(name, chunk):
                dup += a.duplicate
                copied += not a.duplicate
            done += len(chunk)
            chunk = []
            if progress is not None:
                progress(name, done, total)
        if r is None:
            return copied, dup


def _raw_digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()
