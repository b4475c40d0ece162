"""The index's faces: the CLI commands and the HTTP routes, as each caller sees them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from _world import SECRET, World
from creative_hub.index import HubIndex, SearchQuery
from creative_hub.server import create_app

pytestmark = pytest.mark.sqlite

CLI = [sys.executable, "-m", "creative_hub"]


def run(world: World, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATIVE_HUB_")}
    env.update({"CREATIVE_HUB_LOG": world.url, "COLUMNS": "200"})
    if token:
        env["CREATIVE_HUB_TOKEN"] = token
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


async def test_cli_search_reindex_and_analytics(world: World) -> None:
    r = run(world, "search", SECRET, "--json", token=world.alice_token)
    assert r.returncode == 0, r.stderr
    assert [h["title"] for h in json.loads(r.stdout)["hits"]] == [f"Secret {SECRET} ending"]
    r = run(world, "search", SECRET, "--json", token=world.bob_token)
    assert json.loads(r.stdout)["hits"] == []
    r = run(world, "search", "oven", "--area", "narrative")
    assert r.returncode == 0 and "Gretel pushes the witch" in r.stdout and "[oven]" in r.stdout
    r = run(world, "reindex")
    assert r.returncode == 0 and "indexed" in r.stdout, r.stderr
    r = run(world, "activity", "--by", "creator", "--json", "--no-refresh")
    rows = json.loads(r.stdout)
    assert {"bucket": "2026-03-02", "key": "dave", "count": 3} in rows
    r = run(world, "collaborators", "--json")
    assert any({p["a"], p["b"]} == {"alice", "bob"} for p in json.loads(r.stdout))
    r = run(world, "links", "--cross-source", "--json")
    assert any(x["to_title"] == "Bread ovens in folk tales" for x in json.loads(r.stdout))
    r = run(world, "contributions", "--to", "alice", "--json")
    assert [c["id"] for c in json.loads(r.stdout)] == [world.proposal_id]
    r = run(world, "search", "x", "--since", "soon")
    assert r.returncode == 2 and "since" in r.stderr


async def test_search_hits_say_who_made_them(world: World, tmp_path: Path) -> None:
    """Hits carry the creator's kind and the model, in the library, the CLI (table and
    --json) and GET /v1/search."""
    await world.hub.registry.add("critic", kind="agent")
    (comment,) = await world.hub.publish(
        {
            "type": "creative.feedback.comment",
            "creator": "critic",
            "model": "critic-1",
            "modelprovider": "offline",
            "confighash": "ab" * 32,
            "inputs": world.published_id,
            "data": {"on": world.published_id, "text": "The ending comes too fast."},
        }
    )
    made = {"madeby": "agent", "model": "critic-1", "modelprovider": "offline"}
    ix = HubIndex(tmp_path / "index.db")
    try:
        await ix.refresh(world.hub, force=True)
        (hit,) = (await ix.search(world.anonymous, SearchQuery(text="ending fast"))).hits
        assert (hit.id, hit.madeby, hit.model, hit.modelprovider) == (comment.id, *made.values())
        (trail,) = (await ix.search(world.anonymous, SearchQuery(text="lands", creator="bob"))).hits
        assert (trail.madeby, trail.model, trail.modelprovider) == ("person", "", "")  # bob's feedback
        (commit,) = (await ix.search(world.anonymous, SearchQuery(type="creative.engineering.commit"))).hits
        assert commit.madeby == "" and commit.model == ""  # dave is not a registered principal
    finally:
        ix.close()

    r = run(world, "search", "--agent", "critic", "--json")
    assert r.returncode == 0, r.stderr
    (h,) = json.loads(r.stdout)["hits"]
    assert h["id"] == comment.id and {k: h[k] for k in made} == made
    r = run(world, "search", "--agent", "critic")
    assert r.returncode == 0 and "made by" in r.stdout and "agent · offline/critic-1" in r.stdout, r.stdout
    r = run(world, "search", "lands", "--creator", "bob")
    assert r.returncode == 0 and "│ person " in r.stdout, r.stdout

    transport = httpx.ASGITransport(app=create_app(world.hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        resp = await http.get("/v1/search", params={"model": "offline/critic-1"})
        assert resp.status_code == 200, resp.text
        (h,) = resp.json()["hits"]
        assert h["id"] == comment.id and {k: h[k] for k in made} == made


async def test_http_search_and_analytics(world: World) -> None:
    app = create_app(world.hub)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:

        async def titles(token: str | None, **params: str) -> list[str]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = await http.get("/v1/search", params=params, headers=headers)
            assert r.status_code == 200, r.text
            return [h["title"] for h in r.json()["hits"]]

        assert await titles(world.alice_token, q=SECRET) == [f"Secret {SECRET} ending"]
        assert await titles(world.bob_token, q=SECRET) == []
        assert await titles(None, q=SECRET) == []
        assert await titles(None, q="oven", area="engineering", type="creative.engineering.issue") == [
            "The oven is too bright"
        ]
        r = await http.get("/v1/search", params={"q": "x", "limit": "0"})
        assert r.status_code == 422
        r = await http.get("/v1/search", params={"q": "x", "since": "soon"})
        assert r.status_code == 422 and "since" in r.text
        r = await http.get(f"/v1/search/related/{world.draft_id}")
        assert r.status_code == 404
        r = await http.get(
            f"/v1/search/related/{world.draft_id}", headers={"Authorization": f"Bearer {world.alice_token}"}
        )
        assert r.status_code == 200 and r.json()["related"]
        r = await http.get("/v1/analytics/activity", params={"by": "creator"})
        assert sum(x["count"] for x in r.json() if x["key"] == "alice") == 1  # only the published one
        r = await http.get(
            "/v1/analytics/activity",
            params={"by": "creator"},
            headers={"Authorization": f"Bearer {world.alice_token}"},
        )
        mine = [x for x in r.json() if x["key"] == "alice"]
        assert sum(x["count"] for x in mine) == 3
        for path in ("collaborators", "links", "contributions"):
            r = await http.get(f"/v1/analytics/{path}")
            assert r.status_code == 200 and r.json(), path
        r = await http.get(
            "/v1/search", headers={"Authorization": "Bearer chub_0000000000000000_nonsense-token-xx"}
        )
        assert r.status_code == 401
