// Formatting and small helpers shared by the pages.
import { useEffect, useRef } from 'preact/hooks';

export const RUN_STATUSES = ['pending', 'running', 'success', 'failed', 'cancelled'];
export const TASK_STATUSES = ['pending', 'dispatched', 'running', 'success', 'failed', 'skipped', 'cancelled'];
export const TERMINAL = new Set(['success', 'failed', 'skipped', 'cancelled']);
export const ACTIVE_RUN = new Set(['pending', 'running']);

export function ts(s) {
  if (!s) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

export function fmtTime(s) {
  const t = ts(s);
  if (t === null) return '—';
  const d = new Date(t);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour12: false });
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.toISOString().slice(0, 10)} ${time}`;
}

// "in 5m" / "3m ago" relative to now.
export function fmtRelative(s) {
  const t = ts(s);
  if (t === null) return '';
  const d = t - Date.now();
  const txt = fmtDuration(Math.abs(d)).replace(/ ?s$/, 's').replace(/\.\d+s$/, 's');
  return d >= 0 ? `in ${txt}` : `${txt} ago`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function span(start, end, now = Date.now()) {
  const a = ts(start);
  if (a === null) return null;
  const b = ts(end) ?? now;
  return b - a;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : '';
}

export function pretty(v) {
  if (v === undefined) return '';
  return JSON.stringify(v, null, 2);
}

export function errorText(err) {
  if (!err) return '';
  if (typeof err === 'string') return err;
  return err.message || JSON.stringify(err);
}

// Calls fn at most once per `ms` (the last call wins, trailing edge).
export function throttle(fn, ms) {
  let timer = null;
  let pending = false;
  const wrapped = () => {
    if (timer) {
      pending = true;
      return;
    }
    fn();
    timer = setTimeout(function tick() {
      timer = null;
      if (pending) {
        pending = false;
        wrapped();
      }
    }, ms);
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = null;
    pending = false;
  };
  return wrapped;
}

// useThrottled(fn, ms): a stable throttled callback that always calls the latest fn.
export function useThrottled(fn, ms) {
  const ref = useRef(fn);
  ref.current = fn;
  const t = useRef(null);
  if (!t.current) t.current = throttle(() => ref.current(), ms);
  useEffect(() => () => t.current.cancel(), []);
  return t.current;
}

// Re-renders every `ms` while `on` (for running durations).
export function useTicker(on, ms, tick) {
  useEffect(() => {
    if (!on) return undefined;
    const id = setInterval(tick, ms);
    return () => clearInterval(id);
  }, [on, ms]);
}
