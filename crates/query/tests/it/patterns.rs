//! `pattern` end to end (issue 18): generated logs of known templates — with variable
//! numbers, ids, addresses and words, interleaved at random — come back as exactly one pattern
//! per template, with the right count, `<*>` where the template varies, and the other
//! columns; the same data gives the same rows whatever order it was ingested in and however
//! it is split into segments; `pattern` works with `filter`, `parse`, `limit`, `sort` and
//! `display`; hostile messages are bounded.

use std::collections::BTreeMap;

use kinsight_query::{QueryConfig, QueryOutput, QueryService};
use kinsight_store::LogEvent;
use serde_json::{Value, json};

use crate::data::*;
use crate::support::*;

const G: &str = "/t/patterns";
const LINES: usize = 4000;

const NAMES: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];
const JOBS: [&str; 3] = ["backup", "compact", "reindex"];
const TABLES: [&str; 4] = ["orders", "users", "items", "payments"];

/// (template as generated, expected `@pattern`, expected `@severityLabel`)
const TEMPLATES: [(&str, &str, &str); 5] = [
    (
        "INFO user {name} logged in from {ip} session={hex}",
        "INFO user <*> logged in from <*> session=<*>",
        "Info",
    ),
    (
        "INFO job {job} completed in {n}ms on node-{letter}",
        "INFO job <*> completed in <*>ms on node-<*>",
        "Info",
    ),
    (
        "ERROR connection to {ip}:{port} timed out after {n}ms (attempt {k})",
        "ERROR connection to <*> timed out after <*>ms (attempt <*>)",
        "Error",
    ),
    (
        "GET /api/v2/orders/{n} {status} {n} {n}ms trace={uuid}",
        "GET /api/v2/orders/<*> <*> <*> <*>ms trace=<*>",
        "Unknown",
    ),
    (
        "WARN slow query on table {table} took {f}s rows={n}",
        "WARN slow query on table <*> took <*>s rows=<*>",
        "Warning",
    ),
];

/// Template weights, in percent.
const WEIGHTS: [u64; 5] = [30, 25, 20, 15, 10];

struct Generated {
    events: Vec<LogEvent>,
    /// Lines per template.
    counts: [u64; 5],
    /// Lines per user name of template 0.
    names: BTreeMap<&'static str, u64>,
}

fn hex(rng: &mut Rng, n: usize) -> String {
    // A letter first: a run of digits only would be a number, not an id.
    let mut s = String::from("a");
    while s.len() < n {
        s.push(char::from_digit(rng.below(16) as u32, 16).unwrap_or('0'));
    }
    s
}

fn line(rng: &mut Rng, t: usize, names: &mut BTreeMap<&'static str, u64>) -> String {
    let ip = format!(
        "10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.below(256)
    );
    match t {
        0 => {
            let name = *rng.pick(&NAMES);
            *names.entry(name).or_default() += 1;
            format!(
                "INFO user {name} logged in from {ip} session={}",
                hex(rng, 12)
            )
        }
        1 => format!(
            "INFO job {} completed in {}ms on node-{}",
            rng.pick(&JOBS),
            rng.below(100_000),
            rng.pick(&["a", "b", "c", "d"])
        ),
        2 => format!(
            "ERROR connection to {ip}:{} timed out after {}ms (attempt {})",
            1024 + rng.below(60_000),
            rng.below(30_000),
            1 + rng.below(5)
        ),
        3 => format!(
            "GET /api/v2/orders/{} {} {} {}ms trace={}-{}-4{}-a{}-{}",
            rng.below(1_000_000),
            rng.pick(&[200, 201, 404, 500]),
            rng.below(100_000),
            rng.below(2_000),
            hex(rng, 8),
            hex(rng, 4),
            &hex(rng, 4)[1..],
            &hex(rng, 4)[1..],
            hex(rng, 12)
        ),
        _ => format!(
            "WARN slow query on table {} took {}s rows={}",
            rng.pick(&TABLES),
            rng.float(1.0, 30.0),
            rng.below(1_000_000)
        ),
    }
}

fn generate(seed: u64) -> Generated {
    let mut rng = Rng::new(seed);
    let mut counts = [0u64; 5];
    let mut names = BTreeMap::new();
    let mut events = Vec::with_capacity(LINES);
    for _ in 0..LINES {
        let mut roll = rng.below(100);
        let mut t = 0;
        while roll >= WEIGHTS[t] {
            roll -= WEIGHTS[t];
            t += 1;
        }
        counts[t] += 1;
        let message = line(&mut rng, t, &mut names);
        let ts = NOW_MS - HOUR_MS + rng.below(HOUR_MS as u64) as i64;
        let stream = if rng.chance(50) { "a" } else { "b" };
        events.push(LogEvent::new(G, stream, ts, message));
    }
    Generated {
        events,
        counts,
        names,
    }
}

/// A store holding `events`, `per_segment` of them per flush (the rest unflushed).
async fn store_with(events: Vec<LogEvent>, per_segment: usize, threads: usize) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let mut rest = events;
    while rest.len() > per_segment {
        let tail = rest.split_off(per_segment);
        load(&store, rest).await;
        store.flush().await.unwrap();
        rest = tail;
    }
    load(&store, rest).await;
    let svc = QueryService::new(
        store.clone(),
        QueryConfig {
            threads,
            ..test_config()
        },
    )
    .unwrap();
    Demo { dir, store, svc }
}

/// The rows as maps from column to value.
fn rows(out: &QueryOutput) -> Vec<BTreeMap<String, Value>> {
    out.rows
        .iter()
        .map(|r| out.columns.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

fn json_of(v: &Value) -> Value {
    serde_json::from_str(v.as_str().expect("a JSON text column")).expect("valid JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_template_is_one_pattern_with_its_count() {
    let g = generate(18);
    let d = store_with(g.events.clone(), 1500, 2).await;
    let out = run(&d.svc, &[G], "pattern @message").await;
    assert_eq!(
        out.columns,
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
    let got = rows(&out);
    let summary: Vec<(String, u64)> = got
        .iter()
        .map(|r| {
            (
                r["@pattern"].as_str().unwrap().to_string(),
                r["@sampleCount"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut want: Vec<(String, u64)> = TEMPLATES
        .iter()
        .zip(g.counts)
        .map(|((_, p, _), n)| (p.to_string(), n))
        .collect();
    // Sorted by count, most first.
    want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    assert_eq!(summary, want);

    let total = LINES as f64;
    for r in &got {
        let pattern = r["@pattern"].as_str().unwrap();
        let (_, _, severity) = TEMPLATES.iter().find(|t| t.1 == pattern).unwrap();
        assert_eq!(r["@severityLabel"], json!(severity), "{pattern}");
        let n = r["@sampleCount"].as_u64().unwrap();
        let ratio = r["@ratio"].as_f64().unwrap();
        assert!(
            (ratio - n as f64 / total).abs() < 1e-9,
            "{pattern}: {ratio}"
        );
        let id = r["@patternId"].as_str().unwrap();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        // The periods of the sparkline hold every event of the pattern.
        let vis = json_of(&r["@visualization"]);
        let counts: Vec<u64> = vis["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), n, "{pattern}");
        // The request covers 25 hours: 25 periods of an hour.
        assert_eq!(vis["periodMs"], json!(HOUR_MS));
        assert_eq!(counts.len(), 25);
        assert!(vis["startTime"].as_i64().unwrap() <= NOW_MS - 24 * HOUR_MS);
        // One @tokens entry per <*>, numbered in order.
        let tokens = json_of(&r["@tokens"]);
        let tokens = tokens.as_array().unwrap();
        assert_eq!(tokens.len(), pattern.matches("<*>").count(), "{pattern}");
        for (i, t) in tokens.iter().enumerate() {
            assert_eq!(t["dynamicTokenPosition"], json!(i + 1));
        }
    }

    // Template 0: the user name varies (its values and counts are listed), the address and
    // the session id are masked.
    let t0 = got
        .iter()
        .find(|r| r["@pattern"] == json!(TEMPLATES[0].1))
        .unwrap();
    let tokens = json_of(&t0["@tokens"]);
    let names: BTreeMap<String, u64> = tokens[0]["enumerations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let want: BTreeMap<String, u64> = g.names.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(names, want);
    assert_eq!(tokens[0]["inferredTokenName"], json!("Token-1"));
    assert_eq!(tokens[1]["inferredTokenName"], json!("IPAddress-2"));
    assert_eq!(tokens[2]["inferredTokenName"], json!("Hex-3"));
    assert_eq!(tokens[2]["tokenString"], json!("session=<*>"));
    assert!(tokens[1].get("enumerations").is_none());
    // Template 1: a shared prefix stays (node-<*>), its values are listed.
    let t1 = got
        .iter()
        .find(|r| r["@pattern"] == json!(TEMPLATES[1].1))
        .unwrap();
    let tokens = json_of(&t1["@tokens"]);
    assert_eq!(tokens[2]["tokenString"], json!("node-<*>"));
    let mut nodes: Vec<&String> = tokens[2]["enumerations"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["a", "b", "c", "d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_data_gives_the_same_patterns_whatever_the_order() {
    let g = generate(7);
    let first = store_with(g.events.clone(), 1500, 2).await;
    let want = run(&first.svc, &[G], "pattern @message").await;
    // Twice on the same store.
    assert_eq!(run(&first.svc, &[G], "pattern @message").await, want);
    // Reversed and interleaved, in other segments, with more threads.
    let mut shuffled = g.events.clone();
    shuffled.reverse();
    let mut rng = Rng::new(99);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let other = store_with(shuffled, 700, 4).await;
    let got = run(&other.svc, &[G], "pattern @message").await;
    assert_eq!(got.columns, want.columns);
    assert_eq!(got.rows, want.rows);
    let everything_in_memory = store_with(g.events, usize::MAX, 3).await;
    let got = run(&everything_in_memory.svc, &[G], "pattern @message").await;
    assert_eq!(got.rows, want.rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_works_with_filter_parse_sort_limit_and_display() {
    let g = generate(18);
    let d = store_with(g.events.clone(), 2000, 2).await;
    let count_of = |p: &str| g.counts[TEMPLATES.iter().position(|t| t.1 == p).unwrap()];

    // A filter before: only those events are clustered; @ratio is over them.
    let out = run(
        &d.svc,
        &[G],
        "filter @message like /ERROR/ | pattern @message",
    )
    .await;
    assert_eq!(out.rows.len(), 1);
    assert_eq!(column(&out, "@pattern"), [json!(TEMPLATES[2].1)]);
    assert_eq!(column(&out, "@sampleCount"), [json!(g.counts[2])]);
    assert_eq!(as_f64(&column(&out, "@ratio")[0]), 1.0);

    // Sort and limit the patterns; display some columns.
    let out = run(
        &d.svc,
        &[G],
        "pattern @message | sort @sampleCount asc | limit 2 | display @sampleCount, @pattern",
    )
    .await;
    assert_eq!(out.columns, ["@sampleCount", "@pattern"]);
    let mut smallest: Vec<u64> = g.counts.to_vec();
    smallest.sort();
    assert_eq!(
        column(&out, "@sampleCount"),
        [json!(smallest[0]), json!(smallest[1])]
    );

    // A filter on the patterns' columns filters patterns.
    let out = run(
        &d.svc,
        &[G],
        "pattern @message | filter @severityLabel = 'Info' | sort @pattern",
    )
    .await;
    assert_eq!(
        column(&out, "@pattern"),
        [json!(TEMPLATES[1].1), json!(TEMPLATES[0].1)]
    );
    // ... and a filter on event fields after pattern selects the events, as after stats.
    let out = run(
        &d.svc,
        &[G],
        "pattern @message | filter @message like 'WARN'",
    )
    .await;
    assert_eq!(column(&out, "@pattern"), [json!(TEMPLATES[4].1)]);

    // A limit before pattern: the newest events only.
    let out = run(&d.svc, &[G], "limit 100 | pattern @message").await;
    let n: u64 = column(&out, "@sampleCount")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(n, 100);

    // On a parsed field: one pattern per user name (one-token values that differ); events
    // where the field is missing are not clustered.
    let out = run(
        &d.svc,
        &[G],
        "parse @message 'INFO user * logged' as user | pattern user",
    )
    .await;
    let got: BTreeMap<String, u64> = rows(&out)
        .iter()
        .map(|r| {
            (
                r["@pattern"].as_str().unwrap().to_string(),
                r["@sampleCount"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = g.names.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(got, want);
    let ratios: f64 = column(&out, "@ratio").iter().map(as_f64).sum();
    assert!((ratios - 1.0).abs() < 1e-9);

    // On a string function's result: lower case gives the same clusters.
    let out = run(&d.svc, &[G], "pattern tolower(@message) | limit 1").await;
    assert_eq!(
        column(&out, "@pattern"),
        [json!(TEMPLATES[0].1.to_lowercase())]
    );
    assert_eq!(
        column(&out, "@sampleCount"),
        [json!(count_of(TEMPLATES[0].1))]
    );

    // No events: no patterns.
    let out = run(
        &d.svc,
        &[G],
        "filter @message like 'nothing' | pattern @message",
    )
    .await;
    assert!(out.rows.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_bounded() {
    let mut events = Vec::new();
    let t = NOW_MS - HOUR_MS;
    let huge_token = "x".repeat(200_000);
    let many_tokens = vec!["w"; 60_000].join(" ");
    let commas = ",".repeat(100_000);
    for i in 0..20 {
        events.push(LogEvent::new(G, "s", t + i, huge_token.clone()));
        events.push(LogEvent::new(G, "s", t + i, many_tokens.clone()));
        events.push(LogEvent::new(G, "s", t + i, commas.clone()));
        events.push(LogEvent::new(
            G,
            "s",
            t + i,
            format!("a\u{1}N b\u{1F}c é {i} ⚠️"),
        ));
        events.push(LogEvent::new(G, "s", t + i, " \t "));
    }
    let d = store_with(events, 50, 2).await;
    let out = run(&d.svc, &[G], "pattern @message").await;
    let got: BTreeMap<String, u64> = rows(&out)
        .iter()
        .map(|r| {
            (
                r["@pattern"].as_str().unwrap().to_string(),
                r["@sampleCount"].as_u64().unwrap(),
            )
        })
        .collect();
    // A blob is one variable token; a message of 60,000 tokens keeps 127 and one <*> for
    // the rest; the key alphabet's control characters are replaced.
    let mut many = vec!["w"; 127].join(" ");
    many.push_str(" <*>");
    let mut commas_pattern = vec![","; 127].join("");
    commas_pattern.push_str("<*>");
    let want: BTreeMap<String, u64> = [
        ("<*>".to_string(), 20),
        (many, 20),
        (commas_pattern, 20),
        ("a\u{FFFD}N b\u{FFFD}c é <*> ⚠️".to_string(), 20),
        (String::new(), 20),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
}

/// The last hour before the test clock's now.
fn last_hour(query: &str) -> kinsight_query::QueryRequest {
    kinsight_query::QueryRequest {
        start_ms: NOW_MS - HOUR_MS,
        end_ms: NOW_MS,
        ..request(&[G], query)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_compares_with_the_previous_range() {
    let mut events = Vec::new();
    let mut rng = Rng::new(5);
    let mut add = |range_start: i64, n: usize, template: &str| {
        for i in 0..n {
            let ts = range_start + rng.below(HOUR_MS as u64) as i64;
            let message = template.replace("{n}", &i.to_string());
            events.push(LogEvent::new(G, "s", ts, message));
        }
    };
    let current = NOW_MS - HOUR_MS;
    let previous = NOW_MS - 2 * HOUR_MS;
    add(previous, 100, "INFO steady request {n} served");
    add(current, 100, "INFO steady request {n} served");
    add(previous, 50, "WARN cache node {n} is slow");
    add(previous, 20, "ERROR payment {n} declined by the bank");
    add(current, 70, "ERROR payment {n} declined by the bank");
    add(current, 30, "ERROR disk {n} failed on host db");
    // Outside both ranges: not counted.
    add(NOW_MS - 3 * HOUR_MS, 40, "DEBUG old {n} noise");
    // The same hour a day earlier, for `diff previousDay`.
    add(current - 24 * HOUR_MS, 10, "INFO yesterday {n} only");
    let mut reversed = events.clone();
    reversed.reverse();
    let d = store_with(events, 150, 2).await;

    let out = d.svc.run(last_hour("diff")).await.unwrap();
    assert_eq!(
        out.columns[7..],
        ["@previousSampleCount", "@changeInCount", "@diff"]
    );
    let got: Vec<(String, u64, u64, i64, String)> = rows(&out)
        .iter()
        .map(|r| {
            (
                r["@pattern"].as_str().unwrap().to_string(),
                r["@sampleCount"].as_u64().unwrap(),
                r["@previousSampleCount"].as_u64().unwrap(),
                r["@changeInCount"].as_i64().unwrap(),
                r["@diff"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let row =
        |p: &str, n, prev, change, kind: &str| (p.to_string(), n, prev, change, kind.to_string());
    // The largest change first (ties: the more frequent now).
    assert_eq!(
        got,
        [
            row(
                "ERROR payment <*> declined by the bank",
                70,
                20,
                50,
                "increased"
            ),
            row("WARN cache node <*> is slow", 0, 50, -50, "gone"),
            row("ERROR disk <*> failed on host db", 30, 0, 30, "new"),
            row("INFO steady request <*> served", 100, 100, 0, "unchanged"),
        ]
    );
    // Ratios are of the query's range.
    let ratios: f64 = column(&out, "@ratio").iter().map(as_f64).sum();
    assert!((ratios - 1.0).abs() < 1e-9);

    // After `pattern`, and with filters on the comparison.
    let out = d
        .svc
        .run(last_hour(
            "filter @message like /ERROR/ | pattern @message | diff | filter @diff = 'new'",
        ))
        .await
        .unwrap();
    assert_eq!(
        column(&out, "@pattern"),
        [json!("ERROR disk <*> failed on host db")]
    );

    // A day earlier.
    let out = d
        .svc
        .run(last_hour("diff previousDay | sort @pattern"))
        .await
        .unwrap();
    let got: Vec<(String, String)> = rows(&out)
        .iter()
        .map(|r| {
            (
                r["@pattern"].as_str().unwrap().to_string(),
                r["@diff"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "ERROR disk <*> failed on host db".to_string(),
                "new".to_string()
            ),
            (
                "ERROR payment <*> declined by the bank".to_string(),
                "new".to_string()
            ),
            (
                "INFO steady request <*> served".to_string(),
                "new".to_string()
            ),
            ("INFO yesterday <*> only".to_string(), "gone".to_string()),
        ]
    );

    // The same data in another order and other segments gives the same comparison.
    let first = d.svc.run(last_hour("diff")).await.unwrap();
    let other = store_with(reversed, 90, 3).await;
    assert_eq!(
        other.svc.run(last_hour("diff")).await.unwrap().rows,
        first.rows
    );
}
