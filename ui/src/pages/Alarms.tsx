// Alarms (reference §6.1, docs/api.md#alarms): the list with states, one alarm with its metric
// against the threshold, its series and history; create and edit with every PutMetricAlarm
// field; the default Kubernetes alarm pack installed from here.

import { useMemo, useState } from 'react';
import { Chart } from '../components/Chart';
import {
  alarmHistory,
  deleteAlarm,
  installPack,
  listAlarms,
  listGroups,
  listMetrics,
  putAlarm,
  queryMetric,
  type MetricAlarm,
} from '../lib/api';
import { clustersOf, linesOf } from '../lib/dashboards';
import { useAsync } from '../lib/hooks';
import { href, navigate, setParams, useLocation } from '../lib/router';
import { formatTime } from '../lib/time';

export const OPERATORS: [string, string][] = [
  ['GreaterThanThreshold', '>'],
  ['GreaterThanOrEqualToThreshold', '≥'],
  ['LessThanThreshold', '<'],
  ['LessThanOrEqualToThreshold', '≤'],
];
export const STATISTICS = ['Average', 'Sum', 'Minimum', 'Maximum', 'SampleCount', 'p50', 'p90', 'p95', 'p99'];
export const PERIODS = [10, 30, 60, 300, 900, 3600, 21600, 86400];
export const MISSING = ['missing', 'notBreaching', 'breaching', 'ignore'];

export function describeCondition(a: MetricAlarm): string {
  const op = OPERATORS.find(([k]) => k === a.ComparisonOperator)?.[1] ?? a.ComparisonOperator;
  const stat = a.Statistic ?? a.ExtendedStatistic ?? '';
  const m = a.DatapointsToAlarm ?? a.EvaluationPeriods;
  return `${stat} ${op} ${a.Threshold} for ${m} of ${a.EvaluationPeriods} × ${a.Period >= 60 ? `${a.Period / 60} min` : `${a.Period} s`}`;
}

export function StateBadge({ state }: { state: string }) {
  const label = state === 'INSUFFICIENT_DATA' ? 'Insufficient data' : state === 'ALARM' ? 'In alarm' : state;
  return <span className={`badge state-${state.toLowerCase()}`}>{label}</span>;
}

export function Alarms() {
  const { path, params } = useLocation();
  if (path === '/alarms/new') return <AlarmForm />;
  if (path === '/alarms/edit') return <AlarmForm name={params.get('name') ?? undefined} />;
  const name = params.get('name');
  return name ? <AlarmDetail name={name} /> : <AlarmList />;
}

function go(e: React.MouseEvent, to: string) {
  if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(to);
}

function AlarmList() {
  const { params } = useLocation();
  const [tick, setTick] = useState(0);
  const state = params.get('state') ?? '';
  const alarms = useAsync((signal) => listAlarms(signal), [tick]);
  const [filter, setFilter] = useState('');
  const [packOpen, setPackOpen] = useState(false);
  const list = (alarms.data?.MetricAlarms ?? []).filter(
    (a) => (!state || a.StateValue === state) && a.AlarmName.toLowerCase().includes(filter.toLowerCase()),
  );
  const count = (s: string) => (alarms.data?.MetricAlarms ?? []).filter((a) => a.StateValue === s).length;
  return (
    <div>
      <div className="toolbar">
        <h1 className="h-inline">Alarms</h1>
        <span className="spacer" />
        <button type="button" onClick={() => setPackOpen(!packOpen)} aria-expanded={packOpen} data-testid="open-pack">
          Install Kubernetes alarm pack
        </button>
        <a className="button primary" href="/alarms/new" onClick={(e) => go(e, '/alarms/new')} data-testid="create-alarm">
          Create alarm
        </a>
      </div>
      {packOpen && (
        <PackForm
          onDone={() => {
            setPackOpen(false);
            setTick((t) => t + 1);
          }}
        />
      )}
      <div className="toolbar">
        <div className="seg" role="group" aria-label="State">
          {[
            ['', `All (${alarms.data?.MetricAlarms.length ?? 0})`],
            ['ALARM', `In alarm (${count('ALARM')})`],
            ['OK', `OK (${count('OK')})`],
            ['INSUFFICIENT_DATA', `Insufficient data (${count('INSUFFICIENT_DATA')})`],
          ].map(([s, label]) => (
            <button key={s} type="button" className={state === s ? 'on' : ''} aria-pressed={state === s} onClick={() => setParams({ state: s || undefined })}>
              {label}
            </button>
          ))}
        </div>
        <input type="search" placeholder="Filter by name" value={filter} onChange={(e) => setFilter(e.target.value)} aria-label="Filter alarms by name" />
        <button type="button" onClick={() => setTick((t) => t + 1)} aria-label="Refresh">
          ↻
        </button>
      </div>
      {alarms.error && <p className="error">{alarms.error}</p>}
      <table className="grid" data-testid="alarm-list">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">State</th>
            <th scope="col">Metric</th>
            <th scope="col">Conditions</th>
            <th scope="col">Since</th>
          </tr>
        </thead>
        <tbody>
          {list.map((a) => (
            <tr key={a.AlarmName}>
              <th scope="row">
                <a href={href('/alarms', { name: a.AlarmName })} onClick={(e) => go(e, href('/alarms', { name: a.AlarmName }))}>
                  {a.AlarmName}
                </a>
              </th>
              <td>
                <StateBadge state={a.StateValue} />
              </td>
              <td>
                {a.MetricName}
                <div className="muted small">{a.Dimensions.map((d) => `${d.Name}=${d.Value}`).join(', ')}</div>
              </td>
              <td>{describeCondition(a)}</td>
              <td className="nowrap">{formatTime(Date.parse(a.StateUpdatedTimestamp))}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {alarms.data && list.length === 0 && <p className="muted">No alarms{state ? ' in this state' : ''}.</p>}
    </div>
  );
}

function urls(s: string): string[] {
  return s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}

function PackForm({ onDone }: { onDone: () => void }) {
  const groups = useAsync((signal) => listGroups(undefined, signal), []);
  const clusters = clustersOf(groups.data ?? []);
  const [cluster, setCluster] = useState('');
  const [prefix, setPrefix] = useState('kinsight-');
  const [actions, setActions] = useState('');
  const [okActions, setOkActions] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [installed, setInstalled] = useState<string[] | null>(null);
  const chosen = cluster || clusters[0]?.cluster || '';
  return (
    <form
      className="panel form"
      data-testid="pack-form"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        try {
          const r = await installPack({ ClusterName: chosen, Prefix: prefix, AlarmActions: urls(actions), OKActions: urls(okActions) });
          setInstalled(r.Installed.map((a) => a.AlarmName));
        } catch (err) {
          setError((err as Error).message);
        }
      }}
    >
      <h2>Kubernetes alarm pack</h2>
      <p className="muted small">
        Six alarms for a cluster: node CPU and memory, pods near their memory limit, container restarts, failed nodes, crash-looping pods (per node and per pod, with <code>*</code>{' '}
        dimensions). Installing again updates them.
      </p>
      <div className="form-grid">
        <label>
          Cluster
          <select value={chosen} onChange={(e) => setCluster(e.target.value)} required>
            {clusters.map((c) => (
              <option key={c.cluster}>{c.cluster}</option>
            ))}
          </select>
        </label>
        <label>
          Name prefix
          <input value={prefix} onChange={(e) => setPrefix(e.target.value)} />
        </label>
        <label>
          Alarm actions (URLs)
          <input value={actions} onChange={(e) => setActions(e.target.value)} placeholder="https://hooks.slack.com/services/…" />
        </label>
        <label>
          OK actions (URLs)
          <input value={okActions} onChange={(e) => setOkActions(e.target.value)} />
        </label>
      </div>
      {error && <p className="error">{error}</p>}
      {installed && (
        <p className="ok" role="status">
          Installed {installed.length} alarms: {installed.join(', ')}
        </p>
      )}
      <div className="toolbar">
        <button type="submit" className="primary" disabled={!chosen} data-testid="install-pack">
          Install
        </button>
        <button type="button" onClick={onDone}>
          {installed ? 'Close' : 'Cancel'}
        </button>
      </div>
    </form>
  );
}

function AlarmDetail({ name }: { name: string }) {
  const [tick, setTick] = useState(0);
  const alarm = useAsync(async (signal) => (await listAlarms(signal)).MetricAlarms.find((a) => a.AlarmName === name) ?? null, [name, tick]);
  const history = useAsync((signal) => alarmHistory(name, signal), [name, tick]);
  const a = alarm.data;
  const chart = useAsync(
    async (signal) => {
      if (!a) return null;
      const end = Date.now();
      const start = end - Math.max(3 * 3600_000, a.Period * 1000 * (a.EvaluationPeriods + 2) * 10);
      const r = await queryMetric(
        {
          Namespace: a.Namespace,
          MetricName: a.MetricName,
          Dimensions: a.Dimensions,
          Statistic: a.Statistic ?? a.ExtendedStatistic ?? 'Average',
          Period: a.Period,
          StartTime: start,
          EndTime: end,
          MaxSeries: 50,
        },
        signal,
      );
      const by = a.Dimensions.find((d) => d.Value === '*')?.Name;
      return { ts: r.Timestamps, series: linesOf({ metric: a.MetricName, dims: a.Dimensions, combine: by ? 'each' : 'single', by, label: a.MetricName }, r) };
    },
    [a?.AlarmName, a?.AlarmConfigurationUpdatedTimestamp, tick],
  );
  if (alarm.error) return <p className="error">{alarm.error}</p>;
  if (alarm.data === null) return <p className="error">No alarm named {name}.</p>;
  if (!a) return <p className="muted">Loading…</p>;
  return (
    <div data-testid="alarm-detail">
      <div className="toolbar">
        <a href="/alarms" onClick={(e) => go(e, '/alarms')}>
          Alarms
        </a>
        <span aria-hidden="true">›</span>
        <h1 className="h-inline">{a.AlarmName}</h1>
        <StateBadge state={a.StateValue} />
        <span className="spacer" />
        <button type="button" onClick={() => setTick((t) => t + 1)} aria-label="Refresh">
          ↻
        </button>
        <a className="button" href={href('/alarms/edit', { name })} onClick={(e) => go(e, href('/alarms/edit', { name }))}>
          Edit
        </a>
        <button
          type="button"
          className="danger"
          onClick={async () => {
            if (!window.confirm(`Delete alarm ${name}?`)) return;
            await deleteAlarm(name);
            navigate('/alarms');
          }}
        >
          Delete
        </button>
      </div>
      {a.AlarmDescription && <p>{a.AlarmDescription}</p>}
      <p className="muted">{a.StateReason}</p>
      <Chart
        testId="alarm-chart"
        title={`${a.MetricName} (${a.Statistic ?? a.ExtendedStatistic}, ${a.Period} s)`}
        unit={/utilization|capacity/.test(a.MetricName) ? 'percent' : 'count'}
        timestamps={chart.data?.ts ?? []}
        series={chart.data?.series ?? []}
        threshold={a.Threshold}
        loading={chart.loading}
        error={chart.error}
      />
      <dl className="facts">
        <dt>Metric</dt>
        <dd>
          {a.Namespace} / {a.MetricName}
        </dd>
        <dt>Dimensions</dt>
        <dd>{a.Dimensions.map((d) => `${d.Name}=${d.Value}`).join(', ')}</dd>
        <dt>Condition</dt>
        <dd>
          {describeCondition(a)} (missing data: {a.TreatMissingData ?? 'missing'})
        </dd>
        <dt>Actions</dt>
        <dd>
          {a.ActionsEnabled ? '' : '(disabled) '}ALARM: {a.AlarmActions.join(', ') || 'none'} · OK: {a.OKActions.join(', ') || 'none'} · INSUFFICIENT_DATA:{' '}
          {a.InsufficientDataActions.join(', ') || 'none'}
        </dd>
      </dl>
      {a.SeriesStates && a.SeriesStates.length > 0 && (
        <section className="panel">
          <h2>Series</h2>
          <table className="grid">
            <tbody>
              {a.SeriesStates.map((s, i) => (
                <tr key={i}>
                  <td>{s.Dimensions.map((d) => `${d.Name}=${d.Value}`).join(', ')}</td>
                  <td>
                    <StateBadge state={s.StateValue} />
                  </td>
                  <td className="muted small">{s.StateReason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      <section className="panel">
        <h2>History</h2>
        {history.error && <p className="error">{history.error}</p>}
        <table className="grid" data-testid="alarm-history">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Type</th>
              <th scope="col">Summary</th>
            </tr>
          </thead>
          <tbody>
            {(history.data?.AlarmHistoryItems ?? []).map((h, i) => (
              <tr key={i}>
                <td className="nowrap">{formatTime(Date.parse(h.Timestamp))}</td>
                <td>{h.HistoryItemType}</td>
                <td>{h.HistorySummary}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}

interface FormState {
  AlarmName: string;
  AlarmDescription: string;
  Namespace: string;
  MetricName: string;
  Dimensions: { Name: string; Value: string }[];
  Statistic: string;
  EvaluateLowSampleCountPercentile: string;
  Period: number;
  EvaluationPeriods: number;
  DatapointsToAlarm: number;
  ComparisonOperator: string;
  Threshold: string;
  TreatMissingData: string;
  AlarmActions: string;
  OKActions: string;
  InsufficientDataActions: string;
  ActionsEnabled: boolean;
}

const EMPTY: FormState = {
  AlarmName: '',
  AlarmDescription: '',
  Namespace: 'ContainerInsights',
  MetricName: 'node_cpu_utilization',
  Dimensions: [{ Name: 'ClusterName', Value: '' }],
  Statistic: 'Average',
  EvaluateLowSampleCountPercentile: 'evaluate',
  Period: 60,
  EvaluationPeriods: 5,
  DatapointsToAlarm: 3,
  ComparisonOperator: 'GreaterThanThreshold',
  Threshold: '80',
  TreatMissingData: 'missing',
  AlarmActions: '',
  OKActions: '',
  InsufficientDataActions: '',
  ActionsEnabled: true,
};

function fromAlarm(a: MetricAlarm): FormState {
  return {
    AlarmName: a.AlarmName,
    AlarmDescription: a.AlarmDescription ?? '',
    Namespace: a.Namespace,
    MetricName: a.MetricName,
    Dimensions: a.Dimensions.map((d) => ({ ...d })),
    Statistic: a.Statistic ?? a.ExtendedStatistic ?? 'Average',
    EvaluateLowSampleCountPercentile: a.EvaluateLowSampleCountPercentile ?? 'evaluate',
    Period: a.Period,
    EvaluationPeriods: a.EvaluationPeriods,
    DatapointsToAlarm: a.DatapointsToAlarm ?? a.EvaluationPeriods,
    ComparisonOperator: a.ComparisonOperator,
    Threshold: String(a.Threshold),
    TreatMissingData: a.TreatMissingData ?? 'missing',
    AlarmActions: a.AlarmActions.join('\n'),
    OKActions: a.OKActions.join('\n'),
    InsufficientDataActions: a.InsufficientDataActions.join('\n'),
    ActionsEnabled: a.ActionsEnabled,
  };
}

/** The PutMetricAlarm body of the form (docs/api.md#alarms). */
export function toPutBody(f: FormState): Record<string, unknown> {
  const percentile = /^p\d+(\.\d+)?$/.test(f.Statistic);
  const body: Record<string, unknown> = {
    AlarmName: f.AlarmName.trim(),
    Namespace: f.Namespace.trim(),
    MetricName: f.MetricName.trim(),
    Dimensions: f.Dimensions.filter((d) => d.Name.trim()).map((d) => ({ Name: d.Name.trim(), Value: d.Value.trim() })),
    Period: Number(f.Period),
    EvaluationPeriods: Number(f.EvaluationPeriods),
    DatapointsToAlarm: Number(f.DatapointsToAlarm),
    ComparisonOperator: f.ComparisonOperator,
    Threshold: Number(f.Threshold),
    TreatMissingData: f.TreatMissingData,
    AlarmActions: urls(f.AlarmActions),
    OKActions: urls(f.OKActions),
    InsufficientDataActions: urls(f.InsufficientDataActions),
    ActionsEnabled: f.ActionsEnabled,
  };
  if (f.AlarmDescription.trim()) body.AlarmDescription = f.AlarmDescription.trim();
  if (percentile) {
    body.ExtendedStatistic = f.Statistic;
    body.EvaluateLowSampleCountPercentile = f.EvaluateLowSampleCountPercentile;
  } else body.Statistic = f.Statistic;
  return body;
}

function AlarmForm({ name }: { name?: string }) {
  const existing = useAsync(async (signal) => (name ? ((await listAlarms(signal)).MetricAlarms.find((a) => a.AlarmName === name) ?? null) : null), [name]);
  if (name && existing.data === undefined) return <p className="muted">Loading…</p>;
  if (name && existing.data === null) return <p className="error">No alarm named {name}.</p>;
  return <AlarmFormBody key={name ?? ''} initial={existing.data ? fromAlarm(existing.data) : EMPTY} editing={!!name} />;
}

function AlarmFormBody({ initial, editing }: { initial: FormState; editing: boolean }) {
  const [f, setF] = useState<FormState>(initial);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => setF((old) => ({ ...old, [k]: v }));
  const metrics = useAsync((signal) => listMetrics({ Namespace: f.Namespace || undefined, Limit: 10000 }, signal), [f.Namespace]);
  const names = useMemo(() => [...new Set((metrics.data?.Metrics ?? []).map((m) => m.MetricName))].sort(), [metrics.data]);
  const dimNames = useMemo(
    () => [...new Set((metrics.data?.Metrics ?? []).filter((m) => m.MetricName === f.MetricName).flatMap((m) => m.Dimensions.map((d) => d.Name)))].sort(),
    [metrics.data, f.MetricName],
  );
  const percentile = /^p\d+(\.\d+)?$/.test(f.Statistic);
  return (
    <form
      className="form"
      data-testid="alarm-form"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          const a = await putAlarm(toPutBody(f));
          navigate(href('/alarms', { name: a.AlarmName }));
        } catch (err) {
          setError((err as Error).message);
        } finally {
          setBusy(false);
        }
      }}
    >
      <div className="toolbar">
        <a href="/alarms" onClick={(e) => go(e, '/alarms')}>
          Alarms
        </a>
        <span aria-hidden="true">›</span>
        <h1 className="h-inline">{editing ? `Edit ${f.AlarmName}` : 'Create alarm'}</h1>
      </div>
      <fieldset className="panel">
        <legend>Metric</legend>
        <div className="form-grid">
          <label>
            Name
            <input value={f.AlarmName} onChange={(e) => set('AlarmName', e.target.value)} required readOnly={editing} name="AlarmName" />
          </label>
          <label>
            Description
            <input value={f.AlarmDescription} onChange={(e) => set('AlarmDescription', e.target.value)} name="AlarmDescription" />
          </label>
          <label>
            Namespace
            <input value={f.Namespace} onChange={(e) => set('Namespace', e.target.value)} required name="Namespace" />
          </label>
          <label>
            Metric name
            <input list="metric-names" value={f.MetricName} onChange={(e) => set('MetricName', e.target.value)} required name="MetricName" />
            <datalist id="metric-names">
              {names.map((n) => (
                <option key={n} value={n} />
              ))}
            </datalist>
          </label>
        </div>
        <div className="dims">
          <span className="label">Dimensions</span>
          <p className="muted small">A value of * watches every series with these dimension names (one state per series).</p>
          {f.Dimensions.map((d, i) => (
            <div key={i} className="dim-row">
              <input
                list="dim-names"
                aria-label={`Dimension ${i + 1} name`}
                value={d.Name}
                onChange={(e) => set('Dimensions', f.Dimensions.map((x, j) => (j === i ? { ...x, Name: e.target.value } : x)))}
              />
              <span>=</span>
              <input
                aria-label={`Dimension ${i + 1} value`}
                value={d.Value}
                onChange={(e) => set('Dimensions', f.Dimensions.map((x, j) => (j === i ? { ...x, Value: e.target.value } : x)))}
              />
              <button type="button" aria-label={`Remove dimension ${i + 1}`} onClick={() => set('Dimensions', f.Dimensions.filter((_, j) => j !== i))}>
                ✕
              </button>
            </div>
          ))}
          <datalist id="dim-names">
            {dimNames.map((n) => (
              <option key={n} value={n} />
            ))}
          </datalist>
          <button type="button" className="link" onClick={() => set('Dimensions', [...f.Dimensions, { Name: '', Value: '' }])}>
            Add dimension
          </button>
        </div>
      </fieldset>
      <fieldset className="panel">
        <legend>Conditions</legend>
        <div className="form-grid">
          <label>
            Statistic
            <select value={f.Statistic} onChange={(e) => set('Statistic', e.target.value)} name="Statistic">
              {[...new Set([...STATISTICS, f.Statistic])].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          {percentile && (
            <label>
              Low sample count percentiles
              <select value={f.EvaluateLowSampleCountPercentile} onChange={(e) => set('EvaluateLowSampleCountPercentile', e.target.value)}>
                <option>evaluate</option>
                <option>ignore</option>
              </select>
            </label>
          )}
          <label>
            Period
            <select value={f.Period} onChange={(e) => set('Period', Number(e.target.value))} name="Period">
              {[...new Set([...PERIODS, f.Period])].map((p) => (
                <option key={p} value={p}>
                  {p < 60 ? `${p} seconds` : p < 3600 ? `${p / 60} minutes` : `${p / 3600} hours`}
                </option>
              ))}
            </select>
          </label>
          <label>
            Comparison
            <select value={f.ComparisonOperator} onChange={(e) => set('ComparisonOperator', e.target.value)} name="ComparisonOperator">
              {OPERATORS.map(([k, sym]) => (
                <option key={k} value={k}>
                  {sym} {k}
                </option>
              ))}
            </select>
          </label>
          <label>
            Threshold
            <input type="number" step="any" value={f.Threshold} onChange={(e) => set('Threshold', e.target.value)} required name="Threshold" />
          </label>
          <label>
            Datapoints to alarm
            <input type="number" min={1} value={f.DatapointsToAlarm} onChange={(e) => set('DatapointsToAlarm', Number(e.target.value))} required name="DatapointsToAlarm" />
          </label>
          <label>
            Evaluation periods
            <input type="number" min={1} value={f.EvaluationPeriods} onChange={(e) => set('EvaluationPeriods', Number(e.target.value))} required name="EvaluationPeriods" />
          </label>
          <label>
            Missing data
            <select value={f.TreatMissingData} onChange={(e) => set('TreatMissingData', e.target.value)} name="TreatMissingData">
              {MISSING.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </label>
        </div>
      </fieldset>
      <fieldset className="panel">
        <legend>Actions</legend>
        <p className="muted small">
          Webhook URLs, one per line: <code>https://…</code> gets CloudWatch's SNS alarm message; Slack-compatible hooks (<code>hooks.slack.com</code> or <code>slack+https://…</code>) get a
          text message. At most 5 each.
        </p>
        <div className="form-grid">
          <label>
            In ALARM
            <textarea rows={2} value={f.AlarmActions} onChange={(e) => set('AlarmActions', e.target.value)} name="AlarmActions" />
          </label>
          <label>
            Back to OK
            <textarea rows={2} value={f.OKActions} onChange={(e) => set('OKActions', e.target.value)} name="OKActions" />
          </label>
          <label>
            INSUFFICIENT_DATA
            <textarea rows={2} value={f.InsufficientDataActions} onChange={(e) => set('InsufficientDataActions', e.target.value)} name="InsufficientDataActions" />
          </label>
          <label className="toggle">
            <input type="checkbox" checked={f.ActionsEnabled} onChange={(e) => set('ActionsEnabled', e.target.checked)} /> Actions enabled
          </label>
        </div>
      </fieldset>
      {error && (
        <p className="error" role="alert" data-testid="alarm-error">
          {error}
        </p>
      )}
      <div className="toolbar">
        <button type="submit" className="primary" disabled={busy} data-testid="save-alarm">
          {editing ? 'Save' : 'Create alarm'}
        </button>
        <a className="button" href="/alarms" onClick={(e) => go(e, '/alarms')}>
          Cancel
        </a>
      </div>
    </form>
  );
}
