"""W3C trace context carried across events (the ``traceparent`` extension).

Each agent hop is a span: the handling of an event continues the trace of
that event (same trace id) with a span of its own, and everything the agent
publishes carries ``00-<trace id>-<that span id>-<flags>``, so a tracing
backend can draw the whole chain across agents and engines.

The span id is *derived* from (agent, event id) rather than random: a
redelivered event is re-handled with the same span, so what the agent
publishes again has the same content and the log deduplicates it (a random
span id would make every retry a different event).

    parent = parse(event.traceparent)        # None if absent or malformed
    span = child_of(parent, "analyst", event.id)
    span.traceparent                         # '00-4bf9...-00f0...-01'

When the OpenTelemetry API is installed and an SDK is configured, the
runtime also opens a real span under the incoming context (see
``otel_span``); without an SDK that is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["SpanContext", "child_of", "otel_span", "parse"]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True, slots=True)
class SpanContext:
    """A trace id, a span id and the trace flags (``01`` = sampled)."""

    trace_id: str  #: 32 hex digits
    span_id: str  #: 16 hex digits
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        """The W3C header value: ``00-<trace id>-<span id>-<flags>``."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse(value: str | None) -> SpanContext | None:
    """The context in a ``traceparent`` value, or None if absent or invalid."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    _, trace_id, span_id, flags = m.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return SpanContext(trace_id, span_id, flags)


def _hex(*parts: str, size: int) -> str:
    h = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()
    # All zeros is invalid in W3C trace context; vanishingly unlikely, but cheap to rule out.
    return h if h.strip("0") else "1" + h[1:]


def child_of(parent: SpanContext | None, agent: str, event_id: str) -> SpanContext:
    """The span of ``agent`` handling ``event_id``: same trace as ``parent``
    (a new trace when there is none), a span id of its own, stable per hop."""
    span_id = _hex("span", agent, event_id, size=8)
    if parent is None:
        return SpanContext(_hex("trace", agent, event_id, size=16), span_id, "01")
    return SpanContext(parent.trace_id, span_id, parent.flags)


@contextlib.contextmanager
def otel_span(name: str, incoming: str | None, attributes: dict[str, Any]) -> Iterator[None]:
    """A real OpenTelemetry span under the incoming ``traceparent``, when the
    API is installed; nothing otherwise.  Spans are exported only if the
    application configured an SDK (the API alone records nothing)."""
    try:
        from opentelemetry import trace
        from opentelemetry.propagate import extract
    except ImportError:
        yield
        return
    ctx = extract({"traceparent": incoming}) if incoming else None
    tracer = trace.get_tracer("creative_hub.agents")
    with tracer.start_as_current_span(name, context=ctx, attributes=attributes):
        yield
