// A tiny SVG line for table rows: hundreds of these must be cheap, so no uPlot here.

export function Sparkline({ values, width = 96, height = 22, max }: { values: (number | null)[]; width?: number; height?: number; max?: number }) {
  const nums = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (nums.length < 2) return <svg className="sparkline" width={width} height={height} aria-hidden="true" />;
  const hi = max ?? Math.max(...nums, 1e-9);
  const step = width / (values.length - 1);
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    const x = (i * step).toFixed(1);
    const y = (height - 1 - (Math.min(v, hi) / hi) * (height - 2)).toFixed(1);
    d += `${pen ? 'L' : 'M'}${x},${y}`;
    pen = true;
  });
  return (
    <svg className="sparkline" width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-hidden="true">
      <path d={d} fill="none" stroke="currentColor" strokeWidth="1.5" />
    </svg>
  );
}
