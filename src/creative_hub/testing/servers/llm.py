"""The local model server for tests: llama.cpp's OpenAI server with SmolLM2-135M on a free loopback port.

``scripts/install-llm.sh`` installs it (``make test-deps`` runs it).  Like
the brokers it is a child process the harness starts, checks and stops; the
agent tests talk to it over HTTP exactly as to any endpoint.

    server = start(tmp_path)
    config = server.config()        # LLMConfig(base_url=..., provider="local", model=...)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...agents.llm import LLMConfig
from ...localmodel import LocalModel, LocalModelMissing, gguf_path
from . import STARTUP_TIMEOUT, Server, ServerError, free_port

__all__ = ["LLMServer", "start"]


class LLMServer(Server):
    """One llama.cpp server process serving the local model."""

    name = "llm"

    def __init__(self, workdir: Path, threads: int = 2) -> None:
        super().__init__(workdir)
        if importlib.util.find_spec("llama_cpp") is None:
            raise ServerError("llama-cpp-python not installed: run scripts/install-llm.sh")
        try:
            self.model = LocalModel(port=free_port(), model=gguf_path(), threads=threads)
        except LocalModelMissing as e:
            raise ServerError(f"{e}") from None

    @property
    def url(self) -> str:
        return self.model.base_url

    def command(self) -> Sequence[str]:
        return self.model.command()

    def wait_ready(self) -> None:
        self.model.wait_ready(STARTUP_TIMEOUT, self.proc)  # start() reports the log's tail on failure

    def config(self, **kw: Any) -> LLMConfig:
        """Settings for ``LLMClient``: this server, provider ``local``, generous timeouts (busy CI)."""
        kw.setdefault("timeout", 600.0)
        return self.model.config(**kw)


def start(workdir: Path) -> LLMServer:
    server = LLMServer(workdir)
    server.start()
    return server
