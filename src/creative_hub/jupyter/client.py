"""A small synchronous client of the hub's HTTP API, for the notebook magics.

Why HTTP and not the Python ``Hub``: a kernel is a separate process from
the running hub, often on another machine; the API proves who the caller
is with a token (the magics act as that principal under the hub's access
rules, where an embedded ``Hub`` would be trusted and could read anyone's
drafts); and it leaves the log to the one process that owns it (a SQLite
file opened by a kernel and a server at once is two writers).  Synchronous
httpx, because a cell runs inside ipykernel's own event loop, where
``asyncio.run`` is not allowed.

    c = HubClient("http://127.0.0.1:8080", token=os.environ["CREATIVE_HUB_TOKEN"])
    c.publish({"type": "creative.feedback.comment", "data": {...}})
"""

from __future__ import annotations

import collections
import json
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["DEFAULT_URL", "HubClient", "HubHTTPError"]

DEFAULT_URL = "http://127.0.0.1:8080"  # `creative-hub up`'s default
PAGE = 1000  # the API's largest page
MAX_SCAN = 100_000  # events a magic reads from one topic (an outline, a tail), at most


class HubHTTPError(Exception):
    """The hub answered with a problem (or not at all); the message says which and why."""


class HubClient:
    """The routes the magics use; every error becomes one HubHTTPError line."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __repr__(self) -> str:  # never the token
        return f"HubClient({self.url!r})"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise HubHTTPError(f"{self.url}: cannot reach the hub ({type(e).__name__}: {e})") from None
        if r.status_code >= 400:
            try:
                body = r.json()
                detail = body.get("detail") or body.get("title") or r.text
            except ValueError:
                detail = r.text[:300]
            raise HubHTTPError(f"{method} {path}: {r.status_code} {detail}")
        return r.json() if r.content else None

    # -- who and what ----------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """``{"principal": ..., "authenticated": ...}``."""
        out: dict[str, Any] = self._call("GET", "/v1/me")
        return out

    def topics(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/v1/topics")
        return out

    def get(self, event_id: str) -> dict[str, Any]:
        """One stored event: ``{topic, position, time_ms, event}``."""
        out: dict[str, Any] = self._call("GET", f"/v1/events/{quote(event_id, safe='')}")
        return out

    def lineage(self, event_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", f"/v1/lineage/{quote(event_id, safe='')}")
        return out

    # -- writing ---------------------------------------------------------------
    def publish(self, event: dict[str, Any]) -> dict[str, Any]:
        """Publish one event; its receipt ``{id, topic, position, duplicate}``."""
        (receipt,) = self._call(
            "POST", "/v1/events", content=json.dumps(event), headers={"Content-Type": "application/json"}
        )
        out: dict[str, Any] = receipt
        return out

    def draft(self, me: str, type: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
        """A private draft in ``me``'s own hub."""
        body = {"type": type, "subject": subject, "data": data}
        out: dict[str, Any] = self._call("POST", f"/v1/peers/{quote(me, safe='')}/drafts", json=body)
        return out

    def revise(self, draft_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """A new revision of one of my drafts (fields of its data replaced)."""
        path = f"/v1/drafts/{quote(draft_id, safe='')}/revisions"
        out: dict[str, Any] = self._call("POST", path, json={"data": changes})
        return out

    def publish_draft(self, draft_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", f"/v1/drafts/{quote(draft_id, safe='')}/publish")
        return out

    # -- reading ---------------------------------------------------------------
    def events(self, topic: str, *, limit: int = MAX_SCAN) -> list[dict[str, Any]]:
        """A topic's stored events in log order (the first ``limit``), page by page."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        while len(out) < limit:
            params: dict[str, Any] = {"limit": min(PAGE, limit - len(out))}
            if after is not None:
                params["after"] = after
            page = self._call("GET", f"/v1/topics/{quote(topic, safe='')}/events", params=params)
            out.extend(page["events"])
            after = page.get("next")
            if not after:
                break
        return out

    def tail(self, topic: str, n: int) -> list[dict[str, Any]]:
        """The last ``n`` stored events of ``topic``, oldest first."""
        window: collections.deque[dict[str, Any]] = collections.deque(maxlen=max(n, 0))
        after: str | None = None
        seen = 0
        while seen < MAX_SCAN:
            params: dict[str, Any] = {"limit": PAGE}
            if after is not None:
                params["after"] = after
            page = self._call("GET", f"/v1/topics/{quote(topic, safe='')}/events", params=params)
            window.extend(page["events"])
            seen += len(page["events"])
            after = page.get("next")
            if not after:
                break
        return list(window)
