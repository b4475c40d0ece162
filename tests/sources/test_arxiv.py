"""arXiv: the saved API responses in the shared fixtures, offline and through a local server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from creative_hub.hub import Hub
from creative_hub.sources.arxiv import ArxivSource
from creative_hub.sources.base import Principals, arxiv_paper_id, doi_paper_id
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite


async def test_one_entry_with_doi_journal_ref_and_comment(hub: Hub, stored, fixtures_dir: Path) -> None:
    f = fixtures_dir / "arxiv" / "query_au_del_maestro_AND_ti_checkerboard.xml"
    principals = Principals({"Adrian Del Maestro": "adrian"})
    s = await ingest(hub, ArxivSource(files=[f], principals=principals))
    assert (s.ingested, s.skipped) == (1, [])
    (e,) = await stored("creative.metadata")
    p = e.data
    assert e.id == arxiv_paper_id("cond-mat/0603029v1") == arxiv_paper_id("arXiv:cond-mat/0603029")
    assert p["title"] == (
        "From stripe to checkerboard order on the square lattice in the presence of quenched disorder"
    )
    assert p["authors"] == ["Adrian Del Maestro", "Bernd Rosenow", "Subir Sachdev"]
    assert p["arxiv_id"] == "cond-mat/0603029" and p["doi"] == "10.1103/PhysRevB.74.024520"
    assert p["venue"] == "Phys. Rev. B 74, 024520 (2006)" and p["published"] == "2006-03-02"
    assert p["abstract"].startswith("We discuss the effects of quenched disorder")
    assert p["url"] == "http://arxiv.org/abs/cond-mat/0603029v1"
    assert p["extra"]["version"] == 1 and p["extra"]["primary_category"] == "cond-mat.str-el"
    assert p["extra"]["categories"] == ["cond-mat.str-el", "cond-mat.supr-con"]
    assert p["extra"]["comment"] == "10 pages, 11 figures; added reference"
    assert p["extra"]["links"] == [
        {
            "rel": "same-as",
            "id": doi_paper_id("10.1103/physrevb.74.024520"),
            "ref": "doi:10.1103/PhysRevB.74.024520",
        }
    ]
    assert e.creator == "arxiv" and e.subject == "arXiv:cond-mat/0603029" and e.source == "arxiv"
    assert e.time is not None and e.time.isoformat() == "2006-03-02T02:22:45+00:00"


async def test_ten_entries_then_rerun_adds_nothing(hub: Hub, stored, fixtures_dir: Path) -> None:
    f = fixtures_dir / "arxiv" / "query_au_del_maestro.xml"
    s = await ingest(hub, ArxivSource(files=[f]))
    assert s.ingested == 10
    ids = [e.data["arxiv_id"] for e in await stored("creative.metadata")]
    assert ids[:3] == ["1201.4869", "cond-mat/0412498", "cond-mat/0603029"]
    assert "1412.6529" in ids
    again = await ingest(hub, ArxivSource(files=[f]))
    assert (again.ingested, again.already) == (0, 10)


async def test_truncated_xml_keeps_whole_entries_and_the_next_file(
    hub: Hub, stored, fixtures_dir: Path, tmp_path: Path
) -> None:
    raw = (fixtures_dir / "arxiv" / "query_au_del_maestro.xml").read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(raw[: raw.index(b"<entry>", raw.index(b"1005.5383")) + 200])  # inside entry 5
    whole = fixtures_dir / "arxiv" / "query_au_del_maestro_AND_ti_checkerboard.xml"
    s = await ingest(hub, ArxivSource(files=[cut, tmp_path / "missing.xml", whole]))
    assert s.ingested == 4  # 4 whole entries of the cut file (the checkerboard paper is among them)
    assert s.already == 1
    assert [e.ref for e in s.skipped] == [str(cut), str(tmp_path / "missing.xml")]
    assert "not a complete arXiv Atom document after 4 entries" in s.skipped[0].reason
    assert "cannot read" in s.skipped[1].reason
    assert "4 ingested, 1 already there, 2 skipped" in s.line()


async def test_query_through_the_api(hub: Hub, stored, fixtures_dir: Path, http_server) -> None:
    body = (fixtures_dir / "arxiv" / "query_au_del_maestro_AND_ti_checkerboard.xml").read_bytes()
    http_server.routes["/api/query"] = (200, {"Content-Type": "application/atom+xml"}, body)
    async with httpx.AsyncClient() as client:
        source = ArxivSource(
            query="au:del_maestro AND ti:checkerboard", api_url=f"{http_server.url}/api/query", client=client
        )
        s = await ingest(hub, source)
    assert s.ingested == 1
    (req,) = http_server.seen
    assert req.query["search_query"] == ["au:del_maestro AND ti:checkerboard"]
    assert req.query["start"] == ["0"]
    http_server.routes["/api/query"] = (503, {}, b"busy")
    async with httpx.AsyncClient() as client:
        s = await ingest(
            hub,
            ArxivSource(ids=["cond-mat/0603029v1"], api_url=f"{http_server.url}/api/query", client=client),
        )
    assert s.ingested == 0 and "HTTP 503" in s.skipped[0].reason
    assert http_server.seen[-1].query["id_list"] == ["cond-mat/0603029"]
