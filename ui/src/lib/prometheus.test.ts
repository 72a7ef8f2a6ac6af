import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  applyCompletion,
  autoStep,
  formatStep,
  highlightPromql,
  instantQuery,
  labelValues,
  matrixToColumns,
  metricNames,
  promqlCompletions,
  rangeQuery,
  seriesLabel,
  tokenizePromql,
  unwrap,
  valuesKey,
  type Catalogue,
} from './prometheus';
import { ApiError, onUnauthorized } from './api';
import { formatValue } from './format';

const catalogue: Catalogue = {
  metrics: ['node_cpu_utilization', 'node_memory_limit', 'node_memory_utilization', 'pod_memory_utilization', 'my.app.latency'],
  labels: new Map([
    ['node_memory_utilization', ['ClusterName', 'InstanceId', 'NodeName', '__name__', 'cloudwatch_namespace']],
    ['', ['ClusterName', 'Namespace', 'NodeName', 'PodName']],
  ]),
  values: new Map([
    [valuesKey('node_memory_utilization', 'NodeName'), ['ip-10-0-1-11', 'ip-10-0-1-12', 'vm']],
    [valuesKey('node_memory_utilization', 'ClusterName'), ['local', 'sim']],
    [valuesKey(undefined, 'Namespace'), ['default', 'kube-system']],
  ]),
};

/** Completions with the cursor where `|` is. */
function at(src: string) {
  const cursor = src.indexOf('|');
  const text = src.slice(0, cursor) + src.slice(cursor + 1);
  return { text, r: promqlCompletions(text, cursor, catalogue) };
}
const labels = (src: string) => at(src).r.items.map((c) => c.label);

describe('PromQL tokens', () => {
  it('cover every character, whatever the text', () => {
    for (const q of ['sum by (a) (rate(x{a="b\\"c",d=~`e`}[5m] offset 1h)) > 0.5e3 # note\n', '{a="unterminated', '(((}]', '€ 1h30m :']) {
      expect(tokenizePromql(q).map((t) => t.text).join('')).toBe(q);
    }
  });
  it('tell metrics, functions, keywords and labels apart', () => {
    const h = highlightPromql('sum by (NodeName) (rate(node_x{ClusterName="a"}[5m]))');
    const cls = (text: string) => h.find((t) => t.text === text)?.cls;
    expect(cls('sum')).toBe('function');
    expect(cls('by')).toBe('keyword');
    expect(cls('NodeName')).toBe('label');
    expect(cls('rate')).toBe('function');
    expect(cls('node_x')).toBe('field');
    expect(cls('ClusterName')).toBe('label');
    expect(cls('"a"')).toBe('string');
    expect(cls('5m')).toBe('number');
  });
});

describe('promqlCompletions', () => {
  it('offers metric names at the start, filtered by the prefix, replacing the whole word', () => {
    const { r } = at('node_mem|');
    expect(r.context.kind).toBe('metric');
    expect(r.prefix).toBe('node_mem');
    expect([r.from, r.to]).toEqual([0, 8]);
    expect(r.items.map((c) => c.label)).toEqual(['node_memory_limit', 'node_memory_utilization']);
    // The word after the cursor is replaced too.
    const mid = at('node_m|emxx + 1');
    expect([mid.r.from, mid.r.to]).toEqual([0, 10]);
    expect(mid.r.prefix).toBe('node_m');
  });

  it('offers metrics and functions after operators, inside function parentheses and after commas', () => {
    expect(labels('1 + node_c|')).toEqual(['node_cpu_utilization']);
    expect(labels('rate(pod_|')).toEqual(['pod_memory_utilization']);
    expect(labels('histogram_quantile(0.9, node_cpu|')).toEqual(['node_cpu_utilization']);
    expect(labels('up and node_cpu|')).toEqual(['node_cpu_utilization']);
    expect(labels('ra|')).toEqual(['rad', 'rate']);
    // From three characters on, names containing the text follow those starting with it.
    expect(labels('rat|')).toEqual(['rate', 'irate']);
    const fn = at('rat|').r.items[0];
    expect(fn).toEqual({ label: 'rate', insert: 'rate(', kind: 'function' });
    // An existing `(` is not doubled.
    expect(at('rat|(x)').r.items[0].insert).toBe('rate');
    expect(at('su|').r.items.map((c) => c.kind)).toContain('aggregation');
  });

  it('matches case-insensitively, prefixes first, then names containing the text', () => {
    expect(labels('MEMORY_UTIL|')).toEqual(['node_memory_utilization', 'pod_memory_utilization']);
    expect(labels('node|')[0]).toBe('node_cpu_utilization');
  });

  it('spells metric names PromQL cannot write as a __name__ matcher', () => {
    expect(at('app|').r.items[0]).toMatchObject({ label: 'my.app.latency', insert: '{__name__="my.app.latency"}' });
  });

  it('offers label names inside braces, for the selector’s metric, without those already used', () => {
    const { r } = at('node_memory_utilization{Cl|');
    expect(r.context).toMatchObject({ kind: 'label', metric: 'node_memory_utilization' });
    expect(r.items.map((c) => c.label)).toEqual(['ClusterName', 'cloudwatch_namespace']);
    expect([r.from, r.to]).toEqual([24, 26]);
    expect(labels('node_memory_utilization{ClusterName="sim", |}')).toEqual(['InstanceId', 'NodeName', '__name__', 'cloudwatch_namespace']);
    // A selector without a metric: the labels of every series.
    expect(at('{|}').r.context).toMatchObject({ kind: 'label', metric: undefined });
    expect(labels('{Na|')).toEqual(['Namespace']);
    expect(labels('{nam|')).toEqual(['Namespace', 'ClusterName', 'NodeName', 'PodName']);
  });

  it('offers label names in by, without, on and ignoring lists', () => {
    const before = at('sum by (No|) (node_memory_utilization)');
    expect(before.r.context).toMatchObject({ kind: 'label', metric: 'node_memory_utilization' });
    expect(before.r.items.map((c) => c.label)).toEqual(['NodeName']);
    const after = at('avg(rate(node_memory_utilization[5m])) without (Instance|');
    expect(after.r.context).toMatchObject({ kind: 'label', metric: 'node_memory_utilization' });
    expect(after.r.items.map((c) => c.label)).toEqual(['InstanceId']);
    expect(at('node_memory_utilization / on(|) node_memory_limit').r.context.kind).toBe('label');
    expect(at('a * ignoring (x, |)').r.context.kind).toBe('label');
    expect(at('a * ignoring (x, |)').r.context).toMatchObject({ used: ['x'] });
  });

  it('offers the values of the label for the metric after an opening quote', () => {
    const { text, r } = at('node_memory_utilization{NodeName="ip|');
    expect(r.context).toMatchObject({ kind: 'value', metric: 'node_memory_utilization', label: 'NodeName', quote: '"', closed: false });
    expect(r.items.map((c) => c.label)).toEqual(['ip-10-0-1-11', 'ip-10-0-1-12']);
    expect([r.from, r.to]).toEqual([34, 36]);
    // The closing quote is added when missing…
    expect(applyCompletion(text, r, r.items[1])).toEqual({ text: 'node_memory_utilization{NodeName="ip-10-0-1-12"', cursor: 47 });
    // …and the cursor steps over it when it is there.
    const closed = at('node_memory_utilization{ClusterName="s|x", NodeName="vm"}');
    expect(closed.r.context).toMatchObject({ kind: 'value', closed: true });
    expect([closed.r.from, closed.r.to]).toEqual([37, 39]);
    const done = applyCompletion(closed.text, closed.r, closed.r.items[0]);
    expect(done.text).toBe('node_memory_utilization{ClusterName="sim", NodeName="vm"}');
    expect(done.text[done.cursor]).toBe(',');
  });

  it('quotes values after an operator without a quote, escapes regular expressions', () => {
    expect(at('{Namespace=|}').r.items.map((c) => c.insert)).toEqual(['"default"', '"kube-system"']);
    expect(at('node_memory_utilization{NodeName=~"|"}').r.items[0].insert).toBe('ip-10-0-1-11');
    const ctx = at('x{NodeName!~"|').r.context;
    expect(ctx).toMatchObject({ kind: 'value', op: '!~', metric: 'x' });
    const cat: Catalogue = { ...catalogue, values: new Map([[valuesKey('x', 'a'), ['a.b "c"']]]) };
    expect(promqlCompletions('x{a=~"', 6, cat).items[0].insert).toBe('a\\\\.b \\"c\\""');
    expect(promqlCompletions('x{a="', 5, cat).items[0].insert).toBe('a.b \\"c\\""');
  });

  it('offers keywords after an operand, once a word is begun', () => {
    expect(labels('sum(x) b|')).toEqual(['by', 'bool']);
    expect(labels('up o|')).toEqual(['or', 'on', 'offset']);
    expect(labels('up gr|')).toEqual(['group_left', 'group_right']);
    expect(at('sum(x) |').r.context.kind).toBe('none');
  });

  it('offers nothing in strings that are not matcher values, comments, numbers and durations', () => {
    expect(at('label_replace(x, "|').r.context.kind).toBe('none');
    expect(at('x # a comm|').r.context.kind).toBe('none');
    expect(at('rate(x[5|').r.context.kind).toBe('none');
    expect(at('x offset |').r.context.kind).toBe('none');
    expect(at('x{a="b"}|').r.context.kind).toBe('none');
    expect(at('x{a="b" |').r.context.kind).toBe('none');
  });

  it('knows the metric from a __name__ matcher', () => {
    expect(at('{__name__="node_memory_utilization", No|}').r.context).toMatchObject({ kind: 'label', metric: 'node_memory_utilization' });
  });
});

describe('Prometheus results', () => {
  it('prints series as Prometheus does', () => {
    expect(seriesLabel({ __name__: 'up', b: '2', a: 'x"y' })).toBe('up{a="x\\"y",b="2"}');
    expect(seriesLabel({ __name__: 'up' })).toBe('up');
    expect(seriesLabel({})).toBe('{}');
    expect(seriesLabel({ __name__: 'my.metric', a: '1' })).toBe('{__name__="my.metric",a="1"}');
  });
  it('aligns a matrix on shared timestamps, non-finite values as gaps', () => {
    const c = matrixToColumns([
      { metric: { __name__: 'a' }, values: [[100, '1'], [115, '2']] },
      { metric: { __name__: 'b' }, values: [[115, '+Inf'], [130.5, '3.5']] },
    ]);
    expect(c.timestamps).toEqual([100000, 115000, 130500]);
    expect(c.series).toEqual([
      { label: 'a', values: [1, 2, null] },
      { label: 'b', values: [null, null, 3.5] },
    ]);
  });
  it('formats values of any size', () => {
    expect(formatValue(31.164847900879977, 'number')).toBe('31.16');
    expect(formatValue(0.004215555, 'number')).toBe('0.004216');
    expect(formatValue(0.00001234, 'number')).toBe('1.234e-5');
    expect(formatValue(1234567, 'number')).toBe('1234567');
    expect(formatValue(1234.5678, 'number')).toBe('1234.6');
    expect(formatValue(null, 'number')).toBe('–');
  });
  it('chooses a round step of about range / 250, 15 s at least', () => {
    expect(autoStep(15 * 60_000)).toBe(15);
    expect(autoStep(3_600_000)).toBe(15);
    expect(autoStep(3 * 3_600_000)).toBe(60);
    expect(autoStep(86_400_000)).toBe(600);
    expect(autoStep(7 * 86_400_000)).toBe(3600);
    expect(formatStep(15)).toBe('15s');
    expect(formatStep(5400)).toBe('1h30m');
    expect(formatStep(86400)).toBe('1d');
  });
});

describe('the Prometheus client', () => {
  const fetchMock = vi.fn();
  afterEach(() => {
    fetchMock.mockReset();
    vi.unstubAllGlobals();
  });
  const answer = (status: number, body: unknown) =>
    Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }));

  it('sends GET requests with the parameters and returns data and warnings', async () => {
    vi.stubGlobal('fetch', fetchMock);
    fetchMock.mockReturnValueOnce(answer(200, { status: 'success', data: { resultType: 'vector', result: [] }, warnings: ['results truncated'] }));
    const r = await instantQuery('sum(up)', 1_700_000_000_500);
    expect(r).toEqual({ data: { resultType: 'vector', result: [] }, warnings: ['results truncated'] });
    const [url, init] = fetchMock.mock.calls[0];
    expect(init.method).toBe('GET');
    expect(url).toBe('/api/v1/query?query=sum%28up%29&time=1700000000.5');

    fetchMock.mockReturnValueOnce(answer(200, { status: 'success', data: { resultType: 'matrix', result: [] } }));
    await rangeQuery('up', 1_700_000_000_000, 1_700_003_600_000, 15);
    expect(fetchMock.mock.calls[1][0]).toBe('/api/v1/query_range?query=up&start=1700000000&end=1700003600&step=15');

    fetchMock.mockReturnValueOnce(answer(200, { status: 'success', data: ['a', 'b'] }));
    expect(await labelValues('NodeName', ['up', '{__name__="x"}'], { startMs: 1000, endMs: 2000 })).toEqual(['a', 'b']);
    expect(fetchMock.mock.calls[2][0]).toBe(
      '/api/v1/label/NodeName/values?match%5B%5D=up&match%5B%5D=%7B__name__%3D%22x%22%7D&start=1&end=2&limit=1000',
    );
    fetchMock.mockReturnValueOnce(answer(200, { status: 'success', data: ['up'] }));
    expect(await metricNames()).toEqual(['up']);
    expect(fetchMock.mock.calls[3][0]).toBe('/api/v1/label/__name__/values?limit=10000');
  });

  it('raises the server’s error message', async () => {
    vi.stubGlobal('fetch', fetchMock);
    fetchMock.mockReturnValueOnce(
      answer(400, { status: 'error', errorType: 'bad_data', error: 'invalid parameter "query": parse error: unclosed left parenthesis' }),
    );
    const e = await instantQuery('sum(', 0).catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e.message).toBe('invalid parameter "query": parse error: unclosed left parenthesis');
    expect(e.code).toBe('bad_data');
    expect(e.status).toBe(400);
    expect(() => unwrap({ status: 'error', errorType: 'execution', error: 'many-to-many matching not allowed' })).toThrow('many-to-many matching not allowed');
  });

  it('sends the console back to sign-in on 401', async () => {
    vi.stubGlobal('fetch', fetchMock);
    const signedOut = vi.fn();
    const off = onUnauthorized(signedOut);
    fetchMock.mockReturnValueOnce(answer(401, { code: 'Unauthenticated', message: 'missing token' }));
    await expect(metricNames()).rejects.toThrow('missing token');
    expect(signedOut).toHaveBeenCalledTimes(1);
    off();
  });
});
