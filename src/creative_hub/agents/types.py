"""Event types the agents publish: tasks, results, bids, awards and blackboard notes.

Importing this module registers them with ``creative_hub.schemas`` (area
``agents``), so the hub validates them like any other type:

==============================  ===============================================
``creative.agents.task``        work to do: ``job``, ``task``, ``kind``, ``input``
``creative.agents.result``      what a worker made of a task (or why it failed)
``creative.agents.bid``         an offer to do an announced task (market)
``creative.agents.award``       who won an announced task (market)
``creative.agents.note``        one revision of a blackboard entry
==============================  ===============================================

A process that reads these events (a subscriber validating payloads) must
import ``creative_hub.agents`` first; importing the package does it.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, field

from ..schemas import PAYLOADS, Payload, register

__all__ = ["AGENT_TYPES", "Award", "Bid", "Note", "Result", "Task", "ensure_registered"]

NonEmpty = Annotated[str, Meta(min_length=1)]


class Task(Payload, kw_only=True):
    """A unit of work, fanned out to workers or announced to bidders."""

    job: NonEmpty  #: the workflow this task belongs to (also its correlation id)
    task: NonEmpty  #: this task's id within the job
    kind: NonEmpty = "task"  #: what to do; workers pick the tasks they know
    title: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    assignee: str | None = None  #: a directed task (the winner of an award)
    deadline: float | None = None  #: epoch seconds: bids after it do not count (market)
    parent: str | None = None  #: the task this one was split from (hierarchy)


class Result(Payload, kw_only=True):
    """The outcome of a task."""

    job: NonEmpty
    task: NonEmpty
    ok: bool = True
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None  #: the agent that did it


class Bid(Payload, kw_only=True):
    """An offer to do an announced task; the lowest price wins."""

    job: NonEmpty
    task: NonEmpty
    bidder: NonEmpty
    price: Annotated[float, Meta(ge=0)]
    note: str | None = None


class Award(Payload, kw_only=True):
    """The decision of an announcement: who does the task, out of how many bids."""

    job: NonEmpty
    task: NonEmpty
    winner: str | None  #: None when nobody bid in time
    price: float | None = None
    bids: Annotated[int, Meta(ge=0)] = 0
    kind: str = "task"  #: the task's kind and input, so the winner needs nothing else
    input: dict[str, Any] = field(default_factory=dict)


class Note(Payload, kw_only=True):
    """One revision of a blackboard entry; ``revision`` counts from 1 per key."""

    board: NonEmpty
    key: NonEmpty
    value: Any = None
    revision: Annotated[int, Meta(ge=1)]


AGENT_TYPES: dict[str, type[Payload]] = {
    "creative.agents.task": Task,
    "creative.agents.result": Result,
    "creative.agents.bid": Bid,
    "creative.agents.award": Award,
    "creative.agents.note": Note,
}


def ensure_registered() -> None:
    """Register the agent types (idempotent; done on import)."""
    for name, payload in AGENT_TYPES.items():
        if PAYLOADS.get(name) is not payload:
            register(name, payload)


ensure_registered()
