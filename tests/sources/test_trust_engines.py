"""The trust rules of tests/sources/test_trust.py that touch the log, on all four engines."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from creative_hub.errors import ValidationError
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.principals import verify_signature
from creative_hub.sources.base import arxiv_paper_id
from creative_hub.sources.github import sign, webhook_app

SECRET = "webhook secret"


async def signer(hub: Hub, event: Event) -> str | None:
    """The registered principal whose key made ``event``'s signature, if any."""
    await hub.registry.refresh()
    for pid, p in hub.registry.principals.items():
        if p.public_key and verify_signature(event, p.public_key):
            return pid
    return None


async def test_the_rules_hold_on_every_engine(log_url: str, tmp_path: Path) -> None:
    """Squatting refused, one delivery handled once, github signing: the same on all four engines."""
    run = uuid.uuid4().hex[:8]  # brokers are shared between tests: names of our own
    async with Hub.connect(log_url, keys=str(tmp_path / "keys")) as hub:
        bob_id = f"bob{run}"
        await hub.registry.add(bob_id)
        bob = hub.acting(bob_id, authenticated=True)
        with pytest.raises(ValidationError):
            await bob.publish(
                {
                    "type": "creative.metadata.paper",
                    "id": arxiv_paper_id(f"2101.{run[:5]}"),
                    "data": {"title": "Squatted"},
                }
            )
        sha = uuid.uuid4().hex + run
        push = {
            "repository": {"full_name": f"o/r{run}"},
            "commits": [
                {"id": sha, "message": "m", "timestamp": "2026-06-01T10:00:00Z", "author": {"name": "x"}}
            ],
        }
        body = json.dumps(push).encode()
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(SECRET, body),
        }
        answers = []
        for _ in range(2):  # two receivers: what one handled, the other knows from the log
            app = webhook_app(hub, SECRET)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
                answers.append((await c.post("/webhooks/github", content=body, headers=headers)).json())
        assert answers[0]["stored"] == 1 and answers[1]["duplicate_delivery"] is True
        (stored,) = [
            s async for s in hub.replay("creative.engineering") if s.event.id == answers[0]["ids"][0]
        ]
        assert stored.event.creator == "github" and await signer(hub, stored.event) == "github"
