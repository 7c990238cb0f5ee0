// Asks for an API key once per browser session (kept in sessionStorage, sent as a Bearer token).
import { useState } from 'preact/hooks';
import { api, auth } from '../api.js';

export function Login({ message, onDone }) {
  const [key, setKey] = useState('');
  const [err, setErr] = useState(message || '');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) return;
    setBusy(true);
    setErr('');
    try {
      await api.workflows({ limit: 1 }, { key: k });
      auth.set(k);
      onDone();
    } catch (ex) {
      setErr(ex.status === 401 ? 'unknown or revoked API key' : ex.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="login">
      <form class="panel" onSubmit={submit}>
        <h1>Ork</h1>
        <p>This server requires an API key. Create one on the host with</p>
        <pre>ork-host apikey create --scope write</pre>
        <label>
          API key
          <input
            name="apikey"
            type="password"
            autocomplete="off"
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
            placeholder="ork_…"
            autofocus
          />
        </label>
        {err && <p class="error">{err}</p>}
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
        <p class="muted small">The key is kept only in this browser tab's session storage.</p>
      </form>
    </div>
  );
}
