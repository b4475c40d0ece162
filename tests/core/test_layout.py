"""The layout STYLE.md asks for, kept: no source module past 600 lines (split by noun before that)."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "creative_hub"
MAX_LINES = 600


def test_no_source_module_over_600_lines() -> None:
    sizes = {p.relative_to(SRC).as_posix(): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert len(sizes) > 100  # the package was found
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
