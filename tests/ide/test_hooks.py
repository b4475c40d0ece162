"""Git hooks against a real hub server: commits published as they happen, spooled while it is away.

A real repository in a temp dir, real `git commit`s, a real server that is
stopped and started again; `ingest git` afterwards finds nothing new.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from _hubproc import HubProcess
from creative_hub.sources.base import commit_id

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]

ORIGINAL_HOOK = (
    '#!/bin/sh\necho "the team\'s own hook ran: $*" >> "$(git rev-parse --git-dir)/own-hook.log"\n'
)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "hub")
    h.start()
    try:
        yield h
    finally:
        h.stop()


def sh(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert r.returncode == 0, f"{args}: {r.stdout} {r.stderr}"
    return r.stdout


def creative_hub(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("CREATIVE_HUB_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "creative_hub", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def commit(repo: Path, n: int) -> tuple[str, float]:
    """Make commit n with `git commit`; its sha and how long git took."""
    (repo / f"file{n}.txt").write_text(f"line {n}\n")
    sh(repo, "git", "add", f"file{n}.txt")
    env = {**os.environ, "GIT_AUTHOR_DATE": f"2026-12-0{1 + n % 5}T10:00:0{n % 10}+01:00"}
    env.pop("CREATIVE_HUB_TOKEN", None)
    started = time.monotonic()
    sh(repo, "git", "commit", "-q", "-m", f"commit {n}: mentions arXiv:2101.0000{n}", env=env)
    took = time.monotonic() - started
    return sh(repo, "git", "rev-parse", "HEAD").strip(), took


def arrives(client: httpx.Client, event_id: str, limit: float = 20.0) -> float | None:
    """Seconds until the event can be read from the hub (None: not within ``limit``)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if client.get(f"/v1/events/{event_id}").status_code == 200:
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def status(repo: Path) -> dict[str, object]:
    r = creative_hub(repo, "hooks", "status", "--repo", str(repo), "--json")
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def test_hooks_publish_commits_spool_offline_and_ingest_adds_nothing(hub: HubProcess, tmp_path: Path) -> None:
    repo = tmp_path / "work"
    repo.mkdir()
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.name", "Alice Liddell")
    sh(repo, "git", "config", "user.email", "alice@example.org")
    own = repo / ".git" / "hooks" / "post-commit"
    own.write_text(ORIGINAL_HOOK)
    own.chmod(0o750)

    r = creative_hub(
        repo, "hooks", "install", "--repo", str(repo), "--url", hub.url, "--token", hub.tokens["alice"]
    )
    assert r.returncode == 0, r.stderr
    assert "post-commit.creative-hub-orig" in r.stdout
    assert stat.S_IMODE((repo / ".git" / "creative-hub" / "token").stat().st_mode) == 0o600

    latencies: list[float] = []
    shas: list[str] = []
    with hub.client("bob") as reader:
        for n in range(3):
            sha, _ = commit(repo, n)
            shas.append(sha)
            seen = arrives(reader, f"alice~{commit_id(sha)}")  # alice's own: her namespace
            assert seen is not None, (repo / ".git" / "creative-hub" / "hooks.log").read_text()
            latencies.append(seen)
        event = reader.get(f"/v1/events/alice~{commit_id(shas[0])}").json()["event"]
    print(f"\ncommit -> readable in the hub: {', '.join(f'{s * 1000:.0f} ms' for s in latencies)}")
    assert event["creator"] == "alice" and event["signature"]  # the committer's principal, signed
    assert event["data"]["sha"] == shas[0] and event["data"]["message"].startswith("commit 0")
    assert (repo / ".git" / "own-hook.log").read_text().count("the team's own hook ran") == 3

    # the hub goes away: commits go on at once, the events wait in the spool
    hub.stop()
    for n in (3, 4):
        sha, took = commit(repo, n)
        shas.append(sha)
        print(f"commit {n} with the hub down took {took * 1000:.0f} ms")
    st = status(repo)
    assert st["commits"] == 2 and st["events"] == 3  # two commits and where main points now
    assert st["installed"] == ["post-commit", "post-merge", "post-rewrite"]

    # back: flush delivers them
    hub.start()
    r = creative_hub(repo, "hooks", "flush", "--repo", str(repo), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["waiting"] == 0
    assert status(repo)["events"] == 0
    with hub.client("alice") as c:
        for sha in shas:
            assert c.get(f"/v1/events/alice~{commit_id(sha)}").status_code == 200

    # an amend is a rewrite: the new commit goes out too
    sh(repo, "git", "commit", "-q", "--amend", "-m", "commit 4, reworded")
    amended = sh(repo, "git", "rev-parse", "HEAD").strip()
    with hub.client("alice") as c:
        assert arrives(c, f"alice~{commit_id(amended)}") is not None

    # ingest git afterwards, by alice: every commit and the branch are already there
    r = creative_hub(
        repo,
        "ingest",
        "git",
        str(repo),
        "--log",
        hub.log_url,
        "--token",
        hub.tokens["alice"],
    )
    assert r.returncode == 0, r.stderr
    assert "git: 0 ingested, 6 already there, 0 skipped" in r.stdout, r.stdout + r.stderr

    # uninstall puts the team's hook back as it was
    r = creative_hub(repo, "hooks", "uninstall", "--repo", str(repo))
    assert r.returncode == 0, r.stderr
    assert own.read_text() == ORIGINAL_HOOK and stat.S_IMODE(own.stat().st_mode) == 0o750
    assert not (repo / ".git" / "hooks" / "post-merge").exists()
    assert not (repo / ".git" / "hooks" / "post-commit.creative-hub-orig").exists()


def test_a_broken_setup_never_fails_a_commit(tmp_path: Path) -> None:
    """No hub at all, a bad token file: the commit succeeds and the log says why."""
    repo = tmp_path / "work"
    repo.mkdir()
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.email", "bob@example.org")
    sh(repo, "git", "config", "user.name", "Bob")
    r = creative_hub(repo, "hooks", "install", "--repo", str(repo), "--url", "http://127.0.0.1:9")
    assert r.returncode == 0, r.stderr
    sha, _ = commit(repo, 1)
    assert sha
    r = creative_hub(repo, "hooks", "flush", "--repo", str(repo))
    assert r.returncode == 6 and "cannot reach the hub" in r.stderr
    assert status(repo)["commits"] == 1


def test_a_hub_that_hangs_never_holds_up_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts and never answers: the first commit's flush hangs on it, and the
    second commit still completes while that connection is open (the spool is not locked
    across the network)."""
    monkeypatch.setenv("CREATIVE_HUB_HOOK_TIMEOUT", "300")  # the hung flush outlives the test's commits
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    repo = tmp_path / "work"
    repo.mkdir()
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.email", "carol@example.org")
    sh(repo, "git", "config", "user.name", "Carol")
    assert creative_hub(repo, "hooks", "install", "--url", f"http://127.0.0.1:{port}").returncode == 0
    try:
        commit(repo, 1)
        listener.settimeout(60)
        first, _ = listener.accept()  # the detached flush, now waiting for an answer that never comes
        with first:
            commit(repo, 2)
            first.setblocking(False)
            still_open = True
            try:
                while chunk := first.recv(65536):  # the request it sent; then EOF if it gave up
                    del chunk
                still_open = False
            except BlockingIOError:
                pass  # nothing more to read and not closed: the flush is still waiting
            assert still_open, "the second commit waited for the first flush to give up"
            assert status(repo)["commits"] == 2
    finally:
        listener.close()


def test_a_pull_publishes_our_merge_not_other_peoples_commits(hub: HubProcess, tmp_path: Path) -> None:
    """post-merge: bob's commits pulled into alice's clone stay bob's (not published as alice);
    alice's merge commit goes out; `ingest git` then adds only bob's work."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    sh(upstream, "git", "init", "-q", "-b", "main")
    sh(upstream, "git", "config", "user.email", "bob@example.org")
    sh(upstream, "git", "config", "user.name", "Bob")
    commit(upstream, 1)
    mine = tmp_path / "mine"
    sh(tmp_path, "git", "clone", "-q", str(upstream), str(mine))
    sh(mine, "git", "config", "user.email", "alice@example.org")
    sh(mine, "git", "config", "user.name", "Alice")
    sh(mine, "git", "config", "pull.rebase", "false")
    token = hub.tokens["alice"]
    assert creative_hub(mine, "hooks", "install", "--url", hub.url, "--token", token).returncode == 0
    own, _ = commit(mine, 2)
    theirs, _ = commit(upstream, 3)
    sh(mine, "git", "pull", "-q", "--no-edit", "origin", "main")
    merge = sh(mine, "git", "rev-parse", "HEAD").strip()
    assert merge not in (own, theirs)
    with hub.client("alice") as c:
        assert arrives(c, f"alice~{commit_id(merge)}") is not None  # our merge commit, by post-merge
        assert c.get(f"/v1/events/alice~{commit_id(own)}").status_code == 200
        for sha in (theirs, sh(upstream, "git", "rev-parse", "HEAD~1").strip()):
            assert c.get(f"/v1/events/alice~{commit_id(sha)}").status_code == 404  # bob's, not ours to sign
    assert "left 1 commits by other committers" in (mine / ".git" / "creative-hub" / "hooks.log").read_text()
    # alice ingests with her token: the events are hers (alice~...), as the hooks made them
    r = creative_hub(mine, "ingest", "git", str(mine), "--log", hub.log_url, "--token", token)
    assert r.returncode == 0, r.stderr
    # bob's two commits are new; our commit, our merge and main pointing at it were there
    assert "git: 2 ingested, 3 already there, 0 skipped" in r.stdout, r.stdout + r.stderr


def test_the_hook_loads_no_http_client_before_the_commit_returns() -> None:
    """What a commit waits for is the hook's Python start: the HTTP client (a fifth of that import
    time, measured) is loaded by the detached flush, after git has its answer."""
    code = "import sys, creative_hub.ide.hooks; print(sorted(m for m in sys.modules if 'httpx' in m))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert r.stdout.strip() == "[]"
