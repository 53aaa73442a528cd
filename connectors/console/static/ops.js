// Regions, Rejected and Tasks: the operator's pages.
import { download, get } from "./api.js";
import { fmt, h, show, table } from "./dom.js";

export async function regionsPage(root, ctx) {
  const out = h("div", { id: "regions" }, h("p", { class: "muted" }, "asking every region…"));
  show(root, h("h2", {}, "Regions"), out);
  const draw = async () => {
    const r = await get("/api/regions");
    const lag = new Map(r.lag.map((l) => [`${l.source}>${l.target}`, l]));
    const matrix = table(["from \\ to", ...r.regions], r.regions.map((src) => [src, ...r.regions.map((dst) => {
      if (src === dst) return "—";
      const l = lag.get(`${src}>${dst}`);
      return l ? h("span", { class: l.records ? "bad" : "ok" }, `${l.records} records · ${l.seconds.toFixed(2)} s`) : "?";
    })]));
    const parts = [...new Set(Object.values(r.digests).flatMap((d) => Object.keys(d.partitions || {})))].sort((a, b) => a - b);
    const differing = new Set(r.differing_partitions);
    const digestRows = parts.map((p) => [p, ...r.regions.map((g) => {
      const d = (r.digests[g].partitions || {})[p];
      return h("span", { class: differing.has(p) ? "bad" : "ok" }, d ? d.slice(0, 12) : "(none)");
    }), differing.has(p) ? h("span", { class: "bad" }, "differ") : h("span", { class: "ok" }, "agree")]);
    show(out,
      h("h3", {}, "MirrorMaker 2 lag"), r.lag_error ? h("p", { class: "error" }, r.lag_error) : matrix,
      h("h3", {}, "State digests per partition ", h("span", { id: "agreement", class: r.agree ? "ok" : "bad" }, r.agree ? "regions agree" : "regions differ")),
      table(["partition", ...r.regions, "verdict"], digestRows),
      h("p", { class: "muted" }, `objects: ${r.regions.map((g) => `${g} ${fmt(r.digests[g].objects ?? r.digests[g].error)}`).join(", ")} · at ${r.at}`));
  };
  await draw();
  const t = setInterval(() => draw().catch(() => {}), 5000);
  ctx.cleanup(() => clearInterval(t));
}

export async function rejectedPage(root, params) {
  const f = {};
  for (const [k, ph] of [["reason", "reason contains"], ["node", "node id"], ["prefix", "object prefix"], ["since", "since (ISO time)"], ["until", "until (ISO time)"]]) {
    f[k] = h("input", { id: `f-${k}`, placeholder: ph, value: params.get(k) || "", size: 16 });
  }
  const filters = () => Object.fromEntries(Object.entries(f).map(([k, e]) => [k, e.value.trim()]));
  const out = h("div", {}), detail = h("pre", { id: "rejected-detail" }, "select a row to see the message decoded");
  const load = async () => {
    const r = await get("/api/rejected", filters());
    show(out,
      h("p", {}, `${r.total} rejected record(s) match`, r.total > r.rows.length ? ` (newest ${r.rows.length} shown)` : ""),
      table(["reason", "count"], Object.entries(r.reasons).map(([k, n]) => [k, n])),
      h("div", { id: "rejected-rows" }, table(["rejected at", "region", "reasons", "object", "node", "kind", "ingress"],
        r.rows.map((x) => [x.rejected_at, x.region, h("span", { class: "reason" }, x.reasons.join("; ")), x.object_id ?? "—", x.node_id ?? "—", x.kind ?? "—", `${x.topic}/${x.partition}@${x.offset}` + (x.index == null ? "" : `#${x.index}`)]),
        (i) => { detail.textContent = JSON.stringify(r.rows[i], null, 2); })));
  };
  show(root, h("h2", {}, "Rejected operations"),
    h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); load(); } }, Object.values(f), h("button", { type: "submit" }, "Filter"),
      h("button", { type: "button", onclick: () => download("/api/rejected", { ...filters(), format: "csv" }, "rejected.csv") }, "Export CSV"),
      h("button", { type: "button", onclick: () => download("/api/rejected", { ...filters(), format: "json" }, "rejected.json") }, "Export JSON")),
    out, h("h3", {}, "Message"), detail);
  await load();
}

export async function tasksPage(root) {
  const r = await get("/api/tasks");
  const states = Object.entries(r.by_state);
  show(root, h("h2", {}, "Tasks"),
    table(["state", "tasks"], states.map(([st, ts]) => [st, ts.length])),
    states.map(([st, ts]) => [h("h3", {}, st), table(["task", "pool", "attempts", "retries", "last error"],
      ts.slice(0, 200).map((t) => [t.task_id, t.pool ?? "—", t.attempts, t.retries, t.last_error ?? "—"]))]),
    h("h3", {}, `Dead letters (${r.dead_letters.length})`),
    table(["task", "at", "error"], r.dead_letters.map((d) => [d.task_id ?? "?", d.at_ms ? new Date(d.at_ms).toISOString() : "—", fmt(d.error)])));
}
