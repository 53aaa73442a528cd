// Objects: browse by pipeline and prefix with the query API's cursor, search by id, and each object
// drawn as its type deserves, kept current over server-sent events.
import { get, objectPath, watch } from "./api.js";
import { graphDrawing, lineChart, workflowTimeline } from "./charts.js";
import { fmt, h, show, table } from "./dom.js";

const PAGE = 50;
export const hlcTime = (hlc) => new Date(Number(BigInt(hlc) >> 16n)).toISOString();
const secTime = (t) => new Date(t * 1000).toISOString();

function summary(o) {
  const v = o.value;
  switch (o.type) {
    case "gset": case "orset": return `${v.length} member(s)`;
    case "timeseries": return `${v.length} point(s)`;
    case "graph": return `${v.vertices.length} vertices, ${v.edges.length} edges`;
    case "workflow": return `state ${v.state}`;
    default: return fmt(v);
  }
}

export async function objectsPage(root, params) {
  const { pipelines } = await get("/api/pipelines");
  const prefixSel = h("select", { id: "prefix-pick" }, h("option", { value: "" }, "(every prefix)"));
  for (const [pipe, prefixes] of Object.entries(pipelines)) {
    prefixSel.append(h("optgroup", { label: pipe }, Object.entries(prefixes).map(([p, t]) => h("option", { value: `${p}:` }, `${p}: (${t})`))));
  }
  const prefix = h("input", { id: "prefix", value: params.get("prefix") || "", size: 24, placeholder: "id prefix, e.g. ctr:" });
  prefixSel.value = [...prefixSel.options].some((o) => o.value === prefix.value) ? prefix.value : "";
  const search = h("input", { id: "search", placeholder: "object id, e.g. ctr:orders", size: 36 });
  const listing = h("div", { id: "listing" });
  const cursors = [""]; // the `after` of each page seen, for Previous
  let page = 0;
  const load = async () => {
    const body = await get("/api/objects", { prefix: prefix.value, after: cursors[page], limit: params.get("limit") || PAGE });
    const rows = body.objects.map((o) => [h("a", { href: `#/object/${encodeURIComponent(o.object_id)}`, class: "oid" }, o.object_id), o.type, summary(o), o.ops]);
    if (body.next) cursors[page + 1] = body.next;
    show(listing,
      table(["object", "type", "value", "ops"], rows),
      h("div", { class: "toolbar" },
        h("button", { id: "prev", disabled: page === 0 || undefined, onclick: () => { page--; load(); } }, "← Previous"),
        h("span", { class: "muted" }, `page ${page + 1} · ${body.objects.length} object(s)`),
        h("button", { id: "next", disabled: !body.next || undefined, onclick: () => { page++; load(); } }, "Next →")));
  };
  const browse = (p) => { location.hash = `#/objects?prefix=${encodeURIComponent(p)}`; };
  prefixSel.addEventListener("change", () => browse(prefixSel.value));
  prefix.addEventListener("change", () => browse(prefix.value));
  show(root,
    h("h2", {}, "Objects"),
    h("div", { class: "toolbar" }, "Pipeline prefix ", prefixSel, prefix,
      h("form", { onsubmit: (e) => { e.preventDefault(); if (search.value) location.hash = `#/object/${encodeURIComponent(search.value.trim())}`; } },
        search, h("button", { type: "submit" }, "Open"))),
    listing);
  await load();
}

function counterCard(o) {
  const c = o.detail.contributions;
  return h("div", { class: "card" },
    h("div", { class: "big", id: "value" }, fmt(o.value)),
    c ? [h("h3", {}, "Contribution of each region"), table(["region", "net"], Object.entries(c).map(([r, n]) => [r, n]))]
      : h("p", { class: "muted" }, `per-region contributions unavailable: ${o.detail.history_error || "no archive"}`));
}

function setCard(o) {
  return h("div", { class: "card" }, h("h3", {}, `${o.value.length} member(s)`),
    h("ul", { class: "members", id: "members" }, o.value.map((m) => h("li", {}, fmt(m)))));
}

function registerCard(o) {
  const r = o.detail.register;
  return h("div", { class: "card" },
    h("div", { class: "big", id: "value" }, fmt(o.value)),
    r ? table(["writer", "region", "HLC", "time", "writes seen", `why it won (${o.detail.resolver})`],
      [[r.writer, r.region, String(r.hlc), r.time, r.writes, r.why]])
      : h("p", { class: "muted" }, `writer unknown: ${o.detail.history_error || "not archived yet"}`));
}

// `state` outlives a redraw (a live change redraws the card): the user's window and path stay.
async function timeseriesCard(o, state) {
  const win = h("input", { id: "window", type: "number", value: state.window || 60, min: 1, size: 6 });
  const agg = h("select", { id: "agg" }, ["mean", "sum", "count", "min", "max", "p50", "p90", "p95", "p99"].map((a) => h("option", {}, a)));
  const from = h("input", { id: "from", placeholder: "from (epoch s)", size: 14 });
  const to = h("input", { id: "to", placeholder: "to (epoch s)", size: 14 });
  const raw = h("div", {}), buckets = h("div", {});
  if (state.agg) agg.value = state.agg;
  from.value = state.from || ""; to.value = state.to || "";
  const draw = async () => {
    Object.assign(state, { window: win.value, agg: agg.value, from: from.value, to: to.value });
    const range = { from: from.value, to: to.value };
    const [pts, agr] = await Promise.all([
      get(objectPath(o.object_id, "range"), range),
      get(objectPath(o.object_id, "range"), { ...range, window: win.value, agg: agg.value }),
    ]);
    show(raw, lineChart(pts.points.map((p) => ({ x: p.timestamp, y: p.value })), { title: "points", xLabel: secTime, id: "ts-chart" }));
    show(buckets, lineChart(agr.buckets.map((b) => ({ x: b.start, y: b.value })), { title: `${agr.agg} per ${agr.window} s`, xLabel: secTime, bars: true, id: "ts-buckets" }));
  };
  const card = h("div", { class: "card" },
    h("div", { class: "toolbar" }, from, to, "window (s) ", win, agg, h("button", { onclick: draw }, "Apply")), raw, buckets);
  await draw();
  return card;
}

async function graphCard(o, state) {
  const { vertices, edges } = o.value;
  const a = h("select", { id: "path-from" }, vertices.map((v) => h("option", {}, v)));
  const b = h("select", { id: "path-to" }, vertices.map((v) => h("option", {}, v)));
  if (vertices.length > 1) b.value = vertices[vertices.length - 1];
  if (vertices.includes(state.pathFrom)) a.value = state.pathFrom;
  if (vertices.includes(state.pathTo)) b.value = state.pathTo;
  const drawing = h("div", { id: "graph" }, graphDrawing(vertices, edges));
  const result = h("span", { id: "path-result" });
  const find = async () => {
    Object.assign(state, { pathFrom: a.value, pathTo: b.value });
    const r = await get(objectPath(o.object_id, "path"), { from: a.value, to: b.value });
    result.textContent = r.path ? `path: ${r.path.join(" → ")}` : "no path";
    show(drawing, graphDrawing(vertices, edges, r.path || []));
  };
  if (state.pathFrom) await find();
  return h("div", { class: "card" }, h("div", { class: "toolbar" }, "shortest path from ", a, " to ", b,
    h("button", { id: "path-go", onclick: find }, "Find"), result), drawing);
}

function workflowCard(o) {
  const steps = o.detail.timeline || [];
  return h("div", { class: "card" },
    h("div", { class: "big", id: "value" }, o.value.state),
    workflowTimeline(steps, hlcTime),
    table(["#", "time", "node", "transition", "outcome"], steps.map((t) => [
      t.index, hlcTime(t.timestamp), t.node, `${t.from_state} → ${t.to_state}`,
      t.applied ? (t.rivals > 1 ? `won over ${t.rivals - 1} concurrent` : "applied")
        : h("span", { class: "bad" }, "lost (state already left)")])));
}

// What a card shows in its big `#value` line, from a view alone.
const HEADLINE = { gcounter: fmt, pncounter: fmt, lww: fmt, workflow: (v) => v.state };

function paintHeadline(view) {
  const big = document.getElementById("value"), ops = document.getElementById("ops");
  const line = view && HEADLINE[view.type];
  if (big && line) big.textContent = line(view.value);
  if (ops && view && view.ops !== undefined) ops.textContent = view.ops;
}

const CARDS = { gcounter: counterCard, pncounter: counterCard, gset: setCard, orset: setCard, lww: registerCard,
  timeseries: timeseriesCard, graph: graphCard, workflow: workflowCard };

export async function objectPage(root, id, ctx) {
  const body = h("div", { id: "object-body" });
  const live = h("span", { id: "live", class: "muted" }, "connecting…");
  let updates = 0, pending = null;
  const state = {};
  const render = async () => {
    const o = await get(objectPath(id));
    const card = CARDS[o.type] ? await CARDS[o.type](o, state) : h("pre", {}, JSON.stringify(o.value, null, 2));
    show(body,
      table(["type", "region", "ops folded", "updated"], [[o.type, o.region, h("span", { id: "ops" }, o.ops), o.updated_time]]),
      card);
  };
  show(root,
    h("h2", {}, "Object ", h("code", { id: "object-id" }, id)),
    h("div", { class: "toolbar" }, h("a", { href: `#/history/${encodeURIComponent(id)}` }, "History and replay"), live),
    body);
  await render();
  ctx.cleanup(watch(id, (event, view) => {
    live.className = "live";
    if (event === "state") { live.textContent = "live"; return; }
    updates++;
    live.textContent = `live · ${updates} update(s), last ${new Date().toISOString()}`;
    // The event carries the new view: its value and count are painted at once. The card's detail
    // (contributions, writer, timeline) needs the history, fetched by a full redraw that several
    // changes in one flush share.
    paintHeadline(view);
    if (!pending) pending = setTimeout(() => { pending = null; render(); }, 100);
  }));
}

export async function historyPage(root, id) {
  const input = h("input", { id: "history-id", value: id || "", size: 36, placeholder: "object id" });
  const out = h("div", {});
  show(root, h("h2", {}, "History"),
    h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); location.hash = `#/history/${encodeURIComponent(input.value.trim())}`; } },
      input, h("button", { type: "submit" }, "Replay")), out);
  if (!id) return;
  const full = await get(objectPath(id, "history"), { limit: 10000 });
  const ops = full.history;
  const slider = h("input", { id: "slider", type: "range", min: 0, max: Math.max(0, ops.length - 1), value: Math.max(0, ops.length - 1), step: 1 });
  const at = h("span", { id: "at" });
  const value = h("pre", { id: "at-value" }, JSON.stringify(full.value, null, 2));
  const move = async () => {
    const op = ops[Number(slider.value)];
    if (!op) return;
    at.textContent = `state at ${op.time} (after operation ${Number(slider.value) + 1} of ${ops.length})`;
    const r = await get(objectPath(id, "history"), { at: op.time, limit: 0 });
    value.textContent = JSON.stringify(r.value, null, 2);
    value.dataset.at = op.time;
  };
  slider.addEventListener("input", move);
  show(out,
    h("p", {}, `${full.type}, ${full.ops_folded} operation(s) replayed from the ${full.source}`,
      full.signature_failures.length ? h("span", { class: "bad" }, ` · ${full.signature_failures.length} signature failure(s)`) : ""),
    h("div", { class: "toolbar" }, slider, at), value,
    full.timeline.length ? lineChart(full.timeline.map(([t, v]) => ({ x: Date.parse(t) / 1000, y: v })), { title: "value over time", xLabel: secTime }) : null,
    table(["time", "operation", "signer key", "principal", "region", "dot", "kind", "args", "signature"],
      ops.map((e) => [e.time,
        h("a", { class: "op-link", href: `#/trace/${encodeURIComponent(id)}?op=${encodeURIComponent(e.op_id)}&since=${encodeURIComponent(e.time)}` }, e.op_id),
        e.key_id, e.node_id, e.region, e.dot.join("/"), e.kind, fmt(e.args),
        e.problem ? h("span", { class: "bad" }, e.problem) : h("span", { class: "ok" }, "valid")])));
  at.textContent = ops.length ? `now (${ops.length} operations)` : "no operations";
}
