// "Top resources" (reference §7): the resources below the current one, sorted by CPU or
// memory, with a sparkline of each; every name is a link one level down, and every row links
// to its logs.

import { useMemo, useState } from 'react';
import { listMetricsForTable, type TableData } from '../lib/tableData';
import { formatValue } from '../lib/format';
import { useAsync } from '../lib/hooks';
import type { Level, ResourceRow, Selection, TableSpec } from '../lib/dashboards';
import { logsQueryFor } from '../lib/dashboards';
import { Sparkline } from './Sparkline';
import { href, navigate } from '../lib/router';
import type { TimeRange } from '../lib/time';

const LABELS: Record<string, string> = {
  NodeName: 'Node',
  InstanceId: 'Instance',
  Namespace: 'Namespace',
  Service: 'Service',
  PodName: 'Pod',
  'kubernetes.pod_name': 'Pod (full name)',
  'kubernetes.container_name': 'Container',
};

/** Which key names a row, most specific first. */
const NAME_ORDER = ['kubernetes.container_name', 'kubernetes.pod_name', 'Service', 'PodName', 'NodeName', 'Namespace'];

export function drillHref(sel: Selection, level: Level, key: Record<string, string>, range: string): string {
  const base = { cluster: sel.cluster, range };
  switch (level) {
    case 'node':
      return href('/dashboards', { ...base, level, node: key.NodeName, instance: key.InstanceId });
    case 'namespace':
      return href('/dashboards', { ...base, level, ns: key.Namespace });
    case 'service':
      return href('/dashboards', { ...base, level, ns: key.Namespace, svc: key.Service });
    case 'pod':
      return href('/dashboards', { ...base, level, ns: key.Namespace, pod: key.PodName });
    case 'container':
      return href('/dashboards', {
        ...base,
        level,
        ns: key.Namespace,
        pod: key.PodName,
        fullpod: key['kubernetes.pod_name'],
        container: key['kubernetes.container_name'],
      });
    default:
      return href('/dashboards', base);
  }
}

function rowSelection(sel: Selection, level: Level, key: Record<string, string>): Selection {
  return {
    cluster: sel.cluster,
    level,
    node: key.NodeName,
    instance: key.InstanceId,
    ns: key.Namespace,
    svc: key.Service,
    pod: key.PodName,
    fullpod: key['kubernetes.pod_name'],
    container: key['kubernetes.container_name'],
  };
}

export function ResourceTable(props: {
  spec: TableSpec;
  sel: Selection;
  prefix: string;
  range: TimeRange;
  rangeParam: string;
  refreshKey: number;
  sortBy: 'cpu' | 'mem';
  onSort: (s: 'cpu' | 'mem') => void;
  filter: string;
}) {
  const { spec, sel } = props;
  const [showAll, setShowAll] = useState(false);
  const res = useAsync<TableData>(
    (signal) => listMetricsForTable(spec, sel, props.prefix, props.range, signal),
    [JSON.stringify(spec.source.kind === 'metric' ? spec.source : spec.source.query(60)), props.range.start, props.range.end, props.refreshKey],
  );
  const rows = useMemo(() => {
    const f = props.filter.trim().toLowerCase();
    const all: ResourceRow[] = res.data?.rows ?? [];
    const filtered = f ? all.filter((r) => Object.values(r.key).some((v) => v.toLowerCase().includes(f))) : all;
    const k = props.sortBy === 'cpu' ? 'cpuAvg' : 'memAvg';
    return [...filtered].sort((a, b) => (b[k] ?? -1) - (a[k] ?? -1));
  }, [res.data, props.filter, props.sortBy]);
  const keyCols = spec.source.key;
  const shown = showAll ? rows : rows.slice(0, 50);
  const nameCol = NAME_ORDER.find((k) => keyCols.includes(k)) ?? keyCols[0];
  const headerCols = keyCols.filter((k) => k !== nameCol && k !== 'InstanceId');
  return (
    <section className="panel" aria-labelledby="top-title">
      <div className="panel-head">
        <h2 id="top-title">
          {spec.title} <span className="muted">({rows.length})</span>
        </h2>
        <div className="seg" role="group" aria-label="Sort by">
          <button type="button" className={props.sortBy === 'cpu' ? 'on' : ''} aria-pressed={props.sortBy === 'cpu'} onClick={() => props.onSort('cpu')}>
            Sort by CPU
          </button>
          <button type="button" className={props.sortBy === 'mem' ? 'on' : ''} aria-pressed={props.sortBy === 'mem'} onClick={() => props.onSort('mem')}>
            Sort by memory
          </button>
        </div>
      </div>
      {res.error && <p className="error">{res.error}</p>}
      <table className="grid top-table" data-testid="top-table">
        <thead>
          <tr>
            <th scope="col">{LABELS[nameCol] ?? nameCol}</th>
            {headerCols.map((k) => (
              <th scope="col" key={k}>
                {LABELS[k] ?? k}
              </th>
            ))}
            <th scope="col" className="num">
              CPU (avg)
            </th>
            <th scope="col">CPU</th>
            <th scope="col" className="num">
              Memory (avg)
            </th>
            <th scope="col">Memory</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => {
            const id = keyCols.map((k) => r.key[k]).join('/');
            const logs = logsQueryFor(rowSelection(sel, spec.rowLevel, r.key), props.prefix);
            return (
              <tr key={id}>
                <th scope="row">
                  <a
                    href={drillHref(sel, spec.rowLevel, r.key, props.rangeParam)}
                    onClick={(e) => {
                      if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
                      e.preventDefault();
                      navigate(drillHref(sel, spec.rowLevel, r.key, props.rangeParam));
                    }}
                  >
                    {r.key[nameCol] || '(none)'}
                  </a>
                </th>
                {headerCols.map((k) => (
                  <td key={k} className="muted">
                    {r.key[k]}
                  </td>
                ))}
                <td className="num">{formatValue(r.cpuAvg, 'percent', 2)}</td>
                <td className="spark cpu">
                  <Sparkline values={r.cpu} />
                </td>
                <td className="num">{formatValue(r.memAvg, 'percent', 2)}</td>
                <td className="spark mem">
                  <Sparkline values={r.mem} />
                </td>
                <td>
                  <a
                    className="small"
                    href={href('/insights', { groups: logs.group, query: logs.query, range: props.rangeParam })}
                    onClick={(e) => {
                      if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
                      e.preventDefault();
                      navigate(href('/insights', { groups: logs.group, query: logs.query, range: props.rangeParam }));
                    }}
                  >
                    Logs
                  </a>
                </td>
              </tr>
            );
          })}
          {!res.loading && rows.length === 0 && (
            <tr>
              <td colSpan={6 + headerCols.length} className="muted">
                {res.error ? '' : 'Nothing in this time range.'}
              </td>
            </tr>
          )}
          {res.loading && !res.data && (
            <tr>
              <td colSpan={6 + headerCols.length} className="muted">
                Loading…
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {rows.length > shown.length && (
        <button type="button" className="link" onClick={() => setShowAll(true)}>
          Show all {rows.length}
        </button>
      )}
    </section>
  );
}
