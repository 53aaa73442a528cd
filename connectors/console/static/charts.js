// Hand-written SVG charts: a line chart, bars, a graph drawing and a workflow timeline.
import { s } from "./dom.js";

const W = 720, H = 260, PAD = 40;

function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

function axisLabel(v) {
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(2);
}

// points: [{x, y}] sorted by x; xLabel formats an x for the axis.
export function lineChart(points, { title = "", xLabel = (x) => String(x), bars = false, id } = {}) {
  const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart", "data-points": points.length, id });
  svg.append(s("text", { x: PAD, y: 16 }, title));
  if (!points.length) { svg.append(s("text", { x: W / 2 - 30, y: H / 2 }, "no points")); return svg; }
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const y0 = Math.min(0, ...ys), y1 = Math.max(...ys);
  const fx = scale(Math.min(...xs), Math.max(...xs), PAD, W - PAD / 2);
  const fy = scale(y0, y1, H - PAD, PAD / 2 + 10);
  svg.append(s("line", { x1: PAD, y1: H - PAD, x2: W - PAD / 2, y2: H - PAD, stroke: "#9ca3af" }));
  svg.append(s("line", { x1: PAD, y1: PAD / 2 + 10, x2: PAD, y2: H - PAD, stroke: "#9ca3af" }));
  for (const v of [y0, (y0 + y1) / 2, y1]) svg.append(s("text", { x: 2, y: fy(v) + 4 }, axisLabel(v)));
  svg.append(s("text", { x: PAD, y: H - PAD + 16 }, xLabel(xs[0])));
  svg.append(s("text", { x: W - PAD * 4, y: H - PAD + 16 }, xLabel(xs[xs.length - 1])));
  if (bars) {
    const bw = Math.max(2, (W - PAD * 1.5) / points.length - 2);
    for (const p of points) {
      svg.append(s("rect", { class: "bar", x: fx(p.x) - bw / 2, y: fy(p.y), width: bw, height: Math.max(1, fy(y0) - fy(p.y)), fill: "#60a5fa" },
        s("title", {}, `${xLabel(p.x)}: ${p.y}`)));
    }
  } else {
    const d = points.map((p, i) => `${i ? "L" : "M"}${fx(p.x).toFixed(1)},${fy(p.y).toFixed(1)}`).join(" ");
    svg.append(s("path", { class: "series", d, fill: "none", stroke: "#2563eb", "stroke-width": 2 }));
    for (const p of points.slice(-200)) svg.append(s("circle", { cx: fx(p.x), cy: fy(p.y), r: 2.5, fill: "#2563eb" }, s("title", {}, `${xLabel(p.x)}: ${p.y}`)));
  }
  return svg;
}

// A graph laid out on a circle; `path` (a vertex list) drawn in red.
export function graphDrawing(vertices, edges, path = []) {
  const svg = s("svg", { width: W, height: 360, viewBox: `0 0 ${W} 360`, class: "graph", "data-vertices": vertices.length });
  const n = vertices.length, cx = W / 2, cy = 180, r = Math.min(150, 30 + n * 12);
  const pos = new Map(vertices.map((v, i) => [v, [cx + r * Math.cos((2 * Math.PI * i) / (n || 1)), cy + r * Math.sin((2 * Math.PI * i) / (n || 1))]]));
  const onPath = new Set(path.slice(1).map((v, i) => `${path[i]}\u0000${v}`));
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 18, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" },
    s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#6b7280" }))));
  for (const [a, b] of edges) {
    if (!pos.has(a) || !pos.has(b)) continue;
    const hot = onPath.has(`${a}\u0000${b}`) || onPath.has(`${b}\u0000${a}`);
    const [x1, y1] = pos.get(a), [x2, y2] = pos.get(b);
    svg.append(s("line", { class: hot ? "edge on-path" : "edge", x1, y1, x2, y2, stroke: hot ? "#dc2626" : "#9ca3af", "stroke-width": hot ? 3 : 1.5, "marker-end": "url(#arrow)" }));
  }
  const inPath = new Set(path);
  for (const v of vertices) {
    const [x, y] = pos.get(v);
    svg.append(s("g", { class: "vertex" },
      s("circle", { cx: x, cy: y, r: 10, fill: inPath.has(v) ? "#fecaca" : "#dbeafe", stroke: inPath.has(v) ? "#dc2626" : "#2563eb" }),
      s("text", { x: x + 13, y: y + 4 }, v)));
  }
  return svg;
}

// Workflow transitions on a time axis, one row per node; a contest's rivals are joined by a bracket.
export function workflowTimeline(steps, xLabel) {
  const nodes = [...new Set(steps.map((t) => t.node))];
  const rowH = 46, height = PAD + rowH * Math.max(1, nodes.length) + 20;
  const svg = s("svg", { width: W, height, viewBox: `0 0 ${W} ${height}`, class: "timeline", "data-steps": steps.length });
  if (!steps.length) { svg.append(s("text", { x: 20, y: 30 }, "no transitions")); return svg; }
  const ts = steps.map((t) => t.timestamp);
  const fx = scale(Math.min(...ts), Math.max(...ts), 150, W - 140);  // room for the last label
  const fy = (node) => PAD + rowH * nodes.indexOf(node);
  nodes.forEach((n) => svg.append(s("text", { x: 6, y: fy(n) + 4 }, n)));
  const byContest = new Map();
  for (const t of steps) byContest.set(t.contest, [...(byContest.get(t.contest) || []), t]);
  for (const group of byContest.values()) {
    if (group.length < 2) continue;
    const xs = group.map((t) => fx(t.timestamp)), ys = group.map((t) => fy(t.node));
    svg.append(s("rect", { class: "contest", x: Math.min(...xs) - 14, y: Math.min(...ys) - 16, width: Math.max(...xs) - Math.min(...xs) + 28, height: Math.max(...ys) - Math.min(...ys) + 32, fill: "none", stroke: "#f59e0b", "stroke-dasharray": "4 3" }));
  }
  for (const t of steps) {
    const x = fx(t.timestamp), y = fy(t.node);
    svg.append(s("g", { class: t.applied ? "step won" : "step lost" },
      s("circle", { cx: x, cy: y, r: 7, fill: t.applied ? "#16a34a" : "#fff", stroke: t.applied ? "#15803d" : "#b91c1c", "stroke-width": 2 }),
      s("text", { x: x - 20, y: y - 11 }, `${t.from_state}→${t.to_state}`),
      s("title", {}, `${xLabel(t.timestamp)} ${t.node}: ${t.from_state} → ${t.to_state} ${t.applied ? "(applied)" : "(not applied)"}`)));
  }
  return svg;
}
