"""MCP servers as a source: call configured tools and read resources, publish what they return.

Any MCP server the official SDK (``mcp`` 2.x) can reach: a command over
stdio, a streamable-HTTP URL, or a server object in-process (tests).  Each
call is configured; its result becomes metadata events:

- with ``type`` (a ``creative.metadata.*`` type) and ``items`` (the key of a
  list in the tool's structured result), one event per item, its fields
  mapped onto the payload and the rest kept in ``extra``;
- otherwise one ``creative.metadata.webpage`` record of the call: ``url`` is
  ``mcp://<server>/tools/<tool>`` (or the resource URI), the text in
  ``description``, the structured result in ``extra["result"]``.

Ids come from the server name, the call, and the item's own id (``id``,
``doi``, ``url``...) or the content's hash, so a re-run that returns the same
things adds nothing.  Events are written by ``mcp`` (or the person who ran the
ingest); an ``owner`` in the config is a claim, kept in ``data.extra.owner``.

    McpSource(StdioServerParameters(command="python", args=["server.py"]), name="papers",
              calls=[McpCall(tool="search", arguments={"q": "lattice"}, type="creative.metadata.paper",
                             items="papers")])
    McpSource.from_config(Path("mcp.yaml"))
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..errors import ValidationError
from ..origins import source_id
from ..schemas import PAYLOADS, Webpage
from .base import (
    Item,
    ItemError,
    Principals,
    arxiv_link,
    doi_link,
    find_refs,
    make_event,
    slug,
    with_mapped,
)

try:
    import mcp
    import yaml
    from mcp import StdioServerParameters
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('The MCP source needs: pip install "creative-hub[sources]"') from e

__all__ = ["MCP", "McpCall", "McpSource"]

MCP = "mcp"  # the source principal that writes (and signs) what MCP servers return

MAX_TEXT = 4000  # characters of a result's text kept in a record's description
_KEYS = ("id", "doi", "arxiv_id", "url", "uri", "message_id", "path", "key")


@dataclass(frozen=True)
class McpCall:
    """One thing to ask the server: a tool (with arguments) or a resource."""

    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    resource: str | None = None
    type: str | None = None  #: a creative.metadata.* type for the items
    items: str | None = None  #: key of the list in the structured result

    def __post_init__(self) -> None:
        if (self.tool is None) == (self.resource is None):
            raise ValidationError("calls", "each call names exactly one of tool or resource")
        if self.type is not None and (
            self.type not in PAYLOADS or not self.type.startswith("creative.metadata.")
        ):
            raise ValidationError("calls.type", f"{self.type!r} is not a creative.metadata.* type")

    @property
    def label(self) -> str:
        return f"tools/{self.tool}" if self.tool else str(self.resource)


class McpSource:
    """Results of configured calls to one MCP server."""

    def __init__(
        self,
        server: Any,
        *,
        name: str,
        calls: Sequence[McpCall],
        owner: str | None = None,
        principals: Principals | None = None,
    ) -> None:
        self.server = server  # StdioServerParameters, a URL (streamable HTTP), or a server object
        self.server_name = slug(name)
        self.name = f"mcp:{self.server_name}"
        self.calls = list(calls)
        self.principals = principals or Principals()
        # Whose results these are is the config's claim, recorded; the writer is the source.
        self.claims: dict[str, Any] = with_mapped({"owner": owner}, self.principals, owner) if owner else {}

    @classmethod
    def from_config(cls, path: Path, *, principals: Principals | None = None) -> McpSource:
        """From YAML/JSON: ``name``, ``server`` ({command, args, env} or {url}), ``calls``, ``owner``."""
        try:
            raw = path.read_text()
            cfg = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise ValidationError("config", f"{path}: cannot read ({e})") from None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("server"), dict) or not cfg.get("calls"):
            raise ValidationError("config", f"{path}: needs server ({{command, args}} or {{url}}) and calls")
        srv = cfg["server"]
        server: Any
        if srv.get("url"):
            server = str(srv["url"])
        elif srv.get("command"):
            server = StdioServerParameters(
                command=srv["command"],
                args=[str(a) for a in srv.get("args", [])],
                env=srv.get("env"),
                cwd=srv.get("cwd"),
            )
        else:
            raise ValidationError("config.server", "give command (stdio) or url (streamable HTTP)")
        try:
            calls = [McpCall(**c) for c in cfg["calls"]]
        except TypeError as e:
            raise ValidationError("config.calls", str(e)) from None
        name = cfg.get("name") or srv.get("command") or srv.get("url")
        return cls(server, name=str(name), calls=calls, owner=cfg.get("owner"), principals=principals)

    async def iter_items(self) -> AsyncIterator[Item]:
        """Each call's events, in configured order; a failing call is one ItemError."""
        try:
            client = mcp.Client(self.server, read_timeout_seconds=120)
            async with client:
                for call in self.calls:
                    ref = f"mcp://{self.server_name}/{call.label}"
                    try:
                        items = await self._call(client, call, ref)
                    except Exception as e:  # a tool's failure is that call's, not the run's
                        items = [ItemError(ref, f"call failed: {type(e).__name__}: {e}")]
                    for item in items:
                        yield item
        except (OSError, mcp.MCPError) as e:
            raise ValidationError("mcp", f"{self.server_name}: cannot talk to the server ({e})") from None

    async def _call(self, client: Any, call: McpCall, ref: str) -> list[Item]:
        if call.tool is not None:
            result = await client.call_tool(call.tool, call.arguments)
            if getattr(result, "is_error", False):
                return [ItemError(ref, f"tool error: {_text(result.content)[:300]}")]
            structured = getattr(result, "structured_content", None)
            text = _text(getattr(result, "content", []))
            if structured is None and call.items:
                # Servers without an output schema send the JSON as text.
                try:
                    structured = json.loads(text)
                except ValueError:
                    structured = None
        else:
            result = await client.read_resource(call.resource)
            structured = None
            text = _text(result.contents)
            mime = next((getattr(c, "mime_type", None) for c in result.contents), None)
            if mime == "application/json":
                try:
                    structured = json.loads(text)
                except ValueError:
                    structured = None
        if call.type and call.items:
            listed = structured.get(call.items) if isinstance(structured, Mapping) else None
            if not isinstance(listed, list):
                return [ItemError(ref, f"result has no list {call.items!r} to read items from")]
            return [self._typed(call, ref, i, obj) for i, obj in enumerate(listed)]
        return [self._record(call, ref, text, structured)]

    def _typed(self, call: McpCall, ref: str, index: int, obj: Any) -> Item:
        assert call.type is not None
        where = f"{ref}#{index}"
        if not isinstance(obj, Mapping):
            return ItemError(where, f"item is not an object: {obj!r:.80}")
        schema = PAYLOADS[call.type]
        known = {f.name for f in msgspec.structs.fields(schema)}
        fields = {k: v for k, v in obj.items() if k in known and k != "extra"}
        rest = {k: v for k, v in obj.items() if k not in known}
        links = []
        if isinstance(obj.get("doi"), str):
            links.append(doi_link("same-as", obj["doi"]))
        if isinstance(obj.get("arxiv_id"), str):
            links.append(arxiv_link("same-as", obj["arxiv_id"]))
        extra = {
            **rest,
            "mcp": {"server": self.server_name, "call": call.label},
            **self.claims,
            **({"links": links} if links else {}),
        }
        try:
            data = msgspec.convert({**fields, "extra": extra}, schema)
        except msgspec.ValidationError as e:
            return ItemError(where, f"item does not fit {call.type}: {e}")
        key = next((str(obj[k]) for k in _KEYS if obj.get(k)), None) or _hash(obj)
        return make_event(
            call.type,
            id=source_id("mcp", self.server_name, call.label, key),
            source=self.name,
            subject=key,
            data=data,
            creator=MCP,
        )

    def _record(self, call: McpCall, ref: str, text: str, structured: Any) -> Item:
        args = json.dumps(call.arguments, sort_keys=True)
        extra: dict[str, Any] = {"arguments": call.arguments} if call.arguments else {}
        extra.update(self.claims)
        if structured is not None:
            extra["result"] = structured
        links = find_refs(text)
        if links:
            extra["links"] = links
        data = Webpage(
            url=call.resource or ref,
            title=call.tool or call.resource,
            description=text[:MAX_TEXT] or None,
            site_name=self.server_name,
            extra=extra,
        )
        content = _hash({"text": text, "result": structured})
        return make_event(
            "creative.metadata.webpage",
            id=source_id("mcp", self.server_name, call.label, args, content),
            source=self.name,
            subject=call.resource or ref,
            data=data,
            creator=MCP,
        )

    def checkpoint(self) -> None:
        """Stateless: ids make re-runs safe."""


def _text(contents: Sequence[Any]) -> str:
    return "\n".join(t for c in contents if isinstance(t := getattr(c, "text", None), str))


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
