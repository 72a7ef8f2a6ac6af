// Time ranges: relative (`15m`, `1h`, `3d`, …: "the last …", moving with auto refresh) or
// absolute (`<start ms>-<end ms>`), as kept in the URL's `range` parameter.

export interface TimeRange {
  start: number;
  end: number;
}

export const RELATIVE = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '3d', '1w'] as const;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function parseSpan(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d|w)$/.exec(s.trim());
  return m ? Number(m[1]) * UNIT_MS[m[2]] : null;
}

/** Resolves a `range` parameter at time `now`; unknown values mean the last hour. */
export function resolveRange(range: string | null | undefined, now = Date.now()): TimeRange {
  if (range) {
    const abs = /^(\d{10,})-(\d{10,})$/.exec(range);
    if (abs) {
      const start = Number(abs[1]);
      const end = Number(abs[2]);
      if (end > start) return { start, end };
    }
    const span = parseSpan(range);
    if (span) return { start: now - span, end: now };
  }
  return { start: now - 3_600_000, end: now };
}

export function isRelative(range: string | null | undefined): boolean {
  return !range || parseSpan(range) !== null;
}

/** Metric period for a range: about 60–240 points; 10 s at most for short ranges. */
export function periodFor(r: TimeRange): number {
  const span = (r.end - r.start) / 1000;
  const periods = [10, 30, 60, 300, 900, 1800, 3600, 10800, 21600, 86400];
  for (const p of periods) if (span / p <= 240) return p;
  return 86400;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** `YYYY-MM-DDTHH:MM` in local time, for `<input type="datetime-local">`. */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(s: string): number | null {
  const t = new Date(s).getTime();
  return Number.isFinite(t) ? t : null;
}

export function formatTime(ms: number, withSeconds = true): string {
  const d = new Date(ms);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? `:${pad(d.getSeconds())}` : ''}`;
  return `${date} ${time}`;
}

export function describeRange(range: string | null | undefined): string {
  if (!range || isRelative(range)) return `Last ${range || '1h'}`;
  const r = resolveRange(range);
  return `${formatTime(r.start, false)} → ${formatTime(r.end, false)}`;
}

/** Query results give timestamps as `2024-05-01 10:00:00.000` (UTC). */
export function parseResultTime(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return null;
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z?$/.exec(v);
  if (!m) return null;
  const t = Date.parse(`${m[1]}T${m[2]}Z`);
  return Number.isFinite(t) ? t : null;
}
