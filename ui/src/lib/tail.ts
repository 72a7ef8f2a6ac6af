// Live tail over `GET /v1/tail` (server-sent events). EventSource cannot send an
// Authorization header, so the stream is read with fetch and parsed here.

import { authHeaders, qs, type StoredEvent } from './api';

export interface TailHandlers {
  onEvent: (e: StoredEvent) => void;
  onGap?: () => void;
  onError?: (message: string) => void;
}

/** Parses a chunk of an event stream; returns the events and what is left for next time. */
export function parseSse(buffer: string): { events: { event: string; data: string }[]; rest: string } {
  const events: { event: string; data: string }[] = [];
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':') || line === '') continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length) events.push({ event, data: data.join('\n') });
  }
  return { events, rest };
}

export function tail(group: string, stream: string | undefined, backlog: number, h: TailHandlers): () => void {
  const ctl = new AbortController();
  (async () => {
    const res = await fetch(`/v1/tail${qs({ group, stream, backlog })}`, { headers: authHeaders(), signal: ctl.signal });
    if (!res.ok || !res.body) {
      const text = await res.text();
      let msg = `HTTP ${res.status}`;
      try {
        msg = JSON.parse(text).message ?? msg;
      } catch {
        /* not JSON */
      }
      h.onError?.(msg);
      return;
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const { events, rest } = parseSse(buf + value);
      buf = rest;
      for (const e of events) {
        if (e.event === 'log') h.onEvent(JSON.parse(e.data) as StoredEvent);
        else if (e.event === 'gap') h.onGap?.();
      }
    }
  })().catch((e: Error) => {
    if (e.name !== 'AbortError') h.onError?.(e.message);
  });
  return () => ctl.abort();
}
