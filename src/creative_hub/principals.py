"""Principals (people and agents), their API tokens and their signing keys.

The registry is event-sourced: principals and tokens are CloudEvents in the
log's ``system.registry`` topic (``creative.system.principal``, ``.token``,
``.token_revoked``, ``.principal_revoked``), so every hub process on every
engine sees the same principals, any CloudEvents consumer of the broker can
read the topic, and a revocation reaches every process on its next
authentication (each ``authenticate`` first reads what is new).

* **Tokens** are shown once, at creation: ``chub_<token id>_<secret>``.  The
  registry stores only ``HMAC-SHA256(K, secret)``, K a random key in a file
  of its own, never in the log (``<db>.token-key`` beside a SQLite file, else
  ``.creative-hub/token-key``; ``Hub.connect`` finds it from the URL), and
  compares in constant time: someone who can read the broker learns a
  token's id and owner, not anything to test a guess against.  Every hub
  process that authenticates needs that file.  (Earlier
  versions stored ``sha256(secret)``; such tokens still work.)  A token may
  have an expiry (``issue_token(p, expires="30d")``), checked against the
  clock at each authentication.
* **Keys**: one Ed25519 key pair per principal.  The public key is in the
  registry (anyone can verify); the private key stays in a local keystore
  directory (files readable by the owner only), never in the log.
* **Signatures** cover the event's canonical encoding (structured JSON with
  ``signature`` left out), base64 in the ``signature`` extension.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import AccessDenied, NotFound, ValidationError
from .event import Event, digest, encode_event
from .log import Entry, Log
from .origins import is_source_principal
from .topics import system as system_topic

__all__ = [
    "REGISTRY_TOPIC",
    "Keystore",
    "Principal",
    "Registry",
    "canonical",
    "sign_event",
    "verify_signature",
]

REGISTRY_TOPIC = system_topic("registry")
_PRINCIPAL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TOKEN = re.compile(r"^chub_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")

Kind = Literal["person", "agent"]
Action = Literal["principal", "token", "revoke-token", "revoke-principal"]


class _RegistryRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One change to the registry, as stored in ``system.registry``."""

    action: Action
    principal: str
    time: float
    token_mac: str | None = None  # HMAC-SHA256 of the secret part with the keystore's key, hex
    kind: str | None = None
    name: str | None = None
    public_key: str | None = None  # raw Ed25519 public key, base64
    token_id: str | None = None
    token_hash: str | None = None  # sha256 of the secret part, hex
    expires: float | None = None  # epoch seconds the token stops working; None: never


@dataclass(slots=True)
class Principal:
    id: str
    kind: str
    name: str
    public_key: str  #: raw Ed25519 key, base64
    created: float
    revoked: bool = False
    tokens: int = 0  #: live tokens


@dataclass(slots=True)
class _Token:
    principal: str
    hash: str
    keyed: bool = False  #: ``hash`` is an HMAC with the keystore's key (else a bare sha256)
    revoked: bool = False
    expires: float | None = None  #: epoch seconds


def check_principal_id(value: str) -> str:
    if not isinstance(value, str) or not _PRINCIPAL_ID.match(value):
        raise ValidationError(
            "principal", f"{value!r}: 1-64 characters of a-z, 0-9, '_' and '-', starting alnum"
        )
    return value


def canonical(event: Event) -> bytes:
    """The bytes a signature covers: the event without its signature."""
    return encode_event(msgspec.structs.replace(event, signature=None))


def sign_event(event: Event, key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(canonical(event))).decode()


def verify_signature(event: Event, public_key_b64: str) -> bool:
    """True if ``event.signature`` was made by the holder of ``public_key_b64``."""
    if not event.signature:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        key.verify(base64.b64decode(event.signature, validate=True), canonical(event))
    except (InvalidSignature, ValueError):
        return False
    return True


class Keystore:
    """Private keys, one file per principal, readable by this user only.

    Keystore(".creative-hub/keys")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._cache: dict[str, Ed25519PrivateKey] = {}

    def __repr__(self) -> str:
        return f"Keystore({str(self.path)!r})"

    def _file(self, principal: str) -> Path:
        return self.path / f"{check_principal_id(principal)}.pem"

    def create(self, principal: str) -> Ed25519PrivateKey:
        key = Ed25519PrivateKey.generate()
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        f = self._file(principal)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        self._cache[principal] = key
        return key

    def get(self, principal: str) -> Ed25519PrivateKey | None:
        if principal in self._cache:
            return self._cache[principal]
        try:
            f = self._file(principal)
        except ValidationError:
            return None
        if not f.exists():
            return None
        key = serialization.load_pem_private_key(f.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValidationError("key", f"{f} is not an Ed25519 private key")
        self._cache[principal] = key
        return key


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


_SECRETS: dict[Path, bytes] = {}  # key files read by this process


def load_secret(f: Path) -> bytes:
    """The random 32-byte key in file ``f``, made on first use (mode 0600, its folder 0700)."""
    f = f.absolute()  # a relative default (./.creative-hub) means another file after a chdir
    if f in _SECRETS:
        return _SECRETS[f]
    if not f.exists():
        # Written whole to a private file, then linked into place: another
        # process sees no key or a whole key, and the first link wins.
        f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, f)
        except FileExistsError:  # another process made it first: use theirs
            pass
        finally:
            tmp.unlink()
    text = f.read_text().strip()
    if len(text) != 64:  # a half-written file from a process killed mid-write
        raise ValidationError("token key", f"{f} is not a 64-hex-digit key; remove it to make a new one")
    _SECRETS[f] = bytes.fromhex(text)
    return _SECRETS[f]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


#: registry change -> its CloudEvents type, and back
TYPES = {
    "principal": "creative.system.principal",
    "token": "creative.system.token",
    "revoke-token": "creative.system.token_revoked",
    "revoke-principal": "creative.system.principal_revoked",
}
ACTIONS = {t: a for a, t in TYPES.items()}


def registry_event(rec: _RegistryRecord) -> Event:
    """A registry change as the CloudEvent ``system.registry`` holds."""
    data = msgspec.to_builtins(rec)
    del data["action"], data["time"]
    body = msgspec.json.encode(rec)
    return Event(
        id=hashlib.blake2b(body, digest_size=16).hexdigest(),
        source="/hub/registry",
        type=TYPES[rec.action],
        subject=rec.principal,
        time=datetime.fromtimestamp(rec.time, UTC),
        datacontenttype="application/json",
        data=data,
        creator="hub",
        partitionkey="registry",
    )


def _registry_record(body: bytes) -> _RegistryRecord:
    """The change a ``system.registry`` record holds: a CloudEvent, or the bare record
    earlier versions wrote."""
    obj = msgspec.json.decode(body)
    if isinstance(obj, dict) and "specversion" in obj:
        when = datetime.fromisoformat(obj["time"]).timestamp()
        return msgspec.convert({**obj["data"], "action": ACTIONS[obj["type"]], "time": when}, _RegistryRecord)
    return msgspec.convert(obj, _RegistryRecord)


class Registry:
    """Who is who: principals, tokens, public keys; read from ``system.registry``."""

    def __init__(self, log: Log, keystore: Keystore, *, token_key: Path | None = None) -> None:
        self.log = log
        self.keystore = keystore
        #: the key file MACing tokens (default: ``tokens.secret`` in the keystore)
        self.token_key = token_key or keystore.path / "tokens.secret"
        self.principals: dict[str, Principal] = {}
        self._tokens: dict[str, _Token] = {}
        self._position: str | None = None

    async def refresh(self) -> None:
        """Apply registry records appended since the last look (by any process)."""
        async for r in self.log.read(REGISTRY_TOPIC, after=self._position):
            self._apply(_registry_record(r.body))
            self._position = r.position

    def _apply(self, rec: _RegistryRecord) -> None:
        p = self.principals.get(rec.principal)
        if rec.action == "principal":
            self.principals[rec.principal] = Principal(
                rec.principal, rec.kind or "person", rec.name or rec.principal, rec.public_key or "", rec.time
            )
        elif rec.action == "token" and p is not None and rec.token_id and (rec.token_mac or rec.token_hash):
            keyed = rec.token_mac is not None
            mac = rec.token_mac or rec.token_hash or ""
            self._tokens[rec.token_id] = _Token(rec.principal, mac, keyed, expires=rec.expires)
            p.tokens += 1
        elif rec.action == "revoke-token" and rec.token_id in self._tokens:
            tok = self._tokens[rec.token_id]
            if not tok.revoked and tok.principal in self.principals:
                self.principals[tok.principal].tokens -= 1
            tok.revoked = True
        elif rec.action == "revoke-principal" and p is not None:
            p.revoked = True
            for tok in self._tokens.values():
                if tok.principal == rec.principal:
                    tok.revoked = True
            p.tokens = 0

    async def _record(self, action: Action, principal: str, **fields: Any) -> None:
        """Append one change (``fields``: the record's others) to ``system.registry``, stamped now."""
        rec = _RegistryRecord(action=action, principal=principal, time=time.time(), **fields)
        event = registry_event(rec)
        entry = Entry(event.id, "registry", encode_event(event), digest(event), "hub")
        await self.log.append(REGISTRY_TOPIC, [entry])
        await self.refresh()

    def _mac(self, secret: str) -> str:
        """HMAC-SHA256 of a token's secret part with this keystore's token key."""
        return hmac.new(load_secret(self.token_key), secret.encode(), hashlib.sha256).hexdigest()

    async def add(self, principal: str, *, kind: Kind = "person", name: str | None = None) -> Principal:
        """Register a principal and make its key pair.  An existing id is refused."""
        check_principal_id(principal)
        if kind not in ("person", "agent"):
            raise ValidationError("kind", f"must be 'person' or 'agent', got {kind!r}")
        if is_source_principal(principal):
            raise ValidationError(
                "principal", f"{principal!r} is reserved: the hub's {principal} source writes under that name"
            )
        await self.refresh()
        if principal in self.principals:
            raise ValidationError("principal", f"{principal!r} is already registered")
        return await self._register(principal, kind, name or principal)

    async def ensure_source(self, principal: str) -> Principal:
        """The source principal ``principal`` (``creative_hub.origins.SOURCE_PRINCIPALS``),
        registered with a key pair on first use, so what it writes is signed.

        A source principal has no tokens: only the hub's own ingest runs (and
        its webhook receiver) write as it.  Without its private key in this
        keystore (another machine registered it), its events go unsigned."""
        if not is_source_principal(principal):
            raise ValidationError("principal", f"{principal!r} is not a source principal")
        await self.refresh()
        known = self.principals.get(principal)
        if known is not None:
            if known.kind != "source":
                raise ValidationError(
                    "principal",
                    f"{principal!r} is registered as a {known.kind}, but the name is the {principal} "
                    "source's: revoke that principal, or ingest with your own token",
                )
            return known
        return await self._register(principal, "source", f"{principal} (source)")

    async def _register(
        self, principal: str, kind: str, name: str, public_key: str | None = None
    ) -> Principal:
        """Record ``principal`` with ``public_key``, else the public half of its key pair
        here (made now if the keystore has none)."""
        if public_key is None:
            public_key = public_key_b64(self.keystore.get(principal) or self.keystore.create(principal))
        await self._record("principal", principal, kind=kind, name=name, public_key=public_key)
        return self.principals[principal]

    async def issue_token(self, principal: str, *, expires: str | datetime | timedelta | None = None) -> str:
        """A new API token for ``principal``; the only time it is shown.  ``expires``:
        ``30d``, ``12h``, an aware datetime or a timedelta; None: it works until revoked."""
        ends: float | None = None
        if expires is not None:
            from .grants import parse_expires  # grants imports this module

            at = datetime.now().astimezone()
            when = parse_expires(expires, at)
            if when <= at:
                raise ValidationError("expires", f"{when.isoformat()} is not in the future")
            ends = when.timestamp()
        await self.refresh()
        p = self.principals.get(principal)
        if p is None or p.revoked:
            raise NotFound(
                f"no principal {principal!r} (add it first: creative-hub principal add {principal})"
            )
        if p.kind == "source":
            raise ValidationError(
                "principal", f"{principal!r} is a source: only the hub's own ingest writes as it"
            )
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        await self._record("token", principal, token_id=token_id, token_mac=self._mac(secret), expires=ends)
        return f"chub_{token_id}_{secret}"

    async def revoke(self, principal: str, token: str | None = None) -> int:
        """Revoke one token (given in full or by its id), or all of a principal's; returns how many."""
        await self.refresh()
        if token is not None:
            m = _TOKEN.match(token)
            token_id = m.group(1) if m else token
            tok = self._tokens.get(token_id)
            if tok is None or tok.principal != principal:
                raise NotFound(f"{principal!r} has no token {token_id!r}")
            if tok.revoked:
                return 0
            await self._record("revoke-token", principal, token_id=token_id)
            return 1
        live = [tid for tid, t in self._tokens.items() if t.principal == principal and not t.revoked]
        for tid in live:
            await self._record("revoke-token", principal, token_id=tid)
        return len(live)

    async def authenticate(self, token: str) -> str:
        """The principal a token belongs to; AccessDenied if unknown or revoked."""
        await self.refresh()  # a revocation by any process counts at once
        m = _TOKEN.match(token or "")
        tok = self._tokens.get(m.group(1)) if m else None
        # Compare even when the id is unknown, so timing says nothing.
        expected = tok.hash if tok else "0" * 64
        given = m.group(2) if m else ""
        ok = hmac.compare_digest(expected, self._mac(given) if tok is None or tok.keyed else _hash(given))
        if tok is None or not ok or tok.revoked or self.principals[tok.principal].revoked:
            raise AccessDenied("invalid or revoked token")
        if tok.expires is not None and time.time() >= tok.expires:
            hint = f"creative-hub principal token {tok.principal}"
            raise AccessDenied(f"token expired (issue a new one: {hint})")
        return tok.principal

    async def add_remote(
        self,
        principal: str,
        public_key: str,
        *,
        kind: str = "person",
        name: str | None = None,
        origin: str = "",
    ) -> Principal:
        """Know a principal of another hub by its public key (federation).  No key
        of ours, no tokens.  A known id with another key is refused."""
        check_principal_id(principal)
        if is_source_principal(principal):
            raise ValidationError(
                "principal",
                f"{principal!r} from {origin or 'a remote hub'} is the name of a source of this hub",
            )
        await self.refresh()
        known = self.principals.get(principal)
        if known is not None:
            if known.public_key != public_key:
                raise ValidationError(
                    "principal", f"{principal!r} from {origin or 'a remote hub'} has another key than ours"
                )
            return known
        kind = kind if kind in ("person", "agent") else "person"
        return await self._register(principal, kind, name or principal, public_key)

    def public_key(self, principal: str) -> str | None:
        p = self.principals.get(principal)
        return p.public_key if p else None

    def is_registered(self, principal: str) -> bool:
        return principal in self.principals
