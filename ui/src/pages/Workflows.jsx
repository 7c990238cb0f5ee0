// Workflows: name, tasks, schedule, last run status (kept live from the event stream) and next scheduled fire.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { live } from '../stream.js';
import { ErrorBox, Status } from '../components/common.jsx';
import { fmtRelative, fmtTime, shortId } from '../util.js';

// Runs fn over items with at most `n` requests in flight.
async function pool(items, n, fn) {
  let i = 0;
  const work = async () => {
    while (i < items.length) {
      const item = items[i++];
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, work));
}

export function Workflows() {
  const [list, setList] = useState(null);
  const [cursor, setCursor] = useState(null);
  const [extra, setExtra] = useState({}); // name -> {last, next_run}
  const [error, setError] = useState(null);
  const listRef = useRef(null);
  listRef.current = list;

  const details = async (wfs) => {
    await pool(wfs, 6, async (w) => {
      try {
        const [runs, detail] = await Promise.all([
          api.runs({ workflow: w.name, limit: 1 }),
          w.schedule ? api.workflow(w.name) : Promise.resolve(null),
        ]);
        setExtra((x) => ({ ...x, [w.name]: { ...x[w.name], last: runs.runs[0] || null, next_run: detail?.next_run ?? null } }));
      } catch (e) {
        setExtra((x) => ({ ...x, [w.name]: { ...x[w.name], error: e.message } }));
      }
    });
  };

  const load = async (more) => {
    try {
      const page = await api.workflows({ limit: 100, cursor: more ? cursor : null });
      setList((l) => (more && l ? [...l, ...page.workflows] : page.workflows));
      setCursor(page.next_cursor);
      setError(null);
      details(page.workflows);
    } catch (e) {
      setError(e);
    }
  };

  useEffect(() => {
    load(false);
    return live.on((m) => {
      if (m.kind === 'resync') return load(false);
      if (m.kind !== 'run') return;
      const d = m.data;
      const wf = listRef.current?.find((w) => w.name === d.workflow_name);
      if (wf?.schedule && d.status === 'running')
        api.workflow(wf.name).then((w) => setExtra((x) => ({ ...x, [wf.name]: { ...x[wf.name], next_run: w.next_run } })), () => {});
      setExtra((x) => {
        const prev = x[d.workflow_name];
        const last = prev?.last && prev.last.id === d.run_id ? { ...prev.last, status: d.status } : { id: d.run_id, status: d.status, created_at: new Date().toISOString() };
        return { ...x, [d.workflow_name]: { ...prev, last } };
      });
    });
  }, []);

  return (
    <div class="page">
      <h1>Workflows</h1>
      <ErrorBox error={error} />
      {list === null ? (
        <p class="muted">Loading…</p>
      ) : list.length === 0 ? (
        <div class="panel">
          <p>No workflows deployed yet.</p>
          <pre>ork-host deploy examples/quickstart/workflow.yaml</pre>
        </div>
      ) : (
        <table class="list workflows-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Tasks</th>
              <th>Schedule</th>
              <th>Last run</th>
              <th>Next fire</th>
            </tr>
          </thead>
          <tbody>
            {list.map((w) => {
              const x = extra[w.name] || {};
              return (
                <tr key={w.name} data-workflow={w.name}>
                  <td>
                    <a href={`/workflows/${encodeURIComponent(w.name)}`} class="strong">
                      {w.name}
                    </a>
                  </td>
                  <td class="muted">{w.tasks.length}</td>
                  <td class="mono">{w.schedule || <span class="muted">—</span>}</td>
                  <td class="last-run">
                    {x.last ? (
                      <a href={`/runs/${x.last.id}`}>
                        <Status status={x.last.status} /> <span class="mono small">{shortId(x.last.id)}</span>{' '}
                        <span class="muted small">{fmtTime(x.last.created_at)}</span>
                      </a>
                    ) : x.error ? (
                      <span class="error small">{x.error}</span>
                    ) : (
                      <span class="muted">{'last' in x ? 'never' : '…'}</span>
                    )}
                  </td>
                  <td class="next-fire">
                    {w.schedule ? (
                      <>
                        {fmtTime(x.next_run)} <span class="muted small">{fmtRelative(x.next_run)}</span>
                      </>
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {cursor && (
        <button type="button" onClick={() => load(true)}>
          More workflows
        </button>
      )}
    </div>
  );
}
