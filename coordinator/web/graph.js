// The job graph as a hand-drawn SVG: one box per vertex (chain) of the plan from
// GET /jobs/<id> (plan.nodes with their inputs), laid out left to right in layers by the
// longest path from a source, edges as curves labelled with their ship strategy.

import {h, svg} from './dom.js';
import * as fmt from './format.js';

// Scrolls to the subtasks of a vertex on the job page (click on a box or a vertex name).
export function scrollToSubtasks(ev, vertexId) {
  const el = document.getElementById(`subtasks-${vertexId}`);
  if (!el) return;
  ev.preventDefault();
  el.scrollIntoView({behavior: 'smooth', block: 'start'});
}

const NODE_W = 250;
const GAP_X = 90;
const GAP_Y = 28;
const PAD = 16;
const LINE = 17;
const CHAR_W = 7.1; // at the 12.5px of .graph text, roughly

function clip(text, width) {
  const max = Math.max(4, Math.floor(width / CHAR_W));
  const s = String(text || '');
  return s.length > max ? `${s.slice(0, max - 1)}\u2026` : s;
}

// Layer of each node: 0 for sources, else 1 + the highest layer of its inputs.
function layers(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const memo = new Map();
  const visiting = new Set();
  const layerOf = (n) => {
    if (memo.has(n.id)) return memo.get(n.id);
    if (visiting.has(n.id)) return 0; // a cycle cannot come from the coordinator; be safe
    visiting.add(n.id);
    let l = 0;
    for (const inp of n.inputs || []) {
      const src = byId.get(inp.id);
      if (src) l = Math.max(l, layerOf(src) + 1);
    }
    visiting.delete(n.id);
    memo.set(n.id, l);
    return l;
  };
  for (const n of nodes) layerOf(n);
  return memo;
}

export function jobGraph(plan, vertices) {
  const nodes = (plan && plan.nodes) || [];
  if (!nodes.length) return h('p', {class: 'dim'}, 'No plan (the job is known only by its result).');
  const vById = new Map((vertices || []).map((v) => [v.id, v]));
  const layerOf = layers(nodes);
  const nLayers = Math.max(...layerOf.values()) + 1;
  const cols = Array.from({length: nLayers}, () => []);
  for (const n of nodes) cols[layerOf.get(n.id)].push(n);

  // Box contents and heights.
  const box = new Map();
  for (const n of nodes) {
    const ops = n.operators && n.operators.length ? n.operators : [{name: n.operator || n.id, kind: ''}];
    const shown = ops.slice(0, 4);
    const lines = shown.map((o) => ({name: o.name, kind: o.kind}));
    if (ops.length > shown.length) lines.push({name: `+${ops.length - shown.length} more`, kind: ''});
    box.set(n.id, {lines, height: 12 + LINE * (lines.length + 2) + 8});
  }

  // Order inside a layer by the mean position of the inputs (one barycentre pass).
  const pos = new Map();
  cols.forEach((col, li) => {
    if (li > 0) {
      const key = (n) => {
        const ys = (n.inputs || []).map((i) => pos.get(i.id)).filter((y) => y !== undefined);
        return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : 0;
      };
      col.sort((a, b) => key(a) - key(b));
    }
    col.forEach((n, i) => pos.set(n.id, i));
  });

  const colHeight = cols.map((col) => col.reduce((a, n) => a + box.get(n.id).height, 0) + GAP_Y * (col.length - 1));
  const height = Math.max(...colHeight) + 2 * PAD;
  const width = nLayers * NODE_W + (nLayers - 1) * GAP_X + 2 * PAD;
  const at = new Map(); // id -> {x, y, h}
  cols.forEach((col, li) => {
    let y = PAD + (height - 2 * PAD - colHeight[li]) / 2;
    for (const n of col) {
      const b = box.get(n.id);
      at.set(n.id, {x: PAD + li * (NODE_W + GAP_X), y, h: b.height});
      y += b.height + GAP_Y;
    }
  });

  const root = svg('svg', {class: 'graph-svg', viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', 'aria-label': `job graph with ${nodes.length} vertices`, 'data-testid': 'job-graph'});
  root.appendChild(svg('defs', null,
    svg('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: 'auto-start-reverse'}, svg('path', {d: 'M0,0 L10,5 L0,10 z', class: 'arrow-head'}))));

  // Edges first, under the boxes.
  for (const n of nodes) {
    const to = at.get(n.id);
    (n.inputs || []).forEach((inp) => {
      const from = at.get(inp.id);
      if (!from) return;
      const x1 = from.x + NODE_W;
      const y1 = from.y + from.h / 2;
      const x2 = to.x - 2;
      const y2 = to.y + to.h / 2;
      const dx = Math.max(30, (x2 - x1) / 2);
      root.appendChild(svg('path', {class: 'edge', d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`,
        'marker-end': 'url(#arrow)'}));
      root.appendChild(svg('text', {class: 'edge-label', x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6,
        'text-anchor': 'middle'}, inp.ship_strategy || ''));
    });
  }

  for (const n of nodes) {
    const {x, y, h: bh} = at.get(n.id);
    const v = vById.get(n.id) || {};
    const status = v.status || 'CREATED';
    const b = box.get(n.id);
    const g = svg('g', {class: ['node', fmt.stateClass(status)], 'data-testid': 'graph-node', 'data-vertex': n.id,
      transform: `translate(${x},${y})`, tabindex: 0, role: 'link', onclick: (ev) => scrollToSubtasks(ev, n.id),
      onkeydown: (ev) => (ev.key === 'Enter' || ev.key === ' ') && scrollToSubtasks(ev, n.id)},
    svg('title', null, `${v.name || n.description || n.id}\nparallelism ${n.parallelism}, ${status}`),
    svg('rect', {class: 'node-box', width: NODE_W, height: bh, rx: 6, ry: 6}),
    svg('rect', {class: 'node-strip', width: 5, height: bh, rx: 2, ry: 2}));
    b.lines.forEach((l, i) => {
      const t = svg('text', {x: 14, y: 12 + LINE * (i + 0.8), class: i === 0 ? 'op first' : 'op'},
        clip(l.name, NODE_W - 24 - (l.kind ? 8 + l.kind.length * CHAR_W : 0)));
      if (l.kind) t.appendChild(svg('tspan', {class: 'kind', dx: 6}, l.kind));
      g.appendChild(t);
    });
    const yInfo = 12 + LINE * (b.lines.length + 0.8) + 4;
    g.appendChild(svg('text', {x: 14, y: yInfo, class: 'info'},
      svg('tspan', {class: 'par', 'data-testid': 'graph-parallelism'}, `parallelism ${n.parallelism}`),
      svg('tspan', {dx: 8, class: 'status'}, status)));
    const m = v.metrics || {};
    g.appendChild(svg('text', {x: 14, y: yInfo + LINE, class: 'info dim'},
      `in ${fmt.num(m['read-records'] ?? 0)} \u00b7 out ${fmt.num(m['write-records'] ?? 0)} records`));
    root.appendChild(g);
  }
  return h('div', {class: 'graph'}, root);
}
