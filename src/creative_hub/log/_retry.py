"""Retrying a network call: one backoff policy shared by the network engines.

    backoff = Backoff(base=0.05, cap=5.0)
    backoff.compute(0)   # ~0.05 s before the first retry
    backoff.compute(6)   # capped at 5 s, jittered

    result = await call_with_retry(
        lambda: client.ping(),
        on_failure=lambda err, failures: log.warning("retry %d: %s", failures, err),
        retryable=(ConnectionError, TimeoutError),
        attempts=4,
    )

Only retry what is safe to repeat: reads, and writes made idempotent by a key
(the engines' appends are deduplicated by event id, so a retried append
stores one copy).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "DEFAULT_RETRY_ATTEMPTS",
    "DEFAULT_RETRY_BASE",
    "DEFAULT_RETRY_CAP",
    "Backoff",
    "call_with_retry",
]

T = TypeVar("T")

DEFAULT_RETRY_BASE = 0.05  # seconds before the first retry
DEFAULT_RETRY_CAP = 5.0  # seconds; no wait is longer than this
DEFAULT_RETRY_ATTEMPTS = 4  # tries in all (the first one and three retries)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff with "full jitter", capped.

    Backoff()                        # 50 ms, 100 ms, 200 ms ... up to 5 s
    Backoff(base=0.01, cap=1.0)      # for calls that should fail fast
    Backoff(jitter=False)            # exact waits (tests, tooling)
    """

    base: float = DEFAULT_RETRY_BASE  #: seconds
    cap: float = DEFAULT_RETRY_CAP  #: seconds
    jitter: bool = True

    def compute(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (0 = the first)."""
        # Bound the exponent first: a shift by a huge count would be a huge int.
        ceiling = min(self.cap, self.base * (1 << min(max(failures, 0), 30)))
        if not self.jitter:
            return ceiling
        # Full jitter (AWS architecture blog): spreads clients that failed
        # together, so a restarted broker is not hit by all of them at once.
        return random.uniform(ceiling / 2, ceiling)


async def call_with_retry(
    do: Callable[[], Awaitable[T]],
    on_failure: Callable[[BaseException, int], object] | None = None,
    *,
    retryable: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError),
    attempts: int = DEFAULT_RETRY_ATTEMPTS,
    backoff: Backoff | None = None,
) -> T:
    """Await ``do()``; on a ``retryable`` error wait and try again, ``attempts`` times in all.

    ``on_failure(error, failures)`` is called after each failed try that will
    be retried (to log, or to reset a connection).  The last error is raised
    as is once the attempts are used up; non-retryable errors at once.
    """
    policy = backoff or Backoff()
    failures = 0
    while True:
        try:
            return await do()
        except retryable as e:
            failures += 1
            if failures >= attempts:
                raise
            if on_failure is not None:
                on_failure(e, failures)
            await asyncio.sleep(policy.compute(failures - 1))
