"""Offline text tools for the built-in agents: terms, TF-IDF, extractive summaries.

Deterministic and dependency-free, so the agents work (and are testable)
without an LLM or an index:

    corpus = Corpus()
    corpus.add("a", "Hard by a great forest dwelt a poor wood-cutter ...")
    corpus.similar(terms("the wood-cutter in the forest"), limit=3)   # [("a", 0.41)]
    summarise(text, sentences=2)                                      # the two most central sentences
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...event import Event

__all__ = ["Corpus", "event_text", "event_title", "key_terms", "summarise", "terms"]

_WORD = re.compile(r"[a-z][a-z'-]{2,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z‘“\"'])")
STOPWORDS = frozenset(
    """about above after again against all also and any are because been before being below between both
    but can could did does doing down during each few for from further had has have having her here hers
    herself him himself his how into its itself just more most myself nor not now off once only other our
    ours ourselves out over own same she should some such than that the their theirs them themselves then
    there these they this those through too under until very was were what when where which while who whom
    why will with would you your yours yourself yourselves said one two upon shall may might must let like
    get got went come came see saw take took make made give gave know knew say told well yet even still
    back away again thing things much many every anything nothing something""".split()
)


def terms(text: str) -> list[str]:
    """Lower-case content words (3+ letters, no stopwords), in order."""
    out = []
    for w in _WORD.findall(text.lower().replace("’", "'")):
        w = w.strip("'-")
        if w.endswith("'s"):
            w = w[:-2]
        if len(w) >= 3 and w not in STOPWORDS:
            out.append(w)
    return out


def _field(data: Any, name: str) -> Any:
    if isinstance(data, dict):
        return data.get(name)
    return getattr(data, name, None)


TEXT_FIELDS = (
    "title",
    "summary",
    "text",
    "message",
    "body",
    "abstract",
    "description",
    "subject",
    "intention",
)


def event_title(event: Event) -> str:
    """A one-line title for an event (its title, summary, message's first line, ...)."""
    for name in ("title", "summary", "message", "subject", "text"):
        value = _field(event.data, name)
        if isinstance(value, str) and value.strip():
            return value.strip().splitlines()[0][:120]
    return event.subject or event.id


def event_text(event: Event) -> str:
    """The words of an event: its textual payload fields and labels, joined."""
    parts = [v for n in TEXT_FIELDS if isinstance(v := _field(event.data, n), str)]
    labels = _field(event.data, "labels")
    if isinstance(labels, list):
        parts.extend(str(x) for x in labels)
    return "\n".join(parts)


def sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [s.strip() for s in _SENTENCE.split(flat) if s.strip()]


def key_terms(text: str, limit: int = 6) -> list[str]:
    """The most frequent content words (ties by first appearance)."""
    words = terms(text)
    counts = Counter(words)
    first = {w: i for i, w in reversed(list(enumerate(words)))}
    return sorted(counts, key=lambda w: (-counts[w], first[w]))[:limit]


def summarise(text: str, sentences_wanted: int = 2) -> str:
    """An extractive summary: the sentences richest in the text's frequent
    words, in their original order."""
    sents = sentences(text)
    if len(sents) <= sentences_wanted:
        return " ".join(sents)
    freq = Counter(terms(text))

    def score(s: str) -> float:
        ws = terms(s)
        return sum(freq[w] for w in ws) / math.sqrt(len(ws) + 1)

    best = sorted(range(len(sents)), key=lambda i: (-score(sents[i]), i))[:sentences_wanted]
    return " ".join(sents[i] for i in sorted(best))


@dataclass
class Corpus:
    """Documents as TF-IDF vectors; cosine similarity between them."""

    docs: dict[str, Counter[str]] = field(default_factory=dict)
    df: Counter[str] = field(default_factory=Counter)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self.docs

    def __len__(self) -> int:
        return len(self.docs)

    def add(self, doc_id: str, text: str) -> None:
        if doc_id in self.docs:
            return
        tf = Counter(terms(text))
        self.docs[doc_id] = tf
        self.df.update(tf.keys())

    def _vector(self, tf: Counter[str]) -> dict[str, float]:
        n = len(self.docs) + 1
        vec = {w: (1 + math.log(c)) * math.log(1 + n / (1 + self.df[w])) for w, c in tf.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {w: v / norm for w, v in vec.items()}

    def similar(
        self, query: Iterable[str], *, limit: int = 5, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The documents closest to the ``query`` terms: (id, cosine), best first."""
        q = self._vector(Counter(query))
        skip = set(exclude)
        scored = []
        for doc_id, tf in self.docs.items():
            if doc_id in skip:
                continue
            d = self._vector(tf)
            s = sum(v * d.get(w, 0.0) for w, v in q.items())
            if s > 0:
                scored.append((doc_id, round(s, 4)))
        scored.sort(key=lambda x: (-x[1], x[0]))
        return scored[:limit]
