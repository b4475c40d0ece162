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
