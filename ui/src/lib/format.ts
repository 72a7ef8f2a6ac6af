// Numbers as people read them: percent, bytes, bytes/s, millicores, counts, and plain numbers
// of any size (PromQL results).

export type UnitKind = 'percent' | 'bytes' | 'bytesPerSec' | 'millicores' | 'count' | 'number';

export function formatValue(v: number | null | undefined, unit: UnitKind, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  switch (unit) {
    case 'percent':
      return `${v.toFixed(v < 10 ? Math.max(digits, 1) : digits)} %`;
    case 'bytes':
      return formatBytes(v);
    case 'bytesPerSec':
      return `${formatBytes(v)}/s`;
    case 'millicores':
      return v >= 1000 ? `${(v / 1000).toFixed(2)} cores` : `${Math.round(v)} m`;
    case 'count':
      return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(digits);
    case 'number':
      return formatNumber(v);
  }
}

/** Four significant digits, no exponent between 0.001 and 1e15: `31.16`, `0.004216`, `1234567`. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.001 || a >= 1e15)) return v.toExponential(3).replace(/\.?0+e/, 'e');
  if (a >= 1000) return String(Math.round(v * 10) / 10);
  return String(+v.toPrecision(4));
}

export function formatBytes(v: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = Math.abs(v);
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${v < 0 ? '-' : ''}${x.toFixed(x >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Short axis labels. */
export function axisValue(v: number, unit: UnitKind): string {
  if (unit === 'percent') return `${+v.toFixed(1)}%`;
  if (unit === 'bytes' || unit === 'bytesPerSec') return formatBytes(v).replace(' ', '');
  if (unit === 'millicores') return v >= 1000 ? `${+(v / 1000).toFixed(1)}c` : `${Math.round(v)}m`;
  if (unit === 'number' && v !== 0 && Math.abs(v) < 0.01) return v.toExponential(1);
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(2));
}
