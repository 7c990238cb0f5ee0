// Runs, newest first: filters by status and workflow (kept in the URL), cursor pagination, and the first page
// refreshed when the event stream reports a run change.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { live } from '../stream.js';
import { searchParams, setQuery } from '../router.js';
import { ErrorBox, RunsTable } from '../components/common.jsx';
import { RUN_STATUSES, useThrottled } from '../util.js';

const PAGE = 25;

export function Runs({ search }) {
  const q = searchParams(search);
  const statuses = (q.status || '').split(',').filter(Boolean);
  const workflow = q.workflow || '';
  const [page, setPage] = useState(null);
  const [cursors, setCursors] = useState([null]); // cursor of each page visited; the last is the current page's
  const [workflows, setWorkflows] = useState([]);
  const [error, setError] = useState(null);
  const [stale, setStale] = useState(false);
  const cur = useRef({ cursors, statuses, workflow });
  cur.current = { cursors, statuses, workflow };

  const seq = useRef(0); // only the newest request's answer is shown: filters can change faster than answers come
  const load = async (cursor) => {
    const mine = ++seq.current;
    try {
      const res = await api.runs({ limit: PAGE, cursor, status: cur.current.statuses, workflow: cur.current.workflow });
      if (mine !== seq.current) return;
      setPage(res);
      setError(null);
      setStale(false);
    } catch (e) {
      if (mine === seq.current) setError(e);
    }
  };
  const refresh = useThrottled(() => {
    const cs = cur.current.cursors;
    if (cs.length === 1) load(null);
    else setStale(true);
  }, 1000);

  useEffect(() => {
    setCursors([null]);
    load(null);
  }, [search]);

  useEffect(() => {
    api.workflows({ limit: 1000 }).then((r) => setWorkflows(r.workflows.map((w) => w.name)), setError);
    return live.on((m) => {
      if (m.kind === 'run' || m.kind === 'resync') refresh();
    });
  }, []);

  const toggle = (s) => {
    const next = statuses.includes(s) ? statuses.filter((x) => x !== s) : [...statuses, s];
    setQuery({ status: next.join(',') });
  };

  return (
    <div class="page">
      <h1>Runs</h1>
      <div class="filters panel">
        <span class="label">Status</span>
        {RUN_STATUSES.map((s) => (
          <label key={s} class={`chip st-${s}${statuses.includes(s) ? ' on' : ''}`}>
            <input type="checkbox" name={`status-${s}`} checked={statuses.includes(s)} onChange={() => toggle(s)} />
            {s}
          </label>
        ))}
        <span class="label">Workflow</span>
        <select name="workflow" value={workflow} onChange={(e) => setQuery({ workflow: e.currentTarget.value })}>
          <option value="">all</option>
          {[...new Set([...workflows, ...(workflow ? [workflow] : [])])].map((w) => (
            <option key={w} value={w}>
              {w}
            </option>
          ))}
        </select>
        {(statuses.length > 0 || workflow) && (
          <button type="button" class="link" onClick={() => setQuery({ status: null, workflow: null })}>
            clear
          </button>
        )}
      </div>
      <ErrorBox error={error} />
      {stale && (
        <p class="notice">
          Runs changed.{' '}
          <button type="button" class="link" onClick={() => (setCursors([null]), load(null))}>
            Back to the newest
          </button>
        </p>
      )}
      {page === null ? <p class="muted">Loading…</p> : <RunsTable runs={page.runs} />}
      <div class="pager">
        <button
          type="button"
          disabled={cursors.length <= 1}
          onClick={() => {
            const cs = cursors.slice(0, -1);
            setCursors(cs);
            load(cs[cs.length - 1]);
          }}
        >
          ← Newer
        </button>
        <span class="muted">page {cursors.length}</span>
        <button
          type="button"
          disabled={!page?.next_cursor}
          onClick={() => {
            setCursors([...cursors, page.next_cursor]);
            load(page.next_cursor);
          }}
        >
          Older →
        </button>
      </div>
    </div>
  );
}
