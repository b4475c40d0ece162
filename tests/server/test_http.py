"""The HTTP API against a real server process (``creative-hub up``) over loopback."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from live_server import LiveServer

pytestmark = pytest.mark.sqlite

PROBLEM = "application/problem+json"


def fragment(title: str = "Into the wood", story: str = "wood", **extra: Any) -> dict[str, Any]:
    return {
        "type": "creative.narrative.fragment",
        "subject": f"story:{story}",
        "data": {"story": story, "title": title, "text": "They went deep into the forest."},
        **extra,
    }


def is_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and "type" in body
    return body


def test_health_ready_and_dashboard(live: LiveServer) -> None:
    assert httpx.get(live.url + "/healthz").json() == {"ok": True}
    ready = httpx.get(live.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["engine"] == "sqlite"
    page = httpx.get(live.url + "/", follow_redirects=True)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert httpx.get(live.url + "/openapi.json").json()["info"]["title"] == "creative-hub"


def test_publish_get_replay_and_page(live: LiveServer) -> None:
    story = uuid.uuid4().hex[:8]
    with live.client("alice") as c:
        # The server is shared by the session: page from where the topic ends now, not from its
        # start (hundreds of pages of other tests' events would meet the default rate limit).
        ends = {t["name"]: t["last"] for t in c.get("/v1/topics").json()}
        r = c.post("/v1/events", json=fragment("one", story))
        assert r.status_code == 201
        (receipt,) = r.json()
        assert receipt["topic"] == "creative.narrative" and not receipt["duplicate"]
        batch = [fragment(f"part {i}", story) for i in range(5)]
        assert [x["topic"] for x in c.post("/v1/events", json=batch).json()] == ["creative.narrative"] * 5

        got = c.get(f"/v1/events/{receipt['id']}").json()
        assert got["event"]["creator"] == "alice"  # the token's principal, whatever the body says
        assert got["event"]["signature"]  # signed with alice's key

        retry = c.post("/v1/events", json={**fragment("one", story), "id": receipt["id"]})
        assert retry.status_code == 201  # same id, same content: a safe retry
        conflict = c.post("/v1/events", json={**fragment("other", story), "id": receipt["id"]})
        is_problem(conflict, 409)

        seen, after = [], ends.get("creative.narrative")
        while True:
            r = c.get("/v1/topics/creative.narrative/events", params={"limit": 2, "after": after})
            assert r.status_code == 200, r.text
            page = r.json()
            seen += [
                e["event"]["data"]["title"] for e in page["events"] if e["event"]["subject"].endswith(story)
            ]
            after = page["next"]
            if after is None:
                break
        assert seen == ["one"] + [f"part {i}" for i in range(5)]
        names = [t["name"] for t in c.get("/v1/topics").json()]
        assert "creative.narrative" in names and not any(n.startswith("system.") for n in names)
        assert any(s["topic"] == "creative.narrative" for s in c.get("/v1/stats").json())
        assert c.get("/v1/me").json() == {"principal": "alice", "authenticated": True}


def test_bad_input_is_a_problem_and_writes_nothing(live: LiveServer) -> None:
    with live.client("alice") as c:
        before = c.get("/v1/topics/creative.narrative/events", params={"limit": 1000}).json()["events"]
        bad = [fragment("fine"), {"type": "creative.narrative.fragment", "data": {"story": "x"}}]
        body = is_problem(c.post("/v1/events", json=bad), 422)
        assert body["index"] == 1 and body["field"] == "data.title"
        assert is_problem(c.post("/v1/events", content=b"{not json"), 422)["field"] == "body"
        is_problem(c.post("/v1/events", content=b"[]"), 422)
        is_problem(c.post("/v1/events", content=b"x", headers={"content-type": "text/plain"}), 415)
        is_problem(c.post("/v1/events", json={"type": "creative.nothing.here", "data": {}}), 422)
        # An event over the hub's 1 MiB event limit, in a body under the server's 8 MiB limit.
        big = fragment("big")
        big["data"]["text"] = "x" * (1024 * 1024 + 1)
        assert is_problem(c.post("/v1/events", json=big), 413)["field"] == "event"
        after = c.get("/v1/topics/creative.narrative/events", params={"limit": 1000}).json()["events"]
        assert len(after) == len(before)
        # FastAPI's own request validation answers with problem details too.
        assert (
            is_problem(c.get("/v1/topics/creative.narrative/events?limit=0"), 422)["field"] == "query.limit"
        )
        assert is_problem(c.post("/v1/events/x/feedback", json={"rating": 9}), 422)["field"].startswith(
            "body"
        )
        is_problem(c.get("/v1/no/such/route"), 404)
        is_problem(c.delete("/v1/events"), 405)
        is_problem(c.get("/v1/events/no-such-id"), 404)
        is_problem(c.get("/v1/topics/a..b/events"), 422)
        gone = c.get("/v1/topics/creative.narrative/events", params={"after": "not-a-position"})
        is_problem(gone, 422)


def test_auth_rules(live: LiveServer) -> None:
    with live.client() as anon, live.client("alice") as alice, live.client("bob") as bob:
        _auth_rules(live, anon, alice, bob)


def _auth_rules(live: LiveServer, anon: httpx.Client, alice: httpx.Client, bob: httpx.Client) -> None:
    is_problem(anon.post("/v1/events", json=fragment()), 401)  # anonymous is read-only
    assert anon.get("/v1/topics").status_code == 200
    is_problem(anon.get("/v1/topics", headers={"Authorization": "Bearer chub_0000000000000000_nope"}), 401)
    is_problem(anon.get("/v1/topics", headers={"Authorization": "Basic abc"}), 401)
    is_problem(anon.get(f"/v1/topics?token={live.tokens['alice']}"), 400)

    d = alice.post(
        "/v1/peers/alice/drafts",
        json={
            "type": "creative.narrative.fragment",
            "subject": "story:d",
            "data": {"story": "d", "title": "secret", "text": "..."},
        },
    )
    assert d.status_code == 201 and d.json()["topic"] == "peer.alice.drafts"
    draft_id = d.json()["id"]
    assert alice.get(f"/v1/events/{draft_id}").status_code == 200
    for c in (bob, anon):
        is_problem(c.get(f"/v1/events/{draft_id}"), 404)  # not even its existence
        is_problem(c.get("/v1/topics/peer.alice.drafts/events"), 403)
        is_problem(c.get("/v1/topics/peer.alice.drafts/stream"), 403)
        assert "peer.alice.drafts" not in [t["name"] for t in c.get("/v1/topics").json()]
    is_problem(
        bob.post(
            "/v1/peers/alice/drafts", json={"type": "creative.narrative.fragment", "subject": "s", "data": {}}
        ),
        403,
    )
    lineage = bob.get(f"/v1/lineage/{draft_id}")
    is_problem(lineage, 404)


def test_peer_flow_and_lineage(live: LiveServer) -> None:
    with live.client("alice") as alice, live.client("bob") as bob:
        _peer_flow(alice, bob)


def _peer_flow(alice: httpx.Client, bob: httpx.Client) -> None:
    data = {"story": "mill", "title": "The mill", "text": "It turned."}
    d1 = alice.post(
        "/v1/peers/alice/drafts",
        json={"type": "creative.narrative.fragment", "subject": "story:mill", "data": data},
    ).json()
    d2 = alice.post(f"/v1/drafts/{d1['id']}/revisions", json={"data": {"text": "It turned, slowly."}}).json()
    p1 = alice.post(f"/v1/drafts/{d2['id']}/publish").json()
    assert p1["topic"] == "peer.alice.published"
    f1 = bob.post(f"/v1/events/{p1['id']}/fork", json={}).json()
    assert f1["topic"] == "peer.bob.drafts"
    c1 = bob.post(
        "/v1/peers/alice/contributions",
        json={"on": p1["id"], "title": "Darker", "changes": {"text": "It groaned."}},
    ).json()
    # Only the owner decides: to bob it is not a contribution to his hub.
    assert bob.post(f"/v1/contributions/{c1['id']}/accept", json={}).status_code in (403, 404)
    decided, revision = alice.post(f"/v1/contributions/{c1['id']}/accept", json={"reason": "yes"}).json()
    assert decided["topic"] == "peer.alice.contributions" and revision["topic"] == "peer.alice.published"
    is_problem(alice.post(f"/v1/contributions/{c1['id']}/reject", json={}), 422)  # already decided
    fb = bob.post(f"/v1/events/{revision['id']}/feedback", json={"text": "Better.", "rating": 5})
    assert fb.json()["topic"] == "peer.alice.feedback"

    tree = alice.get(f"/v1/lineage/{revision['id']}").json()
    ids = set()

    def walk(n: dict[str, Any]) -> None:
        ids.add(n["id"])
        for p in n["parents"]:
            walk(p)

    walk(tree["root"])
    assert {p1["id"], d2["id"], d1["id"], c1["id"]} <= ids | {n["id"] for n in tree["decisions"]}
    assert [n["id"] for n in tree["feedback"]] == [fb.json()["id"]]
    assert tree["verified"]
    assert "bob" in tree["creators"]
    # bob sees the lineage too, without alice's drafts
    bob_ids = {n["id"] for n in _nodes(bob.get(f"/v1/lineage/{revision['id']}").json()["root"])}
    assert d1["id"] not in bob_ids and p1["id"] in bob_ids


def _nodes(n: dict[str, Any]) -> list[dict[str, Any]]:
    return [n] + [x for p in n["parents"] for x in _nodes(p)]


def test_principals_and_activity(live: LiveServer) -> None:
    with live.client() as c:
        ids = [p["id"] for p in c.get("/v1/principals").json()]
        assert {"alice", "bob", "carol"} <= set(ids)
        assert c.get("/v1/principals/alice").json()["public_key"]
        is_problem(c.get("/v1/principals/nobody"), 404)
    with live.client("carol") as c:
        c.post(
            "/v1/events",
            json=[fragment("a"), {"type": "creative.feedback.comment", "data": {"on": "x", "text": "nice"}}],
        )
        act = c.get("/v1/activity", params={"hours": 6}).json()
        assert len(act["hours"]) == 6
        assert act["by_area"]["narrative"][-1] >= 1 and act["by_area"]["feedback"][-1] >= 1
        assert act["by_creator"]["carol"][-1] >= 2
        assert act["total"] >= 2
        is_problem(c.get("/v1/activity", params={"hours": 0}), 422)


def test_metrics(live: LiveServer) -> None:
    with live.client("alice") as c:
        c.post("/v1/events", json=fragment("counted"))
    text = httpx.get(live.url + "/metrics").text
    for name in (
        "creative_hub_http_requests_total",
        "creative_hub_published_events_total",
        "creative_hub_stream_clients",
        "creative_hub_stream_dropped_clients_total",
        "creative_hub_rate_limited_requests_total",
    ):
        assert name in text
    assert live.metric("creative_hub_published_events_total") >= 1


def test_asyncapi_document(live: LiveServer) -> None:
    doc = httpx.get(live.url + "/asyncapi.json").json()
    assert doc["asyncapi"] == "3.0.0"
    assert "creative.narrative" in doc["channels"] and "peer.drafts" in doc["channels"]
    msg = doc["components"]["messages"]["creative.narrative.fragment"]
    data_ref = msg["payload"]["properties"]["data"]["$ref"]
    fragment_schema = _resolve(doc, data_ref)
    assert {"story", "title", "text"} <= set(fragment_schema["required"])
    # the insight agents' events: in the story's topic, and in a peer's feedback stream (where the
    # continuity check, and any insight about a peer's story, is posted)
    for channel in ("creative.narrative", "peer.feedback"):
        assert "creative.narrative.insight" in doc["channels"][channel]["messages"], channel
    insight = _resolve(
        doc,
        doc["components"]["messages"]["creative.narrative.insight"]["payload"]["properties"]["data"]["$ref"],
    )
    assert {"story", "kind"} <= set(insight["required"])

    def check_refs(node: Any) -> None:  # every reference resolves inside the document
        if isinstance(node, dict):
            if "$ref" in node:
                _resolve(doc, node["$ref"])
            for v in node.values():
                check_refs(v)
        elif isinstance(node, list):
            for v in node:
                check_refs(v)

    check_refs(doc)


PROVENANCE_SAMPLES = {  # attribute -> values, valid and not
    "model": ["gpt-4o-mini", "llama3.2:3b", "meta-llama/Llama-3-8B", "x" * 200, "two words", "", "x" * 201],
    "modelprovider": ["offline", "api.example.com:8080", "Anthropic", "a/b", "", "x" * 101],
    "confighash": ["ab" * 32, "AB" * 32, "ab" * 31, "ab" * 33],
    "inputs": ["one", "one two three", " one", "one ", "one  two", "", "x" * 257, " ".join(["i"] * 257)],
}


def test_openapi_documents_the_provenance_attributes(live: LiveServer) -> None:
    """The publish body in /openapi.json lists model, modelprovider, confighash and inputs
    with the rules the hub enforces: a value the documented rules allow is published, one
    they refuse is a 422 naming the attribute."""
    doc = httpx.get(live.url + "/openapi.json").json()
    body = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    event = body["oneOf"][0]
    assert event["dependentRequired"] == {"model": ["modelprovider"]}
    props = event["properties"]
    story = uuid.uuid4().hex[:8]
    with live.client("alice") as c:
        for attr, values in PROVENANCE_SAMPLES.items():
            rule = props[attr]
            assert rule["type"] == "string" and rule["description"]
            for value in values:
                documented = re.search(rule["pattern"], value) is not None and len(value) <= rule.get(
                    "maxLength", len(value)
                )
                extra = {attr: value, **({"modelprovider": "offline"} if attr == "model" else {})}
                r = c.post("/v1/events", json=fragment(f"{attr} {value[:20]}", story, **extra))
                if documented:
                    assert r.status_code == 201, (attr, value, r.text)
                else:
                    assert attr in is_problem(r, 422)["detail"], (attr, value)
        r = c.post("/v1/events", json=fragment("no provider", story, model="gpt-4o-mini"))
        assert "modelprovider" in is_problem(r, 422)["detail"]  # dependentRequired


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node
