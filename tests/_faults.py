"""Tools for fault tests: a history checker and a loopback TCP fault proxy.

The checker follows Jepsen's: every published value is unique; record what
was attempted, what was acknowledged and what was read (or handled), then

* ``lost`` = acked - read: an acknowledged event the log does not have;
* ``unexpected`` = read - attempted: something nobody published;
* ``duplicates``: ids read (or effects applied) more than once;
* ``nonmonotonic``: keys whose events were read out of publish order.

``FaultProxy`` sits between a client and a broker on loopback and can delay,
blackhole, reset or refuse connections -- what a network partition looks
like to the client, without root or iptables.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from creative_hub.log import Gap

__all__ = ["FaultProxy", "History", "Mode", "Report", "in_gap", "position_key"]


@dataclass(slots=True)
class Report:
    lost: set[str]
    unexpected: set[str]
    duplicates: dict[str, int]
    nonmonotonic: dict[str, list[int]]
    unacked_present: int  #: attempted, not acked, but stored (allowed: an indefinite outcome)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unexpected or self.duplicates or self.nonmonotonic)

    def __str__(self) -> str:
        return (
            f"lost={sorted(self.lost)[:10]} ({len(self.lost)}), unexpected={sorted(self.unexpected)[:10]}, "
            f"duplicates={dict(list(self.duplicates.items())[:10])}, "
            f"nonmonotonic={list(self.nonmonotonic)[:10]}, "
            f"indefinite-but-stored={self.unacked_present}"
        )


@dataclass(slots=True)
class History:
    """What happened to every value in a test run."""

    attempted: dict[str, tuple[str, int]] = field(default_factory=dict)  #: id -> (key, seq per key)
    acked: set[str] = field(default_factory=set)
    read: list[str] = field(default_factory=list)  #: in read order (may repeat)

    def attempt(self, event_id: str, key: str, seq: int) -> None:
        self.attempted[event_id] = (key, seq)

    def ack(self, ids: Iterable[str]) -> None:
        self.acked.update(ids)

    def check(self, *, allow_duplicate_reads: bool = False) -> Report:
        counts = Counter(self.read)
        seen = set(counts)
        by_key: dict[str, list[int]] = {}
        for eid in dict.fromkeys(self.read):  # first reads, in order
            if eid in self.attempted:
                key, seq = self.attempted[eid]
                by_key.setdefault(key, []).append(seq)
        return Report(
            lost=self.acked - seen,
            unexpected=seen - set(self.attempted),
            duplicates={} if allow_duplicate_reads else {i: c for i, c in counts.items() if c > 1},
            nonmonotonic={k: v for k, v in by_key.items() if v != sorted(v)},
            unacked_present=len((seen & set(self.attempted)) - self.acked),
        )


class Mode(Enum):
    PASS = "pass"  # forward bytes both ways
    DELAY = "delay"  # forward after `delay` seconds
    BLACKHOLE = "blackhole"  # accept and read, forward nothing (a partition)
    RESET = "reset"  # close every connection with a TCP RST, refuse new ones the same way


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_port``.

    async with FaultProxy(broker_port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        proxy.mode = Mode.BLACKHOLE         # partition
        proxy.heal()
    """

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1", delay: float = 0.5) -> None:
        self.target = (target_host, target_port)
        self.mode = Mode.PASS
        self.delay = delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def heal(self) -> None:
        self.mode = Mode.PASS

    def reset_all(self) -> None:
        """Send a TCP RST on every open connection now."""
        for w in list(self._conns):
            _rst(w)
        self._conns.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.reset_all()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode is Mode.RESET:
            _rst(writer)
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(writer)
            return
        self._conns.update((writer, up_w))
        pumps = [
            asyncio.create_task(self._pump(reader, up_w)),
            asyncio.create_task(self._pump(up_r, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in pumps:
                t.cancel()
                self._tasks.discard(t)
            for w in (writer, up_w):
                self._conns.discard(w)
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await src.read(65536)
            if not data:
                with contextlib.suppress(Exception):
                    dst.write_eof()  # half-close travels on
                return
            while self.mode is Mode.BLACKHOLE:
                await asyncio.sleep(0.05)  # swallow time, not bytes: they go once healed
            if self.mode is Mode.RESET:
                _rst(dst)
                return
            if self.mode is Mode.DELAY:
                await asyncio.sleep(self.delay)
            dst.write(data)
            await dst.drain()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()


# -- where a record lies: the built-in engines' position formats -------------------
# (Fault tests read them to check reported gaps against what was lost; the
# contract suite stays engine-neutral and never parses a position.)


def position_key(position: str, partition: int | None = None) -> tuple[int, ...]:
    """A position of any built-in engine as something ordered within one partition.

    SQLite and NATS: a sequence; Redis: ``<ms>-<seq>``; Kafka: a cursor vector
    (``-1,7,-1``), of which the offset in ``partition`` is taken (or, without
    one, the one offset that is set).
    """
    if "," in position:
        offsets = [int(x) for x in position.split(",")]
        if partition is not None:
            return (offsets[partition],) if partition < len(offsets) else (-1,)
        set_ = [o for o in offsets if o >= 0]
        return (set_[0],) if len(set_) == 1 else tuple(offsets)
    if "-" in position:
        ms, seq = position.split("-")
        return (int(ms), int(seq))
    return (int(position),)


def in_gap(position: str, gap: Gap) -> bool:
    """Whether the record at ``position`` may lie in ``gap``'s range (after, upto].

    Ranges are per engine partition, and only a Kafka position says which
    partition it is in (a receipt's cursor also carries the other
    partitions' read offsets, so this errs towards "yes"): a check for
    records lost *without* a gap is exact only where one partition is used.
    """
    key = position_key(position, gap.partition)
    upto = position_key(gap.upto, gap.partition)
    after = None if gap.after is None else position_key(gap.after, gap.partition)
    return (after is None or after < key) and key <= upto
