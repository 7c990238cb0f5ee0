// The DAG as SVG: nodes coloured by status (data-status on each node), group nodes with per-status counts and a
// progress bar, drag to pan, Ctrl+wheel or the buttons to zoom.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { layout } from '../dag.js';
import { TASK_STATUSES } from '../util.js';

const SHORT = { success: '✓', failed: '✗', running: '▶', dispatched: '↗', pending: '…', skipped: '⤼', cancelled: '■' };

function edgePath(points) {
  if (!points?.length) return '';
  let d = `M${points[0].x},${points[0].y}`;
  if (points.length === 2) return `${d} L${points[1].x},${points[1].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i];
    const q = points[i + 1];
    const mx = i === points.length - 2 ? q.x : (p.x + q.x) / 2;
    const my = i === points.length - 2 ? q.y : (p.y + q.y) / 2;
    d += ` Q${p.x},${p.y} ${mx},${my}`;
  }
  return d;
}

function subtitle(n) {
  const d = n.def;
  if (n.group) {
    const p = d?.parallel;
    const what = p?.kind === 'foreach' ? `foreach ${p.ref || ''}` : p?.kind === 'count_ref' ? `parallel ${p.ref}` : 'parallel';
    return n.total ? `${what} · ${n.total} instances` : `${what}${p?.count ? ` × ${p.count}` : ''}`;
  }
  if (!d) return '';
  if (d.command) return `shell`;
  return d.executor || d.worker || '';
}

function Node({ n, box, selected, onSelect, showStatus }) {
  const status = showStatus ? n.status : 'none';
  const done = n.total ? (n.counts.success || 0) + (n.counts.failed || 0) + (n.counts.skipped || 0) + (n.counts.cancelled || 0) : 0;
  let x = 0;
  const bar = [];
  if (n.group && n.total && showStatus) {
    for (const s of TASK_STATUSES) {
      const c = n.counts[s] || 0;
      if (!c) continue;
      const w = ((box.w - 20) * c) / n.total;
      bar.push(<rect key={s} class={`bar st-${s}`} x={10 + x} y={box.h - 14} width={w} height={6} />);
      x += w;
    }
  }
  return (
    <g
      class={`node st-${status}${selected ? ' selected' : ''}${n.group ? ' group' : ''}`}
      data-task={n.id}
      data-status={status}
      data-total={n.total}
      data-done={done}
      transform={`translate(${box.x},${box.y})`}
      onClick={(e) => {
        e.stopPropagation();
        onSelect?.(n.id);
      }}
    >
      <title>{n.id}</title>
      {n.group && <rect class="stack" x={5} y={-5} width={box.w} height={box.h} rx={8} />}
      <rect class="box" width={box.w} height={box.h} rx={8} />
      <text class="name" x={12} y={20}>
        {n.id.length > 22 ? `${n.id.slice(0, 21)}…` : n.id}
      </text>
      <text class="sub" x={12} y={37}>
        {subtitle(n)}
      </text>
      {n.group && showStatus && n.total > 0 && (
        <text class="counts" x={12} y={box.h - 20}>
          {TASK_STATUSES.filter((s) => n.counts[s])
            .map((s) => `${SHORT[s]} ${n.counts[s]}`)
            .join('  ')}
        </text>
      )}
      {bar.length > 0 && <rect class="bar-bg" x={10} y={box.h - 14} width={box.w - 20} height={6} />}
      {bar}
      {!n.group && showStatus && n.rows[0]?.attempt > 1 && (
        <text class="attempt" x={box.w - 10} y={20} text-anchor="end">
          #{n.rows[0].attempt}
        </text>
      )}
    </g>
  );
}

export function Dag({ graph, selected, onSelect, showStatus = true, maxHeight = 360 }) {
  const pos = useMemo(() => layout(graph), [graph]);
  const height = Math.max(140, Math.min(maxHeight, pos.height + 40));
  const wrap = useRef(null);
  const [view, setView] = useState(null); // {k, tx, ty}
  const drag = useRef(null);

  const [width, setWidth] = useState(0);
  useEffect(() => {
    const ro = new ResizeObserver(([e]) => setWidth(Math.round(e.contentRect.width)));
    ro.observe(wrap.current);
    return () => ro.disconnect();
  }, []);
  const fit = () => {
    const W = width || wrap.current?.clientWidth || 800;
    const k = Math.min(1.25, W / Math.max(pos.width, 1), height / Math.max(pos.height, 1));
    setView({ k, tx: (W - pos.width * k) / 2, ty: (height - pos.height * k) / 2 });
  };
  useEffect(fit, [pos, height, width]);

  const zoom = (f, cx, cy) =>
    setView((v) => {
      if (!v) return v;
      const k = Math.max(0.1, Math.min(4, v.k * f));
      const r = k / v.k;
      const el = wrap.current;
      const x = cx ?? el.clientWidth / 2;
      const y = cy ?? height / 2;
      return { k, tx: x - (x - v.tx) * r, ty: y - (y - v.ty) * r };
    });

  const v = view || { k: 1, tx: 0, ty: 0 };
  return (
    <div class="dag" ref={wrap} style={{ height: `${height}px` }}>
      <div class="dag-tools">
        <button type="button" title="Zoom in" onClick={() => zoom(1.25)}>
          +
        </button>
        <button type="button" title="Zoom out" onClick={() => zoom(0.8)}>
          −
        </button>
        <button type="button" title="Fit" onClick={fit}>
          fit
        </button>
      </div>
      <svg
        width="100%"
        height={height}
        onWheel={(e) => {
          if (!e.ctrlKey && !e.metaKey) return;
          e.preventDefault();
          const r = wrap.current.getBoundingClientRect();
          zoom(e.deltaY < 0 ? 1.1 : 0.9, e.clientX - r.left, e.clientY - r.top);
        }}
        onPointerDown={(e) => {
          if (e.button !== 0 || e.target.closest('.node')) return;
          drag.current = { x: e.clientX, y: e.clientY, tx: v.tx, ty: v.ty };
          e.currentTarget.setPointerCapture(e.pointerId);
        }}
        onPointerMove={(e) => {
          const d = drag.current;
          if (!d) return;
          setView({ k: v.k, tx: d.tx + e.clientX - d.x, ty: d.ty + e.clientY - d.y });
        }}
        onPointerUp={() => {
          drag.current = null;
        }}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrow" />
          </marker>
        </defs>
        <g transform={`translate(${v.tx},${v.ty}) scale(${v.k})`}>
          {pos.edges.map((e) => (
            <path key={`${e.from}->${e.to}`} class="edge" d={edgePath(e.points)} marker-end="url(#arrow)" />
          ))}
          {graph.nodes.map((n) =>
            pos.nodes[n.id] ? (
              <Node key={n.id} n={n} box={pos.nodes[n.id]} selected={selected === n.id} onSelect={onSelect} showStatus={showStatus} />
            ) : null,
          )}
        </g>
      </svg>
    </div>
  );
}
