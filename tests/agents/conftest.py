"""Fixtures for the agent tests: hubs on every engine, a ledger, unique names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import creative_hub.agents  # noqa: F401 -- registers creative.agents.* types
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger


@pytest.fixture
async def hub(log_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A trusted hub on the parametrised engine, keys in the test's temp dir."""
    async with Hub.connect(log_url, keys=str(tmp_path / "keys")) as h:
        yield h


@pytest.fixture
async def sqlite_hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with Hub.connect(f"sqlite:///{tmp_path / 'hub.db'}", keys=str(tmp_path / "keys")) as h:
        yield h


@pytest.fixture
def ledger(tmp_path: Path) -> EffectLedger:
    return EffectLedger(tmp_path / "ledger.db")


@pytest.fixture
def uid() -> str:
    """A short unique word for topic, group and job names."""
    return uuid.uuid4().hex[:10]
