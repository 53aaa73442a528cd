// The operation page: where one operation went and when (the console's side of `jarvis trace`).
import { get } from "./api.js";
import { h, s, show, table } from "./dom.js";

const W = 640, ROW = 22, PAD = 110;

// One bar per step from the written time: how far into the operation's life each step happened.
function timeline(steps, total) {
  const span = Math.max(1, total);
  const x = (ms) => PAD + ((W - PAD - 20) * ms) / span;
  const t0 = steps.length ? steps[0].at_ms : 0;
  return s("svg", { id: "trace-timeline", width: W, height: ROW * steps.length + 24, role: "img" },
    steps.map((st, i) => [
      s("text", { x: 4, y: ROW * i + 15, class: "label" }, `${st.step} ${st.region}`),
      s("rect", { x: PAD, y: ROW * i + 5, width: Math.max(2, x(st.at_ms - t0) - PAD), height: 12, class: `bar ${st.step}` }),
      s("text", { x: x(st.at_ms - t0) + 4, y: ROW * i + 15, class: "label" }, `+${st.at_ms - t0} ms`),
    ]));
}

export async function tracePage(root, objectId, params) {
  const op = h("input", { id: "trace-op", value: params.get("op") || "", size: 36, placeholder: "operation id" });
  const obj = h("input", { id: "trace-object", value: objectId || "", size: 36, placeholder: "object id" });
  const out = h("div", { id: "trace" });
  const since = params.get("since");
  show(root, h("h2", {}, "Operation"),
    h("form", { class: "toolbar", onsubmit: (e) => {
      e.preventDefault();
      location.hash = `#/trace/${encodeURIComponent(obj.value.trim())}?op=${encodeURIComponent(op.value.trim())}`;
    } }, op, obj, h("button", { type: "submit" }, "Trace")), out);
  if (!objectId || !params.get("op")) return;
  show(out, h("p", { class: "muted" }, "reading every region's topics and the archive…"));
  const t = await get("/api/trace", { op: params.get("op"), object: objectId, since: since || "" });
  show(out,
    h("p", { id: "trace-summary" }, `written in ${t.origin_region}, `,
      t.reasons ? h("span", { class: "bad" }, `rejected: ${t.reasons.join("; ")}`) : `${t.total_ms} ms end to end`,
      t.trace_id ? h("span", { id: "trace-id", class: "muted" }, ` · W3C trace ${t.trace_id}`) : ""),
    timeline(t.steps, t.total_ms),
    h("div", { id: "trace-steps" }, table(["step", "region", "at (UTC)", "+ms", "detail"],
      t.steps.map((st) => [st.step, st.region, new Date(st.at_ms).toISOString(), st.since_previous_ms, st.detail]))),
    t.missing.length ? h("p", { id: "trace-missing", class: "muted" }, `not found (yet): ${t.missing.join(", ")}`) : null,
    h("p", {}, h("a", { href: `#/history/${encodeURIComponent(objectId)}` }, "the object's history")));
}
