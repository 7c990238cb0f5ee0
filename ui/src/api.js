// REST client for /api/v1: JSON requests with the session's API key as a Bearer token, errors as ApiError.
const BASE = '/api/v1';
const KEY = 'ork.apiKey';

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const authListeners = new Set();

export const auth = {
  key() {
    return sessionStorage.getItem(KEY) || '';
  },
  set(key) {
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
  },
  // Called with a message when the server refuses the key (401): the app asks for one again.
  onRejected(fn) {
    authListeners.add(fn);
    return () => authListeners.delete(fn);
  },
  reject(message) {
    this.set('');
    for (const fn of authListeners) fn(message);
  },
};

export function headers(extra = {}, key = auth.key()) {
  const h = { Accept: 'application/json', ...extra };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) {
      if (v.length) q.set(k, v.join(','));
    } else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const e = body && body.error;
  return new ApiError(res.status, e?.code || 'http_error', e?.message || `HTTP ${res.status}`, e?.details);
}

export async function request(method, path, { body, params, key, signal } = {}) {
  const init = { method, headers: headers({}, key ?? auth.key()), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(BASE + path + query(params), init);
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && key === undefined) auth.reject(err.message);
    throw err;
  }
  if (res.status === 204) return null;
  return res.json();
}

export const api = {
  health: () => request('GET', '/health'),
  workflows: (params, opts) => request('GET', '/workflows', { params, ...opts }),
  workflow: async (name, opts) => (await request('GET', `/workflows/${encodeURIComponent(name)}`, opts)).workflow,
  startRun: (name, input) => request('POST', `/workflows/${encodeURIComponent(name)}/runs`, { body: { input } }),
  runs: (params, opts) => request('GET', '/runs', { params, ...opts }),
  run: async (id, opts) => (await request('GET', `/runs/${encodeURIComponent(id)}`, opts)).run,
  tasks: (id, params, opts) => request('GET', `/runs/${encodeURIComponent(id)}/tasks`, { params, ...opts }),
  cancel: (id, task) => request('POST', `/runs/${encodeURIComponent(id)}/cancel`, { body: task ? { task } : {} }),
  retry: (id, task) => request('POST', `/runs/${encodeURIComponent(id)}/retry`, { body: task ? { task } : {} }),
  logs: (id, name, params, opts) =>
    request('GET', `/runs/${encodeURIComponent(id)}/tasks/${encodeURIComponent(name)}/logs`, { params, ...opts }),
  logsUrl: (id, name, params) =>
    `${BASE}/runs/${encodeURIComponent(id)}/tasks/${encodeURIComponent(name)}/logs${query(params)}`,
  eventsUrl: (params) => `${BASE}/events${query(params)}`,
};

// Every task row of a run (the tasks route pages at up to 10,000 rows).
export async function allTasks(runId, opts) {
  const rows = [];
  let cursor = null;
  do {
    const page = await api.tasks(runId, { limit: 10000, cursor }, opts);
    rows.push(...page.tasks);
    cursor = page.next_cursor;
  } while (cursor);
  return rows;
}
