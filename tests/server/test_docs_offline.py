"""/docs and /redoc work with no internet: every file they load comes from the hub itself."""

from __future__ import annotations

import re

import httpx
import pytest
from live_server import LiveServer

pytestmark = pytest.mark.sqlite


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_elsewhere(live: LiveServer, page: str) -> None:
    r = httpx.get(live.url + page, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", r.text), "a CDN or any other host: blank when offline"
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)""", r.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        got = httpx.get(live.url + asset, timeout=30)
        assert got.status_code == 200 and len(got.content) > 0, asset
