"""Agents: handlers with subscriptions, retries and dead letters, on any engine.

    from creative_hub.agents import Agent, AgentRunner

See ``runtime`` for the runtime, ``patterns`` for the four multi-agent
patterns, ``llm`` for the OpenAI-compatible client, ``builtin`` for the
analyst, fork suggester and contribution matcher, and ``a2a`` for the
Agent2Agent gateway.  Importing this package registers the
``creative.agents.*`` event types.
"""

from __future__ import annotations

from .context import AgentContext
from .payloads import Award, Bid, Note, Result, Task
from .runtime import AgentRunner, AgentStats, RunnerState, ensure_principal
from .spec import Agent, AgentSettings, Permanent, agent

__all__ = [
    "Agent",
    "AgentContext",
    "AgentRunner",
    "AgentSettings",
    "AgentStats",
    "Award",
    "Bid",
    "Note",
    "Permanent",
    "Result",
    "RunnerState",
    "Task",
    "agent",
    "ensure_principal",
]
