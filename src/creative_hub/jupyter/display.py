"""Rich displays for a notebook: events, receipts, tail tables, lineage graphs, story outlines.

Each is a plain object with ``_repr_html_`` and ``_repr_mimebundle_`` (the
IPython display protocol), so JupyterLab, the classic notebook, VS Code and
nbconvert all render them without a front-end extension.  Every string that
came from the hub is HTML-escaped: an event's text is someone else's input.

    EventView(stored)            # one event: header and data
    ReceiptView(receipt)         # where a publish went
    EventTable(stored_events)    # a tail
    LineageView(lineage_dict)    # the lineage tree as an SVG graph
    OutlineView(outline_of(story, events))  # parts and scenes, characters, plot points
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = [
    "EventTable",
    "EventView",
    "LineageView",
    "OutlineView",
    "ReceiptView",
    "lineage_svg",
    "outline_of",
]

MAX_DATA_CHARS = 20_000  # of an event's data shown in a view
_STYLE = (
    "<style>.chub{font-family:system-ui,sans-serif;font-size:13px}"
    ".chub table{border-collapse:collapse}.chub td,.chub th{border:1px solid #ddd;padding:2px 6px;"
    "text-align:left;vertical-align:top}.chub code{font-size:12px}.chub pre{max-height:24em;overflow:auto;"
    "background:#f6f8fa;padding:6px;margin:4px 0}.chub .muted{color:#667}</style>"
)


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _when(stored: dict[str, Any]) -> str:
    t = (stored.get("event") or {}).get("time")
    if t:
        return str(t)
    ms = stored.get("time_ms")
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if isinstance(ms, (int, float)) else ""


def summary(event: dict[str, Any]) -> str:
    """A one-line gist of an event's data: its title, text or first field."""
    data = event.get("data")
    if isinstance(data, dict):
        for key in ("title", "summary", "text", "message", "source", "name"):
            v = data.get(key)
            if isinstance(v, str) and v.strip():
                line = v.strip().splitlines()[0]
                return line[:120] + ("…" if len(line) > 120 else "")
        return ", ".join(sorted(data))[:120]
    return "" if data is None else str(data)[:120]


class _View:
    def _repr_html_(self) -> str:
        return self.html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.text(), "text/html": self.html()}
        data = self.json()
        if data is not None:
            bundle["application/json"] = data
        return bundle

    def __repr__(self) -> str:
        return self.text()

    def html(self) -> str:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError

    def json(self) -> Any:
        return None


class ReceiptView(_View):
    """Where a publish went: ``{id, topic, position, duplicate}``."""

    def __init__(self, receipt: dict[str, Any], title: str = "published") -> None:
        self.receipt = receipt
        self.title = title

    def text(self) -> str:
        r = self.receipt
        dup = " (already there)" if r.get("duplicate") else ""
        return f"{self.title}: {r.get('id')} -> {r.get('topic')}@{r.get('position')}{dup}"

    def html(self) -> str:
        r = self.receipt
        dup = ' <span class="muted">(already there)</span>' if r.get("duplicate") else ""
        return (
            f'{_STYLE}<div class="chub receipt">✔ {_e(self.title)} <code>{_e(r.get("id"))}</code> → '
            f"<code>{_e(r.get('topic'))}</code> @ {_e(r.get('position'))}{dup}</div>"
        )

    def json(self) -> Any:
        return self.receipt


class EventView(_View):
    """One stored event (``{topic, position, time_ms, event}``) or a bare event."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored if "event" in stored else {"event": stored}

    @property
    def event(self) -> dict[str, Any]:
        ev: dict[str, Any] = self.stored["event"]
        return ev

    def text(self) -> str:
        e = self.event
        return f"{e.get('type')} {e.get('id')} by {e.get('creator')}: {summary(e)}"

    def html(self) -> str:
        e = self.event
        rows = [
            ("id", e.get("id")),
            ("type", e.get("type")),
            ("subject", e.get("subject")),
            ("creator", e.get("creator")),
            ("time", _when(self.stored)),
            ("where", f"{self.stored.get('topic', '')} @ {self.stored.get('position', '')}".strip(" @")),
            ("visibility", e.get("visibility")),
            ("supersedes", e.get("supersedes")),
            ("signed", "yes" if e.get("signature") else "no"),
        ]
        head = "".join(f"<tr><th>{k}</th><td><code>{_e(v)}</code></td></tr>" for k, v in rows if v)
        data = json.dumps(e.get("data"), indent=2, ensure_ascii=False)
        cut = len(data) > MAX_DATA_CHARS
        body = _e(data[:MAX_DATA_CHARS]) + ("\n…" if cut else "")
        return f'{_STYLE}<div class="chub event"><table>{head}</table><pre>{body}</pre></div>'

    def json(self) -> Any:
        return self.stored


class EventTable(_View):
    """Stored events as a table (a tail, a list of drafts)."""

    def __init__(self, topic: str, events: list[dict[str, Any]]) -> None:
        self.topic = topic
        self.events = events

    def text(self) -> str:
        lines = [f"{self.topic}: {len(self.events)} events"]
        for s in self.events:
            e = s.get("event", {})
            lines.append(
                f"  {s.get('position')}  {e.get('type')}  {e.get('creator')}  {summary(e)}  {e.get('id')}"
            )
        return "\n".join(lines)

    def html(self) -> str:
        rows = []
        for s in self.events:
            e = s.get("event", {})
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{v}</td>"
                    for v in (
                        _e(s.get("position")),
                        _e(_when(s)),
                        f"<code>{_e(e.get('type'))}</code>",
                        _e(e.get("creator")),
                        _e(e.get("subject")),
                        _e(summary(e)),
                        f"<code>{_e(e.get('id'))}</code>",
                    )
                )
                + "</tr>"
            )
        head = "".join(
            f"<th>{h}</th>" for h in ("position", "time", "type", "creator", "subject", "gist", "id")
        )
        return (
            f'{_STYLE}<div class="chub tail"><div><b>{_e(self.topic)}</b> '
            f'<span class="muted">{len(self.events)} events</span></div>'
            f"<table><tr>{head}</tr>{''.join(rows)}</table></div>"
        )

    def json(self) -> Any:
        return {"topic": self.topic, "events": self.events}


# -- lineage -------------------------------------------------------------------
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 230, 58, 24, 46, 12
COLOURS = {
    "self": "#dbeafe",
    "supersedes": "#e5e7eb",
    "forkedfrom": "#fde68a",
    "causation": "#fbcfe8",
    "input": "#d1fae5",
    "folded": "#f3f4f6",
    "decision": "#fecaca",
    "feedback": "#e9d5ff",
}


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def lineage_svg(lineage: dict[str, Any]) -> str:
    """The lineage tree (``GET /v1/lineage/{id}``) as an SVG: the event on top,
    what it came from below it, decisions and feedback on the last row."""
    rows: list[list[dict[str, Any]]] = []
    edges: list[tuple[str, str, str]] = []  # child id, parent id, relation

    def place(node: dict[str, Any], depth: int) -> None:
        while len(rows) <= depth:
            rows.append([])
        rows[depth].append(node)
        for p in node.get("parents") or []:
            edges.append((node["id"], p["id"], p.get("relation", "")))
            place(p, depth + 1)

    place(lineage["root"], 0)
    extra = [*(lineage.get("decisions") or []), *(lineage.get("feedback") or [])]
    if extra:
        rows.append(extra)
    width = max(len(r) for r in rows) * (BOX_W + GAP_X) - GAP_X + 2 * PAD
    height = len(rows) * (BOX_H + GAP_Y) - GAP_Y + 2 * PAD
    at: dict[str, tuple[float, float]] = {}
    parts: list[str] = []
    for y_i, row in enumerate(rows):
        row_w = len(row) * (BOX_W + GAP_X) - GAP_X
        x0 = (width - row_w) / 2
        for x_i, n in enumerate(row):
            x, y = x0 + x_i * (BOX_W + GAP_X), PAD + y_i * (BOX_H + GAP_Y)
            at[n["id"]] = (x, y)
            fill = COLOURS.get(n.get("relation", ""), "#ffffff")
            kind = (n.get("type") or "").removeprefix("creative.")
            topic = str(n.get("topic") or "")
            where = topic.rsplit(".", 1)[-1] if topic.startswith("peer.") else topic
            middle = _cut(f"{kind} · {where}", 38)
            who = n.get("creator", "") + (f" · {n['made_with']}" if n.get("made_with") else "")
            sig = "✔" if n.get("signature") == "valid" else "?" if n.get("signature") == "unsigned" else "✖"
            foot = _cut(f"{sig} {who} · {n.get('relation', '')} · {n['id'][:8]}", 40)
            parts.append(
                f'<g class="node" data-id="{_e(n["id"])}"><title>{_e(n["id"])} ({_e(n.get("relation"))}, '
                f"{_e(n.get('topic'))}, signature {_e(n.get('signature'))})</title>"
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
                f'stroke="#555"/>'
                f'<text x="{x + 8:.0f}" y="{y + 16:.0f}" font-size="11" font-weight="bold">'
                f"{_e(_cut(n.get('title') or kind, 34))}</text>"
                f'<text x="{x + 8:.0f}" y="{y + 32:.0f}" font-size="10">{_e(middle)}</text>'
                f'<text x="{x + 8:.0f}" y="{y + 48:.0f}" font-size="10" fill="#333">'
                f"{_e(foot)}</text></g>"
            )
    lines = []
    for child, parent, rel in edges:
        if child not in at or parent not in at:
            continue
        (cx, cy), (px, py) = at[child], at[parent]
        x1, y1, x2, y2 = cx + BOX_W / 2, cy + BOX_H, px + BOX_W / 2, py
        lines.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2 - 2:.0f}" stroke="#555" '
            f'marker-end="url(#chub-arrow)"/><text x="{(x1 + x2) / 2 + 4:.0f}" y="{(y1 + y2) / 2:.0f}" '
            f'font-size="10" fill="#555">{_e(rel)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chub-lineage" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui,sans-serif">'
        '<defs><marker id="chub-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>'
        + "".join(lines)
        + "".join(parts)
        + "</svg>"
    )


class LineageView(_View):
    """Where an event came from and who decided, as a graph (SVG) and a list."""

    def __init__(self, lineage: dict[str, Any]) -> None:
        self.lineage = lineage

    def _nodes(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []

        def walk(n: dict[str, Any]) -> None:
            out.append(n)
            for p in n.get("parents") or []:
                walk(p)

        walk(self.lineage["root"])
        return out + list(self.lineage.get("decisions") or []) + list(self.lineage.get("feedback") or [])

    def text(self) -> str:
        return "\n".join(
            f"{n.get('relation', ''):>11}  {n['id']}  {n.get('type', '')}  by {n.get('creator', '')}"
            for n in self._nodes()
        )

    def html(self) -> str:
        rows = "".join(
            f"<tr><td>{_e(n.get('relation'))}</td><td><code>{_e(n['id'])}</code></td>"
            f"<td>{_e(n.get('type'))}</td><td>{_e(n.get('creator'))}</td><td>{_e(n.get('title'))}</td>"
            f"<td>{_e(n.get('signature'))}</td></tr>"
            for n in self._nodes()
        )
        verified = "all signatures valid" if self.lineage.get("verified") else "not all signed and valid"
        return (
            f'{_STYLE}<div class="chub lineage"><div><b>lineage</b> <span class="muted">{_e(verified)} · '
            f"by {_e(', '.join(self.lineage.get('creators') or []))}</span></div>{lineage_svg(self.lineage)}"
            "<details><summary>events</summary><table><tr><th>relation</th><th>id</th><th>type</th>"
            f"<th>creator</th><th>title</th><th>signature</th></tr>{rows}</table></details></div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(include, exclude)
        bundle["image/svg+xml"] = lineage_svg(self.lineage)
        return bundle

    def json(self) -> Any:
        return self.lineage


# -- outlines ------------------------------------------------------------------
def outline_of(story: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A story's outline from its narrative events, in the shape ``creative-hub story show``
    gives (``creative_hub.cli.story.from_hub``): title, parts with their scenes,
    characters with aliases, plot points -- newest revision of each, in story order."""
    mine = [e for e in events if (e.get("data") or {}).get("story") == story]
    superseded = {e.get("supersedes") for e in mine}
    latest = [e for e in mine if e.get("id") not in superseded]

    def kind(k: str) -> list[dict[str, Any]]:
        found = [e["data"] for e in latest if e.get("type") == f"creative.narrative.{k}"]
        return sorted(found, key=lambda d: (d.get("order") is None, d.get("order") or 0))

    frags = kind("fragment")
    title = next(
        (f["extra"]["story_title"] for f in frags if (f.get("extra") or {}).get("story_title")), story
    )
    parts: list[dict[str, Any]] = []
    for f in frags:
        name = f.get("part") or f.get("chapter") or title
        if not parts or parts[-1]["title"] != name:
            parts.append({"title": name, "scenes": []})
        parts[-1]["scenes"].append(
            {"title": f.get("title"), "scene": f.get("scene"), "characters": f.get("characters", []),
             "text": str(f.get("text", ""))[:300]}
        )  # fmt: skip
    return {
        "story": story,
        "title": title,
        "parts": parts,
        "characters": [
            {"name": a["character"], "aliases": a.get("aliases", [])} for a in kind("character_arc")
        ],
        "plot_points": kind("plot_point"),
    }


class OutlineView(_View):
    """A story's outline (``outline_of``): parts and scenes, characters, plot points."""

    def __init__(self, outline: dict[str, Any]) -> None:
        self.outline = outline

    def text(self) -> str:
        o = self.outline
        lines = [str(o["title"])]
        for part in o["parts"]:
            lines.append(f"  {part['title']}")
            lines.extend(f"    - {sc['title']}" for sc in part["scenes"])
        if o["characters"]:
            lines.append("  characters: " + ", ".join(c["name"] for c in o["characters"]))
        lines.extend(f"  {p.get('order', 0) + 1}. {p.get('summary', '')}" for p in o["plot_points"])
        return "\n".join(lines)

    def html(self) -> str:
        o = self.outline
        n = sum(len(p["scenes"]) for p in o["parts"])
        out = [f'{_STYLE}<div class="chub outline"><b>{_e(o["title"])}</b> '
               f'<span class="muted">{len(o["parts"])} parts · {n} scenes</span><ol>']  # fmt: skip
        for part in o["parts"]:
            items = "".join(
                f"<li>{_e(sc['title'])} <span class='muted'>{_e(_cut(str(sc.get('text', '')), 80))}</span>"
                "</li>"
                for sc in part["scenes"]
            )
            out.append(f"<li>{_e(part['title'])}<ul>{items}</ul></li>")
        out.append("</ol>")
        if o["characters"]:
            chars = "".join(
                f"<tr><td>{_e(c['name'])}</td><td>{_e(', '.join(c.get('aliases', [])))}</td></tr>"
                for c in o["characters"]
            )
            out.append(f"<table><tr><th>character</th><th>also called</th></tr>{chars}</table>")
        if o["plot_points"]:
            rows = "".join(
                f"<tr><td>{(p.get('order') or 0) + 1}</td><td>{_e(p.get('actor'))}</td>"
                f"<td>{_e(p.get('summary'))}</td></tr>"
                for p in o["plot_points"]
            )
            out.append(f"<table><tr><th>#</th><th>who</th><th>what</th></tr>{rows}</table>")
        out.append("</div>")
        return "".join(out)

    def json(self) -> Any:
        return self.outline
