"""A publisher in its own process, for fault tests.

    python tests/_publisher.py URL TOPIC ACKFILE --count 2000 --batch 100

Appends ``--count`` entries with deterministic ids (``<prefix>-<n>``) and
keys ``k0..k4`` in batches.  After each append returns, it writes the ids of
that batch to ACKFILE (one per line, flushed and fsync'd): that file is the
"acknowledged" set the test checks against the log.  A failed or timed-out
append is retried with the same ids (an indefinite outcome: the log's dedup
keeps one copy) until ``--give-up`` seconds have passed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time

from creative_hub.errors import HubError
from creative_hub.log import Entry, open_log

__all__ = ["entry"]


def entry(prefix: str, n: int, keys: int = 5) -> Entry:
    """The n-th entry of a run: same id, key and body every time it is made."""
    key = f"k{n % keys}"
    body = json.dumps({"n": n, "key": key, "seq": n // keys, "prefix": prefix}).encode()
    return Entry(f"{prefix}-{n}", key, body, hashlib.sha256(body).hexdigest()[:32], creator=key)


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="_publisher.py")
    p.add_argument("url")
    p.add_argument("topic")
    p.add_argument("ackfile")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--prefix", default="e")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one append may take")
    p.add_argument("--give-up", type=float, default=120.0, help="seconds of failures before exiting 1")
    p.add_argument("--pause", type=float, default=0.0, help="seconds between batches")
    p.add_argument("--positions", help="also write 'id position' lines of every acked event to this file")
    a = p.parse_args(argv)
    log = None
    failing_since: float | None = None
    with open(a.ackfile, "a", buffering=1) as acks:
        n = 0
        while n < a.count:
            batch = [entry(a.prefix, i) for i in range(n, min(n + a.batch, a.count))]
            try:
                if log is None:
                    log = open_log(a.url)
                    await asyncio.wait_for(log.open(), a.timeout)
                receipts = await asyncio.wait_for(log.append(a.topic, batch), a.timeout)
            except (HubError, TimeoutError, OSError) as e:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > a.give_up:
                    print(f"giving up after {a.give_up}s of failures: {e}", file=sys.stderr)
                    return 1
                print(f"retrying batch at {n}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                if log is not None:
                    old, log = log, None
                    try:
                        await asyncio.wait_for(old.close(), 5)
                    except Exception:  # a broken connection may not close cleanly
                        pass
                await asyncio.sleep(0.2)
                continue
            failing_since = None
            acks.write("".join(f"{e.id}\n" for e in batch))
            acks.flush()
            os.fsync(acks.fileno())
            if a.positions:
                with open(a.positions, "a") as pos:
                    pos.write("".join(f"{e.id} {r.position}\n" for e, r in zip(batch, receipts, strict=True)))
            n += len(batch)
            if a.pause:
                await asyncio.sleep(a.pause)
    if log is not None:
        await log.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
