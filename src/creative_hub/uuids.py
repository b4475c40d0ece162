"""Event ids: fresh random ones (``new_id``) and stable ones derived from a
source's own identifiers (``derive_id``), as ``creative_hub.event`` hands them out."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

__all__ = ["NAMESPACE", "derive_id", "new_id"]

NAMESPACE = uuid.UUID("6f1c3e1e-8a5b-4c3e-9a59-6b1f0c7d2e10")  # for derive_id

_ID_BATCH = 256  # ids made from one os.urandom call
# UUIDv4 over a whole batch at once: keep 122 random bits of each 16 bytes,
# set the version nibble (4) and the RFC 4122 variant bits (10).
_ID_KEEP = int.from_bytes((b"\xff" * 6 + b"\x0f\xff\x3f" + b"\xff" * 7) * _ID_BATCH, "big")
_ID_SET = int.from_bytes((b"\x00" * 6 + b"\x40\x00\x80" + b"\x00" * 7) * _ID_BATCH, "big")
_ID_COLUMNS = [c for c in range(36) if c not in (8, 13, 18, 23)]  # where an id's 32 hex digits go


def _id_batch() -> Iterator[str]:
    """A batch of fresh UUIDv4 strings from one read of the OS's random source.

    ``str(uuid.uuid4())`` builds a ``UUID`` object and calls ``os.urandom``
    per id (about 1 us); this lays out a whole batch with 33 strided copies
    (digit k of every id at once), about 0.15 us an id.  Same form as
    ``uuid4``: lowercase 8-4-4-4-12, version 4, 122 random bits."""
    bits = int.from_bytes(os.urandom(16 * _ID_BATCH), "big") & _ID_KEEP | _ID_SET
    digits = bits.to_bytes(16 * _ID_BATCH, "big").hex().encode()  # 32 per id
    text = bytearray(b"-" * (37 * _ID_BATCH))  # 36 per id and a space
    for k, column in enumerate(_ID_COLUMNS):
        text[column::37] = digits[k::32]
    text[36::37] = b" " * _ID_BATCH
    return iter(text.decode().split())


_ids: Iterator[str] = iter(())


def _forget_ids() -> None:
    """A forked child must not hand out the ids its parent holds in the batch."""
    global _ids
    _ids = iter(())


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_ids)


def new_id() -> str:
    """A new event id: a random UUIDv4 string, as ``str(uuid.uuid4())`` gives.

    Each id is taken from a list iterator, whose ``next`` is one step under
    the GIL, so two threads never get the same one; two threads refilling at
    once each take from their own batch."""
    global _ids
    try:
        return next(_ids)
    except StopIteration:
        batch = _id_batch()
        first = next(batch)
        _ids = batch
        return first


def derive_id(*parts: str) -> str:
    """A stable id from a source's own identifiers, so re-ingesting adds nothing.

    derive_id("github", "owner/repo", "commit", sha)
    """
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))
