"""The built-in agents: analyst, fork suggester, contribution matcher, story insight.

    from creative_hub.agents.builtin import analyst, fork_suggester, contribution_matcher
    from creative_hub.agents.builtin import morals, causal_check, continuity, story_insight

Each is a function returning an ``Agent``; run them with ``AgentRunner`` or
``creative-hub agent run creative_hub.agents.builtin:analyst``.
Their offline paths (no LLM, no index) are deterministic: see ``text``.
"""

from __future__ import annotations

from .analyst import analyse_offline, analyst
from .forks import fork_suggester
from .insight import causal_check, continuity, morals, story_insight
from .library import WORK_TYPES, Library
from .matcher import contribution_matcher, is_open_call

__all__ = [
    "WORK_TYPES",
    "Library",
    "analyse_offline",
    "analyst",
    "causal_check",
    "continuity",
    "contribution_matcher",
    "fork_suggester",
    "is_open_call",
    "morals",
    "story_insight",
]
