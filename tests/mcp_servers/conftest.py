"""Fixtures for the MCP tests: ``world`` (see tests/_world.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from _world import World, make_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w, hub = await make_world(tmp_path / "hub.db")
    try:
        yield w
    finally:
        await hub.close()
