"""An OpenAI-compatible chat-completions client (httpx), offline unless configured.

Works with any endpoint that speaks ``POST {base_url}/chat/completions``:
OpenAI, Ollama (``http://127.0.0.1:11434/v1``), vLLM, llama.cpp's server,
LM Studio, ...  Nothing touches the network unless a base URL is set::

    config = LLMConfig.from_env()          # CREATIVE_HUB_LLM_BASE_URL, _MODEL, _API_KEY
    if config.configured:
        async with LLMClient(config) as llm:
            reply = await llm.chat([{"role": "user", "content": "Summarise: ..."}],
                                   schema={"type": "object", "properties": {"summary": {"type": "string"}}})
            reply.data["summary"], reply.usage.prompt_tokens, reply.usage.cost

* **Structured output**: ``schema=`` sends ``response_format`` of type
  ``json_schema`` (strict); if the server refuses that parameter (a 400 that
  names it), the client asks for JSON in the prompt instead, remembers, and
  checks the reply parses either way.
* **Retries**: 429 waits as the ``Retry-After`` header says (seconds or an
  HTTP date, capped); 5xx, timeouts and refused connections back off
  exponentially (``creative_hub.log.Backoff``).  Other 4xx are not
  retried.
* **Accounting**: every reply has a ``Usage`` (model, provider, tokens and
  cost from the configured prices); the agent runtime puts it in
  ``data.extra["llm"]`` of what the agent publishes.

Errors::

    LLMError               a call that did not give a usable reply
    ├── LLMOffline         no base URL configured (no call was made)
    ├── LLMUnavailable     timeouts / 5xx / 429 / connection errors after every retry
    └── LLMBadResponse     the reply was not JSON, or not the JSON asked for
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from ..errors import HubError
from ..log import Backoff

__all__ = [
    "ChatReply",
    "LLMBadResponse",
    "LLMClient",
    "LLMConfig",
    "LLMError",
    "LLMOffline",
    "LLMUnavailable",
    "Usage",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 60.0  # seconds for one HTTP call (the whole reply, not streamed)
DEFAULT_MAX_RETRIES = 3  # retries after the first try
MAX_RETRY_AFTER = 120.0  # seconds; a longer Retry-After is capped (and logged)
ENV_PREFIX = "CREATIVE_HUB_LLM_"


class LLMError(HubError):
    """An LLM call that gave no usable reply."""


class LLMOffline(LLMError):
    """No LLM configured: the caller should use its offline path."""


class LLMUnavailable(LLMError):
    """The endpoint kept failing (timeouts, 5xx, 429, refused) past every retry."""


class LLMBadResponse(LLMError):
    """The reply was malformed: not JSON, no choices, or content not the JSON asked for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMConfig:
    """Where the model is and how to call it.

    LLMConfig()                                               # offline: no calls at all
    LLMConfig(base_url="http://127.0.0.1:11434/v1", model="llama3.2")   # Ollama
    LLMConfig(base_url="https://api.openai.com/v1", model="gpt-4o-mini", api_key="sk-...",
              prompt_price=0.15, completion_price=0.60)       # USD per million tokens
    """

    base_url: str | None = None
    model: str = DEFAULT_MODEL
    api_key: str | None = None
    provider: str | None = None  #: a label for accounting; default: the host name
    timeout: float = DEFAULT_TIMEOUT  #: seconds
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=20.0))
    max_retry_after: float = MAX_RETRY_AFTER  #: seconds
    prompt_price: float | None = None  #: per million prompt tokens
    completion_price: float | None = None  #: per million completion tokens
    structured: bool = True  #: try response_format json_schema first
    #: how to ask for a schema: OpenAI's ``json_schema``, or ``json_object`` with a ``schema``
    #: (llama.cpp's server, which constrains the reply with a grammar made from it)
    schema_format: str = "json_schema"
    #: extra body fields for every call (a local server's ``repeat_penalty``); the call's own win
    options: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        key = "***" if self.api_key else None
        return f"LLMConfig(base_url={self.base_url!r}, model={self.model!r}, api_key={key!r})"

    @property
    def configured(self) -> bool:
        return bool(self.base_url)

    @property
    def provider_name(self) -> str:
        if self.provider:
            return self.provider
        host = urlsplit(self.base_url or "").hostname or "offline"
        return "openai" if host.endswith("openai.com") else host

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMConfig:
        """``CREATIVE_HUB_LLM_{BASE_URL,MODEL,API_KEY,PROVIDER,TIMEOUT,PROMPT_PRICE,COMPLETION_PRICE}``;
        ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` as fallbacks.  No base URL: offline.
        ``CREATIVE_HUB_LLM_OPTIONS``: a JSON object of extra body fields (``{"repeat_penalty": 1.3}``);
        ``CREATIVE_HUB_LLM_SCHEMA_FORMAT``: ``json_schema`` (OpenAI) or ``json_object`` (llama.cpp)."""
        e = os.environ if env is None else env

        def num(name: str) -> float | None:
            raw = e.get(ENV_PREFIX + name)
            return float(raw) if raw else None

        return cls(
            base_url=e.get(ENV_PREFIX + "BASE_URL") or e.get("OPENAI_BASE_URL") or None,
            model=e.get(ENV_PREFIX + "MODEL") or DEFAULT_MODEL,
            api_key=e.get(ENV_PREFIX + "API_KEY") or e.get("OPENAI_API_KEY") or None,
            provider=e.get(ENV_PREFIX + "PROVIDER") or None,
            timeout=num("TIMEOUT") or DEFAULT_TIMEOUT,
            prompt_price=num("PROMPT_PRICE"),
            completion_price=num("COMPLETION_PRICE"),
            options=_options(e.get(ENV_PREFIX + "OPTIONS")),
            # llama.cpp's server (``creative-hub model serve``: provider local) takes json_object + schema
            schema_format=e.get(ENV_PREFIX + "SCHEMA_FORMAT")
            or ("json_object" if e.get(ENV_PREFIX + "PROVIDER") == "local" else "json_schema"),
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """What one call cost."""

    model: str
    provider: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  #: in the currency of the configured prices; None without prices

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
        }


@dataclass(frozen=True, slots=True)
class ChatReply:
    """A completion: its text, the parsed JSON (when a schema was asked for), its usage."""

    content: str
    usage: Usage
    data: Any = None
    finish_reason: str | None = None


class LLMClient:
    """Chat completions against one OpenAI-compatible endpoint.

    LLMClient(LLMConfig.from_env())
    LLMClient(config, transport=httpx.MockTransport(fn))    # tests
    """

    def __init__(self, config: LLMConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._structured = config.structured
        self.calls = 0  #: HTTP requests made (retries included)
        self.usage: list[Usage] = []  #: every successful call's usage, in order

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"LLMClient({self.config!r})"

    @property
    def configured(self) -> bool:
        return self.config.configured

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Accept": "application/json"}
            if self.config.api_key:
                headers["Authorization"] = f"Bearer {self.config.api_key}"
            self._client = httpx.AsyncClient(
                base_url=(self.config.base_url or "").rstrip("/") + "/",
                headers=headers,
                timeout=self.config.timeout,
                transport=self._transport,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "reply",
        temperature: float | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
    ) -> ChatReply:
        """One completion.  With ``schema``, ``reply.data`` is the parsed JSON object.

        Raises LLMOffline when not configured (no call is made), LLMUnavailable
        after the retries, LLMBadResponse for a reply that is not what was asked.
        """
        if not self.configured:
            raise LLMOffline("no LLM configured (set CREATIVE_HUB_LLM_BASE_URL)")
        body: dict[str, Any] = {
            **self.config.options,
            "model": model or self.config.model,
            "messages": [dict(m) for m in messages],
        }
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if schema is not None:
            if self._structured and self.config.schema_format == "json_object":
                body["response_format"] = {"type": "json_object", "schema": dict(schema)}
            elif self._structured:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": dict(schema), "strict": True},
                }
            else:
                body["messages"] = _with_json_instruction(body["messages"], schema)
        try:
            raw = await self._post(body)
        except _StructuredRefused:
            # The server does not know response_format: ask in words, remember.
            logger.info(
                "%s does not take response_format; asking for JSON in the prompt", self.config.base_url
            )
            self._structured = False
            body.pop("response_format", None)
            body["messages"] = _with_json_instruction(body["messages"], schema or {})
            raw = await self._post(body)
        return self._reply(raw, body["model"], schema is not None)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries; the decoded JSON object of a 2xx reply."""
        failures = 0
        while True:
            wait: float | None
            self.calls += 1
            try:
                resp = await self._http().post("chat/completions", json=body)
            except httpx.TimeoutException as e:
                problem, wait = f"timed out after {self.config.timeout}s ({type(e).__name__})", None
            except httpx.TransportError as e:
                problem, wait = f"cannot reach it ({type(e).__name__}: {e})", None
            else:
                if resp.status_code < 300:
                    return _decode_json(resp)
                problem = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code == 429:
                    wait = _retry_after(resp.headers.get("retry-after"), self.config.max_retry_after)
                elif resp.status_code >= 500:
                    wait = None
                elif resp.status_code == 400 and "response_format" in body and "response_format" in resp.text:
                    raise _StructuredRefused
                else:
                    raise LLMError(f"{self.config.base_url}: {problem}")
            if failures >= self.config.max_retries:
                raise LLMUnavailable(f"{self.config.base_url}: {problem} (after {failures + 1} tries)")
            delay = wait if wait is not None else self.config.backoff.compute(failures)
            failures += 1
            logger.warning("LLM call failed (%s); retry %d in %.2fs", problem, failures, delay)
            await asyncio.sleep(delay)

    def _reply(self, raw: dict[str, Any], model: str, want_json: bool) -> ChatReply:
        try:
            choice = raw["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMBadResponse(f"no choices[0].message in the reply: {str(raw)[:300]}") from None
        if not isinstance(content, str):
            raise LLMBadResponse(f"message content is {type(content).__name__}, not text")
        found = raw.get("usage")
        usage_raw: dict[str, Any] = found if isinstance(found, dict) else {}
        prompt = int(usage_raw.get("prompt_tokens") or 0)
        completion = int(usage_raw.get("completion_tokens") or 0)
        usage = Usage(
            model=str(raw.get("model") or model),
            provider=self.config.provider_name,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=self._cost(prompt, completion),
        )
        self.usage.append(usage)
        data = None
        if want_json:
            try:
                data = msgspec.json.decode(_strip_fence(content))
            except msgspec.DecodeError as e:
                try:
                    # Raw control characters inside strings: llama.cpp's JSON grammar lets a
                    # newline through; the JSON is otherwise whole.
                    data = json.loads(_strip_fence(content), strict=False)
                except ValueError:
                    raise LLMBadResponse(f"asked for JSON, got: {content[:200]!r} ({e})") from None
        return ChatReply(content, usage, data, choice.get("finish_reason"))

    def _cost(self, prompt: int, completion: int) -> float | None:
        p, c = self.config.prompt_price, self.config.completion_price
        if p is None and c is None:
            return None
        return round((prompt * (p or 0.0) + completion * (c or 0.0)) / 1_000_000, 8)


def _options(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise LLMError(f"{ENV_PREFIX}OPTIONS: not JSON ({e})") from None
    if not isinstance(value, dict):
        raise LLMError(f"{ENV_PREFIX}OPTIONS: must be a JSON object, got {type(value).__name__}")
    return value


class _StructuredRefused(Exception):
    """The server answered 400 to response_format."""


def _decode_json(resp: httpx.Response) -> dict[str, Any]:
    try:
        obj = msgspec.json.decode(resp.content)
    except msgspec.DecodeError as e:
        raise LLMBadResponse(f"reply is not JSON ({e}): {resp.text[:200]!r}") from None
    if not isinstance(obj, dict):
        raise LLMBadResponse(f"reply is JSON {type(obj).__name__}, not an object")
    return obj


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if seconds > cap:
        logger.warning("Retry-After %.0fs is over the cap; waiting %.0fs", seconds, cap)
    return max(0.0, min(seconds, cap))


def _strip_fence(text: str) -> str:
    """Models asked for JSON in words sometimes wrap it in a Markdown fence."""
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    return t.strip()


def _with_json_instruction(messages: list[dict[str, Any]], schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    instruction = {
        "role": "system",
        "content": "Answer with one JSON object only, no prose, matching this JSON Schema: "
        + msgspec.json.encode(dict(schema)).decode(),
    }
    return [instruction, *messages]
