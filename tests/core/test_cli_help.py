"""Every ``--help`` of every command renders: the whole typer app, walked.

Help texts go through rich markup, so a help string holding ``[/folder]``
crashed ``creative-hub ingest mail --help`` (a closing tag with nothing
open).  This walks every group and command the app has, so a new one is
covered the day it is added.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from creative_hub.cli import app


def _paths(cmd: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    # typer ships its own click: a group is whatever has sub-commands.
    if isinstance(getattr(cmd, "commands", None), dict):
        for name, sub in sorted(cmd.commands.items()):
            yield from _paths(sub, (*prefix, name))


PATHS = list(_paths(typer.main.get_command(app)))


def test_the_walk_finds_the_nested_commands() -> None:
    assert ("ingest", "mail") in PATHS and ("ingest", "github") in PATHS and len(PATHS) > 30


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "(root)")
def test_help_renders(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert r.exit_code == 0, f"{' '.join(path)} --help: {r.exception!r}\n{r.output}"
    assert "Usage:" in r.output and "Traceback" not in r.output
