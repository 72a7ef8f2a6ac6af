// Restarts (issue 18): each container restart of a cluster, namespace or pod that the agent
// reported (ContainerRestart events), with why it ended, its own last log lines and a chart of
// its memory in the minutes before — one click from the pod dashboard.

import { useEffect, useMemo, useState } from 'react';
import { Chart } from '../components/Chart';
import { TimeRangePicker } from '../components/TimeRangePicker';
import { getRecord, listGroups, runQuery } from '../lib/api';
import { clustersOf, num, q } from '../lib/dashboards';
import { formatValue } from '../lib/format';
import { useAsync, useInterval } from '../lib/hooks';
import { memoryBeforeQuery, restartDetail, restartRows, restartsQuery, type RestartRow, type RestartScope } from '../lib/restarts';
import { href, navigate, setParams, useLocation } from '../lib/router';
import { formatTime, parseResultTime, resolveRange } from '../lib/time';

function go(to: string) {
  return (e: React.MouseEvent) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(to);
  };
}

export function Restarts() {
  const { params } = useLocation();
  const groups = useAsync((signal) => listGroups(undefined, signal), []);
  const clusters = useMemo(() => clustersOf(groups.data ?? []), [groups.data]);
  const cluster = params.get('cluster') ?? clusters[0]?.cluster ?? '';
  const prefix = clusters.find((c) => c.cluster === cluster)?.prefix ?? '/kinsight';
  const scope: RestartScope = { cluster, ns: params.get('ns') ?? undefined, pod: params.get('pod') ?? undefined };
  const rangeParam = params.get('range') ?? '1d';
  const refreshMs = Number(params.get('refresh') ?? 0) || 0;
  const [tick, setTick] = useState(0);
  useInterval(() => setTick((t) => t + 1), refreshMs);
  const range = useMemo(() => resolveRange(rangeParam), [rangeParam, tick]); // eslint-disable-line react-hooks/exhaustive-deps
  const [open, setOpen] = useState<string | null>(null);

  useEffect(() => {
    if (!params.get('cluster') && clusters[0]) setParams({ cluster: clusters[0].cluster });
  }, [clusters, params]);

  const list = useAsync(
    async (signal) => {
      if (!cluster) return [];
      const r = await runQuery({ groups: [`${prefix}/${cluster}/performance`], start: range.start, end: range.end, query: restartsQuery(scope), limit: 1000 }, signal);
      if (r.status !== 'Complete') throw new Error(r.error?.message ?? `query ${r.status}`);
      return restartRows(r.columns, r.allRows, parseResultTime);
    },
    [cluster, prefix, scope.ns, scope.pod, range.start, range.end],
  );

  if (groups.error) return <p className="error">{groups.error}</p>;
  if (!groups.data) return <p className="muted">Loading…</p>;

  const base = { cluster, range: rangeParam, refresh: refreshMs || undefined };
  const rows = list.data ?? [];
  return (
    <div className="restarts">
      <div className="toolbar">
        <label>
          Cluster{' '}
          <select value={cluster} onChange={(e) => navigate(href('/restarts', { cluster: e.target.value, range: rangeParam }))}>
            {clusters.map((c) => (
              <option key={c.prefix + c.cluster} value={c.cluster}>
                {c.cluster}
              </option>
            ))}
          </select>
        </label>
        <nav aria-label="Breadcrumb" className="breadcrumb" data-testid="restarts-scope">
          <a href={href('/restarts', base)} onClick={go(href('/restarts', base))}>
            cluster {cluster}
          </a>
          {scope.ns && (
            <span>
              <span aria-hidden="true"> › </span>
              <a href={href('/restarts', { ...base, ns: scope.ns })} onClick={go(href('/restarts', { ...base, ns: scope.ns }))}>
                namespace {scope.ns}
              </a>
            </span>
          )}
          {scope.pod && (
            <span>
              <span aria-hidden="true"> › </span>
              <strong>pod {scope.pod}</strong>
            </span>
          )}
        </nav>
        <span className="spacer" />
        <TimeRangePicker
          range={rangeParam}
          onRange={(r) => setParams({ range: r })}
          refreshMs={refreshMs}
          onRefreshMs={(ms) => setParams({ refresh: ms || undefined })}
          onRefreshNow={() => setTick((t) => t + 1)}
        />
      </div>
      <section className="panel" aria-label="Restarts">
        <div className="panel-head">
          <h2>Container restarts</h2>
          <span className="muted">{list.loading ? 'Loading…' : `${rows.length} in range`}</span>
        </div>
        {list.error && <p className="error">{list.error}</p>}
        <table className="grid" data-testid="restarts">
          <thead>
            <tr>
              <th scope="col">Ended</th>
              <th scope="col">Namespace</th>
              <th scope="col">Pod</th>
              <th scope="col">Container</th>
              <th scope="col">Reason</th>
              <th scope="col">Exit code</th>
              <th scope="col">Restarts</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r, i) => {
              const id = r.ptr ?? String(i);
              return <Row key={id} row={r} open={open === id} onToggle={() => setOpen(open === id ? null : id)} base={base} prefix={prefix} />;
            })}
          </tbody>
        </table>
        {!list.loading && !list.error && rows.length === 0 && (
          <p className="muted" data-testid="no-restarts">
            No container restarts in this range. The agent reports each one as a <code>ContainerRestart</code> event (docs/agent.md, “Restart forensics”).
          </p>
        )}
      </section>
    </div>
  );
}

function Row(props: { row: RestartRow; open: boolean; onToggle: () => void; base: Record<string, string | number | undefined>; prefix: string }) {
  const r = props.row;
  const podHref = href('/dashboards', { ...props.base, level: 'pod', ns: r.namespace, pod: r.pod });
  const oom = r.reason === 'OOMKilled';
  return (
    <>
      <tr className={props.open ? 'open' : ''}>
        <td>
          <button type="button" className="expand" aria-expanded={props.open} aria-label={`${r.fullPod} ${r.container}: show why it ended`} onClick={props.onToggle}>
            {props.open ? '▾' : '▸'} {r.at === null ? '–' : formatTime(r.at)}
          </button>
        </td>
        <td>
          <a href={href('/restarts', { ...props.base, ns: r.namespace })} onClick={go(href('/restarts', { ...props.base, ns: r.namespace }))}>
            {r.namespace}
          </a>
        </td>
        <td>
          <a href={href('/restarts', { ...props.base, ns: r.namespace, pod: r.pod })} onClick={go(href('/restarts', { ...props.base, ns: r.namespace, pod: r.pod }))} title={r.fullPod}>
            {r.fullPod || r.pod}
          </a>
        </td>
        <td>{r.container}</td>
        <td className={oom ? 'error' : undefined}>{r.reason || '–'}</td>
        <td>{r.exitCode ?? '–'}</td>
        <td>{r.restartCount ?? '–'}</td>
      </tr>
      {props.open && (
        <tr className="detail">
          <td colSpan={7}>
            <Detail row={r} prefix={props.prefix} cluster={String(props.base.cluster ?? '')} podHref={podHref} />
          </td>
        </tr>
      )}
    </>
  );
}

function Detail(props: { row: RestartRow; prefix: string; cluster: string; podHref: string }) {
  const r = props.row;
  const record = useAsync(async (signal) => (r.ptr ? getRecord(r.ptr, signal) : null), [r.ptr]);
  const detail = useMemo(() => {
    const m = record.data?.['@message'];
    if (typeof m !== 'string') return null;
    try {
      return restartDetail(JSON.parse(m));
    } catch {
      return null;
    }
  }, [record.data]);
  const mem = memoryBeforeQuery(r);
  const group = `${props.prefix}/${props.cluster}/performance`;
  const chart = useAsync(
    async (signal) => {
      if (!mem) return null;
      const res = await runQuery({ groups: [group], start: mem.start, end: mem.end, query: mem.query, limit: 10000 }, signal);
      if (res.status !== 'Complete') throw new Error(res.error?.message ?? `query ${res.status}`);
      const t = res.columns.findIndex((c) => c.startsWith('bin('));
      const ws = res.columns.indexOf('working_set');
      const limit = res.columns.indexOf('mem_limit');
      const points = res.allRows
        .map((row) => ({ t: parseResultTime(row[t]), ws: num(row[ws]), limit: num(row[limit]) }))
        .filter((p): p is { t: number; ws: number | null; limit: number | null } => p.t !== null)
        .sort((a, b) => a.t - b.t);
      return points;
    },
    [group, r.fullPod, r.container, r.at],
  );
  const points = chart.data ?? [];
  const series = [
    { label: 'working set', values: points.map((p) => p.ws) },
    { label: 'limit', values: points.map((p) => p.limit) },
  ].filter((s) => s.values.some((v) => v !== null));
  const logsHref = href('/insights', {
    groups: `${props.prefix}/${props.cluster}/application`,
    query: `fields @timestamp, log\n| filter kubernetes.pod_name = ${q(r.fullPod)} and kubernetes.container_name = ${q(r.container)}\n| sort @timestamp desc\n| limit 200`,
    range: mem ? `${mem.start}-${mem.end}` : undefined,
  });
  return (
    <div className="restart-detail" data-testid="restart-detail">
      {record.error && <p className="error">{record.error}</p>}
      {record.loading && !detail && <p className="muted">Loading…</p>}
      {detail && (
        <dl className="facts">
          <dt>Reason</dt>
          <dd>
            {detail.reason || '–'} (exit code {detail.exitCode ?? '–'}
            {detail.signal !== null ? `, signal ${detail.signal}` : ''})
          </dd>
          <dt>Ran</dt>
          <dd>
            {detail.startedAt || '?'} → {detail.finishedAt || '?'}
          </dd>
          {detail.message && (
            <>
              <dt>Message</dt>
              <dd>{detail.message}</dd>
            </>
          )}
          <dt>Before it ended</dt>
          <dd data-testid="restart-readings">
            memory {formatValue(detail.workingSetBefore, 'bytes')} of {formatValue(detail.memoryLimit, 'bytes')}
            {detail.workingSetBefore !== null && detail.memoryLimit ? ` (${formatValue((detail.workingSetBefore / detail.memoryLimit) * 100, 'percent')})` : ''}, CPU{' '}
            {formatValue(detail.cpuBefore, 'millicores')}
          </dd>
          {detail.containerId && (
            <>
              <dt>Container id</dt>
              <dd>
                <code>{detail.containerId}</code>
              </dd>
            </>
          )}
        </dl>
      )}
      <Chart
        testId="restart-memory"
        title="Memory in the minutes before"
        unit="bytes"
        timestamps={points.map((p) => p.t)}
        series={series}
        loading={chart.loading}
        error={chart.error}
        height={160}
      />
      <h3 className="small">Last log lines</h3>
      {detail && detail.lastLines === null && <p className="muted">The agent read none (log collection off or excluded for this container, or its file was gone).</p>}
      {detail && detail.lastLines !== null && (
        <div className="last-lines" data-testid="restart-lines">
          {detail.lastLines.length === 0 && <p className="muted">(the instance wrote nothing)</p>}
          {detail.lastLines.map((l, i) => (
            // One log event each: a joined stack trace is one block.
            <pre key={i} className="raw">
              {l}
            </pre>
          ))}
        </div>
      )}
      <p>
        <a className="button" href={props.podHref} onClick={go(props.podHref)}>
          Pod dashboard
        </a>{' '}
        <a className="button" href={logsHref} onClick={go(logsHref)}>
          Logs around it
        </a>
      </p>
    </div>
  );
}
