"""How hub names map onto NATS names, and how a ``nats://`` URL is read.

Everything here is pure (no I/O), so the mapping is easy to test and to
document: stream, consumer and KV names; the subject of an entry; the header
values that carry an entry's attributes.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, unquote

from ...bindings import NATS_PREFIX, is_binary, structured_body
from ...errors import ValidationError
from ..base import Record, redact

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = [
    "H_DIGEST",
    "H_ID",
    "H_KEY",
    "record_of",
    "DEFAULT_DEDUP_WINDOW",
    "DEFAULT_PARTITIONS",
    "DEFAULT_TIMEOUT",
    "LEASE_BUCKET",
    "NatsOptions",
    "consumer_name",
    "decode_header",
    "encode_header",
    "escape",
    "parse_url",
    "partition_of",
    "stream_name",
    "subject_of",
    "token",
]

DEFAULT_PARTITIONS = 8  # per topic; fixed when the topic's stream is created (as the sqlite engine)
DEFAULT_DEDUP_WINDOW = 120.0  # seconds JetStream remembers a Nats-Msg-Id (its own default)
DEFAULT_TIMEOUT = 10.0  # seconds to wait for a JetStream answer
LEASE_BUCKET = "creative_hub_groups"  # the KV bucket holding group members and partition leases

_MAX_NAME = 200  # characters; stream/consumer names become directory names on the server
_MAX_TOKEN = 128  # characters of a creator token in a subject
_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def escape(text: str) -> str:
    """``text`` as ``[A-Za-z0-9_-]``, injectively: ``_`` -> ``__``, other bytes -> ``_xx`` (hex).

    ``alice`` stays ``alice``; ``/peers/alice`` becomes ``_2fpeers_2falice``.
    The result is a valid subject token, stream/consumer name and KV key part.
    """
    out: list[str] = []
    for ch in text:
        if ch in _KEEP:
            out.append(ch)
        elif ch == "_":
            out.append("__")
        else:
            out.extend(f"_{b:02x}" for b in ch.encode())
    return "".join(out)


def _capped(name: str, limit: int) -> str:
    """``name``, or a prefix of it plus a hash when longer than ``limit`` (still injective in practice)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: limit - 18]}-h{digest}"


def token(text: str) -> str:
    """A creator as one subject token (``""`` -> ``_``, which no non-empty creator escapes to)."""
    return _capped(escape(text), _MAX_TOKEN) if text else "_"


def stream_name(topic: str) -> str:
    """The JetStream stream of a topic: ``hub_`` + the topic with ``_`` doubled and ``.`` -> ``_``.

    ``creative.narrative`` -> ``hub_creative_narrative``; ``a_b.c`` -> ``hub_a__b_c``.
    Topic words start with ``[a-z0-9]``, so the mapping is injective.  The
    topic itself is also kept in the stream's metadata (``creative_hub.topic``).
    """
    return _capped("hub_" + topic.replace("_", "__").replace(".", "_"), _MAX_NAME)


def consumer_name(group: str, partition: int) -> str:
    """The durable consumer of ``group`` for one partition: ``<escaped group>-p<n>``."""
    return f"{_capped(escape(group), _MAX_NAME - 8)}-p{partition}"


def subject_of(topic: str, creator: str, partition: int) -> str:
    """``<topic>.<creator token>.<partition>``: filter by creator with ``<topic>.alice.*``."""
    return f"{topic}.{token(creator)}.{partition}"


def partition_of(key: str, partitions: int) -> int:
    """The partition of a key: ``crc32(key) % partitions`` (the sqlite engine's rule too)."""
    return zlib.crc32(key.encode()) % partitions


# Printable ASCII except "%" (the escape) and " " (header parsers strip it at the ends).
_HEADER_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) not in "%")


def encode_header(value: str) -> str:
    """A header value that survives NATS headers: percent-encoded outside printable ASCII.

    UUIDs and other plain ids are unchanged, so ``Nats-Msg-Id`` is the event id
    a plain NATS client expects.
    """
    return quote(value, safe=_HEADER_SAFE)


def decode_header(value: str) -> str:
    return unquote(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class NatsOptions:
    """What a ``nats://`` URL says, parsed.

    NatsOptions(servers=["nats://127.0.0.1:4222"])
    NatsOptions(servers=[...], user="hub", password="s3cret", replicas=3)
    """

    servers: list[str]
    user: str | None = None
    password: str | None = None
    token: str | None = None
    replicas: int = 1  #: stream (and lease bucket) replicas
    partitions: int = DEFAULT_PARTITIONS  #: for topics created by this log
    dedup_window: float = DEFAULT_DEDUP_WINDOW  #: seconds
    max_deliver: int = -1  #: deliveries per record per group; -1 = no limit
    timeout: float = DEFAULT_TIMEOUT  #: seconds per JetStream request
    name: str = "creative-hub"  #: the connection name the server shows


def _positive(name: str, raw: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise ValidationError(f"url.{name}", f"{raw!r} is not a number") from None
    if value <= 0 and not (name == "max_deliver" and value == -1):
        raise ValidationError(f"url.{name}", f"must be > 0, got {raw}")
    return value


def parse_url(url: str) -> NatsOptions:
    """Read ``nats://[user:password@|token@]host:port[,host:port...][?option=value&...]``.

    Options: ``replicas``, ``partitions``, ``dedup_window`` (s), ``max_deliver``,
    ``timeout`` (s), ``name``.  A comma-separated host list is a cluster seed list.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "nats":
        raise ValidationError("url", f"{redact(url)!r} is not a nats:// URL")
    rest, _, query = rest.partition("?")
    netloc = rest.split("/", 1)[0]
    userinfo, at, hosts = netloc.rpartition("@")
    user = password = tok = None
    if at:
        name, colon, secret = userinfo.partition(":")
        if colon:
            user, password = unquote(name), unquote(secret)
        else:
            tok = unquote(name)
    servers = []
    for host in hosts.split(","):
        host = host.strip()
        if not host:
            continue
        if ":" not in host.rsplit("]", 1)[-1]:
            host += ":4222"
        servers.append(f"nats://{host}")
    if not servers:
        raise ValidationError("url", f"{redact(url)!r} names no server (nats://host:port)")
    kw: dict[str, object] = {}
    for key, values in parse_qs(query).items():
        raw = values[-1]
        if key in ("replicas", "partitions", "max_deliver"):
            kw[key] = int(_positive(key, raw, int))
        elif key in ("dedup_window", "timeout"):
            kw[key] = float(_positive(key, raw, float))
        elif key == "name":
            kw[key] = raw
        else:
            raise ValidationError(
                f"url.{key}",
                "unknown option; use replicas, partitions, dedup_window, max_deliver, timeout or name",
            )
    return NatsOptions(servers=servers, user=user, password=password, token=tok, **kw)  # type: ignore[arg-type]


H_KEY, H_DIGEST, H_ID = "Hub-Key", "Hub-Digest", "Nats-Msg-Id"  # the headers of a stored entry


def record_of(topic: str, seq: int, time_ms: int, msg: Msg) -> Record:
    """A stored message as a Record.  A message published by hand without the
    hub's headers still comes out: its id is the stream sequence, its key empty."""
    h = msg.headers or {}
    raw_id = h.get(H_ID)
    body = msg.data
    if not raw_id and h and is_binary(h.items(), NATS_PREFIX):
        # CloudEvents binary mode (ce-* headers, data as the payload): read as the
        # structured event it stands for; one that is not valid stays as it came.
        body = structured_body(h.items(), body, prefix=NATS_PREFIX) or body
    return Record(
        topic,
        str(seq),
        decode_header(raw_id) if raw_id else str(seq),
        decode_header(h.get(H_KEY, "")),
        body,
        time_ms,
    )
