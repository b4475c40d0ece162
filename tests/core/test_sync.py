"""The blocking facade, for scripts."""

from pathlib import Path

import pytest

from creative_hub.errors import ValidationError
from creative_hub.sync import connect

pytestmark = pytest.mark.sqlite


def test_publish_and_replay_without_asyncio(tmp_path: Path) -> None:
    with connect(f"sqlite:///{tmp_path / 'hub.db'}", principal="alice") as hub:
        (r,) = hub.publish(
            {"type": "creative.narrative.fragment", "data": {"story": "s", "title": "Sync", "text": "x"}}
        )
        assert [s.event.data["title"] for s in hub.replay("creative.narrative")] == ["Sync"]
        assert hub.get(r.id).event.creator == "alice"
        assert [t.name for t in hub.topics()] == ["creative.narrative"]
        with pytest.raises(ValidationError):
            hub.publish({"type": "creative.narrative.fragment", "data": {}})
    hub.close()
