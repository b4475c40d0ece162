"""Grants on drafts, and the audit of every read they allow.

    book = hub.grants                                   # shared by hub.acting(...) views
    alice = hub.acting("alice", authenticated=True)
    g = await book.give(alice.identity, "analyst", subject="story:wood", expires="2h")
    ...                                                 # analyst reads story:wood drafts; audited
    await book.revoke(alice.identity, g.id)             # every hub process stops within REFRESH_AGE

Grants are events in ``system.grants`` (written by the hub on the owner's
behalf, signed with the owner's key when the keystore has it), so every hub
process on every engine sees the same grants.  A ``GrantBook`` is a view
of that topic: before a read decides anything it reads what is new, at most
``REFRESH_AGE`` old -- so a revocation made by any process counts in every
other within that time, no restart.  Expiry needs no event: the rules in
``creative_hub.access`` compare ``expires`` with the clock at each read.

Audit: every read of a draft by someone other than its owner (through a
grant) is recorded in ``peer.<owner>.audit`` as one ``creative.system.draft_read``
event per read call (a replay page, a search response, a subscription
batch) listing the ids, the reader, how, and the grants that allowed it.
The audit is written *before* the drafts are handed over.  The owner's own
reads are not audited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from .access import GRANTABLE_STREAMS, Grant, Identity, check_grant, grant_for, needs_grant
from .derived import ReadLog
from .errors import NotFound, ValidationError
from .event import Event, decode_event, digest, encode_event, now
from .log import Entry, Log
from .principals import Keystore, check_principal_id, sign_event
from .schemas import DraftRead, GrantGiven, GrantRevoked
from .topics import peer as peer_topic
from .topics import system as system_topic

__all__ = [
    "AUDIT_STREAM",
    "DEFAULT_TTL",
    "GRANTS_TOPIC",
    "MAX_TTL",
    "REFRESH_AGE",
    "GrantBook",
    "audit_topic",
    "fresh",
    "grant_dict",
    "parse_expires",
    "record_reads",
]

logger = logging.getLogger(__name__)

GRANTS_TOPIC = system_topic("grants")
AUDIT_STREAM = "audit"  # peer.<owner>.audit
GIVEN, REVOKED, READ = "creative.system.grant", "creative.system.grant_revoked", "creative.system.draft_read"
REFRESH_AGE = 0.25  # seconds: the oldest grant view a read may decide with (revocation latency)
DEFAULT_TTL = timedelta(hours=24)  # a grant without an expiry ends a day after it is given
MAX_TTL = timedelta(days=366)  # grants are for a task, not for ever: at most a year
MAX_REASON = 500  # characters

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def audit_topic(owner: str) -> str:
    return peer_topic(owner, AUDIT_STREAM)


def parse_expires(value: str | datetime | timedelta | None, at: datetime | None = None) -> datetime:
    """``2h``, ``30m``, ``7d``, ``1w``, an ISO 8601 time with a timezone, a datetime
    (aware) or a timedelta -> when the grant ends.  None: ``DEFAULT_TTL`` from now."""
    at = at or datetime.now(UTC)
    if value is None:
        return at + DEFAULT_TTL
    if isinstance(value, timedelta):
        return at + value
    if isinstance(value, str):
        text = value.strip()
        m = _DURATION.match(text.lower())
        if m:
            return at + timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                "expires",
                f"{text!r} is not a duration like 30m, 2h, 7d, 1w or an ISO 8601 time with a timezone",
            ) from None
    if value.tzinfo is None:
        raise ValidationError("expires", "needs a timezone (e.g. 2026-05-01T12:00:00Z), or give a duration")
    return value


class GrantBook:
    """The grants in ``system.grants``, kept fresh, and the audit writer.

    GrantBook(log)                      # usually ``hub.grants``
    await book.refresh()                # read what is new (at most every REFRESH_AGE seconds)
    book.given_to("analyst")            # what the access rules consult
    """

    def __init__(self, log: Log, keystore: Keystore | None = None, *, max_age: float = REFRESH_AGE) -> None:
        self.log = log
        self.keystore = keystore
        self.max_age = max_age
        self.grants: dict[str, Grant] = {}
        # Replaced whole on each change, so a reader in another thread sees one state or the next.
        self._by_grantee: dict[str, tuple[Grant, ...]] = {}
        self._position: str | None = None
        self._refreshed = float("-inf")
        self._lock = asyncio.Lock()  # one tail read at a time: records apply once, in order
        self.reads = ReadLog()  # what agents were handed in this process (``derived.check_inputs``)

    def __repr__(self) -> str:
        return f"<GrantBook {len(self.grants)} grants>"

    # -- the view ----------------------------------------------------------------
    async def refresh(self, *, force: bool = False) -> None:
        """Apply the grant events appended since the last look (by any process),
        unless the view is younger than ``max_age`` seconds."""
        if not force and self.fresh:
            return
        async with self._lock:
            if not force and self.fresh:
                return  # another reader refreshed while this one waited
            started = time.monotonic()
            changed = False
            async for r in self.log.read(GRANTS_TOPIC, after=self._position):
                try:
                    changed |= self._apply(decode_event(r.body))
                except (msgspec.DecodeError, msgspec.ValidationError, TypeError, KeyError) as e:
                    logger.warning("skipping %s@%s: not a grant event (%s)", GRANTS_TOPIC, r.position, e)
                self._position = r.position
            if changed:
                by: dict[str, list[Grant]] = {}
                for g in self.grants.values():
                    by.setdefault(g.grantee, []).append(g)
                self._by_grantee = {k: tuple(v) for k, v in by.items()}
            self._refreshed = started

    @property
    def fresh(self) -> bool:
        """The view is younger than ``max_age``: a decision made with it now needs no refresh."""
        return time.monotonic() - self._refreshed < self.max_age

    def _apply(self, event: Event) -> bool:
        data = event.data if isinstance(event.data, dict) else msgspec.to_builtins(event.data)
        if event.type == GIVEN:
            given = msgspec.convert(data, GrantGiven)
            if given.owner != event.creator or given.grant in self.grants:
                return False  # the hub writes only the owner's own grants, once each
            self.grants[given.grant] = Grant(
                id=given.grant,
                owner=given.owner,
                grantee=given.grantee,
                expires=given.expires,
                stream=given.stream,
                subject=given.subject,
                reason=given.reason,
                given=event.time,
            )
            return True
        if event.type == REVOKED:
            revoked = msgspec.convert(data, GrantRevoked)
            g = self.grants.get(revoked.grant)
            if g is None or g.owner != revoked.owner or g.revoked is not None:
                return False
            self.grants[g.id] = dataclasses.replace(g, revoked=event.time or now())
            return True
        return False

    def given_to(self, grantee: str) -> Sequence[Grant]:
        """Every grant given to ``grantee`` (revoked and expired ones too)."""
        return self._by_grantee.get(grantee, ())

    def given_by(self, owner: str) -> list[Grant]:
        """Every grant ``owner`` gave, oldest first."""
        return [g for g in self.grants.values() if g.owner == owner]

    # -- giving and revoking ---------------------------------------------------------
    async def give(
        self,
        who: Identity,
        grantee: str,
        *,
        stream: str | None = None,
        subject: str | None = None,
        expires: str | datetime | timedelta | None = None,
        reason: str | None = None,
        known: Iterable[str] | None = None,
    ) -> Grant:
        """``who`` (the owner, signed in) lets ``grantee`` read their ``stream``
        ("drafts": every draft) or the drafts of one ``subject``, until ``expires``.
        ``known``: the registered principals (a grantee must be one)."""
        owner = who.principal
        check_grant(who, owner)
        check_principal_id(grantee)
        if grantee == owner:
            raise ValidationError("grantee", "you read your own drafts already; name another principal")
        if known is not None and grantee not in set(known):
            raise NotFound(f"no principal {grantee!r} (add it first: creative-hub principal add {grantee})")
        if (stream is None) == (subject is None):
            raise ValidationError("scope", "give exactly one of stream ('drafts') or subject")
        if stream is not None and stream not in GRANTABLE_STREAMS:
            raise ValidationError("stream", f"must be one of {', '.join(GRANTABLE_STREAMS)}, got {stream!r}")
        if subject is not None and not subject.strip():
            raise ValidationError("subject", "must not be empty")
        if reason is not None and len(reason) > MAX_REASON:
            raise ValidationError("reason", f"at most {MAX_REASON} characters, got {len(reason)}")
        at = datetime.now(UTC)
        ends = parse_expires(expires, at)
        if ends <= at:
            raise ValidationError("expires", f"{ends.isoformat()} is not in the future")
        if ends - at > MAX_TTL:
            raise ValidationError("expires", f"at most {MAX_TTL.days} days ahead, got {ends.isoformat()}")
        grant_id = f"g_{secrets.token_hex(8)}"
        data = GrantGiven(
            grant=grant_id,
            owner=owner,
            grantee=grantee,
            stream=stream,  # type: ignore[arg-type]  # checked above
            subject=subject,
            expires=ends,
            reason=reason,
        )
        scope = subject or peer_topic(owner, str(stream))  # exactly one of them is set (checked above)
        await self._append(GRANTS_TOPIC, owner, GIVEN, grant_id, scope, data)
        await self.refresh(force=True)
        return self.grants[grant_id]

    async def revoke(self, who: Identity, grant_id: str, reason: str | None = None) -> Grant:
        """End ``grant_id`` now (``who`` must be its owner); revoking twice changes nothing."""
        await self.refresh(force=True)
        g = self.grants.get(grant_id)
        if g is None:
            raise NotFound(f"no grant {grant_id!r} (see: creative-hub grant list)")
        check_grant(who, g.owner)
        if g.revoked is not None:
            return g
        data = GrantRevoked(grant=grant_id, owner=g.owner, reason=reason)
        await self._append(GRANTS_TOPIC, g.owner, REVOKED, f"{grant_id}-revoked", g.subject, data)
        await self.refresh(force=True)
        return self.grants[grant_id]

    async def _append(
        self, topic: str, creator: str, type_: str, event_id: str, subject: str | None, data: msgspec.Struct
    ) -> None:
        event = Event(
            type=type_,
            id=event_id,
            source=f"/peers/{creator}" if topic == GRANTS_TOPIC else "/hub/audit",
            subject=subject,
            creator=creator,
            data=data,
            hub=creator if topic == GRANTS_TOPIC else topic.split(".")[1],
            visibility="private",
            partitionkey=creator,
        )
        event.time = now()
        key = self.keystore.get(creator) if self.keystore is not None and topic == GRANTS_TOPIC else None
        if key is not None:
            event.signature = sign_event(event, key)
        await self.log.append(topic, [Entry(event.id, creator, encode_event(event), digest(event), creator)])

    # -- the audit ---------------------------------------------------------------------
    async def record_reads(self, who: Identity, topic: str, events: Sequence[Event], how: str) -> None:
        """Audit ``who``'s read of ``events`` (drafts of ``topic``, through grants) for the owner.
        Nothing is written for reads that need no grant (the owner's, the hub's)."""
        if not events or not needs_grant(who, topic):
            return
        owner = topic.split(".")[1]
        grants = sorted({g.id for e in events if (g := grant_for(who, topic, e.subject)) is not None})
        data = DraftRead(
            reader=who.principal,
            how=f"{who.via}:{how}" if who.via else how,
            topic=topic,
            ids=[e.id for e in events],
            grants=grants,
        )
        await self._append(audit_topic(owner), "hub", READ, str(uuid.uuid4()), who.principal, data)


def grant_dict(g: Grant, at: datetime | None = None) -> dict[str, object]:
    """A grant as JSON-ready data (the CLI's --json and the HTTP API)."""
    at = at or datetime.now(UTC)
    state = "revoked" if g.revoked else ("live" if g.live(at) else "expired")
    return {
        "id": g.id,
        "owner": g.owner,
        "grantee": g.grantee,
        "stream": g.stream,
        "subject": g.subject,
        "expires": g.expires.isoformat(),
        "reason": g.reason,
        "given": g.given.isoformat() if g.given else None,
        "revoked": g.revoked.isoformat() if g.revoked else None,
        "state": state,
    }


async def record_reads(who: Identity, reads: Sequence[tuple[str, Event]], how: str) -> None:
    """Audit reads spread over topics (a search response): one audit event per owner's topic."""
    book = who.grants
    if not isinstance(book, GrantBook):
        return
    by_topic: dict[str, list[Event]] = {}
    for topic, event in reads:
        if needs_grant(who, topic):
            by_topic.setdefault(topic, []).append(event)
    await asyncio.gather(*(book.record_reads(who, t, evs, how) for t, evs in by_topic.items()))


async def fresh(who: Identity) -> None:
    """Bring ``who``'s grant view up to date (at most REFRESH_AGE old) before deciding with it."""
    if isinstance(who.grants, GrantBook):
        await who.grants.refresh()
