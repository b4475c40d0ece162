"""The local model server for tests: llama.cpp's OpenAI server with SmolLM2-135M on a free loopback port.

``scripts/install-llm.sh`` installs it (``make test-deps`` runs it).  Like
the brokers it is a child process the harness starts, checks and stops; the
agent tests talk to it over HTTP exactly as to any endpoint.

    server = start(tmp_path)
    config = server.config()        # LLMConfig(base_url=..., provider="local", model=...)
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

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
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"model server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise ServerError(f"the model server on {self.url} never answered")

    def config(self, **kw: Any) -> LLMConfig:
        """Settings for ``LLMClient``: this server, provider ``local``, generous timeouts (busy CI)."""
        kw.setdefault("timeout", 600.0)
        return self.model.config(**kw)


def start(workdir: Path) -> LLMServer:
    server = LLMServer(workdir)
    server.start()
    return server
