import { useEffect, useRef, useState } from 'react';

export interface Async<T> {
  data: T | undefined;
  error: string | null;
  loading: boolean;
}

/**
 * Runs `fn` whenever `deps` change, aborting the previous run; keeps the last data while a
 * new run is loading (so auto refresh does not blank the charts).
 */
export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<Async<T>>({ data: undefined, error: null, loading: true });
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    fn(ctl.signal).then(
      (data) => {
        if (!ctl.signal.aborted) setState({ data, error: null, loading: false });
      },
      (e: Error) => {
        if (ctl.signal.aborted || e.name === 'AbortError') return;
        setState((s) => ({ data: s.data, error: e.message, loading: false }));
      },
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return state;
}

/** Calls `fn` every `ms` milliseconds (not at all when `ms` is 0). */
export function useInterval(fn: () => void, ms: number): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!ms) return;
    const t = setInterval(() => ref.current(), ms);
    return () => clearInterval(t);
  }, [ms]);
}

/** A value kept in localStorage. */
export function useStored<T>(key: string, initial: T): [T, (v: T) => void] {
  const [v, setV] = useState<T>(() => {
    try {
      const s = localStorage.getItem(key);
      return s === null ? initial : (JSON.parse(s) as T);
    } catch {
      return initial;
    }
  });
  const set = (nv: T) => {
    setV(nv);
    try {
      localStorage.setItem(key, JSON.stringify(nv));
    } catch {
      /* storage full or disabled: keep it in memory */
    }
  };
  return [v, set];
}
