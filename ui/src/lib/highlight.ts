// Syntax highlighting of Logs Insights queries (reference §5): a tokenizer that never fails —
// whatever the text, it returns tokens covering all of it, so the highlighted copy under the
// editor's textarea always lines up with what was typed. The parser on the server decides
// what is valid (POST /v1/queries/check); this only colours.

export type TokenKind =
  | 'command'
  | 'keyword'
  | 'function'
  | 'field'
  | 'string'
  | 'regex'
  | 'number'
  | 'comment'
  | 'operator'
  | 'pipe'
  | 'text';

export interface Token {
  kind: TokenKind;
  text: string;
}

export const COMMANDS = new Set([
  'fields', 'display', 'filter', 'stats', 'sort', 'limit', 'parse', 'dedup', 'unmask', 'unnest',
  'pattern', 'diff', 'anomaly', 'filterindex', 'source', 'head', 'tail',
]);
export const KEYWORDS = new Set(['as', 'by', 'asc', 'desc', 'and', 'or', 'not', 'in', 'like', 'into']);

export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  // Whether a command may start here (start of the query or right after `|`).
  let atCommand = true;
  const push = (kind: TokenKind, text: string) => {
    const last = out[out.length - 1];
    if (kind === 'text' && last?.kind === 'text') last.text += text;
    else out.push({ kind, text });
  };
  while (i < src.length) {
    const c = src[i];
    const rest = src.slice(i);
    let m: RegExpExecArray | null;
    if (c === '#' && /(^|\n)[ \t]*$/.test(src.slice(0, i))) {
      const end = src.indexOf('\n', i);
      const text = end < 0 ? rest : src.slice(i, end);
      push('comment', text);
      i += text.length;
      continue;
    }
    if (/\s/.test(c)) {
      m = /^\s+/.exec(rest)!;
      push('text', m[0]);
      i += m[0].length;
      continue;
    }
    if (c === '|') {
      push('pipe', c);
      i++;
      atCommand = true;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      const text = src.slice(i, Math.min(j + 1, src.length));
      push('string', text);
      i += text.length;
      atCommand = false;
      continue;
    }
    if (c === '`') {
      const end = src.indexOf('`', i + 1);
      const text = end < 0 ? rest : src.slice(i, end + 1);
      push('field', text);
      i += text.length;
      atCommand = false;
      continue;
    }
    if (c === '/' && regexAllowed(out)) {
      let j = i + 1;
      while (j < src.length && src[j] !== '/' && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      const text = src.slice(i, Math.min(j + 1, src.length));
      push('regex', text);
      i += text.length;
      atCommand = false;
      continue;
    }
    if ((m = /^\d+(?:\.\d+)?(?:ms|s|m|h|d|w)?\b/.exec(rest))) {
      push('number', m[0]);
      i += m[0].length;
      atCommand = false;
      continue;
    }
    if ((m = /^@{0,2}[A-Za-z_][\w.]*/.exec(rest))) {
      const word = m[0];
      const lower = word.toLowerCase();
      const next = src.slice(i + word.length).match(/^\s*\(/);
      let kind: TokenKind;
      if (atCommand && COMMANDS.has(lower)) kind = 'command';
      else if (KEYWORDS.has(lower)) kind = 'keyword';
      else if (next) kind = 'function';
      else kind = 'field';
      push(kind, word);
      i += word.length;
      atCommand = false;
      continue;
    }
    if ((m = /^(=~|!=|<=|>=|[=<>+\-*/^%,()[\]])/.exec(rest))) {
      push('operator', m[0]);
      i += m[0].length;
      atCommand = false;
      continue;
    }
    push('text', c);
    i++;
  }
  return out;
}

/** A `/` starts a regex where an operand is expected (after an operator, keyword or `(`). */
function regexAllowed(out: Token[]): boolean {
  for (let k = out.length - 1; k >= 0; k--) {
    const t = out[k];
    if (t.kind === 'text' && /^\s+$/.test(t.text)) continue;
    if (t.kind === 'keyword' || t.kind === 'pipe' || t.kind === 'command') return true;
    if (t.kind === 'operator') return t.text !== ')' && t.text !== ']';
    return false;
  }
  return true;
}

/** 1-based line/column → offset in `src` (columns count characters). */
export function offsetOf(src: string, line: number, column: number): number {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = src.indexOf('\n', off);
    if (nl < 0) return src.length;
    off = nl + 1;
  }
  return Math.min(src.length, off + Math.max(0, column - 1));
}
