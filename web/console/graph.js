// A worklet's blocks drawn as a graph (SVG): the entry at the top, arrows for `next`,
// decision branches labelled with their conditions, worklet blocks naming what they call.
// Works on drafts too: unknown targets, cycles and unreachable blocks are drawn, not refused.

import { s } from "./ui.js";

const NODE_H = 50;
const MIN_W = 150;
const MAX_W = 240;
const GAP_X = 36;
const GAP_Y = 50;
const PAD = 20;
const START_H = 28; // room above the entry for the start marker
const CHAR_W = 7.4;
const DUMMY_W = 14; // the room a long edge takes on a row it crosses

function edgesOf(block) {
  const edges = [];
  if (!block || typeof block !== "object") return edges;
  if (block.type === "decision") {
    for (const condition of Array.isArray(block.conditions) ? block.conditions : []) {
      if (condition && typeof condition.next === "string") {
        edges.push({ to: condition.next, label: String(condition.when ?? ""), kind: "condition" });
      }
    }
    if (typeof block.default === "string") edges.push({ to: block.default, label: "otherwise", kind: "default" });
  } else if (typeof block.next === "string") {
    edges.push({ to: block.next, label: "", kind: "next" });
  }
  return edges;
}

const LABEL_CHARS = 30;
const LABEL_CHAR_W = 6.7; // 11px monospace
const LABEL_LEVELS = [0.5, 0.24, 0.76];

/** The x of the edge curve (vertical tangents at both ends) at height y. */
function curveX(x1, y1, x2, y2, y) {
  if (y2 === y1) return x1;
  // y(t) = y1 + (y2 - y1)(1.5t - 1.5t² + t³), x(t) = x1 + (x2 - x1)(3t² - 2t³)
  const target = (y - y1) / (y2 - y1);
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 24; i++) {
    const t = (lo + hi) / 2;
    if (1.5 * t - 1.5 * t * t + t * t * t < target) lo = t;
    else hi = t;
  }
  const t = (lo + hi) / 2;
  return x1 + (x2 - x1) * (3 * t * t - 2 * t * t * t);
}

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function subtitle(block) {
  switch (block.type) {
    case "worklet":
      return `calls ${block.worklet ?? "?"}`;
    case "decision": {
      const n = Array.isArray(block.conditions) ? block.conditions.length : 0;
      return `${n} condition${n === 1 ? "" : "s"}`;
    }
    case "code":
      return block.function ? `code · ${block.function}()` : "code";
    default:
      return String(block.type ?? "block");
  }
}

/** Layers by longest path from the roots, ignoring edges that close a cycle. */
function layout(blocks, entry) {
  const ids = blocks.map((b) => b.id);
  const known = new Set(ids);
  const out = new Map(ids.map((id, index) => [id, edgesOf(blocks[index]).filter((e) => known.has(e.to))]));
  // depth-first from the entry, then from every block not reached, to find back edges
  const state = new Map();
  const back = new Set();
  const visit = (id) => {
    state.set(id, 1);
    for (const edge of out.get(id)) {
      const seen = state.get(edge.to);
      if (seen === 1) back.add(`${id}->${edge.to}`);
      else if (!seen) visit(edge.to);
    }
    state.set(id, 2);
  };
  if (known.has(entry)) visit(entry);
  for (const id of ids) if (!state.get(id)) visit(id);
  // longest path over the acyclic edges (Kahn)
  const incoming = new Map(ids.map((id) => [id, 0]));
  for (const id of ids) for (const e of out.get(id)) if (!back.has(`${id}->${e.to}`)) incoming.set(e.to, incoming.get(e.to) + 1);
  const layer = new Map(ids.map((id) => [id, 0]));
  const queue = ids.filter((id) => incoming.get(id) === 0);
  // the entry goes first so that it sits alone at the top when it has no parent
  queue.sort((a, b) => (a === entry ? -1 : b === entry ? 1 : 0));
  while (queue.length) {
    const id = queue.shift();
    for (const e of out.get(id)) {
      if (back.has(`${id}->${e.to}`)) continue;
      layer.set(e.to, Math.max(layer.get(e.to), layer.get(id) + 1));
      incoming.set(e.to, incoming.get(e.to) - 1);
      if (incoming.get(e.to) === 0) queue.push(e.to);
    }
  }
  // blocks other than the entry with no parent sit one layer below the entry's row
  for (const id of ids) {
    if (id !== entry && layer.get(id) === 0 && known.has(entry)) layer.set(id, Math.max(1, layer.get(id)));
  }
  return { layer, back, out };
}

/**
 * Draw `definition` into `container` (replacing what was there).
 * Options: errorBlock (id to flag), ranBlocks (Map id -> "ok" | "failed": the last test run),
 * onSelect(id).
 */
export function renderGraph(container, definition, { errorBlock = null, ranBlocks = null, onSelect } = {}) {
  const blocks = (Array.isArray(definition?.blocks) ? definition.blocks : []).filter(
    (b) => b && typeof b === "object" && typeof b.id === "string",
  );
  if (!blocks.length) {
    container.replaceChildren(
      Object.assign(document.createElement("p"), { className: "empty", textContent: "No blocks to draw yet." }),
    );
    return;
  }
  const entry = typeof definition.entry === "string" && definition.entry ? definition.entry : blocks[0].id;
  const { layer, back } = layout(blocks, entry);
  const known = new Set(blocks.map((b) => b.id));

  // nodes: the blocks, plus a "dummy" on each row a long edge crosses, so that rows are
  // ordered and placed with the edge in mind and the edge never runs through a block
  const nodes = new Map(); // id -> {id, w, row, dummy, parents: [ids], block}
  for (const b of blocks) {
    const longest = Math.max(b.id.length * (CHAR_W + 0.6), subtitle(b).length * (CHAR_W - 0.8));
    const w = Math.round(Math.min(MAX_W, Math.max(MIN_W, longest + 36)));
    nodes.set(b.id, { id: b.id, w, row: layer.get(b.id), dummy: false, parents: [], block: b });
  }
  const chains = new Map(); // "from->to#index" -> [dummy ids]
  for (const b of blocks) {
    edgesOf(b).forEach((edge, index) => {
      if (!known.has(edge.to) || back.has(`${b.id}->${edge.to}`)) return;
      const from = layer.get(b.id);
      const to = layer.get(edge.to);
      if (to <= from) return;
      let previous = b.id;
      const dummies = [];
      for (let row = from + 1; row < to; row++) {
        const id = `\u0000${b.id}->${edge.to}#${index}@${row}`;
        nodes.set(id, { id, w: DUMMY_W, row, dummy: true, parents: [previous] });
        dummies.push(id);
        previous = id;
      }
      nodes.get(edge.to).parents.push(previous);
      chains.set(`${b.id}->${edge.to}#${index}`, dummies);
    });
  }
  const rows = [];
  for (const node of nodes.values()) (rows[node.row] ||= []).push(node);
  for (let r = 0; r < rows.length; r++) rows[r] ||= [];

  // order each row by the mean position of its parents (two sweeps settle most drafts)
  const index = new Map();
  rows.forEach((row) => row.forEach((node, i) => index.set(node.id, i)));
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let r = 1; r < rows.length; r++) {
      const key = (node) => {
        const ps = node.parents.filter((p) => nodes.get(p)?.row === r - 1);
        return ps.length ? ps.reduce((sum, p) => sum + index.get(p), 0) / ps.length : index.get(node.id);
      };
      const keys = new Map(rows[r].map((node) => [node.id, key(node)]));
      rows[r].sort((a, b) => keys.get(a.id) - keys.get(b.id) || index.get(a.id) - index.get(b.id));
      rows[r].forEach((node, i) => index.set(node.id, i));
    }
  }

  // x: each node under the centre of its parents, then pushed apart; rows re-centred
  const centre = new Map();
  const gap = (a, b) => (a.dummy || b.dummy ? GAP_X / 2 : GAP_X);
  rows.forEach((row, r) => {
    const wanted = row.map((node) => {
      const ps = node.parents.filter((p) => centre.has(p) && nodes.get(p).row < r);
      return ps.length ? ps.reduce((sum, p) => sum + centre.get(p), 0) / ps.length : null;
    });
    // nodes without parents: packed after the others
    let fallback = 0;
    const xs = row.map((node, i) => {
      if (wanted[i] !== null) return wanted[i];
      fallback += node.w + GAP_X;
      return fallback;
    });
    // left to right, no overlaps
    for (let i = 1; i < row.length; i++) {
      const min = xs[i - 1] + row[i - 1].w / 2 + gap(row[i - 1], row[i]) + row[i].w / 2;
      if (xs[i] < min) xs[i] = min;
    }
    // shift the row so that, on average, nodes sit where their parents want them
    const placed = wanted.map((w, i) => (w === null ? null : xs[i] - w)).filter((d) => d !== null);
    const shift = placed.length ? placed.reduce((a, b) => a + b, 0) / placed.length : 0;
    row.forEach((node, i) => centre.set(node.id, xs[i] - shift));
  });
  const left = Math.min(...[...nodes.values()].map((n) => centre.get(n.id) - n.w / 2));
  const right = Math.max(...[...nodes.values()].map((n) => centre.get(n.id) + n.w / 2));
  // y: rows with labelled branches leaving them get more room below, for the labels
  const rowY = [];
  let y = PAD + START_H;
  rows.forEach((row, r) => {
    rowY[r] = y;
    const labels = Math.max(0, ...row.filter((n) => !n.dummy).map((n) => edgesOf(n.block).filter((e) => e.label).length));
    y += NODE_H + GAP_Y + (labels >= 2 ? 26 : 0) + (labels >= 4 ? 12 : 0);
  });
  const pos = new Map();
  for (const node of nodes.values()) {
    pos.set(node.id, { x: PAD + centre.get(node.id) - node.w / 2 - left, y: rowY[node.row], w: node.w });
  }
  const contentW = right - left;
  const svgW = Math.ceil(contentW + PAD * 2 + 60); // room on the right for edges that go back up
  const svgH = Math.ceil(rowY[rows.length - 1] + NODE_H + PAD);

  const defs = s(
    "defs",
    {},
    ...["plain", "error"].map((kind) =>
      s(
        "marker",
        {
          id: `arrow-${kind}`,
          viewBox: "0 0 10 10",
          refX: 9,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: "auto-start-reverse",
        },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: `arrowhead arrowhead-${kind}` }),
      ),
    ),
  );
  const labelBoxes = [];
  const edgeLayer = s("g", { class: "edges" });
  const labelLayer = s("g", { class: "edge-labels" });
  const nodeLayer = s("g", { class: "nodes" });

  // start marker above the entry
  const entryPos = pos.get(entry);
  if (entryPos) {
    const cx = entryPos.x + entryPos.w / 2;
    edgeLayer.append(
      s("circle", { cx, cy: entryPos.y - START_H + 4, r: 4.5, class: "start-dot" }),
      s("path", {
        d: `M${cx},${entryPos.y - START_H + 9} L${cx},${entryPos.y - 1}`,
        class: "edge",
        "marker-end": "url(#arrow-plain)",
      }),
    );
  }

  for (const b of blocks) {
    const from = pos.get(b.id);
    const edges = edgesOf(b);
    // the x each edge heads for first: its first dummy, or its target
    const heading = edges.map((edge, index) => {
      const first = (chains.get(`${b.id}->${edge.to}#${index}`) || [])[0] ?? edge.to;
      const p = pos.get(first);
      return p ? p.x + p.w / 2 : Infinity;
    });
    const slots = new Map(
      edges
        .map((_, index) => index)
        .sort((a, c) => heading[a] - heading[c])
        .map((edgeIndex, rank) => [edgeIndex, rank]),
    );
    edges.forEach((edge, index) => {
      const to = pos.get(edge.to);
      const group = s("g", { class: ["edge-group", `edge-${edge.kind}`], "data-from": b.id, "data-to": edge.to });
      if (!to) {
        // a `next` naming no block: a dangling arrow ending in a question mark
        const x = from.x + from.w / 2 + (index - (edges.length - 1) / 2) * 30;
        const y1 = from.y + NODE_H;
        group.append(
          s("path", { d: `M${x},${y1} L${x},${y1 + 34}`, class: "edge edge-missing", "marker-end": "url(#arrow-error)" }),
        );
        labelLayer.append(
          s(
            "text",
            { x: x + 6, y: y1 + 30, class: "edge-label edge-label-missing", testid: "graph-edge-label" },
            `${edge.label ? `${truncate(edge.label, 18)} → ` : ""}${edge.to}?`,
          ),
        );
        edgeLayer.append(group);
        return;
      }
      const rank = slots.get(index) ?? index;
      const spread = (rank - (edges.length - 1) / 2) * Math.min(28, from.w / (edges.length + 1));
      let d;
      let lx;
      let ly;
      let anchor = "middle";
      if (back.has(`${b.id}->${edge.to}`) || layer.get(edge.to) <= layer.get(b.id)) {
        // going back up (a cycle in a draft) or sideways: around the right-hand side
        const x1 = from.x + from.w;
        const y1 = from.y + NODE_H / 2;
        const x2 = to.x + to.w;
        const y2 = to.y + NODE_H / 2;
        const bulge = Math.max(x1, x2) + 46;
        d = `M${x1},${y1} C${bulge},${y1} ${bulge},${y2} ${x2 + 2},${y2}`;
        lx = bulge + 4;
        anchor = "start";
        ly = (y1 + y2) / 2;
        group.classList.add("edge-back");
      } else {
        // down through the rows the edge crosses (its dummies), to the top of the target
        const points = [[from.x + from.w / 2 + spread, from.y + NODE_H]];
        for (const dummy of chains.get(`${b.id}->${edge.to}#${index}`) || []) {
          const p = pos.get(dummy);
          points.push([p.x + p.w / 2, p.y], [p.x + p.w / 2, p.y + NODE_H]);
        }
        points.push([to.x + to.w / 2, to.y - 1]);
        d = `M${points[0][0]},${points[0][1]}`;
        for (let i = 1; i < points.length; i++) {
          const [x1, y1] = points[i - 1];
          const [x2, y2] = points[i];
          if (x1 === x2 && i % 2 === 0) d += ` L${x2},${y2}`; // straight through a dummy's row
          else {
            const dy = (y2 - y1) / 2;
            d += ` C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2}`;
          }
        }
        // the label sits on the first stretch of the edge, at the first height where it
        // does not cover another label (the branches of a decision leave side by side)
        if (edge.label) {
          const [[x1, y1], [x2, y2]] = points;
          const width = Math.min(edge.label.length, LABEL_CHARS) * LABEL_CHAR_W + 8;
          const spot = (fraction) => {
            const y = y1 + (y2 - y1) * fraction;
            const x = curveX(x1, y1, x2, y2, y);
            return { x, y, left: x - width / 2, right: x + width / 2 };
          };
          const free = (box) => !labelBoxes.some((o) => Math.abs(o.y - box.y) < 12 && o.left < box.right && box.left < o.right);
          const chosen = LABEL_LEVELS.map(spot).find(free) || spot(LABEL_LEVELS[0]);
          labelBoxes.push(chosen);
          lx = chosen.x;
          ly = chosen.y;
        }
      }
      group.append(s("path", { d, class: "edge", "marker-end": "url(#arrow-plain)" }));
      edgeLayer.append(group);
      if (edge.label) {
        const text = s(
          "text",
          {
            x: lx,
            y: ly + 4,
            "text-anchor": anchor,
            class: ["edge-label", edge.kind === "default" ? "edge-label-default" : ""],
            testid: "graph-edge-label",
            "data-from": b.id,
            "data-to": edge.to,
          },
          truncate(edge.label, LABEL_CHARS),
        );
        labelLayer.append(s("g", {}, s("title", {}, edge.label), text));
      }
    });
  }

  // ranBlocks: a Map of block id -> "ok" | "failed" (or a list of ids that ran fine)
  const ran = ranBlocks instanceof Map ? ranBlocks : new Map((ranBlocks || []).map((id) => [id, "ok"]));
  for (const b of blocks) {
    const p = pos.get(b.id);
    const isError = errorBlock === b.id;
    const classes = ["node", `node-${["code", "decision", "worklet"].includes(b.type) ? b.type : "unknown"}`];
    if (isError) classes.push("node-error");
    if (ran.get(b.id) === "ok") classes.push("node-ran");
    if (ran.get(b.id) === "failed") classes.push("node-failed");
    if (b.id === entry) classes.push("node-entry");
    const group = s(
      "g",
      {
        class: classes,
        transform: `translate(${p.x},${p.y})`,
        testid: "graph-node",
        "data-block": b.id,
        "data-type": String(b.type ?? ""),
        "data-error": isError ? "true" : "false",
        tabindex: onSelect ? 0 : null,
        role: onSelect ? "button" : null,
        "aria-label": `${b.type} block ${b.id}`,
      },
      s("title", {}, `${b.id} (${b.type})${b.description ? ` — ${b.description}` : ""}`),
      s("rect", { width: p.w, height: NODE_H, rx: 9, class: "node-box" }),
      s("rect", { width: 4, height: NODE_H - 16, x: 0, y: 8, rx: 2, class: "node-accent" }),
      s("text", { x: 16, y: 23, class: "node-title" }, truncate(b.id, Math.floor((p.w - 30) / CHAR_W))),
      s("text", { x: 16, y: 41, class: "node-subtitle" }, truncate(subtitle(b), Math.floor((p.w - 30) / (CHAR_W - 0.8)))),
    );
    if (isError) {
      group.append(s("circle", { cx: p.w - 14, cy: 14, r: 7, class: "node-error-dot" }), s("text", { x: p.w - 14, y: 18, class: "node-error-mark", "text-anchor": "middle" }, "!"));
    } else if (ran.get(b.id) === "ok") {
      group.append(s("path", { d: `M${p.w - 20},14 l4,4 l8,-8`, class: "node-ran-mark" }));
    } else if (ran.get(b.id) === "failed") {
      group.append(s("path", { d: `M${p.w - 19},10 l8,8 m0,-8 l-8,8`, class: "node-failed-mark" }));
    }
    if (onSelect) {
      group.addEventListener("click", () => onSelect(b.id));
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onSelect(b.id);
        }
      });
    }
    nodeLayer.append(group);
  }

  const svg = s(
    "svg",
    {
      class: "graph",
      width: svgW,
      height: svgH,
      viewBox: `0 0 ${svgW} ${svgH}`,
      role: "img",
      "aria-label": `Graph of ${blocks.length} blocks`,
      testid: "graph",
    },
    defs,
    edgeLayer,
    nodeLayer,
    labelLayer,
  );
  container.replaceChildren(svg);
}
