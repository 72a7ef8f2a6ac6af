// Restart forensics in the console (issue 18): the agent's ContainerRestart events of a
// cluster, a namespace or a pod (docs/agent.md, "Restart forensics"), and the memory of the
// container in the minutes before each restart, from its Container events.

import { q } from './dashboards';
import { histogramBin } from './insights';

/** What the Restarts view lists: a cluster, or one of its namespaces or pods. */
export interface RestartScope {
  cluster: string;
  ns?: string;
  /** `PodName`, as the pod dashboards name pods (a Deployment's pods share it). */
  pod?: string;
}

/** The columns of the list, in order. */
export const RESTART_FIELDS = ['FinishedAt', 'Namespace', 'PodName', 'FullPodName', 'ContainerName', 'RestartCount', 'Reason', 'ExitCode'] as const;

/** The newest restarts of a scope. */
export function restartsQuery(s: RestartScope, limit = 200): string {
  let filter = 'Type = "ContainerRestart"';
  if (s.ns) filter += ` and Namespace = ${q(s.ns)}`;
  if (s.pod) filter += ` and PodName = ${q(s.pod)}`;
  return `fields @timestamp, ${RESTART_FIELDS.join(', ')}\n| filter ${filter}\n| sort @timestamp desc\n| limit ${limit}`;
}

/** One restart as the list shows it. */
export interface RestartRow {
  ptr: string | null;
  /** When the instance ended (ms): the event's time. */
  at: number | null;
  namespace: string;
  pod: string;
  fullPod: string;
  container: string;
  restartCount: number | null;
  reason: string;
  exitCode: number | null;
}

function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

function numberOf(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

/** The rows of a {@link restartsQuery} answer. */
export function restartRows(columns: string[], rows: unknown[][], timeOf: (v: unknown) => number | null): RestartRow[] {
  const at = (name: string) => columns.indexOf(name);
  const col = (r: unknown[], name: string) => (at(name) >= 0 ? r[at(name)] : undefined);
  return rows.map((r) => ({
    ptr: at('@ptr') >= 0 ? str(col(r, '@ptr')) || null : null,
    at: timeOf(col(r, '@timestamp')),
    namespace: str(col(r, 'Namespace')),
    pod: str(col(r, 'PodName')),
    fullPod: str(col(r, 'FullPodName')),
    container: str(col(r, 'ContainerName')),
    restartCount: numberOf(col(r, 'RestartCount')),
    reason: str(col(r, 'Reason')),
    exitCode: numberOf(col(r, 'ExitCode')),
  }));
}

/** What the detail of a restart shows, from its whole event (`@message`). */
export interface RestartDetail {
  reason: string;
  exitCode: number | null;
  signal: number | null;
  message: string;
  startedAt: string;
  finishedAt: string;
  containerId: string;
  workingSetBefore: number | null;
  cpuBefore: number | null;
  memoryLimit: number | null;
  /** `null` when the agent read none (log collection off, the file gone). */
  lastLines: string[] | null;
}

export function restartDetail(event: Record<string, unknown>): RestartDetail {
  const lines = event.LastLogLines;
  return {
    reason: str(event.Reason),
    exitCode: numberOf(event.ExitCode),
    signal: numberOf(event.Signal),
    message: str(event.Message),
    startedAt: str(event.StartedAt),
    finishedAt: str(event.FinishedAt),
    containerId: str(event.ContainerId),
    workingSetBefore: numberOf(event.container_memory_working_set_before),
    cpuBefore: numberOf(event.container_cpu_usage_before),
    memoryLimit: numberOf(event.container_memory_limit),
    lastLines: Array.isArray(lines) ? lines.map(str) : null,
  };
}

/** The minutes before a restart that its memory chart covers, and a little after. */
export const BEFORE_MS = 15 * 60_000;
export const AFTER_MS = 2 * 60_000;

/** The memory chart's range and its query over the container's Container events. */
export function memoryBeforeQuery(r: Pick<RestartRow, 'at' | 'fullPod' | 'container'>): { start: number; end: number; bin: number; query: string } | null {
  if (r.at === null || !r.fullPod || !r.container) return null;
  const start = r.at - BEFORE_MS;
  const end = r.at + AFTER_MS;
  const bin = histogramBin(end - start);
  const query = `filter Type = "Container" and kubernetes.pod_name = ${q(r.fullPod)} and kubernetes.container_name = ${q(r.container)}
| stats max(container_memory_working_set) as working_set, max(container_memory_limit) as mem_limit by bin(${bin}s)
| sort @timestamp asc
| limit 10000`;
  return { start, end, bin, query };
}
