"""Files named on the command line: a device, a FIFO or a file past the cap is one error, never a hang.

``creative-hub ingest calendar /dev/zero`` read forever; a FIFO blocked the
open.  Every file-reading source gets both (and a link to /dev/zero) and must
answer with one per-item error each, and go on to the next file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources._fetch import FetchLimits
from creative_hub.sources.arxiv import ArxivSource
from creative_hub.sources.base import Source
from creative_hub.sources.bibtex import BibtexSource
from creative_hub.sources.calendar import CalendarSource, CeremonySource
from creative_hub.sources.crossref import CrossrefSource
from creative_hub.sources.feeds import FeedSource, PageSource
from creative_hub.sources.github_payloads import PayloadSource
from creative_hub.sources.ingest import ingest
from creative_hub.sources.mail import MailSource
from creative_hub.sources.notebooks import NotebookSource
from creative_hub.sources.stories import StorySource

pytestmark = pytest.mark.sqlite

SOURCES: dict[str, Callable[[list[Path]], Source]] = {
    "calendar": lambda paths: CalendarSource(paths),
    "ceremony": lambda paths: CeremonySource(paths),
    "bibtex": lambda paths: BibtexSource(paths),
    "arxiv": lambda paths: ArxivSource(files=paths),
    "crossref": lambda paths: CrossrefSource(files=paths),
    "feed": lambda paths: FeedSource(paths),
    "page": lambda paths: PageSource(paths),
    "mail": lambda paths: MailSource(paths),
    "github": lambda paths: PayloadSource(paths, event="push"),
    "story": lambda paths: StorySource(paths),
    "notebook": lambda paths: NotebookSource(paths),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
async def test_devices_and_fifos_are_one_error_each(hub: Hub, tmp_path: Path, name: str) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "zero.ics"
    link.symlink_to("/dev/zero")
    s = await ingest(hub, SOURCES[name]([Path("/dev/zero"), fifo, link]))
    assert s.ingested == 0 and len(s.skipped) == 3, s.skipped
    for e in s.skipped:
        assert "not a regular file" in e.reason, e


async def test_a_file_past_the_cap_is_one_error(hub: Hub, tmp_path: Path) -> None:
    big = tmp_path / "big.rss"
    big.write_bytes(b"<rss>" + b" " * 2048 + b"</rss>")
    s = await ingest(hub, FeedSource([big], limits=FetchLimits(max_bytes=1024)))
    (e,) = s.skipped
    assert e.reason == "cannot read: over 1024 bytes, the limit for one file (--max-bytes raises it)"


@pytest.mark.parametrize("name", ["story", "notebook"])
async def test_folders_of_stories_and_notebooks_read_no_links_out_and_no_devices(
    hub: Hub, tmp_path: Path, name: str
) -> None:
    # Like `ingest folder`: a link out of the folder would publish a file nobody put there.
    # The folder itself may lie under a hidden one (~/.local/...): only names below it count.
    suffix = ".md" if name == "story" else ".ipynb"
    root = tmp_path / ".config" / "work"
    root.mkdir(parents=True)
    (root / f"mine{suffix}").write_bytes(b"\x00 read, and refused")
    (root / f"alias{suffix}").symlink_to(root / f"mine{suffix}")  # a link inside: read
    outside = tmp_path / f"private{suffix}"
    outside.write_bytes(b"\x00 not read")
    (root / f"out{suffix}").symlink_to(outside)
    (root / f"zero{suffix}").symlink_to("/dev/zero")
    os.mkfifo(root / f"pipe{suffix}")
    s = await ingest(hub, SOURCES[name]([root]))
    assert s.ingested == 0
    reasons = {Path(e.ref).name: e.reason for e in s.skipped}
    assert reasons[f"out{suffix}"] == f"a link out of the folder (to {outside}): left out"
    assert reasons[f"zero{suffix}"].startswith("a link out of the folder (to /dev/zero)")
    assert f"pipe{suffix}" not in reasons  # not a file: not listed, and nothing blocked on it
    assert {f"mine{suffix}", f"alias{suffix}"} <= set(reasons)  # read (and refused as no story/notebook)
