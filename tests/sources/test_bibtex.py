"""BibTeX: the Mendeley export in the shared fixtures (229 entries, LaTeX accents)."""

from __future__ import annotations

from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources.base import arxiv_paper_id, doi_paper_id, slug
from creative_hub.sources.bibtex import BibtexSource
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite


def bib(fixtures_dir: Path) -> Path:
    return fixtures_dir / "bibtex" / "mendeley_export_random.bib"


async def test_entries_fields_accents_and_links(hub: Hub, stored, fixtures_dir: Path) -> None:
    s = await ingest(hub, BibtexSource([bib(fixtures_dir)]))
    # wooters07 and wootters07 are one arXiv paper entered twice with different keys: both
    # kept, both linked to the one paper.
    assert (s.ingested, s.skipped) == (229, [])
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
    assert d.subject == "doi:10.1088/1367-2630/17/9/093046" and d.creator == "bibtex"
    assert papers["horodecki09"].data["authors"][:2] == ["Ryszard Horodecki", "Paweł Horodecki"]
    # Person ids transliterate letters outside ASCII (they were dropped: "karol-yczkowski").
    # The authors are claims (the writer is bibtex): the slug is what a map or a participant uses.
    firsts = {k: slug(papers[k].data["authors"][0]) for k in ("zyczkowski04", "puchala15", "ribeiro15")}
    assert firsts == {
        "zyczkowski04": "karol-zyczkowski",
        "puchala15": "zbigniew-puchala",
        "ribeiro15": "jeremy-ribeiro",
    }
    again = await ingest(hub, BibtexSource([bib(fixtures_dir)]))
    assert again.ingested == 0 and again.already == 229
    twins = [papers["wooters07"].data["extra"]["links"], papers["wootters07"].data["extra"]["links"]]
    assert twins[0] == twins[1] and twins[0][0]["rel"] == "same-as"


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


BIB = r"""
@inproceedings{reagle2004,
  author = {Reagle, Jr., Joseph M. and Gustav Bostr{\"o}m and van Beethoven, Ludwig},
  title = {Resolver {URLs} and names},
  year = {2004},
  doi = {http://doi.acm.org/10.1145/1013115.1013148}
}
@article{same-doi-journal,
  author = {Rog{\'e}rio de Paula},
  title = {One work, journal version},
  year = {2010},
  doi = {https://doi.org/10.1000/ONE.WORK}
}
@misc{same-doi-preprint,
  title = {One work, preprint},
  doi = {doi:10.1000/one.work}
}
@misc{not-a-doi,
  title = {A DOI field holding a web page},
  doi = {https://example.org/paper}
}
"""


async def test_resolver_dois_jr_names_and_entries_sharing_a_doi(hub: Hub, stored, tmp_path: Path) -> None:
    f = tmp_path / "refs.bib"
    f.write_text(BIB)
    s = await ingest(hub, BibtexSource([f]))
    assert (s.ingested, s.skipped) == (4, [])
    papers = {e.data["extra"]["key"]: e for e in await stored("creative.metadata")}
    reagle = papers["reagle2004"]
    assert reagle.data["doi"] == "10.1145/1013115.1013148" and reagle.subject == "doi:10.1145/1013115.1013148"
    assert reagle.data["authors"] == ["Joseph M. Reagle Jr.", "Gustav Boström", "Ludwig van Beethoven"]
    journal, preprint = papers["same-doi-journal"], papers["same-doi-preprint"]
    assert journal.data["doi"] == preprint.data["doi"] == "10.1000/one.work"
    assert journal.id != preprint.id
    assert journal.data["extra"]["links"] == preprint.data["extra"]["links"] == [
        {"rel": "same-as", "id": doi_paper_id("10.1000/one.work"), "ref": "doi:10.1000/one.work"}
    ]
    odd = papers["not-a-doi"].data
    assert "doi" not in odd and odd["extra"]["doi_field"] == "https://example.org/paper"
    assert (await ingest(hub, BibtexSource([f]))).already == 4


@pytest.mark.parametrize(
    "written",
    [
        "10.1145/1013115.1013148",
        "doi:10.1145/1013115.1013148",
        "DOI: 10.1145/1013115.1013148",
        "http://doi.acm.org/10.1145/1013115.1013148",
        "https://doi.org/10.1145/1013115.1013148",
        "https://dx.doi.org/10.1145%2F1013115.1013148",
        "https://dl.acm.org/doi/pdf/10.1145/1013115.1013148",
        "doi.org/10.1145/1013115.1013148",  # no scheme, as people paste it
        "dx.doi.org/10.1145/1013115.1013148",
        "info:doi/10.1145/1013115.1013148",  # the OpenURL form (Zotero, link resolvers)
        "urn:doi:10.1145/1013115.1013148",
    ],
)
def test_every_way_of_writing_a_doi_names_the_one_work(written: str) -> None:
    from creative_hub.sources.base import normalize_doi

    assert normalize_doi(written) == "10.1145/1013115.1013148"
    # A suffix that itself starts with "10." is part of the DOI, not a host to strip.
    assert normalize_doi("10.1000/10.5555/ABC") == "10.1000/10.5555/abc"


JABREF = Path(__file__).parent / "data" / "jabref"


async def test_jabref_files_in_utf_16_with_or_without_a_bom_are_the_same_entries(hub: Hub, stored) -> None:
    # JabRef saves in the encoding a person picks: UTF-16 little- or big-endian, with or
    # without a byte-order mark. They were "not BibTeX: a binary file (NUL bytes)".
    first = await ingest(hub, BibtexSource([JABREF / "tiny-LE-withBOM.bib"]))
    assert (first.ingested, first.skipped) == (1, [])
    (e,) = await stored("creative.metadata")
    assert e.data["title"] == "Investigation of the best suture pattern to close a stuffed Christmas turkey"
    assert e.data["doi"] == "10.1136/vr.d6221" and e.data["authors"][-1] == "M. Wilke"
    again = await ingest(hub, BibtexSource([JABREF / "tiny-BE-noBOM.bib"]))  # another encoding: the same
    assert (again.ingested, again.already, again.skipped) == (0, 1, [])


async def test_an_entry_with_no_citation_key_is_kept(hub: Hub, stored, tmp_path: Path) -> None:
    # JabRef writes "@article{," for entries imported without a key (here in UTF-16BE);
    # bibtexparser refused the block ("an unclosed brace or a missing comma?").
    s = await ingest(hub, BibtexSource([JABREF / "encoding-utf-16BE-with-header.bib"]))
    assert (s.ingested, s.skipped) == (1, [])
    two = tmp_path / "keyless.bib"
    two.write_text("@book{,\n  title = {One}\n}\n@misc{ ,\n  title = {Two}, doi = {10.1000/two}\n}\n")
    s = await ingest(hub, BibtexSource([two]))
    assert (s.ingested, s.skipped) == (2, [])
    umlaut, one, doi = (e.data for e in await stored("creative.metadata"))
    assert umlaut["title"] == "Ü ist ein Umlaut" and umlaut["extra"]["key"] == ""
    assert (one["title"], doi["doi"]) == ("One", "10.1000/two")
    assert (await ingest(hub, BibtexSource([two]))).already == 2


async def test_windows_1252_files_decode_as_windows_1252(hub: Hub, stored, tmp_path: Path) -> None:
    # Old Windows exports: JabRef's "% Encoding: windows-1252" header, or none. Curly quotes
    # and the euro sign are 0x80-0x9f there, C1 control characters in Latin-1.
    body = "@misc{k%d,\n  title = {Caf\u00e9 \u201cquoted\u201d \u2013 5 \u20ac},\n}\n"
    declared, bare = tmp_path / "declared.bib", tmp_path / "bare.bib"
    declared.write_bytes(("% Encoding: windows-1252\n\n" + body % 1).encode("cp1252"))
    bare.write_bytes((body % 2).encode("cp1252"))
    s = await ingest(hub, BibtexSource([declared, bare]))
    assert (s.ingested, s.skipped) == (2, [])
    titles = {e.data["title"] for e in await stored("creative.metadata")}
    assert titles == {"Caf\u00e9 \u201cquoted\u201d \u2013 5 \u20ac"}


async def test_an_edited_entry_is_a_new_revision_not_a_skip(hub: Hub, stored, tmp_path: Path) -> None:
    # A typo fixed in a title and the file ingested again: it was "already in the hub with
    # other content (changed at the source?)", and the fix never got in.
    f = tmp_path / "refs.bib"
    f.write_text("@article{k, title = {Quantm walks}, doi = {10.1000/qw}, year = {2020}}\n")
    assert (await ingest(hub, BibtexSource([f]))).ingested == 1
    f.write_text("@article{k, title = {Quantum walks}, doi = {10.1000/qw}, year = {2020}}\n")
    s = await ingest(hub, BibtexSource([f]))
    assert (s.ingested, s.skipped) == (1, [])
    assert (await ingest(hub, BibtexSource([f]))).already == 1
    old, new = await stored("creative.metadata")
    assert (old.subject, new.subject) == ("doi:10.1000/qw", "doi:10.1000/qw")
    assert new.data["title"] == "Quantum walks"
