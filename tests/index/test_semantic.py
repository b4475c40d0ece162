"""Semantic search in numpy: same vectors as sentence-transformers, hybrid ranking, clean degrade.

The reference vectors in fixtures/minilm_reference.json were recorded once
with sentence-transformers (torch, CPU) from the same model files, in a
throwaway virtualenv: the default suite never installs torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _world import World
from creative_hub.index import HubIndex, SearchQuery
from creative_hub.index.search import related, search

pytestmark = pytest.mark.sqlite

semantic = pytest.importorskip(
    "creative_hub.index.semantic", reason="the semantic extra (numpy) is not installed"
)
if not semantic.available():
    pytest.skip("model files missing: run scripts/install-semantic.sh", allow_module_level=True)

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text())


def test_vectors_match_sentence_transformers() -> None:
    import numpy as np

    vectors = semantic.load_embedder().embed(REFERENCE["sentences"])
    reference = np.array(REFERENCE["vectors"], dtype=np.float32)
    assert vectors.shape == (3, 384)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.min() > 0.9999, cosine
    sims = vectors @ vectors.T
    # Two wordings of the oven scene are close; the broker sentence is far from both.
    assert sims[0, 1] > 0.6 > 0.25 > max(sims[0, 2], sims[1, 2])


async def test_hybrid_search_finds_what_words_miss(world: World) -> None:
    ix = HubIndex(str(world.db.parent / "sem.index.db"), semantic=True)
    await ix.refresh(world.hub, force=True)
    await ix.indexer(world.hub).embed_missing()
    # "baking" appears nowhere; the paper about bread ovens is close in meaning.
    fts = search(ix.store, world.anonymous, SearchQuery(text="baking bread", mode="fts"))
    hybrid = search(ix.store, world.anonymous, SearchQuery(text="baking bread"), embedder=ix.embedder)
    assert fts.hits == [] or "Bread ovens in folk tales" not in [h.title for h in fts.hits[:1]]
    assert hybrid.mode == "hybrid"
    assert "Bread ovens in folk tales" in [h.title for h in hybrid.hits[:3]]
    # Access holds on the vector side too.
    assert all(h.topic != "peer.alice.drafts" for h in hybrid.hits)
    near = related(ix.store, world.bob, world.published_id, limit=50, embedder=ix.embedder)
    assert world.draft_id not in {r.id for r in near}
    assert any("semantic" in r.why for r in near)
    ix.close()


def test_without_numpy_everything_else_still_works(tmp_path: Path) -> None:
    code = f"""
import asyncio, sys
sys.modules["numpy"] = None  # as if the semantic extra were not installed
from creative_hub.hub import Hub
from creative_hub.index import HubIndex, SearchQuery
async def main():
    async with Hub.connect("sqlite:///{tmp_path / "hub.db"}") as hub:
        await hub.publish({{"type": "creative.narrative.fragment",
                            "data": {{"story": "s", "title": "Oven", "text": "warm"}}}})
        ix = HubIndex("{tmp_path / "hub.db.index.db"}")
        assert ix.embedder is None
        await ix.refresh(hub, force=True)
        from creative_hub.access import Identity
        r = await ix.search(Identity("x"), SearchQuery(text="oven"))
        assert [h.title for h in r.hits] == ["Oven"] and r.mode == "fts", r
        assert await ix.related(Identity("x"), r.hits[0].id) == []
        try:
            HubIndex("{tmp_path / "other.db"}", semantic=True)
        except ImportError as e:
            assert "creative-hub[semantic]" in str(e)
        else:
            raise AssertionError("semantic=True without numpy must fail")
        import creative_hub.mcp.hub  # the MCP servers import without it too
    print("ok")
asyncio.run(main())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
