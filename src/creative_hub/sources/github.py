"""GitHub: webhooks (``POST /webhooks/github``, signature checked first) and REST polling of a repository.

Webhooks: ``webhook_route(secret)`` is a Starlette ``Route`` the hub server
mounts; ``webhook_app(hub, secret)`` is a whole ASGI app around it (tests,
or a standalone receiver).  The ``X-Hub-Signature-256`` HMAC-SHA256 of the
raw body is checked with ``hmac.compare_digest`` before anything else: no
signature, a wrong one, or only the legacy SHA-1 ``X-Hub-Signature`` is a
401 and nothing is stored.  Both content types GitHub offers are taken:
``application/json``, and ``application/x-www-form-urlencoded`` (the default
for hooks made through the API), whose one ``payload`` field is the same JSON;
the signature is over the body as sent either way, and the JSON inside a form
is bounded like a JSON body (anything else is a 415).  Each ``X-GitHub-Delivery`` is handled once: the GUIDs
handled are kept in the log (``system.webhooks.github``, seen by every
receiver process), so a redelivery or a replayed capture stores nothing and
says ``duplicate_delivery``.  Ids come from GitHub's own ids, so the same
object in two deliveries is stored once too (the response says ``duplicates``).
Everything is written by the ``github`` source principal: the author GitHub
names is a claim of the payload (see ``_github_map``).

    app = Starlette(routes=[webhook_route(secret, principals=Principals({"octocat": "alice"}))])
    app.state.hub = hub

Saved deliveries (``creative-hub ingest github --payload FILE|DIR``,
``github_payloads.PayloadSource``) go through ``delivery_items``, the
receiver's own parsing, so a delivery stored both ways is one set of events.

Polling: ``GithubSource("owner/name")`` reads commits, pull requests with
their reviews, and issues.  Each list is fetched with ``If-None-Match`` (the
ETags of the last run are kept in ``state``), so an unchanged repository costs
304s that do not count against the rate limit.  When the limit is used up
(``X-RateLimit-Remaining: 0``) or GitHub asks (``Retry-After``), it waits up
to ``max_wait`` seconds, or stops with an ItemError that says until when.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

from ..errors import IdConflict, ValidationError
from ..event import Event, encode_event, now
from ..hub import Hub
from ..log import Entry, Log
from ..topics import system as system_topic
from ._fetch import API_LIMITS, FetchLimits, FetchRefused, api_get
from ._github_map import GITHUB, commit_event, issue_event, pull_event, review_event, webhook_events
from .base import Item, ItemError, Principals

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('The GitHub source needs: pip install "creative-hub[sources]"') from e

__all__ = [
    "API_URL",
    "EVENTS",
    "DeliveryRefused",
    "GithubSource",
    "delivery_items",
    "form_payload",
    "sign",
    "verify_signature",
    "webhook_app",
    "webhook_route",
    "webhook_events",
]

API_URL = "https://api.github.com"
EVENTS = (
    "push",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "issues",
    "issue_comment",
    "create",
    "delete",
    "fork",
    "release",
)
MAX_BODY = 25 * 1024 * 1024  # bytes: GitHub caps webhook payloads at 25 MB
DELIVERIES_TOPIC = system_topic("webhooks.github")  # the X-GitHub-Delivery GUIDs handled
JSON, FORM = "application/json", "application/x-www-form-urlencoded"  # the two GitHub sends
_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")  # GitHub sends a GUID
DEFAULT_MAX_WAIT = 60.0  # seconds the poller waits for a rate limit to reset before giving up
PER_PAGE = 100


# -- webhooks ------------------------------------------------------------------
def sign(secret: str | bytes, body: bytes) -> str:
    """``sha256=<hex>``: the X-Hub-Signature-256 value GitHub sends for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True if ``header`` is the SHA-256 signature of ``body``; compared in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


class DeliveryRefused(ValueError):
    """A delivery whose body cannot be used at all; ``status`` is the webhook's answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def delivery_items(name: str, body: bytes, principals: Principals) -> list[Item]:
    """The items of one delivery's body (``X-GitHub-Event: name``): what the webhook
    stores, and what ``creative-hub ingest github --payload`` stores from a saved one."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise DeliveryRefused(400, f"body is not valid JSON: {e}") from None
    except RecursionError:
        raise DeliveryRefused(400, "body is not valid JSON: nested too deeply") from None
    if not isinstance(payload, Mapping):
        raise DeliveryRefused(400, "body must be a JSON object")
    try:
        return webhook_events(name, payload, principals)
    except (KeyError, TypeError, ValueError) as e:
        raise DeliveryRefused(422, f"{name} payload is missing or has a malformed field: {e}") from None


def form_payload(body: bytes) -> bytes:
    """The JSON of a form-encoded delivery (``payload=<JSON, percent-encoded>``)."""
    try:
        fields = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=8,
            errors="strict",
        )
    except ValueError as e:  # non-ASCII bytes, bad escapes or UTF-8, too many fields
        raise DeliveryRefused(400, f"form body: cannot read its payload field ({e})") from None
    values = [v for k, v in fields if k == "payload"]
    if len(values) != 1:
        raise DeliveryRefused(400, f"form body: needs one payload field (the JSON), has {len(values)}")
    return values[0].encode()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Deliveries:
    """The deliveries already handled, read from the log (any process may have handled one)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.position: str | None = None

    async def handled(self, log: Log, delivery: str) -> bool:
        async for r in log.read(DELIVERIES_TOPIC, after=self.position):
            self.seen.add(r.id)
            self.position = r.position
        return delivery in self.seen

    async def record(self, log: Log, delivery: str, event: str) -> None:
        """Once its events are stored (a failed delivery may be redelivered).

        A ``creative.system.webhook_delivery`` CloudEvent like every record on every
        topic (earlier versions wrote bare JSON, still read: only the record id counts)."""
        note = Event(
            id=delivery, source="/hub/webhooks/github", type="creative.system.webhook_delivery",
            subject=f"github:{event}", time=now(), data={"delivery": delivery, "event": event},
            creator="hub", partitionkey="github",
        )  # fmt: skip
        same = hashlib.blake2b(delivery.encode(), digest_size=16).hexdigest()  # a re-record is a duplicate
        await log.append(DELIVERIES_TOPIC, [Entry(delivery, "github", encode_event(note), same, "hub")])
        self.seen.add(delivery)


def webhook_route(
    secret: str | bytes,
    *,
    hub: Hub | None = None,
    principals: Principals | None = None,
    path: str = "/webhooks/github",
) -> Route:
    """A Starlette route for GitHub webhooks; the hub is ``hub`` or ``request.app.state.hub``."""
    if not secret:
        raise ValidationError("secret", "a webhook secret is required (GitHub signs with it)")
    people = principals or Principals()
    deliveries = _Deliveries()
    writers: set[int] = set()  # the hubs the github source principal is known to be registered in

    async def receive(request: Request) -> JSONResponse:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            return _error(413, f"payload over {MAX_BODY} bytes")
        body = await request.body()
        # Nothing is parsed or trusted before the signature checks out.
        sig = request.headers.get("x-hub-signature-256")
        if sig is None:
            legacy = "x-hub-signature" in request.headers
            return _error(
                401,
                "X-Hub-Signature-256 required" + (" (SHA-1 signatures are not accepted)" if legacy else ""),
            )
        if not verify_signature(secret, body, sig):
            return _error(401, "X-Hub-Signature-256 does not match the body")
        name = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery", "")
        if name == "ping":
            return JSONResponse({"ok": True, "zen": "pong"})
        if name not in EVENTS:
            return JSONResponse({"ignored": f"event {name!r} is not ingested"}, status_code=202)
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in (JSON, FORM):
            return _error(415, f"Content-Type {ctype or 'none'!r}: set the webhook's content type to {JSON}")
        if not _DELIVERY.match(delivery):
            return _error(400, "X-GitHub-Delivery: required, a GUID (letters, digits and '-')")
        target = hub or getattr(request.app.state, "hub", None)
        if target is None:
            return _error(503, "no hub attached to this app (app.state.hub)")
        if await deliveries.handled(target.log, delivery):
            return JSONResponse(
                {"delivery": delivery, "event": name, "duplicate_delivery": True, "stored": 0},
                status_code=200,
            )
        try:
            items = delivery_items(name, form_payload(body) if ctype == FORM else body, people)
        except DeliveryRefused as e:
            return _error(e.status, str(e))
        errors = [str(i) for i in items if isinstance(i, ItemError)]
        events = [i for i in items if not isinstance(i, ItemError)]
        if events and id(target) not in writers and target.trusted and target.keystore is not None:
            await target.registry.ensure_source(GITHUB)  # so what it writes is signed
            writers.add(id(target))
        try:
            receipts = await target.publish(events) if events else []
        except ValidationError as e:
            return _error(422, str(e))
        except IdConflict as e:
            return _error(409, str(e))
        await deliveries.record(target.log, delivery, name)
        return JSONResponse(
            {
                "delivery": delivery,
                "event": name,
                "stored": sum(1 for r in receipts if not r.duplicate),
                "duplicates": sum(1 for r in receipts if r.duplicate),
                "ids": [r.id for r in receipts],
                "skipped": errors,
            },
            status_code=200,
        )

    return Route(path, receive, methods=["POST"])


def webhook_app(hub: Hub, secret: str | bytes, *, principals: Principals | None = None) -> Starlette:
    """An ASGI app serving only ``POST /webhooks/github`` into ``hub``."""
    app = Starlette(routes=[webhook_route(secret, principals=principals)])
    app.state.hub = hub
    return app


# -- REST polling --------------------------------------------------------------
class RateLimited(Exception):
    """The API will not answer before ``until`` (epoch seconds)."""

    def __init__(self, until: float) -> None:
        self.until = until
        super().__init__(f"rate limited until {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(until))} UTC")


class GithubSource:
    """Commits, pull requests (with reviews) and issues of one repository, by REST polling."""

    name = "github"

    def __init__(
        self,
        repo: str,
        *,
        token: str | None = None,
        api_url: str = API_URL,
        state: Path | None = None,
        principals: Principals | None = None,
        client: httpx.AsyncClient | None = None,
        max_pages: int = 10,
        max_wait: float = DEFAULT_MAX_WAIT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        limits: FetchLimits = API_LIMITS,
    ) -> None:
        if not re.match(r"^[\w.-]+/[\w.-]+$", repo):
            raise ValidationError("repo", f"{repo!r} is not owner/name")
        self.repo = repo
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.state = state
        self.principals = principals or Principals()
        self.client = client
        self.max_pages = max_pages
        self.max_wait = max_wait
        self.sleep = sleep
        self.limits = limits  #: each answer capped in size and time (the API's address is the person's)
        self.requests = 0  #: API calls made (304s included)
        self.not_modified = 0  #: lists that had not changed since the last run
        self._etags: dict[str, str] = self._load()
        self._new_etags: dict[str, str] = {}

    def _load(self) -> dict[str, str]:
        if self.state is None or not self.state.exists():
            return {}
        try:
            data = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return {}  # a broken state file only costs full responses
        return (
            {k: v for k, v in data.get(self.repo, {}).items() if isinstance(v, str)}
            if isinstance(data, dict)
            else {}
        )

    def checkpoint(self) -> None:
        """Keep the ETags of the lists read (with ``state``), for the next run's If-None-Match."""
        if self.state is None or not self._new_etags:
            return
        try:
            data = json.loads(self.state.read_text()) if self.state.exists() else {}
        except (OSError, ValueError):
            data = {}
        data = data if isinstance(data, dict) else {}
        data[self.repo] = {**self._etags, **self._new_etags}
        tmp = self.state.with_name(self.state.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.state)

    async def _get(self, client: httpx.AsyncClient, url: str, conditional: bool) -> httpx.Response | None:
        """One GET with rate-limit handling; None for 304 Not Modified."""
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if conditional and url in self._etags:
            headers["If-None-Match"] = self._etags[url]
        for _ in range(3):
            self.requests += 1
            r = await api_get(client, url, self.limits, headers=headers)
            if r.status_code == 304:
                self.not_modified += 1
                return None
            wait = self._wait(r)
            if wait is None:
                if conditional and r.status_code == 200 and r.headers.get("etag"):
                    self._new_etags[url] = r.headers["etag"]
                return r
            if wait > self.max_wait:
                raise RateLimited(time.time() + wait)
            await self.sleep(wait)
        raise RateLimited(time.time() + self.max_wait)

    def _wait(self, r: httpx.Response) -> float | None:
        """Seconds to wait before retrying ``r``'s request, or None if it is an answer."""
        if r.status_code not in (403, 429):
            return None
        if r.headers.get("retry-after", "").isdigit():
            return float(r.headers["retry-after"])
        if r.headers.get("x-ratelimit-remaining") == "0" and r.headers.get("x-ratelimit-reset", "").isdigit():
            return max(0.0, float(r.headers["x-ratelimit-reset"]) - time.time()) + 1.0
        return None  # a plain 403 (no access) is an answer

    async def _list(self, client: httpx.AsyncClient, path: str, params: str) -> AsyncIterator[Any]:
        """Items of a paged list; nothing if its first page is unchanged (304)."""
        query = f"{params}&per_page={PER_PAGE}" if params else f"per_page={PER_PAGE}"
        url: str | None = f"{self.api_url}{path}?{query}"
        first = True
        for _ in range(self.max_pages):
            if url is None:
                return
            r = await self._get(client, url, conditional=first)
            if r is None:
                return
            if r.status_code != 200:
                raise ValidationError("github", f"GET {url}: HTTP {r.status_code} {r.text[:200]}")
            try:
                items = r.json()
            except ValueError as e:
                raise ValidationError("github", f"GET {url}: not JSON ({e})") from None
            for item in items if isinstance(items, list) else []:
                yield item
            url = r.links.get("next", {}).get("url")
            first = False

    async def iter_items(self) -> AsyncIterator[Item]:
        """Commits, then pull requests each followed by its reviews, then issues."""
        client = self.client or httpx.AsyncClient(timeout=60, follow_redirects=True)
        base = f"/repos/{self.repo}"
        try:
            steps: list[tuple[str, str]] = [("commits", ""), ("pulls", "state=all"), ("issues", "state=all")]
            for kind, params in steps:
                try:
                    async for obj in self._list(client, f"{base}/{kind}", params):
                        if kind == "commits":
                            yield commit_event(self.repo, obj, self.principals)
                        elif kind == "issues":
                            if not obj.get("pull_request"):  # PRs are listed as issues too
                                yield issue_event(self.repo, obj, None, self.principals)
                        else:
                            yield pull_event(self.repo, obj, None, self.principals)
                            async for review in self._list(
                                client, f"{base}/pulls/{obj['number']}/reviews", ""
                            ):
                                yield review_event(self.repo, obj["number"], review, self.principals)
                except RateLimited as e:
                    yield ItemError(f"github:{self.repo}/{kind}", f"{e}; run again after that")
                    return
                except (ValidationError, FetchRefused, httpx.HTTPError) as e:
                    yield ItemError(f"github:{self.repo}/{kind}", str(e))
        finally:
            if self.client is None:
                await client.aclose()
