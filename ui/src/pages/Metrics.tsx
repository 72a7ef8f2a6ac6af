// The metrics explorer: PromQL over the metric store (the server's Prometheus API, docs/api.md
// "Prometheus HTTP API"). Write a query — metric, function, label names and values are
// completed as you type, for the metric under the cursor and the selected time range — run
// it, see the range query's series over time and the instant query's values at the range's
// end. The query, range and step live in the URL (`/metrics?q=…&range=…&step=…`).

import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Chart } from '../components/Chart';
import { PromqlEditor } from '../components/PromqlEditor';
import { TimeRangePicker } from '../components/TimeRangePicker';
import {
  autoStep,
  formatStep,
  instantQuery,
  labelNames,
  labelValues,
  matrixToColumns,
  metricNames,
  metricSelector,
  quote,
  rangeQuery,
  sampleValue,
  valuesKey,
  type Catalogue,
  type PromCursor,
  type PromData,
} from '../lib/prometheus';
import { setParams, useLocation } from '../lib/router';
import { formatTime, resolveRange } from '../lib/time';

/** Most series drawn (the table lists them all). */
const MAX_CHART_SERIES = 100;
/** Most rows of the instant result shown. */
const MAX_ROWS = 1000;

interface Outcome {
  range?: { timestamps: number[]; series: { label: string; values: (number | null)[] }[]; total: number };
  instant?: PromData;
  evaluatedAt: number;
  step: string;
  errors: string[];
  warnings: string[];
}

export function Metrics() {
  const { params } = useLocation();
  const qParam = params.get('q');
  const rangeParam = params.get('range') ?? '1h';
  const stepParam = params.get('step') ?? '';
  const [text, setText] = useState(qParam ?? '');
  const [step, setStep] = useState(stepParam);
  const [runId, setRunId] = useState(0);
  const [running, setRunning] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [inputError, setInputError] = useState<string | null>(null);
  const [catalogue, setCatalogue] = useState<Catalogue>({ metrics: [], labels: new Map(), values: new Map() });
  const [catalogueError, setCatalogueError] = useState<string | null>(null);
  const asked = useRef(new Set<string>());
  const run = useRef<AbortController | null>(null);

  // A link (or Back) brings its own query into the editor.
  useEffect(() => {
    if (qParam !== null) setText(qParam);
  }, [qParam]);
  useEffect(() => setStep(stepParam), [stepParam]);

  // Metric names once per page load; label names and values on demand (below).
  useEffect(() => {
    const ctl = new AbortController();
    metricNames(undefined, ctl.signal).then(
      (metrics) => setCatalogue((c) => ({ ...c, metrics })),
      (e: Error) => {
        if (e.name !== 'AbortError') setCatalogueError(e.message);
      },
    );
    return () => ctl.abort();
  }, []);

  // Label names and values are for the selected range: a new range asks again.
  useEffect(() => {
    asked.current.clear();
    setCatalogue((c) => ({ ...c, labels: new Map(), values: new Map() }));
  }, [rangeParam]);

  const onContext = useCallback(
    (c: PromCursor) => {
      const ctx = c.context;
      if (ctx.kind !== 'label' && ctx.kind !== 'value') return;
      const match = ctx.metric ? [metricSelector(ctx.metric)] : [];
      const r = resolveRange(rangeParam);
      const window = { startMs: r.start, endMs: r.end };
      if (ctx.kind === 'label') {
        const key = ctx.metric ?? '';
        if (asked.current.has(`l:${key}`)) return;
        asked.current.add(`l:${key}`);
        labelNames(match, window).then(
          (names) => setCatalogue((cat) => ({ ...cat, labels: new Map(cat.labels).set(key, names) })),
          () => undefined,
        );
      } else {
        const key = valuesKey(ctx.metric, ctx.label);
        if (asked.current.has(`v:${key}`) || !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(ctx.label)) return;
        asked.current.add(`v:${key}`);
        labelValues(ctx.label, match, window).then(
          (values) => setCatalogue((cat) => ({ ...cat, values: new Map(cat.values).set(key, values) })),
          () => undefined,
        );
      }
    },
    [rangeParam],
  );

  function execute() {
    if (!text.trim()) {
      setInputError('Write a PromQL query, for example node_cpu_utilization.');
      return;
    }
    setInputError(null);
    setParams({ q: text, step: step.trim() || undefined });
    setRunId((n) => n + 1);
  }

  // Runs whenever the URL's query, range or step changes, and on every Run.
  useEffect(() => {
    run.current?.abort();
    if (!qParam || !qParam.trim()) {
      setRunning(false);
      return;
    }
    const ctl = new AbortController();
    run.current = ctl;
    const r = resolveRange(rangeParam);
    const stepValue = stepParam.trim() || autoStep(r.end - r.start);
    setRunning(true);
    Promise.allSettled([rangeQuery(qParam, r.start, r.end, stepValue, ctl.signal), instantQuery(qParam, r.end, ctl.signal)]).then(
      ([ranged, instant]) => {
        if (ctl.signal.aborted) return;
        const errors: string[] = [];
        const warnings: string[] = [];
        const out: Outcome = { evaluatedAt: r.end, step: typeof stepValue === 'number' ? formatStep(stepValue) : stepValue, errors, warnings };
        if (ranged.status === 'fulfilled') {
          warnings.push(...ranged.value.warnings);
          const d = ranged.value.data;
          if (d.resultType === 'matrix') {
            const cols = matrixToColumns(d.result.slice(0, MAX_CHART_SERIES));
            out.range = { ...cols, total: d.result.length };
          }
        } else errors.push((ranged.reason as Error).message);
        if (instant.status === 'fulfilled') {
          warnings.push(...instant.value.warnings);
          out.instant = instant.value.data;
        } else errors.push((instant.reason as Error).message);
        out.errors = [...new Set(errors)];
        out.warnings = [...new Set(warnings)];
        setOutcome(out);
        setRunning(false);
      },
    );
    return () => ctl.abort();
  }, [qParam, rangeParam, stepParam, runId]);

  const autoLabel = useMemo(() => {
    const r = resolveRange(rangeParam);
    return formatStep(autoStep(r.end - r.start));
  }, [rangeParam]);

  const errors = [...(inputError ? [inputError] : []), ...(outcome?.errors ?? [])];

  return (
    <div className="metrics">
      <div className="toolbar">
        <h1 className="h-inline">Metrics</h1>
        <span className="muted small">PromQL over the metric store</span>
        <span className="spacer" />
        <TimeRangePicker range={rangeParam} onRange={(v) => setParams({ range: v })} />
      </div>
      <div className="panel">
        <PromqlEditor value={text} onChange={setText} onRun={execute} catalogue={catalogue} onContext={onContext} rows={3} label="PromQL query" />
        <div className="toolbar">
          <button type="button" className="primary" onClick={execute} data-testid="run-promql">
            Run query
          </button>
          <label>
            Step
            <input
              className="step-input"
              value={step}
              onChange={(e) => setStep(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter') execute();
              }}
              placeholder={`auto (${autoLabel})`}
              aria-label="Step"
              title="Seconds (30) or a duration (1m, 1h30m); empty: about 250 points over the range, 15 s at least"
              size={10}
              data-testid="promql-step"
            />
          </label>
          <span className="muted small">Ctrl+Enter runs · Ctrl+Space completes</span>
          {running && <span className="muted small">Running…</span>}
          {catalogueError && <span className="muted small">Metric names unavailable: {catalogueError}</span>}
        </div>
        {errors.length > 0 && (
          <div className="error error-box" role="alert" data-testid="promql-error">
            {errors.map((e) => (
              <p key={e}>{e}</p>
            ))}
          </div>
        )}
        {outcome && outcome.warnings.length > 0 && (
          <ul className="warning small warnings" data-testid="promql-warnings" aria-label="Warnings">
            {outcome.warnings.map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        )}
      </div>
      {outcome?.range && (
        <>
          <Chart
            testId="promql-chart"
            title={`${qParam ?? ''}  ·  step ${outcome.step}`}
            unit="number"
            timestamps={outcome.range.timestamps}
            series={outcome.range.series}
            height={260}
            onZoom={(a, b) => setParams({ range: `${a}-${b}` })}
          />
          {outcome.range.total > MAX_CHART_SERIES && (
            <p className="muted small">
              The chart draws the first {MAX_CHART_SERIES} of {outcome.range.total} series.
            </p>
          )}
        </>
      )}
      {outcome?.instant && <InstantTable data={outcome.instant} at={outcome.evaluatedAt} />}
    </div>
  );
}

function InstantTable({ data, at }: { data: PromData; at: number }) {
  const rows: { metric: Record<string, string> | null; value: string }[] = [];
  if (data.resultType === 'vector') for (const s of data.result) rows.push({ metric: s.metric, value: formatSample(s.value[1]) });
  else if (data.resultType === 'matrix')
    for (const s of data.result) {
      const last = s.values[s.values.length - 1];
      rows.push({ metric: s.metric, value: `${s.values.length} samples${last ? `, last ${formatSample(last[1])} at ${formatTime(last[0] * 1000)}` : ''}` });
    }
  else rows.push({ metric: null, value: data.resultType === 'string' ? data.result[1] : formatSample(data.result[1]) });
  return (
    <section className="panel" aria-labelledby="instant-title">
      <div className="panel-head">
        <h2 id="instant-title">Values at {formatTime(at)}</h2>
        <span className="muted small">
          {data.resultType} · {rows.length.toLocaleString('en-US')} {rows.length === 1 ? 'row' : 'rows'}
        </span>
      </div>
      <table className="grid promql-table" data-testid="promql-table">
        <thead>
          <tr>
            <th scope="col">Series</th>
            <th scope="col" className="num">
              Value
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.slice(0, MAX_ROWS).map((r, i) => (
            <tr key={i}>
              <td className="mono series-cell">{r.metric ? <SeriesName metric={r.metric} /> : <span className="muted">{data.resultType}</span>}</td>
              <td className="num mono">{r.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && <p className="muted">No series at this instant.</p>}
      {rows.length > MAX_ROWS && <p className="muted small">The first {MAX_ROWS.toLocaleString('en-US')} rows are shown.</p>}
    </section>
  );
}

function SeriesName({ metric }: { metric: Record<string, string> }) {
  const name = metric.__name__;
  const labels = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .sort();
  return (
    <>
      {name !== undefined && <span className="series-name">{name}</span>}
      {'{'}
      {labels.map((k, i) => (
        <span key={k} className="series-label">
          <span className="tok-label">{k}</span>=<span className="tok-string">{quote(metric[k])}</span>
          {i < labels.length - 1 ? ', ' : ''}
        </span>
      ))}
      {'}'}
    </>
  );
}

function formatSample(v: string): string {
  const x = sampleValue(v);
  if (!Number.isFinite(x)) return v;
  return String(x);
}
