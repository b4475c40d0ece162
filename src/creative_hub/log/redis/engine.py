"""Redis Streams engine: ``redis://[user:password@]host:port/db[?partitions=8]``.

A topic is ``partitions`` streams (fixed when the topic is first used; default
8, like the SQLite engine).  Records go to partition ``crc32(key) % partitions``
so one key's records stay in one stream, in order.  Keys, for topic ``T`` and
the default prefix ``hub``:

* ``hub:T`` -- partition 0; ``hub:T:1`` ... ``hub:T:<n-1>`` the others.  A
  one-partition topic (``?partitions=1``) is exactly the stream ``hub:T``.
  Each entry's fields are ``id key digest creator event``; ``event`` is the
  CloudEvent in structured JSON, so ``redis-cli XRANGE hub:T - +`` shows it.
* ``hub:T:meta`` -- hash: ``partitions``, ``last`` (newest id assigned),
  ``removed`` (newest id retention removed), ``max_age/max_count/max_bytes``.
* ``hub:T:ids`` -- hash: event id -> ``position token digest``, the dedup index.
* ``hub:T:groups`` -- set of the consumer groups that joined.
* ``hub:T:group:G`` -- hash: members (``m:<consumer>`` -> expiry),
  partition leases (``p:<n>`` -> ``<consumer>|<expiry>``) of group ``G``, and
  ``skipped`` / ``gaps``: what retention removed before the group got it.
* ``hub:T:group:G:gaps`` -- list of gap notices not yet handed to a member.
* ``hub::topics`` -- set of every topic (no topic name is empty, so no clash).

**Appends** run one Lua script per batch (EVALSHA): it checks every id in
``hub:T:ids`` first (a known id with the same digest returns its original
position, ``duplicate=True``; another digest raises IdConflict and nothing of
the batch is written), then XADDs the new entries with explicit ids from the
server clock, increasing across the whole topic.  So a **position** is the
stream id (``<ms>-<seq>``): it names one record in the topic, it orders the
partitions' records into the append order (``read`` merges them by id), and
its first part is the append time.  The **dedup window** is the retained
log: retention forgets the ids of the entries it removes, so an id is
deduplicated for as long as its record is kept.

**Consumer groups** are Redis consumer groups, one per partition stream, with
partition leases on top, because Redis alone would hand one key's records to
several members at once.  Each live member is assigned the partitions
``p % members == rank``; a lease lasts one ack timeout and is renewed while
the member lives.  A member stops fetching from a partition it must hand
over, drops what it fetched but has not delivered, and releases the lease
once its deliveries of that partition are acked.  Whoever takes a partition
first claims (XAUTOCLAIM, min-idle 0) every entry the previous owner left
pending, in id order, then reads new ones (XREADGROUP ``>``): one key's
records reach one member at a time, in append order.  A delivery not acked
within the ack timeout is claimed again (XAUTOCLAIM, min-idle = ack timeout)
by its member; a member that died, or whose handler holds a delivery past the
ack timeout, stops renewing, and its partitions (with their pending entries)
go to the others.  Acks are sent in batches (one XACK per partition, with the
next fetch, every heartbeat and on close): a crash can redeliver a few acked
records, never lose one (at-least-once).  When a fetch brings a backlog, the
next one is sent at once, so Redis works while the handler does.

**Retention** is applied by ``apply_retention`` (and at once by
``set_retention``): XTRIM MINID on every partition, in chunks.  Reading from a
position before the ``removed`` watermark raises PositionGone.  A group
that falls behind is told (``creative_hub.log.base.Gap``), exactly counted:
the retention script counts, per group and partition, the removed entries
after the group's last-delivered-id and leaves a notice that the
partition's owner takes with its next rebalance; entries delivered to a
member that died un-acked and then removed are named by XAUTOCLAIM when the
next owner claims the partition, and counted there.  ``delete``
(compaction, not in the contract) XDELs single records.

**Entries added by hand** (``redis-cli XADD hub:T * ...``) are read too: one
without the ``event`` field comes out as a Record whose id is its stream id and
whose body is its fields as a JSON object, which the hub cannot decode and so
dead-letters.  Redis Cluster is not supported (the scripts build key names).

Durability is the server's: run Redis with ``appendonly yes`` (the test
harness uses ``appendfsync everysec``: a process crash loses no acked append,
an OS crash up to about a second).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import redis.asyncio as aioredis
    from redis import exceptions as rx
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError('the Redis engine needs redis-py: pip install "creative-hub[redis]"') from e

from ...errors import (
    EngineUnavailable,
    HubError,
    IdConflict,
    LogClosed,
    LogError,
    NotFound,
    ValidationError,
)
from .._guard import Guard
from .._reads import Reads
from .._retry import DEFAULT_RETRY_ATTEMPTS, Backoff, call_with_retry
from .._subscription import SubscribeArgs, Subscribes
from ..base import (
    Appended,
    Entry,
    Feature,
    GroupLag,
    Health,
    ReadRange,
    Record,
    Retention,
    TopicInfo,
    check_topic,
)
from . import scripts as lua
from .group import RedisSubscription
from .read import MergedReader, parse_position

__all__ = ["DEFAULT_PARTITIONS", "DEFAULT_PREFIX", "RedisLog", "RedisOptions"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PARTITIONS = 8  # streams per topic; fixed when the topic is first used
DEFAULT_PREFIX = "hub"  # every key starts with "<prefix>:"
DEFAULT_SOCKET_TIMEOUT = 10.0  # seconds a command may take (a paused server) before we retry
DEFAULT_CONNECT_TIMEOUT = 5.0  # seconds
RETENTION_CHUNK = 2000  # records one retention pass removes (the script blocks Redis meanwhile)
NO_TOPIC_POLL = 0.25  # seconds between looks for a topic that does not exist yet (follow)
_MAX_SEQ = 2**64 - 1

# What a retry may fix: the connection, not the command.
_TRANSIENT = (rx.ConnectionError, rx.TimeoutError)


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisOptions:
    """Engine options, from the URL's query string or ``open_log(url, **options)``.

    RedisOptions(partitions=16)          # new topics get 16 partition streams
    RedisOptions(prefix="stage")         # keys stage:<topic>..., another hub in the same db
    RedisOptions(socket_timeout=30.0)    # slow networks
    """

    partitions: int = DEFAULT_PARTITIONS
    prefix: str = DEFAULT_PREFIX
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT  #: seconds
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  #: seconds
    attempts: int = DEFAULT_RETRY_ATTEMPTS  #: tries of a command before EngineUnavailable

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 1024:
            raise ValidationError("partitions", f"must be 1..1024, got {self.partitions}")
        if not self.prefix or any(c.isspace() or c == ":" for c in self.prefix):
            raise ValidationError("prefix", f"{self.prefix!r}: a non-empty word without ':' or spaces")
        for name in ("socket_timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ValidationError(name, f"must be > 0 seconds, got {getattr(self, name)}")
        if self.attempts < 1:
            raise ValidationError("attempts", f"must be >= 1, got {self.attempts}")


_OPTION_TYPES: dict[str, Callable[[str], Any]] = {
    "partitions": int,
    "prefix": str,
    "socket_timeout": float,
    "connect_timeout": float,
    "attempts": int,
}


def _split_url(url: str, overrides: dict[str, Any]) -> tuple[str, RedisOptions]:
    """The URL for redis-py (our options removed) and our options."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValidationError("url", f"{url!r}: use redis://host:port/db")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _OPTION_TYPES:
            try:
                ours[name] = _OPTION_TYPES[name](value)
            except ValueError:
                kind = _OPTION_TYPES[name].__name__
                raise ValidationError(name, f"{value!r} in the URL is not a {kind}") from None
        else:
            theirs.append((name, value))  # redis-py's own (ssl_cert_reqs=..., ...)
    unknown = set(overrides) - set(_OPTION_TYPES)
    if unknown:
        raise ValidationError(
            "options", f"unknown Redis engine options {sorted(unknown)}; known: {sorted(_OPTION_TYPES)}"
        )
    ours.update(overrides)
    return urlunsplit(parts._replace(query=urlencode(theirs))), RedisOptions(**ours)


def _redact(url: str) -> str:
    from .. import redact  # the package imports engines lazily, so no import cycle

    return redact(url)


class _State(Enum):
    NEW = "new"  # made, not yet opened
    OPEN = "open"  # connected
    CLOSED = "closed"  # closed; every use raises LogClosed


class RedisLog(Reads, Subscribes[RedisSubscription]):
    """The Redis Streams engine (see the module docstring for the layout)."""

    engine = "redis"
    # One Lua script per batch: all of it is stored, or none.
    FEATURES = frozenset({Feature.DELETE, Feature.ATOMIC_APPEND, Feature.GAP_COUNTS})

    def __init__(
        self, url: str, options: RedisOptions | None = None, *, redis_url: str | None = None
    ) -> None:
        self.url = _redact(url)  #: as given, password removed
        self.options = options or RedisOptions()
        self._redis_url = redis_url or url
        self._client: aioredis.Redis | None = None
        self._state = _State.NEW
        self._subs: set[RedisSubscription] = set()  # open subscriptions, closed with the log
        self._backoff = Backoff(base=0.05, cap=1.0)
        self.registry = f"{self.options.prefix}::topics"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisLog:
        """``redis://[user:password@]host:port/db[?partitions=8&prefix=hub&socket_timeout=10]``."""
        redis_url, opts = _split_url(url, options)
        return cls(url, opts, redis_url=redis_url)

    def __repr__(self) -> str:
        return f"<RedisLog {self.url} {self._state.value}>"

    # -- lifecycle ---------------------------------------------------------
    async def open(self) -> None:
        """Connect and check the server answers; raises EngineUnavailable naming the URL."""
        if self._state is _State.OPEN:
            return
        if self._state is _State.CLOSED:
            raise LogClosed(f"log at {self.url}")
        pool = aioredis.ConnectionPool.from_url(
            self._redis_url,
            socket_timeout=self.options.socket_timeout,
            socket_connect_timeout=self.options.connect_timeout,
            # We retry ourselves (call_with_retry), only what is safe to repeat.
            retry=Retry(NoBackoff(), 0),
        )
        client = aioredis.Redis(connection_pool=pool)
        # Raw replies for the stream reads we parse ourselves (no dict per entry).
        for name in ("XREADGROUP", "XREAD", "XRANGE", "XREVRANGE", "XCLAIM"):
            client.set_response_callback(name, _raw)
        try:
            await self._retry(lambda: client.ping(), attempts=2, translate_with=client)
        except BaseException:
            await pool.disconnect()
            raise
        self._client = client
        self._state = _State.OPEN

    async def close(self) -> None:
        """Close open subscriptions and the connections.  Safe twice; use afterwards raises LogClosed."""
        if self._state is _State.CLOSED:
            return
        for sub in list(self._subs):  # while the connection is still there: they ack and leave
            try:
                await sub.close()
            except HubError as e:
                logger.warning("closing %r: %s", sub, e)
        self._state = _State.CLOSED
        if self._client is not None:
            await self._client.aclose(close_connection_pool=True)
            self._client = None

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client; raises LogClosed after close()."""
        if self._state is not _State.OPEN or self._client is None:
            if self._state is _State.NEW:
                raise LogClosed(f"log at {self.url} (not opened: call await log.open() first)")
            raise LogClosed(f"log at {self.url}")
        return self._client

    # -- the one place redis errors become creative-hub errors ---------------
    def guard(self, what: str = "a redis call") -> Guard:
        """``with self.guard():`` around redis-py calls (see ``log._guard``).

        redis-py waits with Python 3.11's ``asyncio.wait_for``, which can drop
        a cancellation; the guard raises it again.
        """
        return Guard(self._translate, what)

    def _translate(self, e: Exception, what: str) -> Exception:
        """Map a redis-py error onto errors.py (EngineUnavailable names the redacted URL)."""
        if isinstance(e, rx.AuthenticationError):
            return EngineUnavailable(self.url, f"authentication failed: {e}")
        if isinstance(e, (rx.ConnectionError, rx.TimeoutError, OSError)):
            return EngineUnavailable(self.url, _reason(e))
        if isinstance(e, rx.NoPermissionError):
            return EngineUnavailable(self.url, f"refused by the server's ACL: {e}")
        if isinstance(e, (rx.ReadOnlyError, rx.OutOfMemoryError)):
            return EngineUnavailable(self.url, f"the server refused the write: {e}")
        if isinstance(e, rx.ResponseError):
            text = str(e)
            if text.startswith(("MISCONF", "LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN")):
                return EngineUnavailable(self.url, text)
            return LogError(f"log at {self.url}: redis said {text}")
        if isinstance(e, rx.RedisError):
            return LogError(f"log at {self.url}: {e}")
        return e  # not redis-py's: a bug to see as it is

    async def _retry(
        self,
        do: Callable[[], Awaitable[T]],
        *,
        attempts: int | None = None,
        translate_with: aioredis.Redis | None = None,
    ) -> T:
        """``do()`` with retries on connection errors, errors translated."""

        def failed(err: BaseException, failures: int) -> None:
            logger.info("redis at %s: %s (retry %d)", self.url, _reason(err), failures)

        with self.guard():
            return await call_with_retry(
                do,
                failed,
                retryable=_TRANSIENT,
                attempts=attempts or self.options.attempts,
                backoff=self._backoff,
            )

    async def run(self, script: lua.Script, *args: Any, client: Any = None) -> Any:
        """EVALSHA ``script``, loading it first if the server lost its script cache (a restart)."""
        c = client or self.client
        try:
            return await c.execute_command("EVALSHA", script.sha, 0, *args)
        except rx.NoScriptError:
            await c.execute_command("SCRIPT", "LOAD", script.source)
            return await c.execute_command("EVALSHA", script.sha, 0, *args)

    async def call(self, script: lua.Script, *args: Any) -> Any:
        """``run`` with retries and error translation (every script is safe to repeat)."""
        return await self._retry(lambda: self.run(script, *args))

    # -- keys --------------------------------------------------------------
    def base(self, topic: str) -> str:
        """``hub:<topic>``: partition 0's stream and the prefix of the topic's other keys."""
        return f"{self.options.prefix}:{topic}"

    def stream(self, topic: str, partition: int) -> str:
        base = self.base(topic)
        return base if partition == 0 else f"{base}:{partition}"

    def group_key(self, topic: str, group: str) -> str:
        return f"{self.base(topic)}:group:{group}"

    # -- append / read -----------------------------------------------------
    async def append(self, topic: str, entries: Sequence[Entry]) -> list[Appended]:
        """Store ``entries`` in order, deduplicated by id, in one atomic script (see module doc)."""
        check_topic(topic)
        client = self.client
        if not entries:
            return []
        token = secrets.token_hex(6)
        args: list[Any] = [self.base(topic), self.registry, topic, self.options.partitions, token]
        crc32 = zlib.crc32
        for e in entries:
            args += (e.id, e.digest, crc32(e.key.encode()), e.key, e.creator, e.body)
        reply = await self._retry(lambda: self.run(lua.APPEND, *args, client=client))
        if reply[0] == 1:
            raise IdConflict(topic, reply[1].decode())
        return [Appended(reply[i].decode(), reply[i + 1] == 1) for i in range(1, len(reply), 2)]

    async def partitions(self, topic: str) -> int | None:
        """The topic's partition count, or None if it does not exist."""
        client = self.client
        raw = await self._retry(lambda: client.hget(f"{self.base(topic)}:meta", "partitions"))
        return None if raw is None else int(raw)

    async def _records(self, topic: str, span: ReadRange) -> AsyncIterator[Record]:
        """The topic's records in append order, merging its partitions by id."""
        after, follow = span.after, span.follow
        start = parse_position(after) if after is not None else (0, 0)
        if span.since is not None:
            ms = math.ceil(span.since * 1000)  # records stored at or after `since`
            start = max(start, (ms - 1, _MAX_SEQ) if ms > 0 else (0, 0))
        self._check_open()
        remaining = math.inf if span.limit is None else span.limit
        if remaining <= 0:
            return
        parts = await self.partitions(topic)
        while parts is None:
            if not follow:
                return
            await asyncio.sleep(NO_TOPIC_POLL)
            parts = await self.partitions(topic)
        reader = MergedReader(self, topic, parts, start, after is not None)
        async for record in reader.records(follow):
            yield record
            remaining -= 1
            if remaining <= 0:
                return

    def _check_open(self) -> None:
        self.client  # noqa: B018 -- raises when not open

    # -- subscribe ---------------------------------------------------------
    def _member(self, args: SubscribeArgs) -> RedisSubscription:
        """A member named ``consumer`` or host-pid-random (the module doc: how partitions are shared)."""
        name = args.consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        return RedisSubscription(self, args, name)

    # -- topics, retention, lag --------------------------------------------
    async def topics(self) -> list[TopicInfo]:
        """Every topic with its counts, sorted by name."""
        client = self.client
        names = await self._retry(lambda: client.smembers(self.registry))
        infos = []
        for name in sorted(_text(n) for n in names):
            info = await self._info(name)
            if info is not None:
                infos.append(info)
        return infos

    async def topic_info(self, topic: str) -> TopicInfo:
        """One topic's counts; raises NotFound if it does not exist."""
        check_topic(topic)
        self._check_open()
        info = await self._info(topic)
        if info is None:
            raise NotFound(f"topic {topic!r} does not exist")
        return info

    async def _info(self, topic: str) -> TopicInfo | None:
        r = await self.call(lua.INFO, self.base(topic))
        if r is None:
            return None

        def opt(raw: bytes, kind: Callable[[str], Any]) -> Any:
            return kind(raw.decode()) if raw else None

        return TopicInfo(
            name=topic,
            count=int(r[0]),
            first=r[1].decode() or None,
            last=r[2].decode() or None,
            bytes=int(r[3]),
            retention=Retention(max_age=opt(r[4], float), max_count=opt(r[5], int), max_bytes=opt(r[6], int)),
        )

    async def set_retention(self, topic: str, retention: Retention) -> None:
        """Set what ``topic`` keeps (creating it if needed), and apply it at once."""
        check_topic(topic)
        self._check_open()

        def val(v: float | None) -> str:
            return "" if v is None else repr(v)

        await self.call(
            lua.RETENTION,
            self.base(topic),
            self.registry,
            topic,
            self.options.partitions,
            val(retention.max_age),
            val(retention.max_count),
            val(retention.max_bytes),
        )
        if not retention.unlimited:
            await self.apply_retention(topic)

    async def apply_retention(self, topic: str) -> int:
        """Remove what the retention no longer keeps, a chunk per script run; returns how many went."""
        check_topic(topic)
        self._check_open()
        total = 0
        while True:
            removed, more = await self.call(lua.RETAIN, self.base(topic), RETENTION_CHUNK)
            total += int(removed)
            if not more:
                return total

    async def delete(self, topic: str, ids: Sequence[str]) -> int:
        """Remove single records by id (compaction); returns how many went.

        Not part of the Log contract.  XDEL on the partition holding each one;
        the ids are forgotten by the dedup index, as retention forgets them.
        """
        check_topic(topic)
        self._check_open()
        removed = 0
        ids = list(ids)
        for i in range(0, len(ids), RETENTION_CHUNK):
            removed += int(await self.call(lua.DELETE, self.base(topic), *ids[i : i + RETENTION_CHUNK]))
        return removed

    async def groups(self, topic: str) -> list[str]:
        """The consumer groups that have joined ``topic``, sorted."""
        check_topic(topic)
        client = self.client
        names = await self._retry(lambda: client.smembers(f"{self.base(topic)}:groups"))
        return sorted(_text(n) for n in names)

    async def lag(self, topic: str, group: str) -> GroupLag:
        """Records not acked by ``group`` (pending included); NotFound if it never joined."""
        check_topic(topic)
        self._check_open()
        found, lag, pending, members, skipped, gaps = await self.call(
            lua.LAG, self.base(topic), self.group_key(topic, group), group
        )
        if not found:
            raise NotFound(f"group {group!r} has not joined topic {topic!r}")
        return GroupLag(topic, group, int(lag), int(pending), int(members), int(skipped), int(gaps))

    async def health(self) -> Health:
        """Whether the server answers now (never raises for an unreachable server)."""
        try:
            client = self.client
            with self.guard():
                info = await client.info("server")
        except (EngineUnavailable, LogError) as e:
            return Health(False, self.engine, self.url, str(e))
        version = info.get("redis_version", "?")
        return Health(True, self.engine, self.url, f"redis {version}, {self.options.partitions} partitions")


def _raw(response: Any, **options: Any) -> Any:
    return response


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, rx.TimeoutError):
        return f"no answer in time ({text})"
    return text
