"""Signatures mean authorship: outside material naming alice is never signed as alice (issue 16).

An attacker controls what a feed, an arXiv response, a BibTeX file or a
GitHub webhook says about who wrote it.  Whatever it says, the events are
written and signed by the source principal (``feeds``, ``arxiv``, ``bibtex``,
``github``) or by the person who ran the ingest with their own token; the
claimed author stays in the payload, and an explicit ``--map`` is recorded
there, never made the creator.  Computed ids and ``source`` values are the
hub's: a client cannot publish first under a paper's id, nor as ``arxiv``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from creative_hub.errors import ValidationError
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.lineage import lineage
from creative_hub.principals import verify_signature
from creative_hub.server.app import create_app
from creative_hub.sources.arxiv import ArxivSource
from creative_hub.sources.base import Principals, arxiv_paper_id, commit_id, doi_paper_id
from creative_hub.sources.bibtex import BibtexSource
from creative_hub.sources.feeds import FeedSource
from creative_hub.sources.github import sign, webhook_app
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite
SECRET = "webhook secret"

FEED = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Mallory's feed</title><link>https://evil.example/</link>
<item><title>I, alice, resign</title><link>https://evil.example/resign</link>
<guid>https://evil.example/resign</guid><author>alice</author>
<pubDate>Mon, 01 Jun 2026 10:00:00 GMT</pubDate><description>Written by mallory.</description></item>
</channel></rss>"""

ARXIV = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<entry><id>http://arxiv.org/abs/2101.00001v1</id><published>2021-01-01T00:00:00Z</published>
<title>A paper alice never wrote</title><summary>Mallory's words.</summary>
<author><name>Alice</name></author></entry></feed>"""

BIBTEX = """@article{forged,
  title = {A paper alice never wrote},
  author = {Alice},
  year = {2021},
}
"""


async def signer(hub: Hub, event: Event) -> str | None:
    """The registered principal whose key made ``event``'s signature, if any."""
    await hub.registry.refresh()
    for pid, p in hub.registry.principals.items():
        if p.public_key and verify_signature(event, p.public_key):
            return pid
    return None


async def only(hub: Hub, topic: str) -> Event:
    (e,) = [s.event async for s in hub.replay(topic)]
    return e


@pytest.fixture
async def alice(hub: Hub) -> str:
    """alice is registered on this hub: her key is in its keystore."""
    await hub.registry.add("alice")
    return "alice"


async def test_feed_naming_alice_is_signed_by_feeds(hub: Hub, alice: str, tmp_path: Path) -> None:
    f = tmp_path / "evil.rss"
    f.write_bytes(FEED)
    s = await ingest(hub, FeedSource([f]))
    assert (s.ingested, s.skipped) == (1, [])
    e = await only(hub, "creative.metadata")
    assert e.creator == "feeds" and await signer(hub, e) == "feeds"
    assert not verify_signature(e, hub.registry.public_key(alice) or "")
    assert e.data["extra"]["author"] == "alice" and "mapped" not in e.data["extra"]
    shaped = (await lineage(hub, e.id)).shaped_by
    assert alice not in shaped["people"] and "feeds" in shaped["others"]


async def test_arxiv_file_naming_alice_is_signed_by_arxiv(hub: Hub, alice: str, tmp_path: Path) -> None:
    f = tmp_path / "evil.xml"
    f.write_bytes(ARXIV)
    assert (await ingest(hub, ArxivSource(files=[f]))).ingested == 1
    e = await only(hub, "creative.metadata")
    assert e.creator == "arxiv" and await signer(hub, e) == "arxiv"
    assert e.data["authors"] == ["Alice"]


async def test_bibtex_naming_alice_is_signed_by_bibtex(hub: Hub, alice: str, tmp_path: Path) -> None:
    f = tmp_path / "evil.bib"
    f.write_text(BIBTEX)
    assert (await ingest(hub, BibtexSource([f]))).ingested == 1
    e = await only(hub, "creative.metadata")
    assert e.creator == "bibtex" and await signer(hub, e) == "bibtex"
    assert e.data["authors"] == ["Alice"]


async def test_a_map_is_recorded_never_made_the_writer(hub: Hub, alice: str, tmp_path: Path) -> None:
    f = tmp_path / "refs.bib"
    f.write_text(BIBTEX)
    await ingest(hub, BibtexSource([f], principals=Principals({"Alice": "alice"})))
    e = await only(hub, "creative.metadata")
    assert e.creator == "bibtex" and await signer(hub, e) == "bibtex"
    assert e.data["extra"]["mapped"] == [{"claim": "Alice", "principal": "alice"}]


async def test_the_person_who_ingests_signs(hub: Hub, alice: str, tmp_path: Path) -> None:
    await hub.registry.add("bob")
    f = tmp_path / "evil.bib"
    f.write_text(BIBTEX)
    await ingest(hub, BibtexSource([f]), writer="bob")
    e = await only(hub, "creative.metadata")
    assert e.creator == "bob" and await signer(hub, e) == "bob"
    # bob's own, in his namespace: not the id the bibtex source's run gives the entry.
    assert e.id.startswith("bob~") and e.source == "/peers/bob/bibtex"
    assert (await ingest(hub, BibtexSource([f]), writer="bob")).already == 1
    assert (await ingest(hub, BibtexSource([f]))).ingested == 1  # the source's own run: another event


async def test_webhook_commit_by_alice_is_signed_by_github(hub: Hub, alice: str) -> None:
    sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    push = {
        "ref": "refs/heads/main",
        "repository": {"full_name": "mallory/repo"},
        "sender": {"login": "mallory"},
        "commits": [
            {
                "id": sha,
                "message": "alice approves this",
                "timestamp": "2026-06-01T10:00:00Z",
                "author": {"name": "alice", "email": "alice", "username": "alice"},
            }
        ],
    }
    body = json.dumps(push).encode()
    app = webhook_app(hub, SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        r = await c.post(
            "/webhooks/github",
            content=body,
            headers={
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(SECRET, body),
            },
        )
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    e = await only(hub, "creative.engineering")
    assert e.creator == "github" and await signer(hub, e) == "github"
    assert e.data["author"]["login"] == "alice"


async def test_source_principal_names_are_reserved(hub: Hub) -> None:
    from creative_hub.origins import SOURCE_PRINCIPALS

    for name in ("github", "arxiv", "feeds"):
        with pytest.raises(ValidationError, match="reserved"):
            await hub.registry.add(name)
    await hub.registry.ensure_source("arxiv")
    with pytest.raises(ValidationError, match="source"):
        await hub.registry.issue_token("arxiv")
    assert "arxiv" in SOURCE_PRINCIPALS


# -- computed ids and `source` belong to the hub's sources -------------------------
def squatted_paper() -> dict[str, Any]:
    return {
        "type": "creative.metadata.paper",
        "id": arxiv_paper_id("2101.00001"),
        "source": "arxiv",
        "data": {"title": "Squatted", "arxiv_id": "2101.00001"},
    }


async def test_squatted_computed_id_is_refused(hub: Hub, tmp_path: Path) -> None:
    await hub.registry.add("bob")
    bob = hub.acting("bob", authenticated=True)
    with pytest.raises(ValidationError) as e:
        await bob.publish(squatted_paper())
    assert e.value.field == "id"
    for computed in (doi_paper_id("10.1/x"), commit_id("ab" * 20), arxiv_paper_id("2101.00001").upper()):
        with pytest.raises(ValidationError):
            await bob.publish({**squatted_paper(), "id": computed, "source": "/peers/bob"})
    # ... nor may bob claim a source's `source` under an id of his own.
    with pytest.raises(ValidationError) as e:
        await bob.publish({**squatted_paper(), "id": "bobs-own-id"})
    assert e.value.field == "source"
    with pytest.raises(ValidationError):
        await bob.publish({**squatted_paper(), "id": "bobs-2", "source": "github:owner/repo"})
    with pytest.raises(ValidationError):
        await bob.publish({**squatted_paper(), "id": "bobs-3", "source": "/peers/alice"})
    ok = await bob.publish({**squatted_paper(), "id": "bobs-4", "source": "https://bob.example/feed"})
    assert ok[0].id == "bobs-4"
    # alice~... ids are alice's namespace; bob~... is bob's own.
    with pytest.raises(ValidationError) as e:
        await bob.publish({**squatted_paper(), "id": f"alice~{arxiv_paper_id('2101.00001')}", "source": "/b"})
    assert e.value.field == "id"
    mine = f"bob~{arxiv_paper_id('2101.00001')}"
    assert (await bob.publish({**squatted_paper(), "id": mine, "source": "/peers/bob/arxiv"}))[0].id == mine
    # The real ingest is not blocked, and its id is the reserved kind.
    f = tmp_path / "a.xml"
    f.write_bytes(ARXIV)
    assert (await ingest(hub, ArxivSource(files=[f]))).ingested == 1
    assert uuid.UUID(arxiv_paper_id("2101.00001")).version == 8


async def test_squatting_over_http_is_a_problem_naming_the_field(hub: Hub) -> None:
    await hub.registry.add("bob")
    token = await hub.registry.issue_token("bob")
    app = create_app(hub)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
        r = await c.post("/v1/events", json=squatted_paper(), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422, r.text
    assert "id" in r.text and "reserved" in r.text
    assert [t for t in await hub.topics() if t.name == "creative.metadata"] == []


# -- the CLI: who writes is the source, or the person with their token ---------------
def cli(db: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CREATIVE_HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "creative_hub", *args],
        capture_output=True,
        text=True,
        env={**base, "CREATIVE_HUB_LOG": f"sqlite:///{db}", "COLUMNS": "200", **env},
        input=stdin,
        timeout=120,
    )


def test_cli_ingest_and_verify(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    for who in ("alice", "bob"):
        assert cli(db, "principal", "add", who).returncode == 0
    bob_token = cli(db, "principal", "token", "bob").stdout.strip().split()[-1]
    assert bob_token.startswith("chub_")
    feed = tmp_path / "evil.rss"
    feed.write_bytes(FEED)
    r = cli(db, "ingest", "feed", str(feed))
    assert r.returncode == 0, r.stderr
    bib = tmp_path / "evil.bib"
    bib.write_text(BIBTEX)
    # bob may not say that "Alice" is alice; nothing is stored.
    r = cli(db, "ingest", "bibtex", str(bib), "--map", "Alice=alice", "--token", bob_token)
    assert r.returncode != 0 and "alice" in r.stderr
    r = cli(db, "ingest", "bibtex", str(bib), "--token", bob_token)
    assert r.returncode == 0 and "1 ingested" in r.stdout, r.stderr
    dump = tmp_path / "metadata.jsonl"
    assert cli(db, "replay", "creative.metadata", "--to", str(dump)).returncode == 0
    events = [json.loads(line) for line in dump.read_text().splitlines()]
    by_creator = {e["creator"]: e for e in events}
    assert set(by_creator) == {"feeds", "bob"}, by_creator
    r = cli(db, "verify", by_creator["feeds"]["id"])
    assert r.returncode == 0 and "valid signature by feeds" in r.stdout, r.stdout + r.stderr
    r = cli(db, "verify", by_creator["bob"]["id"])
    assert r.returncode == 0 and "valid signature by bob" in r.stdout, r.stdout + r.stderr


# -- webhook deliveries ------------------------------------------------------------
async def test_webhook_takes_githubs_content_types_and_needs_a_delivery_id(hub: Hub) -> None:
    body = json.dumps({"repository": {"full_name": "o/r"}, "commits": []}).encode()
    form = b"payload=" + body
    app = webhook_app(hub, SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:

        async def post(content: bytes, ctype: str, delivery: str | None = "d-1") -> httpx.Response:
            h = {"X-GitHub-Event": "push", "Content-Type": ctype}
            h["X-Hub-Signature-256"] = sign(SECRET, content)
            if delivery is not None:
                h["X-GitHub-Delivery"] = delivery
            return await c.post("/webhooks/github", content=content, headers=h)

        r = await post(form, "application/x-www-form-urlencoded")  # GitHub's other content type
        assert r.status_code == 200, r.text
        assert (await post(body, "text/plain")).status_code == 415
        r = await post(body, "application/json", delivery=None)
        assert r.status_code == 400 and "X-GitHub-Delivery" in r.json()["error"]
        assert (await post(body, "application/json", delivery="x" * 101)).status_code == 400
        assert (await post(body, "application/json; charset=utf-8")).status_code == 200


async def test_a_delivery_is_handled_once_across_receivers(hub: Hub) -> None:
    """Two receiver apps on one log (two server processes) share what was handled."""
    sha = "1d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    push = {
        "repository": {"full_name": "o/r"},
        "commits": [
            {"id": sha, "message": "m", "timestamp": "2026-06-01T10:00:00Z", "author": {"name": "x"}}
        ],
    }
    body = json.dumps(push).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "5a1e0f7c-0000-11f0-8000-000000000001",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(SECRET, body),
    }
    answers = []
    for _ in range(2):
        app = webhook_app(hub, SECRET)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
            answers.append((await c.post("/webhooks/github", content=body, headers=headers)).json())
    assert answers[0]["stored"] == 1 and answers[1] == {
        "delivery": headers["X-GitHub-Delivery"],
        "event": "push",
        "duplicate_delivery": True,
        "stored": 0,
    }
