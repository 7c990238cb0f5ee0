// Small shared pieces: status badges, JSON blocks, the runs table.
import { fmtDuration, fmtTime, shortId, span, pretty } from '../util.js';

export function Status({ status }) {
  return (
    <span class={`badge st-${status || 'none'}`} data-status={status || ''}>
      {status || '—'}
    </span>
  );
}

export function Json({ value, empty = 'null' }) {
  if (value === undefined || value === null) return <pre class="json muted">{empty}</pre>;
  return <pre class="json">{pretty(value)}</pre>;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return <div class="error-box">{typeof error === 'string' ? error : error.message}</div>;
}

export function RunsTable({ runs, showWorkflow = true }) {
  if (!runs.length) return <p class="muted">No runs.</p>;
  return (
    <table class="list runs-table">
      <thead>
        <tr>
          <th>Run</th>
          {showWorkflow && <th>Workflow</th>}
          <th>Status</th>
          <th>Triggered by</th>
          <th>Created</th>
          <th>Duration</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.id} data-run={r.id}>
            <td>
              <a href={`/runs/${r.id}`} class="mono">
                {shortId(r.id)}
              </a>
            </td>
            {showWorkflow && (
              <td>
                <a href={`/workflows/${encodeURIComponent(r.workflow_name)}`}>{r.workflow_name}</a>
              </td>
            )}
            <td>
              <Status status={r.status} />
            </td>
            <td>{r.triggered_by || '—'}</td>
            <td>{fmtTime(r.created_at)}</td>
            <td>{fmtDuration(span(r.started_at, r.finished_at))}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
