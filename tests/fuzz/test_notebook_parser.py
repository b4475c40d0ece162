"""Fuzzing `ingest notebook`'s reader: the shared notebooks broken on purpose, and noise.

A notebook is all or nothing: either every cell becomes an event the hub
reads back, or the file is one ItemError saying why -- never an exception,
never half a notebook.  Image bytes never reach an event, however the
output around them is mangled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_parsers import FUZZ, check_items, fixtures, inputs, mutated_json

from creative_hub.event import Event, encode_event
from creative_hub.sources.base import ItemError
from creative_hub.sources.notebooks import Known, notebook_events

pytestmark = [pytest.mark.sqlite, pytest.mark.fuzz, pytest.mark.timeout(600)]


def seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(fixtures().joinpath("notebooks").glob("*.ipynb"))]


def all_or_nothing(raw: bytes) -> list[Any]:
    items = check_items(notebook_events(raw, "fuzz.ipynb", Known()))
    errors = [i for i in items if isinstance(i, ItemError)]
    assert not errors or len(items) == 1, f"half a notebook: {errors[0]} beside {len(items) - 1} events"
    return items


@pytest.fixture(autouse=True)
def _fixtures_present(fixtures_dir: Path) -> None:
    """The shared fixtures exist (conftest's fixture fails with a hint if not)."""


@FUZZ
@given(st.deferred(lambda: inputs(seeds())))
@example(b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}')
@example(b'{"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [{}]}]}')
def test_notebook_bytes(raw: bytes) -> None:
    all_or_nothing(raw)


@FUZZ
@given(st.data())
def test_notebook_json(data: st.DataObject) -> None:
    seed = json.loads(data.draw(st.sampled_from(seeds())))
    broken = data.draw(mutated_json(seed))
    items = all_or_nothing(json.dumps(broken).encode())
    # whatever survived of an image output, its base64 is not in any event
    pngs = [
        "".join(o["data"]["image/png"])[:64]
        for c in (
            broken["cells"] if isinstance(broken, dict) and isinstance(broken.get("cells"), list) else []
        )
        if isinstance(c, dict)
        for o in (c.get("outputs") if isinstance(c.get("outputs"), list) else [])
        if isinstance(o, dict)
        and isinstance(o.get("data"), dict)
        and isinstance(o["data"].get("image/png"), str)
    ]
    bodies = [encode_event(i).decode() for i in items if isinstance(i, Event)]
    assert not any(p in b for p in pngs if len(p) >= 32 for b in bodies)
