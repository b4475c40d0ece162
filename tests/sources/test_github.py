"""GitHub: webhooks in-process over ASGI with the real payloads, and REST polling of a local server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.sources._github_map import thread_id
from creative_hub.sources.base import Principals, commit_id
from creative_hub.sources.github import GithubSource, sign, verify_signature, webhook_app
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite
SECRET = "It's a Secret to Everybody"
REPO = "Codertocat/Hello-World"
PAYLOADS = {
    "push": "push/payload.json",
    "pull_request": "pull_request/opened.payload.json",
    "pull_request_review": "pull_request_review/submitted.payload.json",
    "issues": "issues/opened.payload.json",
    "issue_comment": "issue_comment/created.payload.json",
    "create": "create/payload.json",
    "fork": "fork/payload.json",
}


def raw(fixtures_dir: Path, name: str) -> bytes:
    return (fixtures_dir / "github" / name).read_bytes()


def load(fixtures_dir: Path, name: str) -> dict[str, Any]:
    return json.loads(raw(fixtures_dir, name))


def test_github_test_vector() -> None:
    vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(SECRET, b"Hello, World!") == vector
    assert verify_signature(SECRET, b"Hello, World!", vector)
    assert not verify_signature(SECRET, b"Hello, World?", vector)
    assert not verify_signature(SECRET, b"Hello, World!", vector.replace("sha256=", "sha1="))
    assert not verify_signature(SECRET, b"Hello, World!", None)


async def post(
    client: httpx.AsyncClient,
    event: str,
    body: bytes,
    delivery: str = "d-1",
    signature: str | None = "sign",
    **headers: str,
) -> httpx.Response:
    h = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
        **headers,
    }
    if signature == "sign":
        h["X-Hub-Signature-256"] = sign(SECRET, body)
    elif signature is not None:
        h["X-Hub-Signature-256"] = signature
    return await client.post("/webhooks/github", content=body, headers=h)


@pytest.fixture
async def client(hub: Hub) -> Any:
    app = webhook_app(hub, SECRET, principals=Principals({"Codertocat": "coder"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        yield c


async def count(hub: Hub) -> int:
    return sum(t.count for t in await hub.topics() if t.name.startswith("creative."))


async def test_every_fixture_event(hub: Hub, stored, client: httpx.AsyncClient, fixtures_dir: Path) -> None:
    for n, (event, name) in enumerate(PAYLOADS.items()):
        r = await post(client, event, raw(fixtures_dir, name), delivery=f"d-{n}")
        assert r.status_code == 200, r.text
        assert r.json()["event"] == event
    eng = await stored("creative.engineering")
    pr, review, issue = [e for e in eng if e.type.split(".")[-1] in ("pull_request", "review", "issue")]
    assert pr.type == "creative.engineering.pull_request" and pr.creator == "github"
    assert pr.data["extra"]["mapped"] == [{"claim": "Codertocat", "principal": "coder"}]
    assert pr.data["number"] == 2 and pr.data["title"] == "Update the README with new information."
    assert pr.data["state"] == "open" and pr.data["action"] == "opened"
    assert (pr.data["base"], pr.data["head"]) == ("master", "changes")
    assert pr.data["url"] == "https://github.com/Codertocat/Hello-World/pull/2"
    assert (
        pr.subject == f"{REPO}/pull/2"
        and pr.source == f"github:{REPO}"
        and pr.correlationid == thread_id(REPO, "pull", 2)
    )
    assert pr.time is not None and pr.time.isoformat() == "2019-05-15T15:20:33+00:00"
    assert review.data["state"] == "commented" and review.data["pull_request"] == 2
    assert review.data["reviewer"]["login"] == "Codertocat" and review.correlationid == pr.correlationid
    assert issue.data["title"] == "Spelling error in the README file" and issue.data["labels"] == ["bug"]
    assert issue.data["number"] == 1 and issue.data["state"] == "open"
    (comment,) = await stored("creative.feedback")
    assert comment.data["text"] == "You are totally right! I'll get this fixed right away."
    assert comment.data["on"] == thread_id(REPO, "issue", 1) == issue.correlationid
    engineering = {e.type: e for e in await stored("creative.engineering")}
    create = engineering["creative.engineering.ref"]
    assert create.data["ref"] == "simple-tag" and create.data["ref_type"] == "tag"
    assert create.data["action"] == "created" and create.data["repo"] == REPO
    assert create.data["url"] == "https://github.com/Codertocat/Hello-World/tree/simple-tag"
    fork = engineering["creative.engineering.fork"]
    assert fork.data["url"] == "https://github.com/Octocoders/Hello-World" and fork.creator == "github"
    assert fork.data["repo"] == REPO and fork.data["fork"] == "Octocoders/Hello-World"


async def test_push_commits_link_to_git_and_papers(
    hub: Hub, stored, client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    push = load(fixtures_dir, PAYLOADS["push"])
    assert push["commits"] == []  # the fixture deletes a tag: only that is stored
    r = await post(client, "push", json.dumps(push).encode())
    assert r.json()["stored"] == 1
    push["deleted"], push["after"] = False, push["before"]  # from here on, a plain push
    sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    push["ref"] = "refs/heads/main"
    push["commits"] = [
        {
            "id": sha,
            "message": "Cite arXiv:2101.00001",
            "timestamp": "2019-05-15T15:20:30Z",
            "url": f"https://github.com/{REPO}/commit/{sha}",
            "author": {"name": "Codertocat", "email": "c@example.org", "username": "Codertocat"},
        }
    ]
    r = await post(client, "push", json.dumps(push).encode(), delivery="d-push")
    assert r.json()["stored"] == 1
    tag, c = await stored("creative.engineering")
    assert (tag.data["ref"], tag.data["ref_type"], tag.data["action"]) == ("simple-tag", "tag", "deleted")
    assert c.data["sha"] == sha and c.data["author"]["login"] == "Codertocat" and c.creator == "github"
    assert c.data["branch"] == "main"
    assert c.data["extra"]["links"][0] == {"rel": "same-as", "id": commit_id(sha), "ref": sha}
    assert c.data["extra"]["links"][1]["ref"] == "arXiv:2101.00001"


async def test_signatures_are_checked_before_anything(
    hub: Hub, client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    body = raw(fixtures_dir, PAYLOADS["issues"])
    r = await post(client, "issues", body, signature=None)
    assert (r.status_code, r.json()["error"]) == (401, "X-Hub-Signature-256 required")
    legacy = "sha1=" + "0" * 40
    r = await post(client, "issues", body, signature=None, **{"X-Hub-Signature": legacy})
    assert r.status_code == 401 and "SHA-1 signatures are not accepted" in r.json()["error"]
    r = await post(client, "issues", body, signature=sign("another secret", body))
    assert r.status_code == 401
    r = await post(client, "issues", body + b" ", signature=sign(SECRET, body))  # altered after signing
    assert r.status_code == 401
    r = await post(client, "issues", b"{not json", signature=sign(SECRET, b"{not json"))
    assert r.status_code == 400
    assert await count(hub) == 0


async def test_replayed_delivery_is_stored_once(
    hub: Hub, client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    body = raw(fixtures_dir, PAYLOADS["pull_request"])
    first = await post(client, "pull_request", body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    again = await post(client, "pull_request", body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert first.json()["stored"] == 1
    # The same delivery again (GitHub's redelivery, or a captured request replayed): not handled twice.
    assert again.status_code == 200 and again.json()["duplicate_delivery"] is True
    assert again.json()["stored"] == 0 and "ids" not in again.json()
    # Another delivery of the same object: handled, and the object is stored once.
    other = await post(client, "pull_request", body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0959")
    assert (other.json()["stored"], other.json()["duplicates"]) == (0, 1)
    assert first.json()["ids"] == other.json()["ids"]
    closed = await post(
        client, "pull_request", raw(fixtures_dir, "pull_request/closed.payload.json"), delivery="d-2"
    )
    assert closed.json()["stored"] == 1
    assert await count(hub) == 2


async def test_release_and_review_comment_payloads(
    hub: Hub, stored, client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    # No fixture exists for these two: build them from the real ones' objects.
    base = load(fixtures_dir, PAYLOADS["pull_request_review"])
    release = {
        "action": "published",
        "repository": base["repository"],
        "sender": base["sender"],
        "release": {
            "id": 17372790,
            "tag_name": "0.0.1",
            "name": "First",
            "body": "Notes",
            "html_url": f"https://github.com/{REPO}/releases/tag/0.0.1",
            "draft": False,
            "prerelease": False,
            "published_at": "2019-05-15T15:20:53Z",
            "author": base["sender"],
        },
    }
    comment = {
        "action": "created",
        "repository": base["repository"],
        "sender": base["sender"],
        "pull_request": base["pull_request"],
        "comment": {
            "id": 284312630,
            "body": "Maybe you should use more emoji on this line.",
            "path": "README.md",
            "line": 1,
            "user": base["sender"],
            "pull_request_review_id": 237895671,
            "html_url": f"https://github.com/{REPO}/pull/2#discussion_r284312630",
            "updated_at": "2019-05-15T15:20:38Z",
        },
    }
    assert (await post(client, "release", json.dumps(release).encode())).json()["stored"] == 1
    assert (await post(client, "pull_request_review_comment", json.dumps(comment).encode(), "d-2")).json()[
        "stored"
    ] == 1
    (rel,) = [e for e in await stored("creative.engineering") if e.type == "creative.engineering.release"]
    assert rel.data["name"] == "First" and rel.data["tag"] == "0.0.1" and rel.creator == "github"
    assert rel.subject == f"{REPO}@0.0.1" and rel.data["author"]["login"] == "Codertocat"
    (c,) = await stored("creative.feedback")
    assert c.data["on"] == thread_id(REPO, "pull", 2) and c.data["extra"]["path"] == "README.md"
    r = await post(client, "watch", b"{}")
    assert r.status_code == 202


# -- REST polling ------------------------------------------------------------------
def recorded(fixtures_dir: Path, url: str) -> dict[str, tuple[Any, str]]:
    """REST responses built from the webhook fixtures' objects: path -> (JSON, ETag)."""
    pr = load(fixtures_dir, "pull_request/closed.payload.json")["pull_request"]
    review = load(fixtures_dir, PAYLOADS["pull_request_review"])["review"]
    issue = load(fixtures_dir, PAYLOADS["issues"])["issue"]
    head = pr["head"]["sha"]
    commit = {
        "sha": head,
        "html_url": f"https://github.com/{REPO}/commit/{head}",
        "author": pr["user"],
        "commit": {
            "message": "Update README.md",
            "author": {"name": "Codertocat", "email": "c@example.org", "date": "2019-05-15T15:20:30Z"},
        },
    }
    pr_as_issue = {**issue, "number": 2, "pull_request": {"url": pr["url"]}}
    return {
        f"/repos/{REPO}/commits": ([commit], '"c1"'),
        f"/repos/{REPO}/pulls": ([pr], '"p1"'),
        f"/repos/{REPO}/pulls/2/reviews": ([review], '"r1"'),
        f"/repos/{REPO}/issues": ([issue, pr_as_issue], '"i1"'),
    }


def serve(http_server: Any, responses: dict[str, tuple[Any, str]]) -> None:
    for path, (body, etag) in responses.items():

        def respond(req: Any, body: Any = body, etag: str = etag) -> tuple[int, dict[str, str], bytes]:
            if req.headers.get("if-none-match") == etag:
                return 304, {"ETag": etag}, b""
            return (
                200,
                {"ETag": etag, "Content-Type": "application/json", "X-RateLimit-Remaining": "4999"},
                json.dumps(body).encode(),
            )

        http_server.routes[path] = respond


async def test_polling_with_etags(
    hub: Hub, stored, fixtures_dir: Path, http_server: Any, tmp_path: Path
) -> None:
    serve(http_server, recorded(fixtures_dir, http_server.url))
    state = tmp_path / "github.json"
    async with httpx.AsyncClient() as c:
        src = GithubSource(REPO, api_url=http_server.url, state=state, client=c, token="t0k")
        s = await ingest(hub, src)
        assert (s.ingested, s.skipped) == (4, [])  # commit, PR, review, issue (the PR-as-issue is left out)
        assert http_server.seen[0].headers["authorization"] == "Bearer t0k"
        commit, pr, review, issue = await stored("creative.engineering")
        assert commit.data["message"] == "Update README.md" and commit.data["author"]["login"] == "Codertocat"
        assert (
            pr.data["state"] == "closed" and pr.data["action"] == "closed"
        )  # inferred: updated == closed_at
        assert review.data["state"] == "commented" and issue.data["action"] == "opened"
        # Second run: every list answers 304; nothing new, nothing re-read.
        before = len(http_server.seen)
        src = GithubSource(REPO, api_url=http_server.url, state=state, client=c)
        s = await ingest(hub, src)
        assert s.seen == 0 and src.not_modified == 3
        assert all(req.headers.get("if-none-match") for req in http_server.seen[before:])


async def test_polled_and_webhook_state_are_one_event(
    hub: Hub, client: httpx.AsyncClient, fixtures_dir: Path, http_server: Any
) -> None:
    r = await post(client, "pull_request", raw(fixtures_dir, "pull_request/closed.payload.json"))
    serve(http_server, recorded(fixtures_dir, http_server.url))
    async with httpx.AsyncClient() as c:
        people = Principals({"Codertocat": "coder"})  # as the webhook app maps them
        s = await ingest(hub, GithubSource(REPO, api_url=http_server.url, client=c, principals=people))
    assert s.already == 1 and r.json()["ids"][0] in s.ids


async def test_rate_limit_waits_then_retries(hub: Hub, fixtures_dir: Path, http_server: Any) -> None:
    serve(http_server, recorded(fixtures_dir, http_server.url))
    ok = http_server.routes[f"/repos/{REPO}/commits"]
    calls = {"n": 0}

    def limited(req: Any) -> tuple[int, dict[str, str], bytes]:
        calls["n"] += 1
        if calls["n"] == 1:
            return 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 30)}, b"{}"
        if calls["n"] == 2:
            return 429, {"Retry-After": "7"}, b"{}"
        return ok(req)

    http_server.routes[f"/repos/{REPO}/commits"] = limited
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with httpx.AsyncClient() as c:
        s = await ingest(hub, GithubSource(REPO, api_url=http_server.url, client=c, sleep=sleep))
    assert s.ingested == 4 and 25 < waits[0] <= 32 and waits[1] == 7.0
    # A reset further away than max_wait: stop with a clear error, keep what was read.
    http_server.routes[f"/repos/{REPO}/issues"] = lambda req: (
        403,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)},
        b"{}",
    )
    async with httpx.AsyncClient() as c:
        s = await ingest(hub, GithubSource(REPO, api_url=http_server.url, client=c, sleep=sleep, max_wait=60))
    assert s.already == 3 and "rate limited until" in s.skipped[0].reason
    assert s.skipped[0].ref == f"github:{REPO}/issues"


# -- fidelity (issue 19): real payloads from octokit/webhooks (tests/sources/data/github) --------
DATA = Path(__file__).parent / "data" / "github"


async def test_push_keeps_branch_files_committer_and_the_branch_creation(
    hub: Hub, stored, client: httpx.AsyncClient
) -> None:
    body = (DATA / "push_with-new-branch.payload.json").read_bytes()
    r = await post(client, "push", body)
    assert r.json()["stored"] == 2, r.text
    ref, commit = await stored("creative.engineering")
    assert ref.type == "creative.engineering.ref"
    assert (ref.data["ref"], ref.data["ref_type"], ref.data["action"]) == ("master", "branch", "created")
    c = commit.data
    assert c["sha"] == "6113728f27ae82c7b1a177c8d03f9e96e0adf246" and c["branch"] == "master"
    assert c["files"] == ["README.md"] and c["extra"]["added"] == ["README.md"]
    assert c["committer"] == {
        "name": "Codertocat",
        "email": "21031067+Codertocat@users.noreply.github.com",
        "login": "Codertocat",
    }
    # The same branch named by a `create` delivery is the same event: stored once.
    create = load_data_create(body)
    r = await post(client, "create", json.dumps(create).encode(), delivery="d-create")
    assert (r.json()["stored"], r.json()["duplicates"]) == (0, 1)


def load_data_create(push_body: bytes) -> dict[str, Any]:
    push = json.loads(push_body)
    return {
        "ref": "master",
        "ref_type": "branch",
        "master_branch": "master",
        "pusher_type": "user",
        "repository": push["repository"],
        "sender": push["sender"],
    }


async def test_a_push_to_an_existing_branch_keeps_what_each_commit_changed(
    hub: Hub, stored, client: httpx.AsyncClient
) -> None:
    # go-playground/webhooks' push: no branch made, one commit adding and modifying files.
    body = (DATA / "push_added_and_modified.payload.json").read_bytes()
    assert (await post(client, "push", body)).json()["stored"] == 1  # the commit; no ref event
    (commit,) = await stored("creative.engineering")
    c = commit.data
    assert (c["sha"], c["branch"], c["repo"]) == (
        "fd489864e7642b48eaad6e3f155c10e46810ec72",
        "master",
        "binkkatal/sample_app",
    )
    assert c["files"] == [".razorops.yaml", "app/controllers/application_controller.rb"]
    assert c["extra"]["added"] == [".razorops.yaml"] and "removed" not in c["extra"]
    assert c["extra"]["modified"] == ["app/controllers/application_controller.rb"]
    assert c["committer"] == {"name": "binkkatal", "email": "binkkatal.r@gmail.com", "login": "binkkatal"}
    assert commit.time is not None and commit.time.isoformat() == "2018-06-29T19:34:13+05:30"


async def test_a_deleted_tag_leaves_a_trace_once(
    hub: Hub, stored, client: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    assert (await post(client, "push", raw(fixtures_dir, PAYLOADS["push"]))).json()["stored"] == 1
    r = await post(client, "delete", (DATA / "delete.payload.json").read_bytes(), delivery="d-del")
    assert (r.json()["stored"], r.json()["duplicates"]) == (0, 1)
    (ref,) = await stored("creative.engineering")
    assert (ref.data["ref"], ref.data["ref_type"], ref.data["action"]) == ("simple-tag", "tag", "deleted")


async def test_a_review_comment_is_dated_when_it_was_written(
    hub: Hub, stored, client: httpx.AsyncClient
) -> None:
    body = (DATA / "pull_request_review_comment_edited.payload.json").read_bytes()
    assert (await post(client, "pull_request_review_comment", body)).json()["stored"] == 1
    (c,) = await stored("creative.feedback")
    assert c.time is not None and c.time.isoformat() == "2019-05-15T15:20:37+00:00"  # created_at
    assert c.data["extra"]["updated_at"] == "2019-05-15T15:20:38Z"


def test_ingest_github_payload_files_on_the_webhook_path(tmp_path: Path, fixtures_dir: Path) -> None:
    import os
    import subprocess
    import sys

    saved = tmp_path / "deliveries"
    saved.mkdir()
    (saved / "1-push.json").write_bytes((DATA / "push_with-new-branch.payload.json").read_bytes())
    (saved / "1-push.json.headers").write_text("X-GitHub-Event: push\nX-GitHub-Delivery: d-1\n")
    review = json.loads(raw(fixtures_dir, PAYLOADS["pull_request_review"]))
    api = {
        "id": 1,
        "event": "pull_request_review",
        "request": {"headers": {"X-GitHub-Event": "pull_request_review"}, "payload": review},
    }
    (saved / "2-review.json").write_text(json.dumps(api))  # as GitHub's deliveries API returns it
    (saved / "3-unnamed.json").write_bytes(raw(fixtures_dir, PAYLOADS["issues"]))
    db = tmp_path / "hub.db"
    env = {
        **os.environ,
        "CREATIVE_HUB_LOG": f"sqlite:///{db}",
        "CREATIVE_HUB_PRINCIPAL": "alice",
        "COLUMNS": "200",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "creative_hub", "ingest", "github", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    r = run("--payload", str(saved))
    assert r.returncode == 0, r.stderr
    assert "github: 3 ingested, 0 already there, 1 skipped" in r.stdout
    assert "3-unnamed.json: no event name: give --event" in r.stderr
    r = run("--payload", str(saved))
    assert "github: 0 ingested, 3 already there, 1 skipped" in r.stdout
    r = run("--payload", str(saved / "3-unnamed.json"), "--event", "issues")
    assert r.returncode == 0 and "github: 1 ingested" in r.stdout
    r = run("--payload", str(tmp_path / "missing.json"), "--event", "push")
    assert r.returncode == 6 and "nothing ingested, every item failed" in r.stderr
    r = run("--payload", str(saved), "--event", "watch")
    assert r.returncode == 2 and "event: 'watch' is not one of" in r.stderr


async def test_a_saved_delivery_and_the_webhook_store_the_same_events(
    hub: Hub, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    from creative_hub.sources.github_payloads import PayloadSource

    body = (DATA / "push_with-new-branch.payload.json").read_bytes()
    r = await post(client, "push", body)
    saved = tmp_path / "push.json"
    saved.write_bytes(body)
    (tmp_path / "push.headers").write_text('{"X-GitHub-Event": "push"}')
    s = await ingest(hub, PayloadSource([saved], principals=Principals({"Codertocat": "coder"})))
    assert (s.ingested, s.already, s.skipped) == (0, 2, [])
    assert s.ids == r.json()["ids"]


async def _saved_again(hub: Hub, path: Path, body: bytes, event: str) -> tuple[int, int, list[Any]]:
    """``body`` saved at ``path`` and ingested with ``ingest github --payload``'s source:
    (ingested, already there, skipped)."""
    from creative_hub.sources.github_payloads import PayloadSource

    path.write_bytes(body)
    s = await ingest(hub, PayloadSource([path], event=event, principals=Principals({"Codertocat": "coder"})))
    return s.ingested, s.already, list(s.skipped)


def _at(push: dict[str, Any], pushed_at: int, **fields: Any) -> bytes:
    """``push`` as GitHub would send it for a later push (``repository.pushed_at``, epoch seconds)."""
    return json.dumps(
        {**push, **fields, "repository": {**push["repository"], "pushed_at": pushed_at}}
    ).encode()


def _ref_delivery(name: str, push: dict[str, Any], ref: str, pushed_at: str | None) -> bytes:
    """A ``create`` / ``delete`` delivery of branch ``ref`` (the repository as of ``pushed_at``, ISO)."""
    repo = {**push["repository"], "pushed_at": pushed_at}
    if pushed_at is None:
        del repo["pushed_at"]
    body = {
        "ref": ref,
        "ref_type": "branch",
        "pusher_type": "user",
        "repository": repo,
        "sender": push["sender"],
    }
    return json.dumps(body).encode()


async def test_a_branch_deleted_and_made_again_is_each_time_its_own_event(
    hub: Hub, stored, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Issue 19: create, delete and re-create of `master` (same name, even the same SHA) are
    three ref events; the create / delete deliveries of the same pushes, and a saved copy
    of a delivery, add nothing (identity: the push's time and SHAs, not the ref name)."""
    made = json.loads((DATA / "push_with-new-branch.payload.json").read_bytes())  # pushed_at 1557933657
    sha = made["after"]
    gone = {
        "before": sha,
        "after": "0" * 40,
        "created": False,
        "deleted": True,
        "commits": [],
        "head_commit": None,
    }
    pushes = [_at(made, 1557933657), _at(made, 1557933700, **gone), _at(made, 1557933800)]
    for n, body in enumerate(pushes):
        assert (await post(client, "push", body, delivery=f"push-{n}")).status_code == 200
    refs = [e for e in await stored("creative.engineering") if e.type == "creative.engineering.ref"]
    assert [(e.data["ref"], e.data["action"]) for e in refs] == [
        ("master", "created"),
        ("master", "deleted"),
        ("master", "created"),
    ]
    # GitHub's create / delete deliveries of the same pushes (pushed_at as ISO there): the same events.
    for n, (name, when) in enumerate(
        [
            ("create", "2019-05-15T15:20:57Z"),
            ("delete", "2019-05-15T15:21:40Z"),
            ("create", "2019-05-15T15:23:20Z"),
        ]
    ):
        r = await post(client, name, _ref_delivery(name, made, "master", when), delivery=f"ref-{n}")
        assert (r.json()["stored"], r.json()["duplicates"]) == (0, 1), (name, r.text)
    # The last push saved and ingested again (`ingest github --payload`): already there.
    assert await _saved_again(hub, tmp_path / "push.json", pushes[2], "push") == (0, 2, [])


async def test_ref_deliveries_without_a_push_time_are_told_apart_by_their_content(
    hub: Hub, stored, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """No `repository.pushed_at` (a trimmed or older payload): a push is known by its SHAs,
    a create / delete delivery by its whole content; the same delivery twice still adds 0."""
    made = json.loads((DATA / "push_with-new-branch.payload.json").read_bytes())
    del made["repository"]["pushed_at"]
    moved = {**made, "after": "7" * 40, "commits": []}
    for n, body in enumerate([made, {**made, "before": made["after"], "after": "0" * 40,
                                     "created": False, "deleted": True, "commits": []}, moved]):  # fmt: skip
        assert (await post(client, "push", json.dumps(body).encode(), delivery=f"p-{n}")).status_code == 200
    refs = [e for e in await stored("creative.engineering") if e.type == "creative.engineering.ref"]
    assert [e.data["action"] for e in refs] == ["created", "deleted", "created"]
    first = _ref_delivery("delete", made, "topic", None)
    again = json.loads(first)
    again["sender"] = {**again["sender"], "login": "someone-else"}
    for n, body in enumerate([first, json.dumps(again).encode()]):
        assert (await post(client, "delete", body, delivery=f"d-{n}")).json()["stored"] == 1
    pretty = json.dumps(json.loads(first), indent=2).encode()  # saved pretty-printed
    assert await _saved_again(hub, tmp_path / "delete.json", pretty, "delete") == (0, 1, [])


async def test_form_encoded_deliveries_are_taken_like_json(
    hub: Hub, stored, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Issue 19: `application/x-www-form-urlencoded` is GitHub's default content type for hooks
    made through the API (and a choice in the UI): the JSON is the `payload` field, the
    signature is over the body as sent; it stores what the JSON delivery stores."""
    from urllib.parse import urlencode

    body = (DATA / "push_with-new-branch.payload.json").read_bytes()
    form = urlencode({"payload": body.decode()}).encode()
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    r = await post(client, "push", form, delivery="form-1", **ctype)
    assert r.status_code == 200 and r.json()["stored"] == 2, r.text
    r = await post(client, "push", body, delivery="json-1")  # the same push as JSON: already there
    assert (r.json()["stored"], r.json()["duplicates"]) == (0, 2)
    # The signature is over the form body as sent, not over the JSON inside it.
    r = await post(client, "push", form, delivery="form-2", signature=sign(SECRET, body), **ctype)
    assert r.status_code == 401
    for bad, rule in [
        (b"other=1", "payload"),
        (form + b"&payload=%7B%7D", "payload"),
        (b"payload=%FF%FE", "payload"),
        (urlencode({"payload": "[" * 100_000 + "]" * 100_000}).encode(), "JSON"),
    ]:
        r = await post(client, "push", bad, delivery="form-bad", **ctype)
        assert r.status_code == 400 and rule in r.json()["error"], r.text
    assert (
        await post(client, "push", body, delivery="plain", **{"Content-Type": "text/plain"})
    ).status_code == 415
    # A form delivery's body saved as sent.
    assert await _saved_again(hub, tmp_path / "form-push.json", form, "push") == (0, 2, [])
    assert len(await stored("creative.engineering")) == 2


def test_an_odd_push_time_or_text_never_refuses_a_ref_change() -> None:
    """`pushed_at` is only a hint: one GitHub never sends (text, a float) falls back to the
    SHAs / the delivery's content, and any JSON string (a lone surrogate too) can be hashed."""
    from creative_hub.sources._github_map import webhook_events

    made = json.loads((DATA / "push_with-new-branch.payload.json").read_bytes())
    for odd in ("yesterday", 1557933657.5, True, None):
        push = {**made, "repository": {**made["repository"], "pushed_at": odd}}
        (ref, _commit) = webhook_events("push", push, Principals())
        assert isinstance(ref, Event) and ref.data.action == "created", (odd, ref)
    create = json.loads(_ref_delivery("create", made, "topic", "not a time"))
    create["description"] = "\ud800 a lone surrogate"
    (ref,) = webhook_events("create", create, Principals())
    assert isinstance(ref, Event) and ref.data.ref == "topic"
