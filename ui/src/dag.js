// The DAG model: one node per task name (a fan-out task is one group node with per-status counts, however many
// instances it has), laid out with dagre. Layouts are cached by structure, so status changes never re-layout.
import dagre from '@dagrejs/dagre';

export const NODE_W = 190;
export const NODE_H = 50;
export const GROUP_H = 70;

export function isFanout(def) {
  return !!def && def.parallel && def.parallel.kind && def.parallel.kind !== 'none';
}

// The status that colours a node of several instances.
export function aggregate(counts, total) {
  const n = (s) => counts[s] || 0;
  if (!total) return 'pending';
  if (n('running') || n('dispatched')) return 'running';
  const terminal = n('success') + n('failed') + n('skipped') + n('cancelled');
  if (terminal < total) return terminal > 0 ? 'running' : 'pending';
  if (n('failed')) return 'failed';
  if (n('cancelled')) return 'cancelled';
  if (n('success')) return 'success';
  return 'skipped';
}

// Nodes and edges from a workflow definition's tasks and (optionally) a run's task rows, grouped by task name.
export function buildGraph(defTasks, rows) {
  const byName = new Map();
  const order = [];
  const add = (name, def) => {
    if (!byName.has(name)) {
      byName.set(name, { id: name, def: def || null, rows: [], counts: {}, total: 0 });
      order.push(name);
    }
    return byName.get(name);
  };
  for (const t of defTasks || []) add(t.name, t);
  for (const r of rows || []) {
    const n = add(r.task_name, null);
    n.rows.push(r);
    n.counts[r.status] = (n.counts[r.status] || 0) + 1;
    n.total++;
  }
  const nodes = order.map((name) => {
    const n = byName.get(name);
    const group = isFanout(n.def) || n.total > 1 || n.rows.some((r) => r.parallel_index !== null && r.parallel_index !== undefined);
    const status = group ? aggregate(n.counts, n.total) : n.rows[0]?.status || 'pending';
    return { ...n, group, status };
  });
  const edges = [];
  for (const n of nodes)
    for (const dep of n.def?.depends_on || []) if (byName.has(dep)) edges.push({ from: dep, to: n.id });
  return { nodes, edges };
}

const layoutCache = new Map();

// Positions for the graph: {nodes: {id: {x, y, w, h}}, edges: [{from, to, points}], width, height}.
export function layout(graph) {
  const key = JSON.stringify([graph.nodes.map((n) => [n.id, n.group]), graph.edges.map((e) => [e.from, e.to])]);
  const hit = layoutCache.get(key);
  if (hit) return hit;
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 24, ranksep: 56, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.id, { width: NODE_W, height: n.group ? GROUP_H : NODE_H });
  for (const e of graph.edges) g.setEdge(e.from, e.to);
  dagre.layout(g);
  const out = { nodes: {}, edges: [], width: g.graph().width || 0, height: g.graph().height || 0 };
  for (const id of g.nodes()) {
    const n = g.node(id);
    out.nodes[id] = { x: n.x - n.width / 2, y: n.y - n.height / 2, w: n.width, h: n.height };
  }
  for (const e of g.edges()) out.edges.push({ from: e.v, to: e.w, points: g.edge(e).points });
  if (layoutCache.size > 50) layoutCache.clear();
  layoutCache.set(key, out);
  return out;
}
