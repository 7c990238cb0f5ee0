// The selected task of a run: instance picker for fan-outs, status and times, input, output, error details,
// attempts, the live log, and retry / cancel of this task.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { setQuery } from '../router.js';
import { Json, Status } from '../components/common.jsx';
import { LogView } from '../components/LogView.jsx';
import { ACTIVE_RUN, TASK_STATUSES, TERMINAL, fmtDuration, fmtTime, span } from '../util.js';

const SHOW = 200;

function Instances({ rows, index }) {
  const [filter, setFilter] = useState('');
  const [limit, setLimit] = useState(SHOW);
  const counts = {};
  for (const r of rows) counts[r.status] = (counts[r.status] || 0) + 1;
  const shown = rows.filter((r) => !filter || r.status === filter);
  return (
    <div class="instances">
      <div class="chips">
        <button type="button" class={`chip${filter ? '' : ' on'}`} onClick={() => setFilter('')}>
          all {rows.length}
        </button>
        {TASK_STATUSES.filter((s) => counts[s]).map((s) => (
          <button key={s} type="button" class={`chip st-${s}${filter === s ? ' on' : ''}`} onClick={() => setFilter(s)}>
            {s} {counts[s]}
          </button>
        ))}
      </div>
      <div class="instance-grid">
        {shown.slice(0, limit).map((r) => (
          <button
            key={r.id}
            type="button"
            class={`inst st-${r.status}${r.parallel_index === index ? ' selected' : ''}`}
            data-index={r.parallel_index}
            title={`#${r.parallel_index}: ${r.status}`}
            onClick={() => setQuery({ index: r.parallel_index })}
          >
            {r.parallel_index}
          </button>
        ))}
        {shown.length > limit && (
          <button type="button" class="link" onClick={() => setLimit(limit + SHOW)}>
            +{shown.length - limit} more
          </button>
        )}
      </div>
    </div>
  );
}

export function TaskPanel({ run, name, rows, index, history, def, onAction, onClose }) {
  const isGroup = rows.length > 1 || (rows[0] && rows[0].parallel_index !== null && rows[0].parallel_index !== undefined);
  const row = isGroup ? rows.find((r) => r.parallel_index === index) : rows[0];
  const [attemptChoice, setAttemptChoice] = useState(0); // 0: the latest, followed
  const [busy, setBusy] = useState('');
  const gen = useRef({ terminal: true, n: 0, id: null });

  useEffect(() => setAttemptChoice(0), [name, index]);

  // A new follow of the latest attempt once a finished task runs again (retry) or a new attempt starts.
  const terminal = row ? TERMINAL.has(row.status) : true;
  if (row && gen.current.id !== row.id) gen.current = { terminal, n: 0, id: row.id };
  else if (gen.current.terminal && !terminal) gen.current = { ...gen.current, terminal, n: gen.current.n + 1 };
  else gen.current.terminal = terminal;

  const act = async (what) => {
    setBusy(what);
    try {
      await (what === 'retry' ? api.retry(run.id, name) : api.cancel(run.id, name));
      onAction?.(null);
    } catch (e) {
      onAction?.(e);
    } finally {
      setBusy('');
    }
  };

  const runActive = ACTIVE_RUN.has(run.status);
  const seen = (row && history.get(row.id)) || [];
  const attempts = row ? Math.max(row.attempt || 0, ...seen.map((a) => a.attempt)) : 0;

  return (
    <aside class="task-panel panel" data-task-panel={name}>
      <div class="panel-head">
        <h2>
          {name}
          {isGroup && index !== null && index !== undefined && <span class="muted"> #{index}</span>}
        </h2>
        <span class="spacer" />
        {!runActive && (
          <button type="button" name="retry-task" disabled={!!busy} onClick={() => act('retry')} title="re-run this task and everything downstream of it">
            {busy === 'retry' ? 'Retrying…' : 'Retry task'}
          </button>
        )}
        {runActive && row && !TERMINAL.has(row.status) && (
          <button type="button" name="cancel-task" class="danger" disabled={!!busy} onClick={() => act('cancel')}>
            Cancel task
          </button>
        )}
        <button type="button" class="link" onClick={onClose} title="close">
          ✕
        </button>
      </div>
      {isGroup && <Instances rows={rows} index={index} />}
      {isGroup && (index === null || index === undefined || !row) ? (
        <p class="muted">{rows.length} instances. Pick one to see its input, output and log.</p>
      ) : !row ? (
        <p class="muted">Not created yet{def?.depends_on?.length ? ` (waits for ${def.depends_on.join(', ')})` : ''}.</p>
      ) : (
        <>
          <dl class="kv">
            <dt>Status</dt>
            <dd>
              <Status status={row.status} />
            </dd>
            <dt>Attempt</dt>
            <dd>
              {row.attempt} of {(row.max_retries ?? 0) + 1}
            </dd>
            <dt>Executor</dt>
            <dd class="mono small">
              {row.executor || '—'} {row.executor_id && <span class="muted">{row.executor_id}</span>}
            </dd>
            <dt>Dispatched</dt>
            <dd>{fmtTime(row.dispatched_at)}</dd>
            <dt>Started</dt>
            <dd>{fmtTime(row.started_at)}</dd>
            <dt>Finished</dt>
            <dd>{fmtTime(row.finished_at)}</dd>
            <dt>Duration</dt>
            <dd>{fmtDuration(span(row.started_at, row.finished_at))}</dd>
          </dl>
          {row.error && (
            <div class="task-error">
              <h3>Error</h3>
              <div class="error-box">{row.error.message || 'failed'}</div>
              <details>
                <summary>details</summary>
                <Json value={row.error} />
              </details>
            </div>
          )}
          <div class="io">
            <div>
              <h3>Input</h3>
              <Json value={row.input} />
            </div>
            <div>
              <h3>Output</h3>
              <Json value={row.output} empty={TERMINAL.has(row.status) ? 'null' : '(not yet)'} />
            </div>
          </div>
          <h3>
            Logs
            {attempts > 0 && (
              <span class="attempt-picker">
                {Array.from({ length: attempts }, (_, i) => i + 1).map((a) => (
                  <button
                    key={a}
                    type="button"
                    class={`chip${(attemptChoice || attempts) === a ? ' on' : ''}`}
                    data-attempt={a}
                    onClick={() => setAttemptChoice(a === attempts ? 0 : a)}
                  >
                    attempt {a}
                  </button>
                ))}
              </span>
            )}
          </h3>
          <LogView
            key={`${row.id}/${attemptChoice || `latest-${row.attempt}`}/${gen.current.n}`}
            runId={run.id}
            task={name}
            index={isGroup ? index : null}
            attempt={attemptChoice}
          />
        </>
      )}
    </aside>
  );
}
