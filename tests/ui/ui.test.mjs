// The web UI in a real browser against a real `ork-host serve`: the example workflow, a run triggered with JSON input
// turning green live, task logs (followed live), cancel, retry of a failed task, the runs list, a 1,000-instance
// fan-out, and API keys. Every test fails on any browser console error; screenshots go to $ORK_UI_SHOTS.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import {
  SHOTS,
  SOURCE,
  STATUS_RECORDER,
  apiClient,
  createKey,
  eventually,
  fileServer,
  launchBrowser,
  startServer,
  tempDir,
} from './harness.mjs';

const T = { timeout: 60000 };
let browser, server, data, api, page, errors, shotNo, work;

async function shot(name) {
  shotNo += 1;
  await page.screenshot({ path: path.join(SHOTS, `${String(shotNo).padStart(2, '0')}-${name}.png`), fullPage: true });
}

function watch(p) {
  p.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url || ''})`);
  });
  p.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
}

const node = (task) => `g.node[data-task="${task}"]`;
const nodeStatus = (task, status) => `${node(task)}[data-status="${status}"]`;
const runBadge = (status) => `.run-head .badge[data-status="${status}"]`;

before(async () => {
  fs.rmSync(SHOTS, { recursive: true, force: true });
  fs.mkdirSync(SHOTS, { recursive: true });
  shotNo = 0;
  work = tempDir('ork-ui-test-');
  data = await fileServer(path.join(SOURCE, 'examples/quickstart/data'));
  server = await startServer(path.join(work, 'home'));
  api = apiClient(server.url);
  await api.deploy(fs.readFileSync(path.join(SOURCE, 'examples/quickstart/workflow.yaml'), 'utf8'), path.join(SOURCE, 'examples/quickstart'));
  await api.deploy(
    `name: long_job
tasks:
  ticker:
    command: "for i in $(seq 1 300); do echo tick $i; sleep 0.2; done; echo '{}'"
`,
    work,
  );
  const marker = path.join(work, 'flaky.marker');
  await api.deploy(
    `name: flaky_job
tasks:
  prepare:
    command: "echo '{\\"n\\": 1}'"
  flaky:
    command: "if [ -f ${marker} ]; then echo '{\\"ok\\": true}'; else touch ${marker}; echo 'failing on purpose' >&2; exit 3; fi"
    depends_on: [prepare]
  report:
    command: "echo '{\\"done\\": true}'"
    depends_on: [flaky]
`,
    work,
  );
  await api.deploy(
    `name: fan_1000
tasks:
  split:
    command: "echo '{}'"
  work:
    command: "echo '{}'"
    parallel: 1000
    depends_on: [split]
  join:
    command: "echo '{}'"
    depends_on: [work]
`,
    work,
  );
  await api.deploy(`name: noop\ntasks:\n  only:\n    command: "echo '{}'"\n`, work);
  await api.deploy(`name: nightly\nschedule: "0 3 * * *"\ntasks:\n  only:\n    command: "echo '{}'"\n`, work);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await data?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

beforeEach(async () => {
  errors = [];
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 950 } });
  await ctx.addInitScript(STATUS_RECORDER);
  page = await ctx.newPage();
  watch(page);
});

afterEach(async () => {
  await page?.context().close();
  assert.deepEqual(errors, [], 'the browser console stayed free of errors');
});

describe('web UI', () => {
  it('serves the app with the right types and caching, and lists the example workflow', T, async () => {
    const index = await fetch(server.url + '/runs/some-client-route');
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /^text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const html = await index.text();
    const js = html.match(/src="(\/assets\/[^"]+\.js)"/)[1];
    const asset = await fetch(server.url + js);
    assert.match(asset.headers.get('content-type'), /^text\/javascript/);
    assert.match(asset.headers.get('cache-control'), /max-age=31536000, immutable/);
    assert.equal((await fetch(server.url + '/assets/missing-file.js')).status, 404);

    await page.goto(server.url + '/');
    const row = page.locator('tr[data-workflow="data_pipeline"]');
    await row.waitFor();
    assert.equal(await row.locator('td').nth(1).innerText(), '2');
    await page.locator('[data-live="live"]').waitFor();
    await shot('workflows');
  });

  it('triggers a run with JSON input and colours the DAG live until every task is green', T, async () => {
    await page.goto(server.url + '/');
    await page.click('tr[data-workflow="data_pipeline"] a');
    await page.locator(node('fetch')).waitFor();
    await shot('workflow-detail');
    await page.fill('textarea[name="input"]', JSON.stringify({ url: `${data.url}/data.txt` }, null, 2));
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
    await page.click('button:has-text("Start run")');
    await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    await page.locator(nodeStatus('fetch', 'running')).or(page.locator(nodeStatus('fetch', 'success'))).waitFor();
    await shot('run-in-progress');
    await page.locator(nodeStatus('summarize', 'success')).waitFor({ timeout: 45000 });
    await page.locator(runBadge('success')).waitFor();
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no page reload happened');
    const log = await page.evaluate(() => window.__statusLog);
    const seen = (t) => log.filter(([task]) => task === t).map(([, s]) => s);
    for (const t of ['fetch', 'summarize']) {
      const s = seen(t);
      assert.equal(s.at(-1), 'success', `${t} ends green`);
      assert.ok(s.some((x) => x !== 'success'), `${t} was shown before it succeeded (live): ${s.join(' > ')}`);
    }
    const stroke = await page.locator(`${node('summarize')} rect.box`).evaluate((el) => getComputedStyle(el).stroke);
    assert.equal(stroke, 'rgb(22, 163, 74)', 'a successful task is green');
    // the timeline has a bar per task
    assert.equal(await page.locator('.gantt rect.seg.st-success').count(), 2);
    await shot('run-success');
  });

  it("opens a task's input, output and logs", T, async () => {
    const runs = await api.get('/runs?workflow=data_pipeline&limit=1');
    await page.goto(`${server.url}/runs/${runs.runs[0].id}`);
    await page.click(node('summarize'));
    const panel = page.locator('.task-panel');
    await panel.waitFor();
    await page.locator('[data-log-state="ended"]').waitFor();
    assert.match(await panel.locator('pre.log').innerText(), /\[ork-worker\] task summarize .*attempt 1/);
    assert.match(await panel.locator('.io').innerText(), /total_chars/);
    assert.match(page.url(), /\?task=summarize$/);
    await shot('task-logs');
  });

  it('follows a running task log live and cancels the long run', T, async () => {
    await page.goto(server.url + '/workflows/long_job');
    await page.click('button:has-text("Start run")');
    await page.waitForURL(/\/runs\//);
    await page.locator(nodeStatus('ticker', 'running')).waitFor();
    await page.click(node('ticker'));
    const log = page.locator('pre.log');
    await page.locator('[data-log-state="following"]').waitFor();
    await eventually(async () => /tick 2\b/.test(await log.innerText()), { what: 'first log lines' });
    const first = (await log.innerText()).match(/tick (\d+)/g).length;
    await eventually(async () => ((await log.innerText()).match(/tick (\d+)/g) || []).length >= first + 3, {
      what: 'more lines arriving while the task runs',
    });
    await shot('log-following');
    await page.click('button[name="cancel-run"]');
    await page.click('button[name="confirm-cancel"]');
    await page.locator(runBadge('cancelled')).waitFor({ timeout: 20000 });
    await page.locator(nodeStatus('ticker', 'cancelled')).waitFor();
    await page.locator('[data-log-state="ended"]').waitFor();
    assert.equal(await page.locator('button[name="cancel-run"]').count(), 0);
    await shot('run-cancelled');
  });

  it('retries a failed task from its panel', T, async () => {
    const run = await api.start('flaky_job');
    await eventually(async () => (await api.run(run.id)).status === 'failed', { what: 'the flaky run to fail' });
    await page.goto(`${server.url}/runs/${run.id}`);
    await page.locator(nodeStatus('flaky', 'failed')).waitFor();
    await page.locator(nodeStatus('report', 'skipped')).waitFor();
    await page.click(node('flaky'));
    await page.locator('.task-error').waitFor();
    assert.match(await page.locator('.task-error').innerText(), /exited with code 3/);
    await page.locator('[data-log-state="ended"]').waitFor();
    assert.match(await page.locator('pre.log').innerText(), /failing on purpose/);
    await shot('task-failed');
    await page.click('button[name="retry-task"]');
    await page.locator(nodeStatus('report', 'success')).waitFor({ timeout: 30000 });
    await page.locator(nodeStatus('flaky', 'success')).waitFor();
    await page.locator(runBadge('success')).waitFor();
    // the panel follows the new attempt
    await eventually(async () => /attempt 2/.test(await page.locator('.task-panel').innerText()), { what: 'attempt 2 in the panel' });
    await eventually(async () => /task succeeded/.test(await page.locator('pre.log').innerText()), { what: 'the new attempt log' });
    await shot('task-retried');
  });

  it('filters and pages the runs list, and shows new runs live', T, async () => {
    const ids = [];
    for (let i = 0; i < 26; i++) ids.push((await api.start('noop')).id);
    await eventually(async () => (await api.get('/runs?workflow=noop&status=success&limit=100')).runs.length === 26, {
      what: 'the noop runs',
    });
    await page.goto(server.url + '/runs');
    await page.locator('table.runs-table tbody tr').first().waitFor();
    assert.equal(await page.locator('table.runs-table tbody tr').count(), 25);
    await page.click('button:has-text("Older")');
    await page.locator('text=page 2').waitFor();
    assert.ok((await page.locator('table.runs-table tbody tr').count()) >= 1);
    await page.click('button:has-text("Newer")');
    await page.locator('text=page 1').waitFor();

    await page.check('input[name="status-cancelled"]');
    await page.waitForURL(/status=cancelled/);
    await eventually(async () => (await page.locator('table.runs-table tbody tr').count()) === 1, { what: 'one cancelled run' });
    assert.match(await page.locator('table.runs-table tbody').innerText(), /long_job/);
    await page.uncheck('input[name="status-cancelled"]');
    await page.selectOption('select[name="workflow"]', 'data_pipeline');
    await page.waitForURL(/workflow=data_pipeline/);
    await eventually(async () => {
      const text = await page.locator('table.runs-table tbody').innerText();
      return /data_pipeline/.test(text) && !/noop|long_job|flaky_job/.test(text);
    }, { what: 'only data_pipeline runs' });
    await shot('runs-filtered');

    // a run started elsewhere appears without a reload
    await page.selectOption('select[name="workflow"]', '');
    await page.waitForURL((u) => !/workflow=/.test(u.search));
    await page.locator('table.runs-table tbody tr').first().waitFor();
    const fresh = await api.start('noop');
    await page.locator(`tr[data-run="${fresh.id}"]`).waitFor({ timeout: 10000 });
    await shot('runs-live');
  });

  it('collapses a 1,000-instance fan-out into one group node with counts and stays responsive', T, async () => {
    await page.goto(server.url + '/workflows/fan_1000');
    await page.evaluate(() => {
      window.__longTasks = [];
      new PerformanceObserver((l) => window.__longTasks.push(...l.getEntries().map((e) => e.duration))).observe({ entryTypes: ['longtask'] });
    });
    await page.click('button:has-text("Start run")');
    await page.waitForURL(/\/runs\//);
    const started = Date.now();
    let worst = 0;
    // while the events stream in, the page keeps answering
    while (!(await page.locator(runBadge('success')).count()) && Date.now() - started < 45000) {
      const t = Date.now();
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
      worst = Math.max(worst, Date.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
    await page.locator(runBadge('success')).waitFor();
    const group = page.locator(node('work'));
    await eventually(async () => (await group.getAttribute('data-done')) === '1000', { what: '1000 instances done' });
    assert.equal(await page.locator('g.node').count(), 3, 'one node per task, the fan-out collapsed');
    assert.equal(await group.getAttribute('data-total'), '1000');
    assert.equal(await group.getAttribute('data-status'), 'success');
    assert.match(await group.locator('text.counts').textContent(), /1000/);
    const longTasks = await page.evaluate(() => window.__longTasks);
    const longest = Math.max(0, ...longTasks);
    console.log(`fan-out 1000: run shown done after ${Date.now() - started} ms; slowest frame wait ${worst} ms; longest task ${Math.round(longest)} ms`);
    assert.ok(worst < 1500, `a frame within 1.5 s while events stream (worst ${worst} ms)`);
    await page.click(node('work'));
    await page.locator('.instance-grid button.inst').first().waitFor();
    assert.equal(await page.locator('.instance-grid button.inst').count(), 200, 'instances are listed a page at a time');
    await page.click('.instance-grid button.inst[data-index="7"]');
    await page.locator('[data-log-state="ended"]').waitFor();
    assert.match(await page.locator('pre.log').innerText(), /task work/);
    await shot('fanout-1000');
  });

  it('shows each workflow\'s last run status and next scheduled fire', T, async () => {
    await page.goto(server.url + '/workflows');
    const row = (name) => page.locator(`tr[data-workflow="${name}"]`);
    await row('data_pipeline').locator('.last-run .badge[data-status="success"]').waitFor();
    await row('long_job').locator('.last-run .badge[data-status="cancelled"]').waitFor();
    assert.equal(await row('nightly').locator('td').nth(2).innerText(), '0 3 * * *');
    const next = (await api.get('/workflows/nightly')).workflow.next_run;
    assert.ok(next, 'the API reports a next fire');
    await eventually(async () => (await row('nightly').locator('td').nth(4).innerText()) !== '—', { what: 'next fire shown' });
    assert.match(await row('nightly').locator('td').nth(4).innerText(), /03:00:00|\d{4}-\d\d-\d\d/);
    assert.equal(await row('nightly').locator('.last-run').innerText(), 'never');
    // a run started elsewhere updates the last-run column live
    const run = await api.start('noop');
    await row('noop').locator(`.last-run a[href="/runs/${run.id}"]`).waitFor({ timeout: 10000 });
    await shot('workflows-last-run');
  });

  it('asks for an API key once per session when auth is on, and streams events with it', T, async () => {
    const home = path.join(work, 'home-auth');
    fs.mkdirSync(home, { recursive: true });
    const key = createKey(home, 'write');
    const secured = await startServer(home);
    try {
      const authed = apiClient(secured.url, key);
      await authed.deploy(`name: secured\ntasks:\n  only:\n    command: "echo '{}'"\n`, work);
      await page.goto(secured.url + '/');
      await page.locator('input[name="apikey"]').waitFor();
      await shot('login');
      await page.fill('input[name="apikey"]', key);
      await page.click('button:has-text("Sign in")');
      await page.locator('tr[data-workflow="secured"]').waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('ork.apiKey')), key);
      await page.reload();
      await page.locator('tr[data-workflow="secured"]').waitFor();
      assert.equal(await page.locator('input[name="apikey"]').count(), 0, 'the key is not asked for again');
      await page.locator('[data-live="live"]').waitFor();
      await page.goto(secured.url + '/runs');
      await page.locator('[data-live="live"]').waitFor();
      const run = await authed.start('secured');
      await page.locator(`tr[data-run="${run.id}"]`).waitFor({ timeout: 10000 });
      await shot('auth-runs');
    } finally {
      await page.goto('about:blank'); // close the event stream before its server goes away
      await secured.stop();
    }
  });
});
