"""Who writes what comes from outside: source principals, and the ids and ``source`` values they own.

The trust model (README, "Trust model") in code:

- Material from outside (commits, papers, mail, feeds, webhooks, files) is
  written by a *source principal* (``SOURCE_PRINCIPALS``: ``github``,
  ``arxiv``, ``feeds``, ...) or by the person who ran the ingest with their
  own token; the hub signs with that writer's key.  The authors the material
  claims stay in the payload, never in ``creator``.
- Ids the sources compute from outside identities (an arXiv id, a DOI, a
  commit sha, a Message-ID, a feed entry) are UUIDv8 (``source_id``): a form
  reserved to the hub's sources.  A client (any face acting for a principal)
  may not choose such an id, so nobody can publish first under the id a
  paper, commit or message will get (``check_client_event``).
- What a *person* brings in (an ingest run with their token, their git hooks)
  is theirs: its ids and ``source`` are namespaced by them (``personal``:
  ``alice~<source id>``, ``/peers/alice/<source>``), so it never takes the id
  the source's own run gives the same thing, and nobody else may use
  ``alice~...`` ids.
- ``source`` values in the sources' forms (``arxiv``, ``github:owner/repo``,
  ``feed:...``) and other principals' ``/peers/<id>`` are the hub's to set:
  a client that claims one is refused.

    source_id("arxiv", "2101.00001")        # '...-8...': the arXiv connector's id for that paper
    personal(event, "alice")                 # alice~<id>, /peers/alice/<source>, creator alice
    check_client_event(event, "bob")         # ValidationError naming the field and the rule
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final, Protocol

from .errors import ValidationError

__all__ = [
    "RESERVED_SOURCE_NAMES",
    "SOURCE_PRINCIPALS",
    "check_client_event",
    "is_source_id",
    "is_source_principal",
    "personal",
    "reserved_source",
    "source_id",
]

#: The principals that write what the sources bring in, one per kind of source.
SOURCE_PRINCIPALS: Final = frozenset(
    {
        "arxiv",
        "bibtex",
        "calendar",
        "ceremony",
        "crossref",
        "feeds",
        "folder",
        "git",
        "github",
        "mail",
        "mcp",
        "notebooks",
        "stories",
        "web",
    }
)
#: ``source`` attribute values (alone, or before a ``:``) that only the hub's sources write.
RESERVED_SOURCE_NAMES: Final = SOURCE_PRINCIPALS | {
    "doi", "feed", "ical", "mailbox", "notebook", "page", "story",
}  # fmt: skip
_ID_SALT = b"creative-hub source id\x00"
_OWNED_ID = "~"  # ``alice~<id>``: an id in alice's namespace


def source_id(*parts: str) -> str:
    """The id a source gives the thing named by ``parts`` (its own identity: an
    arXiv id, a DOI, a Message-ID), stable across runs, hosts and file paths.

    A UUIDv8 (RFC 9562) of a SHA-256 of the parts: the version marks it as a
    computed source id, which clients may not choose (``check_client_event``)."""
    h = bytearray(hashlib.sha256(_ID_SALT + "\x1f".join(parts).encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x80  # version 8
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(h)))


def is_source_id(value: str) -> bool:
    """True if ``value`` reads as a UUIDv8 in any spelling ``uuid.UUID`` accepts."""
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        return uuid.UUID(value).version == 8
    except ValueError:
        return False


def is_source_principal(principal: str) -> bool:
    return principal in SOURCE_PRINCIPALS


def reserved_source(source: str) -> bool:
    """True if ``source`` is in a form the hub's sources write (``arxiv``, ``git:...``)."""
    head = source.strip().split(":", 1)[0].lower()
    return head in RESERVED_SOURCE_NAMES


class _Attributed(Protocol):
    id: str
    source: str
    creator: str | None


def personal(event: _Attributed, principal: str) -> None:
    """Make ``event`` (as a source computed it) ``principal``'s own, in place:
    its id and ``source`` namespaced by them, written by them.  The same thing
    brought in by the same person twice gets the same id; by the source's own
    run, or by another person, another one."""
    prefix = f"{principal}{_OWNED_ID}"
    if not event.id.startswith(prefix):
        event.id = prefix + event.id
    own = f"/peers/{principal}"
    if event.source != own and not event.source.startswith(own + "/"):
        event.source = f"{own}/{event.source}" if event.source else own
    event.creator = principal


def check_client_event(event: _Attributed, principal: str) -> None:
    """Refuse what a client may not claim when it publishes as ``principal``:
    an id in the sources' reserved form, or a ``source`` the hub sets (a
    source's, another principal's ``/peers/<id>``, the hub's ``/hub/...``)."""
    if is_source_id(event.id):
        raise ValidationError(
            "id",
            f"{event.id!r} is a UUIDv8, the form reserved for ids the hub's sources compute "
            "(papers, DOIs, commits, messages, feed entries); choose another id or leave it out",
        )
    owner, owned, _ = event.id.partition(_OWNED_ID)
    if owned and owner != principal:
        raise ValidationError(
            "id",
            f"{event.id!r} is in {owner!r}'s namespace ({owner}~...); as {principal!r} use {principal}~...",
        )
    source = event.source or ""
    if reserved_source(source):
        raise ValidationError(
            "source",
            f"{source!r} is set by the hub for its sources; as {principal!r}, leave it out "
            f"(it becomes /peers/{principal}) or use a URI of your own",
        )
    if source.startswith("/hub/") or source == "/hub":
        raise ValidationError("source", f"{source!r} is the hub's own; leave it out")
    if source.startswith("/peers/"):
        owner = source[len("/peers/") :].split("/", 1)[0]
        if owner != principal:
            raise ValidationError(
                "source", f"{source!r} names another principal; as {principal!r} it is /peers/{principal}"
            )
