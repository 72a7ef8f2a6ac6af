//! Recursive-descent parser: commands here, expressions in `expr.rs`.
//!
//! Besides syntax it enforces the rules that need no knowledge of the rest of the pipeline, so
//! they are reported at the exact spot: function names and arity, argument kinds (`pct`'s
//! percentile, `bin`'s period), aggregations only inside `stats` and never nested, every field
//! of a `stats` expression either inside an aggregation or a `by` key, `parse` captures, regex
//! syntax and `limit` bounds. Rules about the order of commands are the pipeline's (see
//! `pipeline.rs`).

mod expr;

use crate::ast::*;
use crate::error::{ParseError, Position, suggest};
use crate::lexer::{Lexer, Token, TokenKind, punct_text};

/// The largest `limit` CloudWatch accepts (reference §5.3 / §5.5: max 10,000 result rows).
pub const MAX_LIMIT: u64 = 10_000;

/// The longest query text accepted, in characters: CloudWatch's StartQuery limit on
/// `queryString`.
pub const MAX_QUERY_CHARS: usize = 10_000;

/// Deepest expression tree accepted (see `Parser::enter`).
const MAX_DEPTH: usize = 256;
/// Deepest parser recursion accepted (see `Parser::nest`): about 11 KB of stack per level in a
/// debug build, far less in release; real queries nest a handful of levels.
const MAX_NESTING: usize = 40;

/// Commands kinsight parses (reference §5.3).
pub const COMMANDS: &[&str] = &[
    "fields", "display", "filter", "stats", "sort", "limit", "parse", "dedup", "unnest", "pattern",
    "diff", "head", "tail",
];

/// Commands of §5.3 that kinsight does not implement (pattern anomalies, data protection,
/// index hints, query-time log group selection, 2025+ additions). Named so the
/// error says "not supported" instead of "unknown".
const UNSUPPORTED_COMMANDS: &[&str] = &[
    "unmask",
    "anomaly",
    "filterindex",
    "source",
    "lookup",
    "join",
    "addtotals",
];

/// Parses a query into its syntax tree.
pub fn parse(src: &str) -> Result<Query, ParseError> {
    let chars = src.chars().count();
    if chars > MAX_QUERY_CHARS {
        return Err(ParseError::new(
            Position::START,
            format!("the query is {chars} characters long; the maximum is {MAX_QUERY_CHARS}"),
        ));
    }
    let mut p = Parser::new(src)?;
    p.query()
}

/// Where aggregation functions are allowed while parsing an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggContext {
    /// Not allowed; the string names the place for the error message.
    Forbidden(&'static str),
    /// In a `stats` expression (before `by`): allowed, fields outside them recorded.
    StatsItem,
    /// Inside an aggregation's arguments: a second one would nest.
    Inside(crate::functions::Function),
}

pub(crate) struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Token,
    /// How the previous token is named in messages ("after 'by'").
    prev: Option<String>,
    ctx: AggContext,
    /// Fields read outside any aggregation in the current `stats` expression.
    stats_refs: Vec<(String, Position)>,
    stats_has_agg: bool,
    depth: usize,
    nesting: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, ParseError> {
        let mut lexer = Lexer::new(src);
        let tok = lexer.next_token()?;
        Ok(Parser {
            lexer,
            tok,
            prev: None,
            ctx: AggContext::Forbidden("outside 'stats'"),
            stats_refs: Vec::new(),
            stats_has_agg: false,
            depth: 0,
            nesting: 0,
        })
    }

    fn advance(&mut self) -> Result<Token, ParseError> {
        let next = self.lexer.next_token()?;
        let old = std::mem::replace(&mut self.tok, next);
        self.prev = Some(old.describe());
        Ok(old)
    }

    fn at(&self, kind: &TokenKind) -> bool {
        &self.tok.kind == kind
    }

    fn eat(&mut self, kind: &TokenKind) -> Result<bool, ParseError> {
        if self.at(kind) {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn eat_word(&mut self, w: &str) -> Result<bool, ParseError> {
        if self.tok.is_word(w) {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn after(&self) -> String {
        match &self.prev {
            Some(p) => format!(" after {p}"),
            None => String::new(),
        }
    }

    /// "expected X after 'prev', found 'tok'".
    fn unexpected(&self, what: &str, expected: &[&str]) -> ParseError {
        ParseError::expected(
            self.tok.pos(),
            format!(
                "expected {what}{}, found {}",
                self.after(),
                self.tok.describe()
            ),
            expected,
        )
    }

    fn expect(&mut self, kind: TokenKind) -> Result<Token, ParseError> {
        if self.at(&kind) {
            self.advance()
        } else {
            let text = format!("'{}'", punct_text(&kind));
            Err(self.unexpected(&text, &[&text]))
        }
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        if self.at(&TokenKind::Eof) {
            return Err(ParseError::expected(
                self.tok.pos(),
                "the query is empty: start with a command such as fields, filter or stats",
                COMMANDS,
            ));
        }
        let mut commands = Vec::new();
        loop {
            let command = self.command()?;
            let keyword = command.node.keyword();
            commands.push(command);
            match self.tok.kind {
                TokenKind::Pipe => {
                    self.advance()?;
                }
                TokenKind::Eof => return Ok(Query { commands }),
                _ => return Err(self.end_of_command_error(keyword)),
            }
        }
    }

    /// A command is complete but something other than `|` follows; `keyword` is the
    /// command's, to list what could have continued it.
    fn end_of_command_error(&self, keyword: &str) -> ParseError {
        if let Some(w) = self.tok.word().filter(|w| COMMANDS.contains(&w.as_str())) {
            return ParseError::expected(
                self.tok.pos(),
                format!("expected '|' before the command '{w}'"),
                &["'|'"],
            );
        }
        let expected: &[&str] = match keyword {
            "fields" | "stats" => &["','", "an operator", "'as'", "'|'", "end of query"],
            "sort" => &[
                "','",
                "an operator",
                "'asc'",
                "'desc'",
                "'|'",
                "end of query",
            ],
            "filter" | "unnest" | "pattern" => &["an operator", "'|'", "end of query"],
            "display" | "dedup" => &["','", "'|'", "end of query"],
            "parse" => &["','", "'|'", "end of query"],
            _ => &["'|'", "end of query"],
        };
        let text = match expected.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        self.unexpected(
            &text.replace("end of query", "the end of the query"),
            expected,
        )
    }

    fn command(&mut self) -> Result<Located<Command>, ParseError> {
        let pos = self.tok.pos();
        let Some(word) = self.tok.word() else {
            return Err(self.unexpected("a command", COMMANDS));
        };
        let node = match word.as_str() {
            "fields" => {
                self.advance()?;
                Command::Fields(self.projections("a field or expression")?)
            }
            "display" => {
                self.advance()?;
                Command::Display(self.field_list("a field name")?)
            }
            "filter" => {
                self.advance()?;
                self.ctx = AggContext::Forbidden("in 'filter'");
                Command::Filter(self.expr("a condition")?)
            }
            "stats" => {
                self.advance()?;
                Command::Stats(self.stats()?)
            }
            "sort" => {
                self.advance()?;
                Command::Sort(self.sort_keys()?)
            }
            "limit" | "head" | "tail" => {
                self.advance()?;
                let keyword = match word.as_str() {
                    "head" => LimitKeyword::Head,
                    "tail" => LimitKeyword::Tail,
                    _ => LimitKeyword::Limit,
                };
                Command::Limit(Limit {
                    rows: self.limit_rows(&word)?,
                    keyword,
                })
            }
            "parse" => {
                self.advance()?;
                Command::Parse(self.parse_command()?)
            }
            "dedup" => {
                self.advance()?;
                Command::Dedup(self.field_list("a field name")?)
            }
            "unnest" => {
                self.advance()?;
                self.ctx = AggContext::Forbidden("in 'unnest'");
                let expr = self.expr("a list field")?;
                if !self.eat_word("into")? {
                    return Err(self.unexpected("'into' and a name for the elements", &["'into'"]));
                }
                let into = self.name("a name for the list elements")?;
                Command::Unnest(Unnest { expr, into })
            }
            "pattern" => {
                self.advance()?;
                self.ctx = AggContext::Forbidden("in 'pattern'");
                Command::Pattern(self.expr("the field to find patterns in, such as @message")?)
            }
            "diff" => {
                self.advance()?;
                Command::Diff(self.diff_period()?)
            }
            w if UNSUPPORTED_COMMANDS.contains(&w) => {
                return Err(ParseError::new(
                    pos,
                    format!("the command '{w}' is not supported by kinsight"),
                ));
            }
            w => {
                let hint = match suggest(w, COMMANDS.iter().copied()) {
                    Some(s) => format!("; did you mean '{s}'?"),
                    None => String::new(),
                };
                let text = self.tok.describe();
                return Err(ParseError::expected(
                    pos,
                    format!(
                        "unknown command {text}{hint} (commands: fields, display, filter, stats, sort, limit, parse, dedup, unnest, pattern, diff)"
                    ),
                    COMMANDS,
                ));
            }
        };
        Ok(Located { pos, node })
    }

    /// `expr [as name], …` for `fields`.
    fn projections(&mut self, what: &str) -> Result<Vec<Projection>, ParseError> {
        self.ctx = AggContext::Forbidden("in 'fields'");
        let mut out = Vec::new();
        loop {
            let expr = self.expr(what)?;
            let alias = self.alias()?;
            out.push(Projection { expr, alias });
            if !self.eat(&TokenKind::Comma)? {
                return Ok(out);
            }
        }
    }

    fn alias(&mut self) -> Result<Option<String>, ParseError> {
        if self.eat_word("as")? {
            Ok(Some(self.name("a name after 'as'")?))
        } else {
            Ok(None)
        }
    }

    /// A name being defined (`as x`, `into x`, parse captures): a field path, stored flat.
    fn name(&mut self, what: &str) -> Result<String, ParseError> {
        match self.field_ref_token(what)? {
            Some(f) => Ok(f.name()),
            None => Err(self.unexpected(what, &["a name"])),
        }
    }

    /// The current token as a field reference, if it is one (consumed); reserved words are
    /// refused with a hint to quote them.
    fn field_ref_token(&mut self, what: &str) -> Result<Option<FieldRef>, ParseError> {
        let TokenKind::Name { segments, .. } = &self.tok.kind else {
            return Ok(None);
        };
        if let Some(w) = self.tok.word().filter(|w| is_reserved(w)) {
            return Err(ParseError::expected(
                self.tok.pos(),
                format!(
                    "expected {what}{}, found the keyword '{w}' (a field with that name must be quoted: `{w}`)",
                    self.after()
                ),
                &[what],
            ));
        }
        let f = FieldRef {
            path: segments.clone(),
        };
        self.advance()?;
        Ok(Some(f))
    }

    fn field_list(&mut self, what: &str) -> Result<Vec<FieldRef>, ParseError> {
        let mut out = Vec::new();
        loop {
            match self.field_ref_token(what)? {
                Some(f) => out.push(f),
                None => return Err(self.unexpected(what, &[what])),
            }
            if !self.eat(&TokenKind::Comma)? {
                return Ok(out);
            }
        }
    }

    fn stats(&mut self) -> Result<Stats, ParseError> {
        let mut aggregations: Vec<Projection> = Vec::new();
        // Per expression: its start, whether it aggregates, fields read outside aggregations.
        let mut facts = Vec::new();
        loop {
            if self.tok.is_word("by") {
                return Err(self.unexpected(
                    "an aggregation such as count(*) or avg(x)",
                    &["an aggregation"],
                ));
            }
            self.ctx = AggContext::StatsItem;
            self.stats_refs.clear();
            self.stats_has_agg = false;
            let start = self.tok.pos();
            let expr = self.expr("an aggregation such as count(*) or avg(x)")?;
            let alias = self.alias()?;
            facts.push((
                start,
                self.stats_has_agg,
                std::mem::take(&mut self.stats_refs),
            ));
            aggregations.push(Projection { expr, alias });
            if !self.eat(&TokenKind::Comma)? {
                break;
            }
        }
        let mut by = Vec::new();
        if self.eat_word("by")? {
            self.ctx = AggContext::Forbidden("in a 'by' key");
            loop {
                let expr = self.expr("an expression")?;
                let alias = self.alias()?;
                by.push(Projection { expr, alias });
                if !self.eat(&TokenKind::Comma)? {
                    break;
                }
            }
        }
        // Outside aggregations, a stats expression may read only group keys and the aliases
        // of earlier stats expressions (AWS's Lambda example computes
        // `provisonedMemoryMB - maxMemoryUsedMB` from two aliases).
        let keys: Vec<String> = by.iter().map(Projection::name).collect();
        for (i, (start, has_agg, refs)) in facts.iter().enumerate() {
            let earlier: Vec<&str> = aggregations[..i]
                .iter()
                .filter_map(|p| p.alias.as_deref())
                .collect();
            let mut uses_alias = false;
            for (name, pos) in refs {
                if earlier.contains(&name.as_str()) {
                    uses_alias = true;
                } else if !keys.contains(name) {
                    return Err(ParseError::new(
                        *pos,
                        format!(
                            "'{name}' is used in 'stats' outside an aggregation function and is not a 'by' key; \
                             aggregate it (for example latest({name})) or add it after 'by'"
                        ),
                    ));
                }
            }
            if !has_agg && !uses_alias {
                return Err(ParseError::expected(
                    *start,
                    "a 'stats' expression must use an aggregation function such as count(*), avg(x), sum(x) or pct(x, 95)",
                    &["an aggregation"],
                ));
            }
        }
        self.ctx = AggContext::Forbidden("outside 'stats'");
        Ok(Stats { aggregations, by })
    }

    fn sort_keys(&mut self) -> Result<Vec<SortKey>, ParseError> {
        self.ctx = AggContext::Forbidden("in 'sort'");
        let mut out = Vec::new();
        loop {
            let expr = self.expr("a field to sort by")?;
            let order = if self.eat_word("desc")? {
                SortOrder::Desc
            } else {
                self.eat_word("asc")?;
                SortOrder::Asc
            };
            out.push(SortKey { expr, order });
            if !self.eat(&TokenKind::Comma)? {
                return Ok(out);
            }
        }
    }

    /// The modifier after `diff`, if any (`previousDay`, `previousWeek`, `previousMonth`, in
    /// any case).
    fn diff_period(&mut self) -> Result<DiffPeriod, ParseError> {
        let Some(word) = self.tok.word() else {
            return Ok(DiffPeriod::PreviousPeriod);
        };
        let found = DiffPeriod::MODIFIERS
            .iter()
            .copied()
            .find(|p| p.modifier().is_some_and(|m| m.eq_ignore_ascii_case(&word)));
        match found {
            Some(p) => {
                self.advance()?;
                Ok(p)
            }
            None if COMMANDS.contains(&word.as_str()) => Ok(DiffPeriod::PreviousPeriod),
            None => Err(self.unexpected(
                "previousDay, previousWeek, previousMonth, '|' or the end of the query",
                &[
                    "previousDay",
                    "previousWeek",
                    "previousMonth",
                    "'|'",
                    "end of query",
                ],
            )),
        }
    }

    fn limit_rows(&mut self, word: &str) -> Result<u64, ParseError> {
        let pos = self.tok.pos();
        let n = match self.tok.kind {
            TokenKind::Int(n) => n,
            _ => return Err(self.unexpected("a whole number of rows", &["a number"])),
        };
        if n < 1 || n as u64 > MAX_LIMIT {
            return Err(ParseError::new(
                pos,
                format!("'{word}' must be between 1 and {MAX_LIMIT} rows, found {n}"),
            ));
        }
        self.advance()?;
        Ok(n as u64)
    }

    fn parse_command(&mut self) -> Result<Parse, ParseError> {
        let source = match self.field_ref_token("the field to parse, such as @message")? {
            Some(f) => f,
            None => {
                return Err(
                    self.unexpected("the field to parse, such as @message", &["a field name"])
                );
            }
        };
        let pat_pos = self.tok.pos();
        let pattern = match &self.tok.kind {
            TokenKind::Str(glob) => {
                let glob = glob.clone();
                self.advance()?;
                let stars = glob.matches('*').count();
                if stars == 0 {
                    return Err(ParseError::new(
                        pat_pos,
                        "the parse pattern has no '*': each '*' captures one field",
                    ));
                }
                if !self.eat_word("as")? {
                    return Err(self.unexpected(
                        &format!("'as' and {stars} name(s) for the '*' captures"),
                        &["'as'"],
                    ));
                }
                let names_pos = self.tok.pos();
                let mut names = Vec::new();
                loop {
                    names.push(self.name("a name for a '*' capture")?);
                    if !self.eat(&TokenKind::Comma)? {
                        break;
                    }
                }
                if names.len() != stars {
                    return Err(ParseError::new(
                        names_pos,
                        format!(
                            "the parse pattern has {stars} '*' capture(s) but {} name(s) follow 'as'",
                            names.len()
                        ),
                    ));
                }
                ParsePattern::Glob { glob, names }
            }
            TokenKind::Slash => {
                let regex = self.regex()?;
                let names = regex_group_names(&regex, pat_pos)?;
                if names.is_empty() {
                    return Err(ParseError::new(
                        pat_pos,
                        "the parse regex has no named group: name each capture like (?<name>...)",
                    ));
                }
                if self.tok.is_word("as") {
                    return Err(ParseError::new(
                        self.tok.pos(),
                        "a parse regex names its fields with (?<name>...) groups; 'as' is only for glob patterns",
                    ));
                }
                ParsePattern::Regex { regex, names }
            }
            _ => {
                return Err(self.unexpected(
                    "a pattern: a \"glob with * wildcards\" or a /regex with (?<name>...) groups/",
                    &["a string", "a regex"],
                ));
            }
        };
        Ok(Parse { source, pattern })
    }

    /// Reads the `/regex/` starting at the current `/` token and checks that it compiles.
    fn regex(&mut self) -> Result<Regex, ParseError> {
        let at = self.tok.start;
        let tok = self.lexer.regex_at(at)?;
        let TokenKind::Regex(source) = tok.kind.clone() else {
            return Err(ParseError::new(at.position(), "expected a regex"));
        };
        compile_regex(&source, at.position())?;
        // Put the regex in place of the '/' so "after" messages name it.
        self.tok = tok;
        self.advance()?;
        Ok(Regex { source })
    }
}

fn compile_regex(source: &str, pos: Position) -> Result<regex::Regex, ParseError> {
    regex::RegexBuilder::new(source)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let detail = e
                .to_string()
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: ").map(str::to_string))
                .unwrap_or_else(|| e.to_string());
            ParseError::new(pos, format!("invalid regex /{source}/: {detail}"))
        })
}

fn regex_group_names(regex: &Regex, pos: Position) -> Result<Vec<String>, ParseError> {
    let re = compile_regex(&regex.source, pos)?;
    Ok(re.capture_names().flatten().map(str::to_string).collect())
}
