// One run, live: the DAG coloured by task status, a timeline of attempts, the selected task's panel, cancel and retry.
// Task events from the stream update rows at once; the rows are re-read (at most once a second) for times and outputs.
import { useEffect, useRef, useState } from 'preact/hooks';
import { allTasks, api } from '../api.js';
import { live } from '../stream.js';
import { searchParams, setQuery } from '../router.js';
import { buildGraph } from '../dag.js';
import { Dag } from '../components/Dag.jsx';
import { Gantt } from '../components/Gantt.jsx';
import { ErrorBox, Json, Status } from '../components/common.jsx';
import { TaskPanel } from './TaskPanel.jsx';
import { ACTIVE_RUN, TASK_STATUSES, TERMINAL, fmtDuration, fmtTime, span, ts, useThrottled, useTicker } from '../util.js';

const GROUP_ROWS = 20; // fan-outs up to this many instances get one timeline row each

function useWidth(ref) {
  const [w, setW] = useState(900);
  useEffect(() => {
    if (!ref.current) return undefined;
    const ro = new ResizeObserver(([e]) => setW(e.contentRect.width));
    ro.observe(ref.current);
    return () => ro.disconnect();
  }, []);
  return w;
}

// Segments of one task row: attempts seen live (kept in `history`) plus the row's current attempt.
function segments(row, history) {
  const segs = (history.get(row.id) || []).filter((a) => a.attempt < row.attempt);
  if (row.attempt > 0 || row.started_at)
    segs.push({ attempt: row.attempt, queued: ts(row.dispatched_at), start: ts(row.started_at), end: TERMINAL.has(row.status) || row.status === 'pending' ? ts(row.finished_at) : null, status: row.status });
  return segs.filter((s) => s.queued !== null || s.start !== null);
}

function timelineRows(graph, history) {
  const out = [];
  for (const n of graph.nodes) {
    if (!n.rows.length) continue;
    if (!n.group || n.rows.length <= GROUP_ROWS) {
      for (const r of n.rows) {
        const label = n.group ? `${n.id} #${r.parallel_index}` : n.id;
        out.push({ key: r.id, task: n.id, index: n.group ? r.parallel_index : null, label, segments: segments(r, history) });
      }
    } else {
      let a = null;
      let b = null;
      let open = false;
      for (const r of n.rows) {
        const s = ts(r.dispatched_at) ?? ts(r.started_at);
        if (s !== null && (a === null || s < a)) a = s;
        const e = ts(r.finished_at);
        if (!TERMINAL.has(r.status) && s !== null) open = true;
        if (e !== null && (b === null || e > b)) b = e;
      }
      out.push({
        key: n.id,
        task: n.id,
        index: null,
        label: `${n.id} (${n.rows.length})`,
        segments: a === null ? [] : [{ attempt: 1, queued: null, start: a, end: open ? null : b, status: n.status }],
      });
    }
  }
  return out;
}

export function RunDetail({ id, search }) {
  const q = searchParams(search);
  const selected = q.task || null;
  const index = q.index !== undefined && q.index !== '' ? Number(q.index) : null;
  const [run, setRun] = useState(null);
  const [def, setDef] = useState(null);
  const [error, setError] = useState(null);
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState('');
  const [, setVersion] = useState(0);
  const [, setNow] = useState(0);
  const rowsRef = useRef(new Map()); // task id -> row
  const history = useRef(new Map()); // task id -> [{attempt, queued, start, end, status}] of earlier attempts
  const mainRef = useRef(null);
  const width = useWidth(mainRef);

  const bump = useThrottled(() => setVersion((v) => v + 1), 100);

  const seq = useRef({ run: 0, tasks: 0 }); // only the newest response of each kind is applied
  const loadRun = async () => {
    const n = ++seq.current.run;
    try {
      const r = await api.run(id);
      if (n === seq.current.run) setRun(r);
      return r;
    } catch (e) {
      setError(e);
      return null;
    }
  };
  const loadTasks = async () => {
    const n = ++seq.current.tasks;
    try {
      const rows = await allTasks(id);
      if (n !== seq.current.tasks) return;
      const m = new Map();
      for (const r of rows) m.set(r.id, r);
      rowsRef.current = m;
      bump();
    } catch (e) {
      setError(e);
    }
  };
  const refreshTasks = useThrottled(loadTasks, 1000);
  const refreshRun = useThrottled(loadRun, 300);

  const onTask = (d) => {
    const now = new Date().toISOString();
    const m = rowsRef.current;
    let row = m.get(d.task_id);
    if (!row) {
      row = { id: d.task_id, run_id: d.run_id, task_name: d.task_name, parallel_index: d.parallel_index, attempt: 0, max_retries: d.max_retries, status: 'pending' };
    } else row = { ...row };
    if (d.attempt > (row.attempt || 0) && row.attempt > 0) {
      const h = history.current.get(row.id) || [];
      h.push({ attempt: row.attempt, queued: ts(row.dispatched_at), start: ts(row.started_at), end: ts(row.finished_at) ?? Date.now(), status: row.status === 'pending' ? 'failed' : row.status });
      history.current.set(row.id, h);
      row.dispatched_at = null;
      row.started_at = null;
      row.finished_at = null;
    }
    if (d.status === 'dispatched') row.dispatched_at = row.dispatched_at || now;
    if (d.status === 'running') row.started_at = row.started_at || now;
    if (TERMINAL.has(d.status) || (d.status === 'pending' && row.status !== 'pending')) row.finished_at = row.finished_at || now;
    row.status = d.status;
    row.attempt = d.attempt;
    row.error = d.error;
    m.set(row.id, row);
    bump();
    refreshTasks();
  };

  useEffect(() => {
    loadRun().then((r) => {
      if (r) api.workflow(r.workflow_name).then((w) => setDef(w.definition), () => setDef({ tasks: [] }));
    });
    loadTasks();
    return live.on((msg) => {
      if (msg.kind === 'resync') {
        refreshRun();
        refreshTasks();
      } else if (msg.data.run_id !== id) return;
      else if (msg.kind === 'task') onTask(msg.data);
      else if (msg.kind === 'run') {
        setRun((r) => (r ? { ...r, status: msg.data.status, error: msg.data.error } : r));
        refreshRun();
        refreshTasks();
      }
    });
  }, [id]);

  const active = run && ACTIVE_RUN.has(run.status);
  useTicker(active, 1000, () => setNow(Date.now()));

  const rows = [...rowsRef.current.values()];
  const graph = buildGraph(def?.tasks || [], rows);
  const counts = {};
  for (const r of rows) counts[r.status] = (counts[r.status] || 0) + 1;
  const tl = timelineRows(graph, history.current);
  // The run's times are those of its latest start (a retry restarts it): earlier attempts may lie before them.
  let t0 = run ? ts(run.started_at) ?? ts(run.created_at) : null;
  let t1 = run ? (active ? Date.now() : ts(run.finished_at) ?? Date.now()) : null;
  for (const r of tl)
    for (const s of r.segments) {
      const a = s.queued ?? s.start;
      if (a !== null && t0 !== null) t0 = Math.min(t0, a);
      t1 = Math.max(t1, s.end ?? 0);
    }

  const act = async (what) => {
    setBusy(what);
    setConfirm(false);
    try {
      const res = await (what === 'retry' ? api.retry(id) : api.cancel(id));
      setRun((r) => ({ ...r, ...res.run }));
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      setBusy('');
    }
  };

  const node = selected ? graph.nodes.find((n) => n.id === selected) : null;

  return (
    <div class="page run-page">
      <p class="crumbs">
        <a href="/runs">Runs</a> /{' '}
        {run && <a href={`/workflows/${encodeURIComponent(run.workflow_name)}`}>{run.workflow_name}</a>}
      </p>
      <div class="run-head">
        <h1 class="mono">{id}</h1>
        {run && <Status status={run.status} />}
        <span class="spacer" />
        {active &&
          (confirm ? (
            <span class="confirm">
              Cancel this run?{' '}
              <button type="button" name="confirm-cancel" class="danger" onClick={() => act('cancel')}>
                Yes, cancel
              </button>{' '}
              <button type="button" onClick={() => setConfirm(false)}>
                No
              </button>
            </span>
          ) : (
            <button type="button" name="cancel-run" class="danger" disabled={!!busy} onClick={() => setConfirm(true)}>
              Cancel run
            </button>
          ))}
        {run && (run.status === 'failed' || run.status === 'cancelled') && (
          <button type="button" name="retry-run" disabled={!!busy} onClick={() => act('retry')} title="re-run every task that did not succeed">
            {busy === 'retry' ? 'Retrying…' : 'Retry run'}
          </button>
        )}
      </div>
      <ErrorBox error={error} />
      {run && (
        <div class="facts">
          <span>
            <b>Triggered by</b> {run.triggered_by || '—'}
          </span>
          <span>
            <b>Created</b> {fmtTime(run.created_at)}
          </span>
          <span>
            <b>Started</b> {fmtTime(run.started_at)}
          </span>
          <span>
            <b>Finished</b> {fmtTime(run.finished_at)}
          </span>
          <span>
            <b>Duration</b> {fmtDuration(span(run.started_at, run.finished_at))}
          </span>
          <span class="counts">
            {TASK_STATUSES.filter((s) => counts[s]).map((s) => (
              <span key={s} class={`count st-${s}`} data-count={s}>
                {s} {counts[s]}
              </span>
            ))}
          </span>
        </div>
      )}
      {run?.error && <div class="error-box">{run.error.message || JSON.stringify(run.error)}</div>}
      <div class={`run-body${node ? ' with-panel' : ''}`}>
        <div class="run-main" ref={mainRef}>
          <section class="panel">
            <h2>DAG</h2>
            {def ? (
              <Dag graph={graph} selected={selected} onSelect={(t) => setQuery({ task: t, index: null })} maxHeight={380} />
            ) : (
              <p class="muted">Loading…</p>
            )}
          </section>
          <section class="panel">
            <h2>Timeline</h2>
            <div class="gantt-wrap">
              <Gantt rows={tl} t0={t0} t1={t1} width={width - 32} onSelect={(t, i) => setQuery({ task: t, index: i })} />
            </div>
          </section>
          {run && (
            <section class="panel">
              <details>
                <summary>Run input</summary>
                <Json value={run.input} empty="{}" />
              </details>
            </section>
          )}
        </div>
        {node && run && (
          <TaskPanel
            run={run}
            name={node.id}
            rows={node.rows}
            index={index}
            def={node.def}
            history={history.current}
            onAction={(e) => {
              setError(e);
              refreshRun();
              refreshTasks();
            }}
            onClose={() => setQuery({ task: null, index: null })}
          />
        )}
      </div>
    </div>
  );
}
