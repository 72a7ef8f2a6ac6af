//! Semantic normalization (`pipeline.rs`): each rule of the module doc, tested on its own.

use kinsight_ql::{DEFAULT_RESULT_ROWS, MAX_RESULT_ROWS, Pipeline, Stage, plan};

fn ok(src: &str) -> Pipeline {
    match plan(src) {
        Ok(p) => p,
        Err(e) => panic!("{src:?} should plan, got: {e}"),
    }
}

fn err(src: &str) -> kinsight_ql::ParseError {
    match plan(src) {
        Ok(p) => panic!("{src:?} should not plan, got:\n{p}"),
        Err(e) => e,
    }
}

fn stages(s: &[kinsight_ql::Located<Stage>]) -> Vec<String> {
    s.iter().map(|s| s.node.to_string()).collect()
}

#[test]
fn filter_after_stats_on_event_fields_filters_the_input() {
    let p = ok("stats count() as n by k | filter Type = 'Pod' | filter n > 2 and k != 'x'");
    assert_eq!(stages(&p.input), ["filter Type = \"Pod\""]);
    assert_eq!(stages(&p.output), ["filter n > 2 and k != \"x\""]);
    assert!(p.input_fields.contains("Type"));
}

#[test]
fn filter_after_stats_mixing_results_and_event_fields_is_refused() {
    let e = err("stats count() as n by k\n| filter n > 2 and Type = 'Pod'");
    assert_eq!((e.line, e.column), (2, 3));
    assert_eq!(
        e.message,
        "this filter after 'stats' mixes its result columns (n) with event fields (Type); \
         put the condition on event fields in a filter before 'stats'"
    );
}

#[test]
fn sort_after_stats_on_event_fields_is_ignored_with_a_warning() {
    let p = ok("stats avg(x) as a by k | sort @timestamp desc, a desc");
    assert_eq!(stages(&p.output), ["sort a desc"]);
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(
        p.warnings[0].to_string(),
        "line 1, column 26: sort key @timestamp is ignored: after 'stats' only its result columns can be sorted (k, a)"
    );
    let e = err("stats avg(x) as a by k | sort a + other");
    assert!(
        e.message
            .contains("'other' in 'sort' is not available after 'stats'"),
        "{e}"
    );
}

#[test]
fn sort_before_stats_is_dropped_unless_a_limit_follows_it() {
    let p = ok("sort @timestamp desc | filter a = 1 | stats count() as n");
    assert_eq!(stages(&p.input), ["filter a = 1"]);
    let p = ok("sort @timestamp desc | limit 100 | stats count() as n");
    assert_eq!(stages(&p.input), ["sort @timestamp desc", "limit 100"]);
    // A limit before stats keeps the newest events, as it would without stats.
    let p = ok("filter a = 1 | limit 100 | stats count() as n");
    assert_eq!(
        stages(&p.input),
        [
            "filter a = 1",
            "sort @timestamp desc (default order)",
            "limit 100"
        ]
    );
}

#[test]
fn fields_accumulate_and_the_last_display_wins() {
    let p = ok("fields a, b | fields c, a, d * 2 as e");
    assert_eq!(p.columns, ["a", "b", "c", "e"]);
    // Plain names compute nothing; only the expression becomes a stage.
    assert_eq!(
        stages(&p.input),
        ["fields d * 2 as e", "sort @timestamp desc (default order)"]
    );
    let p = ok("fields a, b | display a | fields c | display c, b");
    assert_eq!(p.columns, ["c", "b"]);
    assert!(
        !p.input_fields.contains("a"),
        "a is neither displayed nor read"
    );
}

#[test]
fn default_columns_order_and_row_cap_for_raw_events() {
    let p = ok("filter @message like /error/");
    assert_eq!(p.columns, ["@timestamp", "@message"]);
    assert_eq!(
        stages(&p.input),
        [
            "filter @message like /error/",
            "sort @timestamp desc (default order)"
        ]
    );
    assert_eq!(p.result_row_cap, DEFAULT_RESULT_ROWS);
    assert!(p.needs_message());
    // The default order goes before the first limit/dedup, unless a sort is already there.
    let p = ok("filter a = 1 | limit 5 | sort b");
    assert_eq!(
        stages(&p.input),
        [
            "filter a = 1",
            "sort @timestamp desc (default order)",
            "limit 5",
            "sort b asc"
        ]
    );
    assert_eq!(p.result_row_cap, MAX_RESULT_ROWS);
    let p = ok("sort b desc | dedup c | limit 5");
    assert_eq!(stages(&p.input), ["sort b desc", "dedup c", "limit 5"]);
}

#[test]
fn only_limit_may_follow_dedup_and_only_one_stats() {
    let e = err("fields a | dedup a\n| sort a");
    assert_eq!((e.line, e.column), (2, 3));
    assert_eq!(
        e.message,
        "only 'limit' may follow 'dedup' (the dedup is at line 1, column 12), found 'sort'"
    );
    assert_eq!(e.expected, ["'limit'"]);
    ok("dedup a | limit 10 | limit 5");
    let e = err("stats count() as n by k | stats sum(n) as t");
    assert_eq!((e.line, e.column), (1, 27));
    assert!(e.message.contains("only one 'stats'"));
}

#[test]
fn aggregation_splits_into_keys_aggregates_and_outputs() {
    let p = ok("stats count(*) as n, count(*) * 2 as twice, avg(x) by bin(5m), k as key");
    let a = &p.aggregation.as_ref().unwrap().node;
    let keys: Vec<String> = a
        .group_by
        .iter()
        .map(|g| format!("{} = {}", g.name, g.expr))
        .collect();
    assert_eq!(keys, ["bin(5m) = bin(5m)", "key = k"]);
    let aggs: Vec<&str> = a.aggregates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        aggs,
        ["count(*)", "avg(x)"],
        "repeated calls are computed once"
    );
    let outs: Vec<String> = a
        .outputs
        .iter()
        .map(|o| format!("{} = {}", o.name, o.expr))
        .collect();
    assert_eq!(
        outs,
        [
            "n = `count(*)`",
            "twice = `count(*)` * 2",
            "avg(x) = `avg(x)`"
        ]
    );
    assert_eq!(p.columns, ["bin(5m)", "key", "n", "twice", "avg(x)"]);
    // bin() reads @timestamp although no argument names it.
    assert_eq!(
        p.input_fields.iter().collect::<Vec<_>>(),
        ["@timestamp", "k", "x"]
    );
    assert!(!p.needs_message());
}

#[test]
fn earlier_stats_aliases_are_inlined() {
    let p = ok("stats max(a) as hi, min(a) as lo, hi - lo as spread");
    let a = &p.aggregation.unwrap().node;
    assert_eq!(a.outputs[2].expr.to_string(), "`max(a)` - `min(a)`");
}

#[test]
fn duplicate_result_columns_are_refused() {
    let e = err("stats count() as k by k");
    assert_eq!(
        e.message,
        "'k' names two result columns of this 'stats'; give one of them another alias with 'as'"
    );
}

#[test]
fn stages_after_stats_see_only_its_results() {
    let p = ok(
        "stats sum(b) as bytes, count() as n by host | fields bytes / n as avg_size | sort avg_size desc | limit 3",
    );
    assert_eq!(
        stages(&p.output),
        [
            "fields bytes / n as avg_size",
            "sort avg_size desc",
            "limit 3"
        ]
    );
    assert_eq!(p.columns, ["avg_size"]);
    assert_eq!(p.result_row_cap, MAX_RESULT_ROWS);
    let p = ok("stats count() as n by host | display host");
    assert_eq!(p.columns, ["host"]);
    let e = err("stats count() as n by host | display @message");
    assert!(
        e.message.contains(
            "'@message' in 'display' is not available after 'stats': its result columns are host, n"
        ),
        "{e}"
    );
    let e = err("stats count() as n by host | fields @message");
    assert!(e.message.contains("in 'fields'"), "{e}");
}

#[test]
fn input_fields_exclude_names_the_query_defines() {
    let p = ok(
        "parse @message '* *' as lvl, rest | fields jsonParse(rest) as js, x + 1 as y \
         | unnest js.items into item | filter lvl = 'E' and item.id > y and z = 1",
    );
    assert_eq!(
        p.input_fields.iter().collect::<Vec<_>>(),
        ["@message", "@timestamp", "x", "z"]
    );
    // A name read before it is defined is an input.
    let p = ok("filter a = 1 | fields b as a");
    assert!(p.input_fields.contains("a"));
}

#[test]
fn display_before_stats_is_ignored_with_a_warning() {
    let p = ok("display a | stats count() as n");
    assert_eq!(p.columns, ["n"]);
    assert_eq!(
        p.warnings[0].message,
        "'display' before 'stats' has no effect: the result has the columns of 'stats'"
    );
}

#[test]
fn pattern_summarizes_like_stats() {
    let p = ok(
        "filter @logStream = 'a' | pattern @message | filter @sampleCount > 5 \
                | sort @severityLabel | limit 3",
    );
    assert!(p.is_summary() && !p.is_aggregation());
    assert_eq!(p.pattern.as_ref().unwrap().node.to_string(), "@message");
    assert_eq!(stages(&p.input), ["filter @logStream = \"a\""]);
    assert_eq!(
        stages(&p.output),
        [
            "filter @sampleCount > 5",
            "sort @severityLabel asc",
            "limit 3"
        ]
    );
    assert_eq!(
        p.columns,
        [
            "@pattern",
            "@ratio",
            "@sampleCount",
            "@severityLabel",
            "@patternId",
            "@tokens",
            "@visualization"
        ]
    );
    assert_eq!(p.result_row_cap, MAX_RESULT_ROWS);
    // It reads its expression's fields and @timestamp (the counts over time).
    assert_eq!(
        p.input_fields.iter().collect::<Vec<_>>(),
        ["@logStream", "@message", "@timestamp"]
    );
    assert!(p.to_string().contains("pattern [1:27]: @message"), "{p}");

    // A filter on event fields after pattern selects the events, as after stats.
    let p = ok("pattern @message | filter @logStream = 'x' | display @pattern, @sampleCount");
    assert_eq!(stages(&p.input), ["filter @logStream = \"x\""]);
    assert_eq!(p.columns, ["@pattern", "@sampleCount"]);
    assert_eq!(p.result_row_cap, DEFAULT_RESULT_ROWS);
    // A limit before pattern keeps the newest events.
    let p = ok("limit 100 | pattern @message");
    assert_eq!(
        stages(&p.input),
        ["sort @timestamp desc (default order)", "limit 100"]
    );
    let p = ok("parse @message 'took *ms' as t | pattern t");
    assert_eq!(
        p.input_fields.iter().collect::<Vec<_>>(),
        ["@message", "@timestamp"]
    );
}

#[test]
fn one_summary_per_query() {
    let e = err("pattern @message\n| stats count() as n");
    assert_eq!((e.line, e.column), (2, 3));
    assert!(
        e.message.contains("'stats' cannot be used with 'pattern'"),
        "{e}"
    );
    let e = err("stats count() as n | pattern @message");
    assert_eq!((e.line, e.column), (1, 22));
    assert!(
        e.message.contains("'pattern' cannot be used with 'stats'"),
        "{e}"
    );
    let e = err("pattern @message | pattern @message");
    assert!(e.message.contains("only one 'pattern'"), "{e}");
    let e = err("pattern @message | display @message");
    assert_eq!(
        e.message,
        "'@message' in 'display' is not available after 'pattern': its result columns are \
         @pattern, @ratio, @sampleCount, @severityLabel, @patternId, @tokens, @visualization"
    );
    let e = err("pattern @message | filter @sampleCount > 1 and @logStream = 'a'");
    assert!(e.message.contains("after 'pattern' mixes"), "{e}");
    let p = ok("pattern @message | sort @timestamp desc");
    assert!(p.output.is_empty());
    assert!(p.warnings[0].message.contains("after 'pattern'"));
}

#[test]
fn diff_compares_patterns() {
    use kinsight_ql::DiffPeriod;
    // Alone, diff compares the patterns of @message.
    let p = ok("filter @logStream = 'a' | diff previousDay | filter @diff = 'new'");
    assert_eq!(p.pattern.as_ref().unwrap().node.to_string(), "@message");
    assert_eq!(p.diff.as_ref().unwrap().node, DiffPeriod::PreviousDay);
    assert_eq!(stages(&p.input), ["filter @logStream = \"a\""]);
    assert_eq!(stages(&p.output), ["filter @diff = \"new\""]);
    assert_eq!(
        p.columns,
        [
            "@pattern",
            "@ratio",
            "@sampleCount",
            "@severityLabel",
            "@patternId",
            "@tokens",
            "@visualization",
            "@previousSampleCount",
            "@changeInCount",
            "@diff"
        ]
    );
    // After pattern, it compares that pattern's values.
    let p = ok("parse @message 'user=*,' as u | pattern u | diff | sort @changeInCount | limit 3");
    assert_eq!(p.pattern.as_ref().unwrap().node.to_string(), "u");
    assert_eq!(p.diff.as_ref().unwrap().node, DiffPeriod::PreviousPeriod);
    assert_eq!(stages(&p.output), ["sort @changeInCount asc", "limit 3"]);
    assert!(p.to_string().contains("diff [1:45]: PreviousPeriod"), "{p}");
    // Without diff, no diff columns.
    let e = err("pattern @message | display @diff");
    assert!(e.message.contains("not available after 'pattern'"), "{e}");
}

#[test]
fn diff_is_placed_after_pattern_only() {
    let e = err("pattern @message | filter @sampleCount > 1\n| diff");
    assert_eq!((e.line, e.column), (2, 3));
    assert!(
        e.message
            .contains("'diff' must follow 'pattern' (at line 1, column 1) directly"),
        "{e}"
    );
    let e = err("diff | pattern @message");
    assert!(
        e.message.contains("'pattern' must come before 'diff'"),
        "{e}"
    );
    let e = err("stats count() as n | diff");
    assert!(
        e.message.contains("'diff' cannot be used with 'stats'"),
        "{e}"
    );
    let e = err("diff | stats count() as n");
    assert!(
        e.message.contains("'stats' cannot be used with 'diff'"),
        "{e}"
    );
    let e = err("diff | diff previousDay");
    assert!(e.message.contains("only one 'diff'"), "{e}");
    // A cut before diff would take from both ranges at once.
    let e = err("limit 10 | diff");
    assert_eq!((e.line, e.column), (1, 1));
    assert!(
        e.message.contains("'limit' cannot come before 'diff'"),
        "{e}"
    );
    let e = err("fields a | dedup a | diff");
    assert!(e.message.contains("only 'limit' may follow 'dedup'"), "{e}");
    ok("sort @timestamp desc | diff");
}
