"""``NatsLog``: append, read, topics and retention on JetStream.

The design is described in the package docstring (``creative_hub.log.nats``);
the connection, requests and error translation are ``client.py``'s, the
consumer groups live in ``group.py``, reading in ``read.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.js import api

from ...errors import (
    EngineUnavailable,
    IdConflict,
    LogError,
    NotFound,
    ValidationError,
)
from .._subscription import SubscribeArgs, Subscribes
from ..base import (
    Appended,
    Entry,
    Feature,
    GroupLag,
    Health,
    Retention,
    TopicInfo,
    check_topic,
    redact,
)
from .client import (
    ERR_BATCH_DUPLICATE,
    ERR_WRONG_LAST_SEQUENCE,
    META_GROUP,
    META_TOPIC,
    BatchHasDuplicate,
    State,
    Topic,
    Transient,
)
from .names import (
    H_DIGEST,
    H_ID,
    H_KEY,
    NatsOptions,
    decode_header,
    encode_header,
    escape,
    parse_url,
    partition_of,
    subject_of,
)
from .read import NatsReader

if TYPE_CHECKING:
    from .group import NatsSubscription

__all__ = ["NatsLog"]

logger = logging.getLogger("creative_hub.log.nats")

ATOMIC_MAX = 1000  # messages in one atomic batch: the server's limit
CONTENT_TYPE = "application/cloudevents+json"  # NATS protocol binding, structured mode
MIN_MAX_AGE = 0.1  # seconds: JetStream refuses a shorter max_age
PROBE_WINDOW = 40  # probes in flight at once (JetStream: 50 open batches per stream)
NEVER_SEQ = 1 << 62  # an expected last sequence no stream reaches (for probes)


class NatsLog(NatsReader, Subscribes["NatsSubscription"]):
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
        self.url = redact(url)  # as given, password or token removed
        self.options = options or parse_url(url)
        self._init_client()

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
        self.check_open()
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
            t = await self.topic_of(topic, create=True)
            assert t is not None
            try:
                return await self._store(t, unique)
            except Transient:
                self.forget(topic)  # the stream may have been deleted: look again
                raise

        with self.guard(f"append to {topic}"):
            receipts: list[Appended] = await self.retrying(f"append to {topic}", attempt)
        return [receipts[i] if i >= 0 else Appended(receipts[-1 - i].position, duplicate=True) for i in plan]

    async def _store(self, t: Topic, entries: list[Entry]) -> list[Appended]:
        if len(entries) == 1:
            return [await self._publish_one(t, entries[0])]
        if len(entries) <= ATOMIC_MAX:
            try:
                return await self._commit(t, entries)
            except BatchHasDuplicate:
                pass  # some are stored already: sort out which, below
        return await self._store_checked(t, entries)

    async def _publish_one(self, t: Topic, e: Entry) -> Appended:
        subject = subject_of(t.name, e.creator, partition_of(e.key, t.partitions))
        msg = await self.request(subject, e.body, self._headers(e))
        resp = json.loads(msg.data)
        if "error" in resp:
            self.raise_api(resp)
        seq = int(resp["seq"])
        if resp.get("duplicate"):
            await self._check_digests(t, [e], {0: Appended(str(seq), duplicate=True)})
            return Appended(str(seq), duplicate=True)
        return Appended(str(seq))

    async def _commit(self, t: Topic, entries: list[Entry]) -> list[Appended]:
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
            self.raise_api(resp)
        last = int(resp["seq"])
        return [Appended(str(last - n + 1 + k)) for k in range(n)]

    async def _probe(self, t: Topic, entries: list[Entry]) -> dict[int, Appended]:
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
                    self.raise_api(resp)
                raise EngineUnavailable(
                    self.url, f"probe of {entries[i].id!r} was stored at {resp.get('seq')}"
                )
        known: dict[int, Appended] = {}
        again = [(subjects[i], entries[i].body, self._headers(entries[i])) for i in stored]
        for i, resp in zip(stored, await fan_out(again), strict=True):
            if "error" in resp:
                self.raise_api(resp)
            # Not a duplicate any more only if its dedup window ran out meanwhile:
            # then it has just been stored, which is what the caller wanted.
            known[i] = Appended(str(resp["seq"]), duplicate=bool(resp.get("duplicate")))
        return known

    async def _check_digests(self, t: Topic, entries: list[Entry], known: dict[int, Appended]) -> None:
        """IdConflict if a stored copy of an entry has another digest."""

        async def check(i: int, seq: int) -> None:
            msg = await self._direct_get(t, {"seq": seq})
            stored = (msg.headers or {}).get(H_DIGEST) if msg is not None else None
            # Gone (retention) or written by hand without a digest: nothing to compare.
            if stored is not None and decode_header(stored) != entries[i].digest:
                raise IdConflict(t.name, entries[i].id)

        await asyncio.gather(*(check(i, int(a.position)) for i, a in known.items() if a.duplicate))

    async def _store_checked(self, t: Topic, entries: list[Entry]) -> list[Appended]:
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
            except BatchHasDuplicate:
                continue  # another writer stored one of these meanwhile: look again
            return [a for a in out if a is not None]
        raise EngineUnavailable(self.url, f"append to {t.name}: kept racing another writer of the same ids")

    async def delete(self, topic: str, ids: Sequence[str]) -> int:
        """Remove single records by id (compaction); returns how many went.

        Not part of the Log contract.  JetStream deletes a message by sequence,
        so this scans the topic for the ids (DIRECT.GET batches) first.  The
        dedup window still remembers a deleted id: re-appending it within the
        window answers "duplicate" with the deleted position.
        """
        check_topic(topic)
        self.check_open()
        wanted = set(ids)
        t = await self.topic_of(topic, create=False)
        if t is None or not wanted:
            return 0
        seqs = [int(r.position) async for r in self.read(topic) if r.id in wanted]
        removed = 0
        for seq in seqs:
            resp = await self.js_api(
                f"$JS.API.STREAM.MSG.DELETE.{t.stream}",
                {"seq": seq, "no_erase": True},
                what=f"delete from {topic}",
            )
            removed += 1 if resp.get("success") else 0
        return removed

    # -- consumer groups --------------------------------------------------------
    def _member(self, args: SubscribeArgs) -> NatsSubscription:
        """A member of ``group`` (see ``group.NatsSubscription``)."""
        from .group import NatsSubscription

        return NatsSubscription(self, args)

    async def _consumers(self, t: Topic) -> list[api.ConsumerInfo]:
        out: list[api.ConsumerInfo] = []
        while True:
            resp = await self.js_api(
                f"$JS.API.CONSUMER.LIST.{t.stream}", {"offset": len(out)}, what="list groups"
            )
            page = resp.get("consumers") or []
            out.extend(api.ConsumerInfo.from_response(c) for c in page)
            if not page or len(out) >= int(resp.get("total", 0)):
                return out

    async def groups(self, topic: str) -> list[str]:
        check_topic(topic)
        self.check_open()
        t = await self.topic_of(topic, create=False)
        if t is None:
            return []
        names = {(c.config.metadata or {}).get(META_GROUP) for c in await self._consumers(t)}
        return sorted(n for n in names if n)

    async def lag(self, topic: str, group: str) -> GroupLag:
        check_topic(topic)
        self.check_open()
        t = await self.topic_of(topic, create=False)
        mine = []
        if t is not None:
            mine = [c for c in await self._consumers(t) if (c.config.metadata or {}).get(META_GROUP) == group]
        if t is None or not mine:
            raise NotFound(f"group {group!r} has not joined topic {topic!r}")
        lag = sum((c.num_pending or 0) + (c.num_ack_pending or 0) for c in mine)
        pending = sum(c.num_ack_pending or 0 for c in mine)
        keys = await self.kv_scan(f"{t.stream}.{escape(group)}.m.>")
        members = sum(1 for v in keys.values() if not v.deleted)
        totals = (await self.kv_scan(f"{t.stream}.{escape(group)}.s")).get(f"{t.stream}.{escape(group)}.s")
        skipped, gaps = (int(x) for x in totals.value.split()) if totals and totals.value else (0, 0)
        return GroupLag(topic, group, lag, pending, members, skipped, gaps)

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
        self.check_open()
        out: list[TopicInfo] = []
        seen = 0
        while True:
            resp = await self.js_api("$JS.API.STREAM.LIST", {"offset": seen}, what="list topics")
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
        self.check_open()
        t = await self.topic_of(topic, create=False)
        if t is None:
            raise NotFound(f"topic {topic!r} does not exist")
        with self.guard(f"topic info {topic}"):
            return self._info(topic, await self.js.stream_info(t.stream))

    async def set_retention(self, topic: str, retention: Retention) -> None:
        """Stream limits: JetStream itself then removes what falls outside them."""
        check_topic(topic)
        self.check_open()
        t = await self.topic_of(topic, create=True)
        assert t is not None
        with self.guard(f"set retention of {topic}"):
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
        self.check_open()
        t = await self.topic_of(topic, create=False)
        if t is None:
            return 0
        removed = 0
        with self.guard(f"apply retention to {topic}"):
            info = await self.js.stream_info(t.stream)
            c = info.config
            if c.max_msgs and c.max_msgs > 0:
                purge = f"$JS.API.STREAM.PURGE.{t.stream}"
                resp = await self.js_api(purge, {"keep": c.max_msgs}, what="purge")
                removed += int(resp.get("purged", 0))
            if c.max_age:
                cut = await self._seq_at_time(t, time.time() - c.max_age, info.state.last_seq + 1)
                if cut > info.state.first_seq:
                    resp = await self.js_api(f"$JS.API.STREAM.PURGE.{t.stream}", {"seq": cut}, what="purge")
                    removed += int(resp.get("purged", 0))
        return removed

    async def health(self) -> Health:
        if self._state is not State.OPEN or self._nc is None:
            return Health(False, self.engine, self.url, f"not open ({self._state.value})")
        try:
            info = await self.js_api("$JS.API.INFO", what="health")
        except LogError as e:
            return Health(False, self.engine, self.url, str(e))
        version = self._nc.connected_server_version
        return Health(
            True, self.engine, self.url, f"nats-server {version}, JetStream, {info.get('streams', 0)} streams"
        )
