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
    refs = sh(
        REPO, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads", "refs/tags"
    ).split("\n")
    refs = [r for r in refs if r]
    first = await ingest(hub, GitSource(REPO))
    assert first.ingested == len(shas) + len(refs) and not first.skipped
    everything = await stored("creative.engineering")
    events = [e for e in everything if e.type == "creative.engineering.commit"]
    branches = sorted(
        f"{e.data['ref']} {e.data['sha']}" for e in everything if e.type == "creative.engineering.ref"
    )
    assert branches == sorted(refs)
    assert [e.data["sha"] for e in events] == shas
    assert [e.id for e in events] == [commit_id(s) for s in shas]
    top = events[0]
    assert top.type == "creative.engineering.commit" and top.hub == "shared" and top.visibility == "public"
    assert top.data["message"] == sh(REPO, "log", "-1", "--format=%B", shas[0]).strip()
    assert top.data["author"]["email"] == sh(REPO, "log", "-1", "--format=%ae", shas[0]).strip()
    assert top.data["files"] and top.data["additions"] > 0
    again = await ingest(hub, GitSource(REPO))
    assert again.ingested == 0 and again.already == len(shas) + len(refs)


async def test_fields_links_principals_and_incremental_state(hub: Hub, stored, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    state = tmp_path / "state.json"
    principals = Principals.load(extra=["ada@example.org=ada"])
    sh(repo, "tag", "-a", "v1", "-m", "First cut")
    s = await ingest(hub, GitSource(repo, principals=principals, state=state))
    assert s.ingested == 4  # two commits, the main branch, the v1 tag
    first, second, *refs = await stored("creative.engineering")
    assert {(r.data["ref"], r.data["ref_type"]) for r in refs} == {("main", "branch"), ("v1", "tag")}
    assert all(r.data["sha"] == second.data["sha"] and r.creator == "git" for r in refs)
    mapped = [{"claim": "ada@example.org", "principal": "ada"}]
    assert all(r.data["extra"]["mapped"] == mapped for r in refs)
    assert first.data["message"] == "Start the notes" and first.data["files"] == ["notes.md"]
    assert first.data["additions"] == 2 and first.data["deletions"] == 0
    assert second.data["files"] == ["logo.bin", "notes.md"] and second.data["additions"] == 1
    assert second.data["parents"] == [first.data["sha"]]
    # Written by git; the author is a claim, the map recorded; the repository is named by
    # its first commit (it has no remote), never by the directory it lies in.
    root = sh(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    assert second.creator == "git" and second.data["extra"]["mapped"] == mapped
    assert second.subject == f"local/{root[:12]}" and second.source == f"git:local/{root[:12]}"
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
    assert (s.ingested, s.already) == (2, 0)  # the commit, and main where it moved to
    # Another principal map makes other events: the hub refuses them per item, named.
    s = await ingest(hub, GitSource(repo))
    assert s.ingested == 0 and len(s.skipped) == 5  # three commits, main, v1
    assert "already in the hub with other content" in s.skipped[0].reason


async def test_git_writes_and_the_author_is_a_claim(hub: Hub, stored, tmp_path: Path) -> None:
    await ingest(hub, GitSource(make_repo(tmp_path / "r")))
    events = await stored("creative.engineering")
    assert {e.creator for e in events} == {"git"}
    commits = [e for e in events if e.type.endswith("commit")]
    assert {e.data["author"]["email"] for e in commits} == {"ada@example.org"}
    assert all("mapped" not in e.data.get("extra", {}) for e in events)


async def test_not_a_repository_is_one_clear_error(hub: Hub, tmp_path: Path) -> None:
    from creative_hub.errors import ValidationError

    with pytest.raises(ValidationError, match="git log failed|not a git repository"):
        await ingest(hub, GitSource(tmp_path))
