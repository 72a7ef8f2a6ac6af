// Data of a "top resources" table: two metric queries joined by the row's dimensions, or one
// Logs Insights `stats … by …, bin()` query on the performance group.

import { queryMetric, runQuery, type Dimension, type MetricResult } from './api';
import { NAMESPACE, average, rowsFromInsights, type ResourceRow, type Selection, type TableSpec } from './dashboards';
import { parseResultTime, periodFor, type TimeRange } from './time';

export interface TableData {
  rows: ResourceRow[];
}

/** Sparkline resolution: about 30 points. */
export function sparkBinSeconds(r: TimeRange): number {
  const span = (r.end - r.start) / 1000;
  return Math.max(60, Math.ceil(span / 30 / 60) * 60);
}

export async function listMetricsForTable(spec: TableSpec, sel: Selection, prefix: string, range: TimeRange, signal: AbortSignal): Promise<TableData> {
  const src = spec.source;
  if (src.kind === 'insights') {
    const bin = sparkBinSeconds(range);
    const res = await runQuery(
      { groups: [`${prefix}/${sel.cluster}/performance`], start: range.start, end: range.end, query: src.query(bin), limit: 10000 },
      signal,
    );
    if (res.status !== 'Complete') throw new Error(res.error?.message ?? `query ${res.status}`);
    return { rows: rowsFromInsights(res.columns, res.allRows, src.key, parseResultTime).rows };
  }
  const prefixName = spec.rowLevel === 'node' ? 'node' : 'pod';
  const period = Math.max(periodFor(range), sparkBinSeconds(range));
  const q = (metric: string) =>
    queryMetric(
      { Namespace: NAMESPACE, MetricName: metric, Dimensions: src.dims, Statistic: 'Average', Period: period, StartTime: range.start, EndTime: range.end, MaxSeries: 5000 },
      signal,
    );
  const [cpu, mem] = await Promise.all([q(`${prefixName}_cpu_utilization`), q(`${prefixName}_memory_utilization`)]);
  return { rows: joinSeries(cpu, mem, src.key) };
}

function keyOf(dims: { Name: string; Value: string }[], key: string[]): Record<string, string> {
  const k: Record<string, string> = {};
  for (const name of key) k[name] = dims.find((x) => x.Name === name)?.Value ?? '';
  return k;
}

export function joinSeries(cpu: MetricResult, mem: MetricResult, key: string[]): ResourceRow[] {
  const rows = new Map<string, ResourceRow>();
  const id = (k: Record<string, string>) => key.map((n) => k[n]).join('\u0001');
  const empty = (n: number) => new Array<number | null>(n).fill(null);
  for (const s of cpu.Series) {
    const k = keyOf(s.Dimensions, key);
    rows.set(id(k), { key: k, cpu: s.Values, mem: empty(s.Values.length), cpuAvg: average(s.Values), memAvg: null });
  }
  for (const s of mem.Series) {
    const k = keyOf(s.Dimensions, key);
    const r = rows.get(id(k));
    if (r) {
      r.mem = s.Values;
      r.memAvg = average(s.Values);
    } else rows.set(id(k), { key: k, cpu: empty(s.Values.length), mem: s.Values, cpuAvg: null, memAvg: average(s.Values) });
  }
  return [...rows.values()];
}

export type { Dimension };
