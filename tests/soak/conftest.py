"""The soak suite runs only when asked: ``make soak`` (or ``SOAK_MINUTES=3 pytest -m soak tests/soak``).

Without ``SOAK_MINUTES`` in the environment every ``soak`` test is skipped, so
CI's ``make test`` (which collects everything) never spends half an hour here.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SOAK_MINUTES"):
        return
    skip = pytest.mark.skip(reason="soak test: run with `make soak` (SOAK_MINUTES=30 by default)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
