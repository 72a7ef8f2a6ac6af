//! The syntax tree of a Logs Insights query, as written (reference §5.3–§5.5).
//!
//! Parentheses leave no node: precedence is in the tree's shape, and [`std::fmt::Display`]
//! (in `display.rs`) puts back exactly the parentheses needed, so printing and re-parsing gives
//! the same tree. Positions are kept per command only ([`Located`]), which is what the planner
//! needs to point at a stage; expression-level errors are all raised by the parser itself.

use serde::Serialize;

use crate::error::Position;
use crate::functions::Function;

/// Words that cannot be bare field names; quote such a field in backticks (`` `desc` ``).
/// Matched case-insensitively.
pub const RESERVED_WORDS: &[&str] = &[
    "and", "or", "not", "in", "like", "as", "by", "asc", "desc", "into", "true", "false",
];

pub fn is_reserved(word: &str) -> bool {
    RESERVED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// The system fields of reference §5.2 that every event has.
pub mod system_fields {
    pub const TIMESTAMP: &str = "@timestamp";
    pub const MESSAGE: &str = "@message";
    pub const INGESTION_TIME: &str = "@ingestionTime";
    pub const LOG_STREAM: &str = "@logStream";
    pub const LOG: &str = "@log";
    pub const PTR: &str = "@ptr";
    pub const ALL: &[&str] = &[TIMESTAMP, MESSAGE, INGESTION_TIME, LOG_STREAM, LOG, PTR];
}

/// The result columns of `pattern` (reference §5.2, §5.3), in the order a query returns them.
/// What each holds is kinsight's definition where the reference is silent: see the query
/// crate's `pattern` module and docs/query.md.
pub mod pattern_fields {
    /// The pattern's text, its variable parts as `<*>`.
    pub const PATTERN: &str = "@pattern";
    /// The pattern's share of the events clustered (`@sampleCount` / all of them).
    pub const RATIO: &str = "@ratio";
    /// The number of events of the pattern.
    pub const SAMPLE_COUNT: &str = "@sampleCount";
    /// The severity most of the pattern's events carry (`Error`, `Warning`, `Info`, …).
    pub const SEVERITY_LABEL: &str = "@severityLabel";
    /// A stable identifier of the pattern's text.
    pub const PATTERN_ID: &str = "@patternId";
    /// The pattern's variable tokens, as JSON.
    pub const TOKENS: &str = "@tokens";
    /// The pattern's event counts over the query's time range, as JSON.
    pub const VISUALIZATION: &str = "@visualization";
    pub const ALL: &[&str] = &[
        PATTERN,
        RATIO,
        SAMPLE_COUNT,
        SEVERITY_LABEL,
        PATTERN_ID,
        TOKENS,
        VISUALIZATION,
    ];
    /// `diff`: the pattern's events in the range compared with.
    pub const PREVIOUS_SAMPLE_COUNT: &str = "@previousSampleCount";
    /// `diff`: `@sampleCount - @previousSampleCount`.
    pub const CHANGE_IN_COUNT: &str = "@changeInCount";
    /// `diff`: `new`, `gone`, `increased`, `decreased` or `unchanged`.
    pub const DIFF: &str = "@diff";
    /// The columns `diff` adds after [`ALL`].
    pub const DIFF_ALL: &[&str] = &[PREVIOUS_SAMPLE_COUNT, CHANGE_IN_COUNT, DIFF];
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Query {
    pub commands: Vec<Located<Command>>,
}

/// A node and where it starts in the query text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Located<T> {
    pub pos: Position,
    pub node: T,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Command {
    /// `fields a, b, expr as c`
    Fields(Vec<Projection>),
    /// `display a, b` — field names only.
    Display(Vec<FieldRef>),
    /// `filter <boolean expr>`
    Filter(Expr),
    /// `stats agg(x) [as n], … [by expr [as k], …]`
    Stats(Stats),
    /// `sort f [asc|desc], …`
    Sort(Vec<SortKey>),
    /// `limit N` (or the deprecated `head N` / `tail N`).
    Limit(Limit),
    /// `parse field "glob" as a, b` / `parse field /(?<name>re)/`
    Parse(Parse),
    /// `dedup f1, f2`
    Dedup(Vec<FieldRef>),
    /// `unnest listField into item`
    Unnest(Unnest),
    /// `pattern <expr>`: the values of `expr` (usually `@message`) clustered into patterns,
    /// one result row per pattern (reference §5.3; the columns are [`pattern_fields`]).
    Pattern(Expr),
    /// `diff [previousDay|previousWeek|previousMonth]`: the patterns of the query's time range
    /// against those of an earlier range of the same length (reference §5.3), after `pattern`
    /// or on its own (then of `@message`).
    Diff(DiffPeriod),
}

/// The range `diff` compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DiffPeriod {
    /// The range just before the query's (`diff` alone).
    PreviousPeriod,
    PreviousDay,
    PreviousWeek,
    /// The same time of the previous calendar month.
    PreviousMonth,
}

impl DiffPeriod {
    /// The modifier after `diff`, none for the previous period.
    pub fn modifier(self) -> Option<&'static str> {
        match self {
            DiffPeriod::PreviousPeriod => None,
            DiffPeriod::PreviousDay => Some("previousDay"),
            DiffPeriod::PreviousWeek => Some("previousWeek"),
            DiffPeriod::PreviousMonth => Some("previousMonth"),
        }
    }

    pub const MODIFIERS: &[DiffPeriod] = &[
        DiffPeriod::PreviousDay,
        DiffPeriod::PreviousWeek,
        DiffPeriod::PreviousMonth,
    ];
}

impl Command {
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::Fields(_) => "fields",
            Command::Display(_) => "display",
            Command::Filter(_) => "filter",
            Command::Stats(_) => "stats",
            Command::Sort(_) => "sort",
            Command::Limit(l) => l.keyword.as_str(),
            Command::Parse(_) => "parse",
            Command::Dedup(_) => "dedup",
            Command::Unnest(_) => "unnest",
            Command::Pattern(_) => "pattern",
            Command::Diff(_) => "diff",
        }
    }
}

/// An expression with an optional `as` alias.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub expr: Expr,
    pub alias: Option<String>,
}

impl Projection {
    /// The result column's name: the alias, else the field's name, else the expression as
    /// text (CloudWatch names an unaliased `count(*)` column `count(*)`).
    pub fn name(&self) -> String {
        match (&self.alias, &self.expr) {
            (Some(a), _) => a.clone(),
            (None, Expr::Field(f)) => f.name(),
            (None, e) => e.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub aggregations: Vec<Projection>,
    pub by: Vec<Projection>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SortKey {
    pub expr: Expr,
    pub order: SortOrder,
}

/// A sort key without `asc`/`desc` is ascending. The reference does not say (§5.3); the AWS
/// examples only omit it where ascending is meant (`… by bin(1h) as t | sort t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub rows: u64,
    pub keyword: LimitKeyword,
}

/// `head` and `tail` are deprecated synonyms of `limit` (§5.3); kept only to print the query
/// back as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LimitKeyword {
    Limit,
    Head,
    Tail,
}

impl LimitKeyword {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKeyword::Limit => "limit",
            LimitKeyword::Head => "head",
            LimitKeyword::Tail => "tail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parse {
    pub source: FieldRef,
    pub pattern: ParsePattern,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ParsePattern {
    /// Each `*` of `glob` is a positional capture named by `names` (same length, ≥ 1).
    Glob { glob: String, names: Vec<String> },
    /// `names` are the regex's named groups `(?<name>…)`, in order (≥ 1).
    Regex { regex: Regex, names: Vec<String> },
}

impl ParsePattern {
    /// The fields this pattern creates.
    pub fn names(&self) -> &[String] {
        match self {
            ParsePattern::Glob { names, .. } | ParsePattern::Regex { names, .. } => names,
        }
    }

    /// A regex (Rust `regex` syntax) whose capture groups 1..=n are the fields of
    /// [`ParsePattern::names`], in order, for the planner to evaluate either form alike.
    ///
    /// A glob is not anchored at the start; each `*` matches as little as possible, except a
    /// trailing `*`, which takes the rest of the value (reference §5.3 says captures behave
    /// non-greedily, [inferred]). A regex keeps its own named groups and is returned as is.
    pub fn to_regex(&self) -> String {
        match self {
            ParsePattern::Regex { regex, .. } => regex.source.clone(),
            ParsePattern::Glob { glob, .. } => {
                let pieces: Vec<&str> = glob.split('*').collect();
                let last = pieces.len() - 1;
                let mut out = String::from("(?s)");
                for (i, piece) in pieces.iter().enumerate() {
                    out.push_str(&regex::escape(piece));
                    if i < last {
                        out.push_str(if i + 1 == last && pieces[last].is_empty() {
                            "(.*)"
                        } else {
                            "(.*?)"
                        });
                    }
                }
                out
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unnest {
    pub expr: Expr,
    pub into: String,
}

/// A `/regex/` literal: `source` is the text between the slashes, escapes (including `\/`)
/// kept verbatim. It has been checked to compile with the `regex` crate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Regex {
    pub source: String,
}

/// A field path: `status` is `["status"]`, `kubernetes.pod_name` is
/// `["kubernetes", "pod_name"]`, `` kubernetes.`odd.key` `` is `["kubernetes", "odd.key"]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FieldRef {
    pub path: Vec<String>,
}

impl FieldRef {
    pub fn new(name: impl Into<String>) -> Self {
        FieldRef {
            path: vec![name.into()],
        }
    }

    /// The flattened name under which discovered JSON fields are stored: the segments joined
    /// with `.` (reference §5.1: nested keys and arrays flatten to `a.0.b`).
    pub fn name(&self) -> String {
        self.path.join(".")
    }

    /// The first segment: for `m.attr` where `m` is an ephemeral field (e.g. from
    /// `jsonParse`), the planner resolves `m` first.
    pub fn root(&self) -> &str {
        self.path.first().map(String::as_str).unwrap_or("")
    }

    pub fn is_system(&self) -> bool {
        system_fields::ALL.contains(&self.name().as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expr {
    Field(FieldRef),
    Literal(Literal),
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `expr like "s"`, `expr not like /re/`, `expr =~ /re/`, `expr =~ "s"` (§5.4).
    Match {
        expr: Box<Expr>,
        op: MatchOp,
        pattern: Pattern,
        negated: bool,
    },
    /// `expr in [a, b]` / `expr not in [...]` (whole-value match, §5.4).
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `list[i]` on a LIST value (from `jsonParse`, §5.5).
    Index {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    /// A function of the table in `functions.rs`. `count(*)` and `count()` both have no
    /// arguments.
    Call {
        function: Function,
        args: Vec<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Literal {
    /// Always ≥ 0 as parsed; `-5` is `Neg(5)`.
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Period(Period),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Pow => "^",
            Eq => "=",
            NotEq => "!=",
            Lt => "<",
            LtEq => "<=",
            Gt => ">",
            GtEq => ">=",
            And => "and",
            Or => "or",
        }
    }

    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | NotEq | Lt | LtEq | Gt | GtEq)
    }
}

/// Which spelling matched: both do substring matching with a string and regex matching with
/// a `/regex/` (§5.4; AWS "Regular Expressions in the Filter Command").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MatchOp {
    Like,
    /// `=~`
    RegexEq,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Pattern {
    /// Case-sensitive substring match.
    Substring(String),
    Regex(Regex),
}

/// A time period `<n><unit>` (§5.1), e.g. `5m`. Always > 0 and ≤ `i64::MAX` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub value: u64,
    pub unit: TimeUnit,
}

impl Period {
    /// The period in milliseconds, `None` on overflow (the parser rejects those).
    pub fn millis(&self) -> Option<i64> {
        let ms = self.value.checked_mul(self.unit.millis())?;
        i64::try_from(ms).ok()
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.value, self.unit.suffix())
    }
}

/// Units of a time period: ms, s, m, h (documented), d (accepted in practice) and w.
/// Per-unit caps reported by a secondary source (60 s, 60 m, 24 h) are not enforced: the
/// reference marks them unverified, and `300s` has an obvious meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TimeUnit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
}

impl TimeUnit {
    pub fn millis(self) -> u64 {
        match self {
            TimeUnit::Millisecond => 1,
            TimeUnit::Second => 1_000,
            TimeUnit::Minute => 60_000,
            TimeUnit::Hour => 3_600_000,
            TimeUnit::Day => 86_400_000,
            TimeUnit::Week => 604_800_000,
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Millisecond => "ms",
            TimeUnit::Second => "s",
            TimeUnit::Minute => "m",
            TimeUnit::Hour => "h",
            TimeUnit::Day => "d",
            TimeUnit::Week => "w",
        }
    }
}

impl Expr {
    /// Calls `f` on this expression and every sub-expression, parents first.
    pub fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Field(_) | Expr::Literal(_) => {}
            Expr::Unary { expr, .. } | Expr::Match { expr, .. } => expr.visit(f),
            Expr::Binary { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.visit(f);
                list.iter().for_each(|e| e.visit(f));
            }
            Expr::Index { expr, index } => {
                expr.visit(f);
                index.visit(f);
            }
            Expr::Call { args, .. } => args.iter().for_each(|e| e.visit(f)),
        }
    }

    /// Every field this expression reads, in order of appearance (duplicates kept).
    pub fn field_refs(&self) -> Vec<&FieldRef> {
        let mut out = Vec::new();
        self.visit(&mut |e| {
            if let Expr::Field(f) = e {
                out.push(f);
            }
        });
        out
    }

    /// Whether any call in the expression satisfies `pred`.
    pub fn any_call(&self, pred: &dyn Fn(Function) -> bool) -> bool {
        let mut found = false;
        self.visit(&mut |e| {
            if let Expr::Call { function, .. } = e {
                found |= pred(*function);
            }
        });
        found
    }

    pub fn contains_aggregate(&self) -> bool {
        self.any_call(&|f| f.is_aggregate())
    }

    /// Rebuilds the expression top-down: where `f` returns a replacement it is used as is
    /// (its children are not visited), elsewhere the node is kept and its children rewritten.
    pub fn transform(&self, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
        if let Some(e) = f(self) {
            return e;
        }
        let mut bx = |e: &Expr| Box::new(e.transform(f));
        match self {
            Expr::Field(_) | Expr::Literal(_) => self.clone(),
            Expr::Unary { op, expr } => Expr::Unary {
                op: *op,
                expr: bx(expr),
            },
            Expr::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: bx(left),
                right: bx(right),
            },
            Expr::Match {
                expr,
                op,
                pattern,
                negated,
            } => Expr::Match {
                expr: bx(expr),
                op: *op,
                pattern: pattern.clone(),
                negated: *negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: bx(expr),
                list: list.iter().map(|e| e.transform(f)).collect(),
                negated: *negated,
            },
            Expr::Index { expr, index } => Expr::Index {
                expr: bx(expr),
                index: bx(index),
            },
            Expr::Call { function, args } => Expr::Call {
                function: *function,
                args: args.iter().map(|e| e.transform(f)).collect(),
            },
        }
    }
}
