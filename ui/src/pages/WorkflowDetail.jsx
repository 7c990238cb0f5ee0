// One workflow: its DAG, a form that starts a run with JSON input, and its recent runs (refreshed on run events).
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api } from '../api.js';
import { live } from '../stream.js';
import { navigate } from '../router.js';
import { buildGraph } from '../dag.js';
import { Dag } from '../components/Dag.jsx';
import { ErrorBox, Json, RunsTable } from '../components/common.jsx';
import { fmtTime, useThrottled } from '../util.js';

function TaskTable({ tasks }) {
  return (
    <table class="list compact">
      <thead>
        <tr>
          <th>Task</th>
          <th>Runs</th>
          <th>Depends on</th>
          <th>Retries</th>
          <th>Timeout</th>
        </tr>
      </thead>
      <tbody>
        {tasks.map((t) => (
          <tr key={t.name}>
            <td class="strong">{t.name}</td>
            <td class="mono small">{t.command ? `$ ${t.command}` : t.file ? `${t.executor}: ${t.file}` : t.image || t.executor}</td>
            <td>{(t.depends_on || []).join(', ') || '—'}</td>
            <td>{t.retries}</td>
            <td>{t.timeout_seconds ? `${t.timeout_seconds} s` : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Trigger({ name, onError }) {
  const [text, setText] = useState('{}');
  const [problem, setProblem] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    let input;
    try {
      input = text.trim() ? JSON.parse(text) : {};
    } catch (ex) {
      setProblem(`input is not valid JSON: ${ex.message}`);
      return;
    }
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      setProblem('input must be a JSON object');
      return;
    }
    setProblem('');
    setBusy(true);
    try {
      const res = await api.startRun(name, input);
      navigate(`/runs/${res.run.id}`);
    } catch (ex) {
      onError(ex);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="trigger panel" onSubmit={submit}>
      <h2>Start a run</h2>
      <label>
        Input (JSON object, passed to every task as the run input)
        <textarea name="input" rows={5} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </label>
      {problem && <p class="error">{problem}</p>}
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Starting…' : 'Start run'}
      </button>
    </form>
  );
}

export function WorkflowDetail({ name }) {
  const [wf, setWf] = useState(null);
  const [runs, setRuns] = useState([]);
  const [error, setError] = useState(null);

  const loadRuns = async () => {
    try {
      setRuns((await api.runs({ workflow: name, limit: 20 })).runs);
    } catch (e) {
      setError(e);
    }
  };
  const refreshRuns = useThrottled(loadRuns, 500);

  useEffect(() => {
    api.workflow(name).then(setWf, setError);
    loadRuns();
    return live.on((m) => {
      if (m.kind === 'resync' || (m.kind === 'run' && m.data.workflow_name === name)) refreshRuns();
    });
  }, [name]);

  const graph = useMemo(() => buildGraph(wf?.definition?.tasks || [], null), [wf]);

  return (
    <div class="page">
      <p class="crumbs">
        <a href="/workflows">Workflows</a> /
      </p>
      <h1>{name}</h1>
      <ErrorBox error={error} />
      {wf && (
        <>
          <div class="facts">
            <span>
              <b>Schedule</b> <span class="mono">{wf.schedule || '—'}</span>
            </span>
            {wf.schedule && (
              <span>
                <b>Next fire</b> {fmtTime(wf.next_run)}
              </span>
            )}
            {wf.version && (
              <span>
                <b>Version</b> {wf.version}
              </span>
            )}
            <span>
              <b>Updated</b> {fmtTime(wf.updated_at)}
            </span>
          </div>
          <div class="grid2">
            <section class="panel">
              <h2>DAG</h2>
              <Dag graph={graph} showStatus={false} maxHeight={300} />
            </section>
            <Trigger name={name} onError={setError} />
          </div>
          <section class="panel">
            <h2>Tasks</h2>
            <TaskTable tasks={wf.definition?.tasks || []} />
            <details>
              <summary>Definition (JSON)</summary>
              <Json value={wf.definition} />
            </details>
          </section>
        </>
      )}
      <section class="panel">
        <h2>
          Runs <a class="small" href={`/runs?workflow=${encodeURIComponent(name)}`}>all runs of {name} →</a>
        </h2>
        <RunsTable runs={runs} showWorkflow={false} />
      </section>
    </div>
  );
}
