// The playbook as a graph: steps in layers left to right (longest path from `start` over
// forward arcs), back-edges drawn underneath. Nodes and arcs are drawn once; `update` only
// changes classes and labels, so a live run costs no layout.
import { s } from "./util.js";
import { ms } from "./run.js";

const W = 176, H = 46, GX = 64, GY = 20, PAD = 30;

function layout(run) {
  const names = [...run.steps.keys()].filter((n) => run.steps.get(n).declared);
  const out = new Map(names.map((n) => [n, []]));
  for (const arc of run.arcs.values()) if (out.has(arc.src) && out.has(arc.dst)) out.get(arc.src).push(arc);
  // DFS from `start` (then any unreached step) marks back-edges: arcs to a step on the current path.
  const back = new Set(), seen = new Set(), onPath = new Set(), order = [];
  const visit = (n) => {
    seen.add(n); onPath.add(n); order.push(n);
    for (const arc of out.get(n)) {
      if (onPath.has(arc.dst)) back.add(`${arc.src}->${arc.dst}`);
      else if (!seen.has(arc.dst)) visit(arc.dst);
    }
    onPath.delete(n);
  };
  if (out.has("start")) visit("start");
  for (const n of names) if (!seen.has(n)) visit(n);
  // Longest-path layers over forward arcs, in DFS order (a topological order of them).
  const layer = new Map(names.map((n) => [n, 0]));
  const indegree = new Map(names.map((n) => [n, 0]));
  for (const n of names) for (const a of out.get(n)) if (!back.has(`${a.src}->${a.dst}`)) indegree.set(a.dst, indegree.get(a.dst) + 1);
  const queue = order.filter((n) => indegree.get(n) === 0);
  while (queue.length) {
    const n = queue.shift();
    for (const a of out.get(n)) {
      if (back.has(`${a.src}->${a.dst}`)) continue;
      layer.set(a.dst, Math.max(layer.get(a.dst), layer.get(n) + 1));
      indegree.set(a.dst, indegree.get(a.dst) - 1);
      if (indegree.get(a.dst) === 0) queue.push(a.dst);
    }
  }
  const columns = [];
  for (const n of order) {
    const l = layer.get(n);
    (columns[l] = columns[l] || []).push(n);
  }
  // One barycentre sweep keeps arcs from crossing where it is cheap to avoid.
  const position = new Map();
  columns.forEach((col) => col.forEach((n, i) => position.set(n, i)));
  for (let l = 1; l < columns.length; l++) {
    const col = columns[l] || [];
    const weight = (n) => {
      const ups = (run.upstream.get(n) || []).filter((u) => layer.get(u) === l - 1);
      return ups.length ? ups.reduce((sum, u) => sum + position.get(u), 0) / ups.length : position.get(n);
    };
    col.sort((a, b) => weight(a) - weight(b));
    col.forEach((n, i) => position.set(n, i));
  }
  const tallest = Math.max(1, ...columns.map((c) => (c || []).length));
  const boxes = new Map();
  columns.forEach((col, l) => {
    const offset = ((tallest - col.length) * (H + GY)) / 2;
    col.forEach((n, i) => boxes.set(n, { x: PAD + l * (W + GX), y: PAD + offset + i * (H + GY) }));
  });
  const width = PAD * 2 + Math.max(1, columns.length) * (W + GX) - GX;
  const height = PAD * 2 + tallest * (H + GY) - GY + (back.size ? 40 : 0);
  return { boxes, back, width, height, bottom: PAD + tallest * (H + GY) - GY };
}

export class Graph {
  constructor(run, onSelect) {
    this.run = run;
    this.geometry = layout(run);
    const { boxes, back, width, height, bottom } = this.geometry;
    this.nodes = new Map();
    this.edges = new Map();
    const markers = ["idle", "taken", "skipped"].map((state) =>
      s("marker", { id: `arrow-${state}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: `arrowhead ${state}` })));
    const edgeLayer = s("g", { class: "edges" });
    for (const [key, arc] of run.arcs) {
      const a = boxes.get(arc.src), b = boxes.get(arc.dst);
      if (!a || !b) continue;
      let d;
      if (back.has(key)) {
        const low = bottom + 28;
        d = `M${a.x + W / 2},${a.y + H} C${a.x + W / 2},${low} ${b.x + W / 2},${low} ${b.x + W / 2},${b.y + H}`;
      } else {
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
        if (b.x - a.x > W + GX) {
          // Skips a layer: arch over the steps in between instead of running under them.
          const top = Math.min(a.y, b.y) - 14;
          d = `M${x1},${y1} C${x1 + GX},${top} ${x2 - GX},${top} ${x2 - 2},${y2}`;
        } else {
          d = `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 2},${y2}`;
        }
      }
      const path = s("path", { d, class: `arc idle${back.has(key) ? " back" : ""}`, "data-arc": key, "data-state": "idle", "marker-end": "url(#arrow-idle)" },
        s("title", { text: `${arc.src} → ${arc.dst}${arc.when ? `\nwhen ${arc.when}` : ""}` }));
      edgeLayer.append(path);
      this.edges.set(key, path);
    }
    const nodeLayer = s("g", { class: "nodes" });
    for (const [name, box] of boxes) {
      const step = run.steps.get(name);
      const label = s("text", { x: 12, y: 19, class: "name", text: name.length > 22 ? name.slice(0, 21) + "…" : name });
      const detail = s("text", { x: 12, y: 36, class: "detail", text: "pending" });
      const kind = s("text", { x: W - 8, y: 15, class: "kind", "text-anchor": "end", text: step.loop ? `loop·${step.tool}` : step.tool || "" });
      const bar = s("rect", { x: 0, y: H - 4, width: 0, height: 4, class: "progress" });
      const node = s("g", { class: "node pending", transform: `translate(${box.x},${box.y})`, "data-step": name, tabindex: 0, role: "button",
        onclick: () => onSelect(name), onkeydown: (e) => { if (e.key === "Enter") onSelect(name); } },
        s("title", { text: name }), s("rect", { width: W, height: H, rx: 8, class: "box" }), bar, label, kind, detail);
      nodeLayer.append(node);
      this.nodes.set(name, { node, detail, bar });
    }
    this.el = s("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "playbook graph" },
      s("defs", {}, markers), edgeLayer, nodeLayer);
  }

  update(selected) {
    for (const [name, parts] of this.nodes) {
      const step = this.run.steps.get(name);
      parts.node.setAttribute("class", `node ${step.state}${name === selected ? " selected" : ""}`);
      parts.node.dataset.state = step.state;
      let text = step.state;
      if (step.loop && (step.expected !== null || step.commands.length)) {
        const t = this.run.tally(step);
        const total = step.expected ?? step.commands.length;
        text = `${t.completed + t.failed}/${total} · ${step.state}`;
        parts.bar.setAttribute("width", total ? (W * (t.completed + t.failed)) / total : 0);
      } else if (step.first && (step.last || step.state === "running" || step.state === "queued")) {
        text = `${step.state} · ${fmt(ms(step.first, step.last))}`;
      }
      if (parts.detail.textContent !== text) parts.detail.textContent = text;
    }
    for (const [key, path] of this.edges) {
      const state = this.run.arcs.get(key).state;
      const cls = `arc ${state}${this.geometry.back.has(key) ? " back" : ""}`;
      if (path.getAttribute("class") !== cls) {
        path.setAttribute("class", cls);
        path.setAttribute("marker-end", `url(#arrow-${state})`);
        path.dataset.state = state;
      }
    }
  }
}

function fmt(value) {
  if (value === null) return "";
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
}
