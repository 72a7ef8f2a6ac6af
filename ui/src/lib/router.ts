// A small client-side router on the History API: the server answers index.html for every GET
// outside /v1 (crates/server/src/ui.rs), so every page has a URL that can be reloaded,
// bookmarked and shared. Page state that matters (level, resource, time range, query) lives in
// the query string.

import { useSyncExternalStore } from 'react';

export interface Location {
  path: string;
  params: URLSearchParams;
}

const listeners = new Set<() => void>();
let current = read();

function read(): Location {
  return { path: window.location.pathname, params: new URLSearchParams(window.location.search) };
}

function notify() {
  current = read();
  listeners.forEach((l) => l());
}

window.addEventListener('popstate', notify);

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  const url = new URL(to, window.location.href);
  const target = url.pathname + url.search + url.hash;
  if (target === window.location.pathname + window.location.search + window.location.hash) return;
  if (opts.replace) window.history.replaceState(null, '', target);
  else window.history.pushState(null, '', target);
  notify();
}

/** Re-reads the address bar (after something else changed it, e.g. token removal). */
export function refreshLocation(): void {
  notify();
}

export function useLocation(): Location {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => current,
  );
}

/** `path?k=v` with empty values left out. */
export function href(path: string, params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `${path}?${s}` : path;
}

/** Updates some query parameters of the current page (replacing the history entry). */
export function setParams(changes: Record<string, string | number | undefined | null>, opts: { push?: boolean } = {}): void {
  const p = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === '') p.delete(k);
    else p.set(k, String(v));
  }
  const s = p.toString();
  navigate(window.location.pathname + (s ? `?${s}` : ''), { replace: !opts.push });
}
