"""Story insight agents (morals, causal check, continuity) on a real model; see ``agents``."""

from __future__ import annotations

from .agents import INSIGHT_SETTINGS, causal_check, continuity, morals, story_insight
from .reader import StoryEvents, StoryReader, story_of

__all__ = [
    "INSIGHT_SETTINGS",
    "StoryEvents",
    "StoryReader",
    "causal_check",
    "continuity",
    "morals",
    "story_insight",
    "story_of",
]
