// A small history-API router: paths like /runs/:id, links intercepted in main.jsx, query strings kept in the URL.
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set();

export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const fn of listeners) fn();
}

window.addEventListener('popstate', () => {
  for (const fn of listeners) fn();
});

export function useLocation() {
  const [loc, setLoc] = useState({ path: location.pathname, search: location.search });
  useEffect(() => {
    const fn = () => setLoc({ path: location.pathname, search: location.search });
    listeners.add(fn);
    return () => listeners.delete(fn);
  }, []);
  return loc;
}

// Matches `path` against patterns like '/runs/:id'; returns {name, params} of the first match or null.
export function match(routes, path) {
  const parts = path.replace(/\/+$/, '').split('/').filter(Boolean);
  for (const [pattern, name] of routes) {
    const pp = pattern.split('/').filter(Boolean);
    if (pp.length !== parts.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < pp.length && ok; i++) {
      if (pp[i].startsWith(':')) params[pp[i].slice(1)] = decodeURIComponent(parts[i]);
      else ok = pp[i] === parts[i];
    }
    if (ok) return { name, params };
  }
  return null;
}

export function searchParams(search) {
  return Object.fromEntries(new URLSearchParams(search));
}

// Replaces some query parameters of the current URL (null removes one) without a new history entry.
export function setQuery(changes, { push = false } = {}) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  navigate(location.pathname + (s ? `?${s}` : ''), { replace: !push });
}
