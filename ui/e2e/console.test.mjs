// End-to-end: the console in real headless Chromium against a real `kinsight up` (this host's
// agent: cluster "local") also fed by `kinsight simulate` (cluster "sim"), started by
// scripts/tests/ui.sh. Sign in through /?token=, charts of this host, drill-down cluster →
// node → pod → container → logs, a query with its histogram, an expanded record and a syntax
// error marked in place, live tail, an alarm created through the form and the Kubernetes
// pack installed from the page, a container restart with its last lines and memory (from the
// pod dashboard), dark theme, keyboard, the PromQL metrics explorer (completion,
// chart, instant table, the server's parse error). Screenshots go to $ARTIFACTS; any console
// error or uncaught exception fails the run.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch, watchErrors } from './browser.mjs';

const BASE = process.env.KINSIGHT_URL;
const TOKEN = process.env.KINSIGHT_TOKEN;
const SIM = process.env.SIM_CLUSTER ?? 'sim';
const LOCAL = process.env.LOCAL_CLUSTER ?? 'local';
const ARTIFACTS = process.env.ARTIFACTS ?? 'test-artifacts/ui';
if (!BASE || !TOKEN) throw new Error('KINSIGHT_URL and KINSIGHT_TOKEN must be set (scripts/tests/ui.sh starts the server)');
mkdirSync(ARTIFACTS, { recursive: true });

let context;
let page;
const errors = [];

before(async () => {
  context = await launch();
  page = await context.newPage();
  watchErrors(page, errors);
});

after(async () => {
  await context?.close();
});

const shot = (name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

/** Waits for a selector, reloading the page while the data is not there yet. */
async function waitWithReload(selector, { timeoutMs = 90_000, everyMs = 5_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await page.waitForSelector(selector, { timeout: everyMs });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await page.reload();
    }
  }
}

/** Waits until a chart draws at least `n` values, reloading while it has fewer. */
async function waitForValues(testId, n, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await page.waitForSelector(`[data-testid="${testId}"] canvas`, { timeout: 10_000 }).catch(() => undefined);
    const v = Number(await page.getByTestId(testId).getAttribute('data-values'));
    if (v >= n) return;
    if (Date.now() > deadline) throw new Error(`${testId} draws ${v} values, expected at least ${n}`);
    await page.waitForTimeout(3000);
    await page.reload();
  }
}

async function rowCount(testId) {
  return page.locator(`[data-testid="${testId}"] tbody tr`).count();
}

test('the server serves the console on GET, JSON errors under /v1 and POST / elsewhere', async () => {
  const index = await fetch(`${BASE}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /text\/html/);
  const html = await index.text();
  assert.match(html, /<div id="root">/);
  assert.match(index.headers.get('content-security-policy'), /default-src 'self'/);
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)[1];
  const js = await fetch(`${BASE}${script}`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /javascript/);
  assert.match(js.headers.get('cache-control'), /immutable/);
  // A client-side route reloads into the app.
  const route = await fetch(`${BASE}/alarms?name=x`);
  assert.equal(route.status, 200);
  assert.equal(await route.text(), html);
  const api = await fetch(`${BASE}/v1/nothing-here`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(api.status, 404);
  assert.equal((await api.json()).code, 'NotFound');
  const missing = await fetch(`${BASE}/assets/missing-file.js`);
  assert.equal(missing.status, 404);
  const post = await fetch(`${BASE}/`, { method: 'POST', body: '{}' });
  assert.notEqual(post.status, 200, 'POST / is not the console');
  assert.doesNotMatch(await post.text(), /<div id="root">/);
});

test('/?token= signs in and leaves the address bar', async () => {
  await page.goto(`${BASE}/?token=${TOKEN}`);
  await page.waitForSelector('header.top nav');
  assert.ok(!page.url().includes(TOKEN), `token still in ${page.url()}`);
  assert.ok(!page.url().includes('token='), page.url());
  assert.equal(await page.evaluate(() => localStorage.getItem('kinsight.token')), TOKEN);
  // Signed in: the API answers with the stored token after a reload.
  await page.goto(`${BASE}/dashboards`);
  await page.waitForSelector('[data-testid="charts"]');
  await shot('01-signed-in');
});

test('charts of this host (cluster local)', async () => {
  await page.goto(`${BASE}/dashboards?cluster=${LOCAL}&range=15m`);
  await waitWithReload('[data-testid="chart-cpu"] canvas');
  // At least two samples of this host's CPU (the agent collects every 5 s here).
  await waitForValues('chart-cpu', 2);
  await page.waitForSelector('[data-testid="chart-memory"] canvas');
  await page.waitForSelector('[data-testid="top-table"] tbody tr th a');
  const nodes = await page.locator('[data-testid="top-table"] tbody tr th a').allTextContents();
  assert.ok(nodes.length >= 1, 'this host is listed as a node');
  await shot('02-local-cluster');
  // This host's node page.
  await page.locator('[data-testid="top-table"] tbody tr th a').first().click();
  await page.waitForURL(/level=node/);
  await waitWithReload('[data-testid="chart-cpu"] canvas');
  await shot('03-local-node');
});

test('drill-down: cluster → node → pod → container → logs', async () => {
  await page.goto(`${BASE}/dashboards?cluster=${SIM}&range=1h`);
  await page.waitForSelector('[data-testid="chart-cpu"] canvas');
  await page.waitForSelector('[data-testid="chart-running"] canvas');
  await waitForValues('chart-cpu', 20);
  await page.waitForSelector('[data-testid="top-table"] tbody tr th a');
  assert.equal(await rowCount('top-table'), Number(process.env.SIM_NODES ?? 6), 'one row per simulated node');
  await shot('04-sim-cluster');

  await page.locator('[data-testid="top-table"] tbody tr th a').first().click();
  await page.waitForURL(/level=node&node=/);
  await page.waitForSelector('[data-testid="chart-cpu"] canvas');
  assert.match(await page.locator('[data-testid="breadcrumb"]').innerText(), /node ip-10-0-/);
  await page.waitForSelector('#top-title:has-text("Pods on this node")');
  await page.waitForSelector('[data-testid="top-table"] tbody tr th a');
  await shot('05-sim-node');

  await page.locator('[data-testid="top-table"] tbody tr th a').first().click();
  await page.waitForURL(/level=pod&/);
  await page.waitForSelector('[data-testid="chart-cpu"] canvas');
  await page.waitForSelector('#top-title:has-text("Containers")');
  await page.waitForSelector('[data-testid="top-table"] tbody tr th a');
  assert.match(await page.locator('[data-testid="breadcrumb"]').innerText(), /pod /);
  await shot('06-sim-pod');

  const container = (await page.locator('[data-testid="top-table"] tbody tr th a').first().innerText()).trim();
  await page.locator('[data-testid="top-table"] tbody tr th a').first().click();
  await page.waitForURL(/level=container&/);
  await page.waitForSelector('[data-testid="chart-cpu"] canvas');
  await page.waitForSelector('[data-testid="chart-ws"] canvas');
  assert.match(await page.locator('[data-testid="breadcrumb"]').innerText(), new RegExp(`container ${container}`));
  await shot('07-sim-container');

  await page.getByRole('link', { name: 'View logs' }).click();
  await page.waitForURL(/\/insights\?/);
  await page.waitForSelector('[data-testid="results"] tbody tr');
  const linked = new URL(page.url()).searchParams;
  assert.equal(linked.get('groups'), `/kinsight/${SIM}/application`);
  assert.ok(linked.get('query').includes(`kubernetes.container_name = "${container}"`), linked.get('query'));
  const cells = await page.locator('[data-testid="results"] tbody tr td').allTextContents();
  assert.ok(cells.some((c) => c.trim() === container), 'the rows are this container’s lines');
  await shot('08-container-logs');
});

test('Logs Insights: results, histogram, whole record, errors at their position', async () => {
  await page.goto(`${BASE}/insights?groups=${encodeURIComponent(`/kinsight/${SIM}/performance`)}&range=1h`);
  const editor = page.getByTestId('query-editor');
  await editor.fill('filter Type = "Node"\n| stats avg(node_cpu_utilization) as cpu by NodeName\n| sort cpu desc');
  await page.getByTestId('run-query').click();
  await page.waitForSelector('[data-testid="query-status"]:has-text("Complete")');
  assert.equal(await rowCount('results'), Number(process.env.SIM_NODES ?? 6));
  const first = await page.locator('[data-testid="results"] tbody tr td').nth(1).innerText();
  assert.match(first, /^ip-10-0-/);

  await editor.fill('fields @timestamp, NodeName, Type\n| filter Type = "Node"\n| sort @timestamp desc\n| limit 5');
  await editor.press('Control+Enter');
  await page.waitForSelector('[data-testid="query-status"]:has-text("Complete")');
  await page.waitForSelector('[data-testid="histogram"] canvas');
  assert.equal(await rowCount('results'), 5);
  await page.locator('[data-testid="results"] button.expand').first().click();
  await page.waitForSelector('[data-testid="record"]');
  const record = await page.getByTestId('record').innerText();
  assert.match(record, /@message/);
  assert.match(record, /node_cpu_utilization/);
  await shot('09-insights');

  await editor.fill('filter Type = "Node"\n| stats avg(node_cpu_utilization) by');
  await page.waitForSelector('[data-testid="error-mark"]');
  const msg = await page.getByTestId('editor-error').innerText();
  assert.match(msg, /^Line 2, column \d+:/);
  await shot('10-insights-error');
});

test('log groups and live tail', async () => {
  await page.goto(`${BASE}/logs?group=${encodeURIComponent(`/kinsight/${SIM}/application`)}`);
  await page.waitForSelector('[data-testid="events-table"] tbody tr');
  await page.waitForSelector('[data-testid="stream-list"] li button');
  const firstRow = () => document.querySelector('[data-testid="events-table"] tbody tr')?.textContent;
  const before = await page.evaluate(firstRow);
  const rowsBefore = await rowCount('events-table');
  await page.getByTestId('live-tail').check();
  // `kinsight simulate` keeps shipping application logs every few seconds.
  await page.waitForFunction((b) => document.querySelector('[data-testid="events-table"] tbody tr')?.textContent !== b, before, { timeout: 60_000 });
  assert.ok((await rowCount('events-table')) > rowsBefore, 'new events were added on top');
  await shot('11-live-tail');
  await page.getByTestId('live-tail').uncheck();
});

test('alarms: create through the form, history, Kubernetes pack', async () => {
  await page.goto(`${BASE}/alarms`);
  await page.getByTestId('create-alarm').click();
  await page.waitForURL(/\/alarms\/new/);
  const form = page.getByTestId('alarm-form');
  await form.locator('input[name="AlarmName"]').fill('e2e-node-cpu');
  await form.locator('input[name="AlarmDescription"]').fill('created by the browser test');
  await form.locator('input[name="MetricName"]').fill('node_cpu_utilization');
  await form.getByLabel('Dimension 1 value').fill(SIM);
  await form.getByRole('button', { name: 'Add dimension' }).click();
  await form.getByLabel('Dimension 2 name').fill('NodeName');
  await form.getByLabel('Dimension 2 value').fill('*');
  await form.getByRole('button', { name: 'Add dimension' }).click();
  await form.getByLabel('Dimension 3 name').fill('InstanceId');
  await form.getByLabel('Dimension 3 value').fill('*');
  await form.locator('select[name="Statistic"]').selectOption('p90');
  await form.locator('input[name="Threshold"]').fill('1');
  await form.locator('input[name="EvaluationPeriods"]').fill('3');
  await form.locator('input[name="DatapointsToAlarm"]').fill('2');
  await form.locator('select[name="TreatMissingData"]').selectOption('notBreaching');
  await form.locator('textarea[name="AlarmActions"]').fill('http://127.0.0.1:9/hook');
  await shot('12-alarm-form');
  await page.getByTestId('save-alarm').click();
  await page.waitForURL(/\/alarms\?name=e2e-node-cpu/);
  await page.waitForSelector('[data-testid="alarm-detail"]');
  await page.waitForSelector('[data-testid="alarm-chart"] canvas');
  await page.waitForSelector('[data-testid="alarm-history"] tbody tr');
  const hist = await page.getByTestId('alarm-history').innerText();
  assert.match(hist, /ConfigurationUpdate/);
  const detail = await page.getByTestId('alarm-detail').innerText();
  assert.match(detail, /p90 > 1 for 2 of 3/);
  await shot('13-alarm-detail');

  // The server has it, as entered.
  const api = await fetch(`${BASE}/v1/alarm?name=e2e-node-cpu`, { headers: { Authorization: `Bearer ${TOKEN}` } }).then((r) => r.json());
  assert.equal(api.ExtendedStatistic, 'p90');
  assert.equal(api.TreatMissingData, 'notBreaching');
  assert.deepEqual(api.AlarmActions, ['http://127.0.0.1:9/hook']);

  // Edit: the threshold changes, the name stays.
  await page.getByRole('link', { name: 'Edit' }).click();
  await page.waitForURL(/\/alarms\/edit/);
  await page.getByTestId('alarm-form').locator('input[name="Threshold"]').fill('95');
  await page.getByTestId('save-alarm').click();
  await page.waitForURL(/\/alarms\?name=e2e-node-cpu/);
  await page.waitForSelector('[data-testid="alarm-detail"]:has-text("p90 > 95")');

  await page.goto(`${BASE}/alarms`);
  await page.getByTestId('open-pack').click();
  await page.getByTestId('pack-form').locator('select').selectOption(SIM);
  await page.getByTestId('install-pack').click();
  await page.waitForSelector('[data-testid="pack-form"] [role="status"]');
  assert.match(await page.getByTestId('pack-form').innerText(), /Installed 7 alarms/);
  await page.getByRole('button', { name: 'Close' }).click();
  // The pack's seven and the one made through the form.
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="alarm-list"] tbody tr').length === 8);
  await shot('14-alarm-list');
});

test('restarts: an OOM kill with its last lines and memory, one click from the pod dashboard', async () => {
  // What an agent ships for a container killed for memory (docs/agent.md, "Restart forensics"):
  // its Container events of the minutes before, then its ContainerRestart event.
  const group = `/kinsight/${SIM}/performance`;
  const finished = Math.floor((Date.now() - 3 * 60_000) / 1000) * 1000;
  const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
  const k = { pod_name: 'orders-6f7d8b9c4d-q8z2n', container_name: 'app', namespace_name: 'shop' };
  const events = [];
  for (let i = 10; i >= 1; i--) {
    const t = finished - i * 60_000;
    events.push({
      logGroupName: group,
      logStreamName: 'e2e-node',
      timestamp: t,
      message: JSON.stringify({ Type: 'Container', Timestamp: String(t), ClusterName: SIM, NodeName: 'e2e-node', Namespace: 'shop', PodName: 'orders', kubernetes: k, container_memory_working_set: (150 + 10 * (10 - i)) * 2 ** 20, container_memory_limit: 256 * 2 ** 20 }),
    });
  }
  const trace = 'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space\n\tat com.example.orders.Cache.put(Cache.java:88)';
  events.push({
    logGroupName: group,
    logStreamName: 'e2e-node',
    timestamp: finished,
    message: JSON.stringify({
      Type: 'ContainerRestart', Version: '0', Timestamp: String(finished), Sources: ['pod', 'log', 'cadvisor'], ClusterName: SIM, NodeName: 'e2e-node',
      Namespace: 'shop', PodName: 'orders', FullPodName: k.pod_name, ContainerName: 'app', ContainerId: 'a1'.repeat(32), RestartCount: 3, Reason: 'OOMKilled', ExitCode: 137,
      StartedAt: iso(finished - 3_600_000), FinishedAt: iso(finished), container_memory_working_set_before: 240 * 2 ** 20, container_cpu_usage_before: 61.7,
      container_memory_limit: 256 * 2 ** 20, LastLogLines: ['INFO order 41 accepted', 'WARN heap at 97%', trace],
    }),
  });
  const ingest = await fetch(`${BASE}/v1/ingest`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: JSON.stringify(events) });
  assert.equal(ingest.status, 200, await ingest.text());

  // The pod dashboard links to the pod's restarts.
  await page.goto(`${BASE}/dashboards?cluster=${SIM}&level=pod&ns=shop&pod=orders&range=1h`);
  // The dashboard's own link once it shows the pod (the navigation has a cluster-wide one).
  await page.locator('a.button[href*="/restarts?"][href*="pod=orders"]').click();
  await page.waitForURL(/\/restarts\?cluster=sim&ns=shop&pod=orders/);
  await waitWithReload('[data-testid="restarts"] tbody tr');
  const list = await page.getByTestId('restarts').innerText();
  assert.match(list, /orders-6f7d8b9c4d-q8z2n/);
  assert.match(list, /OOMKilled/);
  assert.match(list, /137/);
  assert.equal(await rowCount('restarts'), 1);
  await page.getByRole('button', { name: /orders-6f7d8b9c4d-q8z2n app: show why it ended/ }).click();
  await page.waitForSelector('[data-testid="restart-lines"] pre');
  const lines = await page.getByTestId('restart-lines').locator('pre').allInnerTexts();
  assert.deepEqual(lines, ['INFO order 41 accepted', 'WARN heap at 97%', trace]);
  assert.match(await page.getByTestId('restart-readings').innerText(), /240 MiB of 256 MiB \(93\.8 %\)/);
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="restart-memory"]')?.getAttribute('data-values')) >= 10, undefined, { timeout: 60_000 });
  await shot('14b-restarts');

  // The cluster's list has it too; a namespace without restarts says so.
  await page.goto(`${BASE}/restarts?cluster=${SIM}&range=1h`);
  await waitWithReload('[data-testid="restarts"] tbody tr');
  assert.match(await page.getByTestId('restarts').innerText(), /orders-6f7d8b9c4d-q8z2n/);
  await page.goto(`${BASE}/restarts?cluster=${SIM}&ns=nowhere&range=1h`);
  await page.waitForSelector('[data-testid="no-restarts"]');
});

test('dark theme, 1280 px, keyboard', async () => {
  await page.goto(`${BASE}/dashboards?cluster=${SIM}&level=pod&range=1h`);
  await page.waitForSelector('[data-testid="chart-cpu"] canvas');
  await page.getByRole('button', { name: /Switch to dark theme/ }).click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
  await page.waitForSelector('[data-testid="chart-cpu"] canvas');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 1280, `no horizontal scrolling at 1280 px (page is ${width} px wide)`);
  await shot('15-dark-pods');
  // From the top of a fresh page, Tab reaches the skip link, then the navigation; Enter
  // follows a link.
  await page.reload();
  await page.waitForSelector('[data-testid="chart-cpu"] canvas');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Dashboards');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/logs$/);
  await page.getByRole('button', { name: /Switch to light theme/ }).click();
});

test('metrics explorer: PromQL with completion, chart, instant values, link', async () => {
  const editor = page.getByTestId('promql-editor');
  const option = page.locator('[data-testid="completions"] [role="option"]', {
    has: page.locator('.completion-label', { hasText: /^node_memory_utilization$/ }),
  });
  // Metric names are read once per page load: reload until this host's agent has sent them.
  const deadline = Date.now() + 90_000;
  for (;;) {
    await page.goto(`${BASE}/metrics?range=15m`);
    await editor.click();
    await editor.pressSequentially('node_mem');
    try {
      await option.waitFor({ timeout: 5_000 });
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
  const offered = await page.locator('[data-testid="completions"] .completion-label').allTextContents();
  assert.ok(offered.every((m) => m.startsWith('node_mem')), `only names starting with what was typed: ${offered}`);
  // Arrow down to it, Enter accepts.
  for (let i = 0; i < offered.length && (await option.getAttribute('aria-selected')) !== 'true'; i++) await editor.press('ArrowDown');
  assert.equal(await option.getAttribute('aria-selected'), 'true');
  await shot('16-metrics-completion');
  await editor.press('Enter');
  assert.equal(await editor.inputValue(), 'node_memory_utilization');
  await page.locator('[data-testid="completions"]').waitFor({ state: 'detached' });
  await editor.press('Control+Enter');
  await page.waitForURL(/\/metrics\?.*q=node_memory_utilization/);
  await page.waitForSelector('[data-testid="promql-chart"] canvas');
  assert.ok(Number(await page.getByTestId('promql-chart').getAttribute('data-series')) >= 1, 'at least one series drawn');
  await page.waitForSelector('[data-testid="promql-table"] tbody tr:has-text("NodeName=")');
  const rows = await page.locator('[data-testid="promql-table"] tbody tr').allInnerTexts();
  assert.ok(rows.some((r) => r.startsWith('node_memory_utilization{') && /NodeName="[^"]+"/.test(r)), rows.join('\n'));
  await shot('16-metrics');

  // The link reproduces it.
  const link = page.url();
  await page.goto(`${BASE}/dashboards`);
  await page.goto(link);
  assert.equal(await editor.inputValue(), 'node_memory_utilization');
  await page.waitForSelector('[data-testid="promql-chart"] canvas');
  await page.waitForSelector('[data-testid="promql-table"] tbody tr:has-text("NodeName=")');
});

test('metrics explorer: a query that does not parse shows the server’s message', async () => {
  // Its own page: the server answers 400, which the browser logs as an error on purpose.
  const p = await context.newPage();
  const own = [];
  watchErrors(p, own);
  await p.goto(`${BASE}/metrics?range=15m`);
  const editor = p.getByTestId('promql-editor');
  await editor.click();
  await editor.pressSequentially('sum(');
  await p.getByTestId('run-promql').click();
  const alert = p.locator('[role="alert"][data-testid="promql-error"]');
  await alert.waitFor();
  const server = await fetch(`${BASE}/api/v1/query?query=${encodeURIComponent('sum(')}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(server.status, 400);
  const { error } = await server.json();
  assert.match(error, /parse error/);
  assert.match(await alert.innerText(), /parse error/);
  assert.ok((await alert.innerText()).includes(error), `${await alert.innerText()} shows ${error}`);
  assert.equal(await p.locator('[data-testid="promql-chart"]').count(), 0);
  await p.screenshot({ path: join(ARTIFACTS, '17-metrics-error.png'), fullPage: true });
  await p.close();
  assert.deepEqual(
    own.filter((e) => !/status of 400 \(Bad Request\)/.test(e)),
    [],
    'nothing but the two refused queries (range and instant)',
  );
});

test('no console errors or uncaught exceptions', () => {
  assert.deepEqual(errors, []);
});

test('a wrong token gets the sign-in form, which takes the right one', async () => {
  // Its own page, not watched: the refused token is a 401 the browser logs on purpose.
  const p = await context.newPage();
  await p.goto(`${BASE}/?token=not-the-token`);
  await p.waitForSelector('form:has-text("Sign in to kinsight")');
  assert.match(await p.locator('form').innerText(), /not accepted/);
  assert.ok(!p.url().includes('not-the-token'));
  await p.getByLabel('Token').fill(TOKEN);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.waitForSelector('header.top nav');
  assert.equal(await p.evaluate(() => localStorage.getItem('kinsight.token')), TOKEN);
  await p.close();
});

