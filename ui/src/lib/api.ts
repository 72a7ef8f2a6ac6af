// The native API (docs/api.md), typed for what the console uses. Every call sends the stored
// bearer token; errors carry the server's `{code, message}` (or, under /api/v1, Prometheus's
// `{errorType, error}`).

import { storedToken } from './auth';

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();
/** Called when the server answers 401: the console goes back to the sign-in page. */
export function onUnauthorized(l: Listener): () => void {
  unauthorizedListeners.add(l);
  return () => unauthorizedListeners.delete(l);
}

export function authHeaders(token = storedToken()): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function api<T>(
  method: string,
  path: string,
  body?: unknown,
  opts: { signal?: AbortSignal; token?: string | null; quiet401?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = authHeaders(opts.token === undefined ? storedToken() : opts.token);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'NetworkError', `cannot reach the kinsight server: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let code = `HTTP${res.status}`;
    let message = text.slice(0, 300) || res.statusText;
    try {
      const v = JSON.parse(text);
      if (v && typeof v.code === 'string') {
        code = v.code;
        message = v.message ?? message;
      } else if (v && v.status === 'error' && typeof v.error === 'string') {
        // Prometheus's envelope (/api/v1, src/lib/prometheus.ts).
        code = typeof v.errorType === 'string' ? v.errorType : code;
        message = v.error;
      }
    } catch {
      /* not JSON */
    }
    if (res.status === 401 && !opts.quiet401) unauthorizedListeners.forEach((l) => l());
    throw new ApiError(res.status, code, message);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => api<T>('GET', path, undefined, { signal });
export const post = <T>(path: string, body: unknown, signal?: AbortSignal) => api<T>('POST', path, body, { signal });

export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

// ---- Log groups, streams, events -------------------------------------------------------------

export interface GroupInfo {
  name: string;
  createdMs: number;
  retentionDays: number | null;
  storedBytes: number;
  unflushedBytes: number;
  firstEventMs: number | null;
  lastEventMs: number | null;
  streamCount: number;
}
export interface StreamInfo {
  name: string;
  createdMs: number;
  firstEventMs: number | null;
  lastEventMs: number | null;
}
export interface StoredEvent {
  timestamp: number;
  ingestionTime: number;
  logStreamName: string;
  message: string;
  id: number;
}

export async function listGroups(prefix?: string, signal?: AbortSignal): Promise<GroupInfo[]> {
  const out: GroupInfo[] = [];
  let next: string | undefined;
  do {
    const page = await get<{ groups: GroupInfo[]; next?: string }>(`/v1/groups${qs({ prefix, limit: 1000, next })}`, signal);
    out.push(...page.groups);
    next = page.next;
  } while (next && out.length < 10000);
  return out;
}

export function listStreams(group: string, signal?: AbortSignal) {
  return get<{ streams: StreamInfo[]; next?: string }>(
    `/v1/streams${qs({ group, orderBy: 'LastEventTime', descending: true, limit: 200 })}`,
    signal,
  );
}

export function readEvents(group: string, stream: string | undefined, limit: number, signal?: AbortSignal) {
  return get<{ events: StoredEvent[]; seq: number | null }>(
    `/v1/events${qs({ group, stream, limit, direction: 'backward' })}`,
    signal,
  );
}

// ---- Metrics ----------------------------------------------------------------------------------

export interface Dimension {
  Name: string;
  Value?: string;
}
export interface MetricQuery {
  Namespace: string;
  MetricName: string;
  Dimensions: Dimension[];
  Statistic: string;
  Period: number;
  StartTime: number;
  EndTime: number;
  ExactDimensions?: boolean;
  MaxSeries?: number;
}
export interface Series {
  Label: string;
  MetricName: string;
  Dimensions: { Name: string; Value: string }[];
  Unit: string | null;
  Values: (number | null)[];
}
export interface MetricResult {
  Statistic: string;
  Period: number;
  Timestamps: number[];
  Series: Series[];
  Truncated: boolean;
  Messages: string[];
}
export interface MetricInfo {
  Namespace: string;
  MetricName: string;
  Dimensions: { Name: string; Value: string }[];
  Unit: string | null;
}

export const queryMetric = (q: MetricQuery, signal?: AbortSignal) => post<MetricResult>('/v1/metrics/query', q, signal);
export const listMetrics = (q: { Namespace?: string; MetricName?: string; Dimensions?: Dimension[]; Limit?: number }, signal?: AbortSignal) =>
  post<{ Metrics: MetricInfo[]; Truncated: boolean }>('/v1/metrics/list', q, signal);

// ---- Queries ----------------------------------------------------------------------------------

export type QueryStatus = 'Scheduled' | 'Running' | 'Complete' | 'Failed' | 'Cancelled' | 'Timeout';
export interface QueryResultPage {
  queryId: string;
  status: QueryStatus;
  columns: string[];
  rows: unknown[][];
  rowsFrom: number;
  totalRows: number;
  statistics: { recordsMatched: number; recordsScanned: number; bytesScanned: number };
  warnings?: string[];
  error?: { code: string; message: string };
}
export interface QueryCheck {
  valid: boolean;
  warnings?: string[];
  line?: number;
  column?: number;
  message?: string;
  expected?: string[];
}

export const startQuery = (
  body: { groups: string[]; start: number; end: number; query: string; language?: string; limit?: number },
  signal?: AbortSignal,
) => post<{ queryId: string }>('/v1/queries', body, signal);
export const pollQuery = (id: string, rowsFrom: number, signal?: AbortSignal) =>
  get<QueryResultPage>(`/v1/queries/${encodeURIComponent(id)}${qs({ rowsFrom })}`, signal);
export const stopQuery = (id: string) => post<{ stopped: boolean }>(`/v1/queries/${encodeURIComponent(id)}/stop`, {});
export const checkQuery = (query: string, signal?: AbortSignal) =>
  post<QueryCheck>('/v1/queries/check', { query, language: 'insights' }, signal);
export const getRecord = (ptr: string, signal?: AbortSignal) => get<Record<string, unknown>>(`/v1/records${qs({ ptr })}`, signal);

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new DOMException('aborted', 'AbortError'));
    });
  });

/**
 * Runs a query to the end, calling `onProgress` with the rows and statistics so far. Polls
 * fast at first (most queries finish in milliseconds), then every 250 ms. Stops the query
 * when `signal` aborts.
 */
export async function runQuery(
  body: { groups: string[]; start: number; end: number; query: string; limit?: number },
  signal?: AbortSignal,
  onProgress?: (p: QueryResultPage & { allRows: unknown[][] }) => void,
): Promise<QueryResultPage & { allRows: unknown[][] }> {
  const { queryId } = await startQuery(body, signal);
  const rows: unknown[][] = [];
  let delay = 15;
  const abort = () => void stopQuery(queryId).catch(() => undefined);
  signal?.addEventListener('abort', abort);
  try {
    for (;;) {
      const page = await pollQuery(queryId, rows.length, signal);
      rows.push(...page.rows);
      const p = { ...page, allRows: rows };
      onProgress?.(p);
      // An answer holds at most a few MiB of rows: read on until all of them are here.
      if (rows.length < page.totalRows && page.rows.length > 0) continue;
      if (page.status !== 'Running' && page.status !== 'Scheduled') return p;
      await sleep(delay, signal);
      delay = Math.min(250, delay * 2);
    }
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

// ---- Alarms -----------------------------------------------------------------------------------

export interface MetricAlarm {
  AlarmName: string;
  AlarmDescription?: string | null;
  StateValue: 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
  StateReason: string;
  StateUpdatedTimestamp: string;
  AlarmConfigurationUpdatedTimestamp?: string;
  ActionsEnabled: boolean;
  OKActions: string[];
  AlarmActions: string[];
  InsufficientDataActions: string[];
  MetricName: string;
  Namespace: string;
  Statistic?: string;
  ExtendedStatistic?: string;
  EvaluateLowSampleCountPercentile?: string;
  Dimensions: { Name: string; Value: string }[];
  Period: number;
  Unit?: string | null;
  EvaluationPeriods: number;
  DatapointsToAlarm?: number;
  Threshold: number;
  ComparisonOperator: string;
  TreatMissingData?: string;
  SeriesStates?: { Dimensions: { Name: string; Value: string }[]; StateValue: string; StateReason?: string }[];
}
export interface AlarmHistoryItem {
  AlarmName: string;
  Timestamp: string;
  HistoryItemType: string;
  HistorySummary: string;
  HistoryData?: string;
}

export const listAlarms = (signal?: AbortSignal) => get<{ MetricAlarms: MetricAlarm[] }>('/v1/alarms', signal);
export const putAlarm = (a: Record<string, unknown>) => api<MetricAlarm>('PUT', '/v1/alarms', a);
export const deleteAlarm = (name: string) => api<{ Deleted: string }>('DELETE', `/v1/alarm${qs({ name })}`);
export const alarmHistory = (name: string, signal?: AbortSignal) =>
  get<{ AlarmHistoryItems: AlarmHistoryItem[] }>(`/v1/alarm/history${qs({ name, limit: 100 })}`, signal);
export const installPack = (body: { ClusterName: string; Prefix?: string; AlarmActions?: string[]; OKActions?: string[] }) =>
  post<{ Installed: MetricAlarm[] }>('/v1/alarms/packs/kubernetes', body);
