"""The Hub: one principal's view of one log (views, keys, grants, the id index, admin).

What it does is spread by idea over the package: the publish pipeline
(``publish.py``), reading (``read.py``), the subscription wrapper
(``subscription.py``); their functions are this class's methods of the same
name.  Faces and agents use only these methods, never ``hub.log``: the
engine-facing calls they need (the end of a topic, lags, health, retention)
are here, with the access rules applied.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Unpack

from ..access import Identity, can_list, can_read, check_read, needs_grant
from ..derived import ReadLog
from ..errors import AccessDenied, NotFound
from ..event import DEFAULT_MAX_EVENT_BYTES, Event
from ..grants import GrantBook
from ..ids import EventIds, default_ids_path
from ..ledger import EffectLedger
from ..log import GroupLag, Health, Log, Retention, TopicInfo, deleter, open_log
from ..log.base import DEFAULT_ACK_TIMEOUT, SubscribeOptions, check_topic
from ..principals import Keystore, Registry
from . import publish as _publish
from . import read as _read
from .subscription import HubSubscription

__all__ = ["Hub", "default_keys", "default_token_key"]


class Hub:
    """Publish and subscribe through one log.

    Hub(log, principal="alice")                     # an opened Log; trusted (the hub itself)
    Hub.connect("redis://127.0.0.1:6390/0")          # async context manager
    hub.acting("bob", authenticated=True)            # bob's view: access rules apply

    A *trusted* hub (the default for the Python API, sources and migrations)
    may publish with any ``creator`` and read every topic.  Faces (CLI, HTTP,
    MCP) act through ``acting()``: the creator is always the acting principal,
    whatever the payload says, and the rules of ``creative_hub.access`` apply.
    Events are signed with the creator's key when the keystore has it.
    """

    def __init__(
        self,
        log: Log,
        *,
        principal: str = "local",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        trusted: bool = True,
        authenticated: bool = False,
        keystore: Keystore | None = None,
        registry: Registry | None = None,
        grants: GrantBook | None = None,
        via: str | None = None,
        ids: EventIds | None = None,
    ) -> None:
        self.log = log
        self.principal = principal
        self.max_event_bytes = max_event_bytes
        self.trusted = trusted
        self.authenticated = authenticated
        self.keystore = keystore
        self.via = via  # the face this view serves (http, mcp): named in audit records
        self._registry = registry
        self._grants = grants
        self._ids = ids
        self._parent: Hub | None = None  # acting() views share the index of the hub they came from
        self._identity_parts: tuple[object, ...] = ()
        self._identity = Identity(principal)
        self._owns_log = True
        #: the file of the key that MACs API tokens (``Hub.connect``: found from the URL)
        self.token_key: str | None = None

    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> _Connect:
        """``async with Hub.connect(url) as hub``: opens the log, closes it after.

        ``keys=PATH`` sets the keystore (default: ``<db>.keys`` beside a SQLite
        file, else ``.creative-hub/keys``).
        """
        return _Connect(url, kwargs)

    @property
    def identity(self) -> Identity:
        # Grants count for signed-in principals only; the view is shared, and kept fresh by reads.
        grants = self.grants if self.authenticated and not self.trusted else None
        parts = (self.principal, self.authenticated, self.trusted, grants, self.via, self._is_agent())
        if parts != self._identity_parts:  # the same Identity while they hold (a new one is 0.4 us)
            self._identity = Identity(*parts)
            self._identity_parts = parts
        return self._identity

    def _is_agent(self) -> bool:
        """A signed-in agent principal (work queues are theirs; the hub checks their ``inputs``)."""
        if self.trusted or not self.authenticated or self._registry is None:
            return False
        p = self._registry.principals.get(self.principal)
        return p is not None and p.kind == "agent"

    @property
    def reads(self) -> ReadLog:
        """What this process handed to each principal lately (``derived.check_inputs``)."""
        return self.grants.reads

    @property
    def grants(self) -> GrantBook:
        """Grants on drafts (kept in the log) and the audit of the reads they allow."""
        if self._grants is None:
            self._grants = GrantBook(self.log, self.keystore)
        return self._grants

    @property
    def registry(self) -> Registry:
        """Principals, tokens and public keys (kept in the log)."""
        if self._registry is None:
            # The same default as Hub.connect: beside a SQLite file, else ./.creative-hub/keys.
            keystore = self.keystore or Keystore(default_keys(self.url))
            token_key = Path(self.token_key) if self.token_key else None
            self._registry = Registry(self.log, keystore, token_key=token_key)
        return self._registry

    @property
    def ids(self) -> EventIds:
        """Where each event id is (``ids.py``): beside a SQLite file, else in memory."""
        if self._ids is None:
            if self._parent is not None:
                return self._parent.ids  # made when first needed, not with every view
            self._ids = EventIds(self.log, default_ids_path(self.log.url))
        return self._ids

    def acting(self, principal: str, *, authenticated: bool = False, via: str | None = None) -> Hub:
        """This hub as seen by ``principal``: same log, access rules applied.
        ``via`` names the face (http, mcp) in the owner's audit of draft reads."""
        child = Hub(
            self.log,
            principal=principal,
            max_event_bytes=self.max_event_bytes,
            trusted=False,
            authenticated=authenticated,
            keystore=self.keystore,
            registry=self.registry,
            grants=self.grants,
            via=via,
            ids=self._ids,
        )
        child._owns_log = False
        child._parent = self if self._ids is None else None
        return child

    def trusted_view(self, principal: str) -> Hub:
        """The hub's own rights over the same log, under ``principal``'s name: for the
        hub's components (the indexer reads every topic; what a caller sees is filtered
        when they ask), never for a caller's request."""
        view = self.acting(principal)
        view.trusted = True
        return view

    async def close(self) -> None:
        if self._owns_log:
            if self._ids is not None:
                self._ids.close()
            await self.log.close()

    # -- publish (publish.py) ------------------------------------------------
    prepare = _publish.prepare
    prepare_many = _publish.prepare_many
    publish = _publish.publish
    append = _publish.append
    dead_letter = _publish.dead_letter

    # -- read (read.py) --------------------------------------------------------
    replay = _read.replay
    get = _read.get
    records = _read.records
    tail_start = _read.tail_start

    def _handed(self, events: Sequence[Event]) -> None:
        """Remember what an agent principal was handed (its ``inputs`` are checked against it)."""
        if self.identity.agent:
            self.reads.add(self.principal, (e.id for e in events))

    async def handed(self, topic: str, events: Sequence[Event], how: str = "replay") -> None:
        """A face that read ``events`` of ``topic`` by other means than ``replay``/``get`` (an
        index, a page built from several topics) and shows them to the caller: audit the read
        as ``how`` and remember it for an agent, exactly as ``replay`` would have."""
        if events:
            await self.grants.record_reads(self.identity, topic, events, how)
            self._handed(events)

    def subscribe(
        self, topic: str, group: str, *, validate: bool = True, **options: Unpack[SubscribeOptions]
    ) -> HubSubscription:
        """Join ``group`` on ``topic``: history first (unless start=LATEST), then live.
        ``options`` as the log's (``SubscribeOptions``: consumer, ack_timeout, start, batch).
        Someone else's drafts: checked against the grants now, or -- when the hub's
        view of them is older than ``grants.REFRESH_AGE`` -- on first use."""
        if not needs_grant(self.identity, topic) or self.grants.fresh:
            check_read(self.identity, topic)
        return HubSubscription(self, self.log.subscribe(topic, group, **options), validate=validate)

    async def handle(
        self,
        topic: str,
        group: str,
        handler: Callable[[Event, Any], Awaitable[None] | None],
        *,
        ledger: EffectLedger,
        stop_after: int | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
    ) -> int:
        """Run ``handler(event, tx)`` once per event id for ``group``, then ack.

        ``tx`` is the ledger's transaction: whatever the handler writes through
        it commits together with the record that the event was handled, so a
        redelivery (after a crash before the ack) finds it done and skips it.
        Returns how many events were handled (``stop_after`` bounds it).
        """
        handled = 0
        async with self.subscribe(topic, group, ack_timeout=ack_timeout) as sub:
            async for d in sub:
                with ledger.once(group, d.event.id) as tx:
                    if tx is not None:
                        result = handler(d.event, tx)
                        if result is not None:
                            await result
                await d.ack()
                handled += 1
                if stop_after is not None and handled >= stop_after:
                    break
        return handled

    # -- admin ---------------------------------------------------------------
    async def topics(self, *, through_grants: bool = False) -> list[TopicInfo]:
        """The topics this principal may read (others are not even named; nor is a
        topic subject grants alone open, see ``access.can_list``).

        ``through_grants``: those too, for reading the events grants cover one by
        one (``records``, ``replay``); a face never shows that list to a person."""
        if self.identity.grants is not None:
            await self.grants.refresh()
        allowed = can_read if through_grants else can_list
        return [t for t in await self.log.topics() if allowed(self.identity, t.name)]

    async def stats(self) -> list[tuple[TopicInfo, list[GroupLag]]]:
        """Per topic: its counts, and the lag of every group on it."""
        out = []
        for info in await self.topics():
            lags = [await self.log.lag(info.name, g) for g in await self.log.groups(info.name)]
            out.append((info, lags))
        return out

    async def set_retention(self, topic: str, retention: Retention) -> None:
        if not self.trusted:
            raise AccessDenied("setting retention needs the hub's own rights")
        await self.log.set_retention(topic, retention)

    async def apply_retention(self, topic: str | None = None) -> int:
        """Remove what ``topic``'s retention no longer keeps now (None: every topic
        with limits); returns how many events went.  The hub's own rights only."""
        if not self.trusted:
            raise AccessDenied("applying retention needs the hub's own rights")
        if topic is not None:
            return await self.log.apply_retention(topic)
        removed = 0
        for info in await self.log.topics():
            if not info.retention.unlimited:
                removed += await self.log.apply_retention(info.name)
        return removed

    async def delete(self, topic: str, ids: Sequence[str]) -> int | None:
        """Delete the events ``ids`` from ``topic`` (compaction); None when the engine
        cannot delete (``Feature.DELETE``): retention removes them in time.  The hub's own rights only."""
        if not self.trusted:
            raise AccessDenied("deleting events needs the hub's own rights")
        engine = deleter(self.log)
        return None if engine is None else await engine.delete(topic, ids)

    # -- what faces need of the engine, through the access rules -------------
    @property
    def engine(self) -> str:
        """The engine's name (``SQLiteLog``, ``RedisLog``, ...), for health pages."""
        return type(self.log).__name__

    @property
    def url(self) -> str:
        """The log's URL (may hold a password: ``log.redact`` it before showing it)."""
        return str(getattr(self.log, "url", ""))

    async def health(self) -> Health:
        """Whether the log answers, and what it says about itself."""
        return await self.log.health()

    async def topic_info(self, topic: str) -> TopicInfo:
        """Counts and bounds of ``topic`` (NotFound when it does not exist)."""
        check_topic(topic)
        check_read(self.identity, topic)
        return await self.log.topic_info(topic)

    async def end(self, topic: str) -> str | None:
        """The position of ``topic``'s newest event (None: empty or not there yet);
        ``replay(topic, after=end, follow=True)`` then gives exactly what comes next."""
        try:
            return (await self.topic_info(topic)).last
        except NotFound:
            return None

    async def lags(self, group: str, topics: Sequence[str] | None = None) -> list[GroupLag]:
        """The lag of ``group`` on each topic it has joined (of ``topics``, when given),
        among the topics this principal may read."""
        names = [t.name for t in await self.topics()] if topics is None else list(topics)
        out = []
        for name in names:
            if can_list(self.identity, name) and group in await self.log.groups(name):
                out.append(await self.log.lag(name, group))
        return out


class _Connect:
    def __init__(self, url: str, kwargs: dict[str, Any]) -> None:
        self.url = url
        self.kwargs = kwargs
        self.hub: Hub | None = None

    async def __aenter__(self) -> Hub:
        # Read, not popped: a second ``async with`` on the same object keeps its options.
        kwargs = dict(self.kwargs)
        log_options = kwargs.pop("log_options", {})
        keys = kwargs.pop("keys", None)
        log = open_log(self.url, **log_options)
        await log.open()
        self.hub = Hub(log, keystore=Keystore(keys or default_keys(self.url)), **kwargs)
        self.hub.token_key = default_token_key(self.url)
        return self.hub

    async def __aexit__(self, *exc: object) -> None:
        if self.hub is not None:
            await self.hub.close()


def default_token_key(url: str) -> str:
    """Where the key that MACs API tokens lives: beside a SQLite file, else in ./.creative-hub.

    Found from the log, not the keystore, so every process on the same log
    checks tokens alike whichever keystore it signs with."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :].split("?", 1)[0] + ".token-key"
    return os.path.join(".creative-hub", "token-key")


def default_keys(url: str) -> str:
    """Where private keys live by default: beside a SQLite file, else ./.creative-hub/keys."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :].split("?", 1)[0] + ".keys"
    return os.path.join(".creative-hub", "keys")
