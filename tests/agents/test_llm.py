"""The LLM client against a local OpenAI-compatible server with canned replies:
structured output, 429 with Retry-After, 5xx, timeouts, malformed JSON, and an
agent that dead-letters bad replies without crashing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from _agents import until
from creative_hub.agents import AgentContext, AgentRunner, AgentSettings, agent
from creative_hub.agents import llm as llm_module
from creative_hub.agents.llm import (
    LLMBadResponse,
    LLMClient,
    LLMConfig,
    LLMOffline,
    LLMUnavailable,
)
from creative_hub.agents.provenance import config_hash
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.log._retry import Backoff

pytestmark = pytest.mark.sqlite


@dataclass
class Canned:
    status: int = 200
    body: bytes | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  #: seconds before answering (to provoke client timeouts)


def completion(content: str, prompt: int = 11, completion_tokens: int = 7) -> Canned:
    return Canned(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "canned-1",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens,
            },
        }
    )


class FakeOpenAI:
    """An OpenAI-compatible /v1/chat/completions on a free loopback port.

    ``replies`` are served in order (the last one repeats); ``requests``
    keeps each request's headers and JSON body."""

    def __init__(self) -> None:
        self.replies: list[Canned] = []
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if self.path != "/v1/chat/completions":
                    reply = Canned(404, b"not found")
                else:
                    reply = outer.replies[min(len(outer.requests), len(outer.replies)) - 1]
                if reply.delay:
                    time.sleep(reply.delay)
                raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for k, v in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the client chose between retries (without waiting them out)."""
    seen: list[float] = []
    real_sleep = llm_module.asyncio.sleep

    async def record(delay: float) -> None:
        seen.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(llm_module.asyncio, "sleep", record)
    return seen


def config(fake: FakeOpenAI, **kw: Any) -> LLMConfig:
    base: dict[str, Any] = {
        "base_url": fake.base_url,
        "model": "canned-1",
        "api_key": "sk-test",
        "timeout": 5.0,
        "max_retries": 2,
        "backoff": Backoff(base=0.01, cap=0.05, jitter=False),
        "prompt_price": 1.0,
        "completion_price": 2.0,
    }
    return LLMConfig(**{**base, **kw})


SCHEMA = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}


async def test_offline_without_a_base_url_makes_no_call() -> None:
    cfg = LLMConfig.from_env({})
    assert not cfg.configured and repr(cfg).startswith("LLMConfig(base_url=None")
    async with LLMClient(cfg) as client:
        with pytest.raises(LLMOffline):
            await client.chat([{"role": "user", "content": "hi"}])
        assert client.calls == 0


async def test_config_from_env_hides_the_key() -> None:
    cfg = LLMConfig.from_env(
        {"CREATIVE_HUB_LLM_BASE_URL": "http://127.0.0.1:11434/v1", "OPENAI_API_KEY": "sk-secret",
         "CREATIVE_HUB_LLM_MODEL": "llama3.2", "CREATIVE_HUB_LLM_PROMPT_PRICE": "0.5"}
    )  # fmt: skip
    assert cfg.configured and cfg.model == "llama3.2" and cfg.api_key == "sk-secret"
    assert cfg.prompt_price == 0.5 and cfg.provider_name == "127.0.0.1"
    assert "sk-secret" not in repr(cfg)


async def test_structured_output_usage_and_cost(fake: FakeOpenAI) -> None:
    fake.replies = [completion('{"summary": "A witch, an oven."}', prompt=1000, completion_tokens=500)]
    async with LLMClient(config(fake)) as client:
        reply = await client.chat([{"role": "user", "content": "Summarise"}], schema=SCHEMA)
    assert reply.data == {"summary": "A witch, an oven."}
    assert reply.usage.prompt_tokens == 1000 and reply.usage.completion_tokens == 500
    assert reply.usage.cost == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1_000_000)
    headers, body = fake.requests[0]
    assert headers["authorization"] == "Bearer sk-test"
    assert body["model"] == "canned-1"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA


async def test_server_without_response_format_gets_json_asked_in_words(fake: FakeOpenAI) -> None:
    fake.replies = [
        Canned(400, {"error": {"message": "unknown parameter: response_format"}}),
        completion('```json\n{"summary": "fenced"}\n```'),
    ]
    async with LLMClient(config(fake)) as client:
        reply = await client.chat([{"role": "user", "content": "Summarise"}], schema=SCHEMA)
        assert reply.data == {"summary": "fenced"}
        assert "response_format" not in fake.requests[1][1]
        assert fake.requests[1][1]["messages"][0]["role"] == "system"


async def test_429_waits_as_retry_after_says(fake: FakeOpenAI, waits: list[float]) -> None:
    fake.replies = [Canned(429, {"error": "slow down"}, {"Retry-After": "7"}), completion("ok")]
    async with LLMClient(config(fake)) as client:
        reply = await client.chat([{"role": "user", "content": "hi"}])
    assert reply.content == "ok"
    assert waits == [7.0]  # the header's seconds, not the backoff's
    assert len(fake.requests) == 2


async def test_retry_after_as_http_date_and_capped(fake: FakeOpenAI, waits: list[float]) -> None:
    far = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    fake.replies = [Canned(429, b"{}", {"Retry-After": far}), completion("ok")]
    async with LLMClient(config(fake, max_retry_after=30.0)) as client:
        await client.chat([{"role": "user", "content": "hi"}])
    assert waits == [30.0]


async def test_5xx_backs_off_then_gives_up(fake: FakeOpenAI, waits: list[float]) -> None:
    fake.replies = [Canned(503, b"{}")]
    async with LLMClient(config(fake)) as client:
        with pytest.raises(LLMUnavailable, match="HTTP 503"):
            await client.chat([{"role": "user", "content": "hi"}])
        assert client.calls == 3  # the try and two retries
    assert waits == [0.01, 0.02]


async def test_timeout_is_retried_then_reported(fake: FakeOpenAI, waits: list[float]) -> None:
    fake.replies = [Canned(delay=1.0, body=b"{}")]
    async with LLMClient(config(fake, timeout=0.2, max_retries=1)) as client:
        with pytest.raises(LLMUnavailable, match="timed out"):
            await client.chat([{"role": "user", "content": "hi"}])
        assert client.calls == 2


async def test_malformed_json_is_a_bad_response(fake: FakeOpenAI) -> None:
    async with LLMClient(config(fake)) as client:
        fake.replies = [Canned(200, b"{not json")]
        with pytest.raises(LLMBadResponse, match="not JSON"):
            await client.chat([{"role": "user", "content": "hi"}])
        fake.requests.clear()
        fake.replies = [completion("Sure! Here is the summary: ...")]
        with pytest.raises(LLMBadResponse, match="asked for JSON"):
            await client.chat([{"role": "user", "content": "hi"}], schema=SCHEMA)
        fake.requests.clear()
        fake.replies = [Canned(200, {"choices": []})]
        with pytest.raises(LLMBadResponse, match="no choices"):
            await client.chat([{"role": "user", "content": "hi"}])


async def test_agent_dead_letters_bad_replies_and_accounts_good_ones(
    fake: FakeOpenAI, sqlite_hub: Hub, ledger: EffectLedger
) -> None:
    # First fragment: the model answers prose where JSON was asked (every try);
    # second: a good answer.  The agent dead-letters the first and goes on.
    fake.replies = [completion("no JSON here")] * 2 + [completion('{"summary": "Into the wood."}')]

    @agent(
        "summariser", topics=["creative.narrative"], settings=AgentSettings(max_attempts=2, ack_timeout=10)
    )
    async def summarise(ctx: AgentContext, event: Event) -> dict[str, Any]:
        reply = await ctx.chat([{"role": "user", "content": event.data["text"]}], schema=SCHEMA)
        return {"type": "creative.feedback.comment", "data": {"on": event.id, "text": reply.data["summary"]}}

    frag = {"type": "creative.narrative.fragment", "data": {"story": "s", "title": "t", "text": "x"}}
    first, second = await sqlite_hub.publish([frag, frag])
    async with (
        LLMClient(config(fake)) as client,
        AgentRunner(sqlite_hub, [summarise], ledger=ledger, llm=client) as runner,
    ):
        await until(lambda: runner.stats["summariser"].handled == 1, "second handled")
        assert runner.stats["summariser"].dead_lettered == 1
    letters = [s.event.data async for s in sqlite_hub.replay("deadletter.creative.narrative")]
    assert [d["record_id"] for d in letters] == [first.id]
    assert "LLMBadResponse" in letters[0]["reason"]
    (comment,) = [s.event async for s in sqlite_hub.replay("creative.feedback")]
    assert comment.causationid == second.id
    usage = comment.data["extra"]["llm"]
    assert usage["model"] == "canned-1" and usage["provider"] == "127.0.0.1"
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["calls"]) == (11, 7, 1)
    assert usage["cost"] == pytest.approx((11 + 14) / 1_000_000)
    # Provenance: the model that answered, as its server named it, and who served it.
    assert (comment.model, comment.modelprovider) == ("canned-1", "127.0.0.1")
    assert comment.confighash == config_hash(summarise, client)
    assert comment.input_ids == [second.id]
