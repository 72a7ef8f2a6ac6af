// The PromQL editor of the metrics explorer: a plain textarea over a highlighted copy of its
// text (as the Logs Insights editor), with a list of completions under the word being typed —
// metric and function names, label names, label values (lib/prometheus.ts decides which).
// Arrow keys move in the list, Enter or Tab accepts, Escape closes, Ctrl+Space opens it,
// Ctrl/Cmd+Enter runs the query.

import { useEffect, useId, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { applyCompletion, highlightPromql, promqlCompletions, type Catalogue, type CompletionResult, type PromCursor } from '../lib/prometheus';

export function PromqlEditor(props: {
  value: string;
  onChange: (v: string) => void;
  onRun?: () => void;
  catalogue: Catalogue;
  /** Told where the cursor is after each edit, to fetch the label names or values it needs. */
  onContext?: (c: PromCursor) => void;
  rows?: number;
  label?: string;
}) {
  const ta = useRef<HTMLTextAreaElement>(null);
  const pre = useRef<HTMLPreElement>(null);
  const anchor = useRef<HTMLSpanElement>(null);
  const listId = useId();
  // `want`: the list should show (typing, Ctrl+Space); it does when there are candidates.
  const [want, setWant] = useState<{ explicit: boolean } | null>(null);
  const [cursor, setCursor] = useState(0);
  const [active, setActive] = useState(0);
  const [pos, setPos] = useState<{ top: number; left: number } | null>(null);
  const nextCursor = useRef<number | null>(null);
  const { onContext } = props;

  const result: CompletionResult | null = useMemo(
    () => (want ? promqlCompletions(props.value, Math.min(cursor, props.value.length), props.catalogue) : null),
    [want, props.value, cursor, props.catalogue],
  );
  const shown = (() => {
    if (!want || !result || result.items.length === 0) return [];
    const k = result.context.kind;
    if (!want.explicit && !result.prefix && k !== 'label' && k !== 'value') return [];
    // Nothing to offer when what is typed is already the only candidate.
    const typed = props.value.slice(result.from, result.to);
    if (result.items.length === 1 && result.items[0].insert === typed) return [];
    return result.items;
  })();
  const open = shown.length > 0;
  const sel = Math.min(active, shown.length - 1);

  useEffect(() => {
    if (result && result.context.kind !== 'none') onContext?.(result);
    // Only when the place changes, not when the catalogue fills in.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [result?.from, result?.context.kind, props.value, want]);

  // The accepted completion's cursor, once React has put the new text in the textarea.
  useLayoutEffect(() => {
    if (nextCursor.current !== null && ta.current) {
      ta.current.setSelectionRange(nextCursor.current, nextCursor.current);
      nextCursor.current = null;
    }
  }, [props.value]);

  // The list sits under the start of the word, measured on the highlighted copy.
  useLayoutEffect(() => {
    if (!open || !anchor.current || !pre.current) {
      setPos(null);
      return;
    }
    const a = anchor.current;
    const lineHeight = parseFloat(getComputedStyle(pre.current).lineHeight) || 20;
    setPos({ top: a.offsetTop - pre.current.scrollTop + lineHeight, left: Math.max(0, a.offsetLeft - pre.current.scrollLeft) });
  }, [open, result?.from, props.value]);

  useEffect(() => {
    document.getElementById(`${listId}-${sel}`)?.scrollIntoView?.({ block: 'nearest' });
  }, [sel, listId]);

  const highlighted = useMemo(() => {
    const parts = highlightPromql(props.value);
    const at = open && result ? result.from : -1;
    const out: React.ReactNode[] = [];
    let off = 0;
    parts.forEach((p, i) => {
      const end = off + p.text.length;
      if (at >= off && at < end) {
        if (at > off) out.push(<span key={`${i}a`} className={`tok-${p.cls}`}>{p.text.slice(0, at - off)}</span>);
        out.push(<span key="anchor" ref={anchor} />);
        out.push(<span key={`${i}b`} className={`tok-${p.cls}`}>{p.text.slice(at - off)}</span>);
      } else out.push(<span key={i} className={`tok-${p.cls}`}>{p.text}</span>);
      off = end;
    });
    if (at >= props.value.length) out.push(<span key="anchor" ref={anchor} />);
    return out;
  }, [props.value, open, result]);

  function accept(i: number) {
    if (!result) return;
    const item = shown[i];
    const next = applyCompletion(props.value, result, item);
    nextCursor.current = next.cursor;
    setCursor(next.cursor);
    setActive(0);
    // After a function's `(` its argument comes: keep offering.
    setWant(item.kind === 'function' || item.kind === 'aggregation' ? { explicit: true } : null);
    props.onChange(next.text);
  }

  return (
    <div className="editor promql-editor">
      <div className="editor-box" style={{ minHeight: `${(props.rows ?? 3) * 1.5 + 1}em` }}>
        <pre ref={pre} className="editor-highlight" aria-hidden="true" data-testid="promql-highlight">
          {highlighted}
          {'\n'}
        </pre>
        <textarea
          ref={ta}
          className="editor-input"
          role="combobox"
          aria-label={props.label ?? 'PromQL query'}
          aria-autocomplete="list"
          aria-expanded={open}
          aria-controls={open ? listId : undefined}
          aria-activedescendant={open ? `${listId}-${sel}` : undefined}
          spellCheck={false}
          autoCapitalize="off"
          autoCorrect="off"
          value={props.value}
          rows={props.rows ?? 3}
          onChange={(e) => {
            setCursor(e.target.selectionStart ?? e.target.value.length);
            setActive(0);
            setWant({ explicit: false });
            props.onChange(e.target.value);
          }}
          onClick={() => setWant(null)}
          onBlur={() => setWant(null)}
          onScroll={(e) => {
            if (pre.current) {
              pre.current.scrollTop = e.currentTarget.scrollTop;
              pre.current.scrollLeft = e.currentTarget.scrollLeft;
            }
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              setWant(null);
              props.onRun?.();
              return;
            }
            if (e.key === ' ' && e.ctrlKey) {
              e.preventDefault();
              setCursor(e.currentTarget.selectionStart ?? 0);
              setActive(0);
              setWant({ explicit: true });
              return;
            }
            if (!open) {
              if (e.key === 'ArrowLeft' || e.key === 'ArrowRight' || e.key === 'Home' || e.key === 'End') setWant(null);
              return;
            }
            if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
              e.preventDefault();
              const n = shown.length;
              setActive((sel + (e.key === 'ArrowDown' ? 1 : n - 1)) % n);
            } else if ((e.key === 'Enter' && !e.shiftKey) || e.key === 'Tab') {
              e.preventDefault();
              accept(sel);
            } else if (e.key === 'Escape') {
              e.preventDefault();
              e.stopPropagation();
              setWant(null);
            } else if (e.key === 'ArrowLeft' || e.key === 'ArrowRight' || e.key === 'Home' || e.key === 'End' || e.key === 'PageUp' || e.key === 'PageDown') {
              setWant(null);
            }
          }}
          data-testid="promql-editor"
        />
        {open && (
          <ul
            id={listId}
            role="listbox"
            aria-label="Completions"
            className="completions"
            data-testid="completions"
            style={pos ? { top: pos.top, left: pos.left } : undefined}
          >
            {shown.map((c, i) => (
              <li
                key={`${c.kind}:${c.label}`}
                id={`${listId}-${i}`}
                role="option"
                aria-selected={i === sel}
                className={i === sel ? 'on' : undefined}
                // Keeps the focus (and the cursor) in the textarea.
                onMouseDown={(e) => {
                  e.preventDefault();
                  accept(i);
                }}
                onMouseEnter={() => setActive(i)}
              >
                <span className="completion-label">{c.label}</span>
                <span className="completion-kind">{c.kind}</span>
              </li>
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}
