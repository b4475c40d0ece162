/* creative-hub dashboard: plain JavaScript, no build step, no CDN.
 *
 * Pages (hash routes): #/stream/<topic> live events, #/event/<id> detail and
 * lineage graph, #/peers, #/peer/<id> a peer's hub, #/activity plots,
 * #/search?q= (shown only when the server has /v1/search), #/stories and
 * #/story/<id> the storyline view (story.js).
 *
 * The token the user pastes stays in sessionStorage and goes out only as an
 * `Authorization: Bearer` header -- never in a URL.  The live stream is read
 * with fetch() rather than EventSource, because EventSource cannot send that
 * header; it resumes with Last-Event-ID after a drop, as EventSource would.
 */
"use strict";

const TOKEN_KEY = "creative-hub-token";
const MAX_ROWS = 200; // live rows kept on screen
const PALETTE = ["#3558d6", "#1f8a4c", "#c2410c", "#7c3aed", "#0e7490", "#b45309", "#be185d",
                 "#4d7c0f", "#64748b", "#0f766e"];

const state = { me: { principal: "anonymous", authenticated: false }, search: false, live: [] };

// -- small helpers ---------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const token = () => sessionStorage.getItem(TOKEN_KEY);
const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {});
const enc = encodeURIComponent;

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data || {});
  return data;
}

/** Every event of a topic (pages followed; at most `max`). */
async function allEvents(topic, max = 2000) {
  const out = [];
  let after = null;
  while (out.length < max) {
    const q = after === null ? "" : `&after=${enc(after)}`;
    const page = await api(`/v1/topics/${enc(topic)}/events?limit=1000${q}`);
    out.push(...page.events);
    if (!page.next) break;
    after = page.next;
  }
  return out;
}

function notice(message, kind = "error") {
  const el = document.getElementById("notice");
  el.textContent = message;
  el.className = `notice ${kind === "info" ? "info" : ""}`;
  el.hidden = !message;
}

function titleOf(ev) {
  const d = ev.data && typeof ev.data === "object" ? ev.data : {};
  for (const k of ["title", "summary", "message", "subject", "text", "name", "reason", "path", "url"]) {
    if (typeof d[k] === "string" && d[k]) return d[k].split("\n")[0].slice(0, 140);
  }
  return ev.subject || ev.id;
}

const shortType = (t) => (t || "").replace(/^creative\./, "");
function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

// -- live stream over fetch (SSE with a bearer header) ---------------------------------
class LiveStream {
  constructor(topic, { tail = 50, onEvent, onStatus }) {
    this.topic = topic;
    this.tail = tail;
    this.onEvent = onEvent;
    this.onStatus = onStatus || (() => {});
    this.lastId = null;
    this.controller = new AbortController();
    this.closed = false;
    this.run();
  }

  async run() {
    while (!this.closed) {
      try {
        const headers = authHeaders();
        let url = `/v1/topics/${enc(this.topic)}/stream`;
        if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
        else url += `?tail=${this.tail}`;
        const res = await fetch(url, { headers, signal: this.controller.signal });
        if (!res.ok) {
          const problem = await res.json().catch(() => ({}));
          this.onStatus("down", problem.detail || `HTTP ${res.status}`);
          if (res.status === 403 || res.status === 404 || res.status === 422) return;
        } else {
          this.onStatus("live");
          await this.read(res.body.getReader());
        }
      } catch (e) {
        if (this.closed) return;
        this.onStatus("down", "reconnecting…");
      }
      if (!this.closed) await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let id = null, data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("id:")) id = line.slice(3).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (!data) continue;
        if (id !== null) this.lastId = id;
        try { this.onEvent(JSON.parse(data), id); } catch (e) { console.warn("bad event", e); }
      }
    }
  }

  close() {
    this.closed = true;
    this.controller.abort();
  }
}

function closeLive() {
  for (const s of state.live) s.close();
  state.live = [];
}

function eventRow(ev, fresh = false) {
  return h("li", { class: fresh ? "fresh" : "", "data-id": ev.id },
    h("span", { class: "when" }, when(ev.time)),
    h("span", { class: "kind" }, h("span", { class: "chip", title: ev.type }, shortType(ev.type))),
    h("span", { class: "who" }, ev.creator || ""),
    h("span", { class: "what" }, h("a", { href: `#/event/${enc(ev.id)}` }, titleOf(ev)),
      ev.subject ? h("span", { class: "subject" }, ev.subject) : null));
}

// -- pages -------------------------------------------------------------------------------
async function pageStream(view, topic) {
  topic = topic || "creative.narrative";
  const topics = await api("/v1/topics");
  const names = topics.map((t) => t.name).filter((n) => !n.startsWith("archive.") && !n.startsWith("deadletter."));
  if (!names.includes(topic)) names.unshift(topic);
  const select = h("select", { "aria-label": "Topic", onchange: (e) => { location.hash = `#/stream/${e.target.value}`; } },
    names.sort().map((n) => h("option", { value: n, selected: n === topic }, n)));
  const status = h("span", { class: "status" }, "connecting…");
  const list = h("ul", { class: "events", id: "live-events" });
  const empty = h("div", { class: "empty" }, "Nothing yet: new events appear here as they are published.");
  view.append(h("h1", {}, "Live events"),
    h("div", { class: "toolbar" }, select, status),
    h("div", { class: "panel" }, empty, list));
  const seen = new Set();
  state.live.push(new LiveStream(topic, {
    tail: 50,
    onStatus: (s, detail) => { status.className = `status ${s}`; status.textContent = s === "live" ? "live" : detail; },
    onEvent: (ev) => {
      if (seen.has(ev.id)) return;
      seen.add(ev.id);
      empty.remove();
      list.prepend(eventRow(ev, true));
      while (list.children.length > MAX_ROWS) list.lastChild.remove();
    },
  }));
}

async function pageEvent(view, id) {
  const stored = await api(`/v1/events/${enc(id)}`);
  const ev = stored.event;
  const meta = [["type", ev.type], ["topic", `${stored.topic} @ ${stored.position}`], ["creator", ev.creator],
    ["time", ev.time], ["subject", ev.subject], ["hub", ev.hub], ["visibility", ev.visibility],
    ["source", ev.source], ["id", ev.id], ["signed", ev.signature ? "yes (Ed25519)" : "no"],
    // Provenance of AI work: the model that made it, its configuration, the events it was made from.
    ["model", ev.model ? `${ev.modelprovider}/${ev.model}` : ev.modelprovider], ["config hash", ev.confighash],
    ["inputs", ev.inputs]];
  const inputLinks = (v) => v.split(" ").flatMap((i, n) => [n ? " " : "", h("a", { href: `#/event/${enc(i)}` }, i.slice(0, 8))]);
  view.append(h("h1", {}, titleOf(ev)),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("dl", { class: "kv" },
        meta.filter(([, v]) => v).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, k === "creator"
          ? h("a", { href: `#/peer/${enc(v)}` }, v) : k === "inputs" ? inputLinks(v) : v)]))),
      h("pre", { "aria-label": "data" }, JSON.stringify(ev.data, null, 2))));
  view.append(h("h2", {}, "Lineage"));
  const graph = h("div", { class: "panel graph", id: "lineage" }, h("div", { class: "empty" }, "loading…"));
  view.append(graph);
  const shaped = h("div", { class: "panel", id: "shaped-by" });
  view.append(shaped);
  api(`/v1/lineage/${enc(id)}`).then((lin) => { drawLineage(graph, lin); drawShapedBy(shaped, lin.shaped_by); }).catch((e) => {
    graph.replaceChildren(h("div", { class: "empty" }, `No lineage: ${e.message}`));
    shaped.remove();
  });
  if (state.me.authenticated) view.append(eventActions(ev, stored.topic));
}

function eventActions(ev, topic) {
  const box = h("div", {});
  box.append(h("h2", {}, "Respond"));
  const feedback = h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    const text = e.target.text.value.trim();
    if (!text) return;
    try {
      await api(`/v1/events/${enc(ev.id)}/feedback`, { method: "POST", body: { text } });
      notice("Feedback sent.", "info");
      e.target.reset();
    } catch (err) { notice(err.message); }
  } }, h("input", { type: "text", name: "text", placeholder: "Feedback…", "aria-label": "Feedback" }),
    h("button", { type: "submit" }, "Send feedback"));
  const fork = h("button", { type: "button", onclick: async () => {
    try {
      const r = await api(`/v1/events/${enc(ev.id)}/fork`, { method: "POST", body: {} });
      location.hash = `#/event/${enc(r.id)}`;
    } catch (err) { notice(err.message); }
  } }, "Fork into my drafts");
  box.append(feedback, h("div", { class: "toolbar", style: "margin-top:8px" }, fork));
  const owner = topic.startsWith("peer.") ? topic.split(".")[1] : null;
  if (owner && owner !== state.me.principal && topic.endsWith(".published")) {
    box.append(h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      const body = { on: ev.id, title: e.target.title.value.trim() || "A change",
        changes: e.target.text.value ? { text: e.target.text.value } : {} };
      try {
        await api(`/v1/peers/${enc(owner)}/contributions`, { method: "POST", body });
        notice(`Proposed to ${owner}.`, "info");
        e.target.reset();
      } catch (err) { notice(err.message); }
    } }, h("input", { type: "text", name: "title", placeholder: "Proposal title", "aria-label": "Proposal title" }),
      h("input", { type: "text", name: "text", placeholder: "New text (optional)", "aria-label": "New text" }),
      h("button", { type: "submit" }, `Propose to ${owner}`)));
  }
  return box;
}

// Who shaped the work: people, and agents with their models and the inputs each used.
function drawShapedBy(container, shaped) {
  if (!shaped) { container.remove(); return; }
  const link = (i) => h("a", { href: `#/event/${enc(i)}` }, i.slice(0, 8));
  const rows = [
    ...shaped.people.map((p) => [h("a", { href: `#/peer/${enc(p)}` }, p), "person", "", ""]),
    ...shaped.agents.map((a) => [h("a", { href: `#/peer/${enc(a.agent)}` }, a.agent), "agent",
      a.models.join(", ") || "not declared", a.inputs.flatMap((i, n) => [n ? " " : "", link(i)])]),
    ...shaped.others.map((o) => [o, "source or not registered", "", ""])];
  container.replaceChildren(h("table", { class: "shaped" },
    h("caption", {}, "Shaped by"),
    h("thead", {}, h("tr", {}, ["who", "kind", "model", "inputs used"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
}

// Lineage: ancestors to the left, the event, then decisions and feedback on the right.
function drawLineage(container, lin) {
  const W = 190, H = 54, GX = 70, GY = 18, PAD = 12;
  const nodes = new Map();
  const edges = [];
  function place(n, depth) {
    if (!nodes.has(n.id) || nodes.get(n.id).depth < depth) nodes.set(n.id, { n, depth });
    for (const p of n.parents || []) {
      edges.push({ from: p.id, to: n.id, label: p.relation, dashed: false });
      place(p, depth + 1);
    }
  }
  place(lin.root, 0);
  const maxDepth = Math.max(...[...nodes.values()].map((x) => x.depth));
  const side = [...(lin.decisions || []), ...(lin.feedback || [])];
  for (const n of side) {
    nodes.set(n.id, { n, depth: -1 });
    const target = n.links && n.links.causation && nodes.has(n.links.causation) ? n.links.causation : lin.root.id;
    edges.push({ from: n.id, to: target, label: n.relation, dashed: true });
  }
  const columns = new Map();
  for (const x of nodes.values()) {
    const col = maxDepth - x.depth; // depth -1 (side nodes) lands right of the event
    if (!columns.has(col)) columns.set(col, []);
    columns.get(col).push(x);
  }
  let height = 0;
  for (const [col, xs] of columns) {
    xs.forEach((x, i) => { x.x = PAD + col * (W + GX); x.y = PAD + i * (H + GY); });
    height = Math.max(height, PAD * 2 + xs.length * (H + GY) - GY);
  }
  const width = PAD * 2 + columns.size * (W + GX) - GX;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Lineage of ${lin.root.id}` });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#888" }))));
  for (const e of edges) {
    const a = nodes.get(e.from), b = nodes.get(e.to);
    if (!a || !b) continue;
    // Ancestors point forward in time (left to right); side nodes point back at what they are about.
    const [x1, y1] = a.x < b.x ? [a.x + W, a.y + H / 2] : [a.x, a.y + H / 2];
    const [x2, y2] = a.x < b.x ? [b.x, b.y + H / 2] : [b.x + W, b.y + H / 2];
    const mx = (x1 + x2) / 2;
    root.append(svg("path", { class: `edge ${e.dashed ? "dashed" : ""}`, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
      "marker-end": "url(#arrow)" }));
    root.append(svg("text", { class: "elabel", x: mx, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, e.label));
  }
  for (const { n, x, y } of nodes.values()) {
    const title = n.title || n.subject || n.id.slice(0, 8);
    const sig = n.signature === "valid" ? " ✓" : n.signature === "invalid" ? " ✗" : "";
    const g = svg("g", { class: `node ${n.relation}`, transform: `translate(${x},${y})`, "data-id": n.id,
      onclick: () => { if (n.relation !== "folded") location.hash = `#/event/${enc(n.id)}`; } },
      svg("title", {}, `${n.type || "folded revision"} by ${n.creator} — ${n.id}`),
      svg("rect", { width: W, height: H, rx: 7 }),
      svg("text", { x: 10, y: 20 }, clip(`${shortType(n.type) || "folded"}${sig}`, 26)),
      svg("text", { x: 10, y: 38, class: "sub" }, clip(`${n.creator}${n.made_with ? ` (${n.made_with})` : ""} · ${title}`, 30)));
    root.append(g);
  }
  container.replaceChildren(root);
}

const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

async function pagePeers(view) {
  const peers = await api("/v1/principals");
  view.append(h("h1", {}, "Peers"));
  if (!peers.length) view.append(h("div", { class: "panel empty" }, "No principals yet: creative-hub principal add NAME"));
  view.append(h("div", { class: "cards" }, peers.map((p) => h("div", { class: "card" },
    h("a", { href: `#/peer/${enc(p.id)}` }, h("strong", {}, p.name)),
    h("span", { class: "meta" }, ` ${p.id} · ${p.kind}`)))));
}

async function pagePeer(view, peer) {
  const mine = state.me.authenticated && state.me.principal === peer;
  view.append(h("h1", {}, `${peer}'s hub`));
  const body = h("div", { id: "peer-body" });
  view.append(body);
  const render = async () => {
    const [published, contributions, feedback, drafts] = await Promise.all([
      allEvents(`peer.${peer}.published`), allEvents(`peer.${peer}.contributions`),
      allEvents(`peer.${peer}.feedback`),
      // Drafts are the owner's alone: others do not even ask (the server would refuse).
      mine ? allEvents(`peer.${peer}.drafts`) : Promise.resolve(null)]);
    const decided = new Map();
    for (const s of contributions) {
      if (s.event.type !== "creative.contributions.proposed" && s.event.causationid) decided.set(s.event.causationid, s.event);
    }
    const proposals = contributions.filter((s) => s.event.type === "creative.contributions.proposed");
    const open = proposals.filter((s) => !decided.has(s.event.id));
    const closed = proposals.filter((s) => decided.has(s.event.id));
    const sections = [];
    if (drafts !== null) sections.push(section("Drafts (only you see these)", "drafts", drafts.slice().reverse().map((s) => eventRow(s.event))));
    sections.push(section("Published", "published", published.slice().reverse().map((s) => eventRow(s.event))));
    sections.push(h("h2", {}, `Contributions awaiting decision (${open.length})`));
    sections.push(open.length ? h("div", { class: "cards", id: "open-contributions" }, open.map((s) => proposalCard(s.event, mine, render)))
      : h("div", { class: "panel empty", id: "open-contributions" }, "None waiting."));
    if (closed.length) {
      sections.push(h("h2", {}, "Decided"));
      sections.push(h("div", { class: "cards", id: "decided-contributions" }, closed.map((s) => {
        const d = decided.get(s.event.id);
        const kind = d.type.endsWith("accepted") ? "accepted" : "rejected";
        return h("div", { class: "card" }, h("span", { class: `badge ${kind}` }, kind), " ",
          h("a", { href: `#/event/${enc(s.event.id)}` }, s.event.data.title),
          h("span", { class: "meta" }, ` by ${s.event.creator}${d.data.reason ? ` — “${d.data.reason}”` : ""}`));
      })));
    }
    sections.push(section("Feedback", "feedback", feedback.slice().reverse().map((s) => eventRow(s.event))));
    body.replaceChildren(...sections);
  };
  await render();
  // Live: a new proposal or decision (from any tab or process) redraws the page.
  let pending = null;
  const redraw = () => { clearTimeout(pending); pending = setTimeout(() => render().catch((e) => notice(e.message)), 150); };
  for (const stream of ["contributions", "published", "feedback"]) {
    state.live.push(new LiveStream(`peer.${peer}.${stream}`, { tail: 0, onEvent: redraw }));
  }
}

function section(title, id, rows) {
  return h("div", {}, h("h2", {}, title), h("div", { class: "panel" },
    rows.length ? h("ul", { class: "events", id: `peer-${id}` }, rows) : h("div", { class: "empty", id: `peer-${id}` }, "Nothing yet.")));
}

function proposalCard(ev, mine, render) {
  const d = ev.data || {};
  const decide = (kind) => async (e) => {
    const card = e.target.closest(".card");
    card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      await api(`/v1/contributions/${enc(ev.id)}/${kind}`, { method: "POST", body: {} });
      notice(`${kind === "accept" ? "Accepted" : "Rejected"}: ${d.title}`, "info");
      await render();
    } catch (err) {
      notice(err.message);
      card.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    }
  };
  return h("div", { class: "card", "data-id": ev.id },
    h("a", { href: `#/event/${enc(ev.id)}` }, h("strong", {}, d.title || "(untitled)")),
    h("div", { class: "meta" }, `proposed by ${ev.creator} · ${when(ev.time)}`,
      d.on ? [" · on ", h("a", { href: `#/event/${enc(d.on)}` }, d.on.slice(0, 8))] : null),
    d.description ? h("p", {}, d.description) : null,
    d.changes && Object.keys(d.changes).length ? h("pre", {}, JSON.stringify(d.changes, null, 2)) : null,
    mine ? h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", "data-action": "accept", onclick: decide("accept") }, "Accept"),
      h("button", { type: "button", class: "danger", "data-action": "reject", onclick: decide("reject") }, "Reject"))
      : h("div", { class: "meta" }, "awaiting the owner's decision"));
}

async function pageActivity(view, arg) {
  // #/activity/<hours>[/event]: "event" counts each event at its own time (imported history), not when stored.
  const [hoursArg, clockArg] = String(arg || "").split("/");
  const hours = Number(hoursArg) || 24;
  const clock = clockArg === "event" ? "event" : "appended";
  const act = await api(`/v1/activity?hours=${hours}&clock=${clock}`);
  const go = (hh, cc) => { location.hash = `#/activity/${hh}${cc === "event" ? "/event" : ""}`; };
  const pick = h("select", { "aria-label": "Window", onchange: (e) => go(e.target.value, clock) },
    [[24, "last 24 hours"], [72, "last 3 days"], [168, "last 7 days"]].map(([v, l]) => h("option", { value: v, selected: v === hours }, l)));
  const clockPick = h("select", { "aria-label": "Clock", onchange: (e) => go(hours, e.target.value) },
    [["appended", "when stored"], ["event", "when it happened"]].map(([v, l]) => h("option", { value: v, selected: v === clock }, l)));
  view.append(h("h1", {}, "Activity"), h("div", { class: "toolbar" }, pick, clockPick,
    h("span", { class: "status" }, `${act.total} event${act.total === 1 ? "" : "s"}`)));
  view.append(h("h2", {}, "Events per hour by area"), chart(act.hours, act.by_area, "area"));
  view.append(h("h2", {}, "Events per hour by creator"), chart(act.hours, act.by_creator, "creator"));
}

// A stacked bar chart, one bar per hour, drawn as SVG that scales with its box.
function chart(hours, series, label) {
  const names = Object.keys(series).filter((k) => series[k].some((v) => v > 0));
  const box = h("div", { class: "panel chart", "data-chart": label });
  if (!names.length) {
    box.append(h("div", { class: "empty" }, "No events in this window."));
    return box;
  }
  const W = 760, H = 180, L = 34, B = 24, T = 8;
  const totals = hours.map((_, i) => names.reduce((a, n) => a + series[n][i], 0));
  const max = Math.max(1, ...totals);
  const step = (W - L) / hours.length;
  const bw = Math.max(1, step * 0.78);
  const y = (v) => T + (H - B - T) * (1 - v / max);
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Events per hour by ${label}` });
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    s.append(svg("line", { class: "axis", x1: L, x2: W, y1: y(v), y2: y(v) }),
      svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v));
  }
  const every = Math.ceil(hours.length / 8);
  hours.forEach((iso, i) => {
    let base = 0;
    names.forEach((n, k) => {
      const v = series[n][i];
      if (!v) return;
      s.append(svg("rect", { x: L + i * step + (step - bw) / 2, y: y(base + v), width: bw, height: y(base) - y(base + v),
        fill: PALETTE[k % PALETTE.length] }, svg("title", {}, `${n}: ${v} at ${when(iso)}`)));
      base += v;
    });
    if (i % every === 0) {
      const d = new Date(iso);
      s.append(svg("text", { x: L + i * step + step / 2, y: H - 6, "text-anchor": "middle" },
        `${String(d.getHours()).padStart(2, "0")}:00`));
    }
  });
  box.append(h("div", { class: "legend" }, names.map((n, k) => h("span", {}, h("i", { style: `background:${PALETTE[k % PALETTE.length]}` }), n))), s);
  return box;
}

async function pageSearch(view, q) {
  view.append(h("h1", {}, `Search: ${q}`));
  const result = await api(`/v1/search?q=${enc(q)}&limit=50`);
  if (!result.hits.length) {
    view.append(h("div", { class: "panel empty" }, "No matches."));
    return;
  }
  view.append(h("div", { class: "panel" }, h("ul", { class: "events" }, result.hits.map((x) => h("li", {},
    h("span", { class: "when" }, when(x.time)),
    h("span", { class: "kind" }, h("span", { class: "chip" }, shortType(x.type))),
    h("span", { class: "who" }, x.creator),
    h("span", { class: "what" }, h("a", { href: `#/event/${enc(x.id)}` }, x.title || x.id),
      h("span", { class: "subject" }, x.snippet || "")))))));
}

// -- routing, sign-in ----------------------------------------------------------------------
async function route() {
  closeLive();
  notice("");
  const view = document.getElementById("view");
  view.replaceChildren();
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : "";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === (page || "stream"));
  try {
    if (page === "event" && arg) await pageEvent(view, arg);
    else if (page === "peers") await pagePeers(view);
    else if (page === "peer" && arg) await pagePeer(view, arg);
    else if (page === "activity") await pageActivity(view, arg);
    else if (page === "stories") await pageStories(view);
    else if (page === "story" && arg) await pageStory(view, arg);
    else if (page === "search" && state.search) await pageSearch(view, new URLSearchParams(query || "").get("q") || "");
    else await pageStream(view, arg);
  } catch (e) {
    view.append(h("div", { class: "panel empty" }, e.status === 404 ? "Not found (or not yours to see)." : e.message));
  }
}

async function refreshMe() {
  try {
    state.me = await api("/v1/me");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = { principal: "anonymous", authenticated: false };
    if (e.status === 401) notice("That token was not accepted (unknown or revoked).");
  }
  document.getElementById("signin").hidden = state.me.authenticated;
  document.getElementById("whoami").hidden = !state.me.authenticated;
  document.getElementById("me").textContent = state.me.principal;
}

async function start() {
  document.getElementById("signin").addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = e.target.token.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    e.target.reset();
    await refreshMe();
    await route();
  });
  document.getElementById("signout").addEventListener("click", async () => {
    sessionStorage.removeItem(TOKEN_KEY);
    await refreshMe();
    await route();
  });
  document.getElementById("search").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = e.target.q.value.trim();
    if (q) location.hash = `#/search?q=${enc(q)}`;
  });
  // Search appears once the server has it (the index adds /v1/search).
  try {
    const openapi = await api("/openapi.json");
    state.search = Boolean(openapi.paths && openapi.paths["/v1/search"]);
  } catch (e) { state.search = false; }
  document.getElementById("search").hidden = !state.search;
  await refreshMe();
  window.addEventListener("hashchange", route);
  await route();
}

start();
