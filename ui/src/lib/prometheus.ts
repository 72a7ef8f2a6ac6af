// The server's Prometheus HTTP API (docs/api.md "Prometheus HTTP API"), for the metrics
// explorer (pages/Metrics.tsx): a typed client over `api()` (same bearer token, same 401
// handling; errors carry the server's `error` message), and PromQL completion — a tokenizer
// that never fails and a pure function that tells, at the cursor, whether a metric or
// function name, a label name or a label value is being typed, and what may go there.

import { ApiError, get } from './api';

// ---- Client ----------------------------------------------------------------------------------

export interface PromSample {
  /** Unix seconds (fractions for milliseconds). */
  t: number;
  /** The value as the server wrote it (`"42"`, `"NaN"`, `"+Inf"`). */
  v: string;
}
export interface PromVectorItem {
  metric: Record<string, string>;
  value: [number, string];
}
export interface PromMatrixItem {
  metric: Record<string, string>;
  values: [number, string][];
}
export type PromData =
  | { resultType: 'vector'; result: PromVectorItem[] }
  | { resultType: 'matrix'; result: PromMatrixItem[] }
  | { resultType: 'scalar'; result: [number, string] }
  | { resultType: 'string'; result: [number, string] };

export interface PromAnswer<T> {
  data: T;
  warnings: string[];
}

interface Envelope<T> {
  status: 'success' | 'error';
  data?: T;
  warnings?: string[];
  infos?: string[];
  errorType?: string;
  error?: string;
}

type Params = Record<string, string | number | string[] | undefined | null>;

/** `?a=1&match[]=x&match[]=y`, empty values left out. */
export function promQs(params: Params): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** Reads an answer's envelope: its data and warnings, or an Error with the server's message. */
export function unwrap<T>(env: Envelope<T> | undefined): PromAnswer<T> {
  if (!env || typeof env !== 'object') throw new Error('the server sent no answer');
  if (env.status !== 'success') {
    throw new ApiError(200, env.errorType ?? 'error', env.error ?? 'the query failed');
  }
  return { data: env.data as T, warnings: [...(env.warnings ?? []), ...(env.infos ?? [])] };
}

async function promGet<T>(path: string, params: Params, signal?: AbortSignal): Promise<PromAnswer<T>> {
  // GET: a server without a token refuses non-JSON POST bodies from browsers (docs/api.md).
  return unwrap(await get<Envelope<T>>(`/api/v1/${path}${promQs(params)}`, signal));
}

/** Epoch milliseconds as the API's unix seconds (millisecond precision). */
export const seconds = (ms: number) => (ms / 1000).toFixed(3).replace(/\.?0+$/, '');

export function instantQuery(query: string, timeMs: number, signal?: AbortSignal) {
  return promGet<PromData>('query', { query, time: seconds(timeMs) }, signal);
}

export function rangeQuery(query: string, startMs: number, endMs: number, stepSecs: number | string, signal?: AbortSignal) {
  return promGet<PromData>('query_range', { query, start: seconds(startMs), end: seconds(endMs), step: stepSecs }, signal);
}

export interface TimeWindow {
  startMs?: number;
  endMs?: number;
}

const windowParams = (w: TimeWindow = {}) => ({
  start: w.startMs === undefined ? undefined : seconds(w.startMs),
  end: w.endMs === undefined ? undefined : seconds(w.endMs),
});

/** Label names of the series matching `match` (all series without). */
export async function labelNames(match: string[] = [], w?: TimeWindow, signal?: AbortSignal): Promise<string[]> {
  return (await promGet<string[]>('labels', { 'match[]': match, ...windowParams(w) }, signal)).data ?? [];
}

/** A label's values over the series matching `match`. */
export async function labelValues(label: string, match: string[] = [], w?: TimeWindow, limit = 1000, signal?: AbortSignal): Promise<string[]> {
  const path = `label/${encodeURIComponent(label)}/values`;
  return (await promGet<string[]>(path, { 'match[]': match, ...windowParams(w), limit }, signal)).data ?? [];
}

/** Every metric name the store knows. */
export const metricNames = (w?: TimeWindow, signal?: AbortSignal) => labelValues('__name__', [], w, 10000, signal);

// ---- Results ---------------------------------------------------------------------------------

/** A sample value as a number: `NaN`, `+Inf`, `-Inf` included. */
export function sampleValue(v: string): number {
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

const IDENT = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** A label value inside double quotes, escaped as PromQL reads it. */
export function quote(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** `name{a="b",c="d"}` as Prometheus prints a series (`{…}` without a name). */
export function seriesLabel(metric: Record<string, string>): string {
  const name = metric.__name__;
  const rest = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}=${quote(metric[k])}`);
  if (name !== undefined && !IDENT.test(name)) rest.unshift(`__name__=${quote(name)}`);
  const head = name !== undefined && IDENT.test(name) ? name : '';
  return rest.length || !head ? `${head}{${rest.join(',')}}` : head;
}

/** The selector of one metric name (`{__name__="…"}` for names PromQL cannot spell). */
export function metricSelector(name: string): string {
  return IDENT.test(name) ? name : `{__name__=${quote(name)}}`;
}

/** A range query's matrix as chart columns: shared timestamps (ms) and one value array per series. */
export function matrixToColumns(result: PromMatrixItem[]): { timestamps: number[]; series: { label: string; values: (number | null)[] }[] } {
  const times = new Set<number>();
  for (const s of result) for (const [t] of s.values) times.add(Math.round(t * 1000));
  const timestamps = [...times].sort((a, b) => a - b);
  const index = new Map(timestamps.map((t, i) => [t, i]));
  const series = result.map((s) => {
    const values: (number | null)[] = new Array(timestamps.length).fill(null);
    for (const [t, v] of s.values) {
      const x = sampleValue(v);
      values[index.get(Math.round(t * 1000))!] = Number.isFinite(x) ? x : null;
    }
    return { label: seriesLabel(s.metric), values };
  });
  return { timestamps, series };
}

/** Prometheus's "auto" step: about 250 points over the range, a round number, 15 s at least. */
export function autoStep(rangeMs: number): number {
  const raw = rangeMs / 1000 / 250;
  const nice = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  for (const s of nice) if (s >= raw) return s;
  return Math.ceil(raw / 86400) * 86400;
}

/** Seconds as a short duration: `15s`, `5m`, `1h30m`. */
export function formatStep(secs: number): string {
  if (!Number.isFinite(secs) || secs <= 0) return String(secs);
  if (!Number.isInteger(secs)) return `${secs}s`;
  const units: [string, number][] = [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ];
  let out = '';
  let left = secs;
  for (const [u, n] of units) {
    if (left >= n) {
      out += `${Math.floor(left / n)}${u}`;
      left %= n;
    }
  }
  return out;
}

// ---- PromQL tokens ---------------------------------------------------------------------------

export type PromTokenKind = 'ident' | 'string' | 'number' | 'duration' | 'comment' | 'op' | 'punct' | 'space' | 'text';

export interface PromToken {
  kind: PromTokenKind;
  text: string;
  start: number;
  end: number;
  /** Strings: whether the closing quote is there. */
  closed?: boolean;
}

/** Splits PromQL into tokens covering all of `src`, whatever it holds. */
export function tokenizePromql(src: string): PromToken[] {
  const out: PromToken[] = [];
  let i = 0;
  const push = (kind: PromTokenKind, text: string, closed?: boolean) => {
    out.push({ kind, text, start: i, end: i + text.length, ...(closed === undefined ? {} : { closed }) });
    i += text.length;
  };
  while (i < src.length) {
    const c = src[i];
    const rest = src.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^\s+/.exec(rest))) push('space', m[0]);
    else if (c === '#') {
      const nl = src.indexOf('\n', i);
      push('comment', nl < 0 ? rest : src.slice(i, nl));
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      j = Math.min(j, src.length);
      const closed = src[j] === c;
      push('string', src.slice(i, closed ? j + 1 : j), closed);
    } else if (c === '`') {
      const end = src.indexOf('`', i + 1);
      push('string', end < 0 ? rest : src.slice(i, end + 1), end >= 0);
    } else if ((m = /^(?:\d+(?:ms|[smhdwy]))+(?![\w.])/.exec(rest))) push('duration', m[0]);
    else if ((m = /^(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/.exec(rest))) push('number', m[0]);
    else if ((m = /^[a-zA-Z_][a-zA-Z0-9_:]*/.exec(rest))) push('ident', m[0]);
    else if ((m = /^(?:=~|!~|!=|==|>=|<=|[=<>+\-*/%^@])/.exec(rest))) push('op', m[0]);
    else if (/[(){}[\],:]/.test(c)) push('punct', c);
    else push('text', c);
  }
  return out;
}

export const AGGREGATIONS = ['sum', 'avg', 'min', 'max', 'count', 'group', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values'];

/** The functions kinsight's PromQL engine evaluates (crates/promql/src/lib.rs). */
export const FUNCTIONS = [
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'avg_over_time', 'ceil', 'changes',
  'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh', 'count_over_time', 'day_of_month', 'day_of_week', 'day_of_year',
  'days_in_month', 'deg', 'delta', 'deriv', 'exp', 'floor', 'histogram_quantile', 'hour', 'idelta', 'increase', 'irate',
  'label_join', 'label_replace', 'last_over_time', 'ln', 'log10', 'log2', 'max_over_time', 'min_over_time', 'minute', 'month',
  'pi', 'predict_linear', 'present_over_time', 'quantile_over_time', 'rad', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sin',
  'sinh', 'sort', 'sort_desc', 'sqrt', 'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh', 'time',
  'timestamp', 'vector', 'year',
];

/** Words that follow an operand. */
export const KEYWORDS = ['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'atan2'];

const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORD_SET = new Set(KEYWORDS);
const AGG_SET = new Set(AGGREGATIONS);
const MATCH_OPS = new Set(['=', '!=', '=~', '!~']);
/** After these an operand (a metric, a function call) comes. */
const BINARY_WORDS = new Set(['and', 'or', 'unless', 'bool', 'atan2']);

export type IdentRole = 'metric' | 'function' | 'keyword' | 'label' | 'number' | 'other';

interface Frame {
  open: '(' | '{' | '[';
  /** Index of the opening token. */
  at: number;
  /** `(`: a function call, a `by (…)`-style label list, or plain grouping. */
  paren?: 'call' | 'grouping' | 'plain';
  /** `{`: the metric name before it. */
  metric?: string;
}

interface Analysis {
  /** Role of each ident token (by index). */
  roles: Map<number, IdentRole>;
  /** Open brackets before token `limit`, innermost last. */
  stack: Frame[];
  /** Index of the matching closer of each opener (only those closed before `limit`). */
  closer: Map<number, number>;
}

const significant = (t: PromToken) => t.kind !== 'space' && t.kind !== 'comment';

function nextSig(toks: PromToken[], i: number): number {
  for (let k = i + 1; k < toks.length; k++) if (significant(toks[k])) return k;
  return -1;
}
function prevSig(toks: PromToken[], i: number): number {
  for (let k = i - 1; k >= 0; k--) if (significant(toks[k])) return k;
  return -1;
}

/** Walks tokens `0..limit`, telling what each identifier is and which brackets are open. */
function analyse(toks: PromToken[], limit = toks.length): Analysis {
  const roles = new Map<number, IdentRole>();
  const stack: Frame[] = [];
  const closer = new Map<number, number>();
  for (let i = 0; i < limit; i++) {
    const t = toks[i];
    const top = stack[stack.length - 1];
    if (t.kind === 'ident') {
      const lower = t.text.toLowerCase();
      const n = nextSig(toks, i);
      const next = n >= 0 ? toks[n] : undefined;
      let role: IdentRole;
      if (top?.open === '{') role = lower === 'or' ? 'keyword' : 'label';
      else if (top?.open === '(' && top.paren === 'grouping') role = 'label';
      else if (top?.open === '[') role = 'other';
      else if (KEYWORD_SET.has(lower)) role = 'keyword';
      else if (next?.text === '(') role = 'function';
      else if (AGG_SET.has(lower) && next?.kind === 'ident' && (next.text.toLowerCase() === 'by' || next.text.toLowerCase() === 'without')) role = 'function';
      else if (lower === 'inf' || lower === 'nan') role = 'number';
      else role = 'metric';
      roles.set(i, role);
    } else if (t.kind === 'punct') {
      if (t.text === '{') {
        const p = prevSig(toks, i);
        const metric = p >= 0 && roles.get(p) === 'metric' ? toks[p].text : undefined;
        stack.push({ open: '{', at: i, metric });
      } else if (t.text === '(') {
        const p = prevSig(toks, i);
        const role = p >= 0 ? roles.get(p) : undefined;
        const paren = role === 'keyword' && GROUPING.has(toks[p].text.toLowerCase()) ? 'grouping' : role === 'function' ? 'call' : 'plain';
        stack.push({ open: '(', at: i, paren });
      } else if (t.text === '[') stack.push({ open: '[', at: i });
      else if (t.text === ')' || t.text === '}' || t.text === ']') {
        const want = t.text === ')' ? '(' : t.text === '}' ? '{' : '[';
        const k = stack.map((f) => f.open).lastIndexOf(want);
        if (k >= 0) {
          closer.set(stack[k].at, i);
          stack.length = k;
        }
      }
    }
  }
  return { roles, stack, closer };
}

/** Each token with how to colour it (for the editor's highlighted copy). */
export function highlightPromql(src: string): { text: string; cls: string }[] {
  const toks = tokenizePromql(src);
  const { roles } = analyse(toks);
  return toks.map((t, i) => {
    let cls = 'text';
    if (t.kind === 'ident') {
      const r = roles.get(i);
      cls = r === 'metric' ? 'field' : r === 'label' ? 'label' : r === 'number' ? 'number' : r === 'other' ? 'text' : r!;
    } else if (t.kind === 'string') cls = 'string';
    else if (t.kind === 'number' || t.kind === 'duration') cls = 'number';
    else if (t.kind === 'comment') cls = 'comment';
    else if (t.kind === 'op') cls = 'operator';
    return { text: t.text, cls };
  });
}

// ---- Completion ------------------------------------------------------------------------------

export type PromContext =
  /** An operand: a metric name or a function / aggregation. */
  | { kind: 'metric' }
  /** After an operand: a binary operator word, `by`, `offset`, … */
  | { kind: 'keyword' }
  /** A label name inside `{…}` or `by (…)`; `metric` is the selector's metric if known. */
  | { kind: 'label'; metric?: string; used: string[] }
  /** A label matcher's value; `quote` is the opening quote typed (none yet: ''). */
  | { kind: 'value'; metric?: string; label: string; op: string; quote: string; closed: boolean }
  | { kind: 'none' };

export interface PromCursor {
  context: PromContext;
  /** What was typed of the word at the cursor (up to the cursor). */
  prefix: string;
  /** The text a completion replaces. */
  from: number;
  to: number;
}

/** Which names may be typed at `cursor` of `text`, and which stretch a choice replaces. */
export function promqlContext(text: string, cursor: number): PromCursor {
  const toks = tokenizePromql(text);
  const none: PromCursor = { context: { kind: 'none' }, prefix: '', from: cursor, to: cursor };
  const at = toks.findIndex((t) => t.start < cursor && cursor <= t.end);
  const tok = at >= 0 ? toks[at] : undefined;

  // Inside a string: a label value, if the string is a matcher's.
  if (tok?.kind === 'string' && (cursor < tok.end || !tok.closed)) {
    const { stack } = analyse(toks, at);
    const frame = stack[stack.length - 1];
    const op = prevSig(toks, at);
    const name = op >= 0 ? prevSig(toks, op) : -1;
    if (frame?.open !== '{' || op < 0 || !MATCH_OPS.has(toks[op].text) || name < 0 || toks[name].kind !== 'ident') return none;
    const to = tok.closed ? tok.end - 1 : tok.end;
    return {
      context: {
        kind: 'value',
        metric: selectorMetric(toks, frame),
        label: toks[name].text,
        op: toks[op].text,
        quote: tok.text[0],
        closed: !!tok.closed,
      },
      prefix: text.slice(tok.start + 1, cursor),
      from: tok.start + 1,
      to: Math.max(to, cursor),
    };
  }
  if (tok && (tok.kind === 'comment' || tok.kind === 'string' || tok.kind === 'number' || tok.kind === 'duration')) return none;

  const word = tok?.kind === 'ident' ? tok : undefined;
  const from = word ? word.start : cursor;
  const to = word ? word.end : cursor;
  const prefix = text.slice(from, cursor);
  const before = word ? at : toks.findIndex((t) => t.start >= cursor);
  const limit = before < 0 ? toks.length : before;
  const { stack } = analyse(toks, limit);
  const frame = stack[stack.length - 1];
  const here = (context: PromContext): PromCursor => ({ context, prefix, from, to });

  // The significant tokens since the innermost opener's last `,` (or `or` in braces).
  const segment = (f: Frame) => {
    const seg: PromToken[] = [];
    for (let k = f.at + 1; k < limit; k++) {
      const t = toks[k];
      if (!significant(t)) continue;
      if (t.text === ',' || (f.open === '{' && t.kind === 'ident' && t.text === 'or')) seg.length = 0;
      else seg.push(t);
    }
    return seg;
  };

  if (frame?.open === '[') return none;
  if (frame?.open === '{') {
    const seg = segment(frame);
    const metric = selectorMetric(toks, frame);
    if (seg.length === 0) return here({ kind: 'label', metric, used: usedLabels(toks, frame, limit) });
    if (seg.length === 2 && seg[0].kind === 'ident' && MATCH_OPS.has(seg[1].text)) {
      return here({ kind: 'value', metric, label: seg[0].text, op: seg[1].text, quote: '', closed: false });
    }
    return none;
  }
  if (frame?.open === '(' && frame.paren === 'grouping') {
    if (segment(frame).length !== 0) return none;
    const used = [];
    for (let k = frame.at + 1; k < limit; k++) if (toks[k].kind === 'ident') used.push(toks[k].text);
    return here({ kind: 'label', metric: groupingMetric(toks, frame.at), used });
  }

  const p = prevSig(toks, limit);
  const prev = p >= 0 ? toks[p] : undefined;
  if (!prev || prev.text === '(' || prev.text === ',') return here({ kind: 'metric' });
  if (prev.kind === 'op') return prev.text === '@' ? none : here({ kind: 'metric' });
  if (prev.kind === 'ident') {
    const lower = prev.text.toLowerCase();
    if (lower === 'offset') return none;
    if (BINARY_WORDS.has(lower)) return here({ kind: 'metric' });
  }
  // After an operand (or an aggregation's name): `by`, `and`, `offset`, …, once a word is begun.
  return prefix ? here({ kind: 'keyword' }) : none;
}

/** The metric of the selector whose braces `frame` opened: before `{`, or its `__name__="…"`. */
function selectorMetric(toks: PromToken[], frame: Frame): string | undefined {
  if (frame.metric) return frame.metric;
  for (let k = frame.at + 1; k < toks.length; k++) {
    const t = toks[k];
    if (t.text === '}') break;
    if (t.kind === 'ident' && t.text === '__name__') {
      const op = nextSig(toks, k);
      const v = op >= 0 ? nextSig(toks, op) : -1;
      if (op >= 0 && toks[op].text === '=' && v >= 0 && toks[v].kind === 'string' && toks[v].closed) return unquote(toks[v].text);
    }
  }
  return undefined;
}

/** Label names matched elsewhere in the same braces (not the word at `skip`, being typed). */
function usedLabels(toks: PromToken[], frame: Frame, skip: number): string[] {
  const used: string[] = [];
  for (let k = frame.at + 1; k < toks.length; k++) {
    const t = toks[k];
    if (t.text === '}') break;
    if (k === skip) continue;
    const n = nextSig(toks, k);
    if (t.kind === 'ident' && n >= 0 && MATCH_OPS.has(toks[n].text)) used.push(t.text);
  }
  return used;
}

/** The metric a `by (…)` / `on (…)` list is about: the first metric of the aggregated expression. */
function groupingMetric(toks: PromToken[], open: number): string | undefined {
  const { roles, closer } = analyse(toks);
  const firstMetric = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (roles.get(k) === 'metric') return toks[k].text;
    return undefined;
  };
  const kw = prevSig(toks, open);
  const before = kw >= 0 ? prevSig(toks, kw) : -1;
  const keyword = kw >= 0 ? toks[kw].text.toLowerCase() : '';
  if ((keyword === 'by' || keyword === 'without') && before >= 0) {
    if (toks[before].text === ')') {
      // `sum(x) by (` — the aggregation's argument precedes.
      for (const [o, c] of closer) if (c === before) return firstMetric(o + 1, c) ?? firstMetric(0, toks.length);
    } else if (roles.get(before) === 'function') {
      // `sum by (…) (x)` — it follows the label list.
      const end = closer.get(open);
      const argOpen = end !== undefined ? nextSig(toks, end) : -1;
      if (argOpen >= 0 && toks[argOpen].text === '(') return firstMetric(argOpen + 1, closer.get(argOpen) ?? toks.length);
    }
  }
  return firstMetric(0, toks.length);
}

function unquote(s: string): string {
  const q = s[0];
  const body = s.slice(1, s.endsWith(q) && s.length > 1 ? -1 : undefined);
  if (q === '`') return body;
  return body.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c));
}

export type CompletionKind = 'metric' | 'function' | 'aggregation' | 'keyword' | 'label' | 'value';

export interface Completion {
  /** What the list shows. */
  label: string;
  /** What replaces `from..to`. */
  insert: string;
  kind: CompletionKind;
}

export interface Catalogue {
  metrics: string[];
  /** Label names by metric (`''`: any metric), as fetched so far. */
  labels: Map<string, string[]>;
  /** Label values by `valuesKey(metric, label)`, as fetched so far. */
  values: Map<string, string[]>;
}

export const valuesKey = (metric: string | undefined, label: string) => `${metric ?? ''}\u0000${label}`;

export interface CompletionResult extends PromCursor {
  items: Completion[];
}

/** At most this many candidates are returned. */
export const MAX_COMPLETIONS = 100;

/**
 * Candidates starting with `prefix` (case-insensitively), then, from three characters typed,
 * those containing it (`memory` finds `node_memory_utilization`).
 */
export function filterByPrefix<T>(items: T[], prefix: string, key: (t: T) => string): T[] {
  const p = prefix.toLowerCase();
  if (!p) return items.slice();
  const starts: T[] = [];
  const contains: T[] = [];
  for (const it of items) {
    const k = key(it).toLowerCase();
    if (k.startsWith(p)) starts.push(it);
    else if (p.length >= 3 && k.includes(p)) contains.push(it);
  }
  return [...starts, ...contains];
}

const REGEX_SPECIAL = /[\\.+*?()|[\]{}^$]/g;

/** The completions at `cursor`: what fits there, filtered by what was typed of it. */
export function promqlCompletions(text: string, cursor: number, catalogue: Catalogue): CompletionResult {
  const at = promqlContext(text, cursor);
  const c = at.context;
  const after = text.slice(at.to);
  let items: Completion[] = [];
  if (c.kind === 'metric') {
    const paren = /^\s*\(/.test(after) ? '' : '(';
    const metrics = catalogue.metrics.map((m): Completion => ({ label: m, insert: metricSelector(m), kind: 'metric' }));
    const aggs = AGGREGATIONS.map((f): Completion => ({ label: f, insert: f + paren, kind: 'aggregation' }));
    const fns = FUNCTIONS.map((f): Completion => ({ label: f, insert: f + paren, kind: 'function' }));
    items = filterByPrefix([...metrics, ...aggs, ...fns], at.prefix, (x) => x.label);
  } else if (c.kind === 'keyword') {
    items = filterByPrefix(
      KEYWORDS.map((k): Completion => ({ label: k, insert: k, kind: 'keyword' })),
      at.prefix,
      (x) => x.label,
    ).filter((x) => x.label !== at.prefix);
  } else if (c.kind === 'label') {
    const names = catalogue.labels.get(c.metric ?? '') ?? [];
    const used = new Set(c.used);
    items = filterByPrefix(
      names.filter((n) => !used.has(n)).map((n): Completion => ({ label: n, insert: n, kind: 'label' })),
      at.prefix,
      (x) => x.label,
    );
  } else if (c.kind === 'value') {
    const values = catalogue.values.get(valuesKey(c.metric, c.label)) ?? [];
    const regex = c.op === '=~' || c.op === '!~';
    items = filterByPrefix(values, at.prefix, (v) => v).map((v): Completion => {
      const raw = regex ? v.replace(REGEX_SPECIAL, '\\$&') : v;
      let insert: string;
      if (!c.quote) insert = quote(raw);
      else if (c.quote === '`') insert = raw + (c.closed ? '' : '`');
      else {
        const q = c.quote;
        const body = raw.replace(/\\/g, '\\\\').replace(new RegExp(q, 'g'), `\\${q}`).replace(/\n/g, '\\n');
        insert = body + (c.closed ? '' : q);
      }
      return { label: v, insert, kind: 'value' };
    });
  }
  return { ...at, items: items.slice(0, MAX_COMPLETIONS) };
}

/** `text` with a completion accepted: the new text and where the cursor goes. */
export function applyCompletion(text: string, r: Pick<CompletionResult, 'from' | 'to' | 'context'>, c: Completion): { text: string; cursor: number } {
  const next = text.slice(0, r.from) + c.insert + text.slice(r.to);
  let cursor = r.from + c.insert.length;
  // A value replaces the rest of a closed string's content: the cursor steps over the quote.
  if (r.context.kind === 'value' && r.context.closed) cursor += 1;
  return { text: next, cursor: Math.min(cursor, next.length) };
}
