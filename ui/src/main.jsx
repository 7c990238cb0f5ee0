// Entry point: asks /health whether the API needs a key, then renders the pages under a small router.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, auth } from './api.js';
import { live } from './stream.js';
import { match, navigate, useLocation } from './router.js';
import { Login } from './pages/Login.jsx';
import { Workflows } from './pages/Workflows.jsx';
import { WorkflowDetail } from './pages/WorkflowDetail.jsx';
import { Runs } from './pages/Runs.jsx';
import { RunDetail } from './pages/RunDetail.jsx';
import './style.css';

const ROUTES = [
  ['/', 'workflows'],
  ['/workflows', 'workflows'],
  ['/workflows/:name', 'workflow'],
  ['/runs', 'runs'],
  ['/runs/:id', 'run'],
];

// Same-origin <a href="/..."> clicks become history navigation.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.origin !== location.origin || a.pathname.startsWith('/api/')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});

function LiveBadge() {
  const [state, setState] = useState(live.state);
  useEffect(() => live.onState(setState), []);
  const label = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', idle: 'offline' }[state];
  return (
    <span class={`live live-${state}`} data-live={state} title="status changes stream from /api/v1/events">
      ● {label}
    </span>
  );
}

function App() {
  const loc = useLocation();
  const [health, setHealth] = useState(null);
  const [needKey, setNeedKey] = useState(false);
  const [authMsg, setAuthMsg] = useState('');
  const [fatal, setFatal] = useState('');

  useEffect(() => {
    api
      .health()
      .then((h) => {
        setHealth(h);
        if (h.auth && !auth.key()) setNeedKey(true);
      })
      .catch((e) => setFatal(`cannot reach the Ork API: ${e.message}`));
    return auth.onRejected((msg) => {
      live.stop();
      setAuthMsg(msg || 'the API key was refused');
      setNeedKey(true);
    });
  }, []);

  const ready = health && !needKey;
  useEffect(() => {
    if (ready) live.start();
  }, [ready]);

  if (fatal) return <div class="fatal">{fatal}</div>;
  if (!health) return <div class="loading">Loading…</div>;
  if (needKey)
    return (
      <Login
        message={authMsg}
        onDone={() => {
          setAuthMsg('');
          setNeedKey(false);
        }}
      />
    );

  const m = match(ROUTES, loc.path);
  let page;
  if (!m) page = <div class="panel">No page at {loc.path}. <a href="/">Workflows</a></div>;
  else if (m.name === 'workflows') page = <Workflows />;
  else if (m.name === 'workflow') page = <WorkflowDetail key={m.params.name} name={m.params.name} search={loc.search} />;
  else if (m.name === 'runs') page = <Runs search={loc.search} />;
  else page = <RunDetail key={m.params.id} id={m.params.id} search={loc.search} />;
  const section = m?.name?.startsWith('run') ? 'runs' : 'workflows';

  return (
    <>
      <header class="top">
        <a class="brand" href="/">
          <img src="/favicon.svg" alt="" width="22" height="22" /> Ork
        </a>
        <nav>
          <a href="/workflows" class={section === 'workflows' ? 'active' : ''}>
            Workflows
          </a>
          <a href="/runs" class={section === 'runs' ? 'active' : ''}>
            Runs
          </a>
        </nav>
        <span class="spacer" />
        <LiveBadge />
        <span class="muted small">
          {health.state} · {health.objects}
        </span>
        {health.auth && (
          <button
            type="button"
            class="link"
            onClick={() => {
              auth.set('');
              live.stop();
              setNeedKey(true);
            }}
          >
            Forget key
          </button>
        )}
      </header>
      <main>{page}</main>
    </>
  );
}

render(<App />, document.getElementById('app'));
