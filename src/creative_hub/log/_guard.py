"""Driver errors and cancellations: the one shape every engine wraps its client calls in.

    with self.guard("append to creative.narrative"):
        await client.xadd(...)

Inside the block a driver's exception becomes an ``errors.py`` error through
the engine's one ``_translate(error, what)`` (which may hand back the error
itself: not a driver's, let it pass); errors of our own (``HubError``) and
``CancelledError`` pass unchanged.

The block also keeps cancellations.  On Python 3.11 ``asyncio.wait_for``
returns the inner result when the inner future finished in the same loop
turn as the cancellation (CPython gh-86296), and nats-py uses ``wait_for``
for every request: a ``task.cancel()`` landing there vanished, and a
subscriber's loop went on for ever (a runner's ``stop()`` hung on it).  A
cancellation leaves its mark on the task (``Task.cancelling()`` counts the
requests), so a block that ends normally with more requests than it started
with had one swallowed inside it; the guard raises ``CancelledError`` there.
A cancelled task's cleanup (more requests are not made) is unaffected, and
``asyncio.timeout`` blocks inside take their own request back.

``wait_for`` below is the replacement for ``asyncio.wait_for`` in our own code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from ..errors import HubError

__all__ = ["Guard", "Translate", "cancellations", "wait_for"]

T = TypeVar("T")

#: (driver error, what was being done) -> our error, or the error itself to let it pass as it is
Translate = Callable[[Exception, str], Exception]


def cancellations() -> tuple[asyncio.Task[object] | None, int]:
    """The current task and how many cancellations were requested of it so far."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop (a synchronous caller)
        return None, 0
    return task, (task.cancelling() if task is not None else 0)


class Guard:
    """A block of driver calls: errors translated, swallowed cancellations raised again.

    Engines make one per block (``Guard(self._translate, what)``), usually
    through a ``guard(what)`` method.  Cheap: no generator, two slots read.
    """

    __slots__ = ("_before", "_task", "_translate", "_what")

    def __init__(self, translate: Translate, what: str) -> None:
        self._translate = translate
        self._what = what
        self._task: asyncio.Task[object] | None = None
        self._before = 0

    def __enter__(self) -> None:
        self._task, self._before = cancellations()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            task = self._task
            if task is not None and task.cancelling() > self._before:
                # Requested in here and never raised: a driver swallowed it.
                raise asyncio.CancelledError(f"cancelled during {self._what}")
            return
        if isinstance(exc, HubError) or not isinstance(exc, Exception):
            return  # ours already, or CancelledError / KeyboardInterrupt: as they are
        ours = self._translate(exc, self._what)
        if ours is not exc:
            raise ours from exc


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """``asyncio.wait_for`` without 3.11's lost cancellation: ``asyncio.timeout`` around an await."""
    async with asyncio.timeout(timeout):
        return await aw
