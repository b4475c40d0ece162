"""`creative-hub ingest ...` as a person runs it: this repo's history and the fixture stories into one hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sqlite

REPO = Path(__file__).resolve().parents[2]


def run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CREATIVE_HUB_LOG": f"sqlite:///{db}",
        "CREATIVE_HUB_PRINCIPAL": "alice",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "creative_hub", "ingest", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_git_history_and_stories_make_a_browsable_hub(tmp_path: Path, fixtures_dir: Path) -> None:
    db = tmp_path / "hub.db"
    commits = len(
        subprocess.run(
            ["git", "-C", str(REPO), "log", "--all", "--format=%H"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )
    refs = len(
        subprocess.run(
            ["git", "-C", str(REPO), "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )
    r = run(db, "git", str(REPO), "--map", "lead@example.org=lead")
    assert r.returncode == 0, r.stderr
    assert f"git: {commits + refs} ingested, 0 already there, 0 skipped" in r.stdout
    (tmp_path / "stories").mkdir()
    for f in (fixtures_dir / "stories").iterdir():
        (tmp_path / "stories" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "stories" / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    r = run(db, "story", str(tmp_path / "stories"), "--owner", "grimm")
    assert r.returncode == 0, r.stderr
    assert "1 skipped" in r.stdout and "cover.jpg: binary file (NUL bytes), not a story" in r.stderr
    r = run(db, "story", str(tmp_path / "stories"), "--owner", "grimm")
    assert " 0 ingested" in r.stdout
    r = run(db, "git", str(REPO), "--map", "lead@example.org=lead")
    assert f"git: 0 ingested, {commits + refs} already there" in r.stdout
    topics = subprocess.run(
        [sys.executable, "-m", "creative_hub", "topics", "--log", f"sqlite:///{db}", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    counts = {t["name"]: t["count"] for t in json.loads(topics.stdout)}
    assert counts["creative.engineering"] == commits + refs and counts["creative.narrative"] > 21


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    r = run(tmp_path / "hub.db", "github", "--repo", "not a repo")
    assert r.returncode == 2 and "repo: 'not a repo' is not owner/name" in r.stderr
    assert "Traceback" not in r.stderr
    r = run(tmp_path / "hub.db", "mail")
    assert r.returncode == 2


def test_an_ingest_where_every_item_failed_exits_6(tmp_path: Path) -> None:
    # The arXiv API answers a bad id with 200 and an Atom feed holding one "Error" entry
    # (the response the arXiv API manual shows for id_list=1234.12345v1234).
    error_feed = Path(__file__).parent / "data" / "arxiv_api_error.xml"
    r = run(tmp_path / "hub.db", "arxiv", "--file", str(error_feed))
    assert r.returncode == 6, r.stderr
    assert "arxiv: 0 ingested, 0 already there, 1 skipped" in r.stdout
    assert "arXiv API error: incorrect id format for 1234.12345v1234" in r.stderr
    assert "nothing ingested, every item failed" in r.stderr


def test_ingest_and_verify_speak_json_for_scripts(tmp_path: Path) -> None:
    """Scripts capture the ids an ingest made (and why items were skipped) without scraping."""
    db = tmp_path / "hub.db"
    bib = tmp_path / "refs.bib"
    bib.write_text("@article{a, title = {One}, author = {Ada}, year = {2020}}\n"
                   "@article{b, title = {Two}, author = {Bo}, year = {2021}}\n")  # fmt: skip
    r = run(db, "bibtex", str(bib), "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert (first["source"], first["ingested"], first["already"], first["skipped"]) == ("bibtex", 2, 0, [])
    assert len(first["ids"]) == 2
    again = json.loads(run(db, "bibtex", str(bib), "--json").stdout)
    assert (again["ingested"], again["already"], again["ids"]) == (0, 2, first["ids"])
    junk = tmp_path / "junk.bib"
    junk.write_bytes(b"\x00\x01\x02 not text \xff")  # (\xff\xfe first would be a UTF-16 mark)
    r = run(db, "bibtex", str(junk), "--json")
    assert r.returncode == 6  # every item failed: nothing ingested
    failed = json.loads(r.stdout)
    assert failed["ingested"] == 0 and failed["skipped"][0]["ref"].endswith("junk.bib")
    assert failed["skipped"][0]["reason"] == "not BibTeX: a binary file (NUL bytes)"
    env = {**os.environ, "CREATIVE_HUB_LOG": f"sqlite:///{db}"}
    v = subprocess.run(
        [sys.executable, "-m", "creative_hub", "verify", first["ids"][0], "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert v.returncode == 0, v.stderr
    assert json.loads(v.stdout) == {
        "id": first["ids"][0], "creator": "bibtex", "valid": True, "lineage": 1, "not_verified": [],
    }  # fmt: skip
