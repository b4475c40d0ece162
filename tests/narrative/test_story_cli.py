"""``creative-hub story outline`` and ``story show`` as a person and a script use them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TALE = """# The Fox and the Geese

## 1. The meadow

A fox came to a meadow where a flock of geese sat. "I will eat you up," said the fox.
The geese begged for their lives. "Let us pray first," said the eldest goose.

## 2. The prayer

The geese began to pray, and the fox waited.
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "creative_hub", "story", *args], capture_output=True, text=True, timeout=300
    )


def test_outline_json_and_show(tmp_path: Path) -> None:
    tale = tmp_path / "fox.md"
    tale.write_text(TALE)
    r = run("outline", str(tale), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [p["title"] for p in out["parts"]] == ["1. The meadow", "2. The prayer"]
    assert "fox" in {c["name"] for c in out["characters"]}
    said = next(p for p in out["plot_points"] if p["speech"] and "eat you up" in p["evidence"])
    assert said["actor"] == "fox" and said["generated"] is False
    shown = run("show", str(tale))
    assert shown.returncode == 0, shown.stderr
    assert "part 2: 2. The prayer" in shown.stdout and "Plot points" in shown.stdout


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    r = run("outline", str(tmp_path / "missing.txt"), "--json")
    assert r.returncode == 2 and "no such file" in " ".join(r.stderr.split()) and r.stdout == ""
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("la sorcière".encode("latin-1"))
    r = run("outline", str(latin))
    assert r.returncode == 2 and "not UTF-8 text at byte" in " ".join(r.stderr.split())
