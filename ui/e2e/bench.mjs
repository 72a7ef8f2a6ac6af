// Dashboard benchmark (issue #7; not a test): how long the cluster dashboard of a simulated
// cluster takes to draw its charts once their data has arrived in the browser, and the
// production bundle's size. Run against a server that has the cluster (see docs/benchmarks.md):
//
//   KINSIGHT_URL=http://127.0.0.1:8080 KINSIGHT_TOKEN=… node ui/e2e/bench.mjs [cluster] [runs]
//
// "Data arrived" is the responseEnd of the chart's metrics API responses (Resource Timing);
// "drawn" is the mark each chart sets when uPlot has drawn it (Chart.tsx).

import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './browser.mjs';

const BASE = process.env.KINSIGHT_URL;
const TOKEN = process.env.KINSIGHT_TOKEN;
const cluster = process.argv[2] ?? 'sim';
const runs = Number(process.argv[3] ?? 5);
if (!BASE || !TOKEN) throw new Error('set KINSIGHT_URL and KINSIGHT_TOKEN');

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'assets');
let gz = 0;
let raw = 0;
for (const f of readdirSync(dist)) {
  if (!/\.(js|css)$/.test(f)) continue;
  const b = readFileSync(join(dist, f));
  raw += b.length;
  gz += gzipSync(b, { level: 9 }).length;
}
console.log(`bundle: ${(raw / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzipped`);

const ctx = await launch();
const page = await ctx.newPage();
await page.goto(`${BASE}/?token=${TOKEN}`);
await page.waitForSelector('header.top nav');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (let i = 0; i < runs + 1; i++) {
  await page.goto(`${BASE}/dashboards?cluster=${encodeURIComponent(cluster)}&range=1h`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="charts"] canvas').length >= 8, null, { timeout: 60_000 });
  await page.waitForSelector('[data-testid="top-table"] tbody tr th a', { timeout: 60_000 });
  const m = await page.evaluate(() => {
    const res = performance.getEntriesByType('resource').filter((e) => e.name.includes('/v1/metrics/query'));
    const marks = performance.getEntriesByType('mark').filter((e) => e.name.startsWith('kinsight:chart:'));
    const firstData = Math.min(...res.map((e) => e.responseEnd));
    const lastData = Math.max(...res.map((e) => e.responseEnd));
    const firstChart = Math.min(...marks.map((e) => e.startTime));
    const lastChart = Math.max(...marks.map((e) => e.startTime));
    return {
      charts: marks.length,
      requests: res.length,
      firstDataMs: firstData,
      firstChartAfterItsDataMs: firstChart - firstData,
      allChartsAfterLastDataMs: lastChart - lastData,
      allChartsFromNavigationMs: lastChart,
      bytes: res.reduce((n, e) => n + e.transferSize, 0),
    };
  });
  if (i > 0) rows.push(m); // the first load warms the server's caches
  console.log(JSON.stringify(m));
}
const f = (k) => `${median(rows.map((r) => r[k])).toFixed(1)} ms`;
console.log(
  `median of ${runs}: first chart drawn ${f('firstChartAfterItsDataMs')} after the first data arrived; all ${rows[0].charts} charts drawn ${f('allChartsAfterLastDataMs')} after the last data arrived; all charts ${f('allChartsFromNavigationMs')} after navigation start (${rows[0].requests} metric queries, ${(rows[0].bytes / 1024).toFixed(0)} KiB)`,
);
await ctx.close();
