//! Tokens of Logs Insights QL (reference §5.1).
//!
//! The lexer is pulled one token at a time by the parser. `/` is ambiguous — division or the
//! start of a `/regex/` — so the lexer always yields [`TokenKind::Slash`] and the parser, which
//! knows whether it expects an operand, asks for [`Lexer::regex_at`] to re-read it as a regex.

use crate::ast::{Period, TimeUnit};
use crate::error::{ParseError, Position};

/// A point in the source: byte offset for slicing, line/column (characters) for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl Cursor {
    pub fn position(self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A field path or a word: `status`, `@timestamp`, `kubernetes.pod_name`, `a.0.b`,
    /// `` `foo-bar` ``, `` kubernetes.`odd.key` ``. `quoted` is true when any segment was in
    /// backticks; a quoted word is never a keyword.
    Name {
        segments: Vec<String>,
        quoted: bool,
    },
    Int(i64),
    Float(f64),
    Str(String),
    Period(Period),
    /// Only produced by [`Lexer::regex_at`]: the raw text between the slashes.
    Regex(String),
    Pipe,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Percent,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// `=~`
    Tilde,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: Cursor,
}

impl Token {
    pub fn pos(&self) -> Position {
        self.start.position()
    }

    /// The lower-cased word if this token could be a keyword (one unquoted segment).
    pub fn word(&self) -> Option<String> {
        match &self.kind {
            TokenKind::Name { segments, quoted } if !quoted && segments.len() == 1 => {
                Some(segments[0].to_ascii_lowercase())
            }
            _ => None,
        }
    }

    pub fn is_word(&self, w: &str) -> bool {
        self.word().as_deref() == Some(w)
    }

    /// How the token is named in messages: `'|'`, `'foo'`, `string "x"`, `end of query`.
    pub fn describe(&self) -> String {
        use TokenKind::*;
        match &self.kind {
            Name { segments, quoted } => {
                let text = if *quoted {
                    crate::display::field_path_text(segments)
                } else {
                    segments.join(".")
                };
                format!("'{text}'")
            }
            Int(n) => format!("number {n}"),
            Float(f) => format!("number {f:?}"),
            Str(s) => format!("string {s:?}"),
            Period(p) => format!("time period {p}"),
            Regex(r) => format!("regex /{r}/"),
            Eof => "end of query".to_string(),
            other => format!("'{}'", punct_text(other)),
        }
    }
}

pub(crate) fn punct_text(kind: &TokenKind) -> &'static str {
    use TokenKind::*;
    match kind {
        Pipe => "|",
        Comma => ",",
        LParen => "(",
        RParen => ")",
        LBracket => "[",
        RBracket => "]",
        Plus => "+",
        Minus => "-",
        Star => "*",
        Slash => "/",
        Caret => "^",
        Percent => "%",
        Eq => "=",
        NotEq => "!=",
        Lt => "<",
        LtEq => "<=",
        Gt => ">",
        GtEq => ">=",
        Tilde => "=~",
        _ => "?",
    }
}

/// Characters allowed in an unquoted name segment (§5.1: alphanumerics, `_`, `@`).
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '@'
}

/// Characters that may start an unquoted name (a leading digit would be a number).
pub(crate) fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '@'
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    cur: Cursor,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer {
            src,
            cur: Cursor {
                offset: 0,
                line: 1,
                column: 1,
            },
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.cur.offset..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.cur.offset..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.cur.offset += c.len_utf8();
        if c == '\n' {
            self.cur.line += 1;
            self.cur.column = 1;
        } else {
            self.cur.column += 1;
        }
        Some(c)
    }

    /// Skips whitespace and `#` comments (whole lines, indented, or at the end of a line).
    fn skip_trivia(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                while let Some(c) = self.peek() {
                    if c == '\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    pub fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia();
        let start = self.cur;
        let tok = |kind| Ok(Token { kind, start });
        let Some(c) = self.peek() else {
            return tok(TokenKind::Eof);
        };
        if c.is_ascii_digit() {
            return self.number(start);
        }
        if is_name_start(c) || c == '`' {
            return self.name(start);
        }
        if c == '"' || c == '\'' {
            return self.string(start);
        }
        self.bump();
        use TokenKind::*;
        let kind = match c {
            '|' => Pipe,
            ',' => Comma,
            '(' => LParen,
            ')' => RParen,
            '[' => LBracket,
            ']' => RBracket,
            '+' => Plus,
            '-' => Minus,
            '*' => Star,
            '/' => Slash,
            '^' => Caret,
            '%' => Percent,
            '=' if self.peek() == Some('~') => {
                self.bump();
                Tilde
            }
            '=' => Eq,
            '!' if self.peek() == Some('=') => {
                self.bump();
                NotEq
            }
            '<' if self.peek() == Some('=') => {
                self.bump();
                LtEq
            }
            '<' => Lt,
            '>' if self.peek() == Some('=') => {
                self.bump();
                GtEq
            }
            '>' => Gt,
            '!' => {
                return Err(ParseError::expected(
                    start.position(),
                    "unexpected '!'; write '!=' for 'not equal' or 'not' to negate",
                    &["'!='", "'not'"],
                ));
            }
            other => {
                return Err(ParseError::new(
                    start.position(),
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        tok(kind)
    }

    fn name(&mut self, start: Cursor) -> Result<Token, ParseError> {
        let mut segments = Vec::new();
        let mut quoted = false;
        loop {
            if self.peek() == Some('`') {
                segments.push(self.backtick()?);
                quoted = true;
            } else {
                let from = self.cur.offset;
                while self.peek().is_some_and(is_name_char) {
                    self.bump();
                }
                segments.push(self.src[from..self.cur.offset].to_string());
            }
            // A dot continues the path only when a segment follows directly (§5.1 dotted
            // JSON paths, arrays flattened as `a.0.b`).
            if self.peek() == Some('.') && self.peek2().is_some_and(|c| is_name_char(c) || c == '`')
            {
                self.bump();
            } else {
                break;
            }
        }
        Ok(Token {
            kind: TokenKind::Name { segments, quoted },
            start,
        })
    }

    /// A backtick-quoted segment; a doubled backtick stands for one backtick.
    fn backtick(&mut self) -> Result<String, ParseError> {
        let open = self.cur;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ParseError::expected(
                        open.position(),
                        "unterminated backtick-quoted name: add the closing '`'",
                        &["'`'"],
                    ));
                }
                Some('`') if self.peek() == Some('`') => {
                    self.bump();
                    out.push('`');
                }
                Some('`') => break,
                Some(c) => out.push(c),
            }
        }
        if out.is_empty() {
            return Err(ParseError::new(
                open.position(),
                "empty field name in backticks",
            ));
        }
        Ok(out)
    }

    fn string(&mut self, start: Cursor) -> Result<Token, ParseError> {
        let quote = self.bump().unwrap_or('"');
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ParseError::expected(
                        start.position(),
                        format!("unterminated string: add the closing {quote}"),
                        &[if quote == '"' { "'\"'" } else { "\"'\"" }],
                    ));
                }
                Some(c) if c == quote => break,
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('\\' | '"' | '\'')) => out.push(c),
                    // Unknown escapes stay as written, so `"C:\dir"` or a glob with `\d`
                    // keeps its backslash.
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => {
                        return Err(ParseError::new(
                            start.position(),
                            format!("unterminated string: add the closing {quote}"),
                        ));
                    }
                },
                Some(c) => out.push(c),
            }
        }
        Ok(Token {
            kind: TokenKind::Str(out),
            start,
        })
    }

    fn number(&mut self, start: Cursor) -> Result<Token, ParseError> {
        let from = self.cur.offset;
        let mut float = false;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        if self.peek() == Some('.') && self.peek2().is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let rest = &self.src[self.cur.offset + 1..];
            let mut it = rest.chars();
            let exp_ok = match it.next() {
                Some(c) if c.is_ascii_digit() => true,
                Some('+' | '-') => it.next().is_some_and(|c| c.is_ascii_digit()),
                _ => false,
            };
            if exp_ok {
                float = true;
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
        }
        let digits = &self.src[from..self.cur.offset];
        // Letters glued to a number make a time period: `5m`, `100ms`, `1d` (§5.1).
        if self.peek().is_some_and(is_name_char) {
            let unit_from = self.cur.offset;
            while self.peek().is_some_and(is_name_char) {
                self.bump();
            }
            let unit_text = &self.src[unit_from..self.cur.offset];
            return self.period(start, digits, unit_text, float);
        }
        let kind = if float {
            match digits.parse::<f64>() {
                Ok(f) if f.is_finite() => TokenKind::Float(f),
                _ => {
                    return Err(ParseError::new(
                        start.position(),
                        format!("number {digits} is out of range"),
                    ));
                }
            }
        } else {
            match digits.parse::<i64>() {
                Ok(n) => TokenKind::Int(n),
                // Integers past i64 are still numbers; keep them as floats like JSON does.
                Err(_) => match digits.parse::<f64>() {
                    Ok(f) if f.is_finite() => TokenKind::Float(f),
                    _ => {
                        return Err(ParseError::new(
                            start.position(),
                            format!("number {digits} is out of range"),
                        ));
                    }
                },
            }
        };
        Ok(Token { kind, start })
    }

    fn period(
        &self,
        start: Cursor,
        digits: &str,
        unit_text: &str,
        float: bool,
    ) -> Result<Token, ParseError> {
        const UNITS: &[&str] = &["ms", "s", "m", "h", "d", "w"];
        let unit = match unit_text {
            "ms" => TimeUnit::Millisecond,
            "s" => TimeUnit::Second,
            "m" => TimeUnit::Minute,
            "h" => TimeUnit::Hour,
            "d" => TimeUnit::Day,
            "w" => TimeUnit::Week,
            _ => {
                return Err(ParseError::expected(
                    start.position(),
                    format!(
                        "invalid time period '{digits}{unit_text}': a time period is a whole number \
                         followed by one of the units ms, s, m, h, d, w (for example 5m)"
                    ),
                    UNITS,
                ));
            }
        };
        let value = if float {
            None
        } else {
            digits.parse::<u64>().ok()
        };
        let Some(value) = value else {
            return Err(ParseError::new(
                start.position(),
                format!(
                    "invalid time period '{digits}{unit_text}': the amount must be a whole number"
                ),
            ));
        };
        let period = Period { value, unit };
        if value == 0 || period.millis().is_none() {
            return Err(ParseError::new(
                start.position(),
                format!(
                    "invalid time period '{digits}{unit_text}': it must be greater than zero and at most {} ms",
                    i64::MAX
                ),
            ));
        }
        Ok(Token {
            kind: TokenKind::Period(period),
            start,
        })
    }

    /// Re-reads the source from `at` (the position of a [`TokenKind::Slash`]) as a `/regex/`.
    /// A backslash escapes the next character (so `\/` is a slash inside the regex); the
    /// escapes are kept verbatim for the regex engine.
    pub fn regex_at(&mut self, at: Cursor) -> Result<Token, ParseError> {
        self.cur = at;
        self.bump();
        let from = self.cur.offset;
        loop {
            match self.peek() {
                None | Some('\n') => {
                    return Err(ParseError::expected(
                        at.position(),
                        "unterminated regex: add the closing '/' (write '\\/' for a slash inside it)",
                        &["'/'"],
                    ));
                }
                Some('/') => break,
                Some('\\') => {
                    self.bump();
                    if self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                Some(_) => {
                    self.bump();
                }
            }
        }
        let text = self.src[from..self.cur.offset].to_string();
        self.bump();
        Ok(Token {
            kind: TokenKind::Regex(text),
            start: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token().unwrap();
            if t.kind == TokenKind::Eof {
                return out;
            }
            out.push(t.kind);
        }
    }

    fn name(parts: &[&str], quoted: bool) -> TokenKind {
        TokenKind::Name {
            segments: parts.iter().map(|s| s.to_string()).collect(),
            quoted,
        }
    }

    #[test]
    fn paths_numbers_periods_and_operators() {
        assert_eq!(
            kinds("kubernetes.pod_name a.0.b @timestamp `foo-bar` kubernetes.`odd.key`"),
            vec![
                name(&["kubernetes", "pod_name"], false),
                name(&["a", "0", "b"], false),
                name(&["@timestamp"], false),
                name(&["foo-bar"], true),
                name(&["kubernetes", "odd.key"], true),
            ]
        );
        assert_eq!(
            kinds("foo-bar 1.5 2e3 7 5m 100ms"),
            vec![
                name(&["foo"], false),
                TokenKind::Minus,
                name(&["bar"], false),
                TokenKind::Float(1.5),
                TokenKind::Float(2000.0),
                TokenKind::Int(7),
                TokenKind::Period(Period {
                    value: 5,
                    unit: TimeUnit::Minute
                }),
                TokenKind::Period(Period {
                    value: 100,
                    unit: TimeUnit::Millisecond
                }),
            ]
        );
        assert_eq!(
            kinds("= != < <= > >= =~ ^ %"),
            vec![
                TokenKind::Eq,
                TokenKind::NotEq,
                TokenKind::Lt,
                TokenKind::LtEq,
                TokenKind::Gt,
                TokenKind::GtEq,
                TokenKind::Tilde,
                TokenKind::Caret,
                TokenKind::Percent,
            ]
        );
    }

    #[test]
    fn strings_escapes_and_comments() {
        assert_eq!(
            kinds("'it\\'s' \"a\\\"b\\n\" # comment | not a token\n\"\\d\""),
            vec![
                TokenKind::Str("it's".into()),
                TokenKind::Str("a\"b\n".into()),
                TokenKind::Str("\\d".into()),
            ]
        );
        assert_eq!(kinds("`a``b`"), vec![name(&["a`b"], true)]);
    }

    #[test]
    fn columns_count_characters() {
        let mut lx = Lexer::new("\"é\" x\n  y");
        lx.next_token().unwrap();
        let x = lx.next_token().unwrap();
        assert_eq!(x.pos(), Position { line: 1, column: 5 });
        let y = lx.next_token().unwrap();
        assert_eq!(y.pos(), Position { line: 2, column: 3 });
    }

    #[test]
    fn regex_is_read_on_demand() {
        let mut lx = Lexer::new("/a\\/b(?i)x/ | y");
        let slash = lx.next_token().unwrap();
        assert_eq!(slash.kind, TokenKind::Slash);
        let re = lx.regex_at(slash.start).unwrap();
        assert_eq!(re.kind, TokenKind::Regex("a\\/b(?i)x".into()));
        assert_eq!(lx.next_token().unwrap().kind, TokenKind::Pipe);
    }

    #[test]
    fn bad_tokens_are_errors_with_positions() {
        let e = Lexer::new("  5min").next_token().unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
        assert!(e.message.contains("5min"), "{}", e.message);
        let e = Lexer::new("\"abc").next_token().unwrap_err();
        assert!(e.message.contains("unterminated string"));
        let e = Lexer::new("0s").next_token().unwrap_err();
        assert!(e.message.contains("greater than zero"));
    }
}
