// Relative ranges (the last 15 minutes, hour, …) and absolute ones (two local date-times), and
// auto refresh. The range lives in the URL's `range` parameter.

import { useState } from 'react';
import { RELATIVE, describeRange, fromLocalInput, isRelative, resolveRange, toLocalInput } from '../lib/time';

export const REFRESH = [
  { ms: 0, label: 'Off' },
  { ms: 10_000, label: '10 s' },
  { ms: 30_000, label: '30 s' },
  { ms: 60_000, label: '1 min' },
  { ms: 300_000, label: '5 min' },
];

export function TimeRangePicker(props: {
  range: string;
  onRange: (r: string) => void;
  refreshMs?: number;
  onRefreshMs?: (ms: number) => void;
  onRefreshNow?: () => void;
}) {
  const [custom, setCustom] = useState(false);
  const r = resolveRange(props.range);
  const [from, setFrom] = useState(toLocalInput(r.start));
  const [to, setTo] = useState(toLocalInput(r.end));
  const relative = isRelative(props.range);
  return (
    <div className="timerange" role="group" aria-label="Time range">
      <div className="seg">
        {RELATIVE.map((x) => (
          <button
            key={x}
            type="button"
            className={relative && (props.range || '1h') === x ? 'on' : ''}
            aria-pressed={relative && (props.range || '1h') === x}
            onClick={() => {
              setCustom(false);
              props.onRange(x);
            }}
          >
            {x}
          </button>
        ))}
        <button type="button" className={!relative || custom ? 'on' : ''} aria-expanded={custom} onClick={() => setCustom(!custom)}>
          {relative ? 'Custom' : describeRange(props.range)}
        </button>
      </div>
      {custom && (
        <form
          className="custom-range"
          onSubmit={(e) => {
            e.preventDefault();
            const a = fromLocalInput(from);
            const b = fromLocalInput(to);
            if (a !== null && b !== null && b > a) {
              props.onRange(`${a}-${b}`);
              setCustom(false);
            }
          }}
        >
          <label>
            From <input type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} required />
          </label>
          <label>
            To <input type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} required />
          </label>
          <button type="submit">Apply</button>
        </form>
      )}
      {props.onRefreshMs && (
        <label className="refresh">
          Auto refresh{' '}
          <select value={props.refreshMs ?? 0} onChange={(e) => props.onRefreshMs!(Number(e.target.value))}>
            {REFRESH.map((o) => (
              <option key={o.ms} value={o.ms}>
                {o.label}
              </option>
            ))}
          </select>
        </label>
      )}
      {props.onRefreshNow && (
        <button type="button" onClick={props.onRefreshNow} title="Refresh now" aria-label="Refresh now">
          ↻
        </button>
      )}
    </div>
  );
}
