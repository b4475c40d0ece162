"""The payloads of the event types the agents publish: tasks, results, bids, awards, notes.

They are core types, defined in ``creative_hub.schemas`` (area ``agents``) so
every process validates them, whether or not it imports the agents:

==============================  ===============================================
``creative.agents.task``        work to do: ``job``, ``task``, ``kind``, ``input``
``creative.agents.result``      what a worker made of a task (or why it failed)
``creative.agents.bid``         an offer to do an announced task (market)
``creative.agents.award``       who won an announced task (market)
``creative.agents.note``        one revision of a blackboard entry
==============================  ===============================================
"""

from __future__ import annotations

from ..schemas import Award, Bid, Note, Result, Task

__all__ = ["Award", "Bid", "Note", "Result", "Task"]
