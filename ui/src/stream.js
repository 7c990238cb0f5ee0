// Server-Sent Events read with fetch() so the API key travels in the Authorization header (EventSource cannot send
// headers, and a key in the URL would end up in logs). `live` is the app's one subscription to /api/v1/events.
import { api, auth, headers } from './api.js';

// Reads one event stream until it ends, calling onEvent({event, data, id}) per event. Resolves when the server
// closes it; rejects on network errors and non-2xx answers (err.status is set then). Abort with `signal`.
export async function readStream(url, { onEvent, onOpen, signal }) {
  const res = await fetch(url, { headers: headers({ Accept: 'text/event-stream' }), signal, cache: 'no-store' });
  if (!res.ok) {
    const err = new Error(`event stream: HTTP ${res.status}`);
    err.status = res.status;
    try {
      err.message = (await res.json()).error.message;
    } catch {
      /* not JSON */
    }
    throw err;
  }
  onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = { event: 'message', data: [], id: null };
  const result = { retry: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (ev.data.length) onEvent({ event: ev.event, data: ev.data.join('\n'), id: ev.id });
        ev = { event: 'message', data: [], id: null };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'event') ev.event = val;
      else if (field === 'data') ev.data.push(val);
      else if (field === 'id') ev.id = val;
      else if (field === 'retry' && /^\d+$/.test(val)) result.retry = Number(val);
    }
  }
  return result;
}

// The engine's status changes for the whole app: one /events stream, reconnected after `retry` ms when it drops.
// Listeners get ({kind: 'task'|'run', data}) and, after a reconnect, ({kind: 'resync'}) to refetch what they show.
class Live {
  constructor() {
    this.listeners = new Set();
    this.stateListeners = new Set();
    this.state = 'idle';
    this.ctrl = null;
    this.timer = null;
    this.opened = false;
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  setState(s) {
    this.state = s;
    for (const fn of this.stateListeners) fn(s);
  }

  emit(msg) {
    for (const fn of [...this.listeners]) {
      try {
        fn(msg);
      } catch (e) {
        console.warn('live listener failed', e);
      }
    }
  }

  start() {
    if (this.ctrl) return;
    this.connect();
  }

  stop() {
    clearTimeout(this.timer);
    this.ctrl?.abort();
    this.ctrl = null;
    this.setState('idle');
  }

  connect() {
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.setState('connecting');
    let retry = 3000;
    readStream(api.eventsUrl(), {
      signal: ctrl.signal,
      onOpen: () => {
        const again = this.opened;
        this.opened = true;
        this.setState('live');
        if (again) this.emit({ kind: 'resync' });
      },
      onEvent: ({ event, data }) => {
        if (event !== 'task' && event !== 'run') return;
        try {
          this.emit({ kind: event, data: JSON.parse(data) });
        } catch (e) {
          console.warn('bad event data', e);
        }
      },
    })
      .then((r) => {
        if (r.retry) retry = r.retry;
      })
      .catch((e) => {
        if (e.status === 401) auth.reject(e.message);
      })
      .finally(() => {
        if (ctrl.signal.aborted || this.ctrl !== ctrl) return;
        this.setState('reconnecting');
        this.timer = setTimeout(() => {
          if (this.ctrl === ctrl) this.connect();
        }, retry);
      });
  }
}

export const live = new Live();
