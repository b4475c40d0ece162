"""CloudEvents binary content mode: attributes in headers, data in the body.

The hub stores and serves events in *structured* mode (one JSON object).
Producers that speak *binary* mode -- the CNCF SDKs' ``to_binary``, Knative,
Dapr -- put each attribute in a header and the data alone in the body.  This
module turns such a message into the structured object, for every binding
the CloudEvents spec defines on our transports:

=========  ===========  =======================================================
binding    header       notes
=========  ===========  =======================================================
HTTP       ``ce-<name>`` ``Content-Type`` is ``datacontenttype``
Kafka      ``ce_<name>`` ``content-type`` header; the record key is
                         ``partitionkey`` when no ``ce_partitionkey`` is given
NATS       ``ce-<name>`` ``Content-Type`` header (NATS headers)
=========  ===========  =======================================================

Header values are percent-decoded (the bindings percent-encode what is not
printable ASCII, and ``%`` itself).  In binary mode every attribute is a
string, extensions too.  The data must be JSON (``application/json`` or a
``+json`` type; no content type counts as JSON): other media types are
refused with a message naming ``datacontenttype``, as ``data_base64`` is in
structured mode -- the hub's payloads are typed JSON, checked against the
schema of their type.  What comes out goes through the same checks as any
event (``creative_hub.event.parse_event``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import msgspec

from .errors import ValidationError
from .event import is_json_media

__all__ = ["HTTP_PREFIX", "KAFKA_PREFIX", "NATS_PREFIX", "is_binary", "structured_body", "to_structured"]

HTTP_PREFIX = "ce-"  # CloudEvents HTTP protocol binding 1.0.2
KAFKA_PREFIX = "ce_"  # CloudEvents Kafka protocol binding 1.0.2
NATS_PREFIX = "ce-"  # CloudEvents NATS protocol binding 1.0.1
MAX_ATTRIBUTES = 64  # ce- headers one message may carry

Header = tuple[str, str | bytes | None]


def is_binary(headers: Iterable[Header], prefix: str) -> bool:
    """True if the headers carry a binary-mode event (a ``<prefix>specversion`` header)."""
    wanted = f"{prefix}specversion"
    return any(name.lower() == wanted for name, _ in headers)


def _text(name: str, value: str | bytes | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValidationError(name, f"header value is not UTF-8 (byte {e.start})") from None
    return value


def to_structured(
    headers: Iterable[Header], data: bytes, *, prefix: str, key: str | bytes | None = None
) -> dict[str, Any]:
    """The structured-mode object of a binary-mode message.

    ``prefix`` is the binding's (``HTTP_PREFIX``, ``KAFKA_PREFIX``,
    ``NATS_PREFIX``); ``key`` is a Kafka record's key.  Raises
    ValidationError naming the attribute and the rule.
    """
    attrs: dict[str, Any] = {}
    content_type: str | None = None
    for name, raw in headers:
        lname = name.lower()
        if lname.startswith(prefix):
            attr = lname[len(prefix) :]
            if attr in ("data", "data_base64"):
                raise ValidationError(attr, "in binary mode the data is the body, not a header")
            if len(attrs) >= MAX_ATTRIBUTES:
                raise ValidationError("headers", f"at most {MAX_ATTRIBUTES} {prefix}* headers")
            attrs[attr] = unquote(_text(name, raw))
        elif lname == "content-type":
            content_type = _text(name, raw).strip()
    if "specversion" not in attrs:
        raise ValidationError("specversion", f"binary mode needs a {prefix}specversion header")
    media = content_type or "application/json"
    if content_type:
        attrs["datacontenttype"] = content_type  # as sent, parameters too
    if data:
        if not is_json_media(media):
            raise ValidationError(
                "datacontenttype",
                f"{media!r}: only JSON data is accepted (application/json or a +json type)",
            )
        try:
            attrs["data"] = msgspec.json.decode(data)
        except msgspec.DecodeError as e:
            raise ValidationError("data", f"not valid JSON: {e}") from None
        except UnicodeDecodeError as e:
            raise ValidationError("data", f"not valid UTF-8 at byte {e.start}") from None
        except RecursionError:
            raise ValidationError("data", "JSON nested too deeply") from None
    if key and "partitionkey" not in attrs:
        attrs["partitionkey"] = _text("key", key)
    return attrs


def structured_body(
    headers: Iterable[Header], data: bytes, *, prefix: str, key: str | bytes | None = None
) -> bytes | None:
    """``to_structured`` encoded as the structured-mode JSON body, or None when
    the message is not a valid binary-mode event (the caller keeps the raw body,
    and the hub dead-letters it with the reason)."""
    try:
        return msgspec.json.encode(to_structured(headers, data, prefix=prefix, key=key))
    except ValidationError:
        return None
