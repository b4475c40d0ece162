"""What faces and agents need of the engine, asked of the hub with the access rules applied.

Nothing outside ``creative_hub.log`` and ``creative_hub.hub`` touches ``hub.log``
(the last test reads the source to keep it so).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

import creative_hub
from creative_hub.agents.patterns.orchestrator import Orchestrator
from creative_hub.errors import AccessDenied
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.log import Log, Retention
from creative_hub.testing.contract import new_topic


def fragment(title: str) -> Event:
    return Event(
        type="creative.narrative.fragment",
        subject="story:s1",
        data={"story": "s1", "title": title, "text": "..."},
    )


async def test_end_is_the_newest_position_and_none_before_the_first(log: Log) -> None:
    hub = Hub(log)
    topic = new_topic()
    assert await hub.end(topic) is None
    first, second = await hub.publish([fragment("one"), fragment("two")], topic=topic)
    assert await hub.end(topic) == second.position != first.position
    assert (await hub.topic_info(topic)).count == 2


async def test_a_principal_asks_only_about_topics_it_may_read(log: Log) -> None:
    owner = f"p{uuid.uuid4().hex[:8]}"
    bob = Hub(log).acting("bob", authenticated=True)
    with pytest.raises(AccessDenied):
        await bob.end(f"peer.{owner}.drafts")
    with pytest.raises(AccessDenied):
        await bob.tail_start(f"peer.{owner}.drafts", 3)


async def test_lags_are_the_groups_on_the_topics_it_joined(log: Log) -> None:
    hub = Hub(log)
    topic, other, group = new_topic(), new_topic(), f"g{uuid.uuid4().hex[:8]}"
    await hub.publish([fragment("one"), fragment("two")], topic=topic)
    await hub.publish(fragment("three"), topic=other)
    async with hub.subscribe(topic, group) as sub:
        d = await sub.next(timeout=10)
        await d.ack()
    (lag,) = await hub.lags(group, [topic, other])
    assert lag.topic == topic and lag.group == group
    assert await hub.lags(f"none-{group}", [topic, other]) == []


async def test_appends_of_prepared_events_follow_the_write_rules(log: Log) -> None:
    hub = Hub(log)
    _, event, entry = hub.prepare(fragment("mirrored"))
    bob = hub.acting("bob", authenticated=True)
    with pytest.raises(AccessDenied):
        await bob.append("system.anything", [(event, entry)])
    topic = new_topic()
    (r,) = await hub.append(topic, [(event, entry)])
    (again,) = await hub.append(topic, [(event, entry)])
    assert again.duplicate and again.position == r.position and r.id == event.id


async def test_an_orchestrator_writes_through_the_rules_of_its_principal(log: Log) -> None:
    """It appended straight to the engine before: a principal's orchestrator wrote the hub's topics."""
    bob = Hub(log).acting("bob", authenticated=True)
    with pytest.raises(AccessDenied):
        await Orchestrator(bob, f"job-{uuid.uuid4().hex[:8]}").publish(fragment("task"), "system.registry")


async def test_engine_admin_needs_the_hubs_own_rights(log: Log) -> None:
    topic = new_topic()
    hub = Hub(log)
    await hub.publish(fragment("one"), topic=topic)
    bob = hub.acting("bob", authenticated=True)
    for call in (bob.apply_retention(topic), bob.delete(topic, ["x"])):
        with pytest.raises(AccessDenied):
            await call
    await hub.set_retention(topic, Retention(max_count=5))
    assert await hub.apply_retention(topic) == 0
    assert await hub.apply_retention() >= 0  # every topic with limits


async def test_connect_can_be_entered_twice_with_its_options(tmp_path: Path) -> None:
    keys = tmp_path / "elsewhere.keys"
    connect = Hub.connect(f"sqlite:///{tmp_path / 'hub.db'}", keys=str(keys), principal="alice")
    for _ in range(2):
        async with connect as hub:
            assert hub.keystore is not None and Path(hub.keystore.path) == keys
            assert hub.principal == "alice"


_ENGINE = re.compile(r"hub\.log\b|\.log\._")


def test_no_face_or_agent_touches_the_engine() -> None:
    """Outside the engines and the hub itself, ``hub.log`` and engine-private names are not used."""
    root = Path(creative_hub.__file__).parent
    hits = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("log", "hub"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            # Docstrings may name log modules (``creative_hub.log._retry``): imports and code may not.
            if _ENGINE.search(line) and "creative_hub.log." not in line:
                hits.append(f"{rel}:{n}: {line.strip()}")
    assert hits == []


async def test_keys_default_to_one_place_whichever_way_the_hub_was_made(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    async with Hub.connect(url) as connected:
        assert connected.keystore is not None
        assert connected.registry.keystore.path == connected.keystore.path
        bare = Hub(connected.log)  # no keystore given: the registry looks where connect does
        assert bare.registry.keystore.path == connected.keystore.path == tmp_path / "hub.db.keys"
