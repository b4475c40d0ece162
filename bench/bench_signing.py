"""What a signature costs per event: Ed25519 in ``cryptography`` (OpenSSL) against PyNaCl (libsodium).

    .venv/bin/python bench/bench_signing.py [--events 5000] [--rounds 5]

The hub signs every event whose creator has a key in the keystore and
``creative-hub verify`` / ``follow`` verify them.  This times, per event of
about 200 bytes, best of ``--rounds``: signing and verifying with the
library the hub uses (``cryptography``) and with libsodium through PyNaCl,
on the same keys and messages; and the hub's whole signed path
(``Hub.prepare`` with a key) against its unsigned one, for the extra cost a
signed event pays.  Neither library offers batch verification from Python
(libsodium has no batch API), so there is no batch row to give.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def best_us(fn: Callable[[], None], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    n = a.events
    msgs = [(b'{"specversion":"1.0","id":"%d",' % i).ljust(200, b"x") + b"}" for i in range(n)]
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    sigs = [key.sign(m) for m in msgs]

    def c_sign() -> None:
        for m in msgs:
            key.sign(m)

    def c_verify() -> None:
        for m, s in zip(msgs, sigs, strict=True):
            pub.verify(s, m)

    rows = [("cryptography (OpenSSL)", best_us(c_sign, n, a.rounds), best_us(c_verify, n, a.rounds))]
    try:
        import nacl.signing
    except ImportError:
        print("PyNaCl not installed (pip install pynacl): libsodium row left out", file=sys.stderr)
    else:
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())  # fmt: skip
        nkey = nacl.signing.SigningKey(seed)
        nverify = nkey.verify_key
        assert nkey.sign(msgs[0]).signature == sigs[0]  # the same Ed25519, byte for byte

        def n_sign() -> None:
            for m in msgs:
                nkey.sign(m)

        def n_verify() -> None:
            for m, s in zip(msgs, sigs, strict=True):
                nverify.verify(m, s)

        rows.append(("PyNaCl (libsodium)", best_us(n_sign, n, a.rounds), best_us(n_verify, n, a.rounds)))

    print(f"{'Ed25519, ~200-byte events':<28} {'sign us':>9} {'verify us':>10}")
    for name, s, v in rows:
        print(f"{name:<28} {s:>9.2f} {v:>10.2f}")

    # The hub's own path: prepare() with and without the creator's key.
    import asyncio

    from creative_hub.hub import Hub
    from creative_hub.principals import Keystore

    async def hub_path() -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            async with Hub.connect(f"sqlite:///{tmp}/s.db", principal="alice", keys=f"{tmp}/k") as hub:
                ks = Keystore(Path(tmp) / "k")
                ks.create("alice")
                items = [{"type": "creative.feedback.comment", "data": {"on": "s", "text": "x" * 80}}] * n

                def run() -> None:
                    for item in items:
                        hub.prepare(item)

                hub.keystore = ks
                signed = best_us(run, n, a.rounds)
                hub.keystore = None
                unsigned = best_us(run, n, a.rounds)
                return signed, unsigned

    signed, unsigned = asyncio.run(hub_path())
    extra = signed - unsigned
    print(f"Hub.prepare: unsigned {unsigned:.2f} us, signed {signed:.2f} us (+{extra:.2f} us per event)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
