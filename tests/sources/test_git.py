"""The git source on real repositories: this project's own history and a repo made here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources.base import Principals, arxiv_paper_id, commit_id, doi_paper_id
from creative_hub.sources.git import GitSource
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite

REPO = Path(__file__).resolve().parents[2]


def sh(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def make_repo(path: Path) -> Path:
    path.mkdir()
    sh(path, "init", "-q", "-b", "main")
    sh(path, "config", "user.name", "Ada Lovelace")
    sh(path, "config", "user.email", "ada@example.org")
    (path / "notes.md").write_text("one\ntwo\n")
    sh(path, "add", ".")
    sh(path, "commit", "-q", "-m", "Start the notes")
    (path / "notes.md").write_text("one\ntwo\nthree\n")
    (path / "logo.bin").write_bytes(bytes(range(256)))
    sh(path, "add", ".")
    sh(path, "commit", "-q", "-m", "Follow arXiv:2101.00001 and doi:10.1371/journal.pone.0033693\n\nBody.")
    return path


async def test_own_history_is_ingested_once(hub: Hub, stored) -> None:
    shas = sh(REPO, "log", "--all", "--reverse", "--format=%H").split()
    first = await ingest(hub, GitSource(REPO))
    assert first.ingested == len(shas) and not first.skipped
    events = await stored("creative.engineering")
    assert [e.data["sha"] for e in events] == shas
    assert [e.id for e in events] == [commit_id(s) for s in shas]
    top = events[0]
    assert top.type == "creative.engineering.commit" and top.hub == "shared" and top.visibility == "public"
    assert top.data["message"] == sh(REPO, "log", "-1", "--format=%B", shas[0]).strip()
    assert top.data["author"]["email"] == sh(REPO, "log", "-1", "--format=%ae", shas[0]).strip()
    assert top.data["files"] and top.data["additions"] > 0
    again = await ingest(hub, GitSource(REPO))
    assert again.ingested == 0 and again.already == len(shas)


async def test_fields_links_principals_and_incremental_state(hub: Hub, stored, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    state = tmp_path / "state.json"
    principals = Principals.load(extra=["ada@example.org=ada"])
    s = await ingest(hub, GitSource(repo, principals=principals, state=state))
    assert s.ingested == 2
    first, second = await stored("creative.engineering")
    assert first.data["message"] == "Start the notes" and first.data["files"] == ["notes.md"]
    assert first.data["additions"] == 2 and first.data["deletions"] == 0
    assert second.data["files"] == ["logo.bin", "notes.md"] and second.data["additions"] == 1
    assert second.data["parents"] == [first.data["sha"]]
    assert second.creator == "ada" and second.subject == "r" and second.source == "git:r"
    assert second.data["extra"]["links"] == [
        {"rel": "mentions", "id": arxiv_paper_id("2101.00001"), "ref": "arXiv:2101.00001"},
        {
            "rel": "mentions",
            "id": doi_paper_id("10.1371/journal.pone.0033693"),
            "ref": "doi:10.1371/journal.pone.0033693",
        },
    ]
    # With state, a re-run reads nothing; a new commit is all it reads.
    assert (await ingest(hub, GitSource(repo, principals=principals, state=state))).seen == 0
    (repo / "more.txt").write_text("x\n")
    sh(repo, "add", ".")
    sh(repo, "commit", "-q", "-m", "More")
    s = await ingest(hub, GitSource(repo, principals=principals, state=state))
    assert (s.ingested, s.already) == (1, 0)
    # Another principal map makes other events: the hub refuses them per item, named.
    s = await ingest(hub, GitSource(repo))
    assert s.ingested == 0 and len(s.skipped) == 3
    assert "already in the hub with other content" in s.skipped[0].reason


async def test_default_principal_is_a_slug_of_the_email(hub: Hub, stored, tmp_path: Path) -> None:
    await ingest(hub, GitSource(make_repo(tmp_path / "r")))
    assert {e.creator for e in await stored("creative.engineering")} == {"ada-example-org"}


async def test_not_a_repository_is_one_clear_error(hub: Hub, tmp_path: Path) -> None:
    from creative_hub.errors import ValidationError

    with pytest.raises(ValidationError, match="git log failed|not a git repository"):
        await ingest(hub, GitSource(tmp_path))
