"""Folders: file metadata one-shot, and --watch following changes (watchfiles)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources.folders import FolderSource
from creative_hub.sources.ingest import ListSource, ingest

pytestmark = pytest.mark.sqlite


async def test_one_shot_metadata(hub: Hub, stored, fixtures_dir: Path) -> None:
    s = await ingest(hub, FolderSource(fixtures_dir, owner="Curator"))
    files = sorted(p for p in fixtures_dir.rglob("*") if p.is_file())
    contents = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    # Ids are the content's: a second file with the same bytes is already there.
    assert (s.ingested, s.already, s.skipped) == (len(contents), len(files) - len(contents), [])
    events = {e.data["path"]: e for e in await stored("creative.metadata")}
    ics = fixtures_dir / "calendar" / "calconnect_lotus_daily_meeting.ics"
    e = events["calendar/calconnect_lotus_daily_meeting.ics"]
    assert e.data["size"] == ics.stat().st_size
    assert e.data["sha256"] == hashlib.sha256(ics.read_bytes()).hexdigest()
    assert e.data["media_type"] == "text/calendar" and e.creator == "folder"
    assert e.data["extra"] == {"owner": "Curator"}
    assert e.subject == "calendar/calconnect_lotus_daily_meeting.ics"
    assert events["PROVENANCE.md"].data["media_type"] == "text/markdown"
    assert (await ingest(hub, FolderSource(fixtures_dir, owner="Curator"))).already == len(files)


async def test_edit_is_a_new_revision_and_unreadable_file_is_skipped(
    hub: Hub, stored, tmp_path: Path
) -> None:
    root = tmp_path / "drive"
    root.mkdir()
    (root / "a.txt").write_text("one")
    (root / ".hidden").write_text("no")
    locked = root / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    try:
        s = await ingest(hub, FolderSource(root))
        if _can_read(locked):  # root reads anything: the error path is not reachable by permissions
            assert s.ingested == 2
        else:
            assert s.ingested == 1 and s.skipped[0].ref == "locked.txt"
    finally:
        locked.chmod(0o644)
    (root / "a.txt").write_text("two")
    s = await ingest(hub, FolderSource(root))
    shas = [e.data["sha256"] for e in await stored("creative.metadata") if e.data["path"] == "a.txt"]
    assert shas == [hashlib.sha256(b"one").hexdigest(), hashlib.sha256(b"two").hexdigest()]


def _can_read(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


async def test_watch_publishes_changes(hub: Hub, stored, tmp_path: Path) -> None:
    root = tmp_path / "drive"
    root.mkdir()
    source = FolderSource(root)
    stop = asyncio.Event()
    got: list[str] = []

    async def follow() -> None:
        async for items in source.watch(stop=stop):
            s = await ingest(hub, ListSource("folder", items))
            got.extend(e.data["path"] for e in await stored("creative.metadata"))
            if s.ingested:
                stop.set()

    task = asyncio.create_task(follow())
    # Keep writing until the watcher has picked a change up (it may start after the first write).
    for n in range(200):
        (root / "new.md").write_text(f"# draft {n}\n")
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            break
    stop.set()
    await asyncio.wait_for(task, 30)
    assert "new.md" in got


async def test_regular_files_only_and_no_links_out_of_the_folder(hub: Hub, stored, tmp_path: Path) -> None:
    import os

    root = tmp_path / "drive"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    (root / "alias.txt").symlink_to(root / "notes.txt")  # a link inside: read
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not in the folder")
    (root / "out.txt").symlink_to(outside)
    (root / "zero").symlink_to("/dev/zero")  # hung the walk, reading forever
    (root / "dangling").symlink_to(tmp_path / "nothing")
    os.mkfifo(root / "pipe")  # not a file at all: not listed, and nothing blocks on it
    s = await ingest(hub, FolderSource(root))
    assert (s.ingested, s.already) == (1, 1)  # the link inside has the same bytes: one content, one event
    reasons = {e.ref: e.reason for e in s.skipped}
    assert reasons["out.txt"] == (
        f"a link out of the folder (to {outside}): left out (--follow-links reads it)"
    )
    assert reasons["zero"].startswith("a link out of the folder (to /dev/zero)")
    assert reasons["dangling"] == "a broken or looping link: left out"
    assert sorted(e.data["path"] for e in await stored("creative.metadata")) == ["alias.txt"]
    s = await ingest(hub, FolderSource(root, follow_links=True))
    assert s.ingested == 1 and s.already == 2  # out.txt now; /dev/zero is still no regular file
    reasons = {e.ref: e.reason for e in s.skipped}
    assert reasons["zero"] == "not a regular file (a device, FIFO or socket): left out"
