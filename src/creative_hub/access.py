"""Who may read and write which topic: the one place access rules live.

Every face (CLI, HTTP, SSE, MCP, the search index) goes through a Hub, and
the Hub asks these functions, so the rules are the same everywhere.

==========================  ==============================  ===============================
topic                       read                            write
==========================  ==============================  ===============================
``creative.<area>``         anyone                          anyone (attributed to them)
``peer.<id>.published``     anyone                          ``<id>``
``peer.<id>.drafts``        ``<id>`` only                   ``<id>``
``peer.<id>.contributions`` anyone                          proposals: anyone signed in;
                                                            accept / reject: ``<id>``
``peer.<id>.feedback``      anyone                          anyone signed in
``archive.<t>``,            as ``<t>``                      the hub
``deadletter.<t>``
``system.*``                the hub                         the hub
==========================  ==============================  ===============================

"Signed in" means the principal was authenticated by a token.  A trusted hub
(the Python API used directly, sources, migrations) is the hub itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import AccessDenied

__all__ = ["Identity", "can_read", "check_read", "check_write", "peer_of", "stream_of"]

ANONYMOUS = "anonymous"
_WRAPPERS = ("archive.", "deadletter.")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking."""

    principal: str
    authenticated: bool = False  #: proved by a token
    trusted: bool = False  #: the hub itself (bypasses the rules)


def _unwrap(topic: str) -> str:
    for prefix in _WRAPPERS:
        if topic.startswith(prefix):
            return topic[len(prefix) :]
    return topic


def peer_of(topic: str) -> str | None:
    """``alice`` for ``peer.alice.drafts`` (and for its archive / dead letters)."""
    parts = _unwrap(topic).split(".")
    return parts[1] if len(parts) >= 3 and parts[0] == "peer" else None


def stream_of(topic: str) -> str | None:
    """``drafts`` for ``peer.alice.drafts``."""
    parts = _unwrap(topic).split(".")
    return parts[2] if len(parts) >= 3 and parts[0] == "peer" else None


def can_read(who: Identity, topic: str) -> bool:
    if who.trusted:
        return True
    inner = _unwrap(topic)
    if inner.startswith("system."):
        return False
    if stream_of(topic) == "drafts":
        return who.authenticated and who.principal == peer_of(topic)
    return True


def check_read(who: Identity, topic: str) -> None:
    """Raise AccessDenied unless ``who`` may read ``topic``.  The message says
    nothing about what the topic holds (not even whether it exists)."""
    if not can_read(who, topic):
        raise AccessDenied(f"{who.principal!r} may not read {topic!r}")


def check_write(who: Identity, topic: str, event_type: str) -> None:
    """Raise AccessDenied unless ``who`` may append an event of ``event_type`` to ``topic``."""
    if who.trusted:
        return
    if topic.startswith(("system.", "archive.", "deadletter.")):
        raise AccessDenied(f"{topic!r} is written by the hub only")
    owner, stream = peer_of(topic), stream_of(topic)
    if owner is None:
        return  # the shared hub: anyone, attributed to themselves
    if not who.authenticated:
        raise AccessDenied(f"writing to {topic!r} needs a token (sign in as a principal)")
    if stream in ("drafts", "published") and who.principal != owner:
        raise AccessDenied(f"only {owner!r} writes to {topic!r}")
    if (
        stream == "contributions"
        and event_type != "creative.contributions.proposed"
        and who.principal != owner
    ):
        raise AccessDenied(f"only {owner!r} accepts or rejects contributions to their hub")
