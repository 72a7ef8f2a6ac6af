// Performance monitoring (reference §7): pick a cluster and a resource level, see its charts
// and its top resources; click down cluster → node → pod → container, and from any of them
// to its logs.

import { useEffect, useMemo, useState } from 'react';
import { Chart } from '../components/Chart';
import { ResourceTable } from '../components/ResourceTable';
import { TimeRangePicker } from '../components/TimeRangePicker';
import { listGroups, listMetrics, queryMetric, runQuery, type MetricResult } from '../lib/api';
import {
  LEVELS,
  NAMESPACE,
  chartsFor,
  clustersOf,
  containerSeriesQuery,
  linesOf,
  logsQueryFor,
  num,
  perfQueryFor,
  tableFor,
  type InsightsChart,
  type Level,
  type MetricChart,
  type Selection,
} from '../lib/dashboards';
import { useAsync, useInterval } from '../lib/hooks';
import { href, navigate, setParams, useLocation } from '../lib/router';
import { parseResultTime, periodFor, resolveRange, type TimeRange } from '../lib/time';

function Link(props: { to: string; children: React.ReactNode; className?: string }) {
  return (
    <a
      href={props.to}
      className={props.className}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

export function Dashboards() {
  const { params } = useLocation();
  const groups = useAsync((signal) => listGroups(undefined, signal), []);
  const clusters = useMemo(() => clustersOf(groups.data ?? []), [groups.data]);
  const cluster = params.get('cluster') ?? clusters[0]?.cluster ?? '';
  const prefix = clusters.find((c) => c.cluster === cluster)?.prefix ?? '/kinsight';
  const level = (LEVELS.find((l) => l.id === params.get('level'))?.id ?? 'cluster') as Level;
  const sel: Selection = {
    cluster,
    level,
    ns: params.get('ns') ?? undefined,
    svc: params.get('svc') ?? undefined,
    node: params.get('node') ?? undefined,
    instance: params.get('instance') ?? undefined,
    pod: params.get('pod') ?? undefined,
    fullpod: params.get('fullpod') ?? undefined,
    container: params.get('container') ?? undefined,
  };
  const rangeParam = params.get('range') ?? '1h';
  const refreshMs = Number(params.get('refresh') ?? 0) || 0;
  const sortBy = params.get('sort') === 'mem' ? 'mem' : 'cpu';
  const [filter, setFilter] = useState('');
  const [tick, setTick] = useState(0);
  useInterval(() => setTick((t) => t + 1), refreshMs);
  // A relative range moves with every refresh; an absolute one stays.
  const range = useMemo(() => resolveRange(rangeParam), [rangeParam, tick]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    if (!params.get('cluster') && clusters[0]) setParams({ cluster: clusters[0].cluster });
  }, [clusters, params]);

  if (groups.error) return <p className="error">{groups.error}</p>;
  if (!groups.data) return <p className="muted">Loading…</p>;
  if (clusters.length === 0)
    return (
      <div className="empty-state">
        <h1>No cluster yet</h1>
        <p>
          Dashboards appear when performance events arrive in a <code>/kinsight/&lt;cluster&gt;/performance</code> log group: run <code>kinsight up</code>,
          a <code>kinsight agent</code>, or <code>kinsight simulate --server {window.location.origin}</code>.
        </p>
      </div>
    );

  const charts = chartsFor(sel);
  const table = tableFor(sel);
  const logs = logsQueryFor(sel, prefix);
  const perf = perfQueryFor(sel, prefix);
  const base = { cluster, range: rangeParam, refresh: refreshMs || undefined };
  const levelHref = (l: Level) => href('/dashboards', { ...base, level: l, ns: l === 'cluster' || l === 'node' ? undefined : sel.ns });

  return (
    <div className="dashboards">
      <div className="toolbar">
        <label>
          Cluster{' '}
          <select value={cluster} onChange={(e) => navigate(href('/dashboards', { cluster: e.target.value, range: rangeParam }))}>
            {clusters.map((c) => (
              <option key={c.prefix + c.cluster} value={c.cluster}>
                {c.cluster}
              </option>
            ))}
          </select>
        </label>
        <nav className="seg" aria-label="Resource level">
          {LEVELS.map((l) => (
            <Link key={l.id} to={levelHref(l.id)} className={l.id === level ? 'on' : ''}>
              {l.label}
            </Link>
          ))}
        </nav>
        <TimeRangePicker
          range={rangeParam}
          onRange={(r) => setParams({ range: r })}
          refreshMs={refreshMs}
          onRefreshMs={(ms) => setParams({ refresh: ms || undefined })}
          onRefreshNow={() => setTick((t) => t + 1)}
        />
      </div>
      <div className="toolbar">
        <Breadcrumb sel={sel} base={base} />
        <span className="spacer" />
        <NamespaceFilter sel={sel} range={range} />
        <label>
          Filter{' '}
          <input type="search" value={filter} placeholder="name contains…" onChange={(e) => setFilter(e.target.value)} aria-label="Filter resources by name" />
        </label>
        <Link className="button" to={href('/insights', { groups: logs.group, query: logs.query, range: rangeParam })}>
          View logs
        </Link>
        <Link className="button" to={href('/insights', { groups: perf.group, query: perf.query, range: rangeParam })}>
          Performance events
        </Link>
        {(level === 'cluster' || level === 'namespace' || level === 'pod') && (
          <Link className="button" to={href('/restarts', { cluster, ns: level === 'cluster' ? undefined : sel.ns, pod: level === 'pod' ? sel.pod : undefined })}>
            Restarts
          </Link>
        )}
      </div>
      <div className="charts" data-testid="charts">
        {charts.map((c) =>
          c.kind === 'metric' ? (
            <MetricChartView key={`${level}-${c.id}-${JSON.stringify(c.lines)}`} spec={c} range={range} refreshKey={tick} />
          ) : null,
        )}
        {level === 'container' && sel.container && (
          <ContainerCharts sel={sel} prefix={prefix} range={range} refreshKey={tick} charts={charts.filter((c): c is InsightsChart => c.kind === 'insights')} />
        )}
      </div>
      {table && (
        <ResourceTable
          // A new resource is a new table: no rows of the previous one while this one loads.
          key={JSON.stringify([cluster, level, sel.node, sel.ns, sel.svc, sel.pod, sel.fullpod, sel.container, table.title])}
          spec={table}
          sel={sel}
          prefix={prefix}
          range={range}
          rangeParam={rangeParam}
          refreshKey={tick}
          sortBy={sortBy}
          onSort={(s) => setParams({ sort: s === 'cpu' ? undefined : s })}
          filter={filter}
        />
      )}
    </div>
  );
}

function Breadcrumb({ sel, base }: { sel: Selection; base: Record<string, string | number | undefined> }) {
  const parts: { label: string; to?: string }[] = [{ label: `cluster ${sel.cluster}`, to: href('/dashboards', base) }];
  if (sel.level === 'node' && sel.node) parts.push({ label: `node ${sel.node}` });
  if (sel.ns && (sel.level === 'namespace' || sel.level === 'pod' || sel.level === 'container' || sel.level === 'service'))
    parts.push({ label: `namespace ${sel.ns}`, to: href('/dashboards', { ...base, level: 'namespace', ns: sel.ns }) });
  if (sel.level === 'service' && sel.svc) parts.push({ label: `service ${sel.svc}` });
  if ((sel.level === 'pod' || sel.level === 'container') && sel.pod)
    parts.push({ label: `pod ${sel.pod}`, to: href('/dashboards', { ...base, level: 'pod', ns: sel.ns, pod: sel.pod }) });
  if (sel.level === 'container' && sel.container) parts.push({ label: `container ${sel.container}${sel.fullpod ? ` in ${sel.fullpod}` : ''}` });
  return (
    <nav aria-label="Breadcrumb" className="breadcrumb" data-testid="breadcrumb">
      {parts.map((p, i) => (
        <span key={i}>
          {i > 0 && <span aria-hidden="true"> › </span>}
          {p.to && i < parts.length - 1 ? <Link to={p.to}>{p.label}</Link> : <strong>{p.label}</strong>}
        </span>
      ))}
    </nav>
  );
}

function NamespaceFilter({ sel, range }: { sel: Selection; range: TimeRange }) {
  const show = sel.level === 'pod' || sel.level === 'service' || sel.level === 'container';
  const list = useAsync(
    async (signal) => {
      if (!show) return [];
      const r = await listMetrics(
        { Namespace: NAMESPACE, MetricName: 'pod_cpu_utilization', Dimensions: [{ Name: 'ClusterName', Value: sel.cluster }, { Name: 'Namespace' }], Limit: 10000 },
        signal,
      );
      const names = new Set<string>();
      for (const m of r.Metrics) {
        const ns = m.Dimensions.find((d) => d.Name === 'Namespace')?.Value;
        if (ns) names.add(ns);
      }
      return [...names].sort();
    },
    [show, sel.cluster, Math.floor(range.end / 300_000)],
  );
  if (!show || (sel.level === 'pod' && sel.pod) || (sel.level === 'service' && sel.svc) || (sel.level === 'container' && sel.container)) return null;
  return (
    <label>
      Namespace{' '}
      <select value={sel.ns ?? ''} onChange={(e) => setParams({ ns: e.target.value || undefined })}>
        <option value="">all</option>
        {(list.data ?? []).map((n) => (
          <option key={n}>{n}</option>
        ))}
      </select>
    </label>
  );
}

function MetricChartView({ spec, range, refreshKey }: { spec: MetricChart; range: TimeRange; refreshKey: number }) {
  const period = periodFor(range);
  const res = useAsync(
    async (signal) => {
      const results: MetricResult[] = await Promise.all(
        spec.lines.map((l) =>
          queryMetric(
            {
              Namespace: NAMESPACE,
              MetricName: l.metric,
              Dimensions: l.dims,
              Statistic: l.stat ?? 'Average',
              Period: period,
              StartTime: range.start,
              EndTime: range.end,
              MaxSeries: 5000,
            },
            signal,
          ),
        ),
      );
      const timestamps = results[0]?.Timestamps ?? [];
      const series = spec.lines.flatMap((l, i) => linesOf(l, results[i]));
      return { timestamps, series };
    },
    [JSON.stringify(spec.lines), range.start, range.end, period, refreshKey],
  );
  return (
    <Chart
      testId={`chart-${spec.id}`}
      title={spec.title}
      unit={spec.unit}
      timestamps={res.data?.timestamps ?? []}
      series={res.data?.series ?? []}
      loading={res.loading}
      error={res.error}
      onZoom={(a, b) => setParams({ range: `${a}-${b}` })}
    />
  );
}

function ContainerCharts(props: { sel: Selection; prefix: string; range: TimeRange; refreshKey: number; charts: InsightsChart[] }) {
  const { sel, range } = props;
  const bin = periodFor(range) < 60 ? 60 : periodFor(range);
  const res = useAsync(
    async (signal) => {
      const r = await runQuery(
        { groups: [`${props.prefix}/${sel.cluster}/performance`], start: range.start, end: range.end, query: containerSeriesQuery(sel, bin), limit: 10000 },
        signal,
      );
      if (r.status !== 'Complete') throw new Error(r.error?.message ?? `query ${r.status}`);
      return r;
    },
    [sel.cluster, sel.fullpod, sel.container, range.start, range.end, bin, props.refreshKey],
  );
  const data = useMemo(() => {
    if (!res.data) return null;
    const cols = res.data.columns;
    const tcol = cols.findIndex((c) => c.startsWith('bin('));
    const rows = res.data.allRows
      .map((r) => ({ t: parseResultTime(r[tcol]), r }))
      .filter((x): x is { t: number; r: unknown[] } => x.t !== null)
      .sort((a, b) => a.t - b.t);
    return { cols, ts: rows.map((x) => x.t), rows: rows.map((x) => x.r) };
  }, [res.data]);
  return (
    <>
      {props.charts.map((c) => (
        <Chart
          key={c.id}
          testId={`chart-${c.id}`}
          title={c.title}
          unit={c.unit}
          timestamps={data?.ts ?? []}
          series={
            data
              ? c.columns
                  .map((col) => ({ label: col.label, values: data.rows.map((r) => num(r[data.cols.indexOf(col.column)])) }))
                  .filter((s) => s.values.some((v) => v !== null))
              : []
          }
          loading={res.loading}
          error={res.error}
          onZoom={(a, b) => setParams({ range: `${a}-${b}` })}
        />
      ))}
    </>
  );
}
