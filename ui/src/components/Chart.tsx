// A time-series chart on uPlot: sized to its container, coloured from the theme's CSS
// variables, a horizontal threshold line for alarms, drag-to-zoom reported to the page.

import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { axisValue, formatValue, type UnitKind } from '../lib/format';

export interface ChartSeries {
  label: string;
  values: (number | null)[];
}

export interface ChartProps {
  title: string;
  unit: UnitKind;
  /** Epoch ms, one per value. */
  timestamps: number[];
  series: ChartSeries[];
  height?: number;
  threshold?: number;
  loading?: boolean;
  error?: string | null;
  /** Drag-selected range, epoch ms. */
  onZoom?: (start: number, end: number) => void;
  /** Bars instead of lines (histograms). */
  bars?: boolean;
  testId?: string;
}

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#4f46e5'];

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export function Chart(p: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const zoom = useRef(p.onZoom);
  zoom.current = p.onZoom;
  const height = p.height ?? 180;
  const hasData = p.timestamps.length > 0 && p.series.some((s) => s.values.some((v) => v !== null));
  const shape = `${p.series.map((s) => s.label).join('\u0001')}|${p.unit}|${p.bars ? 1 : 0}|${p.threshold ?? ''}|${document.documentElement.dataset.theme ?? ''}`;

  useEffect(() => {
    const el = box.current;
    if (!el || !hasData) return;
    const axis = cssVar('--chart-axis', '#666');
    const grid = cssVar('--chart-grid', 'rgba(128,128,128,.15)');
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { show: p.series.length <= 12, live: true },
      scales: { x: { time: true }, y: { range: (_u, min, max) => yRange(min, max, p.unit, p.threshold) } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          // Wide enough for the longest label (`14.3MiB`), never clipped.
          size: (_u: uPlot, values: string[] | null) => (values?.length ? Math.max(...values.map((v) => v.length)) * 7.5 + 24 : 40),
          values: (_u, vals) => vals.map((v) => axisValue(v, p.unit)),
        },
      ],
      series: [
        {},
        ...p.series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: true,
          // Dots only where a line would not show: a series of a few samples.
          points: { show: s.values.filter((v) => v !== null).length <= 3, size: 5 },
          fill: p.bars ? PALETTE[i % PALETTE.length] + '99' : undefined,
          paths: p.bars ? uPlot.paths.bars!({ size: [0.8, 40] }) : undefined,
          value: (_u: uPlot, v: number | null) => formatValue(v, p.unit),
        })),
      ],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 4 || !zoom.current) return;
            const a = u.posToVal(u.select.left, 'x');
            const b = u.posToVal(u.select.left + u.select.width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoom.current(Math.round(a * 1000), Math.round(b * 1000));
          },
        ],
        draw: p.threshold === undefined ? [] : [(u) => drawThreshold(u, p.threshold!)],
      },
    };
    const u = new uPlot(opts, toData(p.timestamps, p.series), el);
    plot.current = u;
    // For the dashboard benchmark (ui/e2e/bench.mjs): when each chart was first drawn.
    performance.mark(`kinsight:chart:${p.testId ?? p.title}`);
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Re-created only when the series set, unit or theme change; data updates go to setData.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, hasData, height]);

  useEffect(() => {
    plot.current?.setData(toData(p.timestamps, p.series));
  }, [p.timestamps, p.series]);

  return (
    <figure
      className="chart"
      data-testid={p.testId}
      data-series={p.series.length}
      data-values={p.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0)}
    >
      <figcaption>{p.title}</figcaption>
      {p.error ? (
        <div className="chart-empty error" style={{ height }}>
          {p.error}
        </div>
      ) : !hasData ? (
        <div className="chart-empty" style={{ height }}>
          {p.loading ? 'Loading…' : 'No data in this time range'}
        </div>
      ) : (
        <div ref={box} className="chart-plot" role="img" aria-label={`${p.title}: ${p.series.length} series`} />
      )}
    </figure>
  );
}

function toData(ts: number[], series: ChartSeries[]): uPlot.AlignedData {
  return [ts.map((t) => t / 1000), ...series.map((s) => s.values)] as uPlot.AlignedData;
}

function yRange(min: number | null, max: number | null, unit: UnitKind, threshold?: number): [number, number] {
  let lo = Math.min(0, min ?? 0);
  let hi = Math.max(max ?? 1, threshold ?? -Infinity);
  if (unit === 'percent' && hi <= 100 && hi > 50) hi = 100;
  if (hi <= lo) hi = lo + 1;
  hi = hi * 1.05;
  lo = lo < 0 ? lo * 1.05 : 0;
  return [lo, hi];
}

function drawThreshold(u: uPlot, threshold: number) {
  const y = u.valToPos(threshold, 'y', true);
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = '#dc2626';
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 1.5 * devicePixelRatio;
  ctx.beginPath();
  ctx.moveTo(u.bbox.left, y);
  ctx.lineTo(u.bbox.left + u.bbox.width, y);
  ctx.stroke();
  ctx.restore();
}
