//! Errors carry the line and column (1-based, in characters) of the offending token, say what
//! was found, and list what was expected.

use crate::support::parse_err;

/// (query, line, column, the whole message, expected)
const CASES: &[(&str, usize, usize, &str, &[&str])] = &[
    (
        "stats count(*) as n\n  by\n| sort n",
        3,
        1,
        "expected an expression after 'by', found '|'",
        &["an expression"],
    ),
    (
        "fields a,\n  b +",
        2,
        6,
        "expected an expression after '+', found end of query",
        &["an expression"],
    ),
    (
        "",
        1,
        1,
        "the query is empty: start with a command such as fields, filter or stats",
        &[
            "fields", "display", "filter", "stats", "sort", "limit", "parse", "dedup", "unnest",
            "pattern", "diff", "head", "tail",
        ],
    ),
    (
        "# only a comment\n",
        2,
        1,
        "the query is empty: start with a command such as fields, filter or stats",
        &[
            "fields", "display", "filter", "stats", "sort", "limit", "parse", "dedup", "unnest",
            "pattern", "diff", "head", "tail",
        ],
    ),
    (
        "fields a |",
        1,
        11,
        "expected a command after '|', found end of query",
        &[
            "fields", "display", "filter", "stats", "sort", "limit", "parse", "dedup", "unnest",
            "pattern", "diff", "head", "tail",
        ],
    ),
    (
        "fields a b",
        1,
        10,
        "expected ',', an operator, 'as', '|' or the end of the query after 'a', found 'b'",
        &["','", "an operator", "'as'", "'|'", "end of query"],
    ),
    (
        "limit 5 x",
        1,
        9,
        "expected '|' or the end of the query after number 5, found 'x'",
        &["'|'", "end of query"],
    ),
    (
        "filter a = 1 b",
        1,
        14,
        "expected an operator, '|' or the end of the query after number 1, found 'b'",
        &["an operator", "'|'", "end of query"],
    ),
    (
        "fields a filter b",
        1,
        10,
        "expected '|' before the command 'filter'",
        &["'|'"],
    ),
    (
        "filter (a = 1",
        1,
        14,
        "expected ')' to close the '(' at line 1, column 8, found end of query",
        &["')'"],
    ),
    (
        "filter a not b",
        1,
        14,
        "expected 'like' or 'in' after 'not', found 'b'",
        &["'like'", "'in'"],
    ),
    (
        "filter a in (1, 2)",
        1,
        13,
        "expected a list such as [1, \"a\"] after 'in', found '('",
        &["'['"],
    ),
    (
        "filter a like b",
        1,
        15,
        "expected a \"string\" or a /regex/ after 'like', found 'b'",
        &["a string", "a regex"],
    ),
    (
        "filter a = /x/",
        1,
        12,
        "a /regex/ can only follow 'like', 'not like', '=~' or the field of 'parse'",
        &[],
    ),
    (
        "filter x like /(ab/",
        1,
        15,
        "invalid regex /(ab/: unclosed group",
        &[],
    ),
    (
        "filter x like /abc",
        1,
        15,
        "unterminated regex: add the closing '/' (write '\\/' for a slash inside it)",
        &["'/'"],
    ),
    (
        "filter x = \"abc",
        1,
        12,
        "unterminated string: add the closing \"",
        &["'\"'"],
    ),
    (
        "fitler x = 1",
        1,
        1,
        "unknown command 'fitler'; did you mean 'filter'? (commands: fields, display, filter, stats, sort, limit, parse, dedup, unnest, pattern, diff)",
        &[
            "fields", "display", "filter", "stats", "sort", "limit", "parse", "dedup", "unnest",
            "pattern", "diff", "head", "tail",
        ],
    ),
    (
        "pattern @message\n| anomaly",
        2,
        3,
        "the command 'anomaly' is not supported by kinsight",
        &[],
    ),
    (
        "diff previousYear",
        1,
        6,
        "expected previousDay, previousWeek, previousMonth, '|' or the end of the query after 'diff', found 'previousYear'",
        &[
            "previousDay",
            "previousWeek",
            "previousMonth",
            "'|'",
            "end of query",
        ],
    ),
    (
        "filter x = 1 | pattern",
        1,
        23,
        "expected the field to find patterns in, such as @message after 'pattern', found end of query",
        &["an expression"],
    ),
    (
        "pattern @message, @logStream",
        1,
        17,
        "expected an operator, '|' or the end of the query after '@message', found ','",
        &["an operator", "'|'", "end of query"],
    ),
    (
        "pattern count(*)",
        1,
        9,
        "the aggregation function count() is only allowed in 'stats', not in 'pattern'; compute it in stats with an alias (stats count(...) as n) and use n afterwards",
        &[],
    ),
    (
        "patern @message",
        1,
        1,
        "unknown command 'patern'; did you mean 'pattern'? (commands: fields, display, filter, stats, sort, limit, parse, dedup, unnest, pattern, diff)",
        &[
            "fields", "display", "filter", "stats", "sort", "limit", "parse", "dedup", "unnest",
            "pattern", "diff", "head", "tail",
        ],
    ),
    (
        "filter x > 5min",
        1,
        12,
        "invalid time period '5min': a time period is a whole number followed by one of the units ms, s, m, h, d, w (for example 5m)",
        &["ms", "s", "m", "h", "d", "w"],
    ),
    (
        "filter x ! 1",
        1,
        10,
        "unexpected '!'; write '!=' for 'not equal' or 'not' to negate",
        &["'!='", "'not'"],
    ),
    (
        "fields desc",
        1,
        8,
        "expected an expression after 'fields', found the keyword 'desc' (a field with that name must be quoted: `desc`)",
        &["an expression"],
    ),
    (
        "parse @message 'a=*, b=*' as a",
        1,
        30,
        "the parse pattern has 2 '*' capture(s) but 1 name(s) follow 'as'",
        &[],
    ),
    (
        "parse @message 'a=*'",
        1,
        21,
        "expected 'as' and 1 name(s) for the '*' captures after string \"a=*\", found end of query",
        &["'as'"],
    ),
    (
        "parse @message /(\\d+)/",
        1,
        16,
        "the parse regex has no named group: name each capture like (?<name>...)",
        &[],
    ),
    (
        "parse 'x' as y",
        1,
        7,
        "expected the field to parse, such as @message after 'parse', found string \"x\"",
        &["a field name"],
    ),
    (
        "unnest items as item",
        1,
        14,
        "expected 'into' and a name for the elements after 'items', found 'as'",
        &["'into'"],
    ),
    (
        "stats by x",
        1,
        7,
        "expected an aggregation such as count(*) or avg(x) after 'stats', found 'by'",
        &["an aggregation"],
    ),
    (
        "filter `a\n",
        1,
        8,
        "unterminated backtick-quoted name: add the closing '`'",
        &["'`'"],
    ),
    ("filter `` = 1", 1, 8, "empty field name in backticks", &[]),
    (
        "filter é = 1 and ü ~ 2",
        1,
        20,
        "unexpected character '~'",
        &[],
    ),
];

#[test]
fn errors_name_position_found_and_expected() {
    for (src, line, column, message, expected) in CASES {
        let e = parse_err(src);
        assert_eq!(
            (e.line, e.column, e.message.as_str()),
            (*line, *column, *message),
            "query {src:?}"
        );
        assert_eq!(e.expected, *expected, "query {src:?}");
        assert_eq!(
            e.to_string(),
            format!("line {line}, column {column}: {message}")
        );
    }
}

#[test]
fn overly_long_or_deep_queries_are_refused_not_crashed() {
    let long = format!("filter x = '{}'", "a".repeat(10_000));
    let e = parse_err(&long);
    assert!(e.message.contains("maximum is 10000"), "{e}");

    let deep = format!("filter {}x{}", "(".repeat(500), ")".repeat(500));
    let e = parse_err(&deep);
    assert!(e.message.contains("nested too deeply"), "{e}");

    let chain = format!("filter x{}", " + x".repeat(300));
    assert!(parse_err(&chain).message.contains("too deep"));
    let negs = format!("filter {}x", "-".repeat(300));
    assert!(parse_err(&negs).message.contains("nested too deeply"));
    let nots = format!("filter {}x", "not ".repeat(300));
    assert!(parse_err(&nots).message.contains("nested too deeply"));

    // Up to the caps, nesting and chains work, on a small stack too.
    let ok = format!(
        "filter {}x{} = 1 or {}",
        "(".repeat(38),
        ")".repeat(38),
        vec!["y = 1"; 200].join(" or ")
    );
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let q = kinsight_ql::parse(&ok).unwrap();
            let _ = kinsight_ql::Pipeline::from_query(&q).unwrap().to_string();
        })
        .unwrap()
        .join()
        .unwrap();
}
