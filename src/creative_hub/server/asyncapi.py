"""The AsyncAPI 3 document of the hub's topics and event schemas (served at /asyncapi.json).

One channel per shared-hub topic (``creative.<area>``) carrying the messages
of its area's types, and four parametrised channels for every peer's hub
(``peer.{peer}.drafts`` / ``published`` / ``contributions`` / ``feedback``; the
feedback stream also carries the story insight agents' ``creative.narrative.insight``).
A channel's address is its Server-Sent Events path; operations are
``receive`` (subscribe to the stream) and ``send`` (``POST /v1/events``).
Each message is a CloudEvent (structured JSON) whose ``data`` is the type's
payload schema, taken from ``creative_hub.schemas.json_schema()``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from .. import __version__
from ..event import EXTENSIONS
from ..schemas import json_schema
from ..topics import creative as creative_topic

__all__ = ["asyncapi_document", "router"]

router = APIRouter(tags=["schemas"])

PEER_STREAMS = {
    "drafts": "A peer's private drafts: readable by the owner alone",
    "published": "A peer's published work: anyone reads, the owner writes",
    "contributions": "Proposals to a peer's work (anyone signed in) and the owner's decisions",
    "feedback": "Comments and suggestions on a peer's work",
}
PEER_AREAS = {"contributions": ["contributions"], "feedback": ["feedback"]}  # other streams: any area
#: types a stream carries beyond its areas: the insight agents post on the owner's feedback stream
PEER_EXTRA = {"feedback": ["creative.narrative.insight"]}


def _rewrite_refs(node: Any, names: dict[str, str]) -> Any:
    """Point msgspec's local ``#/$defs/X`` references at ``#/components/schemas/<name>``."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
                out[k] = "#/components/schemas/" + names[v[len("#/$defs/") :]]
            else:
                out[k] = _rewrite_refs(v, names)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, names) for v in node]
    return node


def _schemas() -> tuple[dict[str, Any], dict[str, str]]:
    """Component schemas (shared definitions merged), and the payload schema name per type."""
    components: dict[str, Any] = {}
    payload_of: dict[str, str] = {}
    for type_, schema in json_schema().items():
        defs: dict[str, Any] = schema.pop("$defs", {})
        names: dict[str, str] = {}
        for name, d in defs.items():
            # Two types may define the same name (Person); keep one if equal, else qualify it.
            names[name] = name if components.get(name, d) == d else f"{type_}.{name}"
        for name, d in defs.items():
            components[names[name]] = _rewrite_refs(d, names)
        ref = schema.get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and len(schema) <= 2:
            payload_of[type_] = names[ref[len("#/$defs/") :]]  # {"$ref": ..., "title": type}
        else:
            components[type_] = _rewrite_refs(schema, names)
            payload_of[type_] = type_
    return components, payload_of


def _envelope(type_: str, payload: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "description": "Unique; the idempotency key"},
        "source": {"type": "string"},
        "type": {"const": type_},
        "subject": {"type": "string", "description": "The work it is about (the compaction key)"},
        "time": {"type": "string", "format": "date-time"},
        "data": {"$ref": f"#/components/schemas/{payload}"},
    }
    for ext in EXTENSIONS:
        props[ext] = {"type": "string"}
    props["visibility"] = {"enum": ["public", "private"]}
    return {"type": "object", "required": ["specversion", "id", "source", "type"], "properties": props}


def asyncapi_document(host: str = "127.0.0.1:8080") -> dict[str, Any]:
    """The whole document; ``host`` is where the server is reached."""
    schemas, payload_of = _schemas()
    types = sorted(payload_of)
    messages = {
        t: {
            "name": t,
            "title": t,
            "contentType": "application/cloudevents+json",
            "summary": (schemas.get(payload_of[t], {}).get("description") or t).split("\n")[0],
            "payload": _envelope(t, payload_of[t]),
        }
        for t in types
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def add(channel_id: str, address: str, description: str, of: list[str], params: bool = False) -> None:
        refs = {t: {"$ref": f"#/components/messages/{t}"} for t in of}
        channel: dict[str, Any] = {"address": address, "description": description, "messages": refs}
        if params:
            channel["parameters"] = {"peer": {"description": "The principal whose hub it is"}}
        channels[channel_id] = channel
        msg_refs = [{"$ref": f"#/channels/{channel_id}/messages/{t}"} for t in of]
        operations[f"receive.{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Follow {channel_id} live (GET the address; Last-Event-ID resumes)",
            "messages": msg_refs,
        }
        if not channel_id.startswith("creative.system"):
            operations[f"send.{channel_id}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": "Publish with POST /v1/events (the hub routes by type and hub)",
                "messages": msg_refs,
            }

    areas = sorted({t.split(".")[1] for t in types})
    for area in areas:
        of = [t for t in types if t.split(".")[1] == area]
        add(
            creative_topic(area),
            f"/v1/topics/creative.{area}/stream",
            f"The shared hub's {area} events",
            of,
        )
    for stream, description in PEER_STREAMS.items():
        wanted = PEER_AREAS.get(stream)
        of = [t for t in types if (t.split(".")[1] in wanted if wanted else t.split(".")[1] != "system")]
        of += [t for t in PEER_EXTRA.get(stream, []) if t in types and t not in of]
        add(f"peer.{stream}", f"/v1/topics/peer.{{peer}}.{stream}/stream", description, of, params=True)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "creative-hub events",
            "version": __version__,
            "description": (
                "Topics and event schemas of a creative-hub.  Every message is a CloudEvents 1.0 "
                "event in structured JSON mode; `data` follows the schema of the event's `type`."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "hub": {
                "host": host,
                "protocol": "http",
                "description": "Server-Sent Events for receive, REST (POST /v1/events) for send",
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A principal's API token (anonymous reads of public streams when allowed)",
                }
            },
        },
    }


@router.get("/asyncapi.json", response_model=dict[str, Any])
async def asyncapi(request: Request) -> dict[str, Any]:
    """The AsyncAPI 3 document of every topic and event schema."""
    return asyncapi_document(request.headers.get("host", "127.0.0.1:8080"))
