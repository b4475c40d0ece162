"""The four multi-agent patterns, as library helpers over the agent runtime.

=================  ============================================================
orchestrator       tasks fanned out through a consumer group, results gathered
hierarchy          an orchestrator of orchestrators (supervisors split tasks)
blackboard         a shared topic of notes; conflicts resolved by revision
market             announce, collect bids until a deadline, award, execute
=================  ============================================================

Each has a runnable example in ``examples/`` that works on every engine.
"""

from __future__ import annotations

from .blackboard import Blackboard, Conflict, board_topic
from .hierarchy import LEAF, TOP, Hierarchy, supervisor
from .market import Auctioneer, bidder, market_topics
from .orchestrator import Orchestrator, job_topics, task_of, worker

__all__ = [
    "Auctioneer",
    "Blackboard",
    "Conflict",
    "Hierarchy",
    "LEAF",
    "Orchestrator",
    "TOP",
    "bidder",
    "board_topic",
    "job_topics",
    "market_topics",
    "supervisor",
    "task_of",
    "worker",
]
