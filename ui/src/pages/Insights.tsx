// Logs Insights: pick log groups and a time range, write a query (highlighted, checked as you
// type, errors marked where they are), run it, see a histogram of the matching events (or the
// chart of a `stats … by bin()` query) and the rows, each expandable to the whole event.

import { useEffect, useMemo, useRef, useState } from 'react';
import { Chart, type ChartSeries } from '../components/Chart';
import { JsonView, asJson } from '../components/JsonView';
import { QueryEditor, type EditorError } from '../components/QueryEditor';
import { TimeRangePicker } from '../components/TimeRangePicker';
import { ApiError, checkQuery, getRecord, listGroups, runQuery, type QueryResultPage } from '../lib/api';
import { num } from '../lib/dashboards';
import { useAsync } from '../lib/hooks';
import { deleteSaved, errorPosition, histogramBin, histogramQuery, loadSaved, saveQuery, type SavedQuery } from '../lib/insights';
import { setParams, useLocation } from '../lib/router';
import { formatTime, parseResultTime, resolveRange } from '../lib/time';

const DEFAULT_QUERY = 'fields @timestamp, @message, @logStream\n| sort @timestamp desc\n| limit 100';

type Result = QueryResultPage & { allRows: unknown[][] };

export function Insights() {
  const { params } = useLocation();
  const groupsParam = params.get('groups') ?? '';
  const selected = useMemo(() => groupsParam.split(',').filter(Boolean), [groupsParam]);
  const rangeParam = params.get('range') ?? '1h';
  const [query, setQuery] = useState(params.get('query') ?? DEFAULT_QUERY);
  const [syntax, setSyntax] = useState<EditorError | null>(null);
  const [result, setResult] = useState<Result | null>(null);
  const [hist, setHist] = useState<{ ts: number[]; counts: (number | null)[] } | null>(null);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [ranQuery, setRanQuery] = useState<string | null>(null);
  const [saved, setSaved] = useState<SavedQuery[]>(loadSaved);
  const [saveName, setSaveName] = useState('');
  const run = useRef<AbortController | null>(null);
  const groups = useAsync((signal) => listGroups(undefined, signal), []);

  // A link with ?query= (from a dashboard) replaces the editor's text and runs it.
  const linked = params.get('query');
  useEffect(() => {
    if (linked !== null) setQuery(linked);
  }, [linked]);
  const autorun = useRef(linked !== null);
  useEffect(() => {
    if (autorun.current && selected.length) {
      autorun.current = false;
      void execute(linked ?? query);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [selected.length, linked]);

  // Syntax check as you type (debounced); the server's parser is the one that counts.
  useEffect(() => {
    const ctl = new AbortController();
    const t = setTimeout(() => {
      checkQuery(query, ctl.signal).then(
        (r) => setSyntax(r.valid ? null : { line: r.line ?? 1, column: r.column ?? 1, message: r.message ?? 'invalid query' }),
        () => undefined,
      );
    }, 350);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [query]);

  async function execute(text = query) {
    run.current?.abort();
    const ctl = new AbortController();
    run.current = ctl;
    setError(null);
    setResult(null);
    setHist(null);
    if (selected.length === 0) {
      setError('Pick at least one log group.');
      return;
    }
    const range = resolveRange(rangeParam);
    setRunning(true);
    setRanQuery(text);
    const bin = histogramBin(range.end - range.start);
    const hq = histogramQuery(text, bin);
    const histPromise = hq
      ? runQuery({ groups: selected, start: range.start, end: range.end, query: hq, limit: 10000 }, ctl.signal).then(
          (r) => {
            if (r.status !== 'Complete' || ctl.signal.aborted) return;
            const tcol = r.columns.findIndex((c) => c.startsWith('bin('));
            const ccol = r.columns.indexOf('events');
            const counts = new Map<number, number>();
            for (const row of r.allRows) {
              const t = parseResultTime(row[tcol]);
              if (t !== null) counts.set(t, num(row[ccol]) ?? 0);
            }
            const first = Math.floor(range.start / 1000 / bin) * bin * 1000;
            const ts: number[] = [];
            const cs: (number | null)[] = [];
            for (let t = first; t < range.end; t += bin * 1000) {
              ts.push(t);
              cs.push(counts.get(t) ?? 0);
            }
            setHist({ ts, counts: cs });
          },
          () => undefined,
        )
      : Promise.resolve();
    try {
      const r = await runQuery({ groups: selected, start: range.start, end: range.end, query: text }, ctl.signal, (p) => {
        if (!ctl.signal.aborted) setResult({ ...p });
      });
      if (!ctl.signal.aborted) {
        setResult(r);
        if (r.status === 'Failed' || r.status === 'Timeout') setError(r.error?.message ?? `query ${r.status.toLowerCase()}`);
      }
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      const msg = (e as Error).message;
      const pos = e instanceof ApiError && e.code === 'MalformedQuery' ? errorPosition(msg) : null;
      if (pos) setSyntax(pos);
      setError(msg);
    } finally {
      await histPromise;
      if (run.current === ctl) setRunning(false);
    }
  }

  const toggleGroup = (g: string) => {
    const next = selected.includes(g) ? selected.filter((x) => x !== g) : [...selected, g];
    setParams({ groups: next.join(',') || undefined });
  };

  return (
    <div className="insights">
      <div className="toolbar">
        <h1 className="h-inline">Logs Insights</h1>
        <span className="spacer" />
        <TimeRangePicker range={rangeParam} onRange={(r) => setParams({ range: r })} />
      </div>
      <div className="insights-layout">
        <div className="panel">
          <GroupPicker all={(groups.data ?? []).map((g) => g.name)} selected={selected} onToggle={toggleGroup} />
          <QueryEditor value={query} onChange={setQuery} onRun={() => void execute()} error={syntax} rows={6} label="Logs Insights query" />
          <div className="toolbar">
            <button type="button" className="primary" onClick={() => void execute()} disabled={running} data-testid="run-query">
              Run query
            </button>
            <button type="button" onClick={() => run.current?.abort()} disabled={!running}>
              Cancel
            </button>
            <span className="muted small">Ctrl+Enter runs the query</span>
            <span className="spacer" />
            <form
              className="inline"
              onSubmit={(e) => {
                e.preventDefault();
                if (!saveName.trim()) return;
                setSaved(saveQuery({ name: saveName.trim(), query, groups: selected, savedMs: Date.now() }));
                setSaveName('');
              }}
            >
              <input value={saveName} onChange={(e) => setSaveName(e.target.value)} placeholder="Name" aria-label="Name of the saved query" />
              <button type="submit">Save query</button>
            </form>
          </div>
          {error && (
            <p className="error" role="alert" data-testid="query-error">
              {error}
            </p>
          )}
          <Status result={result} running={running} />
        </div>
        <aside className="panel saved" aria-label="Saved queries">
          <h2>Saved queries</h2>
          <p className="muted small">Kept in this browser.</p>
          <ul className="list">
            {saved.map((s) => (
              <li key={s.name} className="saved-item">
                <button
                  type="button"
                  title={s.query}
                  onClick={() => {
                    setQuery(s.query);
                    if (s.groups.length) setParams({ groups: s.groups.join(','), query: undefined });
                  }}
                >
                  {s.name}
                </button>
                <button type="button" className="link small" aria-label={`Delete saved query ${s.name}`} onClick={() => setSaved(deleteSaved(s.name))}>
                  ✕
                </button>
              </li>
            ))}
            {saved.length === 0 && <li className="muted small">None yet.</li>}
          </ul>
          <h2>Examples</h2>
          <ul className="list">
            {EXAMPLES.map((x) => (
              <li key={x.name}>
                <button type="button" title={x.query} onClick={() => setQuery(x.query)}>
                  {x.name}
                </button>
              </li>
            ))}
          </ul>
        </aside>
      </div>
      {hist && (
        <Chart
          testId="histogram"
          title="Matching events over time"
          unit="count"
          timestamps={hist.ts}
          series={[{ label: 'events', values: hist.counts }]}
          bars
          height={140}
          onZoom={(a, b) => setParams({ range: `${a}-${b}` })}
        />
      )}
      {result && <Visualization result={result} />}
      {result && <Results key={ranQuery ?? ''} result={result} />}
    </div>
  );
}

const EXAMPLES: { name: string; query: string }[] = [
  { name: 'Nodes by CPU', query: 'filter Type = "Node"\n| stats avg(node_cpu_utilization) as avg_node_cpu_utilization by NodeName\n| sort avg_node_cpu_utilization desc' },
  { name: 'Node CPU over time', query: 'filter Type = "Node"\n| stats avg(node_cpu_utilization) as cpu by bin(5m)' },
  { name: 'Pods by restarts', query: 'filter Type = "Pod"\n| stats sum(pod_number_of_container_restarts) as restarts by Namespace, PodName\n| sort restarts desc\n| limit 20' },
  { name: 'Application errors by container', query: 'filter stream = "stderr"\n| stats count() as errors by kubernetes.namespace_name, kubernetes.container_name\n| sort errors desc' },
  { name: 'Latest errors', query: 'fields @timestamp, kubernetes.pod_name, log\n| filter log like /(?i)error|panic/\n| sort @timestamp desc\n| limit 50' },
];

function GroupPicker({ all, selected, onToggle }: { all: string[]; selected: string[]; onToggle: (g: string) => void }) {
  const [filter, setFilter] = useState('');
  const [open, setOpen] = useState(selected.length === 0);
  const shown = all.filter((g) => g.toLowerCase().includes(filter.toLowerCase()));
  return (
    <div className="group-picker">
      <div className="chips" aria-label="Selected log groups">
        {selected.map((g) => (
          <span key={g} className="chip">
            {g}
            <button type="button" aria-label={`Remove ${g}`} onClick={() => onToggle(g)}>
              ✕
            </button>
          </span>
        ))}
        <button type="button" className="link" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="pick-groups">
          {selected.length ? 'Change log groups' : 'Select log groups'}
        </button>
      </div>
      {open && (
        <div className="picker">
          <input type="search" placeholder="Filter log groups" value={filter} onChange={(e) => setFilter(e.target.value)} aria-label="Filter log groups" />
          <ul className="list checks">
            {shown.map((g) => (
              <li key={g}>
                <label>
                  <input type="checkbox" checked={selected.includes(g)} onChange={() => onToggle(g)} /> {g}
                </label>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}

function Status({ result, running }: { result: Result | null; running: boolean }) {
  if (!result) return running ? <p className="muted">Running…</p> : null;
  const s = result.statistics;
  return (
    <p className="muted small" data-testid="query-status">
      {result.status} · {result.totalRows.toLocaleString('en-US')} rows · {s.recordsMatched.toLocaleString('en-US')} records matched ·{' '}
      {s.recordsScanned.toLocaleString('en-US')} scanned · {(s.bytesScanned / 1e6).toFixed(1)} MB scanned
      {result.warnings?.map((w) => (
        <span key={w} className="warning">
          {' '}
          · {w}
        </span>
      ))}
    </p>
  );
}

/** A `stats … by bin()` result drawn as time series, one line per numeric column and group. */
function Visualization({ result }: { result: Result }) {
  const chart = useMemo(() => {
    const cols = result.columns;
    const tcol = cols.findIndex((c) => c.startsWith('bin('));
    if (tcol < 0 || result.allRows.length === 0) return null;
    const numeric = cols.map((_, i) => i).filter((i) => i !== tcol && result.allRows.some((r) => typeof r[i] === 'number'));
    const keys = cols.map((_, i) => i).filter((i) => i !== tcol && !numeric.includes(i) && cols[i] !== '@ptr');
    const times = [...new Set(result.allRows.map((r) => parseResultTime(r[tcol])).filter((t): t is number => t !== null))].sort((a, b) => a - b);
    const index = new Map(times.map((t, i) => [t, i]));
    const lines = new Map<string, (number | null)[]>();
    for (const r of result.allRows) {
      const t = parseResultTime(r[tcol]);
      if (t === null) continue;
      const group = keys.map((k) => String(r[k] ?? '')).join(' / ');
      for (const n of numeric) {
        const label = group ? `${cols[n]} ${group}` : cols[n];
        let v = lines.get(label);
        if (!v) lines.set(label, (v = new Array(times.length).fill(null)));
        v[index.get(t)!] = num(r[n]);
      }
    }
    const series: ChartSeries[] = [...lines.entries()].slice(0, 10).map(([label, values]) => ({ label, values }));
    return { times, series };
  }, [result]);
  if (!chart || chart.series.length === 0) return null;
  return <Chart testId="visualization" title="Visualization" unit="count" timestamps={chart.times} series={chart.series} height={200} />;
}

function Results({ result }: { result: Result }) {
  const [open, setOpen] = useState<number | null>(null);
  const cols = result.columns;
  const ptrCol = cols.indexOf('@ptr');
  const shownCols = cols.map((c, i) => ({ c, i })).filter(({ c }) => c !== '@ptr');
  return (
    <section className="panel" aria-label="Results">
      <table className="grid results" data-testid="results">
        <thead>
          <tr>
            <th scope="col">
              <span className="sr-only">Expand</span>#
            </th>
            {shownCols.map(({ c }) => (
              <th scope="col" key={c}>
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {result.allRows.map((r, n) => (
            <ResultRow key={n} n={n} row={r} cols={shownCols} ptr={ptrCol >= 0 ? (r[ptrCol] as string) : null} open={open === n} onToggle={() => setOpen(open === n ? null : n)} />
          ))}
        </tbody>
      </table>
      {result.allRows.length === 0 && result.status === 'Complete' && <p className="muted">No rows match.</p>}
    </section>
  );
}

function ResultRow(props: { n: number; row: unknown[]; cols: { c: string; i: number }[]; ptr: string | null; open: boolean; onToggle: () => void }) {
  const record = useAsync(async (signal) => (props.open && props.ptr ? getRecord(props.ptr, signal) : null), [props.open, props.ptr]);
  const fallback = Object.fromEntries(props.cols.map(({ c, i }) => [c, props.row[i]]));
  return (
    <>
      <tr className={props.open ? 'open' : ''}>
        <td>
          <button type="button" className="expand" aria-expanded={props.open} aria-label={`Row ${props.n + 1}: show the whole event`} onClick={props.onToggle}>
            {props.open ? '▾' : '▸'} {props.n + 1}
          </button>
        </td>
        {props.cols.map(({ c, i }) => (
          <td key={c} className={c === '@message' ? 'message-cell' : undefined}>
            {cell(c, props.row[i])}
          </td>
        ))}
      </tr>
      {props.open && (
        <tr className="detail">
          <td colSpan={props.cols.length + 1}>
            {record.error && <p className="error">{record.error}</p>}
            <RecordView record={record.data ?? (props.ptr ? null : fallback)} loading={record.loading} />
          </td>
        </tr>
      )}
    </>
  );
}

function RecordView({ record, loading }: { record: Record<string, unknown> | null; loading: boolean }) {
  if (!record) return loading ? <p className="muted">Loading…</p> : null;
  const msg = typeof record['@message'] === 'string' ? asJson(record['@message'] as string) : null;
  return (
    <div className="record" data-testid="record">
      <JsonView value={record} />
      {msg !== null && (
        <>
          <h3 className="small">@message as JSON</h3>
          <JsonView value={msg} />
        </>
      )}
    </div>
  );
}

function cell(col: string, v: unknown): string {
  if (v === null || v === undefined) return '';
  if (col === '@timestamp' && typeof v === 'string') {
    const t = parseResultTime(v);
    return t === null ? v : formatTime(t);
  }
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(3);
  return typeof v === 'string' ? v : JSON.stringify(v);
}
