//! kinsight-ql: the CloudWatch Logs Insights query language (reference §5) — lexer, parser,
//! syntax tree, function table, and the normalized pipeline the query planner consumes.
//!
//! What it does:
//! - [`parse`] turns query text into a [`Query`] (one [`Command`] per `|`-separated stage),
//!   checking function names, arity and argument kinds ([`functions`]), aggregation placement
//!   and regex syntax, with errors that carry line, column and what was expected
//!   ([`ParseError`]).
//! - [`plan`] / [`Pipeline::from_query`] apply CloudWatch's semantic rules (filter after
//!   stats, accumulated `fields`, last `display`, default order and row cap…) and split the
//!   query into input stages, one summary (a `stats` aggregation or a `pattern` clustering,
//!   maybe compared by `diff`) and output stages, with the set of stored fields it reads.
//! - `Display` on the tree prints a query that parses back to the same tree.
//!
//! What it deliberately does not: know DataFusion, Arrow or the store (the `query` crate plans
//! a [`Pipeline`] onto DataFusion and clusters `pattern`'s values), evaluate anything, or
//! implement the other ML / data-protection commands of §5.3 (`anomaly`, `unmask`,
//! `filterIndex`, `SOURCE`, `lookup`, …), which are rejected with a clear "not supported"
//! error.

pub mod ast;
pub mod display;
pub mod error;
pub mod functions;
mod lexer;
mod parser;
pub mod pipeline;

pub use ast::{
    BinaryOp, Command, DiffPeriod, Expr, FieldRef, Limit, LimitKeyword, Literal, Located, MatchOp,
    Parse, ParsePattern, Pattern, Period, Projection, Query, Regex, SortKey, SortOrder, Stats,
    TimeUnit, UnaryOp, Unnest, pattern_fields, system_fields,
};
pub use error::{ParseError, Position, Warning};
pub use functions::{ArgKind, FUNCTIONS, Function, FunctionKind, FunctionSpec};
pub use parser::{COMMANDS, MAX_LIMIT, MAX_QUERY_CHARS, parse};
pub use pipeline::{
    AggregateCall, Aggregation, DEFAULT_RESULT_ROWS, MAX_RESULT_ROWS, NamedExpr, Pipeline, Stage,
    plan,
};
