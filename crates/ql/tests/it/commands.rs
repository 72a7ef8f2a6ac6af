//! Every command of reference §5.3 that kinsight implements, as a syntax-tree snapshot, plus
//! the lexical rules of §5.1 (comments, multi-line pipelines, case of keywords).

use kinsight_ql::{Command, LimitKeyword, ParsePattern, SortOrder};

use crate::support::{parse_err, parse_ok};

#[test]
fn fields_with_expressions_and_aliases() {
    insta::assert_yaml_snapshot!(parse_ok(
        "fields `foo-bar`, action, abs(f3-f4) as diff, kubernetes.pod_name"
    ));
}

#[test]
fn display_takes_field_names() {
    let q = parse_ok("display @timestamp, kubernetes.`odd.key`");
    let Command::Display(f) = &q.commands[0].node else {
        panic!()
    };
    assert_eq!(f[1].path, vec!["kubernetes", "odd.key"]);
    assert_eq!(f[1].name(), "kubernetes.odd.key");
    let e = parse_err("display a + 1");
    assert_eq!((e.line, e.column), (1, 11));
}

#[test]
fn filter_command() {
    insta::assert_yaml_snapshot!(parse_ok("filter (duration>2000) and f1 like /2\\d\\d/"));
}

#[test]
fn stats_with_several_aggregations_expression_keys_and_aliases() {
    insta::assert_yaml_snapshot!(parse_ok(
        "stats count(*) as n, avg (latency), pct(latency, 99.5) as p99 \
         by bin(5m) as t, toupper(method), kubernetes.namespace_name"
    ));
}

#[test]
fn stats_expressions_over_aggregates_and_earlier_aliases() {
    // AWS's Lambda sample query: the last expression reads two earlier aliases.
    let q = parse_ok(
        "stats max(@memorySize / 1024 / 1024) as provisonedMemoryMB,\n    \
         max(@maxMemoryUsed / 1024 / 1024) as maxMemoryUsedMB,\n    \
         provisonedMemoryMB - maxMemoryUsedMB as overProvisionedMB",
    );
    let Command::Stats(s) = &q.commands[0].node else {
        panic!()
    };
    assert_eq!(s.aggregations.len(), 3);
    assert_eq!(
        s.aggregations[2].expr.to_string(),
        "provisonedMemoryMB - maxMemoryUsedMB"
    );
}

#[test]
fn sort_with_several_keys() {
    let q = parse_ok("sort a desc, b asc, c, d DESC");
    let Command::Sort(keys) = &q.commands[0].node else {
        panic!()
    };
    let orders: Vec<SortOrder> = keys.iter().map(|k| k.order).collect();
    // Without asc/desc a key sorts ascending (see SortOrder's doc).
    assert_eq!(
        orders,
        [
            SortOrder::Desc,
            SortOrder::Asc,
            SortOrder::Asc,
            SortOrder::Desc
        ]
    );
    insta::assert_yaml_snapshot!(q);
}

#[test]
fn limit_and_its_deprecated_synonyms() {
    for (src, kw) in [
        ("limit 25", LimitKeyword::Limit),
        ("head 25", LimitKeyword::Head),
        ("tail 25", LimitKeyword::Tail),
    ] {
        let q = parse_ok(src);
        let Command::Limit(l) = q.commands[0].node else {
            panic!()
        };
        assert_eq!((l.rows, l.keyword), (25, kw));
    }
    assert_eq!(parse_ok("limit 10000").to_string(), "limit 10000");
    assert!(
        parse_err("limit 10001")
            .message
            .contains("between 1 and 10000")
    );
    assert!(parse_err("limit 2.5").message.contains("whole number"));
}

#[test]
fn parse_with_a_glob() {
    let q =
        parse_ok("parse @message \"user=*, method:*, latency := *\" as @user, @method, @latency");
    let Command::Parse(p) = &q.commands[0].node else {
        panic!()
    };
    assert_eq!(p.pattern.names(), ["@user", "@method", "@latency"]);
    // Captures are lazy except a trailing `*`, which takes the rest of the value.
    assert_eq!(
        p.pattern.to_regex(),
        "(?s)user=(.*?), method:(.*?), latency := (.*)"
    );
    let re = regex::Regex::new(&p.pattern.to_regex()).unwrap();
    let caps = re
        .captures("INFO user=bob, method:GET, latency := 12 ms")
        .unwrap();
    assert_eq!((&caps[1], &caps[2], &caps[3]), ("bob", "GET", "12 ms"));
    insta::assert_yaml_snapshot!(q);
}

#[test]
fn parse_with_a_regex_and_named_groups() {
    let q = parse_ok(
        "parse @message /(?<time>[0-9]{10}\\.[0-9]{1,3}) .* (?<code>[A-Z_]+\\/[0-9]{3}) (?<url>[a-zA-Z.]+:[0-9]{1,5})/",
    );
    let Command::Parse(p) = &q.commands[0].node else {
        panic!()
    };
    assert!(matches!(p.pattern, ParsePattern::Regex { .. }));
    assert_eq!(p.pattern.names(), ["time", "code", "url"]);
    insta::assert_yaml_snapshot!(q);
}

#[test]
fn parse_can_read_a_previously_parsed_field() {
    let q = parse_ok("parse @message '[*] *' as level, rest | parse rest 'k=*' as k");
    assert_eq!(q.commands.len(), 2);
}

#[test]
fn dedup_and_unnest() {
    insta::assert_yaml_snapshot!(parse_ok(
        "fields jsonParse(@message) as js | unnest js.items into item | dedup item.id, @logStream"
    ));
}

#[test]
fn comments_and_multi_line_pipelines() {
    let src = "# whole-line comment\n\
               fields @timestamp, @message # end-of-line comment\n\
               \t  # indented comment\n\
               | filter @message like /Exception/ |\n\
               stats count(*) as exceptionCount by bin(1h)\n\
               | sort exceptionCount desc";
    let q = parse_ok(src);
    let kws: Vec<&str> = q.commands.iter().map(|c| c.node.keyword()).collect();
    assert_eq!(kws, ["fields", "filter", "stats", "sort"]);
    let pos: Vec<(usize, usize)> = q
        .commands
        .iter()
        .map(|c| (c.pos.line, c.pos.column))
        .collect();
    assert_eq!(pos, [(2, 1), (4, 3), (5, 1), (6, 3)]);
    // A '#' inside strings, regexes and backticks is not a comment.
    let q = parse_ok("filter a = '#x' and b like /#y/ and `#z` = 1");
    assert_eq!(
        q.to_string(),
        "filter a = \"#x\" and b like /#y/ and `#z` = 1"
    );
}

#[test]
fn keywords_and_function_names_ignore_case() {
    let upper = parse_ok(
        "FIELDS a AS b | FILTER a IN [1] AND NOT b LIKE 'x' | STATS COUNT(*) BY b | SORT b DESC | LIMIT 5",
    );
    let lower = parse_ok(
        "fields a as b | filter a in [1] and not b like 'x' | stats count(*) by b | sort b desc | limit 5",
    );
    let strip = |q: kinsight_ql::Query| q.commands.into_iter().map(|c| c.node).collect::<Vec<_>>();
    assert_eq!(strip(upper), strip(lower));
}

#[test]
fn printing_puts_back_only_the_needed_parentheses() {
    let q = parse_ok(
        "fields (a + b) * c as x, a + (b * c) as y, -(2 ^ 2) as z, (-2) ^ 2 as w, `foo-bar`, \
         ((a)) as v | filter not (a = 1 or b = 2) | sort x desc",
    );
    assert_eq!(
        q.to_string(),
        "fields (a + b) * c as x, a + b * c as y, -2 ^ 2 as z, (-2) ^ 2 as w, `foo-bar`, a as v\n\
         | filter not (a = 1 or b = 2)\n\
         | sort x desc"
    );
}

#[test]
fn display_and_limit_snapshot() {
    insta::assert_yaml_snapshot!(parse_ok(
        "fields a, b\r\n| display b, `a-b`, x.0.y\r\n| head 3 | tail 2 | limit 1"
    ));
}

#[test]
fn pattern_takes_a_field_or_a_string_expression() {
    let q = parse_ok("filter @logStream = 'a' | pattern @message");
    let Command::Pattern(e) = &q.commands[1].node else {
        panic!("{q:?}")
    };
    assert_eq!(e.to_string(), "@message");
    // A parsed field, or a string manipulated by functions (reference §5.3); any case of the
    // keyword, like every command.
    for src in [
        "parse @message 'user=* ' as user | pattern user",
        "PATTERN replace(@message, 'x', 'y')",
        "pattern concat(a, b)",
    ] {
        let q = parse_ok(src);
        let text = q.to_string();
        assert!(text.contains("pattern "), "{text}");
        let nodes = |q: &kinsight_ql::Query| -> Vec<Command> {
            q.commands.iter().map(|c| c.node.clone()).collect()
        };
        assert_eq!(nodes(&parse_ok(&text)), nodes(&q), "{src} prints as {text}");
    }
    insta::assert_yaml_snapshot!(parse_ok("pattern tolower(@message)"));
}

#[test]
fn diff_takes_an_optional_period() {
    use kinsight_ql::DiffPeriod;
    for (src, period, printed) in [
        (
            "pattern @message | diff",
            DiffPeriod::PreviousPeriod,
            "diff",
        ),
        (
            "diff previousDay",
            DiffPeriod::PreviousDay,
            "diff previousDay",
        ),
        (
            "DIFF PreviousWeek",
            DiffPeriod::PreviousWeek,
            "diff previousWeek",
        ),
        (
            "diff previousmonth | limit 5",
            DiffPeriod::PreviousMonth,
            "diff previousMonth",
        ),
        (
            "diff | filter @diff = 'new'",
            DiffPeriod::PreviousPeriod,
            "diff",
        ),
    ] {
        let q = parse_ok(src);
        let d = q
            .commands
            .iter()
            .find_map(|c| match c.node {
                Command::Diff(p) => Some(p),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{src}: no diff"));
        assert_eq!(d, period, "{src}");
        assert_eq!(Command::Diff(d).to_string(), printed);
        let text = q.to_string();
        let again = parse_ok(&text);
        let nodes = |q: &kinsight_ql::Query| -> Vec<Command> {
            q.commands.iter().map(|c| c.node.clone()).collect()
        };
        assert_eq!(nodes(&again), nodes(&q), "{src} prints as {text}");
    }
    let e = parse_err("diff stats");
    assert_eq!(e.message, "expected '|' before the command 'stats'");
}
