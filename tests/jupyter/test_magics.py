"""The %hub magics in a real notebook: nbclient runs it on a real ipykernel against a hub server.

The kernelspec is installed offline into a temp prefix (``python -m ipykernel
install --prefix``) and found through JUPYTER_PATH; the kernel gets the hub's
URL and alice's token from its environment, so no secret is in the notebook.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from _hubproc import HubProcess
from creative_hub.hub import Hub
from creative_hub.jupyter.display import EventTable, LineageView, OutlineView, lineage_svg, outline_of
from creative_hub.sources.ingest import ingest
from creative_hub.sources.notebooks import NotebookSource

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]

KERNEL = "creative-hub-test"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with HubProcess(tmp_path_factory.mktemp("hub")) as h:
        yield h


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec for this venv's Python, installed without a network."""
    prefix = tmp_path_factory.mktemp("kernel")
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", KERNEL],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (prefix / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json").is_file()
    return prefix / "share" / "jupyter"


def run_notebook(
    cells: list[Any], hub: HubProcess, kernel_path: Path, who: str, monkeypatch: pytest.MonkeyPatch, tmp: Path
) -> Any:
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("CREATIVE_HUB_URL", hub.url)
    monkeypatch.setenv("CREATIVE_HUB_TOKEN", hub.tokens[who])
    nb = new_notebook(cells=cells)
    NotebookClient(nb, kernel_name=KERNEL, timeout=120, resources={"metadata": {"path": str(tmp)}}).execute()
    nbformat.validate(nb)
    return nb


def bundle(cell: Any) -> dict[str, Any]:
    """The rich output of a cell (its execute_result's MIME bundle)."""
    (out,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    data: dict[str, Any] = out.data
    return data


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for p in node.get("parents", []) for n in walk(p))]


FRAGMENT = """story: lighthouse
title: Arrival
text: Mara climbed the stairs and found the lamp broken.
order: 0
chapter: Chapter One
scene: Arrival
"""


def test_publish_tail_lineage_outline_and_drafts(
    hub: HubProcess, kernel_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cells = [
        new_code_cell("%load_ext creative_hub.jupyter\n%hub connect"),
        new_code_cell("%%hub publish creative.narrative.fragment --subject story:lighthouse\n" + FRAGMENT),
        new_code_cell("%hub tail creative.narrative -n 5"),
        new_code_cell("%hub lineage"),
        new_code_cell("%hub outline lighthouse"),
        new_code_cell(
            '%%hub draft creative.narrative.fragment --subject story:lighthouse\n{"story": "lighthouse", '
            '"title": "Night", "text": "The keeper lit a candle.", "order": 1, "chapter": "Chapter One"}'
        ),
        new_code_cell("%%hub revise {hub_last['id']}\ntext: The keeper lit a candle and watched the sea."),
        new_code_cell("%hub publish-draft {hub_last['id']}"),
        new_code_cell("%hub lineage"),
    ]
    nb = run_notebook(cells, hub, kernel_path, "alice", monkeypatch, tmp_path)
    assert (
        "connected to" in nb.cells[0].outputs[0].text
        and "as alice with a token" in nb.cells[0].outputs[0].text
    )
    receipt = bundle(nb.cells[1])["application/json"]
    assert receipt["topic"] == "creative.narrative" and receipt["duplicate"] is False
    assert receipt["id"] in bundle(nb.cells[1])["text/html"]
    with hub.client("bob") as c:  # stored, as alice, signed
        stored = c.get(f"/v1/events/{receipt['id']}").json()["event"]
    assert stored["creator"] == "alice" and stored["data"]["title"] == "Arrival" and stored["signature"]
    tail = bundle(nb.cells[2])
    assert "Arrival" in tail["text/html"] and receipt["id"] in tail["text/html"]
    lin = bundle(nb.cells[3])
    assert "<svg" in lin["text/html"] and receipt["id"] in lin["text/html"]
    assert lin["image/svg+xml"].startswith("<svg") and receipt["id"] in lin["image/svg+xml"]
    outline = bundle(nb.cells[4])["text/html"]
    assert "Chapter One" in outline and "Arrival" in outline
    drafted = bundle(nb.cells[5])["application/json"]
    assert drafted["topic"] == "peer.alice.drafts"
    revised = bundle(nb.cells[6])["application/json"]
    assert revised["topic"] == "peer.alice.drafts"
    published = bundle(nb.cells[7])["application/json"]
    assert published["topic"] == "peer.alice.published"
    chain = bundle(nb.cells[8])["application/json"]
    assert [n["id"] for n in walk(chain["root"])] == [published["id"], revised["id"], drafted["id"]]
    with hub.client("alice") as c:
        text = c.get(f"/v1/events/{published['id']}").json()["event"]["data"]["text"]
    assert text == "The keeper lit a candle and watched the sea."
    svg = bundle(nb.cells[8])["image/svg+xml"]
    assert all(i in svg for i in (published["id"], revised["id"], drafted["id"]))


def test_record_makes_private_drafts_only_the_owner_reads(
    hub: HubProcess, kernel_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    error_cell = new_code_cell("1 / 0")
    error_cell.metadata["tags"] = ["raises-exception"]
    cells = [
        new_code_cell("%load_ext creative_hub.jupyter\n%hub connect\n%hub record on"),
        new_code_cell("x = 6 * 7\nx"),
        error_cell,
        new_code_cell("%hub record off"),
        new_code_cell("y = 'not recorded'"),
        new_code_cell("%hub draft -n 5"),
        new_code_cell("%hub record publish"),
    ]
    nb = run_notebook(cells, hub, kernel_path, "alice", monkeypatch, tmp_path)
    assert "recording cells as private drafts of session:" in nb.cells[0].outputs[-1].text
    with hub.client("alice") as c:
        drafts = [
            s["event"]
            for s in c.get("/v1/topics/peer.alice.drafts/events").json()["events"]
            if (s["event"].get("subject") or "").startswith("session:")
        ]
    assert [d["data"]["source"] for d in drafts] == ["x = 6 * 7\nx", "1 / 0"]
    assert all(d["visibility"] == "private" and d["creator"] == "alice" for d in drafts)
    assert drafts[0]["data"]["outputs"] == [{"output_type": "execute_result", "text": "42", "chars": 2}]
    assert drafts[1]["data"]["outputs"][0]["ename"] == "ZeroDivisionError"
    assert len({d["subject"] for d in drafts}) == 1  # one coding session
    listed = bundle(nb.cells[5])["text/html"]
    assert drafts[0]["id"] in listed
    # nobody else reads them: not bob, not anonymous, not by id, not in the shared topic
    for who in ("bob", None):
        with hub.client(who) as c:
            assert c.get("/v1/topics/peer.alice.drafts/events").status_code in (403, 404)
            assert c.get(f"/v1/events/{drafts[0]['id']}").status_code == 404
            shared = c.get("/v1/topics/creative.engineering/events")
            assert shared.status_code == 404 or all(
                s["event"]["id"] != drafts[0]["id"] for s in shared.json()["events"]
            )
    # the owner publishes the session: every recorded cell, once, in order
    assert "published 2 recorded cells" in nb.cells[6].outputs[0].text
    with hub.client("bob") as c:
        public = [
            s["event"]
            for s in c.get("/v1/topics/peer.alice.published/events").json()["events"]
            if s["event"].get("subject") == drafts[0]["subject"]
        ]
    assert [(p["data"]["source"], p["causationid"]) for p in public] == [
        (d["data"]["source"], d["id"]) for d in drafts
    ]
    # or one draft at a time, from another kernel
    nb2 = run_notebook(
        [new_code_cell(f"%load_ext creative_hub.jupyter\n%hub publish-draft {drafts[0]['id']}")],
        hub,
        kernel_path,
        "alice",
        monkeypatch,
        tmp_path,
    )
    pub = bundle(nb2.cells[0])["application/json"]
    with hub.client("bob") as c:
        seen = c.get(f"/v1/events/{pub['id']}").json()["event"]
    assert seen["data"]["source"] == "x = 6 * 7\nx" and seen["visibility"] == "public"


def test_displays_escape_what_came_from_the_hub() -> None:
    evil = "<script>alert(1)</script>"
    table = EventTable("t", [{"position": "1", "event": {"id": "e1", "type": "x", "data": {"title": evil}}}])
    assert evil not in table._repr_html_() and "&lt;script&gt;" in table._repr_html_()
    node = {
        "id": "e1",
        "relation": "self",
        "type": "creative.x.y",
        "creator": evil,
        "title": evil,
        "parents": [],
    }
    svg = lineage_svg({"root": node})
    assert evil not in svg and "&lt;script&gt;" in svg
    assert set(LineageView({"root": node})._repr_mimebundle_()) == {
        "text/plain",
        "text/html",
        "application/json",
        "image/svg+xml",
    }


def test_outline_from_events_newest_revisions_in_story_order() -> None:
    def ev(id_: str, kind: str, data: dict[str, Any], supersedes: str | None = None) -> dict[str, Any]:
        e = {"id": id_, "type": f"creative.narrative.{kind}", "data": {"story": "s", **data}}
        return {**e, "supersedes": supersedes} if supersedes else e

    events = [
        ev("f2", "fragment", {"title": "Night", "text": "dark", "order": 1, "part": "One"}),
        ev("f1", "fragment", {"title": "Arrival", "text": "old", "order": 0, "part": "One",
                              "extra": {"story_title": "The Lighthouse"}}),
        ev("f1b", "fragment", {"title": "Arrival", "text": "new <b>", "order": 0, "part": "One",
                               "extra": {"story_title": "The Lighthouse"}}, supersedes="f1"),
        ev("f3", "fragment", {"title": "Storm", "text": "wind", "order": 2, "part": "Two"}),
        ev("a1", "character_arc", {"character": "Mara", "aliases": ["the girl"]}),
        ev("p2", "plot_point", {"summary": "Mara lit the lamp", "order": 1, "actor": "Mara"}),
        ev("p1", "plot_point", {"summary": "Mara climbed", "order": 0, "actor": "Mara"}),
        {"id": "x", "type": "creative.narrative.fragment", "data": {"story": "other", "title": "no"}},
    ]  # fmt: skip
    o = outline_of("s", events)
    assert o["title"] == "The Lighthouse"
    assert [(p["title"], [sc["title"] for sc in p["scenes"]]) for p in o["parts"]] == [
        ("One", ["Arrival", "Night"]),
        ("Two", ["Storm"]),
    ]
    assert o["parts"][0]["scenes"][0]["text"] == "new <b>"  # the newest revision only
    assert o["characters"] == [{"name": "Mara", "aliases": ["the girl"]}]
    assert [p["summary"] for p in o["plot_points"]] == ["Mara climbed", "Mara lit the lamp"]
    html = OutlineView(o)._repr_html_()
    assert "new &lt;b&gt;" in html and "the girl" in html and "Mara lit the lamp" in html


async def test_a_notebook_a_real_kernel_ran_ingests_with_its_outputs_summarised(
    hub: HubProcess, kernel_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What ipykernel really writes (coloured tracebacks, timings, rich reprs), read back by
    `ingest notebook`: nothing here was written by hand."""
    error_cell = new_code_cell("import json\njson.loads('{broken')")
    error_cell.metadata["tags"] = ["raises-exception"]
    cells = [
        new_markdown_cell("# Run for real\n\n## Setup"),
        new_code_cell(
            "import sys\nprint('hello from', sys.implementation.name)\nprint('to stderr', file=sys.stderr)"
        ),
        new_code_cell("from IPython.display import HTML, SVG\nHTML('<b>bold</b>')"),
        new_code_cell('SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>\')'),
        error_cell,
    ]
    nb = run_notebook(cells, hub, kernel_path, "alice", monkeypatch, tmp_path)
    path = tmp_path / "ran.ipynb"
    nbformat.write(nb, path)
    assert "\x1b[" in "".join(nb.cells[4].outputs[0]["traceback"])  # the kernel did colour it
    async with Hub.connect(f"sqlite:///{tmp_path / 'ingest.db'}") as local:
        summary = await ingest(local, NotebookSource([path]))
        assert (summary.ingested, summary.skipped) == (5, [])
        events = {s.event.id: s.event for s in [x async for x in local.replay("creative.engineering")]}
    cells_out = [events[i].data for i in summary.ids if i in events]
    printed, html, svg, failed = cells_out
    assert sorted((o["name"], o["text"]) for o in printed["outputs"]) == [  # two streams: either order
        ("stderr", "to stderr\n"),
        ("stdout", "hello from cpython\n"),
    ]
    assert printed["execution_count"] == 1 and printed["language"] == "python"
    assert printed["started"] and printed["finished"] and printed["duration_ms"] >= 0  # nbclient's timings
    assert set(html["outputs"][0]["mime"]) == {"text/html", "text/plain"}
    assert svg["outputs"][0]["mime"]["image/svg+xml"] > 0
    err = failed["outputs"][0]
    assert err["ename"] == "JSONDecodeError" and "\x1b" not in err["evalue"]
    assert err["evalue"].startswith("Expecting property name enclosed in double quotes")
