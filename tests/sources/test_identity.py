"""Identity, not location (issue 19): ids come from what a thing is, never from where it lies.

For every source: a second ingest adds nothing, and the same material moved,
renamed or copied (another file name, another folder, a clone of the
repository, a message moved from an mbox into an .eml) adds nothing either
-- no duplicates, and no false "changed at the source?" skips.
"""

from __future__ import annotations

import json
import mailbox
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mcp import StdioServerParameters

from creative_hub.hub import Hub
from creative_hub.sources.arxiv import ArxivSource
from creative_hub.sources.base import Source
from creative_hub.sources.bibtex import BibtexSource
from creative_hub.sources.calendar import CalendarSource, CeremonySource
from creative_hub.sources.crossref import CrossrefSource
from creative_hub.sources.feeds import FeedSource, PageSource
from creative_hub.sources.folders import FolderSource
from creative_hub.sources.git import GitSource
from creative_hub.sources.github import sign, webhook_app
from creative_hub.sources.ingest import ingest
from creative_hub.sources.mail import MailSource
from creative_hub.sources.mcp import McpCall, McpSource
from creative_hub.sources.stories import StorySource

pytestmark = pytest.mark.sqlite


async def same_at_another_place(hub: Hub, here: Callable[[], Source], there: Callable[[], Source]) -> None:
    first = await ingest(hub, here())
    assert first.ingested > 0 and first.skipped == [], first
    again = await ingest(hub, here())
    assert (again.ingested, again.skipped) == (0, []), again
    moved = await ingest(hub, there())
    assert (moved.ingested, moved.skipped) == (0, []), moved
    assert moved.already == first.ingested + first.already


def copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)  # a copy: another path, a new modification time
    return dst


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout


async def test_arxiv(hub: Hub, fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "arxiv" / "query_au_del_maestro.xml"
    moved = copy(src, tmp_path / "elsewhere" / "renamed.xml")
    await same_at_another_place(hub, lambda: ArxivSource(files=[src]), lambda: ArxivSource(files=[moved]))


async def test_crossref(hub: Hub, fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "crossref" / "works_10.1371_journal.pone.0033693.json"
    moved = copy(src, tmp_path / "elsewhere" / "work.json")
    await same_at_another_place(
        hub, lambda: CrossrefSource(files=[src]), lambda: CrossrefSource(files=[moved])
    )


async def test_bibtex(hub: Hub, fixtures_dir: Path, tmp_path: Path) -> None:
    # Two of its entries share one arXiv id: both are kept (their ids include the key).
    src = copy(fixtures_dir / "bibtex" / "mendeley_export_random.bib", tmp_path / "refs.bib")
    moved = copy(src, tmp_path / "elsewhere" / "library.bib")
    await same_at_another_place(hub, lambda: BibtexSource([src]), lambda: BibtexSource([moved]))


async def test_calendar(hub: Hub, fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "calendar" / "calconnect_lotus_daily_meeting.ics"
    moved = copy(src, tmp_path / "elsewhere" / "meetings.ics")
    await same_at_another_place(hub, lambda: CalendarSource([src]), lambda: CalendarSource([moved]))


async def test_ceremony(hub: Hub, tmp_path: Path) -> None:
    src = tmp_path / "solstice.yaml"
    src.write_text("title: Winter circle\nstart: 2026-12-21T17:00:00+01:00\nhost: alice\n")
    moved = copy(src, tmp_path / "elsewhere" / "circle.yaml")
    await same_at_another_place(hub, lambda: CeremonySource([src]), lambda: CeremonySource([moved]))


async def test_mail_mbox_renamed_and_a_message_saved_as_eml(
    hub: Hub, fixtures_dir: Path, tmp_path: Path
) -> None:
    src = fixtures_dir / "email" / "maven-dev-2017-11_thread_download-links.mbox"
    eml = fixtures_dir / "email" / "gmail_reply.eml"
    renamed = copy(src, tmp_path / "archive" / "2017.mbox")
    renamed_eml = copy(eml, tmp_path / "archive" / "saved-reply.eml")
    await same_at_another_place(
        hub, lambda: MailSource([src, eml]), lambda: MailSource([renamed, renamed_eml])
    )
    box = mailbox.mbox(src, create=False)
    try:
        first = box.get_bytes(box.keys()[0])
    finally:
        box.close()
    (tmp_path / "one.eml").write_bytes(first)  # one message of the mbox, saved on its own
    s = await ingest(hub, MailSource([tmp_path / "one.eml"]))
    assert (s.ingested, s.already, s.skipped) == (0, 1, [])


async def test_feed(hub: Hub, fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "feeds" / "medium_content-encoded.rss"
    moved = copy(src, tmp_path / "elsewhere" / "saved.xml")
    await same_at_another_place(hub, lambda: FeedSource([src]), lambda: FeedSource([moved]))


async def test_saved_page(hub: Hub, tmp_path: Path) -> None:
    page = b"<html><head><title>Saved</title><meta name='description' content='d'></head></html>"
    src = tmp_path / "page.html"
    src.write_bytes(page)
    moved = copy(src, tmp_path / "elsewhere" / "copy.html")
    await same_at_another_place(hub, lambda: PageSource([src]), lambda: PageSource([moved]))


async def test_folder_moved_and_a_file_renamed(hub: Hub, tmp_path: Path) -> None:
    root = tmp_path / "drive"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("one")
    (root / "sub" / "b.txt").write_text("two")
    moved = tmp_path / "new-home" / "drive"
    shutil.copytree(root, moved, copy_function=shutil.copyfile)  # new times too
    (moved / "a.txt").rename(moved / "renamed.txt")
    await same_at_another_place(hub, lambda: FolderSource(root), lambda: FolderSource(moved))


async def test_git_clone_and_copy(hub: Hub, tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    sh(repo, "config", "user.name", "Ada")
    sh(repo, "config", "user.email", "ada@example.org")
    (repo / "notes.md").write_text("one\n")
    sh(repo, "add", ".")
    sh(repo, "commit", "-q", "-m", "Start")
    sh(repo, "tag", "v1")
    clone = tmp_path / "elsewhere" / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    copied = tmp_path / "copied-under-another-name"
    shutil.copytree(repo, copied)
    await same_at_another_place(hub, lambda: GitSource(repo), lambda: GitSource(copied))
    s = await ingest(hub, GitSource(clone, rev="main"))  # the clone's own branch and tag: the same refs
    assert (s.ingested, s.skipped) == (0, []), s


async def test_story_copied_out_of_its_repository_and_renamed(
    hub: Hub, fixtures_dir: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "book"
    repo.mkdir()
    sh(repo, "init", "-q", "-b", "main")
    sh(repo, "config", "user.name", "Ada")
    sh(repo, "config", "user.email", "ada@example.org")
    story = copy(fixtures_dir / "stories" / "grimm_hansel-and-gretel.txt", repo / "hansel.txt")
    sh(repo, "add", ".")
    sh(repo, "commit", "-q", "-m", "The tale")
    out = copy(story, tmp_path / "desk" / "hansel.txt")
    renamed = copy(story, tmp_path / "desk" / "the-tale.txt")
    await same_at_another_place(hub, lambda: StorySource([story]), lambda: StorySource([out]))
    s = await ingest(hub, StorySource([renamed]))
    assert (s.ingested, s.skipped) == (0, []), s


async def test_mcp_config_elsewhere(hub: Hub, tmp_path: Path) -> None:
    server = (
        "from mcp.server import MCPServer\n"
        "server = MCPServer('notes')\n"
        "@server.tool()\n"
        "def note(topic: str) -> str:\n"
        "    return f'Notes on {topic}'\n"
        "if __name__ == '__main__':\n"
        "    server.run()\n"
    )
    here = tmp_path / "a" / "server.py"
    here.parent.mkdir()
    here.write_text(server)
    there = copy(here, tmp_path / "b" / "moved_server.py")
    calls = [McpCall(tool="note", arguments={"topic": "lattices"})]

    def source(script: Path) -> McpSource:
        return McpSource(
            StdioServerParameters(command=sys.executable, args=[str(script)]), name="notes", calls=calls
        )

    await same_at_another_place(hub, lambda: source(here), lambda: source(there))


async def test_github_webhook_redelivered_under_another_guid(hub: Hub, fixtures_dir: Path) -> None:
    body = (fixtures_dir / "github" / "pull_request" / "opened.payload.json").read_bytes()
    app = webhook_app(hub, "s")
    stored = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        for _ in range(2):
            headers = {
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign("s", body),
            }
            r = await c.post("/webhooks/github", content=body, headers=headers)
            stored.append((r.json()["stored"], r.json()["duplicates"]))
    assert stored == [(1, 0), (0, 1)]
    assert json.loads(body)["pull_request"]["number"] == 2


async def test_maildir_message_read_then_filed_and_one_without_a_message_id(
    hub: Hub, fixtures_dir: Path, tmp_path: Path
) -> None:
    # A mail client moves a message from new/ to cur/ once read, renamed with its flags
    # (":2,S"), and may file it in another Maildir: the same message, already there.
    box = mailbox.Maildir(tmp_path / "inbox", create=True)
    eml = (fixtures_dir / "email" / "gmail_reply.eml").read_bytes()
    no_id = (
        b"From: Ada <ada@example.org>\nTo: bo@example.org\nSubject: no id\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\n\nhi\n"
    )
    keys = [box.add(eml), box.add(no_id)]
    box.close()
    first = await ingest(hub, MailSource([tmp_path / "inbox"]))
    assert (first.ingested, first.skipped) == (2, []), first
    box = mailbox.Maildir(tmp_path / "inbox", create=False)
    for key in keys:
        msg = box.get_message(key)
        msg.set_subdir("cur")
        msg.add_flag("S")
        box[key] = msg  # rewritten under cur/ with its flags
    box.close()
    filed = mailbox.Maildir(tmp_path / "archive", create=True)
    filed.add(eml)
    filed.add(no_id)
    filed.close()
    assert not list((tmp_path / "inbox" / "new").iterdir())
    for where in ("inbox", "archive"):
        s = await ingest(hub, MailSource([tmp_path / where]))
        assert (s.ingested, s.already, s.skipped) == (0, 2, []), (where, s)
