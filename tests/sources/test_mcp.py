"""MCP: a real MCP server (official SDK) over stdio; its tools' and resources' results as metadata events."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import StdioServerParameters

from creative_hub.hub import Hub
from creative_hub.sources.base import arxiv_paper_id, doi_paper_id
from creative_hub.sources.ingest import ingest
from creative_hub.sources.mcp import McpCall, McpSource

pytestmark = pytest.mark.sqlite

SERVER = '''
from typing_extensions import TypedDict  # pydantic wants this one on Python < 3.12
from mcp.server import MCPServer

server = MCPServer("papers")


class PaperItem(TypedDict):
    title: str
    authors: list[str]
    doi: str
    year: int


class Papers(TypedDict):
    papers: list[PaperItem]


@server.tool()
def search(query: str) -> Papers:
    """Papers matching a query."""
    return {"papers": [
        {"title": "Methylphenidate Exposure Induces Dopamine Neuron Loss", "authors": ["Shankar Sadasivan"],
         "doi": "10.1371/journal.pone.0033693", "year": 2012},
        {"title": "", "authors": [], "doi": "10.5555/untitled", "year": 2000},
    ]}


@server.tool()
def note(topic: str) -> str:
    """A note on a topic."""
    return f"Notes on {topic}: see arXiv:2101.00001"


@server.tool()
def broken() -> str:
    """Always fails."""
    raise RuntimeError("the tool broke")


@server.resource("notes://today")
def today() -> str:
    return "Today: write the ingest summary"


if __name__ == "__main__":
    server.run()
'''

CALLS = [
    McpCall(tool="search", arguments={"query": "microglia"}, type="creative.metadata.paper", items="papers"),
    McpCall(tool="note", arguments={"topic": "lattices"}),
    McpCall(tool="broken"),
    McpCall(resource="notes://today"),
]


async def test_stdio_server_tools_and_resources(hub: Hub, stored, tmp_path: Path) -> None:
    script = tmp_path / "papers_server.py"
    script.write_text(SERVER)
    params = StdioServerParameters(command=sys.executable, args=[str(script)])
    s = await ingest(hub, McpSource(params, name="papers", calls=CALLS, owner="librarian"))
    assert s.ingested == 3
    assert [(e.ref, e.reason[:40]) for e in s.skipped] == [
        ("mcp://papers/tools/search#1", "item does not fit creative.metadata.pape"),
        ("mcp://papers/tools/broken", "tool error: Error executing tool broken"),
    ]
    paper, note, resource = await stored("creative.metadata")
    assert paper.type == "creative.metadata.paper" and paper.creator == "mcp"
    assert paper.data["extra"]["owner"] == "librarian"
    assert paper.data["title"] == "Methylphenidate Exposure Induces Dopamine Neuron Loss"
    assert (
        paper.data["authors"] == ["Shankar Sadasivan"] and paper.data["doi"] == "10.1371/journal.pone.0033693"
    )
    assert paper.data["extra"]["year"] == 2012 and paper.source == "mcp:papers"
    assert paper.data["extra"]["links"][0]["id"] == doi_paper_id("10.1371/journal.pone.0033693")
    assert (
        note.data["url"] == "mcp://papers/tools/note"
        and note.data["description"] == "Notes on lattices: see arXiv:2101.00001"
    )
    assert note.data["extra"]["arguments"] == {"topic": "lattices"}
    assert note.data["extra"]["links"][0]["id"] == arxiv_paper_id("2101.00001")
    assert (
        resource.data["url"] == "notes://today"
        and resource.data["description"] == "Today: write the ingest summary"
    )
    again = await ingest(hub, McpSource(params, name="papers", calls=CALLS, owner="librarian"))
    assert (again.ingested, again.already) == (0, 3)


async def test_config_file(tmp_path: Path) -> None:
    from creative_hub.errors import ValidationError

    cfg = tmp_path / "mcp.yaml"
    cfg.write_text(
        f"name: Papers\nserver: {{command: {sys.executable}, args: [server.py]}}\n"
        "calls:\n  - {tool: note, arguments: {topic: x}}\n  - {resource: 'notes://today'}\n"
    )
    src = McpSource.from_config(cfg)
    assert src.name == "mcp:papers" and [c.label for c in src.calls] == ["tools/note", "notes://today"]
    assert isinstance(src.server, StdioServerParameters) and src.server.args == ["server.py"]
    cfg.write_text("server: {url: http://127.0.0.1:1/mcp}\ncalls:\n  - {tool: a, resource: b}\n")
    with pytest.raises(ValidationError, match="exactly one of tool or resource"):
        McpSource.from_config(cfg)
