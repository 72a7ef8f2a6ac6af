import { describe, expect, it } from 'vitest';
import { offsetOf, tokenize } from './highlight';
import { errorPosition, histogramQuery, splitPipeline } from './insights';
import { adoptTokenFromUrl, storedToken } from './auth';
import { clustersOf, linesOf, logsQueryFor, rowsFromInsights, sumSeries, tableFor } from './dashboards';
import { joinSeries } from './tableData';
import { parseSse } from './tail';
import { parseResultTime, periodFor, resolveRange } from './time';
import { formatValue } from './format';
import type { MetricResult } from './api';

describe('Logs Insights highlighting', () => {
  it('covers every character and tells commands, fields, strings, regexes and functions apart', () => {
    const q = 'filter Type = "Pod" and log like /err|panic/\n| stats avg(pod_cpu_utilization) as cpu by bin(5m)\n# done';
    const toks = tokenize(q);
    expect(toks.map((t) => t.text).join('')).toBe(q);
    const kind = (text: string) => toks.find((t) => t.text === text)?.kind;
    expect(kind('filter')).toBe('command');
    expect(kind('stats')).toBe('command');
    expect(kind('Type')).toBe('field');
    expect(kind('"Pod"')).toBe('string');
    expect(kind('/err|panic/')).toBe('regex');
    expect(kind('avg')).toBe('function');
    expect(kind('as')).toBe('keyword');
    expect(kind('5m')).toBe('number');
    expect(kind('# done')).toBe('comment');
    // A `|` inside the regex is not a pipe.
    expect(toks.filter((t) => t.kind === 'pipe')).toHaveLength(1);
  });

  it('divides after an operand is division, not a regex', () => {
    const toks = tokenize('fields a / 2 as half');
    expect(toks.some((t) => t.kind === 'regex')).toBe(false);
  });

  it('maps the server’s line and column to an offset', () => {
    expect(offsetOf('ab\ncde', 2, 2)).toBe(4);
    expect(offsetOf('ab', 1, 1)).toBe(0);
  });
});

describe('the histogram query of a raw-events query', () => {
  it('keeps the filters, drops sort/limit, counts by bin', () => {
    const q = 'fields @timestamp, log\n| filter log like /a|b/ and x = "|"\n| sort @timestamp desc\n| limit 20';
    expect(splitPipeline(q)).toHaveLength(4);
    expect(histogramQuery(q, 60)).toBe('fields @timestamp, log\n| filter log like /a|b/ and x = "|"\n| stats count(*) as events by bin(60s)');
  });
  it('is absent for aggregations', () => {
    expect(histogramQuery('stats count() by bin(1m)', 60)).toBeNull();
  });
  it('reads positions out of MalformedQuery messages', () => {
    expect(errorPosition("line 2, column 14: expected an expression, found '|'")).toEqual({ line: 2, column: 14, message: "expected an expression, found '|'" });
  });
});

describe('sign-in from the address bar', () => {
  it('stores ?token= and removes it, keeping the other parameters', () => {
    history.replaceState(null, '', '/dashboards?token=s3cret-token&level=node#x');
    expect(adoptTokenFromUrl()).toBe(true);
    expect(storedToken()).toBe('s3cret-token');
    expect(window.location.search).toBe('?level=node');
    expect(window.location.hash).toBe('#x');
    expect(window.location.href).not.toContain('s3cret');
  });
});

describe('dashboards', () => {
  const result = (series: { dims: Record<string, string>; values: (number | null)[] }[]): MetricResult => ({
    Statistic: 'Average',
    Period: 60,
    Timestamps: [0, 60_000, 120_000],
    Series: series.map((s) => ({
      Label: '',
      MetricName: 'm',
      Unit: null,
      Dimensions: Object.entries(s.dims).map(([Name, Value]) => ({ Name, Value })),
      Values: s.values,
    })),
    Truncated: false,
    Messages: [],
  });

  it('sums series per period, leaving periods with no sample empty', () => {
    expect(sumSeries([[1, null, null], [2, 3, null]], 3)).toEqual([3, 3, null]);
  });

  it('keeps the busiest series of a by-resource chart, named by their dimension', () => {
    const r = result([
      { dims: { NodeName: 'a' }, values: [1, 1, 1] },
      { dims: { NodeName: 'b' }, values: [9, 9, null] },
    ]);
    const lines = linesOf({ metric: 'm', dims: [], combine: 'each', by: 'NodeName' }, r, 1);
    expect(lines).toEqual([{ label: 'b', values: [9, 9, null] }]);
  });

  it('joins CPU and memory series into table rows', () => {
    const cpu = result([{ dims: { NodeName: 'a', InstanceId: 'i-1' }, values: [10, 20, null] }]);
    const mem = result([{ dims: { NodeName: 'a', InstanceId: 'i-1' }, values: [50, null, 70] }]);
    const rows = joinSeries(cpu, mem, ['NodeName', 'InstanceId']);
    expect(rows).toHaveLength(1);
    expect(rows[0].key).toEqual({ NodeName: 'a', InstanceId: 'i-1' });
    expect(rows[0].cpuAvg).toBe(15);
    expect(rows[0].memAvg).toBe(60);
  });

  it('groups `stats … by key, bin()` rows into aligned sparklines', () => {
    const cols = ['Namespace', 'PodName', 'bin(60s)', 'cpu', 'mem'];
    const rows = [
      ['shop', 'cart', '2026-01-01 00:00:00.000', 1, 2],
      ['shop', 'cart', '2026-01-01 00:01:00.000', 3, 4],
      ['shop', 'web', '2026-01-01 00:01:00.000', 5, 6],
    ];
    const out = rowsFromInsights(cols, rows, ['Namespace', 'PodName'], parseResultTime);
    expect(out.bins).toHaveLength(2);
    const web = out.rows.find((r) => r.key.PodName === 'web')!;
    expect(web.cpu).toEqual([null, 5]);
    expect(out.rows.find((r) => r.key.PodName === 'cart')!.memAvg).toBe(3);
  });

  it('finds clusters from performance groups, most recent first', () => {
    const c = clustersOf([
      { name: '/kinsight/a/performance', lastEventMs: 1 },
      { name: '/kinsight/a/application', lastEventMs: 5 },
      { name: '/aws/containerinsights/b/performance', lastEventMs: 9 },
    ]);
    expect(c.map((x) => `${x.prefix}|${x.cluster}`)).toEqual(['/aws/containerinsights|b', '/kinsight|a']);
  });

  it('links a container to its application logs and a node to its pods', () => {
    const logs = logsQueryFor({ cluster: 'c', level: 'container', fullpod: 'api-1', container: 'srv"x' }, '/kinsight');
    expect(logs.group).toBe('/kinsight/c/application');
    expect(logs.query).toContain('kubernetes.pod_name = "api-1" and kubernetes.container_name = "srv\\"x"');
    const t = tableFor({ cluster: 'c', level: 'node', node: 'n1' })!;
    expect(t.rowLevel).toBe('pod');
    expect(t.source.kind === 'insights' && t.source.query(60)).toContain('NodeName = "n1"');
  });
});

describe('time and numbers', () => {
  it('resolves relative and absolute ranges', () => {
    expect(resolveRange('15m', 1_000_000)).toEqual({ start: 100_000, end: 1_000_000 });
    expect(resolveRange('1700000000000-1700000600000')).toEqual({ start: 1_700_000_000_000, end: 1_700_000_600_000 });
    expect(periodFor({ start: 0, end: 3_600_000 })).toBe(30);
    expect(periodFor({ start: 0, end: 86_400_000 })).toBe(900);
  });
  it('reads result timestamps as UTC', () => {
    expect(parseResultTime('2024-05-01 10:00:00.000')).toBe(Date.UTC(2024, 4, 1, 10));
  });
  it('formats units', () => {
    expect(formatValue(1536, 'bytes')).toBe('1.5 KiB');
    expect(formatValue(2500, 'millicores')).toBe('2.50 cores');
    expect(formatValue(null, 'percent')).toBe('–');
  });
});

describe('server-sent events', () => {
  it('parses complete events and keeps the rest', () => {
    const { events, rest } = parseSse(': keepalive\n\nevent: log\nid: 7\ndata: {"id":7}\n\nevent: gap\ndata: {}\n\nevent: log\ndata: {"i');
    expect(events).toEqual([
      { event: 'log', data: '{"id":7}' },
      { event: 'gap', data: '{}' },
    ]);
    expect(rest).toBe('event: log\ndata: {"i');
  });
});
