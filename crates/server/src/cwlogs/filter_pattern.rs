//! CloudWatch Logs filter patterns (FilterLogEvents' `filterPattern`), parsed once and matched
//! against each event's message.
//!
//! Three forms, told apart by their first character:
//! * **Terms** — `ERROR`, `"Failed to process"` (a phrase), `?ERROR ?WARN` (any of the `?`
//!   terms), `ERROR -DEBUG` (without), `%regex%`. Every plain term must occur, at least one of
//!   the `?` terms if there are any, none of the `-` terms. Matching is case-sensitive
//!   substring matching, as CloudWatch's.
//! * **JSON** — `{ $.level = "error" }`, `{ $.latency > 100 }`, `{ $.user.id = 1 && $.tags[0]
//!   = "a*" }`, `||`, parentheses, `IS NULL`, `IS TRUE`, `IS FALSE`, `NOT EXISTS`; string values
//!   may hold `*` wildcards or be `%regex%`. Messages that are not JSON never match.
//! * **Space-delimited** — `[ip, user, ..., status = 4*, bytes > 1000]`: the message is split at
//!   spaces (`"…"` and `[…]` are one field each, without their quotes or brackets), `...`
//!   stands for any number of fields, and each named field may carry conditions joined by
//!   `&&` / `||` (which may name other fields of the pattern).
//!
//! An empty pattern matches every event.
//!
//! Limits (issue 15, item 3; docs/security.md, "Filter patterns"): a pattern is at most
//! [`MAX_PATTERN_CHARS`] characters (CloudWatch's own limit on `filterPattern`) and nests
//! parentheses at most [`MAX_NESTING`] deep, so parsing, matching and dropping a pattern stay
//! within a server thread's stack. Matching costs at most (fields × tokens) steps per message for
//! the space-delimited form (the alignment of `...` is a dynamic programme, not a search over all
//! alignments), and linear time for `*` wildcards.
//!
//! `Display` prints a pattern that parses back to the same pattern (the fuzz target
//! `filter_pattern` and the property tests check it).

use std::collections::HashMap;
use std::fmt;

use regex::Regex;
use serde_json::Value;

/// The longest pattern accepted, in characters: CloudWatch's limit on `filterPattern`
/// (FilterLogEvents, PutMetricFilter, PutSubscriptionFilter: "Maximum length of 1024").
pub const MAX_PATTERN_CHARS: usize = 1024;

/// The deepest nesting of parentheses accepted. Each level costs a few stack frames while
/// parsing; real patterns nest one or two levels. The Logs Insights parser has the same cap
/// (`kinsight_ql`'s `MAX_NESTING`).
pub const MAX_NESTING: usize = 40;

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterPattern {
    All,
    Terms(Terms),
    Json(Cond<Selector>),
    Delimited(Delimited),
}

/// Why a pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Text(String),
    Regex(PatternRegex),
}

/// A `%regex%` of a pattern; two are equal when their source text is.
#[derive(Debug, Clone)]
pub struct PatternRegex(Regex);

impl PartialEq for PatternRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl PatternRegex {
    fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl Term {
    fn found_in(&self, message: &str) -> bool {
        match self {
            Term::Text(t) => message.contains(t.as_str()),
            Term::Regex(r) => r.is_match(message),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Terms {
    required: Vec<Term>,
    any_of: Vec<Term>,
    excluded: Vec<Term>,
}

/// A boolean combination of comparisons on `T` (a JSON selector or a field name).
#[derive(Debug, Clone, PartialEq)]
pub enum Cond<T> {
    And(Box<Cond<T>>, Box<Cond<T>>),
    Or(Box<Cond<T>>, Box<Cond<T>>),
    Cmp(T, Check),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone)]
pub enum Literal {
    Number(f64),
    /// Text, `*` matching any run of characters.
    Glob(String),
    Regex(PatternRegex),
}

impl PartialEq for Literal {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // Bit for bit: `-0` stays `-0` through printing and parsing.
            (Literal::Number(a), Literal::Number(b)) => a.to_bits() == b.to_bits(),
            (Literal::Glob(a), Literal::Glob(b)) => a == b,
            (Literal::Regex(a), Literal::Regex(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Compare(Op, Literal),
    IsNull,
    IsTrue,
    IsFalse,
    NotExists,
    Exists,
}

/// A JSON selector: `$.a.b[0].c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone)]
pub struct Delimited {
    fields: Vec<DelimitedField>,
    /// How [`Delimited::matches`] evaluates the conditions, derived from `fields`.
    plan: DelimitedPlan,
}

impl PartialEq for Delimited {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

/// A condition reads fields by name; a name stands for the first field of the pattern so named
/// (or for nothing, when no field has it). Most conditions read one field — their own — and
/// are then checked on that field's token alone, which lets `matches` align the fields with the
/// message's tokens by dynamic programming.
#[derive(Debug, Clone, Default)]
struct DelimitedPlan {
    /// Name → index of the first field with that name.
    index_of: HashMap<String, usize>,
    /// For each field, the fields whose condition reads only it.
    checks_on: Vec<Vec<usize>>,
    /// Fields whose condition reads no field of the pattern (a constant).
    constant: Vec<usize>,
    /// Whether a condition reads two or more fields: then only a single alignment is allowed.
    joint: bool,
    ellipses: usize,
    named: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum DelimitedField {
    Ellipsis,
    Named(String, Option<Cond<String>>),
}

pub fn parse(pattern: &str) -> Result<FilterPattern, PatternError> {
    let chars = pattern.chars().count();
    if chars > MAX_PATTERN_CHARS {
        return Err(PatternError(format!(
            "the filter pattern is {chars} characters long; the maximum is {MAX_PATTERN_CHARS}"
        )));
    }
    let p = pattern.trim();
    if p.is_empty() {
        return Ok(FilterPattern::All);
    }
    let mut lx = Lexer::new(p);
    match p.as_bytes()[0] {
        b'{' => {
            lx.expect('{')?;
            let c = parse_or(&mut lx, &parse_json_cmp)?;
            lx.expect('}')?;
            lx.end()?;
            Ok(FilterPattern::Json(c))
        }
        b'[' => parse_delimited(&mut lx).map(FilterPattern::Delimited),
        _ => parse_terms(p).map(FilterPattern::Terms),
    }
}

impl FilterPattern {
    /// About how much work matching `message` takes, in bytes looked at: a term pattern reads
    /// the message once a term, a JSON pattern parses it, a space-delimited one aligns each of
    /// its fields with the message's tokens. FilterLogEvents budgets calls by it.
    pub fn cost(&self, message: &str) -> usize {
        let passes = match self {
            FilterPattern::All => 0,
            FilterPattern::Terms(t) => t.required.len() + t.any_of.len() + t.excluded.len(),
            FilterPattern::Json(_) => 2,
            FilterPattern::Delimited(d) => d.fields.len() + 1,
        };
        message.len().saturating_mul(passes.max(1))
    }

    pub fn matches(&self, message: &str) -> bool {
        match self {
            FilterPattern::All => true,
            FilterPattern::Terms(t) => {
                t.required.iter().all(|x| x.found_in(message))
                    && (t.any_of.is_empty() || t.any_of.iter().any(|x| x.found_in(message)))
                    && !t.excluded.iter().any(|x| x.found_in(message))
            }
            FilterPattern::Json(c) => match serde_json::from_str::<Value>(message.trim()) {
                Ok(v @ (Value::Object(_) | Value::Array(_))) => {
                    c.eval(&|s: &Selector, check| check_json(s.resolve(&v), check))
                }
                _ => false,
            },
            FilterPattern::Delimited(d) => d.matches(message),
        }
    }
}

fn regex_of(body: &str) -> Result<PatternRegex, PatternError> {
    Regex::new(body)
        .map(PatternRegex)
        .map_err(|e| PatternError(format!("invalid regular expression %{body}%: {e}")))
}

fn parse_terms(p: &str) -> Result<Terms, PatternError> {
    let mut out = Terms::default();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut kind = 0; // 0 required, 1 any of, 2 excluded
        if chars[i] == '?' {
            kind = 1;
            i += 1;
        } else if chars[i] == '-' && i + 1 < chars.len() && !chars[i + 1].is_whitespace() {
            kind = 2;
            i += 1;
        }
        let term = if i < chars.len() && chars[i] == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(PatternError(format!("unterminated quoted term in {p:?}"))),
                    Some('\\') if matches!(chars.get(i + 1), Some('"') | Some('\\')) => {
                        s.push(chars[i + 1]);
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        s.push(*c);
                        i += 1;
                    }
                }
            }
            Term::Text(s)
        } else if i < chars.len() && chars[i] == '%' {
            let start = i + 1;
            let end = chars[start..]
                .iter()
                .position(|&c| c == '%')
                .map(|n| start + n)
                .ok_or_else(|| PatternError(format!("unterminated %regex% in {p:?}")))?;
            i = end + 1;
            Term::Regex(regex_of(&chars[start..end].iter().collect::<String>())?)
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            let t: String = chars[start..i].iter().collect();
            if t.is_empty() {
                return Err(PatternError(format!("empty term in {p:?}")));
            }
            Term::Text(t)
        };
        match kind {
            0 => out.required.push(term),
            1 => out.any_of.push(term),
            _ => out.excluded.push(term),
        }
    }
    Ok(out)
}

/// Characters for the JSON and space-delimited forms.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    /// Parentheses open around the current position.
    nesting: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Lexer {
            s,
            pos: 0,
            nesting: 0,
        }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest().chars().next()
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    /// A keyword (case-insensitive, followed by a non-word character).
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_ws();
        let r = self.rest();
        // Compared as bytes: `word` is ASCII, but `r` may hold a multi-byte character across
        // `word.len()` (slicing the `str` there would panic).
        if r.len() >= word.len()
            && r.as_bytes()[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            && !r[word.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn err(&self, what: &str) -> PatternError {
        let near: String = self.rest().chars().take(20).collect();
        if near.is_empty() {
            PatternError(format!("{what} at the end of the pattern {:?}", self.s))
        } else {
            PatternError(format!(
                "{what} at character {} of the pattern {:?} (near {near:?})",
                self.s[..self.pos].chars().count() + 1,
                self.s
            ))
        }
    }

    fn expect(&mut self, c: char) -> Result<(), PatternError> {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.err(&format!("expected '{c}'")))
        }
    }

    fn end(&mut self) -> Result<(), PatternError> {
        if self.peek().is_some() {
            Err(self.err("unexpected text"))
        } else {
            Ok(())
        }
    }

    fn op(&mut self) -> Option<Op> {
        for (t, op) in [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.eat(t) {
                return Some(op);
            }
        }
        None
    }

    /// A value: `"quoted"`, `%regex%`, or a bare word up to a delimiter.
    fn literal(&mut self) -> Result<Literal, PatternError> {
        match self.peek() {
            Some('"') => {
                self.pos += 1;
                let mut s = String::new();
                let mut chars = self.rest().char_indices();
                loop {
                    match chars.next() {
                        None => return Err(self.err("unterminated string")),
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c)) => s.push(c),
                            None => return Err(self.err("unterminated string")),
                        },
                        Some((i, '"')) => {
                            self.pos += i + 1;
                            break;
                        }
                        Some((_, c)) => s.push(c),
                    }
                }
                Ok(Literal::Glob(s))
            }
            Some('%') => {
                let r = &self.rest()[1..];
                let end = r
                    .find('%')
                    .ok_or_else(|| self.err("unterminated %regex%"))?;
                let re = regex_of(&r[..end])?;
                self.pos += end + 2;
                Ok(Literal::Regex(re))
            }
            _ => {
                let r = self.rest();
                let end = r
                    .find(|c: char| {
                        c.is_whitespace() || matches!(c, ',' | ']' | '}' | ')' | '&' | '|')
                    })
                    .unwrap_or(r.len());
                if end == 0 {
                    return Err(self.err("expected a value"));
                }
                let word = &r[..end];
                self.pos += end;
                Ok(match word.parse::<f64>() {
                    Ok(n) if n.is_finite() => Literal::Number(n),
                    _ => Literal::Glob(word.to_string()),
                })
            }
        }
    }
}

type CmpParser<T> = dyn Fn(&mut Lexer<'_>) -> Result<Cond<T>, PatternError>;

fn parse_or<T>(lx: &mut Lexer<'_>, cmp: &CmpParser<T>) -> Result<Cond<T>, PatternError> {
    let mut left = parse_and(lx, cmp)?;
    while lx.eat("||") {
        let right = parse_and(lx, cmp)?;
        left = Cond::Or(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_and<T>(lx: &mut Lexer<'_>, cmp: &CmpParser<T>) -> Result<Cond<T>, PatternError> {
    let mut left = parse_unary(lx, cmp)?;
    while lx.eat("&&") {
        let right = parse_unary(lx, cmp)?;
        left = Cond::And(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_unary<T>(lx: &mut Lexer<'_>, cmp: &CmpParser<T>) -> Result<Cond<T>, PatternError> {
    if lx.eat("(") {
        lx.nesting += 1;
        if lx.nesting > MAX_NESTING {
            return Err(lx.err(&format!(
                "the filter pattern is nested too deeply (more than {MAX_NESTING} levels of parentheses)"
            )));
        }
        let c = parse_or(lx, cmp)?;
        lx.expect(')')?;
        lx.nesting -= 1;
        return Ok(c);
    }
    cmp(lx)
}

fn parse_check(lx: &mut Lexer<'_>) -> Result<Check, PatternError> {
    if lx.eat_word("IS") {
        let not = lx.eat_word("NOT");
        let c = if lx.eat_word("NULL") {
            Check::IsNull
        } else if lx.eat_word("TRUE") {
            Check::IsTrue
        } else if lx.eat_word("FALSE") {
            Check::IsFalse
        } else {
            return Err(lx.err("expected NULL, TRUE or FALSE after IS"));
        };
        return Ok(match (not, c) {
            (false, c) => c,
            (true, Check::IsNull) => Check::Exists,
            (true, Check::IsTrue) => Check::IsFalse,
            (true, _) => Check::IsTrue,
        });
    }
    if lx.eat_word("NOT") {
        if lx.eat_word("EXISTS") {
            return Ok(Check::NotExists);
        }
        return Err(lx.err("expected EXISTS after NOT"));
    }
    if lx.eat_word("EXISTS") {
        return Ok(Check::Exists);
    }
    let op = lx
        .op()
        .ok_or_else(|| lx.err("expected a comparison (=, !=, <, <=, >, >=, IS, NOT EXISTS)"))?;
    let lit = lx.literal()?;
    if matches!(lit, Literal::Regex(_)) && !matches!(op, Op::Eq | Op::Ne) {
        return Err(lx.err("a %regex% can only be compared with = or !="));
    }
    Ok(Check::Compare(op, lit))
}

fn parse_json_cmp(lx: &mut Lexer<'_>) -> Result<Cond<Selector>, PatternError> {
    if !lx.eat("$") {
        return Err(lx.err("expected a selector starting with $"));
    }
    let mut steps = Vec::new();
    loop {
        let r = lx.rest();
        if let Some(after) = r.strip_prefix('.') {
            let end = after
                .find(|c: char| {
                    c.is_whitespace()
                        || matches!(c, '.' | '[' | '=' | '!' | '<' | '>' | ')' | '}' | '&' | '|')
                })
                .unwrap_or(after.len());
            if end == 0 {
                return Err(lx.err("expected a key after '.'"));
            }
            steps.push(Step::Key(after[..end].to_string()));
            lx.pos += 1 + end;
        } else if let Some(after) = r.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| lx.err("expected ']'"))?;
            let idx = after[..end]
                .trim()
                .parse::<usize>()
                .map_err(|_| lx.err("expected an array index"))?;
            steps.push(Step::Index(idx));
            lx.pos += 2 + end;
        } else {
            break;
        }
    }
    if steps.is_empty() {
        return Err(lx.err("expected a selector such as $.level"));
    }
    let check = parse_check(lx)?;
    Ok(Cond::Cmp(Selector(steps), check))
}

fn parse_delimited(lx: &mut Lexer<'_>) -> Result<Delimited, PatternError> {
    lx.expect('[')?;
    let mut fields = Vec::new();
    if lx.eat("]") {
        return Err(lx.err("a space-delimited pattern needs at least one field"));
    }
    loop {
        if lx.eat("...") {
            fields.push(DelimitedField::Ellipsis);
        } else {
            let name = field_name(lx)?;
            let cond = if matches!(lx.peek(), Some(',') | Some(']')) {
                None
            } else {
                let cmp = |lx: &mut Lexer<'_>| -> Result<Cond<String>, PatternError> {
                    let n = field_name(lx)?;
                    Ok(Cond::Cmp(n, parse_check(lx)?))
                };
                // The field's own first comparison (its name was just read), then more
                // comparisons joined by && / ||, each naming its field.
                let mut c = Cond::Cmp(name.clone(), parse_check(lx)?);
                loop {
                    if lx.eat("&&") {
                        c = Cond::And(Box::new(c), Box::new(parse_unary(lx, &cmp)?));
                    } else if lx.eat("||") {
                        c = Cond::Or(Box::new(c), Box::new(parse_and(lx, &cmp)?));
                    } else {
                        break;
                    }
                }
                Some(c)
            };
            fields.push(DelimitedField::Named(name, cond));
        }
        if lx.eat(",") {
            continue;
        }
        lx.expect(']')?;
        break;
    }
    lx.end()?;
    Delimited::new(fields)
}

fn field_name(lx: &mut Lexer<'_>) -> Result<String, PatternError> {
    lx.skip_ws();
    let r = lx.rest();
    let end = r
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '@'))
        .unwrap_or(r.len());
    if end == 0 || r.starts_with("...") {
        return Err(lx.err("expected a field name"));
    }
    lx.pos += end;
    Ok(r[..end].to_string())
}

impl<T> Cond<T> {
    /// Calls `f` on every comparison's subject, left to right.
    fn visit<'c>(&'c self, f: &mut dyn FnMut(&'c T)) {
        match self {
            Cond::And(a, b) | Cond::Or(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Cond::Cmp(t, _) => f(t),
        }
    }

    fn eval(&self, f: &dyn Fn(&T, &Check) -> bool) -> bool {
        match self {
            Cond::And(a, b) => a.eval(f) && b.eval(f),
            Cond::Or(a, b) => a.eval(f) || b.eval(f),
            Cond::Cmp(t, c) => f(t, c),
        }
    }
}

impl Selector {
    /// `None` = the path does not exist.
    fn resolve<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        let mut cur = v;
        for s in &self.0 {
            cur = match (s, cur) {
                (Step::Key(k), Value::Object(m)) => m.get(k)?,
                (Step::Index(i), Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// `*` matches any run of characters; everything else literally.
///
/// Linear in the text: the pieces between stars are found left to right, each at its first
/// occurrence after the previous one (the earliest place is never worse for the rest), the
/// first piece anchored at the start and the last at the end.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let (middle, last) = rest.rsplit_once('*').unwrap_or(("", rest));
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut hay = &text[first.len()..text.len() - last.len()];
    for piece in middle.split('*').filter(|p| !p.is_empty()) {
        match hay.find(piece) {
            Some(at) => hay = &hay[at + piece.len()..],
            None => return false,
        }
    }
    true
}

fn compare_num(a: f64, op: Op, b: f64) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
    }
}

/// A comparison of a text value (a delimited field, or a JSON string/number as text).
fn compare_text(value: &str, number: Option<f64>, op: Op, lit: &Literal) -> bool {
    match lit {
        Literal::Number(n) => number
            .or_else(|| value.trim().parse::<f64>().ok())
            .is_some_and(|v| compare_num(v, op, *n)),
        Literal::Glob(g) => match op {
            Op::Eq => glob_match(g, value),
            Op::Ne => !glob_match(g, value),
            // Ordering against text: numeric if both sides are numbers, else no match.
            _ => match (value.trim().parse::<f64>(), g.parse::<f64>()) {
                (Ok(a), Ok(b)) => compare_num(a, op, b),
                _ => false,
            },
        },
        Literal::Regex(r) => match op {
            Op::Ne => !r.is_match(value),
            _ => r.is_match(value),
        },
    }
}

fn check_json(v: Option<&Value>, check: &Check) -> bool {
    match check {
        Check::NotExists => v.is_none(),
        Check::Exists => v.is_some(),
        Check::IsNull => matches!(v, Some(Value::Null)),
        Check::IsTrue => matches!(v, Some(Value::Bool(true))),
        Check::IsFalse => matches!(v, Some(Value::Bool(false))),
        Check::Compare(op, lit) => match v {
            None | Some(Value::Null) | Some(Value::Object(_)) | Some(Value::Array(_)) => false,
            Some(Value::String(s)) => compare_text(s, None, *op, lit),
            Some(Value::Number(n)) => {
                let f = n.as_f64();
                match lit {
                    // A number compared with text (`{ $.code = 4* }`) compares its digits.
                    Literal::Glob(_) | Literal::Regex(_) => {
                        compare_text(&n.to_string(), f, *op, lit)
                    }
                    Literal::Number(_) => compare_text("", f, *op, lit),
                }
            }
            Some(Value::Bool(b)) => compare_text(if *b { "true" } else { "false" }, None, *op, lit),
        },
    }
}

/// Splits a message into space-delimited fields; `"…"` and `[…]` are one field each.
pub fn split_fields(message: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = message.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let close = match b[i] {
            b'"' => Some(b'"'),
            b'[' => Some(b']'),
            _ => None,
        };
        if let Some(close) = close
            && let Some(n) = b[i + 1..].iter().position(|&c| c == close)
        {
            out.push(&message[i + 1..i + 1 + n]);
            i += n + 2;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        out.push(&message[start..i]);
    }
    out
}

impl Delimited {
    fn new(fields: Vec<DelimitedField>) -> Result<Delimited, PatternError> {
        let mut plan = DelimitedPlan {
            checks_on: vec![Vec::new(); fields.len()],
            ..DelimitedPlan::default()
        };
        for (i, f) in fields.iter().enumerate() {
            match f {
                DelimitedField::Ellipsis => plan.ellipses += 1,
                DelimitedField::Named(name, _) => {
                    plan.named += 1;
                    plan.index_of.entry(name.clone()).or_insert(i);
                }
            }
        }
        let mut joint: Option<(String, String)> = None;
        for (i, f) in fields.iter().enumerate() {
            let DelimitedField::Named(_, Some(cond)) = f else {
                continue;
            };
            let mut read: Vec<(usize, &str)> = Vec::new();
            cond.visit(&mut |name: &String| {
                if let Some(&k) = plan.index_of.get(name)
                    && !read.iter().any(|(r, _)| *r == k)
                {
                    read.push((k, name));
                }
            });
            match read.as_slice() {
                [] => plan.constant.push(i),
                [(k, _)] => plan.checks_on[*k].push(i),
                [(_, a), (_, b), ..] => {
                    joint.get_or_insert_with(|| (a.to_string(), b.to_string()));
                }
            }
        }
        if let Some((a, b)) = joint {
            // With two or more `...` the alignments of a message are many; a condition on
            // several fields would have to be checked on each of them.
            if plan.ellipses > 1 {
                return Err(PatternError(format!(
                    "a condition that compares two fields ({a} and {b}) needs a space-delimited \
                     pattern with at most one '...'"
                )));
            }
            plan.joint = true;
        }
        Ok(Delimited { fields, plan })
    }

    fn matches(&self, message: &str) -> bool {
        let tokens = split_fields(message);
        let plan = &self.plan;
        if plan.named > tokens.len() || (plan.ellipses == 0 && plan.named != tokens.len()) {
            return false;
        }
        if plan.ellipses <= 1 {
            return self.matches_aligned(&tokens);
        }
        // Two or more `...` and every condition on one field. reach[j]: the fields from `i` on
        // match tokens[j..]; computed from the last field back, one row per field.
        if !plan
            .constant
            .iter()
            .all(|&i| self.condition_holds(i, &|_| None))
        {
            return false;
        }
        let n = tokens.len();
        let mut next = vec![false; n + 1];
        next[n] = true;
        let mut cur = vec![false; n + 1];
        for (i, f) in self.fields.iter().enumerate().rev() {
            match f {
                DelimitedField::Ellipsis => {
                    cur[n] = next[n];
                    for j in (0..n).rev() {
                        cur[j] = next[j] || cur[j + 1];
                    }
                }
                DelimitedField::Named(..) => {
                    cur[n] = false;
                    for j in 0..n {
                        cur[j] = next[j + 1] && self.field_holds(i, tokens[j]);
                    }
                }
            }
            std::mem::swap(&mut cur, &mut next);
        }
        next[0]
    }

    /// At most one `...`: a single alignment, whose fields are checked all together.
    fn matches_aligned(&self, tokens: &[&str]) -> bool {
        let spare = tokens.len() - self.plan.named;
        let mut values: Vec<Option<&str>> = Vec::with_capacity(self.fields.len());
        let mut j = 0;
        for f in &self.fields {
            match f {
                DelimitedField::Ellipsis => {
                    values.push(None);
                    j += spare;
                }
                DelimitedField::Named(..) => {
                    values.push(Some(tokens[j]));
                    j += 1;
                }
            }
        }
        let lookup = |name: &String| self.plan.index_of.get(name).and_then(|&k| values[k]);
        (0..self.fields.len()).all(|i| self.condition_holds(i, &lookup))
    }

    /// Whether every condition that reads only field `k` holds with `token` as its value.
    fn field_holds(&self, k: usize, token: &str) -> bool {
        let lookup = |name: &String| (self.plan.index_of.get(name) == Some(&k)).then_some(token);
        self.plan.checks_on[k]
            .iter()
            .all(|&i| self.condition_holds(i, &lookup))
    }

    /// The condition of field `i` (true if it has none), reading values through `lookup`.
    fn condition_holds<'v>(&self, i: usize, lookup: &dyn Fn(&String) -> Option<&'v str>) -> bool {
        let DelimitedField::Named(_, Some(c)) = &self.fields[i] else {
            return true;
        };
        c.eval(&|name: &String, check| {
            let v = lookup(name);
            match check {
                Check::Compare(op, lit) => v.is_some_and(|v| compare_text(v, None, *op, lit)),
                Check::NotExists => v.is_none(),
                Check::Exists => v.is_some(),
                Check::IsNull => v.is_some_and(|v| v == "-" || v.is_empty()),
                Check::IsTrue => v == Some("true"),
                Check::IsFalse => v == Some("false"),
            }
        })
    }
}

// Printing: the shortest text that parses back to the same pattern. Quoting follows what the
// lexers above treat as special; the property tests and the fuzz target check the round trip.

impl fmt::Display for FilterPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterPattern::All => Ok(()),
            FilterPattern::Terms(t) => t.fmt(f),
            FilterPattern::Json(c) => write!(f, "{{ {} }}", Print(c, Level::Or)),
            FilterPattern::Delimited(d) => d.fmt(f),
        }
    }
}

impl fmt::Display for Terms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefixed = [
            ("", &self.required),
            ("?", &self.any_of),
            ("-", &self.excluded),
        ];
        let mut sep = "";
        for (prefix, terms) in prefixed {
            for t in terms {
                write!(f, "{sep}{prefix}{t}")?;
                sep = " ";
            }
        }
        Ok(())
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Regex(r) => write!(f, "%{}%", r.0.as_str()),
            Term::Text(t) => {
                // Bare unless it would read as something else: a prefix, a quote, a regex, the
                // start of another form, or several terms.
                let bare = !t.is_empty()
                    && !t.starts_with(['"', '%', '?', '-', '{', '['])
                    && !t.chars().any(char::is_whitespace);
                if bare { f.write_str(t) } else { quoted(f, t) }
            }
        }
    }
}

/// `"…"` with `"` and `\` escaped, as both lexers read it.
fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(n) => {
                // Both print the same value exactly; the shorter keeps the pattern short.
                let plain = n.to_string();
                let sci = format!("{n:e}");
                f.write_str(if sci.len() < plain.len() {
                    &sci
                } else {
                    &plain
                })
            }
            Literal::Regex(r) => write!(f, "%{}%", r.0.as_str()),
            Literal::Glob(g) => {
                let bare = !g.is_empty()
                    && !g.starts_with(['"', '%'])
                    && !g.chars().any(|c| {
                        c.is_whitespace() || matches!(c, ',' | ']' | '}' | ')' | '&' | '|')
                    })
                    && g.parse::<f64>().is_err();
                if bare { f.write_str(g) } else { quoted(f, g) }
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Compare(op, lit) => write!(f, "{op} {lit}"),
            Check::IsNull => f.write_str("IS NULL"),
            Check::IsTrue => f.write_str("IS TRUE"),
            Check::IsFalse => f.write_str("IS FALSE"),
            Check::NotExists => f.write_str("NOT EXISTS"),
            Check::Exists => f.write_str("EXISTS"),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in &self.0 {
            match s {
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Where a condition is printed: as an operand of `||`, of `&&`, or where only a comparison
/// or a parenthesised condition may stand.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Level {
    Or,
    And,
    Unary,
}

struct Print<'a, T>(&'a Cond<T>, Level);

impl<T: fmt::Display> fmt::Display for Print<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Print(c, at) = *self;
        let (own, body) = match c {
            Cond::Cmp(t, check) => return write!(f, "{t} {check}"),
            Cond::Or(..) => (Level::Or, c),
            Cond::And(..) => (Level::And, c),
        };
        let paren = at > own;
        if paren {
            f.write_str("(")?;
        }
        match body {
            // Left-associative: the left operand at the node's own level, the right one tighter.
            Cond::Or(a, b) => write!(f, "{} || {}", Print(a, Level::Or), Print(b, Level::And))?,
            Cond::And(a, b) => write!(f, "{} && {}", Print(a, Level::And), Print(b, Level::Unary))?,
            Cond::Cmp(..) => unreachable!("handled above"),
        }
        if paren {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Delimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match field {
                DelimitedField::Ellipsis => f.write_str("...")?,
                DelimitedField::Named(name, None) => f.write_str(name)?,
                // The condition starts with the field's own comparison (see `parse_delimited`).
                DelimitedField::Named(_, Some(c)) => Print(c, Level::Or).fmt(f)?,
            }
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, msg: &str) -> bool {
        parse(p).unwrap_or_else(|e| panic!("{p}: {e}")).matches(msg)
    }

    #[test]
    fn terms_phrases_alternatives_and_exclusions() {
        assert!(m("", "anything"));
        assert!(m("ERROR", "[ERROR] disk full"));
        assert!(!m("ERROR", "[error] disk full"), "case-sensitive");
        assert!(m("ERROR disk", "disk ERROR"));
        assert!(!m("ERROR memory", "ERROR disk"));
        assert!(m("\"disk full\"", "ERROR disk full now"));
        assert!(!m("\"disk full\"", "full disk"));
        assert!(m("?ERROR ?WARN", "WARN low space"));
        assert!(!m("?ERROR ?WARN", "INFO ok"));
        assert!(m("ERROR -DEBUG", "ERROR x"));
        assert!(!m("ERROR -DEBUG", "DEBUG ERROR x"));
        assert!(!m("ERROR -\"retry later\"", "ERROR please retry later"));
        assert!(m("%[0-9]{3} ms%", "took 250 ms"));
        assert!(!m("%^ERROR%", "an ERROR"));
        assert!(parse("\"open").is_err());
        assert!(parse("%(unclosed%").is_err());
    }

    #[test]
    fn json_patterns() {
        let ev = r#"{"level":"error","latency":250,"user":{"id":1,"name":"ann"},"tags":["a1","b"],"ok":true,"gone":null,"code":"404"}"#;
        assert!(m(r#"{ $.level = "error" }"#, ev));
        assert!(m("{ $.level = error }", ev));
        assert!(m(r#"{ $.level = "err*" }"#, ev));
        assert!(!m(r#"{ $.level = "warn" }"#, ev));
        assert!(m(r#"{ $.level != "warn" }"#, ev));
        assert!(m("{ $.latency > 100 }", ev));
        assert!(!m("{ $.latency > 250 }", ev));
        assert!(m("{ $.latency >= 250 }", ev));
        assert!(m("{ $.latency = 250 }", ev));
        assert!(
            m("{ $.code = 404 }", ev),
            "numeric literal against a numeric string"
        );
        assert!(m("{ $.code = 4* }", ev));
        assert!(m("{ $.user.id = 1 && $.tags[0] = \"a*\" }", ev));
        assert!(m("{ ($.user.id = 2) || ($.user.name = \"ann\") }", ev));
        assert!(!m("{ $.user.id = 2 || $.user.name = \"bob\" }", ev));
        assert!(m(
            "{ ($.latency > 1000 || $.level = \"error\") && $.ok IS TRUE }",
            ev
        ));
        assert!(m("{ $.gone IS NULL }", ev));
        assert!(m("{ $.missing NOT EXISTS }", ev));
        assert!(!m("{ $.level NOT EXISTS }", ev));
        assert!(m("{ $.ok IS TRUE }", ev));
        assert!(!m("{ $.ok IS FALSE }", ev));
        assert!(m("{ $.level = %^err% }", ev));
        assert!(!m("{ $.missing = \"x\" }", ev));
        assert!(
            !m("{ $.missing != \"x\" }", ev),
            "a missing field never compares"
        );
        assert!(!m("{ $.level = \"error\" }", "level=error not json"));
        for bad in [
            "{ $.level = }",
            "{ level = 1 }",
            "{ $.a = 1",
            "{ $.a = 1 } x",
            "{ $.a ~ 1 }",
        ] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn space_delimited_patterns() {
        let line = r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 1534"#;
        assert_eq!(split_fields(line).len(), 7);
        assert_eq!(split_fields(line)[3], "10/Oct/2000:13:25:15 -0700");
        assert!(m(
            "[ip, user, username, timestamp, request, status_code, bytes]",
            line
        ));
        assert!(!m(
            "[ip, user, username, timestamp, request, status_code]",
            line
        ));
        assert!(m(
            "[ip, user, username, timestamp, request, status_code = 404, bytes]",
            line
        ));
        assert!(!m(
            "[ip, user, username, timestamp, request, status_code = 200, bytes]",
            line
        ));
        assert!(m("[..., status_code = 4*, bytes > 1000]", line));
        assert!(!m("[..., status_code = 4*, bytes > 2000]", line));
        assert!(m("[ip = 127.0.0.*, ...]", line));
        assert!(m("[ip, ..., request = *gif*, ...]", line));
        assert!(m(
            "[ip, user, ..., status_code >= 400 && status_code < 500, bytes]",
            line
        ));
        assert!(m("[..., status = 5* || status = 404, bytes]", line));
        assert!(!m("[..., status = 5* || status = 403, bytes]", line));
        assert!(m("[ip, user != \"root\", ...]", line));
        assert!(!m("[a, b]", line));
        for bad in ["[]", "[a,", "[a = ]", "[a b]"] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("4*", "404"));
        assert!(glob_match("*html*", "GET /index.html"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("abc", "abcd"));
    }

    #[test]
    fn globs_overlapping_pieces_and_unicode() {
        assert!(!glob_match("ab*ba", "aba"), "the ends may not overlap");
        assert!(glob_match("ab*ba", "abba"));
        assert!(glob_match("*aab", "aaab"));
        assert!(glob_match("a**b", "ab"));
        assert!(glob_match("é*ö", "éxyzö"));
        assert!(!glob_match("é*ö", "é"));
    }

    // Issue 15, item 3: the pattern is user input of a read-only caller; it must not be able
    // to take the server's stack or its CPU.

    #[test]
    fn patterns_longer_than_cloudwatchs_limit_are_refused() {
        let at_limit = format!("\"{}\"", "x".repeat(MAX_PATTERN_CHARS - 2));
        assert!(parse(&at_limit).is_ok());
        let over = "x".repeat(MAX_PATTERN_CHARS + 1);
        let e = parse(&over).unwrap_err();
        assert_eq!(
            e.0,
            "the filter pattern is 1025 characters long; the maximum is 1024"
        );
        // Characters, not bytes.
        assert!(parse(&"é".repeat(MAX_PATTERN_CHARS)).is_ok());
    }

    #[test]
    fn nesting_is_capped_before_it_costs_stack() {
        let nested =
            |depth: usize| format!("{{ {}$.a = 1{} }}", "(".repeat(depth), ")".repeat(depth));
        let p = parse(&nested(MAX_NESTING)).unwrap();
        assert!(p.matches(r#"{"a": 1}"#));
        let e = parse(&nested(MAX_NESTING + 1)).unwrap_err();
        assert!(
            e.0.contains("nested too deeply (more than 40 levels of parentheses)"),
            "{e}"
        );
        // Within the length limit a pattern could open ~1,000 parentheses: refused as well, in
        // the space-delimited form too.
        let e = parse(&format!("[a = 1 && {}a = 2", "(".repeat(900))).unwrap_err();
        assert!(e.0.contains("nested too deeply"), "{e}");
    }

    #[test]
    fn the_longest_chain_parses_matches_and_drops_on_a_small_stack() {
        // `&&` chains build a deep (left-leaning) tree without parentheses; the length limit
        // bounds it. Checked on a thread with far less stack than a server thread (2 MiB).
        let mut chain = String::from("{ $.a = 1");
        while chain.len() + " && $.a = 1".len() + 2 <= MAX_PATTERN_CHARS {
            chain.push_str(" && $.a = 1");
        }
        chain.push_str(" }");
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let p = parse(&chain).unwrap();
                assert!(p.matches(r#"{"a": 1}"#));
                assert!(!p.matches(r#"{"a": 2}"#));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn many_ellipses_match_in_time_linear_in_the_message() {
        // Trying every alignment of six fields among 3,000 tokens is ~10^17 alignments; the
        // dynamic programme checks at most fields × tokens.
        let p = parse("[..., a, ..., b, ..., c, ..., d, ..., e, ..., f = zzz, ...]").unwrap();
        let message = vec!["tok"; 3_000].join(" ");
        assert!(!p.matches(&message));
        let hit = format!("{message} zzz");
        assert!(p.matches(&hit));
        let tail_only = parse("[..., a, ..., b, ..., last = zzz]").unwrap();
        assert!(tail_only.matches(&hit));
        assert!(!tail_only.matches(&format!("{hit} x")));
    }

    #[test]
    fn conditions_on_two_fields_need_a_single_alignment() {
        let line = "10.0.0.1 GET 404 1534";
        assert!(m("[ip, method, status = 404 && method = GET, bytes]", line));
        assert!(!m("[..., status = 404 && method = GET, bytes]", line));
        assert!(m(
            "[ip, ..., method, status = 404 && method = GET, bytes]",
            line
        ));
        let e = parse("[..., method, ..., status = 404 && method = GET, ...]").unwrap_err();
        assert!(
            e.0.contains("compares two fields (status and method)"),
            "{e}"
        );
        // A name stands for the first field so named: this condition reads one field, the
        // first `m`, and is fine with any number of `...`.
        assert!(m("[..., m, ..., m = GET, ...]", line));
        assert!(!m("[..., m, ..., m = POST, ...]", line));
    }

    #[test]
    fn keywords_next_to_multibyte_characters_do_not_panic() {
        // Found by the property tests: `IS` / `NOT` / `EXISTS` were compared by slicing the
        // rest of the pattern at the keyword's length, inside a multi-byte character.
        assert!(parse("[\u{b9}\u{1bf2}").is_err());
        let p = parse("{ $._ = \"a\0\u{a1}\" }").unwrap();
        assert!(p.matches(r#"{"_": "a\u0000\u00a1"}"#));
        assert!(parse("{ $.a \u{e9}\u{e9} }").is_err());
    }

    #[test]
    fn printed_patterns_parse_back_to_themselves() {
        for p in [
            "",
            "ERROR",
            "ERROR -DEBUG ?a ?b",
            "\"disk full\" -\"retry later\" ?\"-x\" \"?y\" \"{z\" \"\"",
            "%[0-9]{3} ms% -%^a%",
            r#"{ $.level = "error" }"#,
            r#"{ $.a = "x\"y\\z" || $.b = 404 && ($.c != "404" || $.d IS NULL) }"#,
            "{ ($.a = 1 || $.b = 2) && ($.c = 3 || $.d = 4) }",
            "{ $.a = 1 && ($.b = 2 && $.c = 3) }",
            "{ $.x[0].y NOT EXISTS && $.z IS NOT NULL && $.t IS NOT TRUE }",
            "{ $.n = 1e300 || $.m = -0 || $.k = 0.5 || $.j = inf || $.i = \"1\" }",
            "{ $.path = %^/api% }",
            "[ip, user, ..., status = 4* || status = 5*, bytes > 1000]",
            "[a = 1 && (a = 2 || a = 3), ...]",
            "[a = \"x y\", b != \"\", c = %z%, ...]",
        ] {
            let parsed = parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            let printed = parsed.to_string();
            let again = parse(&printed).unwrap_or_else(|e| panic!("{p} → {printed}: {e}"));
            assert_eq!(again, parsed, "{p} → {printed}");
            assert_eq!(again.to_string(), printed, "printing is a fixed point");
        }
        assert_eq!(
            parse("{($.a=1||$.b=2)&&$.c=3}").unwrap().to_string(),
            "{ ($.a = 1 || $.b = 2) && $.c = 3 }"
        );
        assert_eq!(
            parse("{ $.n = 1e21 }").unwrap().to_string(),
            "{ $.n = 1e21 }"
        );
    }
}
