"""Notebooks as sources: nbformat's own test notebooks, ids, order, outputs summarised, revisions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.lineage import lineage
from creative_hub.principals import verify_signature
from creative_hub.sources.ingest import Summary, ingest
from creative_hub.sources.notebooks import NOTEBOOKS as NOTEBOOKS_PRINCIPAL
from creative_hub.sources.notebooks import Known, NotebookSource, strip_ansi

pytestmark = pytest.mark.sqlite

# The shared fixtures, found as the `fixtures_dir` fixture finds them (needed at collection here).
_REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = Path(os.environ.get("CREATIVE_HUB_FIXTURES", _REPO.parent / "shared" / "fixtures")) / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb")) or [NOTEBOOKS / "missing.ipynb"]


def shared_notebooks() -> Path:
    if not NOTEBOOKS.is_dir():
        pytest.fail(f"shared notebooks not found at {NOTEBOOKS}; set CREATIVE_HUB_FIXTURES")
    return NOTEBOOKS


async def run(hub: Hub, *paths: Path, writer: str | None = None) -> Summary:
    """Ingest as `ingest notebook` does: by the source principal, or by ``writer`` (a token's person)."""
    known = await Known.load(hub, writer or NOTEBOOKS_PRINCIPAL)
    source = NotebookSource(paths, writer=writer or NOTEBOOKS_PRINCIPAL, known=known)
    return await ingest(hub, source, writer=writer)


async def notebook_events(hub: Hub) -> list[Event]:
    """Every notebook event in notebook order (they span two topics)."""
    out = []
    for topic in ("creative.engineering", "creative.narrative"):
        out += [s.event async for s in hub.replay(topic) if s.event.source.startswith("notebook:")]
    return out


def cells_of(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return list(raw["cells"])


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
async def test_every_shared_notebook_in_order_with_outputs_summarised(hub: Hub, path: Path) -> None:
    shared_notebooks()
    raw = json.loads(path.read_text())
    summary = await run(hub, path)
    assert summary.skipped == []
    assert summary.ingested == len(raw["cells"])
    events = {e.id: e for e in await notebook_events(hub)}
    chain = [events[i] for i in summary.ids]
    # notebook order: cell i has order i and links "after" the first revision of cell i-1
    for i, (e, cell) in enumerate(zip(chain, cells_of(raw), strict=True)):
        data = e.data
        prose = cell["cell_type"] == "markdown"
        assert e.type == ("creative.narrative.fragment" if prose else "creative.engineering.cell")
        assert data["order"] == i
        links = (data.get("extra") or {}).get("links", [])
        assert links == ([] if i == 0 else [{"rel": "after", "id": chain[i - 1].id, "ref": f"cell {i - 1}"}])
        assert e.creator == "notebooks" and e.subject == e.source and e.source.startswith("notebook:")
        key = data["cell"] if e.type.endswith(".cell") else data["extra"]["cell"]
        if raw["nbformat_minor"] >= 5:
            assert key == cell["id"]  # nbformat 4.5 ids are the cells' own
        else:
            assert len(key) >= 16 and key != cell.get("id")
        if cell["cell_type"] == "code":
            assert data["source"] == "".join(cell["source"])
            assert data.get("execution_count") == cell["execution_count"]
            # every output summarised, in order: its kind, and each rich output's MIME types
            outputs = cell.get("outputs", [])
            assert [o["output_type"] for o in data.get("outputs", [])] == [o["output_type"] for o in outputs]
            for kept, o in zip(data.get("outputs", []), outputs, strict=True):
                assert set(kept.get("mime") or {}) == set(o.get("data") or {})
                if o["output_type"] == "error":
                    assert kept["ename"] == strip_ansi(o["ename"])
                    assert kept["evalue"] == strip_ansi(o["evalue"])
    bodies = [json.dumps(e.to_dict()) for e in chain]
    assert not any("\\u001b" in b or "\x1b" in b for b in bodies), "an ANSI code was stored"
    # no bytes of a binary output (images, PDFs...) anywhere in what the hub stored
    for cell in cells_of(raw):
        for o in cell.get("outputs", []):
            for mime, value in (o.get("data") or {}).items():
                if mime.startswith(("image/", "application/pdf")) and mime != "image/svg+xml":
                    needle = "".join(value).strip()[:64]
                    assert needle and not any(needle in b for b in bodies), mime


async def test_outputs_language_and_parts(hub: Hub) -> None:
    summary = await run(hub, shared_notebooks() / "nbformat_test4.5_cell_ids.ipynb")
    events = {e.id: e for e in await notebook_events(hub)}
    chain = [events[i] for i in summary.ids]
    by_cell = {(e.data.get("cell") or e.data["extra"]["cell"]): e.data for e in chain}
    hello = by_cell["38f37a24"]
    assert hello["language"] == "python"
    assert hello["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "hello\n", "chars": 6}]
    js = by_cell["88d8965b"]
    assert js["language"] == "javascript"  # the %%javascript cell magic
    assert set(js["outputs"][0]["mime"]) == {"application/javascript", "text/plain"}
    image = by_cell["8b414a68"]["outputs"][0]
    assert image["output_type"] == "execute_result"
    assert image["mime"]["image/png"] > 1000  # decoded bytes, counted but not kept
    html = by_cell["8206b3b9"]["outputs"][0]["mime"]
    assert html["text/html"] > 0
    # headings: one "#" is the title, "##" are the parts, "###" the scenes
    assert by_cell["2fcdfa53"]["extra"]["story_title"] == "nbconvert latex test"
    assert by_cell["bb687f78"]["part"] == "Printed Using Python" and by_cell["bb687f78"]["part_order"] == 0
    assert by_cell["a1f70963"]["part"] == "Pyout" and by_cell["a1f70963"]["title"] == "Pyout"
    assert by_cell["a1f70963"]["part_order"] == 1
    assert by_cell["34334c4f"]["scene"] == "Image" and by_cell["34334c4f"]["part"] == "Pyout"
    assert by_cell["8b414a68"]["order"] == 8


async def test_timings(hub: Hub) -> None:
    summary = await run(hub, shared_notebooks() / "nbformat_test4_timings.ipynb")
    (first, _) = [e for e in await notebook_events(hub) if e.id in summary.ids]
    assert first.data["started"] == "2019-08-26T17:50:29.604738Z"
    assert first.data["finished"] == "2019-08-26T17:50:29.623438Z"  # shell.execute_reply
    assert first.data["duration_ms"] == 18
    assert first.data["outputs"] == [{"output_type": "execute_result", "text": "2", "chars": 1,
                                      "mime": {"text/plain": 1}}]  # fmt: skip
    assert first.data["language"] == "python"
    assert first.time is not None and first.time.isoformat().startswith("2019-08-26T17:50:29")


async def test_reingest_and_move_add_nothing_an_edit_adds_a_revision(hub: Hub, tmp_path: Path) -> None:
    for name in ("nbformat_test4.5_cell_ids.ipynb", "nbformat_test4_outputs.ipynb"):
        src = tmp_path / "a" / name
        src.parent.mkdir(exist_ok=True)
        shutil.copy(shared_notebooks() / name, src)
    first = await run(hub, tmp_path / "a")
    assert first.ingested == 18 and first.skipped == []
    again = await run(hub, tmp_path / "a")
    assert (again.ingested, again.already) == (0, 18)
    # moved and renamed
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    for n, p in enumerate(sorted((tmp_path / "a").glob("*.ipynb"))):
        p.rename(tmp_path / "b" / "deeper" / f"renamed-{n}.ipynb")
    moved = await run(hub, tmp_path / "b")
    assert (moved.ingested, moved.already) == (0, 18)
    # an edit: one cell in each notebook (one with 4.5 ids, one without)
    for p in sorted((tmp_path / "b" / "deeper").glob("*.ipynb")):
        nb = json.loads(p.read_text())
        nb["cells"][3]["source"] = ["print('hello, edited')"]
        p.write_text(json.dumps(nb))
    edited = await run(hub, tmp_path / "b")
    assert (edited.ingested, edited.already) == (2, 16)
    events = {e.id: e for e in await notebook_events(hub)}
    new = [i for i in edited.ids if i not in first.ids]
    assert len(new) == 2
    for i in new:
        e = events[i]
        assert e.data["source"] == "print('hello, edited')"
        assert e.supersedes in first.ids and events[e.supersedes].data["cell"] == e.data["cell"]
        lin = await lineage(hub, i)
        assert [n.id for n in lin.root.walk()] == [i, e.supersedes]
    # the same edit again: nothing; reverting is a revision of the edit, not a duplicate of the first
    assert (await run(hub, tmp_path / "b")).ingested == 0
    for p in sorted((tmp_path / "b" / "deeper").glob("*.ipynb")):
        nb = json.loads(p.read_text())
        nb["cells"][3]["source"] = ["from __future__ import annotations\n", "\n", 'print("hello")']
        p.write_text(json.dumps(nb))
    reverted = await run(hub, tmp_path / "b")
    assert reverted.ingested == 2
    events = {e.id: e for e in await notebook_events(hub)}
    assert {events[i].supersedes for i in reverted.ids if i not in edited.ids} == set(new)


def v3_notebook() -> dict[str, Any]:
    return {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {"name": "old"},
        "worksheets": [
            {
                "metadata": {},
                "cells": [
                    {"cell_type": "heading", "level": 1, "source": "An old notebook", "metadata": {}},
                    {"cell_type": "markdown", "source": "Some *prose*.", "metadata": {}},
                    {
                        "cell_type": "code",
                        "language": "python",
                        "input": "1/0",
                        "prompt_number": 1,
                        "collapsed": False,
                        "metadata": {},
                        "outputs": [
                            {
                                "output_type": "pyerr",
                                "ename": "ZeroDivisionError",
                                "evalue": "\x1b[0;31mdivision by zero\x1b[0m",
                                "traceback": ["\x1b[0;31m---\x1b[0m"],
                            }
                        ],
                    },
                ],
            }
        ],
    }


async def test_nbformat3_is_upgraded_with_stable_ids(tmp_path: Path) -> None:
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(v3_notebook()))
    ids = []
    for n in range(2):  # two fresh hubs: nbformat's upgrade invents random cell ids; ours do not move
        async with Hub.connect(f"sqlite:///{tmp_path / f'h{n}.db'}") as hub:
            s = await run(hub, path)
            assert (s.ingested, s.skipped) == (3, [])
            ids.append(s.ids)
            err = [e for e in await notebook_events(hub) if e.type == "creative.engineering.cell"][0]
            assert err.data["outputs"] == [
                {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"}
            ]
    assert ids[0] == ids[1]


async def test_invalid_notebook_is_one_clear_error_and_stores_nothing(hub: Hub, tmp_path: Path) -> None:
    good = tmp_path / "good.ipynb"
    shutil.copy(shared_notebooks() / "nbformat_test4_timings.ipynb", good)
    bad = json.loads(good.read_text())
    bad["cells"][0]["execution_count"] = "five"  # the schema wants an integer or null
    (tmp_path / "bad.ipynb").write_text(json.dumps(bad))
    (tmp_path / "junk.ipynb").write_text("{not json")
    (tmp_path / "deep.ipynb").write_text('{"nbformat": 4, "cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    summary = await run(hub, tmp_path)
    assert summary.ingested == 2
    reasons = {Path(e.ref).name: e.reason for e in summary.skipped}
    assert set(reasons) == {"bad.ipynb", "junk.ipynb", "deep.ipynb"}
    assert "nested deeper" in reasons["deep.ipynb"]
    assert "fails nbformat validation" in reasons["bad.ipynb"] and "execution_count" in reasons["bad.ipynb"]
    assert reasons["junk.ipynb"].startswith("not JSON")
    assert len(await notebook_events(hub)) == 2


def test_strip_ansi() -> None:
    assert strip_ansi("\x1b[0;31mValueError\x1b[0m: \x1b[1mbad\x1b[0m") == "ValueError: bad"


def test_cli(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    env = {**os.environ, "CREATIVE_HUB_LOG": f"sqlite:///{db}", "CREATIVE_HUB_PRINCIPAL": "alice"}
    cmd = [sys.executable, "-m", "creative_hub", "ingest", "notebook", str(shared_notebooks())]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "notebook: 20 ingested, 0 already there, 0 skipped" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert "notebook: 0 ingested, 20 already there, 0 skipped" in again.stdout


# -- who writes (issue 16): the source principal, or the person whose token ran the ingest
async def signer(hub: Hub, event: Event) -> str | None:
    await hub.registry.refresh()
    for pid, p in hub.registry.principals.items():
        if p.public_key and verify_signature(event, p.public_key):
            return pid
    return None


async def everything(hub: Hub) -> dict[str, Event]:
    topics = ("creative.engineering", "creative.narrative")
    return {s.event.id: s.event for t in topics async for s in hub.replay(t)}


async def test_the_person_who_ingests_signs_and_revises_only_their_own(hub: Hub, tmp_path: Path) -> None:
    await hub.registry.add("alice")
    path = tmp_path / "nb.ipynb"
    shutil.copy(shared_notebooks() / "nbformat_test4.5_cell_ids.ipynb", path)
    theirs = await run(hub, path)  # the source principal's run
    mine = await run(hub, path, writer="alice")
    assert mine.ingested == theirs.ingested > 0 and not set(mine.ids) & set(theirs.ids)
    held = await everything(hub)
    for i in mine.ids:
        e = held[i]
        assert e.id.startswith("alice~") and e.source.startswith("/peers/alice/notebook:")
        assert e.creator == "alice" and await signer(hub, e) == "alice"
        # the chain links name events that exist: alice's own, not the ids before namespacing
        assert all(link["id"] in held for link in e.data["extra"].get("links", []))
    e = held[theirs.ids[0]]
    assert e.creator == "notebooks" and await signer(hub, e) == "notebooks"
    assert (await run(hub, path, writer="alice")).already == len(mine.ids)
    nb = json.loads(path.read_text())
    nb["cells"][1]["source"] = ["print('alice edited this')"]
    path.write_text(json.dumps(nb))
    edited = await run(hub, path, writer="alice")
    assert edited.ingested == 1
    (new,) = [i for i in edited.ids if i not in mine.ids]
    held = await everything(hub)
    assert held[new].supersedes in mine.ids  # her revision of her cell, never of the source's
    again = await run(hub, path)  # the source principal's own revision, of its own cell
    (src_new,) = [i for i in again.ids if i not in theirs.ids]
    assert held[new].supersedes != src_new and (await hub.get(src_new)).event.supersedes in theirs.ids


def test_cli_owner_is_a_claim_the_writer_signs(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    env = {**os.environ, "CREATIVE_HUB_LOG": f"sqlite:///{db}"}
    env.pop("CREATIVE_HUB_TOKEN", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "creative_hub", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    for who in ("alice", "bob"):
        assert cli("principal", "add", who).returncode == 0
    nb = shared_notebooks() / "nbformat_test4_timings.ipynb"
    r = cli("ingest", "notebook", str(nb), "--owner", "alice")
    assert r.returncode == 0, r.stderr
    bob = cli("principal", "token", "bob").stdout.strip().split()[-1]
    r = cli("ingest", "notebook", str(nb), "--owner", "alice", "--token", bob)
    assert r.returncode == 0 and "2 ingested" in r.stdout, r.stdout + r.stderr
    dump = tmp_path / "cells.jsonl"
    assert cli("replay", "creative.engineering", "--to", str(dump)).returncode == 0
    events = [json.loads(line) for line in dump.read_text().splitlines()]
    assert {e["creator"] for e in events} == {"notebooks", "bob"}  # never alice, whatever --owner says
    assert all(e["data"]["extra"]["author"] == "alice" for e in events)
    for e in events:
        r = cli("verify", e["id"])
        assert r.returncode == 0 and f"valid signature by {e['creator']}" in r.stdout, r.stdout + r.stderr
    r = cli("ingest", "notebook", str(nb), "--token", "chub_0123456789abcdef_" + "x" * 43)
    assert r.returncode != 0 and "token" in r.stderr.lower()
