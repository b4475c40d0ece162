"""The Kafka engine's names and shared rules: options, positions, records, the error map, retries."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

try:
    import confluent_kafka as ck
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError('the Kafka engine needs confluent-kafka: pip install "creative-hub[kafka]"') from e

from ...bindings import KAFKA_PREFIX, is_binary, structured_body
from ...errors import EngineUnavailable, LogError, ValidationError
from .._retry import Backoff
from ..base import Record

__all__ = [
    "CONTENT_TYPE",
    "H_DIGEST",
    "H_ID",
    "RETRY",
    "TRANSIENT",
    "KafkaOptions",
    "decode_position",
    "encode_position",
    "translate",
    "transient",
]

logger = logging.getLogger("creative_hub.log.kafka")
#: librdkafka's own log lines (connection refused, rebalances) go here, not to stderr
rdkafka_logger = logging.getLogger("creative_hub.log.kafka.librdkafka")

T = TypeVar("T")

CONTENT_TYPE = b"application/cloudevents+json; charset=utf-8"  # CloudEvents Kafka binding, structured mode
H_ID = "ch-id"  # the event id, so dedup need not parse bodies
H_DIGEST = "ch-digest"  # the content digest, to tell a retry from an id conflict

DEFAULT_PARTITIONS = 4  # per new topic: up to 4 members of a group share the work
DEFAULT_TIMEOUT = 10.0  # seconds for a broker request or a produce to be acked
DEFAULT_SESSION = 10.0  # seconds a silent group member keeps its partitions
DEFAULT_MIN_SESSION = 6.0  # seconds; the broker's group.min.session.timeout.ms (Kafka and Redpanda default)
DEFAULT_DEDUP_WINDOW = 100_000  # ids per topic remembered for dedup
DEFAULT_LINGER_MS = 5.0  # producer batching delay
DEFAULT_MALLOC_TRIM = 10.0  # seconds between handing freed C heap back to the OS (log/kafka/malloc.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaOptions:
    """Everything tunable, from the URL query (``kafka://h:9092?partitions=3``).

    KafkaOptions(partitions=3, replication=3)   # new topics: 3 partitions, 3 replicas
    KafkaOptions(prefix="hub.")                 # hub topic t is Kafka topic hub.t
    KafkaOptions(client={"security.protocol": "SASL_SSL"})  # any librdkafka setting
    """

    bootstrap: str
    partitions: int = DEFAULT_PARTITIONS  #: for topics this engine creates: a group's parallelism
    replication: int = -1  #: -1: the broker's default.replication.factor
    prefix: str = ""  #: prepended to every Kafka topic and group id
    timeout: float = DEFAULT_TIMEOUT  #: seconds per request / per produce
    session_timeout: float = DEFAULT_SESSION  #: upper bound of a member's session, seconds
    min_session: float = DEFAULT_MIN_SESSION  #: the broker's lower bound, seconds
    dedup_window: int = DEFAULT_DEDUP_WINDOW  #: ids per topic kept for dedup
    linger_ms: float = DEFAULT_LINGER_MS
    malloc_trim: float = DEFAULT_MALLOC_TRIM  #: seconds between malloc_trim calls; 0: never
    client: dict[str, str] = field(default_factory=dict)  #: extra librdkafka settings

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> KafkaOptions:
        parts = urlsplit(url)
        netloc = parts.netloc
        client: dict[str, str] = {}
        if "@" in netloc:  # kafka://user:password@host:9092 -> SASL credentials
            creds, netloc = netloc.rsplit("@", 1)
            user, _, password = creds.partition(":")
            client["sasl.username"] = unquote(user)
            client["sasl.password"] = unquote(password)
            client.setdefault("sasl.mechanism", "SCRAM-SHA-256")
            client.setdefault("security.protocol", "SASL_SSL")
        if not netloc:
            raise ValidationError("url", f"{url!r}: no broker; use kafka://host:port[,host:port]")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        kwargs: dict[str, Any] = {"bootstrap": netloc}
        conv: dict[str, Callable[[str], Any]] = {
            "partitions": int,
            "replication": int,
            "prefix": str,
            "timeout": float,
            "session_timeout": float,
            "min_session": float,
            "dedup_window": int,
            "linger_ms": float,
            "malloc_trim": float,
        }
        for k, v in query.items():
            if k.startswith("client."):
                client[k[len("client.") :]] = v
            elif k in conv:
                try:
                    kwargs[k] = conv[k](v)
                except ValueError:
                    raise ValidationError(f"url.{k}", f"{v!r} is not a valid {k}") from None
            else:
                raise ValidationError(
                    f"url.{k}",
                    f"unknown option; use one of {', '.join(sorted(conv))} or client.<librdkafka key>",
                )
        client.update(overrides.pop("client", {}))
        kwargs.update(overrides)
        opts = cls(client=client, **kwargs)
        if opts.partitions < 1:
            raise ValidationError("url.partitions", f"must be >= 1, got {opts.partitions}")
        if opts.replication == 0 or opts.replication < -1:
            raise ValidationError(
                "url.replication", f"must be >= 1 (or -1 for the broker default), got {opts.replication}"
            )
        if opts.dedup_window < 1:
            raise ValidationError("url.dedup_window", f"must be >= 1, got {opts.dedup_window}")
        return opts

    def prefetch(self, kbytes: int = 16384) -> dict[str, Any]:
        """A consumer's prefetch settings; a ``client`` option wins.

        At most ``kbytes`` queued per consumer (librdkafka's default is 64 MiB
        each, which a hub with pooled readers and several members multiplies).
        When the queue is full librdkafka postpones the partition's next fetch
        by ``fetch.queue.backoff.ms`` (default 1000 ms): a reader faster than
        one fetch then stalls a whole second.  10 ms keeps the cap without the stall.
        """
        return {
            "queued.max.messages.kbytes": int(self.client.get("queued.max.messages.kbytes", kbytes)),
            "fetch.queue.backoff.ms": int(self.client.get("fetch.queue.backoff.ms", 10)),
        }

    def base(self) -> dict[str, Any]:
        """librdkafka settings every client of this engine shares."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "logger": rdkafka_logger,
            "socket.connection.setup.timeout.ms": int(self.timeout * 1000),
            # Reconnect quickly after a broker restart (defaults back off to 10 s).
            "reconnect.backoff.max.ms": 1000,
        }
        conf.update(self.client)
        return conf


# -- positions -----------------------------------------------------------------
def encode_position(cursor: Sequence[int]) -> str:
    """``[41]`` -> ``"41"``; ``[41, -1, 7]`` -> ``"41,-1,7"``."""
    return ",".join(map(str, cursor))


def decode_position(position: str, partitions: int, name: str = "after") -> list[int]:
    """The cursor vector (last offset read, per partition; -1: none) of ``position``."""
    try:
        cursor = [int(x) for x in position.split(",")]
    except (AttributeError, ValueError):
        raise ValidationError(
            name, f"{position!r} is not a position of this log (offsets joined by ',')"
        ) from None
    if len(cursor) > partitions or any(o < -1 for o in cursor):
        raise ValidationError(
            name, f"{position!r} is not a position of a topic with {partitions} partition(s)"
        )
    # A topic that gained partitions: the new ones are read from their start.
    return cursor + [-1] * (partitions - len(cursor))


# -- records ---------------------------------------------------------------------
def message_record(topic: str, msg: ck.Message, position: str) -> Record:
    """A Record from a Kafka message; hand-produced ones too (the hub dead-letters what is not an event)."""
    headers = msg.headers()
    # Fast path: this engine writes ch-id second (after content-type).
    if headers and len(headers) > 1 and headers[1][0] == H_ID and isinstance(headers[1][1], bytes):  # type: ignore[index]
        id_ = headers[1][1].decode("utf-8", "replace")  # type: ignore[index]
    else:
        id_ = header(msg, H_ID) or ""
    body = msg.value() or b""
    if not id_ and headers and is_binary(headers, KAFKA_PREFIX):  # type: ignore[arg-type]
        # CloudEvents binary mode (ce_* headers, data as the value): read as the
        # structured event it stands for; one that is not valid stays as it came.
        body = structured_body(headers, body, prefix=KAFKA_PREFIX, key=msg.key()) or body  # type: ignore[arg-type]
    if not id_ and body[:1] == b"{":
        # Not written by this engine: a CloudEvent from another producer
        # still has its id in the structured body.
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("id"), str):
            id_ = parsed["id"]
    key = msg.key()
    text_key = key.decode("utf-8", "replace") if key else ""
    return Record(topic, position, id_, text_key, body, msg.timestamp()[1])


def position_format(partitions: int) -> list[tuple[str, str]]:
    """Per partition, the (prefix, suffix) around its offset in a one-partition cursor vector."""
    return [("-1," * p, ",-1" * (partitions - p - 1)) for p in range(partitions)]


def header(msg: ck.Message, name: str) -> str | None:
    """The value of header ``name``, or None."""
    headers = msg.headers()
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, dict) else headers
    for k, v in pairs:
        if k == name and v is not None:
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return None


# -- errors ----------------------------------------------------------------------
def translate(url: str, e: BaseException, doing: str) -> LogError:
    """The one place Kafka client errors become creative-hub errors."""
    if isinstance(e, LogError):
        return e
    if isinstance(e, ck.KafkaException) and e.args and isinstance(e.args[0], ck.KafkaError):
        err: ck.KafkaError = e.args[0]
        return EngineUnavailable(url, f"{doing}: {err.name()}: {err.str()}")
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)):
        return EngineUnavailable(url, f"{doing}: no answer in time")
    return EngineUnavailable(url, f"{doing}: {type(e).__name__}: {e}")


# -- errors worth trying again --------------------------------------------------
#: fetch errors meaning the position was removed by retention (auto.offset.reset=error)
GONE = {ck.KafkaError.OFFSET_OUT_OF_RANGE, ck.KafkaError._AUTO_OFFSET_RESET}

#: errors a just-created topic or a moving leader gives for a moment
TRANSIENT = {
    ck.KafkaError.NOT_LEADER_FOR_PARTITION,
    ck.KafkaError.LEADER_NOT_AVAILABLE,
    ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
    ck.KafkaError.NOT_COORDINATOR,
    ck.KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    ck.KafkaError.COORDINATOR_NOT_AVAILABLE,
    ck.KafkaError.FENCED_LEADER_EPOCH,
    ck.KafkaError.UNKNOWN_LEADER_EPOCH,
    ck.KafkaError.NOT_ENOUGH_REPLICAS,
    ck.KafkaError._UNKNOWN_PARTITION,  # local metadata not refreshed yet (after a broker restart)
    ck.KafkaError._UNKNOWN_TOPIC,
    ck.KafkaError._TRANSPORT,  # a connection being re-established
}


RETRY = Backoff(base=0.02, cap=0.5)  # between tries of a call that failed with a transient error


def transient(e: BaseException) -> bool:
    """Whether ``e`` is a Kafka error worth trying again (leader moving, connection re-made ...)."""
    err = e.args[0] if isinstance(e, ck.KafkaException) and e.args else None
    return isinstance(err, ck.KafkaError) and err.code() in TRANSIENT


def retry(fn: Callable[[], T], timeout: float) -> T:
    """``fn()``, again after a ``RETRY`` backoff while it fails with a transient Kafka error (in a thread)."""
    deadline = time.monotonic() + timeout
    failures = 0
    while True:
        try:
            return fn()
        except ck.KafkaException as e:
            if not transient(e) or time.monotonic() > deadline:
                raise
        time.sleep(RETRY.compute(failures))
        failures += 1


def retention_ms(seconds: float | None) -> str:
    return "-1" if seconds is None else str(max(1, math.ceil(seconds * 1000)))
