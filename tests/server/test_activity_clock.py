"""``/v1/activity?clock=event``: imported history counted at the hour it happened, not when stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from creative_hub.hub import Hub
from creative_hub.server.app import create_app

pytestmark = pytest.mark.sqlite


async def test_activity_by_the_events_own_time(tmp_path: Path) -> None:
    async with Hub.connect(f"sqlite:///{tmp_path / 'hub.db'}", principal="alice") as hub:
        hours_ago = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
        data = {"story": "s1", "title": "Back then", "text": "..."}
        event = {"type": "creative.narrative.fragment", "time": hours_ago.isoformat(), "data": data}
        await hub.publish(event)
        app = create_app(hub)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
            appended = (await c.get("/v1/activity", params={"hours": 6})).json()
            happened = (await c.get("/v1/activity", params={"hours": 6, "clock": "event"})).json()
            assert (await c.get("/v1/activity", params={"clock": "wall"})).status_code == 422
    stored_at = appended["by_area"]["narrative"].index(1)
    happened_at = happened["by_area"]["narrative"].index(1)
    # Stored this hour, happened three hours before (one less if an hour turned during the test).
    assert stored_at in (4, 5) and happened_at in (1, 2)
    assert happened["total"] == appended["total"] == 1
