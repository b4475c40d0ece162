"""Provenance of agent work: which model made an event, how, and from what.

The runtime stamps four attributes on everything an agent publishes (see
``creative_hub.event``), next to ``creator`` (the agent principal) and
``causationid`` (the event it was handling):

=================  ===========================================================
``model``          the model that answered: the last ``ctx.chat`` call's (as
                   the server named it), else the agent's own ``model``
                   (``offline/echo-1``); absent for a rule-based agent
``modelprovider``  who served it (the LLM config's provider or host), or
                   ``offline`` when no call was made
``confighash``     sha256 of the agent's configuration: its ``config``
                   (prompt, settings), handler, ``model`` and LLM provider /
                   model -- the same hash means the same set-up
``inputs``         the events the output was made from: the handled event,
                   then every event the handler fetched with ``ctx.get`` or
                   named with ``ctx.used`` / ``ctx.publish(inputs=...)``
=================  ===========================================================

    prov = Provenance.of(spec, llm)             # once per agent and runner
    prov.attributes(ctx.usage, ["e1", "e2"])    # the attributes of one publish

Only the runtime sets them for an agent: what a handler puts in those
attributes itself is replaced (``inputs`` it names are kept, after the ones
the runtime saw).  The creator's signature covers them like every other
attribute, so ``creative-hub verify`` fails for an event whose model was
changed after it was signed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from ..event import MAX_ID_LENGTH, MAX_INPUTS

if TYPE_CHECKING:
    from .llm import LLMClient, Usage
    from .spec import Agent

__all__ = ["OFFLINE", "Provenance", "config_hash", "split_model"]

OFFLINE = "offline"  # the provider of a model that runs in the agent's own process
_NOT_PROVIDER = re.compile(r"[^a-z0-9._:-]+")
_NOT_MODEL = re.compile(r"[^!-~]+")


def _provider(name: str) -> str:
    return _NOT_PROVIDER.sub("-", name.lower()).strip("-")[:100] or "unknown"


def _model(name: str) -> str:
    return _NOT_MODEL.sub("_", name)[:200] or "unknown"


def split_model(label: str) -> tuple[str, str]:
    """``"offline/echo-1"`` -> ``("offline", "echo-1")``; a bare ``"echo-1"`` is offline."""
    provider, sep, name = label.partition("/")
    if not sep:
        return OFFLINE, _model(label)
    return _provider(provider), _model(name)


def config_hash(spec: Agent, llm: LLMClient | None) -> str:
    """sha256 (hex) of what shapes an agent's output besides its inputs."""
    handler = spec.handler
    doc = {
        "config": spec.config,
        "handler": f"{getattr(handler, '__module__', '')}.{getattr(handler, '__qualname__', '')}",
        "model": spec.model,
        "llm": (
            {"provider": llm.config.provider_name, "model": llm.config.model}
            if llm is not None and llm.configured
            else None
        ),
    }
    return hashlib.sha256(msgspec.json.encode(doc, order="sorted")).hexdigest()


@dataclass(frozen=True, slots=True)
class Provenance:
    """An agent's model and configuration hash, as the runtime knows them."""

    confighash: str
    provider: str = OFFLINE  #: of the agent's own model (no ``ctx.chat`` call)
    model: str | None = None  #: the agent's own model; None: a rule-based handler

    @classmethod
    def of(cls, spec: Agent, llm: LLMClient | None) -> Provenance:
        provider, model = split_model(spec.model) if spec.model else (OFFLINE, None)
        return cls(config_hash(spec, llm), provider, model)

    def attributes(self, usage: Sequence[Usage], inputs: Iterable[str]) -> dict[str, str]:
        """``model``, ``modelprovider``, ``confighash`` and ``inputs`` for one published event."""
        provider, model = self.provider, self.model
        if usage:  # the model that answered, as its server named it
            provider, model = _provider(usage[-1].provider), _model(usage[-1].model)
        attrs = {"modelprovider": provider, "confighash": self.confighash}
        if model:
            attrs["model"] = model
        ids = [i for i in dict.fromkeys(inputs) if i and " " not in i and len(i) <= MAX_ID_LENGTH]
        if ids:
            attrs["inputs"] = " ".join(ids[:MAX_INPUTS])
        return attrs
