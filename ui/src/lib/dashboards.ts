// What the automatic dashboards show at each resource level (reference §7), fed by the
// metrics API for the published ContainerInsights metrics and dimension sets (§2.4.a — the
// standard set, which every agent publishes) and by Logs Insights queries on the cluster's
// performance group for what has no metric dimension set (pods of one node or service,
// containers: their fields are in the performance events, §1.3).

import type { Dimension, MetricResult } from './api';
import type { UnitKind } from './format';

export const NAMESPACE = 'ContainerInsights';

export type Level = 'cluster' | 'namespace' | 'service' | 'node' | 'pod' | 'container';
export const LEVELS: { id: Level; label: string }[] = [
  { id: 'cluster', label: 'Cluster' },
  { id: 'namespace', label: 'Namespaces' },
  { id: 'service', label: 'Services' },
  { id: 'node', label: 'Nodes' },
  { id: 'pod', label: 'Pods' },
  { id: 'container', label: 'Containers' },
];

/** The resource a dashboard is about: the URL's parameters. */
export interface Selection {
  cluster: string;
  level: Level;
  ns?: string;
  svc?: string;
  node?: string;
  instance?: string;
  pod?: string;
  /** The pod's own name (`kubernetes.pod_name`), for container views. */
  fullpod?: string;
  container?: string;
}

/** How the series of one metric query become chart lines. */
export type Combine = 'single' | 'sum' | 'each';

export interface MetricLine {
  metric: string;
  stat?: string;
  label?: string;
  dims: Dimension[];
  combine: Combine;
  /** For `each`: the dimension that names a line. */
  by?: string;
}

export interface MetricChart {
  kind: 'metric';
  id: string;
  title: string;
  unit: UnitKind;
  lines: MetricLine[];
}

export interface InsightsChart {
  kind: 'insights';
  id: string;
  title: string;
  unit: UnitKind;
  /** Columns of the shared Insights time-series query to draw. */
  columns: { column: string; label: string }[];
}

export type ChartSpec = MetricChart | InsightsChart;

const d = (Name: string, Value?: string): Dimension => (Value === undefined ? { Name } : { Name, Value });

/** The metric dimension set that identifies the selected resource (reference §2.4.a). */
export function resourceDims(s: Selection): Dimension[] | null {
  const c = d('ClusterName', s.cluster);
  switch (s.level) {
    case 'cluster':
      return [c];
    case 'node':
      return s.node ? [c, d('InstanceId', s.instance ?? '*'), d('NodeName', s.node)] : null;
    case 'namespace':
      return s.ns ? [c, d('Namespace', s.ns)] : null;
    case 'service':
      return s.svc && s.ns ? [c, d('Namespace', s.ns), d('Service', s.svc)] : null;
    case 'pod':
      return s.pod && s.ns ? [c, d('Namespace', s.ns), d('PodName', s.pod)] : null;
    case 'container':
      return null;
  }
}

function single(metric: string, dims: Dimension[], label?: string, stat?: string): MetricLine {
  return { metric, dims, combine: 'single', label, stat };
}
function sum(metric: string, dims: Dimension[], label?: string, stat?: string): MetricLine {
  return { metric, dims, combine: 'sum', label, stat };
}
function each(metric: string, dims: Dimension[], by: string, stat?: string): MetricLine {
  return { metric, dims, combine: 'each', by, stat };
}

/** Charts of one view. */
export function chartsFor(s: Selection): ChartSpec[] {
  const c = d('ClusterName', s.cluster);
  const nodes = [c, d('InstanceId', '*'), d('NodeName', '*')];
  const m: ChartMaker = (id, title, unit, lines) => ({ kind: 'metric', id, title, unit, lines });
  const dims = resourceDims(s);
  switch (s.level) {
    case 'cluster':
      return [
        m('cpu', 'CPU utilization', 'percent', [single('node_cpu_utilization', [c], 'average of nodes')]),
        m('memory', 'Memory utilization', 'percent', [single('node_memory_utilization', [c], 'average of nodes')]),
        m('network', 'Network (rx + tx)', 'bytesPerSec', [sum('node_network_total_bytes', nodes, 'all nodes')]),
        m('filesystem', 'Filesystem utilization', 'percent', [single('node_filesystem_utilization', [c], 'average of filesystems')]),
        m('reserved', 'Reserved capacity', 'percent', [
          single('node_cpu_reserved_capacity', [c], 'CPU'),
          single('node_memory_reserved_capacity', [c], 'memory'),
        ]),
        m('nodes', 'Nodes', 'count', [
          single('cluster_node_count', [c], 'nodes', 'Maximum'),
          single('cluster_failed_node_count', [c], 'failed nodes', 'Maximum'),
        ]),
        m('running', 'Running pods and containers', 'count', [
          sum('node_number_of_running_pods', nodes, 'pods'),
          sum('node_number_of_running_containers', nodes, 'containers'),
        ]),
        m('restarts', 'Container restarts', 'count', [
          sum('pod_number_of_container_restarts', [c, d('Namespace', '*'), d('PodName', '*')], 'restarts', 'Sum'),
        ]),
      ];
    case 'node':
      if (!dims) {
        return [
          m('cpu', 'CPU utilization by node', 'percent', [each('node_cpu_utilization', nodes, 'NodeName')]),
          m('memory', 'Memory utilization by node', 'percent', [each('node_memory_utilization', nodes, 'NodeName')]),
          m('network', 'Network by node', 'bytesPerSec', [each('node_network_total_bytes', nodes, 'NodeName')]),
          m('filesystem', 'Filesystem utilization by node', 'percent', [each('node_filesystem_utilization', nodes, 'NodeName')]),
        ];
      }
      return [
        m('cpu', 'CPU utilization', 'percent', [single('node_cpu_utilization', dims, 'CPU')]),
        m('memory', 'Memory utilization', 'percent', [single('node_memory_utilization', dims, 'memory')]),
        m('network', 'Network (rx + tx)', 'bytesPerSec', [single('node_network_total_bytes', dims, 'rx + tx')]),
        m('filesystem', 'Filesystem utilization', 'percent', [single('node_filesystem_utilization', dims, 'filesystem')]),
        m('reserved', 'Reserved capacity', 'percent', [
          single('node_cpu_reserved_capacity', dims, 'CPU'),
          single('node_memory_reserved_capacity', dims, 'memory'),
        ]),
        m('running', 'Running pods and containers', 'count', [
          single('node_number_of_running_pods', dims, 'pods'),
          single('node_number_of_running_containers', dims, 'containers'),
        ]),
      ];
    case 'namespace': {
      const all = [c, d('Namespace', '*')];
      if (!dims) {
        return [
          ...usageBy(m, 'namespace', all, 'Namespace'),
          m('running', 'Running pods by namespace', 'count', [each('namespace_number_of_running_pods', all, 'Namespace')]),
        ];
      }
      return podLike(m, dims, [single('namespace_number_of_running_pods', dims, 'running pods')]);
    }
    case 'service': {
      const all = [c, d('Namespace', s.ns ?? '*'), d('Service', '*')];
      if (!dims) {
        return [
          ...usageBy(m, 'service', all, 'Service'),
          m('running', 'Running pods by service', 'count', [each('service_number_of_running_pods', all, 'Service')]),
        ];
      }
      return podLike(m, dims, [single('service_number_of_running_pods', dims, 'running pods')]);
    }
    case 'pod': {
      const all = [c, d('Namespace', s.ns ?? '*'), d('PodName', '*')];
      if (!dims) {
        return [
          ...usageBy(m, 'pod', all, 'PodName'),
          m('restarts', 'Container restarts by pod', 'count', [each('pod_number_of_container_restarts', all, 'PodName', 'Sum')]),
        ];
      }
      return [
        ...podLike(m, dims, []),
        m('limits', 'Utilization over pod limit', 'percent', [
          single('pod_cpu_utilization_over_pod_limit', dims, 'CPU'),
          single('pod_memory_utilization_over_pod_limit', dims, 'memory'),
        ]),
        m('reserved', 'Reserved capacity', 'percent', [
          single('pod_cpu_reserved_capacity', dims, 'CPU'),
          single('pod_memory_reserved_capacity', dims, 'memory'),
        ]),
        m('restarts', 'Container restarts', 'count', [single('pod_number_of_container_restarts', dims, 'restarts', 'Sum')]),
      ];
    }
    case 'container':
      if (!s.container) return [];
      return [
        { kind: 'insights', id: 'cpu', title: 'CPU utilization', unit: 'percent', columns: [{ column: 'cpu', label: 'CPU' }] },
        { kind: 'insights', id: 'cpu_m', title: 'CPU usage', unit: 'millicores', columns: [{ column: 'cpu_m', label: 'usage' }, { column: 'cpu_limit', label: 'limit' }] },
        { kind: 'insights', id: 'memory', title: 'Memory utilization', unit: 'percent', columns: [{ column: 'mem', label: 'memory' }] },
        { kind: 'insights', id: 'ws', title: 'Memory working set', unit: 'bytes', columns: [{ column: 'ws', label: 'working set' }, { column: 'mem_limit', label: 'limit' }] },
        { kind: 'insights', id: 'restarts', title: 'Restarts', unit: 'count', columns: [{ column: 'restarts', label: 'restarts' }] },
      ];
  }
}

type ChartMaker = (id: string, title: string, unit: UnitKind, lines: MetricLine[]) => MetricChart;

/** CPU, memory and network of the pods, one line per value of `key` (a list level's charts). */
function usageBy(m: ChartMaker, label: string, all: Dimension[], key: string): MetricChart[] {
  return [
    m('cpu', `CPU utilization by ${label}`, 'percent', [each('pod_cpu_utilization', all, key)]),
    m('memory', `Memory utilization by ${label}`, 'percent', [each('pod_memory_utilization', all, key)]),
    m('network', `Network received by ${label}`, 'bytesPerSec', [each('pod_network_rx_bytes', all, key)]),
  ];
}

function podLike(
  m: ChartMaker,
  dims: Dimension[],
  running: MetricLine[],
): MetricChart[] {
  const charts = [
    m('cpu', 'CPU utilization', 'percent', [single('pod_cpu_utilization', dims, 'CPU')]),
    m('memory', 'Memory utilization', 'percent', [single('pod_memory_utilization', dims, 'memory')]),
    m('network', 'Network', 'bytesPerSec', [single('pod_network_rx_bytes', dims, 'rx'), single('pod_network_tx_bytes', dims, 'tx')]),
  ];
  if (running.length) charts.push(m('running', 'Running pods', 'count', running));
  return charts;
}

/** Turns one metric query's answer into chart lines. */
export function linesOf(line: MetricLine, r: MetricResult, maxEach = 10): { label: string; values: (number | null)[] }[] {
  if (r.Series.length === 0) return [];
  switch (line.combine) {
    case 'single':
      return [{ label: line.label ?? line.metric, values: r.Series[0].Values }];
    case 'sum':
      return [{ label: line.label ?? line.metric, values: sumSeries(r.Series.map((s) => s.Values), r.Timestamps.length) }];
    case 'each': {
      const ranked = r.Series.map((s) => ({ s, avg: average(s.Values) ?? -1 })).sort((a, b) => b.avg - a.avg);
      return ranked.slice(0, maxEach).map(({ s }) => ({
        label: s.Dimensions.find((x) => x.Name === line.by)?.Value ?? s.Label,
        values: s.Values,
      }));
    }
  }
}

export function sumSeries(series: (number | null)[][], n: number): (number | null)[] {
  const out: (number | null)[] = new Array(n).fill(null);
  for (const values of series) {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v !== null && v !== undefined) out[i] = (out[i] ?? 0) + v;
    }
  }
  return out;
}

export function average(values: (number | null)[]): number | null {
  let s = 0;
  let n = 0;
  for (const v of values) {
    if (v !== null && Number.isFinite(v)) {
      s += v;
      n++;
    }
  }
  return n ? s / n : null;
}

export function latest(values: (number | null)[]): number | null {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
  return null;
}

/** Quotes a value for a Logs Insights string literal. */
export function q(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Escapes a value for a Logs Insights regex literal. */
export function re(v: string): string {
  return v.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Where "View logs" goes for a resource: the group and a pre-filled query (reference §7). */
export function logsQueryFor(s: Selection, prefix: string): { group: string; query: string } {
  const app = `${prefix}/${s.cluster}/application`;
  const perf = `${prefix}/${s.cluster}/performance`;
  const tail = '| sort @timestamp desc\n| limit 200';
  const fields = 'fields @timestamp, kubernetes.namespace_name, kubernetes.pod_name, kubernetes.container_name, log';
  switch (s.level) {
    case 'container':
      if (s.fullpod && s.container)
        return { group: app, query: `${fields}\n| filter kubernetes.pod_name = ${q(s.fullpod)} and kubernetes.container_name = ${q(s.container)}\n${tail}` };
      break;
    case 'pod':
      if (s.pod && s.ns)
        return {
          group: app,
          query: `${fields}\n| filter kubernetes.namespace_name = ${q(s.ns)} and (kubernetes.pod_name = ${q(s.pod)} or kubernetes.pod_name like /^${re(s.pod)}-/)\n${tail}`,
        };
      break;
    case 'namespace':
      if (s.ns) return { group: app, query: `${fields}\n| filter kubernetes.namespace_name = ${q(s.ns)}\n${tail}` };
      break;
    case 'service':
      if (s.svc && s.ns)
        return { group: perf, query: `fields @timestamp, Type, PodName, pod_cpu_utilization, pod_memory_utilization\n| filter Service = ${q(s.svc)} and Namespace = ${q(s.ns)} and Type = "Pod"\n${tail}` };
      break;
    case 'node':
      if (s.node) return { group: app, query: `${fields}\n| filter kubernetes.host = ${q(s.node)}\n${tail}` };
      break;
    default:
      break;
  }
  return { group: app, query: `${fields}\n${tail}` };
}

/** The performance events behind a resource (what the charts are made of). */
export function perfQueryFor(s: Selection, prefix: string): { group: string; query: string } {
  const perf = `${prefix}/${s.cluster}/performance`;
  const tail = '| sort @timestamp desc\n| limit 200';
  let filter = 'Type = "Cluster"';
  if (s.level === 'node' && s.node) filter = `Type = "Node" and NodeName = ${q(s.node)}`;
  else if (s.level === 'namespace' && s.ns) filter = `Type = "Pod" and Namespace = ${q(s.ns)}`;
  else if (s.level === 'service' && s.svc) filter = `Type = "Pod" and Service = ${q(s.svc)}`;
  else if (s.level === 'pod' && s.pod) filter = `Type = "Pod" and PodName = ${q(s.pod)} and Namespace = ${q(s.ns ?? '')}`;
  else if (s.level === 'container' && s.fullpod && s.container)
    filter = `Type = "Container" and kubernetes.pod_name = ${q(s.fullpod)} and kubernetes.container_name = ${q(s.container)}`;
  return { group: perf, query: `fields @timestamp, @message\n| filter ${filter}\n${tail}` };
}

/** A table of resources below the selected one. */
export interface TableSpec {
  title: string;
  /** What a row is. */
  rowLevel: Level;
  source:
    | { kind: 'metric'; dims: Dimension[]; key: string[] }
    | { kind: 'insights'; query: (binSeconds: number) => string; key: string[] };
}

export function tableFor(s: Selection): TableSpec | null {
  const c = d('ClusterName', s.cluster);
  const podStats = (filter: string) => (bin: number) =>
    `filter Type = "Pod" and ${filter}\n| stats avg(pod_cpu_utilization) as cpu, avg(pod_memory_utilization) as mem by Namespace, PodName, kubernetes.pod_name, bin(${bin}s)\n| limit 10000`;
  switch (s.level) {
    case 'cluster':
      return { title: 'Nodes', rowLevel: 'node', source: { kind: 'metric', dims: [c, d('InstanceId', '*'), d('NodeName', '*')], key: ['NodeName', 'InstanceId'] } };
    case 'node':
      if (!s.node) return { title: 'Nodes', rowLevel: 'node', source: { kind: 'metric', dims: [c, d('InstanceId', '*'), d('NodeName', '*')], key: ['NodeName', 'InstanceId'] } };
      return { title: 'Pods on this node', rowLevel: 'pod', source: { kind: 'insights', query: podStats(`NodeName = ${q(s.node)}`), key: ['Namespace', 'PodName', 'kubernetes.pod_name'] } };
    case 'namespace':
      if (!s.ns) return { title: 'Namespaces', rowLevel: 'namespace', source: { kind: 'metric', dims: [c, d('Namespace', '*')], key: ['Namespace'] } };
      return { title: 'Pods in this namespace', rowLevel: 'pod', source: { kind: 'metric', dims: [c, d('Namespace', s.ns), d('PodName', '*')], key: ['Namespace', 'PodName'] } };
    case 'service':
      if (!s.svc) return { title: 'Services', rowLevel: 'service', source: { kind: 'metric', dims: [c, d('Namespace', s.ns ?? '*'), d('Service', '*')], key: ['Namespace', 'Service'] } };
      return {
        title: 'Pods of this service',
        rowLevel: 'pod',
        source: { kind: 'insights', query: podStats(`Service = ${q(s.svc)} and Namespace = ${q(s.ns ?? '')}`), key: ['Namespace', 'PodName', 'kubernetes.pod_name'] },
      };
    case 'pod':
      if (!s.pod) return { title: 'Pods', rowLevel: 'pod', source: { kind: 'metric', dims: [c, d('Namespace', s.ns ?? '*'), d('PodName', '*')], key: ['Namespace', 'PodName'] } };
      return {
        title: 'Containers',
        rowLevel: 'container',
        source: {
          kind: 'insights',
          query: (bin) =>
            `filter Type = "Container" and Namespace = ${q(s.ns ?? '')} and PodName = ${q(s.pod!)}\n| stats avg(container_cpu_utilization) as cpu, avg(container_memory_utilization) as mem by Namespace, PodName, kubernetes.pod_name, kubernetes.container_name, bin(${bin}s)\n| limit 10000`,
          key: ['Namespace', 'PodName', 'kubernetes.pod_name', 'kubernetes.container_name'],
        },
      };
    case 'container':
      if (s.container) return null;
      return {
        title: 'Containers',
        rowLevel: 'container',
        source: {
          kind: 'insights',
          query: (bin) =>
            `filter Type = "Container"${s.ns ? ` and Namespace = ${q(s.ns)}` : ''}\n| stats avg(container_cpu_utilization) as cpu, avg(container_memory_utilization) as mem by Namespace, PodName, kubernetes.pod_name, kubernetes.container_name, bin(${bin}s)\n| limit 10000`,
          key: ['Namespace', 'PodName', 'kubernetes.pod_name', 'kubernetes.container_name'],
        },
      };
  }
}

/** The container view's time series, one query for all its charts. */
export function containerSeriesQuery(s: Selection, bin: number): string {
  return `filter Type = "Container" and kubernetes.pod_name = ${q(s.fullpod ?? '')} and kubernetes.container_name = ${q(s.container ?? '')}
| stats avg(container_cpu_utilization) as cpu, avg(container_cpu_usage_total) as cpu_m, max(container_cpu_limit) as cpu_limit, avg(container_memory_utilization) as mem, avg(container_memory_working_set) as ws, max(container_memory_limit) as mem_limit, sum(number_of_container_restarts) as restarts by bin(${bin}s)
| sort @timestamp asc
| limit 10000`;
}

/** One table row: the resource's identity, its averages and a sparkline of each. */
export interface ResourceRow {
  key: Record<string, string>;
  cpu: (number | null)[];
  mem: (number | null)[];
  cpuAvg: number | null;
  memAvg: number | null;
}

/** Groups `stats … by <key…>, bin(…)` rows into resource rows aligned on the bins. */
export function rowsFromInsights(columns: string[], rows: unknown[][], key: string[], binOf: (v: unknown) => number | null): { bins: number[]; rows: ResourceRow[] } {
  const ci = (name: string) => columns.indexOf(name);
  const binCol = columns.findIndex((c) => c.startsWith('bin('));
  const cpuCol = ci('cpu');
  const memCol = ci('mem');
  const keyCols = key.map(ci);
  const bins = new Set<number>();
  const byKey = new Map<string, { key: Record<string, string>; points: Map<number, [number | null, number | null]> }>();
  for (const r of rows) {
    const t = binCol >= 0 ? binOf(r[binCol]) : 0;
    if (t === null) continue;
    bins.add(t);
    const k: Record<string, string> = {};
    key.forEach((name, i) => (k[name] = keyCols[i] >= 0 && r[keyCols[i]] != null ? String(r[keyCols[i]]) : ''));
    const id = key.map((n) => k[n]).join('\u0001');
    let e = byKey.get(id);
    if (!e) byKey.set(id, (e = { key: k, points: new Map() }));
    e.points.set(t, [num(r[cpuCol]), num(r[memCol])]);
  }
  const sorted = [...bins].sort((a, b) => a - b);
  const out: ResourceRow[] = [];
  for (const e of byKey.values()) {
    const cpu = sorted.map((b) => e.points.get(b)?.[0] ?? null);
    const mem = sorted.map((b) => e.points.get(b)?.[1] ?? null);
    out.push({ key: e.key, cpu, mem, cpuAvg: average(cpu), memAvg: average(mem) });
  }
  return { bins: sorted, rows: out };
}

export function num(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** Clusters that have a performance group: `<prefix>/<cluster>/performance`. */
export function clustersOf(groups: { name: string; lastEventMs: number | null }[]): { cluster: string; prefix: string; lastEventMs: number }[] {
  const out: { cluster: string; prefix: string; lastEventMs: number }[] = [];
  for (const g of groups) {
    const m = /^(.*)\/([^/]+)\/performance$/.exec(g.name);
    if (m) out.push({ prefix: m[1], cluster: m[2], lastEventMs: g.lastEventMs ?? 0 });
  }
  return out.sort((a, b) => b.lastEventMs - a.lastEventMs || a.cluster.localeCompare(b.cluster));
}
