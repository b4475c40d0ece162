"""The narrative pipeline scored against the shared hand-made gold (../shared/tools/story_eval.py).

Quality is deterministic (same text, same model, same outline), so a threshold
test is right here.  The thresholds are the issue's targets (issue 17), not
today's figures: a change that drops below a target fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TARGETS = {
    "recall": 0.90,
    "precision": 0.85,
    "merges": 0.80,
    "parts": 1.00,
    "integrity": 1.00,
    "events": 0.80,
    "order": 0.90,
}


def test_outline_meets_the_issue_targets_on_the_shared_gold(fixtures_dir: Path) -> None:
    gold = fixtures_dir / "story-gold"
    tool = fixtures_dir.parent / "tools" / "story_eval.py"
    mins = [a for k, v in TARGETS.items() for a in ("--min", f"{k}={v}")]
    cmd = [sys.executable, str(tool), str(gold), str(gold), *mins, "-v", "--"]
    cmd += [sys.executable, "-m", "creative_hub", "story", "outline", "{file}", "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "macro" in run.stdout


def test_outline_meets_the_targets_on_tales_outside_the_shared_gold(fixtures_dir: Path) -> None:
    """Two more public-domain Grimm tales (written out for this test, with their own gold).

    A regression check on text the shared gold does not cover: "my wife Ilsabill" said in a
    song is the wife; "the wolf ran to a baker and said" speaks to the baker.
    """
    data = Path(__file__).parent / "data"
    tool = fixtures_dir.parent / "tools" / "story_eval.py"
    mins = [a for k, v in TARGETS.items() for a in ("--min", f"{k}={v}")]
    cmd = [sys.executable, str(tool), str(data), str(data), *mins, "-v", "--"]
    cmd += [sys.executable, "-m", "creative_hub", "story", "outline", "{file}", "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "The Fisherman and his Wife" in run.stdout and "The Wolf and the Seven Young Kids" in run.stdout
