"""The runtime stamps provenance on what agents publish: model, provider,
configuration hash and the input events a handler read."""

from __future__ import annotations

from typing import Any

import pytest

from _agents import until
from creative_hub.agents import Agent, AgentContext, AgentRunner, AgentSettings
from creative_hub.agents.llm import LLMClient, LLMConfig
from creative_hub.agents.provenance import config_hash, split_model
from creative_hub.errors import ValidationError
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.principals import verify_signature

pytestmark = pytest.mark.sqlite

FAST = AgentSettings(ack_timeout=3.0, max_attempts=2)


def fragment(n: int) -> dict[str, Any]:
    return {
        "type": "creative.narrative.fragment",
        "subject": "story:s",
        "data": {"story": "s", "title": f"part {n}", "text": f"text {n}"},
    }


async def outputs(hub: Hub, topic: str) -> list[Event]:
    return [s.event async for s in hub.replay(topic)]


async def test_a_rule_based_agent_is_offline_and_names_what_it_handled(
    sqlite_hub: Hub, ledger: EffectLedger, uid: str
) -> None:
    async def echo(ctx: AgentContext, event: Event) -> dict[str, Any]:
        return {"type": "creative.feedback.comment", "data": {"on": event.id, "text": "seen"}}

    spec = Agent(id=f"echo-{uid}", handler=echo, topics=[f"in.{uid}"], output=f"out.{uid}", settings=FAST)
    await sqlite_hub.log.append(f"in.{uid}", [sqlite_hub.prepare(fragment(1))[2]])
    async with AgentRunner(sqlite_hub, [spec], ledger=ledger) as runner:
        await until(lambda: runner.stats[spec.id].handled == 1, "handled")
    (out,) = await outputs(sqlite_hub, f"out.{uid}")
    assert out.modelprovider == "offline" and out.model is None
    assert out.confighash == config_hash(spec, None)
    assert out.input_ids == [out.causationid]
    key = sqlite_hub.registry.public_key(spec.id)
    assert key is not None and verify_signature(out, key)


async def test_reads_through_the_context_are_inputs_and_a_handler_cannot_claim_a_model(
    sqlite_hub: Hub, ledger: EffectLedger, uid: str
) -> None:
    (earlier,) = await sqlite_hub.publish(fragment(0))
    other = {"type": "creative.narrative.fragment", "id": f"elsewhere-{uid}", "data": fragment(9)["data"]}
    await sqlite_hub.publish(other)
    await sqlite_hub.publish({**other, "id": f"named-{uid}"})

    async def summarise(ctx: AgentContext, event: Event) -> list[Any]:
        await ctx.get(earlier.id)  # fetched: an input
        ctx.used(f"elsewhere-{uid}")  # read some other way (an index, a cache): an input
        first = {
            "type": "creative.feedback.comment",
            "data": {"on": event.id, "text": "one"},
            "model": "gpt-5",  # not the handler's to say
            "modelprovider": "openai",
            "inputs": f"named-{uid}",  # named by the handler: kept (the hub checks it is readable)
        }
        second = Event(type="creative.feedback.comment", data={"on": event.id, "text": "two"}, model="x")
        return [first, second]

    spec = Agent(
        id=f"sum-{uid}",
        handler=summarise,
        topics=[f"in.{uid}"],
        output=f"out.{uid}",
        model="offline/summary-2",
        config={"prompt": "Summarise.", "temperature": 0},
        settings=FAST,
    )
    trigger = sqlite_hub.prepare(fragment(1))
    await sqlite_hub.log.append(f"in.{uid}", [trigger[2]])
    async with AgentRunner(sqlite_hub, [spec], ledger=ledger) as runner:
        await until(lambda: runner.stats[spec.id].handled == 1, "handled")
    first, second = await outputs(sqlite_hub, f"out.{uid}")
    for out in (first, second):
        assert (out.modelprovider, out.model) == ("offline", "summary-2")
        assert out.confighash == config_hash(spec, None)
    handled = trigger[1].id
    assert first.input_ids == [handled, earlier.id, f"elsewhere-{uid}", f"named-{uid}"]
    assert second.input_ids == [handled, earlier.id, f"elsewhere-{uid}"]


def test_config_hash_changes_with_the_configuration_and_the_model() -> None:
    async def handler(ctx: AgentContext, event: Event) -> None:
        return None

    def spec(**kw: Any) -> Agent:
        return Agent(id="a", handler=handler, topics=["t"], **kw)

    base = config_hash(spec(config={"prompt": "p"}), None)
    assert len(base) == 64 and base == config_hash(spec(config={"prompt": "p"}), None)
    assert base != config_hash(spec(config={"prompt": "q"}), None)
    assert base != config_hash(spec(config={"prompt": "p"}, model="offline/echo-1"), None)
    llm = LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="llama3.2", api_key="sk-secret"))
    other = LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="llama3.3", api_key="sk-other"))
    with_llm = config_hash(spec(config={"prompt": "p"}), llm)
    assert with_llm not in (base, config_hash(spec(config={"prompt": "p"}), other))
    # The API key is not configuration: another key, the same hash.
    again = LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="llama3.2", api_key="sk-new"))
    assert config_hash(spec(config={"prompt": "p"}), again) == with_llm


def test_agent_model_and_config_are_checked() -> None:
    async def handler(ctx: AgentContext, event: Event) -> None:
        return None

    with pytest.raises(ValidationError, match="config: must be JSON"):
        Agent(id="a", handler=handler, topics=["t"], config={"when": object()})
    with pytest.raises(ValidationError, match="model"):
        Agent(id="a", handler=handler, topics=["t"], model="/")
    assert split_model("offline/echo-1") == ("offline", "echo-1")
    assert split_model("echo-1") == ("offline", "echo-1")
    assert split_model("Anthropic/claude x") == ("anthropic", "claude_x")
    assert split_model("127.0.0.1/meta-llama/Llama-3-8B") == ("127.0.0.1", "meta-llama/Llama-3-8B")
