//! The function table of reference §5.5: every function parses with valid arguments in the
//! right context, by any letter case; wrong arity, argument kinds and placement are errors at
//! the call.

use kinsight_ql::{ArgKind, Command, Expr, FUNCTIONS, Function, FunctionKind, FunctionSpec};

use crate::support::{parse_err, parse_ok};

/// Valid argument text for each position of a call with `n` arguments.
fn args_text(spec: &FunctionSpec, n: usize) -> String {
    (0..n)
        .map(|i| match spec.arg_kind(i) {
            ArgKind::Any => format!("x{i}"),
            ArgKind::Field => "kubernetes.pod_name".to_string(),
            ArgKind::Percentile => "95".to_string(),
            ArgKind::Period => "5m".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A query using `call` where its kind allows it.
fn query_for(spec: &FunctionSpec, call: &str) -> String {
    match spec.kind {
        FunctionKind::Scalar => format!("fields {call} as v"),
        _ => format!("stats {call} as v"),
    }
}

fn parsed_call(q: &kinsight_ql::Query) -> Expr {
    match &q.commands[0].node {
        Command::Fields(p) => p[0].expr.clone(),
        Command::Stats(s) => s.aggregations[0].expr.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_function_parses_at_its_minimum_and_maximum_arity() {
    let mut table = String::new();
    for spec in FUNCTIONS {
        let max = spec.max_args.unwrap_or(spec.min_args + 2);
        for n in [spec.min_args, max] {
            let call = format!("{}({})", spec.name, args_text(spec, n));
            let q = parse_ok(&query_for(spec, &call));
            let Expr::Call { function, args } = parsed_call(&q) else {
                panic!("{call} did not parse to a call");
            };
            assert_eq!(function, spec.function, "{call}");
            assert_eq!(args.len(), n, "{call}");
        }
        let call = format!("{}({})", spec.name, args_text(spec, spec.min_args));
        let printed = parsed_call(&parse_ok(&query_for(spec, &call))).to_string();
        table.push_str(&format!(
            "{:<15} {:<15} {:<22} {}\n",
            spec.name,
            format!("{:?}", spec.kind),
            spec.arity_text(),
            printed
        ));
    }
    insta::assert_snapshot!(table);
}

#[test]
fn names_match_in_any_letter_case() {
    for spec in FUNCTIONS {
        for name in [spec.name.to_uppercase(), spec.name.to_lowercase()] {
            let call = format!("{name}({})", args_text(spec, spec.min_args));
            let q = parse_ok(&query_for(spec, &call));
            let Expr::Call { function, .. } = parsed_call(&q) else {
                panic!()
            };
            assert_eq!(function, spec.function, "{call}");
            // Printing uses the documented spelling.
            assert!(parsed_call(&q).to_string().starts_with(spec.name));
        }
    }
}

#[test]
fn wrong_arity_is_an_error_at_the_call() {
    for spec in FUNCTIONS {
        let mut counts = vec![];
        if spec.min_args > 0 {
            counts.push(spec.min_args - 1);
        }
        if let Some(max) = spec.max_args {
            counts.push(max + 1);
        }
        for n in counts {
            let call = format!("{}({})", spec.name, args_text(spec, n));
            let src = query_for(spec, &call);
            let e = parse_err(&src);
            assert_eq!(
                (e.line, e.column),
                (1, 8 - usize::from(spec.kind != FunctionKind::Scalar)),
                "{src}: {e}"
            );
            assert!(
                e.message.contains(&format!("{}() takes", spec.name)),
                "{src}: {e}"
            );
        }
    }
}

#[test]
fn count_star_and_empty_count_are_the_same() {
    let a = parse_ok("stats count(*) as n");
    let b = parse_ok("stats count() as n");
    assert_eq!(a.commands[0].node, b.commands[0].node);
    assert_eq!(a.to_string(), "stats count(*) as n");
    let e = parse_err("stats sum(*)");
    assert_eq!((e.line, e.column), (1, 11));
    assert!(e.message.contains("only allowed in count(*)"));
}

#[test]
fn argument_kinds_are_checked() {
    let cases = [
        ("stats pct(x, 101)", 14, "a number from 0 to 100"),
        ("stats pct(x, p)", 14, "a number from 0 to 100"),
        ("stats pct(x, -5)", 14, "a number from 0 to 100"),
        ("stats count(*) by bin(5)", 23, "a time period"),
        (
            "fields datefloor(@timestamp, 'x') as d",
            30,
            "a time period",
        ),
        ("filter ispresent(1)", 18, "a field name"),
    ];
    for (src, column, what) in cases {
        let e = parse_err(src);
        assert_eq!((e.line, e.column), (1, column), "{src}: {e}");
        assert!(e.message.contains(what), "{src}: {e}");
    }
    // Valid forms of the same rules.
    parse_ok("stats pct(x, 0), pct(x, 99.9), pct(x, 100)");
    parse_ok("fields datefloor(@timestamp, 1h), dateceil(@timestamp, 1d), bin(100ms)");
    parse_ok("filter ispresent(errorCode) and ispresent(list[0])");
}

#[test]
fn aggregations_only_in_stats_and_never_nested() {
    let cases = [
        (
            "fields avg(x)",
            8,
            "only allowed in 'stats', not in 'fields'",
        ),
        ("filter count(*) > 1", 8, "not in 'filter'"),
        ("stats count() as n | sort max(n)", 27, "not in 'sort'"),
        ("stats count(*) by max(x)", 19, "not in a 'by' key"),
        ("stats sum(avg(x))", 11, "cannot be nested"),
        ("stats avg(x + latest(y))", 15, "cannot be nested"),
        ("stats x by y", 7, "outside an aggregation"),
        ("stats abs(x) + count()", 11, "outside an aggregation"),
        ("stats 1 + 2", 7, "must use an aggregation"),
    ];
    for (src, column, what) in cases {
        let e = parse_err(src);
        assert_eq!((e.line, e.column), (1, column), "{src}: {e}");
        assert!(e.message.contains(what), "{src}: {e}");
    }
    // Scalars around and inside aggregations, keys read outside them.
    parse_ok("stats ceil(avg(a - b)) as m, floor(avg(x / 1024)), count() * 2 by k");
    parse_ok("stats latest(x) - k as d by k");
}

#[test]
fn unknown_functions_suggest_a_spelling() {
    let e = parse_err("stats avgg(x)");
    assert_eq!((e.line, e.column), (1, 7));
    assert_eq!(e.message, "unknown function 'avgg'; did you mean avg()?");
    let e = parse_err("stats percentile(x, 50)");
    assert!(e.message.contains("pct(field, p)"), "{}", e.message);
    let e = parse_err("fields nosuchthing(x)");
    assert_eq!(e.message, "unknown function 'nosuchthing'");
}

#[test]
fn timestamp_readers_are_marked() {
    let readers: Vec<&str> = FUNCTIONS
        .iter()
        .filter(|s| s.reads_timestamp)
        .map(|s| s.name)
        .collect();
    assert_eq!(readers, ["bin", "earliest", "latest"]);
    assert_eq!(Function::SortsFirst.kind(), FunctionKind::NonAggregating);
    assert!(Function::Earliest.is_aggregate());
    assert!(!Function::Bin.is_aggregate());
}
