// A task attempt's log, followed live over the API's log stream (…/logs?follow=true): lines arrive as the worker
// uploads them, `attempt` says a retry started, `end` says the task (or the chosen attempt) is over.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { readStream } from '../stream.js';

const MAX_CHARS = 2_000_000;

export function LogView({ runId, task, index, attempt }) {
  const [text, setText] = useState('');
  const [state, setState] = useState('connecting'); // connecting | following | ended | error
  const [info, setInfo] = useState('');
  const [shownAttempt, setShownAttempt] = useState(attempt || null);
  const pre = useRef(null);
  const stick = useRef(true);

  useEffect(() => {
    const ctrl = new AbortController();
    let buf = '';
    let raf = 0;
    const flush = () => {
      if (raf) cancelAnimationFrame(raf);
      raf = 0;
      setText(buf);
    };
    const append = (s) => {
      buf += s;
      if (buf.length > MAX_CHARS) buf = `[… earlier output cut …]\n${buf.slice(buf.length - MAX_CHARS)}`;
      if (!raf) raf = requestAnimationFrame(flush);
    };
    setText('');
    setInfo('');
    setState('connecting');
    readStream(api.logsUrl(runId, task, { follow: true, index: index ?? undefined, attempt: attempt || undefined }), {
      signal: ctrl.signal,
      onOpen: () => setState('following'),
      onEvent: ({ event, data }) => {
        if (event === 'log') append(`${data}\n`);
        else if (event === 'attempt') {
          const n = JSON.parse(data).attempt;
          setShownAttempt(n);
          append(`──── attempt ${n} ────\n`);
        } else if (event === 'end') {
          flush(); // the text and its "ended" state render together
          const d = JSON.parse(data);
          setShownAttempt(d.attempt);
          setInfo(`attempt ${d.attempt} ended: ${d.status}${d.error?.message ? ` — ${d.error.message}` : ''}`);
          setState('ended');
        }
      },
    })
      .then(() => {
        flush();
        setState('ended');
      })
      .catch((e) => {
        if (ctrl.signal.aborted) return;
        setState('error');
        setInfo(e.message);
      });
    return () => {
      ctrl.abort();
      if (raf) cancelAnimationFrame(raf);
    };
  }, [runId, task, index, attempt]);

  useEffect(() => {
    const el = pre.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [text]);

  return (
    <div class="logview">
      <div class="log-head">
        <span class={`log-state log-${state}`} data-log-state={state}>
          {state === 'following' ? '● following' : state === 'connecting' ? 'connecting…' : state === 'ended' ? 'complete' : 'error'}
        </span>
        {shownAttempt ? <span class="muted small">attempt {shownAttempt}</span> : null}
        <span class="muted small">{info}</span>
      </div>
      <pre
        class="log"
        ref={pre}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 30;
        }}
      >
        {text || (state === 'ended' ? '(no output)' : 'waiting for output…')}
      </pre>
    </div>
  );
}
