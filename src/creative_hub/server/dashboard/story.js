/* creative-hub dashboard: the stories pages (#/stories, #/story/<id>).  Plain JavaScript, no build step.
 *
 * The storyline chart is the narrative chart of StoryExplorer / xkcd 657: scenes left to right, one
 * line per character, the lines of the characters who share a scene drawn together there.  Parts
 * are bands behind the scenes; clicking a character (its line, name or legend entry) highlights its
 * journey and lists what it does, in order.  The page follows the story live: every narrative event
 * of this story that arrives over SSE redraws it from GET /v1/stories/<id>.
 *
 * Uses the helpers of app.js (h, svg, api, enc, LiveStream, state, PALETTE, notice, when, clip);
 * this file is loaded first and only defines functions.
 */
"use strict";

const STORY_LAYOUT = { L: 130, R: 24, T: 34, B: 18, GAP_IN: 15, GAP_OUT: 30, MIN_COL: 46, MAX_COL: 96 };

async function pageStories(view) {
  const stories = await api("/v1/stories");
  view.append(h("h1", {}, "Stories"));
  if (!stories.length) {
    view.append(h("div", { class: "panel empty" }, "No stories yet: creative-hub ingest story FILE, or publish creative.narrative.fragment events."));
    return;
  }
  view.append(h("div", { class: "panel" }, h("table", { class: "shaped", id: "stories" },
    h("thead", {}, h("tr", {}, ["story", "scenes", "characters", "plot points", "insights", "updated"].map((c) => h("th", {}, c)))),
    h("tbody", {}, stories.map((s) => h("tr", {},
      h("td", {}, h("a", { href: `#/story/${enc(s.story)}` }, s.title), h("span", { class: "subject" }, ` ${s.story}`)),
      h("td", {}, s.scenes), h("td", {}, s.characters), h("td", {}, s.plot_points), h("td", {}, s.insights),
      h("td", {}, when(s.updated))))))));
}

async function pageStory(view, story) {
  const status = h("span", { class: "status" }, "connecting…");
  const title = h("h1", {}, story);
  const body = h("div", { id: "story-body" }, h("div", { class: "panel empty" }, "loading…"));
  view.append(title, h("div", { class: "toolbar" }, h("a", { href: "#/stories" }, "← all stories"), status), body);
  const ui = { story, focus: null, data: null, topics: new Set() };
  const load = async () => {
    ui.data = await api(`/v1/stories/${enc(story)}?missing=empty`);
    if (!ui.data.events) {
      body.replaceChildren(h("div", { class: "panel empty", id: "story-waiting" }, "No event of this story yet: it appears here as soon as one is published."));
      return;
    }
    title.textContent = ui.data.title;
    drawStory(body, ui);
    for (const t of ui.data.follow || ui.data.topics) follow(t);
  };
  let pending = null;
  const reload = () => {
    clearTimeout(pending);
    pending = setTimeout(() => load().catch((e) => notice(e.message)), 120);
  };
  // Live: any narrative event of this story, wherever it is published, redraws the page.
  const follow = (topic) => {
    if (ui.topics.has(topic)) return;
    ui.topics.add(topic);
    state.live.push(new LiveStream(topic, {
      tail: 0,
      onStatus: (s, detail) => { status.className = `status ${s}`; status.textContent = s === "live" ? "live" : detail; },
      onEvent: (ev) => { if (ev.data && ev.data.story === story) reload(); },
    }));
  };
  follow("creative.narrative");
  await load();
}

function drawStory(body, ui) {
  const d = ui.data;
  const colors = new Map(d.characters.map((c, i) => [c.name, PALETTE[i % PALETTE.length]]));
  const byPoint = new Map();
  for (const ins of d.insights) {
    for (const f of ins.findings) for (const p of f.plot_points || []) {
      if (!byPoint.has(p)) byPoint.set(p, []);
      byPoint.get(p).push({ ins, f });
    }
  }
  const chart = h("div", { class: "panel storyline", id: "storyline" });
  const journey = h("div", { class: "panel", id: "journey", hidden: true });
  const legend = h("div", { class: "legend cast", id: "cast" }, d.characters.map((c) => h("button", {
    type: "button", class: "who", "data-character": c.name, title: c.aliases.length ? `also: ${c.aliases.join(", ")}` : c.name,
    onclick: () => focusOn(c.name),
  }, h("i", { style: `background:${colors.get(c.name)}` }), c.name, c.aliases.length ? h("small", {}, ` (${c.aliases.slice(0, 3).join(", ")})`) : null)));
  const points = h("ol", { class: "points", id: "plot-points" }, d.plot_points.map((p) => h("li", {
    "data-id": p.id, "data-characters": JSON.stringify(p.characters) },
    p.actor ? h("span", { class: "chip", style: `border-color:${colors.get(p.actor) || "#888"}` }, p.actor) : null, " ",
    h("a", { href: p.id.startsWith("outline:") ? null : `#/event/${enc(p.id)}` }, p.summary),
    p.generated ? h("span", { class: "badge" }, "generated") : null,
    p.part ? h("span", { class: "subject" }, ` ${p.part}`) : null,
    p.evidence && p.evidence !== p.summary ? h("blockquote", { class: "evidence" }, p.evidence) : null,
    (byPoint.get(p.id) || []).map(({ ins, f }) => h("div", { class: `flag ${f.flag || ins.kind}` },
      h("a", { href: `#/event/${enc(ins.id)}` }, ins.kind), `: ${f.statement}`)))));
  const sections = [
    h("div", { class: "meta" }, `${d.scenes.length} scenes · ${d.characters.length} characters · ${d.plot_points.length} plot points · ${d.parts.length || 1} part${d.parts.length > 1 ? "s" : ""}`),
    legend, chart, journey,
    h("h2", {}, "Insights"), insightsPanel(d),
    h("h2", {}, "Plot points"), h("div", { class: "panel" }, d.plot_points.length ? points : h("div", { class: "empty" }, "No plot points yet.")),
    h("h2", {}, "Revisions and forks"), revisionsPanel(d),
  ];
  body.replaceChildren(...sections);
  drawStoryline(chart, d, colors, focusOn);
  if (ui.focus) focusOn(ui.focus, true);

  function focusOn(name, keep) {
    ui.focus = !keep && ui.focus === name ? null : name;
    const on = ui.focus;
    const svgEl = chart.querySelector("svg");
    if (svgEl) svgEl.classList.toggle("focused", Boolean(on));
    for (const el of body.querySelectorAll("[data-character]")) el.classList.toggle("on", el.dataset.character === on);
    for (const li of points.children) li.classList.toggle("on", Boolean(on) && JSON.parse(li.dataset.characters).includes(on));
    journey.hidden = !on;
    if (!on) return;
    const mine = d.plot_points.filter((p) => p.characters.includes(on));
    const scenes = d.scenes.filter((s) => s.characters.includes(on));
    journey.replaceChildren(h("h2", {}, `${on}'s journey`),
      h("div", { class: "meta" }, `in ${scenes.length} of ${d.scenes.length} scenes: ${scenes.map((s) => s.title).join(" → ")}`),
      mine.length ? h("ol", { class: "points" }, mine.map((p) => h("li", {}, p.summary))) : h("div", { class: "empty" }, "No plot point of theirs yet."));
  }
}

// The narrative chart itself: columns are scenes, each character a path through the scenes it is in.
function drawStoryline(box, d, colors, onPick) {
  const { L, R, T, B, GAP_IN, GAP_OUT, MIN_COL, MAX_COL } = STORY_LAYOUT;
  const scenes = d.scenes;
  if (!scenes.length) { box.append(h("div", { class: "empty" }, "No scenes yet.")); return; }
  const span = new Map(); // character -> [first, last] scene index
  scenes.forEach((s, i) => s.characters.forEach((c) => {
    const r = span.get(c);
    span.set(c, r ? [r[0], i] : [i, i]);
  }));
  const col = Math.max(MIN_COL, Math.min(MAX_COL, Math.floor(900 / scenes.length)));
  const X = (i) => L + i * col;
  let order = [];
  const ys = new Map([...span.keys()].map((c) => [c, new Map()]));
  const groups = [];
  let bottom = T;
  scenes.forEach((s, i) => {
    for (const c of s.characters) if (span.get(c)[0] === i && !order.includes(c)) order.push(c);
    // The scene's characters come together where the first of them already is.
    const present = order.filter((c) => s.characters.includes(c));
    if (present.length) {
      const at = order.indexOf(present[0]);
      const rest = order.filter((c) => !present.includes(c));
      const before = rest.filter((c) => order.indexOf(c) < at);
      order = [...before, ...present, ...rest.filter((c) => !before.includes(c))];
    }
    let y = T, prev = null, lo = null, hi = null;
    for (const c of order) {
      const [a, b] = span.get(c);
      if (i < a || i > b) continue;
      const inScene = s.characters.includes(c);
      if (prev !== null) y += inScene && prev ? GAP_IN : GAP_OUT;
      ys.get(c).set(i, y);
      if (inScene) { lo = lo === null ? y : lo; hi = y; }
      prev = inScene;
    }
    groups.push(lo === null ? null : [lo, hi]);
    bottom = Math.max(bottom, y);
  });
  const width = L + (scenes.length - 1) * col + R + 40;
  const height = bottom + B + 10;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Storyline of ${d.title}: ${span.size} characters across ${scenes.length} scenes` });
  // Parts: bands behind the scenes they hold (one band for a story without parts).
  const bands = [];
  scenes.forEach((s, i) => {
    const name = s.part || (d.parts.length ? "" : d.title);
    const last = bands[bands.length - 1];
    if (last && last.name === name) last.to = i; else bands.push({ name, from: i, to: i });
  });
  bands.forEach((b, k) => {
    const x = X(b.from) - col / 2;
    const w = (b.to - b.from + 1) * col;
    root.append(svg("g", { class: "part-band", "data-part": b.name },
      svg("rect", { x, y: 0, width: w, height, class: k % 2 ? "band odd" : "band" }),
      svg("text", { x: x + 6, y: 14, class: "band-label" }, clip(b.name || "—", Math.max(4, Math.floor(w / 7))))));
  });
  scenes.forEach((s, i) => {
    const g = groups[i];
    if (!g) return;
    root.append(svg("rect", { class: "meet", x: X(i) - 9, y: g[0] - 6, width: 18, height: g[1] - g[0] + 12, rx: 8, "data-scene": s.key },
      svg("title", {}, `${s.title}: ${s.characters.join(", ")}`)));
  });
  for (const [c, [a, b]] of span) {
    const pts = [];
    for (let i = a; i <= b; i++) pts.push([X(i), ys.get(c).get(i)]);
    let path = `M${pts[0][0] - 8},${pts[0][1]} L${pts[0][0] + 8},${pts[0][1]}`;
    for (let k = 1; k < pts.length; k++) {
      const [x0, y0] = pts[k - 1], [x1, y1] = pts[k];
      const mx = (x0 + x1) / 2;
      path += ` C${mx},${y0} ${mx},${y1} ${x1 - 8},${y1} L${x1 + 8},${y1}`;
    }
    const color = colors.get(c) || "#888";
    root.append(svg("path", { class: "char-line", d: path, stroke: color, "data-character": c, onclick: () => onPick(c) },
      svg("title", {}, c)));
    root.append(svg("text", { class: "char-label", x: pts[0][0] - 12, y: pts[0][1] + 4, "text-anchor": "end", fill: color,
      "data-character": c, onclick: () => onPick(c) }, clip(c, 18)));
  }
  box.append(h("div", { class: "scroll" }, root));
}

function insightsPanel(d) {
  if (!d.insights.length) return h("div", { class: "panel empty", id: "insights" }, "No insights yet: run creative-hub agent run creative_hub.agents.builtin:story_insight");
  return h("div", { class: "cards", id: "insights" }, d.insights.map((ins) => h("div", { class: "card", "data-kind": ins.kind },
    h("strong", {}, ins.kind), " ", h("a", { href: `#/event/${enc(ins.id)}` }, "lineage"),
    h("p", {}, ins.summary),
    ins.findings.length ? h("ul", {}, ins.findings.map((f) => h("li", {}, f.flag ? h("span", { class: "badge" }, f.flag.replace(/_/g, " ")) : null, " ", f.statement,
      f.values && f.values.length ? h("span", { class: "subject" }, ` values: ${f.values.join(", ")}`) : null,
      (f.evidence || []).slice(0, 2).map((e) => h("blockquote", { class: "evidence" }, clip(e, 240)))))) : null,
    h("div", { class: "meta" }, `by ${ins.creator} with ${ins.modelprovider || "?"}/${ins.model || "?"} · from ${ins.inputs.length} input${ins.inputs.length === 1 ? "" : "s"} · ${when(ins.time)}`))));
}

function revisionsPanel(d) {
  if (!d.revisions.length) return h("div", { class: "panel empty", id: "revisions" }, "No revisions or forks.");
  return h("div", { class: "panel" }, h("ul", { class: "events", id: "revisions" }, d.revisions.map((r) => h("li", {},
    h("span", { class: "when" }, when(r.time)), h("span", { class: "kind" }, h("span", { class: "chip" }, r.relation)),
    h("span", { class: "who" }, r.creator || ""),
    h("span", { class: "what" }, h("a", { href: `#/event/${enc(r.id)}` }, r.title || r.id),
      h("span", { class: "subject" }, ` ${r.relation} of ${(r.of || "").slice(0, 8)}`))))));
}
