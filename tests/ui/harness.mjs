// Test harness for the UI tests: a real `ork-host serve` on a free port with a temporary home, a small HTTP server for
// the Quick Start's data, API helpers, and chromium (Debian's) driven by playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const SOURCE = process.env.ORK_SOURCE_DIR || path.resolve(import.meta.dirname, '../..');
export const HOST = process.env.ORK_HOST || path.join(SOURCE, 'build/bin/ork-host');
export const SHOTS = process.env.ORK_UI_SHOTS || path.join(SOURCE, 'build/tests/ui/screenshots');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// Starts `ork-host serve --port 0` and resolves once it prints its URL.
export async function startServer(home, { args = [], env = {} } = {}) {
  fs.mkdirSync(home, { recursive: true });
  const log = fs.openSync(path.join(home, 'serve.log'), 'w');
  const proc = spawn(HOST, ['serve', '--port', '0', ...args], {
    env: { ...process.env, ORK_HOME: home, ORK_HEARTBEAT_INTERVAL_MS: '300', ...env },
    stdio: ['ignore', 'pipe', log],
  });
  let out = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ork-host serve did not start: ${out}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/API listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`ork-host serve exited with ${code}: ${out}`)));
  });
  return {
    url,
    home,
    stdout: () => out,
    async stop() {
      if (proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGINT');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      await done;
      clearTimeout(t);
    },
  };
}

// Serves `dir` over HTTP on 127.0.0.1 (the Quick Start's fetch task downloads from it).
export async function fileServer(dir) {
  const srv = http.createServer((req, res) => {
    const file = path.join(dir, path.normalize(decodeURIComponent(req.url.split('?')[0])).replace(/^(\.\.[/\\])+/, ''));
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(data);
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}`, close: () => new Promise((r) => srv.close(r)) };
}

export function apiClient(base, key) {
  const call = async (method, p, body, type = 'application/json') => {
    const headers = {};
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers['Content-Type'] = type;
    const res = await fetch(base + '/api/v1' + p, {
      method,
      headers,
      body: body === undefined ? undefined : type === 'application/json' ? JSON.stringify(body) : body,
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
    return json;
  };
  return {
    deploy: (yaml, baseDir) =>
      call('POST', `/workflows?base_dir=${encodeURIComponent(baseDir)}`, yaml, 'application/yaml'),
    start: async (name, input = {}) => (await call('POST', `/workflows/${name}/runs`, { input })).run,
    run: async (id) => (await call('GET', `/runs/${id}`)).run,
    get: (p) => call('GET', p),
  };
}

export async function eventually(fn, { timeout = 30000, interval = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

export function createKey(home, scope) {
  return execFileSync(HOST, ['--home', home, 'apikey', 'create', '--scope', scope, '--name', 'ui-test'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
}

export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}: run scripts/install-deps`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

// Records every data-status a DAG node shows (injected before the app's scripts, survives client-side navigation).
export const STATUS_RECORDER = `
  window.__statusLog = [];
  const rec = (el) => window.__statusLog.push([el.getAttribute('data-task'), el.getAttribute('data-status'), performance.now()]);
  new MutationObserver((muts) => {
    for (const m of muts) {
      if (m.type === 'attributes') { if (m.target.matches && m.target.matches('g.node')) rec(m.target); continue; }
      for (const n of m.addedNodes) {
        if (n.nodeType !== 1) continue;
        if (n.matches('g.node')) rec(n);
        n.querySelectorAll('g.node').forEach(rec);
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
`;
