// Timeline of a run: one row per task (or per instance of a small fan-out, one summary row for a large one), one bar
// per attempt — the queued part (dispatched → started) light, the running part in the attempt's status colour.
import { fmtDuration } from '../util.js';

const LABEL_W = 170;
const ROW_H = 22;

function ticks(span) {
  const steps = [100, 250, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000];
  const want = span / 6;
  return steps.find((s) => s >= want) || 3600000 * Math.ceil(want / 3600000);
}

export function Gantt({ rows, t0, t1, width, onSelect }) {
  if (!rows.length || t0 === null) return <p class="muted">No attempts yet.</p>;
  const W = Math.max(300, (width || 900) - LABEL_W - 16);
  const spanMs = Math.max(t1 - t0, 1000);
  const sx = (t) => LABEL_W + ((t - t0) / spanMs) * W;
  const step = ticks(spanMs);
  const H = rows.length * ROW_H + 24;
  const grid = [];
  for (let t = 0; t <= spanMs; t += step) grid.push(t);
  return (
    <svg class="gantt" width={LABEL_W + W + 16} height={H}>
      {grid.map((t) => (
        <g key={t}>
          <line class="tick" x1={sx(t0 + t)} x2={sx(t0 + t)} y1={16} y2={H} />
          <text class="tick-label" x={sx(t0 + t)} y={11} text-anchor="middle">
            {fmtDuration(t)}
          </text>
        </g>
      ))}
      {rows.map((r, i) => {
        const y = 20 + i * ROW_H;
        return (
          <g key={r.key} class="gantt-row" data-task={r.task} onClick={() => onSelect?.(r.task, r.index)}>
            <text class="gantt-label" x={4} y={y + 13}>
              {r.label.length > 24 ? `${r.label.slice(0, 23)}…` : r.label}
            </text>
            {r.segments.map((s) => {
              const a = s.queued ?? s.start;
              const end = s.end ?? t1;
              return (
                <g key={s.attempt}>
                  <title>{`${r.label} attempt ${s.attempt}: ${s.status}${s.start ? `, ran ${fmtDuration(end - s.start)}` : ''}`}</title>
                  {a !== null && s.start !== null && s.start > a && (
                    <rect class="seg queued" x={sx(a)} y={y + 3} width={Math.max(1, sx(s.start) - sx(a))} height={ROW_H - 8} />
                  )}
                  {(s.start ?? a) !== null && (
                    <rect
                      class={`seg st-${s.status}`}
                      data-attempt={s.attempt}
                      x={sx(s.start ?? a)}
                      y={y + 2}
                      width={Math.max(2, sx(end) - sx(s.start ?? a))}
                      height={ROW_H - 6}
                      rx={3}
                    />
                  )}
                </g>
              );
            })}
          </g>
        );
      })}
    </svg>
  );
}
