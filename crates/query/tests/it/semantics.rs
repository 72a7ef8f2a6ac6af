//! Query semantics of reference §5.1–§5.3 end to end: result columns and order, row caps,
//! `display`, `dedup`, `parse`, filters placed after `stats`, several groups with `@log`,
//! fields that do not exist, fields past a group's 1,000-column cap, and SQL.

use serde_json::{Value, json};

use crate::data::*;
use crate::support::*;

const A: &str = "/t/a";
const B: &str = "/t/b";

fn ev(group: &str, stream: &str, i: i64, body: Value) -> kinsight_store::LogEvent {
    kinsight_store::LogEvent::new(
        group,
        stream,
        NOW_MS - 3_600_000 + i * 1000,
        body.to_string(),
    )
}

async fn two_groups() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let mut events = Vec::new();
    for i in 0..10 {
        events.push(ev(
            A,
            if i % 2 == 0 { "even" } else { "odd" },
            i,
            json!({"i": i, "user": format!("u{}", i % 3), "line": format!("user=u{} took {}ms path=/p/{}", i % 3, i * 7, i % 2)}),
        ));
    }
    for i in 0..4 {
        events.push(ev(
            B,
            "only",
            100 + i,
            json!({"i": 100 + i, "extra": "yes"}),
        ));
    }
    load(&store, events).await;
    store.flush().await.unwrap();
    // One more event of A in memory, the newest of all.
    load(
        &store,
        vec![ev(A, "even", 500, json!({"i": 500, "user": "u9"}))],
    )
    .await;
    let svc = service(&store);
    Demo { dir, store, svc }
}

fn ints(v: &[Value]) -> Vec<i64> {
    v.iter().map(|x| x.as_i64().unwrap_or(-1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_events_come_newest_first_with_ptr_and_row_caps() {
    let d = two_groups().await;
    let out = run(&d.svc, &[A], "fields i").await;
    assert_eq!(out.columns, vec!["i", "@ptr"]);
    assert_eq!(
        ints(&column(&out, "i")),
        vec![500, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    );
    // Without fields: @timestamp and @message (§5.3).
    let out = run(&d.svc, &[A], "limit 2").await;
    assert_eq!(out.columns, vec!["@timestamp", "@message", "@ptr"]);
    assert_eq!(out.rows.len(), 2);
    assert!(out.rows[0][1].as_str().unwrap().contains("\"i\":500"));
    // Several `fields` accumulate, the last `display` wins.
    let out = run(
        &d.svc,
        &[A],
        "fields i | fields user | display user, i | limit 1",
    )
    .await;
    assert_eq!(out.columns, vec!["user", "i", "@ptr"]);
    // The caller's limit caps the rows.
    let mut req = request(&[A], "fields i");
    req.limit = Some(3);
    let out = d.svc.run(req).await.unwrap();
    assert_eq!(ints(&column(&out, "i")), vec![500, 9, 8]);
    // A sort decides the order, missing values last in both directions.
    let out = run(
        &d.svc,
        &[A, B],
        "fields extra, i | sort extra desc | limit 5",
    )
    .await;
    assert_eq!(
        column(&out, "extra")[..4],
        [json!("yes"), json!("yes"), json!("yes"), json!("yes")]
    );
    assert_eq!(column(&out, "extra")[4], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_groups_are_one_table_with_log() {
    let d = two_groups().await;
    let out = run(&d.svc, &[A, B], "stats count() as n by @log | sort @log").await;
    assert_eq!(
        out.rows,
        vec![vec![json!(A), json!(11)], vec![json!(B), json!(4)]]
    );
    // A field only B has is null for A's events; `@log` filters prune whole groups.
    let out = run(
        &d.svc,
        &[A, B],
        "filter @log = \"/t/b\" | stats count(extra) as n, count() as all",
    )
    .await;
    assert_eq!(out.rows, vec![vec![json!(4), json!(4)]]);
    assert_eq!(out.statistics.records_scanned, 4, "group A was not read");
    let out = run(
        &d.svc,
        &[A, B],
        "fields @log, @logStream, i | filter i = 101",
    )
    .await;
    assert_eq!(out.rows[0][..3], [json!(B), json!("only"), json!(101)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_after_stats_select_events_or_results() {
    let d = two_groups().await;
    // §5.6 style: a filter on event fields after stats filters the events.
    let out = run(
        &d.svc,
        &[A],
        "stats count() as n by user | filter i < 6 | sort user",
    )
    .await;
    assert_eq!(
        out.rows,
        vec![
            vec![json!("u0"), json!(2)],
            vec![json!("u1"), json!(2)],
            vec![json!("u2"), json!(2)]
        ]
    );
    // A filter on result columns filters the results.
    let out = run(&d.svc, &[A], "stats count() as n by user | filter n > 3").await;
    assert_eq!(out.rows, vec![vec![json!("u0"), json!(4)]]);
    assert!(out.warnings.is_empty());
    // A sort on event fields after stats is ignored, with a warning.
    let out = run(&d.svc, &[A], "stats count() as n | sort @timestamp desc").await;
    assert_eq!(out.rows, vec![vec![json!(11)]]);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_parse_and_missing_fields() {
    let d = two_groups().await;
    // dedup keeps the first row per key in the current (newest-first) order.
    let out = run(&d.svc, &[A], "fields user, i | dedup user").await;
    assert_eq!(
        column(&out, "user"),
        vec![json!("u9"), json!("u0"), json!("u2"), json!("u1")]
    );
    assert_eq!(ints(&column(&out, "i")), vec![500, 9, 8, 7]);
    // … and in an explicit order; rows whose key is missing are all kept.
    let out = run(&d.svc, &[A, B], "fields user, i | sort i asc | dedup user").await;
    assert_eq!(
        ints(&column(&out, "i")),
        vec![0, 1, 2, 100, 101, 102, 103, 500]
    );

    // parse: glob captures; a line that does not match gives nulls; captures can be parsed
    // again and used in stats.
    let out = run(
        &d.svc,
        &[A],
        "parse line \"user=* took *ms path=*\" as who, ms, path | filter ispresent(who) \
         | parse path \"/p/*\" as p | stats count() as n, sum(ms) as total by p | sort p",
    )
    .await;
    // Events 0..9: even paths /p/0 (i = 0, 2, 4, 6, 8: ms 0+14+28+42+56 = 140), odd /p/1 (175).
    assert_eq!(
        out.rows,
        vec![
            vec![json!("0"), json!(5), json!(140)],
            vec![json!("1"), json!(5), json!(175)]
        ]
    );
    let out = run(
        &d.svc,
        &[A],
        "filter i = 500 | parse line \"user=* took\" as who | fields who",
    )
    .await;
    assert_eq!(column(&out, "who"), vec![Value::Null]);

    // A field that no event has: null everywhere, and it never matches.
    let out = run(&d.svc, &[A], "fields nosuch.field, i | limit 1").await;
    assert_eq!(out.rows[0][0], Value::Null);
    let out = run(&d.svc, &[A], "stats count(nosuch) as n, count() as all").await;
    assert_eq!(out.rows, vec![vec![json!(0), json!(11)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptr_resolves_to_the_whole_event() {
    let d = two_groups().await;
    let out = run(&d.svc, &[A, B], "fields i | filter i = 102 or i = 500").await;
    for (row, want_i) in out.rows.iter().zip([500, 102]) {
        let ptr = row[1].as_str().unwrap();
        let rec = d.svc.get_record(ptr).await.unwrap();
        assert_eq!(rec.get("i"), Some(&json!(want_i)));
        assert!(
            rec.get("@message")
                .unwrap()
                .as_str()
                .unwrap()
                .contains(&format!("\"i\":{want_i}"))
        );
        assert!(rec.get("@timestamp").is_some() && rec.get("@ingestionTime").is_some());
        assert_eq!(rec.get("@id"), None, "internal id is not a field");
    }
    assert!(matches!(
        d.svc.get_record("garbage").await,
        Err(kinsight_query::QueryError::RecordNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_past_the_column_cap_are_read_from_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    // Six events of 199 distinct keys each (plus `id`): 1,195 fields, the store keeps 1,000.
    let events = (0..6)
        .map(|e| {
            let mut m = serde_json::Map::new();
            m.insert("id".into(), json!(e));
            for k in 0..199 {
                m.insert(
                    format!("f{:04}", e * 199 + k),
                    json!(format!("v{}", e * 199 + k)),
                );
            }
            ev("/t/wide", "s", e, Value::Object(m))
        })
        .collect::<Vec<_>>();
    load(&store, events).await;
    store.flush().await.unwrap();
    let fields = store.group_fields("/t/wide").unwrap();
    assert_eq!(fields.len(), 1000, "the store caps the group's columns");
    let missing = (0..1194)
        .map(|k| format!("f{k:04}"))
        .rfind(|f| !fields.contains_key(f))
        .expect("some field is not a column");
    let svc = service(&store);
    let out = run(
        &svc,
        &["/t/wide"],
        &format!("filter ispresent({missing}) | fields id, {missing}"),
    )
    .await;
    assert_eq!(out.rows.len(), 1);
    let k: i64 = missing[1..].parse().unwrap();
    assert_eq!(out.rows[0][..2], [json!(k / 199), json!(format!("v{k}"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_sees_each_group_and_all_of_them() {
    let d = two_groups().await;
    let out = d
        .svc
        .run(sql_request(
            &[A, B],
            r#"SELECT "@log", count(*) AS n, max(i) AS top FROM logs GROUP BY "@log" ORDER BY "@log""#,
        ))
        .await
        .unwrap();
    assert_eq!(out.columns, vec!["@log", "n", "top"]);
    assert_eq!(
        out.rows,
        vec![
            vec![json!(A), json!(11), json!(500)],
            vec![json!(B), json!(4), json!(103)]
        ]
    );
    let out = d
        .svc
        .run(sql_request(
            &[A, B],
            r#"SELECT user, count(*) AS n FROM "/t/a" WHERE i < 9 GROUP BY user ORDER BY user"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        out.rows,
        vec![
            vec![json!("u0"), json!(3)],
            vec![json!("u1"), json!(3)],
            vec![json!("u2"), json!(3)]
        ]
    );
    // The Logs Insights functions exist in SQL too.
    let out = d
        .svc
        .run(sql_request(&[B], r#"SELECT pct(i, 50) AS p FROM "/t/b""#))
        .await
        .unwrap();
    assert_eq!(out.rows, vec![vec![json!(101)]]);
    let out = d
        .svc
        .run(sql_request(
            &[B],
            r#"SELECT isIpInSubnet('10.1.2.3', '10.0.0.0/8') AS a, json_get('{"a":{"b":7}}', 'a', 'b') AS b, jsonParse('[1, 2]') AS c, json_parse('{}') AS d"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        out.rows,
        vec![vec![json!(true), json!("7"), json!("[1,2]"), json!("{}")]]
    );
    // Unknown tables and columns are the query's fault, with the name.
    for bad in [r#"SELECT * FROM "/t/c""#, "SELECT nosuch FROM logs"] {
        let e = d.svc.run(sql_request(&[A], bad)).await.unwrap_err();
        assert!(
            e.is_client_error() || matches!(e, kinsight_query::QueryError::Execution(_)),
            "{bad}: {e:?}"
        );
        assert!(
            e.to_string().contains("/t/c") || e.to_string().contains("nosuch"),
            "{e}"
        );
    }
}

/// Segments cluster rows by event `Type` with a row group per large type
/// (docs/formats/segments.md): a filter on `Type` reads that type's rows only, by the row
/// groups' statistics, and answers exactly as a full scan would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_on_type_reads_only_that_types_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    const G: &str = "/t/perf";
    let kinds = ["Container", "Node", "Pod"];
    let events = (0..4500usize).map(|i| {
        let kind = kinds[i % 3];
        kinsight_store::LogEvent::new(
            G,
            format!("node-{}", i % 7),
            NOW_MS - 3_000_000 + i as i64 * 500,
            json!({"Type": kind, "NodeName": format!("node-{}", i % 7), "v": i}).to_string(),
        )
    });
    load(&store, events).await;
    store.flush().await.unwrap();
    let svc = service(&store);
    let out = run(
        &svc,
        &[G],
        "filter Type = \"Node\" | stats count() as n, sum(v) as s",
    )
    .await;
    let expected_sum: usize = (0..4500).filter(|i| i % 3 == 1).sum();
    assert_eq!(out.rows, vec![vec![json!(1500), json!(expected_sum)]]);
    assert_eq!(
        out.statistics.records_scanned, 1500,
        "only the Node row group was read"
    );
    // Without a filter on Type every row is read.
    let out = run(&svc, &[G], "stats count() as n by Type | sort Type").await;
    assert_eq!(out.statistics.records_scanned, 4500);
    assert_eq!(
        column(&out, "n"),
        vec![json!(1500), json!(1500), json!(1500)]
    );
}

/// `earliest` / `latest` of events in the same millisecond: the one ingested first is the
/// earlier, whatever order the segment keeps its rows in (here clustered by `Type`, which
/// puts the later event first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earliest_and_latest_break_ties_of_a_millisecond_by_ingestion_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    const G: &str = "/t/ties";
    let t = NOW_MS - 600_000;
    let ev = |ts: i64, kind: &str, v: &str| {
        kinsight_store::LogEvent::new(G, "s", ts, json!({"Type": kind, "v": v}).to_string())
    };
    load(&store, [ev(t, "B", "first"), ev(t, "A", "second")]).await;
    load(&store, [ev(t - 1, "B", "older"), ev(t - 1, "C", "older-2")]).await;
    for flushed in [false, true] {
        if flushed {
            store.flush().await.unwrap();
        }
        let svc = service(&store);
        let out = run(
            &svc,
            &[G],
            "filter v != \"older\" and v != \"older-2\" | stats earliest(v) as e, latest(v) as l",
        )
        .await;
        assert_eq!(
            out.rows,
            vec![vec![json!("first"), json!("second")]],
            "flushed: {flushed}"
        );
        let out = run(&svc, &[G], "stats earliest(v) as e, latest(v) as l").await;
        assert_eq!(
            out.rows,
            vec![vec![json!("older"), json!("second")]],
            "flushed: {flushed}"
        );
    }
}
