"""The narrative pipeline scored against the shared hand-made gold (../shared/tools/story_eval.py).

Quality is deterministic (same text, same model, same outline), so a threshold
test is right here.  The floors are what the pipeline reaches today; the
issue's targets (recall 0.90, merges 0.80) are above them and are tracked in
the README, not hidden by a lower bar elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FLOORS = {
    "recall": 0.85,
    "precision": 0.90,
    "merges": 0.75,
    "parts": 1.00,
    "integrity": 1.00,
    "events": 0.95,
    "order": 0.90,
}


def test_outline_meets_the_floors_on_the_shared_gold(fixtures_dir: Path) -> None:
    gold = fixtures_dir / "story-gold"
    tool = fixtures_dir.parent / "tools" / "story_eval.py"
    mins = [a for k, v in FLOORS.items() for a in ("--min", f"{k}={v}")]
    cmd = [sys.executable, str(tool), str(gold), str(gold), *mins, "-v", "--"]
    cmd += [sys.executable, "-m", "creative_hub", "story", "outline", "{file}", "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "macro" in run.stdout
