"""The public surface stays small, sorted and importable."""

import pytest

import creative_hub

pytestmark = pytest.mark.sqlite


def test_exported_members_are_sorted_and_complete() -> None:
    exported = creative_hub.__all__
    assert exported == sorted(exported)
    public = {name for name in vars(creative_hub) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(creative_hub, name)).__name__ == "module"}
    assert public - modules == set(exported)


def test_redact_hides_passwords_and_tokens() -> None:
    from creative_hub.log import redact

    assert redact("redis://:secret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("nats://user:pw@h1:4222,h2:4222") == "nats://user:***@h1:4222,h2:4222"
    assert redact("nats://tok@h:4222") == "nats://***@h:4222"
    assert redact("sqlite:///hub.db") == "sqlite:///hub.db"
