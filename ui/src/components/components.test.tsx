import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { QueryEditor } from './QueryEditor';
import { JsonView } from './JsonView';
import { Sparkline } from './Sparkline';
import { toPutBody } from '../pages/Alarms';
import { PromqlEditor } from './PromqlEditor';
import { valuesKey, type Catalogue, type PromCursor } from '../lib/prometheus';
import { useState } from 'react';

afterEach(cleanup);

describe('QueryEditor', () => {
  it('marks the error at the server’s line and column and says what is wrong', () => {
    const q = 'filter x = 1\n| stats avg(y) by';
    render(<QueryEditor value={q} onChange={() => undefined} error={{ line: 2, column: 9, message: "expected '('" }} />);
    const mark = screen.getByTestId('error-mark');
    expect(mark.textContent).toBe('a');
    expect(screen.getByTestId('editor-error').textContent).toBe("Line 2, column 9: expected '('");
    expect(screen.getByLabelText('Query').getAttribute('aria-invalid')).toBe('true');
  });

  it('highlights what is typed and runs on Ctrl+Enter', () => {
    const run = vi.fn();
    const change = vi.fn();
    render(<QueryEditor value="stats count()" onChange={change} onRun={run} />);
    const hl = screen.getByTestId('editor-highlight');
    expect(hl.querySelector('.tok-command')?.textContent).toBe('stats');
    expect(hl.querySelector('.tok-function')?.textContent).toBe('count');
    const ta = screen.getByTestId('query-editor');
    fireEvent.change(ta, { target: { value: 'stats count() by x' } });
    expect(change).toHaveBeenCalledWith('stats count() by x');
    fireEvent.keyDown(ta, { key: 'Enter', ctrlKey: true });
    expect(run).toHaveBeenCalledTimes(1);
  });
});

describe('JsonView', () => {
  it('folds and unfolds nested objects', () => {
    render(<JsonView value={{ a: { b: { c: { d: 1 } } } }} />);
    // Two levels open at first; `b` is folded, so `c` is not shown.
    expect(screen.getByText('b:')).toBeTruthy();
    expect(screen.queryByText('c:')).toBeNull();
    const toggles = screen.getAllByRole('button');
    expect(toggles[toggles.length - 1].getAttribute('aria-expanded')).toBe('false');
    fireEvent.click(toggles[toggles.length - 1]);
    expect(screen.getByText('c:')).toBeTruthy();
  });
});

describe('Sparkline', () => {
  it('draws a path through the values and breaks it at gaps', () => {
    const { container } = render(<Sparkline values={[0, 10, null, 5, 10]} width={40} height={10} />);
    const d = container.querySelector('path')!.getAttribute('d')!;
    expect(d.match(/M/g)).toHaveLength(2);
    expect(d.startsWith('M0.0,9.0L10.0,1.0')).toBe(true);
  });
});

describe('alarm form', () => {
  const base = {
    AlarmName: ' cpu ',
    AlarmDescription: '',
    Namespace: 'ContainerInsights',
    MetricName: 'node_cpu_utilization',
    Dimensions: [{ Name: 'ClusterName', Value: 'prod' }, { Name: '', Value: '' }],
    Statistic: 'Average',
    EvaluateLowSampleCountPercentile: 'evaluate',
    Period: 60,
    EvaluationPeriods: 5,
    DatapointsToAlarm: 3,
    ComparisonOperator: 'GreaterThanThreshold',
    Threshold: '80',
    TreatMissingData: 'notBreaching',
    AlarmActions: 'https://a.example/hook\n slack+https://b.example/x ',
    OKActions: '',
    InsufficientDataActions: '',
    ActionsEnabled: true,
  };
  it('builds PutMetricAlarm with Statistic, or ExtendedStatistic for percentiles', () => {
    const b = toPutBody(base);
    expect(b).toMatchObject({ AlarmName: 'cpu', Statistic: 'Average', Threshold: 80, DatapointsToAlarm: 3, TreatMissingData: 'notBreaching' });
    expect(b.Dimensions).toEqual([{ Name: 'ClusterName', Value: 'prod' }]);
    expect(b.AlarmActions).toEqual(['https://a.example/hook', 'slack+https://b.example/x']);
    expect(b.ExtendedStatistic).toBeUndefined();
    const p = toPutBody({ ...base, Statistic: 'p99' });
    expect(p.ExtendedStatistic).toBe('p99');
    expect(p.Statistic).toBeUndefined();
    expect(p.EvaluateLowSampleCountPercentile).toBe('evaluate');
  });
});

describe('PromqlEditor', () => {
  const catalogue: Catalogue = {
    metrics: ['node_cpu_utilization', 'node_memory_limit', 'node_memory_utilization'],
    labels: new Map([['node_memory_utilization', ['ClusterName', 'NodeName']]]),
    values: new Map([[valuesKey('node_memory_utilization', 'NodeName'), ['ip-10-0-1-11', 'vm']]]),
  };
  function Harness(p: { onRun?: () => void; onContext?: (c: PromCursor) => void; initial?: string }) {
    const [v, setV] = useState(p.initial ?? '');
    return <PromqlEditor value={v} onChange={setV} onRun={p.onRun} onContext={p.onContext} catalogue={catalogue} />;
  }
  const type = (ta: HTMLTextAreaElement, value: string) => {
    fireEvent.change(ta, { target: { value, selectionStart: value.length, selectionEnd: value.length } });
  };
  const options = () => screen.queryAllByRole('option').map((o) => o.querySelector('.completion-label')!.textContent);

  it('lists completions while typing; arrows move, Enter accepts, Escape closes', () => {
    render(<Harness />);
    const ta = screen.getByTestId('promql-editor') as HTMLTextAreaElement;
    type(ta, 'node_mem');
    expect(ta.getAttribute('aria-expanded')).toBe('true');
    expect(options()).toEqual(['node_memory_limit', 'node_memory_utilization']);
    expect(screen.getAllByRole('option')[0].getAttribute('aria-selected')).toBe('true');
    fireEvent.keyDown(ta, { key: 'ArrowDown' });
    expect(screen.getAllByRole('option')[1].getAttribute('aria-selected')).toBe('true');
    fireEvent.keyDown(ta, { key: 'Enter' });
    expect(ta.value).toBe('node_memory_utilization');
    expect(screen.queryByRole('listbox')).toBeNull();

    type(ta, 'node_memory_utilization{');
    expect(options()).toEqual(['ClusterName', 'NodeName']);
    fireEvent.keyDown(ta, { key: 'Escape' });
    expect(screen.queryByRole('listbox')).toBeNull();
    type(ta, 'node_memory_utilization{NodeName="');
    expect(options()).toEqual(['ip-10-0-1-11', 'vm']);
    fireEvent.keyDown(ta, { key: 'ArrowUp' });
    fireEvent.keyDown(ta, { key: 'Tab' });
    expect(ta.value).toBe('node_memory_utilization{NodeName="vm"');
  });

  it('accepts a clicked completion, tells the page the context, runs on Ctrl+Enter', () => {
    const run = vi.fn();
    const ctx = vi.fn();
    render(<Harness onRun={run} onContext={ctx} />);
    const ta = screen.getByTestId('promql-editor') as HTMLTextAreaElement;
    type(ta, 'sum(node_c');
    fireEvent.mouseDown(screen.getByRole('option'));
    expect(ta.value).toBe('sum(node_cpu_utilization');
    type(ta, 'sum(node_cpu_utilization) by (');
    expect(ctx).toHaveBeenLastCalledWith(expect.objectContaining({ context: expect.objectContaining({ kind: 'label', metric: 'node_cpu_utilization' }) }));
    fireEvent.keyDown(ta, { key: 'Enter', ctrlKey: true });
    expect(run).toHaveBeenCalledTimes(1);
    expect(screen.queryByRole('listbox')).toBeNull();
  });
});
