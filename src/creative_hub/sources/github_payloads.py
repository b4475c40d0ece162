"""Saved GitHub webhook deliveries as a source: ``creative-hub ingest github --payload FILE|DIR``.

Each file is one delivery, stored exactly as the webhook would store it
(``github.delivery_items``, the receiver's own code path, with its size cap):

- a raw body (``push.json``), its event name from ``--event`` or from a
  headers file beside it (``push.json.headers`` or ``push.headers``: the
  request's ``X-GitHub-Event: push`` line, or a JSON object of headers);
- a form-encoded body as sent (``payload=...``, the webhook's other content type);
- or a delivery as GitHub's API returns it
  (``GET /repos/{owner}/{repo}/hooks/{id}/deliveries/{delivery}``: an object
  with ``request.headers`` and ``request.payload``), which names its event.

A directory means every ``*.json`` file under it, in path order; only regular
files are read (no links, no devices).

    PayloadSource([Path("deliveries/")])
    PayloadSource([Path("push.json")], event="push")
"""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .base import Item, ItemError, Principals
from .github import EVENTS, MAX_BODY, DeliveryRefused, delivery_items, form_payload

__all__ = ["PayloadSource"]


def _read(path: Path) -> bytes:
    """A regular file's bytes, at most MAX_BODY (what GitHub sends at most); OSError/ValueError else."""
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file (a link, a device or a pipe)")
    with path.open("rb") as f:
        raw = f.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ValueError(f"over {MAX_BODY} bytes, larger than any webhook delivery")
    return raw


def _header_event(text: str) -> str | None:
    """``X-GitHub-Event`` from HTTP header lines or a JSON object of headers."""
    try:
        obj: Any = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, Mapping):
        found = {str(k).lower(): v for k, v in obj.items()}.get("x-github-event")
        return str(found) if found else None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "x-github-event":
            return value.strip()
    return None


class PayloadSource:
    """Saved webhook deliveries (files, or folders of them) as the webhook would store them."""

    name = "github"

    def __init__(
        self, paths: Sequence[Path], *, event: str | None = None, principals: Principals | None = None
    ) -> None:
        if event is not None and event not in EVENTS:
            raise ValidationError("event", f"{event!r} is not one of {', '.join(EVENTS)}")
        self.paths = [Path(p) for p in paths]
        self.event = event
        self.principals = principals or Principals()

    def _files(self) -> Iterator[Path]:
        for path in self.paths:
            if path.is_dir() and not path.is_symlink():
                yield from sorted(p for p in path.rglob("*.json") if p.is_file() and not p.is_symlink())
            else:
                yield path

    def _event_name(self, path: Path) -> str | None:
        if self.event is not None:
            return self.event
        for beside in (path.with_name(path.name + ".headers"), path.with_suffix(".headers")):
            try:
                return _header_event(_read(beside).decode("utf-8", "replace"))
            except (OSError, ValueError):
                continue
        return None

    def _items(self, path: Path) -> list[Item]:
        ref = str(path)
        try:
            body = _read(path)
        except OSError as e:
            return [ItemError(ref, f"cannot read: {e.strerror or e}")]
        except ValueError as e:
            return [ItemError(ref, str(e))]
        name = self._event_name(path)
        if body.startswith(b"payload="):
            try:
                body = form_payload(body)
            except DeliveryRefused as e:
                return [ItemError(ref, str(e))]
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            obj = None  # delivery_items says why, as the webhook would
        request = obj.get("request") if isinstance(obj, Mapping) else None
        if isinstance(request, Mapping) and isinstance(request.get("payload"), Mapping):
            # GitHub's delivery API: the headers name the event.
            name = self.event or _header_event(json.dumps(request.get("headers") or {}))
            body = json.dumps(request["payload"]).encode()
        if not name:
            return [ItemError(ref, "no event name: give --event or a headers file with X-GitHub-Event")]
        if name not in EVENTS:
            return [ItemError(ref, f"event {name!r} is not ingested")]
        try:
            items = delivery_items(name, body, self.principals)
        except DeliveryRefused as e:
            return [ItemError(ref, str(e))]
        return [ItemError(f"{ref} {i.ref}", i.reason) if isinstance(i, ItemError) else i for i in items]

    async def iter_items(self) -> AsyncIterator[Item]:
        """Every delivery's events, file by file."""
        for path in self._files():
            for item in self._items(path):
                yield item

    def checkpoint(self) -> None:
        """Stateless: GitHub's ids make re-runs safe."""
