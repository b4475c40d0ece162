"""The analyst: summarises new work and publishes feedback on it.

With an LLM configured it asks the model for a summary, key terms and one
piece of feedback (structured output); otherwise -- or when the model
fails for good -- a deterministic offline analysis: an extractive summary,
the key terms, and the size of the work (words, sentences; files and lines
for a commit).  The feedback is a ``creative.feedback.comment`` on the work,
in its owner's feedback stream (or the shared one), with the analysis in
``data.extra["analysis"]`` and the LLM's usage in ``data.extra["llm"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...event import Event
from ..context import AgentContext
from ..llm import LLMError
from ..spec import Agent, AgentSettings
from .library import SHARED_TOPICS, WORK_TYPES
from .text import _field, event_text, event_title, key_terms, sentences, summarise, terms

__all__ = ["ANALYSIS_SCHEMA", "PROMPT", "analyse_offline", "analyst"]

PROMPT = (
    "You review creative work shared on a hub. Summarise it in two sentences, "
    "list up to six key terms, and give one concrete, kind piece of feedback."
)

ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "key_terms": {"type": "array", "items": {"type": "string"}},
        "feedback": {"type": "string"},
    },
    "required": ["summary", "key_terms", "feedback"],
    "additionalProperties": False,
}


def analyse_offline(event: Event) -> dict[str, Any]:
    """Summary, key terms and size of a work, without a model."""
    text = event_text(event)
    size: dict[str, Any] = {"words": len(terms(text)), "sentences": len(sentences(text))}
    for name in ("additions", "deletions"):
        if isinstance(v := _field(event.data, name), int):
            size[name] = v
    files = _field(event.data, "files")
    if isinstance(files, list):
        size["files"] = len(files)
    return {"summary": summarise(text) or event_title(event), "key_terms": key_terms(text), "size": size}


def _feedback_text(analysis: dict[str, Any]) -> str:
    parts = [analysis["summary"]]
    if analysis.get("key_terms"):
        parts.append("Key terms: " + ", ".join(analysis["key_terms"]) + ".")
    if analysis.get("feedback"):
        parts.append(str(analysis["feedback"]))
    return " ".join(p for p in parts if p)[:4000]


def analyst(
    id: str = "analyst",
    *,
    topics: Sequence[str] = SHARED_TOPICS,
    follows: Sequence[str] = (),
    settings: AgentSettings | None = None,
) -> Agent:
    """The analyst agent (LLM when the runner has one, offline otherwise)."""

    async def analyse(ctx: AgentContext, event: Event) -> dict[str, Any]:
        analysis = analyse_offline(event)
        analysis["mode"] = "offline"
        if ctx.llm is not None and ctx.llm.configured:
            prompt = (
                f"{PROMPT}\n\nType: {event.type}\nTitle: {event_title(event)}\n\n{event_text(event)[:12000]}"
            )
            try:
                reply = await ctx.chat([{"role": "user", "content": prompt}], schema=ANALYSIS_SCHEMA)
            except LLMError:
                if ctx.attempt < ctx.agent.settings.max_attempts:
                    raise  # retried with backoff by the runtime
                analysis["mode"] = "offline (the model failed)"
            else:
                data = reply.data if isinstance(reply.data, dict) else {}
                analysis.update({k: data[k] for k in ("summary", "key_terms", "feedback") if k in data})
                analysis["mode"] = "llm"
        owner = event.hub if event.hub not in (None, "shared") else "shared"
        return {
            "type": "creative.feedback.comment",
            "subject": event.subject,
            "hub": owner,
            "data": {"on": event.id, "text": _feedback_text(analysis), "extra": {"analysis": analysis}},
        }

    return Agent(
        id=id,
        handler=analyse,
        topics=topics,
        follows=follows,
        types=WORK_TYPES,
        description="summarises new work and publishes feedback on it",
        settings=settings or AgentSettings(),
        config={"prompt": PROMPT, "schema": ANALYSIS_SCHEMA},  # hashed into each event's confighash
    )
