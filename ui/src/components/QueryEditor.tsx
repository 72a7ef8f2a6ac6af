// The Logs Insights editor: a plain textarea (so typing, selection, undo and screen readers
// behave as everywhere) over a highlighted copy of its text; the server's syntax check marks
// the error at its line and column.

import { useMemo, useRef } from 'react';
import { offsetOf, tokenize } from '../lib/highlight';

export interface EditorError {
  line: number;
  column: number;
  message: string;
}

export function QueryEditor(props: {
  value: string;
  onChange: (v: string) => void;
  onRun?: () => void;
  error?: EditorError | null;
  rows?: number;
  label?: string;
}) {
  const pre = useRef<HTMLPreElement>(null);
  const highlighted = useMemo(() => renderHighlighted(props.value, props.error ?? null), [props.value, props.error]);
  return (
    <div className="editor">
      <div className="editor-box" style={{ minHeight: `${(props.rows ?? 6) * 1.5 + 1}em` }}>
        <pre ref={pre} className="editor-highlight" aria-hidden="true" data-testid="editor-highlight">
          {highlighted}
          {'\n'}
        </pre>
        <textarea
          className="editor-input"
          aria-label={props.label ?? 'Query'}
          aria-invalid={props.error ? true : undefined}
          aria-describedby={props.error ? 'editor-error' : undefined}
          spellCheck={false}
          autoCapitalize="off"
          autoCorrect="off"
          value={props.value}
          rows={props.rows ?? 6}
          onChange={(e) => props.onChange(e.target.value)}
          onScroll={(e) => {
            if (pre.current) {
              pre.current.scrollTop = e.currentTarget.scrollTop;
              pre.current.scrollLeft = e.currentTarget.scrollLeft;
            }
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              props.onRun?.();
            }
          }}
          data-testid="query-editor"
        />
      </div>
      {props.error && (
        <p id="editor-error" className="error editor-error" role="status" data-testid="editor-error">
          Line {props.error.line}, column {props.error.column}: {props.error.message}
        </p>
      )}
    </div>
  );
}

function renderHighlighted(src: string, error: EditorError | null): React.ReactNode[] {
  const errAt = error ? offsetOf(src, error.line, error.column) : -1;
  const out: React.ReactNode[] = [];
  let off = 0;
  let key = 0;
  for (const t of tokenize(src)) {
    const end = off + t.text.length;
    if (errAt >= off && errAt < end) {
      const a = t.text.slice(0, errAt - off);
      const b = t.text.slice(errAt - off, errAt - off + 1);
      const c = t.text.slice(errAt - off + 1);
      if (a) out.push(<span key={key++} className={`tok-${t.kind}`}>{a}</span>);
      out.push(
        <mark key={key++} className={`tok-${t.kind} error-mark`} data-testid="error-mark">
          {b === '\n' ? ' \n' : b}
        </mark>,
      );
      if (c) out.push(<span key={key++} className={`tok-${t.kind}`}>{c}</span>);
    } else {
      out.push(
        <span key={key++} className={`tok-${t.kind}`}>
          {t.text}
        </span>,
      );
    }
    off = end;
  }
  if (errAt >= src.length && error) out.push(<mark key={key++} className="error-mark" data-testid="error-mark">{' '}</mark>);
  return out;
}
