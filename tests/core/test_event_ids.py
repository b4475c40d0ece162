"""The ids the hub gives events without one (``event.new_id``): UUIDv4 strings as
``str(uuid.uuid4())`` writes them, unique, and never repeated by a forked child."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

from creative_hub.event import new_id

pytestmark = pytest.mark.sqlite

MANY = 3000  # more than one batch of ids (uuids._ID_BATCH)


def test_new_ids_are_version_4_uuids_written_as_uuid4_writes_them() -> None:
    ids = [new_id() for _ in range(MANY)]
    assert len(set(ids)) == MANY
    for i in ids:
        u = uuid.UUID(i)
        assert str(u) == i  # lowercase 8-4-4-4-12
        assert u.version == 4 and u.variant == uuid.RFC_4122


def test_every_random_digit_varies() -> None:
    """122 random bits: each digit but the version takes all 16 values, the
    variant digit its four (a fixed or repeated part would show here)."""
    ids = [new_id() for _ in range(MANY)]
    for pos in range(36):
        seen = {i[pos] for i in ids}
        if pos in (8, 13, 18, 23):
            assert seen == {"-"}
        elif pos == 14:
            assert seen == {"4"}
        elif pos == 19:
            assert seen == set("89ab")
        else:
            assert len(seen) == 16, pos


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parent_s_ids() -> None:
    new_id()  # the parent now holds the rest of a batch
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.close(r)
        os.write(w, new_id().encode())
        os._exit(0)
    os.close(w)
    try:
        child = os.read(r, 100).decode()
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert uuid.UUID(child).version == 4
    assert child != new_id()
