"""Rich displays for a notebook: events, receipts, tail tables, lineage graphs, story outlines.

Each is a plain object with ``_repr_html_`` and ``_repr_mimebundle_`` (the
IPython display protocol), so JupyterLab, the classic notebook, VS Code and
nbconvert all render them without a front-end extension.  Every string that
came from the hub is HTML-escaped: an event's text is someone else's input.

    EventView(stored)            # one event: header and data
    ReceiptView(receipt)         # where a publish went
    EventTable(stored_events)    # a tail
    LineageView(lineage_dict)    # the lineage tree as an SVG graph
    OutlineView(title, fragments)  # a story's parts, scenes and fragments
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = ["EventTable", "EventView", "LineageView", "OutlineView", "ReceiptView", "lineage_svg"]

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
class OutlineView(_View):
    """A story as the log holds it: parts, scenes and the fragments in order.

    ``fragments`` are the data of ``creative.narrative.fragment`` events (the
    newest revision of each), with ``order``, ``part`` (or ``chapter``) and ``scene``.
    """

    def __init__(self, story: str, fragments: list[dict[str, Any]], title: str | None = None) -> None:
        self.story = story
        self.title = title or story
        self.fragments = sorted(fragments, key=lambda f: (f.get("order") is None, f.get("order") or 0))

    def _tree(self) -> list[tuple[str | None, list[tuple[str | None, list[dict[str, Any]]]]]]:
        parts: list[tuple[str | None, list[tuple[str | None, list[dict[str, Any]]]]]] = []
        for f in self.fragments:
            part, scene = f.get("part") or f.get("chapter"), f.get("scene")
            if not parts or parts[-1][0] != part:
                parts.append((part, []))
            scenes = parts[-1][1]
            if not scenes or scenes[-1][0] != scene:
                scenes.append((scene, []))
            scenes[-1][1].append(f)
        return parts

    def text(self) -> str:
        lines = [self.title]
        for part, scenes in self._tree():
            if part:
                lines.append(f"  {part}")
            for scene, frags in scenes:
                if scene:
                    lines.append(f"    {scene}")
                lines.extend(f"      - {f.get('title')}" for f in frags)
        return "\n".join(lines)

    def html(self) -> str:
        out = [f'{_STYLE}<div class="chub outline"><b>{_e(self.title)}</b> '
               f'<span class="muted">{len(self.fragments)} fragments</span><ol>']  # fmt: skip
        for part, scenes in self._tree():
            out.append(f"<li>{_e(part or '(no part)')}<ol>")
            for scene, frags in scenes:
                items = "".join(
                    f"<li>{_e(f.get('title'))} <span class='muted'>{_e(_cut(str(f.get('text', '')), 80))}"
                    "</span></li>"
                    for f in frags
                )
                out.append(f"<li>{_e(scene or '(no scene)')}<ul>{items}</ul></li>")
            out.append("</ol></li>")
        out.append("</ol></div>")
        return "".join(out)

    def json(self) -> Any:
        return {"story": self.story, "title": self.title, "fragments": self.fragments}
