// Helpers around Logs Insights queries in the console: the pipeline's commands, the histogram
// query of a raw-events query, error positions in server messages, saved queries.

import { tokenize } from './highlight';

/** The commands of a query, split at top-level pipes (not inside strings or regexes). */
export function splitPipeline(query: string): string[] {
  const parts: string[] = [''];
  for (const t of tokenize(query)) {
    if (t.kind === 'pipe') parts.push('');
    else if (t.kind !== 'comment') parts[parts.length - 1] += t.text;
  }
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

export function commandOf(stage: string): string {
  return (/^[A-Za-z]+/.exec(stage)?.[0] ?? '').toLowerCase();
}

/**
 * The query counting the matching events per bin, for the histogram above the results of a
 * raw-events query; `null` when the query aggregates (then its own results are the chart).
 */
export function histogramQuery(query: string, binSeconds: number): string | null {
  const stages = splitPipeline(query);
  const cmds = stages.map(commandOf);
  if (cmds.some((c) => ['stats', 'pattern', 'diff', 'anomaly', 'dedup'].includes(c))) return null;
  const keep = stages.filter((_, i) => ['fields', 'filter', 'parse', 'unnest', 'filterindex', 'unmask'].includes(cmds[i]));
  return [...keep, `stats count(*) as events by bin(${binSeconds}s)`].join('\n| ');
}

export function histogramBin(rangeMs: number): number {
  const steps = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 86400];
  for (const s of steps) if (rangeMs / 1000 / s <= 100) return s;
  return 86400;
}

/** `line 2, column 14: …` in a server message → position and the rest. */
export function errorPosition(message: string): { line: number; column: number; message: string } | null {
  const m = /line (\d+), column (\d+):\s*(.*)$/s.exec(message);
  return m ? { line: Number(m[1]), column: Number(m[2]), message: m[3] } : null;
}

export interface SavedQuery {
  name: string;
  query: string;
  groups: string[];
  savedMs: number;
}

const KEY = 'kinsight.savedQueries';

/**
 * Saved queries live in this browser (localStorage): the server has no saved-query API, and a
 * query names log groups, not secrets, so there is nothing to protect by keeping them there.
 */
export function loadSaved(): SavedQuery[] {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? '[]');
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

export function saveQuery(q: SavedQuery): SavedQuery[] {
  const list = loadSaved().filter((x) => x.name !== q.name);
  list.push(q);
  list.sort((a, b) => a.name.localeCompare(b.name));
  localStorage.setItem(KEY, JSON.stringify(list));
  return list;
}

export function deleteSaved(name: string): SavedQuery[] {
  const list = loadSaved().filter((x) => x.name !== name);
  localStorage.setItem(KEY, JSON.stringify(list));
  return list;
}
