//! A message's *shape*: its tokens with the values that obviously vary masked, and its
//! severity — what the clustering of `pattern` works on (see the module above).
//!
//! Tokens are the message's whitespace-separated words, further cut after each `,` and `;`
//! (so that JSON and `a=1,b=2` lists give one token per member); a cut without whitespace is
//! remembered, so the pattern prints the text as it was. In each token, these are masked (each
//! becomes a *placeholder*, printed `<*>`):
//!
//! | type | what |
//! |---|---|
//! | `UUID` | `8-4-4-4-12` hexadecimal groups |
//! | `Time` | ISO 8601 dates and date-times (`2026-01-02`, `2026-01-02T10:00:00.123Z`), `2026/01/02`, times of day (`10:00:00`, `10:00:00.5`) |
//! | `IPAddress` | IPv4 with an optional port, IPv6 (a whole token) |
//! | `Hex` | `0x…`, and runs of 8 or more hexadecimal digits with at least one digit and one letter |
//! | `Number` | integers and decimals (with exponent), also when a unit follows (`327ms`), not inside a word (`v1`, `x86_64`, `http2` stay) |
//! | `Text` | a token longer than [`MAX_TOKEN_BYTES`] (a blob: base64, a stack, a long URL) |
//! | `Token` | the rest of a message after its first [`MAX_TOKENS`] tokens, as one placeholder |
//!
//! The shape is one string (the *key*, grouped by DataFusion): the severity's letter, then the
//! tokens separated by a space, or by `\x1F` where the message had no whitespace; a
//! placeholder is `\x01` and its type's letter. The control characters `\x01` and `\x1F` of a
//! message are replaced by U+FFFD first, so a key always reads back as it was written.

use std::net::Ipv6Addr;

use regex::{Captures, Regex};

/// Tokens of a message that are kept apart; the rest of a longer message is one placeholder.
pub const MAX_TOKENS: usize = 128;
/// Longest token kept as text; a longer one is one placeholder (`Text`).
pub const MAX_TOKEN_BYTES: usize = 128;
/// How far into a message its severity is looked for.
pub const SEVERITY_SCAN_BYTES: usize = 256;

pub(crate) const PLACEHOLDER: char = '\u{1}';
pub(crate) const GLUE: char = '\u{1F}';
const SPACE: char = ' ';

/// The types of masked values, by their letter in a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Uuid,
    Time,
    Ip,
    Hex,
    Number,
    Text,
    Token,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::Uuid => 'U',
            Kind::Time => 'T',
            Kind::Ip => 'I',
            Kind::Hex => 'H',
            Kind::Number => 'N',
            Kind::Text => 'X',
            Kind::Token => 'R',
        }
    }

    pub fn from_letter(c: char) -> Kind {
        match c {
            'U' => Kind::Uuid,
            'T' => Kind::Time,
            'I' => Kind::Ip,
            'H' => Kind::Hex,
            'N' => Kind::Number,
            'X' => Kind::Text,
            _ => Kind::Token,
        }
    }

    /// The name of the type in `@tokens` (`inferredTokenName` is `<name>-<position>`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Uuid => "UUID",
            Kind::Time => "Time",
            Kind::Ip => "IPAddress",
            Kind::Hex => "Hex",
            Kind::Number => "Number",
            Kind::Text => "Text",
            Kind::Token => "Token",
        }
    }
}

/// Severities, most severe first; the letter starts a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Info,
    Debug,
    Trace,
    Unknown,
}

impl Severity {
    pub const ALL: [Severity; 7] = [
        Severity::Fatal,
        Severity::Error,
        Severity::Warning,
        Severity::Info,
        Severity::Debug,
        Severity::Trace,
        Severity::Unknown,
    ];

    pub fn letter(self) -> char {
        match self {
            Severity::Fatal => 'F',
            Severity::Error => 'E',
            Severity::Warning => 'W',
            Severity::Info => 'I',
            Severity::Debug => 'D',
            Severity::Trace => 'T',
            Severity::Unknown => 'U',
        }
    }

    pub fn from_letter(c: char) -> Severity {
        Severity::ALL
            .into_iter()
            .find(|s| s.letter() == c)
            .unwrap_or(Severity::Unknown)
    }

    /// `@severityLabel`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Fatal => "Fatal",
            Severity::Error => "Error",
            Severity::Warning => "Warning",
            Severity::Info => "Info",
            Severity::Debug => "Debug",
            Severity::Trace => "Trace",
            Severity::Unknown => "Unknown",
        }
    }
}

/// The severity of a message, from its first [`SEVERITY_SCAN_BYTES`] bytes: the letter of a
/// klog header (`E0102 10:00:00.000000 …`), else the first level word (`fatal`, `critical`,
/// `error`, `warn`, `info`, `debug`, `trace`… — see [`level_word`]) written as a level is:
/// in capitals (`ERROR`), as the value of a level key (`level=error`, `"level":"warn"`,
/// `severity: info`), in brackets (`[warn]`, `<error>`), or as the message's first word;
/// `Unknown` without any. (A level word in running text — `trace=…`, `no error` — is not
/// one.)
pub fn severity(message: &str) -> Severity {
    let head = &message.as_bytes()[..message.len().min(SEVERITY_SCAN_BYTES)];
    // klog / glog: `Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg`.
    let start = head.iter().position(|b| !b.is_ascii_whitespace());
    if let Some(s) = start
        && head.len() >= s + 6
        && head[s + 1..s + 5].iter().all(u8::is_ascii_digit)
        && head[s + 5] == b' '
    {
        match head[s] {
            b'F' => return Severity::Fatal,
            b'E' => return Severity::Error,
            b'W' => return Severity::Warning,
            b'I' => return Severity::Info,
            _ => {}
        }
    }
    let mut previous: Option<(usize, usize)> = None;
    let mut at = 0;
    while at < head.len() {
        if !head[at].is_ascii_alphabetic() {
            at += 1;
            continue;
        }
        let begin = at;
        while at < head.len() && head[at].is_ascii_alphabetic() {
            at += 1;
        }
        let word = &head[begin..at];
        if let Some(level) = level_word(word) {
            let before = &head[previous.map_or(0, |p| p.1)..begin];
            let capitals = word.iter().all(u8::is_ascii_uppercase);
            let first = previous.is_none();
            let keyed = previous.is_some_and(|(b, e)| is_level_key(&head[b..e]))
                && before.iter().all(|c| b"=:\"' \t".contains(c));
            let bracketed = begin > 0
                && matches!(head[begin - 1], b'[' | b'<' | b'(')
                && matches!(head.get(at), Some(b']' | b'>' | b')'));
            if capitals || first || keyed || bracketed {
                return level;
            }
        }
        previous = Some((begin, at));
    }
    Severity::Unknown
}

/// Keys whose value is a level (`level=`, `"severity":`, `lvl:`).
fn is_level_key(word: &[u8]) -> bool {
    [
        &b"level"[..],
        b"lvl",
        b"severity",
        b"loglevel",
        b"levelname",
        b"priority",
    ]
    .iter()
    .any(|k| word.eq_ignore_ascii_case(k))
}

/// The severity a word names, if it is a level word (any case).
fn level_word(word: &[u8]) -> Option<Severity> {
    if word.len() < 3 || word.len() > 11 {
        return None;
    }
    let mut lower = [0u8; 11];
    for (d, s) in lower.iter_mut().zip(word) {
        *d = s.to_ascii_lowercase();
    }
    Some(match &lower[..word.len()] {
        b"fatal" | b"critical" | b"crit" | b"panic" | b"emerg" | b"emergency" | b"alert" => {
            Severity::Fatal
        }
        b"error" | b"err" | b"severe" => Severity::Error,
        b"warn" | b"warning" => Severity::Warning,
        b"info" | b"notice" | b"information" => Severity::Info,
        b"debug" | b"dbg" | b"fine" | b"config" => Severity::Debug,
        b"trace" | b"verbose" | b"finer" | b"finest" => Severity::Trace,
        _ => return None,
    })
}

/// Masks values inside tokens; built once per query.
#[derive(Debug)]
pub struct Masker {
    values: Regex,
}

impl Default for Masker {
    fn default() -> Self {
        Self::new()
    }
}

impl Masker {
    pub fn new() -> Masker {
        // Every alternative needs a digit, so tokens without one skip the regex. Number has
        // no word boundary at its end: a unit may follow (`327ms`), a letter may not precede.
        let values = Regex::new(concat!(
            r"(?P<u>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)",
            r"|(?P<t>\b\d{4}-\d{1,2}-\d{1,2}(?:T\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b",
            r"|\b\d{4}/\d{1,2}/\d{1,2}\b",
            r"|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\b)",
            r"|(?P<i>\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d{1,5})?\b)",
            r"|(?P<h>\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b)",
            r"|(?P<n>\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)",
        ))
        .expect("the masking regex compiles");
        Masker { values }
    }

    /// The key of a message (see the module documentation).
    pub fn key(&self, message: &str) -> String {
        let mut key = String::with_capacity(message.len().min(4096) + 1);
        key.push(severity(message).letter());
        let mut tokens = message
            .split_whitespace()
            .flat_map(|word| {
                word.split_inclusive([',', ';'])
                    .enumerate()
                    .map(|(i, token)| (token, i > 0))
            })
            .peekable();
        let mut count = 0;
        while let Some((token, glued)) = tokens.next() {
            if count > 0 {
                key.push(if glued { GLUE } else { SPACE });
            }
            if count == MAX_TOKENS - 1 && tokens.peek().is_some() {
                push_placeholder(&mut key, Kind::Token);
                break;
            }
            self.push_token(&mut key, token);
            count += 1;
        }
        key
    }

    fn push_token(&self, key: &mut String, token: &str) {
        if token.len() > MAX_TOKEN_BYTES {
            push_placeholder(key, Kind::Text);
            return;
        }
        let cleaned;
        let token = if token.contains([PLACEHOLDER, GLUE]) {
            cleaned = token.replace([PLACEHOLDER, GLUE], "\u{FFFD}");
            cleaned.as_str()
        } else {
            token
        };
        if !token.bytes().any(|b| b.is_ascii_digit()) {
            key.push_str(token);
            return;
        }
        if is_ipv6(token) {
            push_placeholder(key, Kind::Ip);
            return;
        }
        let mut last = 0;
        for caps in self.values.captures_iter(token) {
            let Some(m) = caps.get(0) else { continue };
            let Some(kind) = kind_of(&caps, m.as_str()) else {
                continue;
            };
            key.push_str(&token[last..m.start()]);
            push_placeholder(key, kind);
            last = m.end();
        }
        key.push_str(&token[last..]);
    }
}

fn push_placeholder(key: &mut String, kind: Kind) {
    key.push(PLACEHOLDER);
    key.push(kind.letter());
}

/// The type of a match, `None` when it is to stay text (hexadecimal letters without a digit:
/// `deadbeef`, `accede` are words).
fn kind_of(caps: &Captures<'_>, text: &str) -> Option<Kind> {
    if caps.name("u").is_some() {
        Some(Kind::Uuid)
    } else if caps.name("t").is_some() {
        Some(Kind::Time)
    } else if caps.name("i").is_some() {
        Some(Kind::Ip)
    } else if caps.name("h").is_some() {
        let hex = text.strip_prefix("0x").or(text.strip_prefix("0X"));
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        match hex {
            Some(_) => Some(Kind::Hex),
            None if digits == text.len() => Some(Kind::Number),
            None if digits > 0 => Some(Kind::Hex),
            None => None,
        }
    } else {
        Some(Kind::Number)
    }
}

/// An IPv6 address, bare or in brackets, maybe with a port or a trailing punctuation mark.
fn is_ipv6(token: &str) -> bool {
    if token.matches(':').count() < 2 {
        return false;
    }
    let t = token.trim_end_matches([',', ';', '.', ')', ']', '"', '\'']);
    let t = t.trim_start_matches(['(', '"', '\'']);
    let t = match t.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => t,
    };
    t.parse::<Ipv6Addr>().is_ok()
}

/// One token of a key: its text (placeholders included) and whether it was cut from the
/// previous token without whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyToken<'a> {
    pub text: &'a str,
    pub glued: bool,
}

/// The severity of a key (its first letter).
pub fn key_severity(key: &str) -> Severity {
    key.chars()
        .next()
        .map_or(Severity::Unknown, Severity::from_letter)
}

/// A key taken apart: severity and tokens.
pub fn read_key(key: &str) -> (Severity, Vec<KeyToken<'_>>) {
    let severity = key_severity(key);
    let rest = key
        .get(key.chars().next().map_or(0, char::len_utf8)..)
        .unwrap_or("");
    let mut tokens = Vec::new();
    if rest.is_empty() {
        return (severity, tokens);
    }
    let mut glued = false;
    let mut start = 0;
    for (i, c) in rest.char_indices() {
        if c == SPACE || c == GLUE {
            tokens.push(KeyToken {
                text: &rest[start..i],
                glued,
            });
            glued = c == GLUE;
            start = i + c.len_utf8();
        }
    }
    tokens.push(KeyToken {
        text: &rest[start..],
        glued,
    });
    (severity, tokens)
}

/// Key text as shown: each placeholder as `<*>`.
pub fn render(text: &str, out: &mut String) {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == PLACEHOLDER {
            chars.next();
            out.push_str("<*>");
        } else {
            out.push(c);
        }
    }
}

/// The types of the placeholders of a key text, in order.
pub fn placeholders(text: &str) -> impl Iterator<Item = Kind> + '_ {
    let mut chars = text.chars();
    std::iter::from_fn(move || {
        loop {
            match chars.next()? {
                PLACEHOLDER => return Some(chars.next().map_or(Kind::Token, Kind::from_letter)),
                _ => continue,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(key: &str) -> String {
        let (sev, tokens) = read_key(key);
        let mut out = format!("{}|", sev.label());
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 && !t.glued {
                out.push(' ');
            }
            render(t.text, &mut out);
        }
        out
    }

    fn kinds(key: &str) -> Vec<&'static str> {
        placeholders(key).map(Kind::name).collect()
    }

    #[test]
    fn values_are_masked_by_type() {
        let m = Masker::new();
        let cases = [
            (
                "2023-01-01 19:00:01 [INFO] Calling DynamoDB for resource id 12342342k124-12345",
                "Info|<*> <*> [INFO] Calling DynamoDB for resource id <*>k124-<*>",
                vec!["Time", "Time", "Number", "Number"],
            ),
            (
                "[INFO] Request time: 327 ms",
                "Info|[INFO] Request time: <*> ms",
                vec!["Number"],
            ),
            (
                "GET /api/v1/users/42?x=0x1f from 10.0.0.12:8080 took 3.5ms",
                "Unknown|GET /api/v1/users/<*>?x=<*> from <*> took <*>ms",
                vec!["Number", "Hex", "IPAddress", "Number"],
            ),
            (
                "req 550e8400-e29b-41d4-a716-446655440000 on x86_64 http2 sha 3ff231242342 word deadbeef",
                "Unknown|req <*> on x86_64 http2 sha <*> word deadbeef",
                vec!["UUID", "Hex"],
            ),
            (
                "peer [2001:db8::1]:443 at 2026-01-02T10:00:00.123Z",
                "Unknown|peer <*> at <*>",
                vec!["IPAddress", "Time"],
            ),
        ];
        for (message, want, want_kinds) in cases {
            let key = m.key(message);
            assert_eq!(shown(&key), want, "{message}");
            assert_eq!(kinds(&key), want_kinds, "{message}");
        }
    }

    #[test]
    fn tokens_are_cut_after_commas_and_keep_their_spacing() {
        let m = Masker::new();
        let key = m.key(r#"{"level":"warn","n":12, "msg":"x y"}"#);
        let (sev, tokens) = read_key(&key);
        assert_eq!(sev, Severity::Warning);
        let texts: Vec<(&str, bool)> = tokens.iter().map(|t| (t.text, t.glued)).collect();
        assert_eq!(
            texts,
            [
                (r#"{"level":"warn","#, false),
                ("\"n\":\u{1}N,", true),
                (r#""msg":"x"#, false),
                (r#"y"}"#, false),
            ]
        );
        assert_eq!(
            shown(&key),
            r#"Warning|{"level":"warn","n":<*>, "msg":"x y"}"#
        );
    }

    #[test]
    fn long_tokens_and_long_messages_are_bounded() {
        let m = Masker::new();
        let blob = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(shown(&m.key(&format!("x {blob} y"))), "Unknown|x <*> y");
        let long: Vec<String> = (0..1000).map(|i| format!("w{i}x")).collect();
        let key = m.key(&long.join(" "));
        let (_, tokens) = read_key(&key);
        assert_eq!(tokens.len(), MAX_TOKENS);
        assert_eq!(tokens.last().map(|t| t.text), Some("\u{1}R"));
        assert!(key.len() < MAX_TOKENS * (MAX_TOKEN_BYTES + 1) + 1);
    }

    #[test]
    fn the_key_alphabet_cannot_be_forged() {
        let m = Masker::new();
        let key = m.key("a\u{1}N b\u{1F}c");
        assert_eq!(shown(&key), "Unknown|a\u{FFFD}N b\u{FFFD}c");
        assert_eq!(placeholders(&key).count(), 0);
        assert_eq!(shown(&m.key("")), "Unknown|");
        assert_eq!(read_key(&m.key("  \t ")).1.len(), 0);
    }

    #[test]
    fn severities() {
        for (message, want) in [
            ("E0102 10:00:00.000000 1 main.go:12] boom", Severity::Error),
            ("I0102 10:00:00.000000 1 main.go:12] ok", Severity::Info),
            ("2026-01-02 WARN disk almost full", Severity::Warning),
            (r#"{"level":"debug","msg":"x"}"#, Severity::Debug),
            ("level=error msg=failed", Severity::Error),
            ("[CRITICAL] out of memory", Severity::Fatal),
            ("GET /index.html 200", Severity::Unknown),
            ("Errors are not words we know", Severity::Unknown),
            ("GET /x 200 trace=abc", Severity::Unknown),
            ("request had no error", Severity::Unknown),
            ("request had an ERROR", Severity::Error),
            ("error: cannot open file", Severity::Error),
            ("ts=1 severity: Warning msg=x", Severity::Warning),
            ("2026-01-02 10:00:00 <notice> started", Severity::Info),
            ("Jan 02 host app[12]: [trace] step", Severity::Trace),
            (r#"{"msg":"x","level":"INFO"}"#, Severity::Info),
        ] {
            assert_eq!(severity(message), want, "{message}");
        }
    }
}
