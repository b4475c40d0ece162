"""CrossRef: a recorded /works/{doi} response, offline and through a local server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from creative_hub.hub import Hub
from creative_hub.sources.base import doi_paper_id
from creative_hub.sources.crossref import CrossrefSource
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite
DOI = "10.1371/journal.pone.0033693"


def fixture(fixtures_dir: Path) -> Path:
    return fixtures_dir / "crossref" / "works_10.1371_journal.pone.0033693.json"


async def test_work_fields_and_citation_links(hub: Hub, stored, fixtures_dir: Path) -> None:
    s = await ingest(hub, CrossrefSource(files=[fixture(fixtures_dir)]))
    assert s.ingested == 1
    (e,) = await stored("creative.metadata")
    p = e.data
    assert e.id == doi_paper_id(DOI) == doi_paper_id("https://doi.org/10.1371/JOURNAL.PONE.0033693")
    assert p["title"] == (
        "Methylphenidate Exposure Induces Dopamine Neuron Loss and Activation of Microglia "
        "in the Basal Ganglia of Mice"
    )
    assert (
        p["authors"][:2] == ["Shankar Sadasivan", "Brooks B. Pond"]
        and p["authors"][-1] == "Richard J. Smeyne"
    )
    assert len(p["authors"]) == 6
    assert p["doi"] == DOI and p["venue"] == "PLoS ONE" and p["published"] == "2012-03-21"
    assert p["extra"]["publisher"] == "Public Library of Science (PLoS)" and p["extra"]["page"] == "e33693"
    raw = json.loads(fixture(fixtures_dir).read_bytes())["message"]["reference"]
    cited = [r["DOI"].lower() for r in raw if "DOI" in r]
    assert [ln["ref"] for ln in p["extra"]["links"]] == [f"doi:{d}" for d in cited]
    assert all(ln["rel"] == "cites" and ln["id"] == doi_paper_id(ln["ref"][4:]) for ln in p["extra"]["links"])
    assert e.creator == "crossref" and e.subject == f"doi:{DOI}"
    assert (await ingest(hub, CrossrefSource(files=[fixture(fixtures_dir)]))).already == 1


async def test_invalid_json_and_a_work_list(hub: Hub, stored, fixtures_dir: Path, tmp_path: Path) -> None:
    raw = fixture(fixtures_dir).read_bytes()
    broken = tmp_path / "broken.json"
    broken.write_bytes(raw[: len(raw) // 2])
    work = json.loads(raw)["message"]
    listing = tmp_path / "list.json"
    listing.write_text(
        json.dumps(
            {
                "message-type": "work-list",
                "message": {
                    "items": [{**work, "DOI": "10.5555/other", "reference": []}, {"title": ["No DOI"]}, work]
                },
            }
        )
    )
    s = await ingest(hub, CrossrefSource(files=[broken, listing]))
    assert s.ingested == 2
    assert [(e.ref, e.reason[:14]) for e in s.skipped] == [
        (str(broken), "not valid JSON"),
        (f"{listing}#2", "work has no DO"),
    ]
    assert {e.data["doi"] for e in await stored("creative.metadata")} == {"10.5555/other", DOI}


async def test_by_doi_through_the_api(hub: Hub, fixtures_dir: Path, http_server) -> None:
    http_server.routes[f"/works/{DOI}"] = (
        200,
        {"Content-Type": "application/json"},
        fixture(fixtures_dir).read_bytes(),
    )
    async with httpx.AsyncClient() as client:
        s = await ingest(
            hub,
            CrossrefSource(
                dois=[DOI, "10.9999/missing"],
                api_url=http_server.url,
                mailto="hub@example.org",
                client=client,
            ),
        )
    assert s.ingested == 1 and "no such DOI" in s.skipped[0].reason
    assert http_server.seen[0].headers["user-agent"] == "creative-hub (mailto:hub@example.org)"
