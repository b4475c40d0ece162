"""``creative-hub story``: the narrative pipeline in the terminal.

creative-hub story outline tale.txt --json   # parts, characters + aliases, plot points with evidence
creative-hub story show tale.txt             # the same, as a person reads it
creative-hub story show hansel-and-gretel    # a story already ingested into the hub
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..hub import Hub
from .common import DEFAULT_LOG, AsOpt, JsonOpt, LogOpt, err, out, run_async, with_hub

story_app: typer.Typer = typer.Typer(
    help="Stories read by the narrative pipeline: outline a file, show a story.", no_args_is_help=True
)

MAX_FILE = 5_000_000  # bytes


def _outline_file(path: Path) -> dict[str, Any]:
    from ..narrative import NlpUnavailable, outline

    if not path.is_file():
        err.print(f"[red]{path}: no such file[/red]")
        raise typer.Exit(2)
    raw = path.read_bytes()
    if len(raw) > MAX_FILE:
        err.print(f"[red]{path}: {len(raw)} bytes, more than the {MAX_FILE} a story file may have[/red]")
        raise typer.Exit(2)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        err.print(f"[red]{path}: not UTF-8 text at byte {e.start}[/red]")
        raise typer.Exit(2) from e
    try:
        return outline(text, suffix=path.suffix.lower(), title=path.stem.replace("_", " ")).to_dict()
    except NlpUnavailable as e:
        err.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e


@story_app.command(name="outline")
def outline_cmd(
    file: Annotated[Path, typer.Argument(help="A story file: .txt, .md or .fountain.")],
    as_json: JsonOpt = False,
) -> None:
    """Outline a story file: parts, characters with aliases, plot points with their evidence."""
    data = _outline_file(file)
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    render(data, out)


@story_app.command()
def show(
    story: Annotated[str, typer.Argument(help="A story file, or the id of a story in the hub.")],
    log: LogOpt = DEFAULT_LOG,
    as_: AsOpt = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print JSON instead of tables: {"title", "parts", "characters", "plot_points"} '
            "(of a file: what `story outline --json` prints).",
        ),
    ] = False,
) -> None:
    """Show a story: its parts, its characters and their aliases, its plot points numbered."""
    if Path(story).is_file():
        _print(_outline_file(Path(story)), as_json)
        return

    async def main(hub: Hub) -> dict[str, Any]:
        return await from_hub(hub, story)

    data = run_async(with_hub(log, as_, main))
    if not data["plot_points"] and not data["parts"]:
        err.print(f"[red]no story {story!r} in {log} (ingest it: creative-hub ingest story FILE)[/red]")
        raise typer.Exit(1)
    _print(data, as_json)


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        render(data, out)


async def from_hub(hub: Hub, story: str) -> dict[str, Any]:
    """The outline of an ingested story, rebuilt from its events (newest revision of each)."""
    frags: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    arcs: list[dict[str, Any]] = []
    title = story
    async for s in hub.replay("creative.narrative"):
        d = s.event.data if isinstance(s.event.data, dict) else {}
        if d.get("story") != story:
            continue
        kind = s.event.type.rsplit(".", 1)[-1]
        if kind == "fragment":
            title = d.get("extra", {}).get("story_title", title)
            frags.append(d)
        elif kind == "plot_point":
            points.append(d)
        elif kind == "character_arc":
            arcs.append(d)
    parts: list[dict[str, Any]] = []
    for f in sorted(frags, key=lambda f: f.get("order", 0)):
        name = f.get("part") or f.get("chapter") or title
        if not parts or parts[-1]["title"] != name:
            parts.append({"title": name, "scenes": []})
        parts[-1]["scenes"].append({"title": f["title"], "characters": f.get("characters", [])})
    return {
        "title": title,
        "parts": parts,
        "characters": [{"name": a["character"], "aliases": a.get("aliases", [])} for a in arcs],
        "plot_points": sorted(points, key=lambda p: p.get("order", 0)),
    }


def render(data: dict[str, Any], console: Console) -> None:
    """Parts, characters with aliases, numbered plot points."""
    console.print(f"[bold]{data['title']}[/bold]")
    for i, p in enumerate(data["parts"], 1):
        console.print(f"  part {i}: {p['title']} ({len(p.get('scenes', []))} scenes)")
    chars = Table("character", "also called", title="Characters", title_justify="left")
    for c in data["characters"]:
        chars.add_row(c["name"], ", ".join(c.get("aliases", [])))
    console.print(chars)
    plot = Table("#", "who", "what", title="Plot points", title_justify="left")
    for p in data["plot_points"]:
        plot.add_row(str(p.get("order", 0) + 1), p.get("actor") or "", p.get("summary", ""))
    console.print(plot)
