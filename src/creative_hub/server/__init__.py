"""The hub's HTTP server: REST, Server-Sent Events, metrics, AsyncAPI and the dashboard.

    sock = listen("127.0.0.1", 8080)          # PortInUse before anything else is opened
    await serve(hub, sock=sock, settings=ServerSettings())

``serve`` runs uvicorn with the connection limits of ``connections.py`` and
leaves signals to its caller: ``stop_signals()`` turns SIGINT and SIGTERM into
one event, whether or not the process was started with SIGINT ignored.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from ..errors import HubError
from ..hub import Hub
from .app import ServerSettings, create_app
from .connections import MAX_HEAD_BYTES, ConnectionLimits, protocol_for

__all__ = ["PortInUse", "ServerSettings", "create_app", "listen", "serve", "stop_signals"]

GRACEFUL_SHUTDOWN = 2  # seconds open streams get to end before they are cancelled


class PortInUse(HubError):
    """The port to listen on is taken (by another hub, or anything else)."""

    exit_code = 6


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ``PortInUse`` (one line, a next port to try) if taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise HubError(f"cannot listen on {host}: {e.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    # proto from getaddrinfo (IPPROTO_TCP): asyncio sets TCP_NODELAY on accepted sockets only when
    # it is there, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} is in use; try --port {port + 1} or CREATIVE_HUB_PORT") from None
        raise HubError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: the caller decides what a signal means.

    uvicorn's own handlers re-raise the signal after shutting down, and with
    SIGINT ignored (a hub started from a script) that left the process running
    with nothing listening."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (handlers restored after)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _limits(settings: ServerSettings) -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        idle_timeout=settings.idle_timeout,
        max_per_client=settings.max_connections_per_client,
    )


async def serve(
    hub: Hub,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    settings: ServerSettings | None = None,
    started: asyncio.Event | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``hub`` over HTTP until cancelled.  ``started`` is set once it listens.

    ``sock`` (from ``listen``) is used as is and closed at the end; without it
    the server binds ``host:port`` itself."""
    settings = settings or ServerSettings()
    if sock is None:
        sock = listen(host, port)
    config = uvicorn.Config(
        create_app(hub, settings),
        log_level="warning",
        lifespan="on",
        access_log=False,
        http=protocol_for(_limits(settings)),
        ws="none",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        # uvicorn's keep-alive timer (after a response) is the idle timeout; integer seconds there.
        timeout_keep_alive=max(1, round(settings.idle_timeout)) if settings.idle_timeout else 3600,
        # SSE streams never end by themselves: without this, a stop would wait for every client.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task  # raises what stopped it
                raise OSError(f"the HTTP server on {host}:{port} stopped before it started")
            await asyncio.sleep(0.02)
        if started is not None:
            started.set()
        await asyncio.shield(task)  # a cancel stops it gracefully below, sockets closed
    finally:
        server.should_exit = True
        if not task.done():
            await asyncio.wait_for(task, 10)
        sock.close()
