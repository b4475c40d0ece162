"""Who may read and write which topic and event: the one place access rules live.

Every face (CLI, HTTP, SSE, MCP, the search index) goes through a Hub, and
the Hub asks these functions, so the rules are the same everywhere.

==========================  ==============================  ===============================
topic                       read                            write
==========================  ==============================  ===============================
``creative.<area>``         anyone                          anyone (attributed to them)
``peer.<id>.published``     anyone                          ``<id>``
``peer.<id>.drafts``        ``<id>``; a grantee: the        ``<id>``
                            drafts its live grant covers
``peer.<id>.contributions`` anyone                          proposals: anyone signed in;
                                                            accept / reject: ``<id>``
``peer.<id>.feedback``      anyone                          anyone signed in
``peer.<id>.audit``         ``<id>`` only                   the hub
``archive.<t>``,            as ``<t>`` (grants: not)        the hub
``deadletter.<t>``
``agents.*``                the hub, agent principals       signed-in principals
``system.*``                the hub                         the hub
==========================  ==============================  ===============================

``agents.*`` are work queues (tasks, results, bids, notes): their inputs may
hold anything a caller sent, so people do not read them; a person gets a
task's result from the face that submitted it (the A2A gateway acting for
them, an orchestrator).

"Signed in" means the principal was authenticated by a token.  A trusted hub
(the Python API used directly, sources, migrations) is the hub itself.

Grants.  ``<id>`` may grant another signed-in principal (an agent, usually)
read access to their drafts: to the whole ``drafts`` stream or to the drafts
of one ``subject``, until an expiry, revocable at once (``creative_hub.grants``
keeps them).  A grant opens ``peer.<id>.drafts`` to the grantee, but each
event is decided on its own (``can_read_event``): the grantee sees only the
drafts a live grant covers.  Expiry is checked against the clock at each
read.  Every such read is audited to ``peer.<id>.audit`` by the hub
(``needs_grant`` says when).  A topic opened by subject grants only is not
listed among the grantee's topics (its size would tell what the grant does
not).  Only ``<id>``, signed in, gives or revokes grants on their hub
(``check_grant``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Protocol

from .errors import AccessDenied
from .topics import ARCHIVE_PREFIX, DEADLETTER_PREFIX, SYSTEM_PREFIX
from .topics import drafts as drafts_topic

__all__ = [
    "ALL",
    "Grant",
    "GrantView",
    "Identity",
    "can_list",
    "can_read",
    "can_read_event",
    "check_grant",
    "check_read",
    "check_write",
    "grant_for",
    "needs_grant",
    "peer_of",
    "read_scope",
    "stream_of",
]

ANONYMOUS = "anonymous"
_WRAPPERS = (ARCHIVE_PREFIX, DEADLETTER_PREFIX)
GRANTABLE_STREAMS = ("drafts",)  #: the streams a grant may open (the others are public or the owner's)


class _All:
    """The read scope "every event of the topic" (``ALL``)."""

    def __repr__(self) -> str:
        return "ALL"


ALL: Final = _All()
Scope = _All | frozenset[str]  #: ALL, or the subjects whose events may be read


@dataclass(frozen=True, slots=True)
class Grant:
    """``owner`` lets ``grantee`` read their drafts: every one (``stream``) or one ``subject``'s."""

    id: str
    owner: str
    grantee: str
    expires: datetime  #: aware; the grant ends then
    stream: str | None = None  #: "drafts": every draft of ``owner``
    subject: str | None = None  #: only drafts about this subject
    reason: str | None = None
    given: datetime | None = None
    revoked: datetime | None = None  #: when the owner revoked it

    def live(self, at: datetime | None = None) -> bool:
        """Neither revoked nor expired at ``at`` (default: now)."""
        return self.revoked is None and (at or datetime.now(UTC)) < self.expires

    def covers(self, topic: str, subject: str | None) -> bool:
        """True if this grant (live or not) reaches an event about ``subject`` in ``topic``."""
        if topic != drafts_topic(self.owner):  # archives and dead letters: never through a grant
            return False
        if self.stream is not None:
            return self.stream == "drafts"
        return subject is not None and subject == self.subject


class GrantView(Protocol):
    """Where the rules find the grants given to a principal (``creative_hub.grants.GrantBook``)."""

    def given_to(self, grantee: str) -> Sequence[Grant]:
        """Every grant ever given to ``grantee`` (the rules skip revoked and expired ones)."""
        ...


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking."""

    principal: str
    authenticated: bool = False  #: proved by a token
    trusted: bool = False  #: the hub itself (bypasses the rules)
    #: the grants in force (a live view kept by the hub); None: no grant counts
    grants: GrantView | None = field(default=None, compare=False, repr=False)
    via: str | None = field(default=None, compare=False)  #: the face asking (http, mcp), for the audit
    agent: bool = field(default=False, compare=False)  #: a registered agent principal (signed in)

    def without_grants(self) -> Identity:
        """The same principal with no grant counting (e.g. for aggregates nobody audits)."""
        return Identity(self.principal, self.authenticated, self.trusted, None, self.via, self.agent)


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


def _own(who: Identity, topic: str) -> bool:
    return who.authenticated and who.principal == peer_of(topic)


def _live_grants(who: Identity, topic: str, at: datetime | None = None) -> list[Grant]:
    """``who``'s live grants on the owner of ``topic`` (a drafts topic)."""
    if who.grants is None or not who.authenticated or who.trusted:
        return []
    owner = peer_of(topic)
    at = at or datetime.now(UTC)
    return [g for g in who.grants.given_to(who.principal) if g.owner == owner and g.live(at)]


def needs_grant(who: Identity, topic: str) -> bool:
    """True when ``who`` may read ``topic``'s events only through grants: each event
    is then decided by ``can_read_event`` and each read is audited for the owner."""
    return (
        not who.trusted
        and _unwrap(topic) == topic
        and stream_of(topic) in GRANTABLE_STREAMS
        and not _own(who, topic)
    )


def read_scope(who: Identity, topic: str, at: datetime | None = None) -> Scope | None:
    """What of ``topic`` ``who`` may read: ALL, the subjects their live grants name, or None."""
    if who.trusted:
        return ALL
    inner = _unwrap(topic)
    if inner.startswith(SYSTEM_PREFIX):
        return None
    if inner.startswith("agents."):
        return ALL if who.authenticated and who.agent else None
    stream = stream_of(topic)
    if stream == "audit":
        return ALL if _own(who, topic) else None
    if stream != "drafts":
        return ALL
    if _own(who, topic):
        return ALL
    if inner != topic:
        return None  # an archive or dead letters of someone's drafts: never through a grant
    grants = _live_grants(who, topic, at)
    if not grants:
        return None
    if any(g.stream is not None for g in grants):
        return ALL
    return frozenset(g.subject for g in grants if g.subject is not None)


def can_read(who: Identity, topic: str) -> bool:
    """May ``who`` open ``topic`` at all (some of its events, with grants)?"""
    return read_scope(who, topic) is not None


def can_list(who: Identity, topic: str) -> bool:
    """May ``topic`` (and its size) be named to ``who``?  Not when subject grants alone open it."""
    scope = read_scope(who, topic)
    return scope is ALL or (scope is not None and not needs_grant(who, topic))


def grant_for(who: Identity, topic: str, subject: str | None, at: datetime | None = None) -> Grant | None:
    """The live grant that lets ``who`` read an event about ``subject`` in ``topic``
    (the first one given; None if none does)."""
    for g in _live_grants(who, topic, at):
        if g.covers(topic, subject):
            return g
    return None


def can_read_event(who: Identity, topic: str, subject: str | None, at: datetime | None = None) -> bool:
    """May ``who`` read this event (about ``subject``, stored in ``topic``)?"""
    if not needs_grant(who, topic):
        return can_read(who, topic)
    return grant_for(who, topic, subject, at) is not None


def check_read(who: Identity, topic: str) -> None:
    """Raise AccessDenied unless ``who`` may read ``topic``.  The message says
    nothing about what the topic holds (not even whether it exists)."""
    if not can_read(who, topic):
        raise AccessDenied(f"{who.principal!r} may not read {topic!r}")


def check_grant(who: Identity, owner: str) -> None:
    """Raise AccessDenied unless ``who`` may give or revoke grants on ``owner``'s hub."""
    if who.trusted:
        return
    if not who.authenticated:
        raise AccessDenied("giving or revoking a grant needs a token (sign in as the owner)")
    if who.principal != owner:
        raise AccessDenied(f"only {owner!r} gives or revokes grants on their hub")


def check_write(who: Identity, topic: str, event_type: str) -> None:
    """Raise AccessDenied unless ``who`` may append an event of ``event_type`` to ``topic``."""
    if who.trusted:
        return
    if topic.startswith((SYSTEM_PREFIX, ARCHIVE_PREFIX, DEADLETTER_PREFIX)):
        raise AccessDenied(f"{topic!r} is written by the hub only")
    owner, stream = peer_of(topic), stream_of(topic)
    if topic.startswith("agents.") and not who.authenticated:
        raise AccessDenied(f"writing to {topic!r} needs a token (sign in as a principal)")
    if owner is None:
        return  # the shared hub: anyone, attributed to themselves
    if stream == "audit":
        raise AccessDenied(f"{topic!r} is written by the hub only")
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
