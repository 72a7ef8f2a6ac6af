//! The function table of reference §5.5: every function's canonical spelling, kind, arity and
//! argument rules. Names are matched case-insensitively (`isValidIp`, `isvalidip` and
//! `ISVALIDIP` are the same function), as CloudWatch does.

use serde::{Serialize, Serializer};

/// Where a function may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FunctionKind {
    /// One value per row; usable anywhere.
    Scalar,
    /// One value per group; only in `stats` (§5.5 "Aggregation").
    Aggregate,
    /// `earliest`, `latest`, `sortsFirst`, `sortsLast`: pick one row's value per group; only
    /// in `stats` (§5.5 "Non-aggregating"). For the planner they are aggregates too.
    NonAggregating,
}

/// What an argument must be, checked at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ArgKind {
    /// Any expression.
    Any,
    /// A field reference (`ispresent(f)`).
    Field,
    /// A number literal from 0 to 100 (`pct(f, p)`).
    Percentile,
    /// A time period literal such as `5m` (`bin(period)`, `datefloor(ts, period)`).
    Period,
}

/// Groups of §5.5, for documentation and completion lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FunctionGroup {
    Numeric,
    General,
    String,
    Datetime,
    Ip,
    Json,
    Aggregation,
    NonAggregating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    Abs,
    Ceil,
    Floor,
    Greatest,
    Least,
    Log,
    Sqrt,
    IsPresent,
    Coalesce,
    IsEmpty,
    IsBlank,
    Concat,
    Ltrim,
    Rtrim,
    Trim,
    Strlen,
    ToUpper,
    ToLower,
    Substr,
    Replace,
    StrContains,
    Bin,
    DateFloor,
    DateCeil,
    FromMillis,
    ToMillis,
    Now,
    IsValidIp,
    IsValidIpV4,
    IsValidIpV6,
    IsIpInSubnet,
    IsIpv4InSubnet,
    IsIpv6InSubnet,
    JsonParse,
    JsonStringify,
    Avg,
    Count,
    CountDistinct,
    Max,
    Min,
    Pct,
    Stddev,
    Sum,
    Earliest,
    Latest,
    SortsFirst,
    SortsLast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FunctionSpec {
    pub function: Function,
    /// Canonical spelling, as documented.
    pub name: &'static str,
    pub group: FunctionGroup,
    pub kind: FunctionKind,
    pub min_args: usize,
    /// `None`: variadic.
    pub max_args: Option<usize>,
    /// Kind of each argument; the last entry repeats for variadic functions.
    pub args: &'static [ArgKind],
    /// Reads `@timestamp` although no argument names it (`bin`, `earliest`, `latest`).
    pub reads_timestamp: bool,
}

impl FunctionSpec {
    pub fn arg_kind(&self, index: usize) -> ArgKind {
        self.args
            .get(index)
            .or(self.args.last())
            .copied()
            .unwrap_or(ArgKind::Any)
    }

    /// "1 argument", "2 to 3 arguments", "at least 1 argument", "no arguments".
    pub fn arity_text(&self) -> String {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match self.max_args {
            Some(0) => "no arguments".to_string(),
            Some(max) if max == self.min_args => format!("{max} {}", plural(max)),
            Some(max) => format!("{} to {max} arguments", self.min_args),
            None => format!("at least {} {}", self.min_args, plural(self.min_args)),
        }
    }
}

use ArgKind::{Any, Field, Percentile, Period};
use FunctionGroup as G;
use FunctionKind::{Aggregate, NonAggregating, Scalar};

const fn spec(
    function: Function,
    name: &'static str,
    group: FunctionGroup,
    kind: FunctionKind,
    min_args: usize,
    max_args: Option<usize>,
    args: &'static [ArgKind],
) -> FunctionSpec {
    FunctionSpec {
        function,
        name,
        group,
        kind,
        min_args,
        max_args,
        args,
        reads_timestamp: false,
    }
}

const fn reads_timestamp(mut s: FunctionSpec) -> FunctionSpec {
    s.reads_timestamp = true;
    s
}

/// Every function of reference §5.5, in the reference's order.
pub static FUNCTIONS: &[FunctionSpec] = &[
    spec(Function::Abs, "abs", G::Numeric, Scalar, 1, Some(1), &[Any]),
    spec(
        Function::Ceil,
        "ceil",
        G::Numeric,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Floor,
        "floor",
        G::Numeric,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Greatest,
        "greatest",
        G::Numeric,
        Scalar,
        1,
        None,
        &[Any],
    ),
    spec(
        Function::Least,
        "least",
        G::Numeric,
        Scalar,
        1,
        None,
        &[Any],
    ),
    spec(Function::Log, "log", G::Numeric, Scalar, 1, Some(1), &[Any]),
    spec(
        Function::Sqrt,
        "sqrt",
        G::Numeric,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::IsPresent,
        "ispresent",
        G::General,
        Scalar,
        1,
        Some(1),
        &[Field],
    ),
    spec(
        Function::Coalesce,
        "coalesce",
        G::General,
        Scalar,
        1,
        None,
        &[Any],
    ),
    spec(
        Function::IsEmpty,
        "isempty",
        G::String,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::IsBlank,
        "isblank",
        G::String,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Concat,
        "concat",
        G::String,
        Scalar,
        1,
        None,
        &[Any],
    ),
    spec(
        Function::Ltrim,
        "ltrim",
        G::String,
        Scalar,
        1,
        Some(2),
        &[Any],
    ),
    spec(
        Function::Rtrim,
        "rtrim",
        G::String,
        Scalar,
        1,
        Some(2),
        &[Any],
    ),
    spec(
        Function::Trim,
        "trim",
        G::String,
        Scalar,
        1,
        Some(2),
        &[Any],
    ),
    spec(
        Function::Strlen,
        "strlen",
        G::String,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::ToUpper,
        "toupper",
        G::String,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::ToLower,
        "tolower",
        G::String,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Substr,
        "substr",
        G::String,
        Scalar,
        2,
        Some(3),
        &[Any],
    ),
    spec(
        Function::Replace,
        "replace",
        G::String,
        Scalar,
        3,
        Some(3),
        &[Any],
    ),
    spec(
        Function::StrContains,
        "strcontains",
        G::String,
        Scalar,
        2,
        Some(2),
        &[Any],
    ),
    reads_timestamp(spec(
        Function::Bin,
        "bin",
        G::Datetime,
        Scalar,
        1,
        Some(1),
        &[Period],
    )),
    spec(
        Function::DateFloor,
        "datefloor",
        G::Datetime,
        Scalar,
        2,
        Some(2),
        &[Any, Period],
    ),
    spec(
        Function::DateCeil,
        "dateceil",
        G::Datetime,
        Scalar,
        2,
        Some(2),
        &[Any, Period],
    ),
    spec(
        Function::FromMillis,
        "fromMillis",
        G::Datetime,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::ToMillis,
        "toMillis",
        G::Datetime,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(Function::Now, "now", G::Datetime, Scalar, 0, Some(0), &[]),
    spec(
        Function::IsValidIp,
        "isValidIp",
        G::Ip,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::IsValidIpV4,
        "isValidIpV4",
        G::Ip,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::IsValidIpV6,
        "isValidIpV6",
        G::Ip,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::IsIpInSubnet,
        "isIpInSubnet",
        G::Ip,
        Scalar,
        2,
        Some(2),
        &[Any],
    ),
    spec(
        Function::IsIpv4InSubnet,
        "isIpv4InSubnet",
        G::Ip,
        Scalar,
        2,
        Some(2),
        &[Any],
    ),
    spec(
        Function::IsIpv6InSubnet,
        "isIpv6InSubnet",
        G::Ip,
        Scalar,
        2,
        Some(2),
        &[Any],
    ),
    spec(
        Function::JsonParse,
        "jsonParse",
        G::Json,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::JsonStringify,
        "jsonStringify",
        G::Json,
        Scalar,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Avg,
        "avg",
        G::Aggregation,
        Aggregate,
        1,
        Some(1),
        &[Any],
    ),
    // count() and count(*) count all rows; count(f) rows where f is present.
    spec(
        Function::Count,
        "count",
        G::Aggregation,
        Aggregate,
        0,
        Some(1),
        &[Any],
    ),
    spec(
        Function::CountDistinct,
        "count_distinct",
        G::Aggregation,
        Aggregate,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Max,
        "max",
        G::Aggregation,
        Aggregate,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Min,
        "min",
        G::Aggregation,
        Aggregate,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Pct,
        "pct",
        G::Aggregation,
        Aggregate,
        2,
        Some(2),
        &[Any, Percentile],
    ),
    spec(
        Function::Stddev,
        "stddev",
        G::Aggregation,
        Aggregate,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::Sum,
        "sum",
        G::Aggregation,
        Aggregate,
        1,
        Some(1),
        &[Any],
    ),
    reads_timestamp(spec(
        Function::Earliest,
        "earliest",
        G::NonAggregating,
        NonAggregating,
        1,
        Some(1),
        &[Any],
    )),
    reads_timestamp(spec(
        Function::Latest,
        "latest",
        G::NonAggregating,
        NonAggregating,
        1,
        Some(1),
        &[Any],
    )),
    spec(
        Function::SortsFirst,
        "sortsFirst",
        G::NonAggregating,
        NonAggregating,
        1,
        Some(1),
        &[Any],
    ),
    spec(
        Function::SortsLast,
        "sortsLast",
        G::NonAggregating,
        NonAggregating,
        1,
        Some(1),
        &[Any],
    ),
];

impl Function {
    pub fn spec(self) -> &'static FunctionSpec {
        // The table is in enum order; the unit test `table_is_in_enum_order` keeps it so.
        &FUNCTIONS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn kind(self) -> FunctionKind {
        self.spec().kind
    }

    /// Aggregate or non-aggregating: allowed only in `stats`, one value per group.
    pub fn is_aggregate(self) -> bool {
        self.kind() != FunctionKind::Scalar
    }

    /// Case-insensitive lookup of a function name.
    pub fn lookup(name: &str) -> Option<Function> {
        FUNCTIONS
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .map(|s| s.function)
    }

    pub fn all() -> impl Iterator<Item = Function> {
        FUNCTIONS.iter().map(|s| s.function)
    }
}

impl Serialize for Function {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order() {
        for (i, s) in FUNCTIONS.iter().enumerate() {
            assert_eq!(s.function as usize, i, "{} is out of order", s.name);
        }
        assert_eq!(FUNCTIONS.len(), Function::SortsLast as usize + 1);
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(Function::lookup("ISVALIDIP"), Some(Function::IsValidIp));
        assert_eq!(Function::lookup("tomillis"), Some(Function::ToMillis));
        assert_eq!(
            Function::lookup("COUNT_DISTINCT"),
            Some(Function::CountDistinct)
        );
        assert_eq!(Function::lookup("percentile"), None);
    }

    #[test]
    fn arity_text_reads_well() {
        assert_eq!(Function::Avg.spec().arity_text(), "1 argument");
        assert_eq!(Function::Substr.spec().arity_text(), "2 to 3 arguments");
        assert_eq!(Function::Concat.spec().arity_text(), "at least 1 argument");
        assert_eq!(Function::Now.spec().arity_text(), "no arguments");
    }
}
