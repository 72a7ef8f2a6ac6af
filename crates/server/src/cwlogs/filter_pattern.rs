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

use regex::Regex;
use serde_json::Value;

/// A parsed filter pattern.
#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub enum Term {
    Text(String),
    Regex(Regex),
}

impl Term {
    fn found_in(&self, message: &str) -> bool {
        match self {
            Term::Text(t) => message.contains(t.as_str()),
            Term::Regex(r) => r.is_match(message),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Terms {
    required: Vec<Term>,
    any_of: Vec<Term>,
    excluded: Vec<Term>,
}

/// A boolean combination of comparisons on `T` (a JSON selector or a field name).
#[derive(Debug, Clone)]
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
    Regex(Regex),
}

#[derive(Debug, Clone)]
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
}

#[derive(Debug, Clone)]
enum DelimitedField {
    Ellipsis,
    Named(String, Option<Cond<String>>),
}

pub fn parse(pattern: &str) -> Result<FilterPattern, PatternError> {
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

fn regex_of(body: &str) -> Result<Regex, PatternError> {
    Regex::new(body).map_err(|e| PatternError(format!("invalid regular expression %{body}%: {e}")))
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
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Lexer { s, pos: 0 }
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
        if r.len() >= word.len()
            && r[..word.len()].eq_ignore_ascii_case(word)
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
        let c = parse_or(lx, cmp)?;
        lx.expect(')')?;
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
    Ok(Delimited { fields })
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
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
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
    fn matches(&self, message: &str) -> bool {
        let tokens = split_fields(message);
        let mut assigned: Vec<(&str, &str)> = Vec::new();
        self.align(0, &tokens, 0, &mut assigned)
    }

    /// Tries every alignment of the pattern's fields with the message's (ellipses take any
    /// number of fields) and checks the conditions on each complete one.
    fn align<'m>(
        &'m self,
        i: usize,
        tokens: &[&'m str],
        j: usize,
        assigned: &mut Vec<(&'m str, &'m str)>,
    ) -> bool {
        if i == self.fields.len() {
            return j == tokens.len() && self.conditions_hold(assigned);
        }
        match &self.fields[i] {
            DelimitedField::Ellipsis => {
                (j..=tokens.len()).any(|k| self.align(i + 1, tokens, k, assigned))
            }
            DelimitedField::Named(name, _) => {
                if j >= tokens.len() {
                    return false;
                }
                assigned.push((name.as_str(), tokens[j]));
                let ok = self.align(i + 1, tokens, j + 1, assigned);
                assigned.pop();
                ok
            }
        }
    }

    fn conditions_hold(&self, assigned: &[(&str, &str)]) -> bool {
        let lookup = |n: &String| assigned.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        self.fields.iter().all(|f| match f {
            DelimitedField::Named(_, Some(c)) => c.eval(&|name: &String, check| {
                let v = lookup(name);
                match check {
                    Check::Compare(op, lit) => v.is_some_and(|v| compare_text(v, None, *op, lit)),
                    Check::NotExists => v.is_none(),
                    Check::Exists => v.is_some(),
                    Check::IsNull => v.is_some_and(|v| v == "-" || v.is_empty()),
                    Check::IsTrue => v == Some("true"),
                    Check::IsFalse => v == Some("false"),
                }
            }),
            _ => true,
        })
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
}
