"""BibTeX: the Mendeley export in the shared fixtures (229 entries, LaTeX accents)."""

from __future__ import annotations

from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources.base import arxiv_paper_id, doi_paper_id
from creative_hub.sources.bibtex import BibtexSource
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite


def bib(fixtures_dir: Path) -> Path:
    return fixtures_dir / "bibtex" / "mendeley_export_random.bib"


async def test_entries_fields_accents_and_links(hub: Hub, stored, fixtures_dir: Path) -> None:
    s = await ingest(hub, BibtexSource([bib(fixtures_dir)]))
    # wooters07 and wootters07 are one arXiv paper entered twice with different keys.
    assert (s.ingested, len(s.skipped)) == (228, 1)
    assert "other content" in s.skipped[0].reason
    papers = {e.data["extra"]["key"]: e for e in await stored("creative.metadata")}
    first = papers["renes14b"].data
    assert first["title"].startswith("Operationally-Motivated Uncertainty Relations for Joint Measurability")
    assert first["authors"] == ["Joseph M. Renes", "Volkher B. Scholz"]
    assert first["arxiv_id"] == "1402.6711" and first["published"] == "2014-02"
    assert first["extra"]["links"] == [
        {"rel": "same-as", "id": arxiv_paper_id("1402.6711"), "ref": "arXiv:1402.6711"}
    ]
    d = papers["dammeier15"]
    assert d.data["authors"] == ["Lars Dammeier", "René Schwonnek", "Reinhard F Werner"]
    assert d.data["doi"] == "10.1088/1367-2630/17/9/093046" and d.data["venue"] == "New Journal of Physics"
    assert d.data["extra"]["links"][0]["id"] == doi_paper_id("10.1088/1367-2630/17/9/093046")
    assert d.subject == "doi:10.1088/1367-2630/17/9/093046" and d.creator == "lars-dammeier"
    assert papers["horodecki09"].data["authors"][:2] == ["Ryszard Horodecki", "Paweł Horodecki"]
    again = await ingest(hub, BibtexSource([bib(fixtures_dir)]))
    assert again.ingested == 0 and again.already == 228


async def test_broken_block_is_one_error_and_the_rest_goes_in(
    hub: Hub, stored, fixtures_dir: Path, tmp_path: Path
) -> None:
    text = bib(fixtures_dir).read_text()
    cut = text.index("@article", 2000)
    broken = tmp_path / "broken.bib"
    end = text.index("\n@", cut + 4000)  # a whole number of entries
    broken.write_text(text[:cut] + "@article{oops, title = {Never closed,\n\n" + text[cut:end])
    s = await ingest(hub, BibtexSource([broken]))
    assert s.ingested >= 5
    (err,) = s.skipped
    assert err.ref.startswith(f"{broken}:") and "unreadable BibTeX block '@article{oops" in err.reason
