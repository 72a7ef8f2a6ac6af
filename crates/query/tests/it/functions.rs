//! Every function of reference §5.5 and every operator of §5.4, evaluated by the engine on a
//! handful of events whose expected values can be worked out by hand (in the comments).

use serde_json::{Value, json};

use crate::data::NOW_MS;
use crate::support::*;

const GROUP: &str = "/t/functions";

/// Event `id` is at `base_ms() + id * 1000 + 123`: 2024-05-01 11:50:0<id>.123.
fn base_ms() -> i64 {
    NOW_MS - 600_000
}

fn events() -> Vec<kinsight_store::LogEvent> {
    let json_text = r#"{\"a\":{\"b\":[1,{\"c\":\"x\"}]},\"list\":[1,2,{\"k\":3}]}"#;
    let bodies = [
        format!(
            r#"{{"id":1,"s":"  Hello World  ","n":-7.5,"i":42,"ip":"10.1.2.3","ip6":"2001:db8::5","empty":"","blank":"   ","json":"{json_text}","ts_ms":1714564800123,"flag":true,"mixed":"17","v":9,"name":"b"}}"#
        ),
        r#"{"id":2,"s":"xyZfooxyZ","n":16,"i":3,"ip":"not-an-ip","mixed":"abc","v":20,"name":"a","flag":false}"#.to_string(),
        r#"{"id":3,"mixed":99,"v":30,"name":"c"}"#.to_string(),
        r#"{"id":4,"name":"a"}"#.to_string(),
        r#"{"id":5,"v":40}"#.to_string(),
    ];
    bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            kinsight_store::LogEvent::new(
                GROUP,
                "s",
                base_ms() + (i as i64 + 1) * 1000 + 123,
                b.clone(),
            )
        })
        .collect()
}

async fn setup() -> (tempfile::TempDir, kinsight_query::QueryService) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let evs = events();
    // Part in a segment, part in memory: both paths evaluate the same functions.
    load(&store, evs[..3].to_vec()).await;
    store.flush().await.unwrap();
    load(&store, evs[3..].to_vec()).await;
    (dir, service(&store))
}

/// `v` of event `id` after `fields <expr> as v`.
async fn value(svc: &kinsight_query::QueryService, id: i64, expr: &str) -> Value {
    let q = format!("filter id = {id} | fields {expr} as v");
    let out = run(svc, &[GROUP], &q).await;
    assert_eq!(out.rows.len(), 1, "{q}: {:?}", out.rows);
    column(&out, "v")[0].clone()
}

async fn ids(svc: &kinsight_query::QueryService, query: &str) -> Vec<i64> {
    let out = run(svc, &[GROUP], &format!("{query} | fields id | sort id asc")).await;
    column(&out, "id")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalar_functions() {
    let (_dir, svc) = setup().await;
    let cases: &[(i64, &str, Value)] = &[
        // Numeric
        (1, "abs(n)", json!(7.5)),
        (1, "ceil(n)", json!(-7)),
        (1, "floor(n)", json!(-8)),
        (1, "greatest(i, n, 3)", json!(42)),
        (1, "least(i, n, 3)", json!(-7.5)),
        (2, "log(i)", json!(3f64.ln())),
        (2, "sqrt(n)", json!(4)),
        // General
        (1, "ispresent(s)", json!(true)),
        (3, "ispresent(s)", json!(false)),
        (2, "coalesce(nosuch, s)", json!("xyZfooxyZ")),
        // String
        (1, "isempty(empty)", json!(1)),
        (1, "isempty(s)", json!(0)),
        (1, "isempty(nosuch)", json!(1)),
        (1, "isblank(blank)", json!(1)),
        (1, "isblank(s)", json!(0)),
        (2, "concat(s, \"-\", i)", json!("xyZfooxyZ-3")),
        (1, "ltrim(s)", json!("Hello World  ")),
        (1, "rtrim(s)", json!("  Hello World")),
        (1, "trim(s)", json!("Hello World")),
        (2, "trim(s, \"xyZ\")", json!("foo")),
        (2, "ltrim(s, \"xyZ\")", json!("fooxyZ")),
        (1, "strlen(s)", json!(15)),
        (2, "toupper(s)", json!("XYZFOOXYZ")),
        (2, "tolower(s)", json!("xyzfooxyz")),
        // §5.5: substr("xyZfooxyZ", 3, 3) = "foo" (0-based start).
        (2, "substr(s, 3, 3)", json!("foo")),
        (2, "substr(s, 3)", json!("fooxyZ")),
        (2, "replace(s, \"xyZ\", \"-\")", json!("-foo-")),
        (2, "strcontains(s, \"foo\")", json!(1)),
        (2, "strcontains(s, \"bar\")", json!(0)),
        // Datetime: event 1 is at 2024-05-01 11:50:01.123.
        (1, "bin(1m)", json!("2024-05-01 11:50:00.000")),
        (
            1,
            "datefloor(@timestamp, 1h)",
            json!("2024-05-01 11:00:00.000"),
        ),
        (
            1,
            "dateceil(@timestamp, 1h)",
            json!("2024-05-01 12:00:00.000"),
        ),
        (
            1,
            "dateceil(datefloor(@timestamp, 1h), 1h)",
            json!("2024-05-01 11:00:00.000"),
        ),
        (1, "fromMillis(ts_ms)", json!("2024-05-01 12:00:00.123")),
        (1, "toMillis(@timestamp)", json!(NOW_MS - 600_000 + 1123)),
        (
            1,
            "toMillis(fromMillis(ts_ms))",
            json!(1_714_564_800_123i64),
        ),
        // IP
        (1, "isValidIp(ip)", json!(true)),
        (2, "isValidIp(ip)", json!(false)),
        (3, "isValidIp(ip)", json!(false)),
        (1, "isValidIpV4(ip)", json!(true)),
        (1, "isValidIpV6(ip)", json!(false)),
        (1, "isValidIpV6(ip6)", json!(true)),
        (1, "isIpInSubnet(ip, \"10.0.0.0/8\")", json!(true)),
        (1, "isIpInSubnet(ip, \"192.168.0.0/16\")", json!(false)),
        (1, "isIpv4InSubnet(ip, \"10.1.0.0/16\")", json!(true)),
        (1, "isIpv6InSubnet(ip6, \"2001:db8::/32\")", json!(true)),
        (1, "isIpv6InSubnet(ip, \"::/0\")", json!(false)),
        // JSON
        (
            1,
            "jsonParse(json)",
            json!(r#"{"a":{"b":[1,{"c":"x"}]},"list":[1,2,{"k":3}]}"#),
        ),
        (1, "jsonStringify(s)", json!(r#""  Hello World  ""#)),
        (1, "jsonStringify(i)", json!("42")),
        // Operators (§5.4)
        (1, "i + 1", json!(43)),
        (1, "i - n", json!(49.5)),
        (1, "i * 2", json!(84)),
        (1, "i / 5", json!(8.4)),
        (1, "i % 5", json!(2)),
        (1, "i ^ 2", json!(1764)),
        (1, "-n", json!(7.5)),
        (1, "i > 40 and n < 0", json!(true)),
        (1, "not (i > 40)", json!(false)),
        (1, "mixed = 17", json!(true)),
        (1, "s like \"World\"", json!(true)),
        (1, "s like \"world\"", json!(false)),
        (1, "s like /(?i)WORLD/", json!(true)),
        (1, "s =~ /^\\s+Hello/", json!(true)),
        (1, "i in [1, 42]", json!(true)),
        (1, "i not in [1, 2]", json!(true)),
    ];
    let mut failures = Vec::new();
    for (id, expr, want) in cases {
        let got = value(&svc, *id, expr).await;
        let same = match (got.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            _ => got == *want,
        };
        if !same {
            failures.push(format!("{expr} on event {id}: got {got}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_members_elements_and_unnest() {
    let (_dir, svc) = setup().await;
    let q = "filter id = 1 | fields jsonParse(json) as j | fields j.a.b.1.c as c, j.list[1] as second, j.a as a, j.list.2.k as k, j.nosuch as none";
    let out = run(&svc, &[GROUP], q).await;
    assert_eq!(column(&out, "c"), vec![json!("x")]);
    assert_eq!(column(&out, "second"), vec![json!("2")]);
    assert_eq!(column(&out, "a"), vec![json!(r#"{"b":[1,{"c":"x"}]}"#)]);
    assert_eq!(column(&out, "k"), vec![json!("3")]);
    assert_eq!(column(&out, "none"), vec![Value::Null]);

    // unnest: one row per element; a non-list value is a one-element list (§5.3).
    let out = run(
        &svc,
        &[GROUP],
        "filter id = 1 | fields jsonParse(json) as j | unnest j.list into item | fields item",
    )
    .await;
    assert_eq!(
        column(&out, "item"),
        vec![json!("1"), json!("2"), json!(r#"{"k":3}"#)]
    );
    let out = run(
        &svc,
        &[GROUP],
        "filter id = 2 | unnest s into item | fields item",
    )
    .await;
    assert_eq!(column(&out, "item"), vec![json!("xyZfooxyZ")]);
    // Each unnested row keeps the event's @ptr.
    let ptrs = column(
        &run(
            &svc,
            &[GROUP],
            "filter id = 1 | fields jsonParse(json) as j | unnest j.list into item",
        )
        .await,
        "@ptr",
    );
    assert_eq!(ptrs.len(), 3);
    assert!(ptrs.iter().all(|p| p == &ptrs[0] && p.is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregations() {
    let (_dir, svc) = setup().await;
    // v is 9, 20, 30, (none), 40 for events 1..5, oldest first; name is b, a, c, a, (none).
    let out = run(
        &svc,
        &[GROUP],
        "stats count() as n, count(*) as n2, count(v) as nv, count_distinct(name) as names, \
         avg(v) as avg, sum(v) as sum, min(v) as min, max(v) as max, stddev(v) as sd, \
         pct(v, 50) as p50, pct(v, 90) as p90, pct(v, 0) as p0, pct(v, 100) as p100, \
         earliest(v) as first, latest(v) as last, earliest(name) as first_name, latest(name) as last_name, \
         sortsFirst(v) as sf, sortsLast(v) as sl, sortsFirst(name) as sfn, sortsLast(name) as sln, \
         max(@timestamp) as newest",
    )
    .await;
    let got: serde_json::Map<String, Value> = out
        .columns
        .iter()
        .cloned()
        .zip(out.rows[0].iter().cloned())
        .collect();
    let vs = [9.0f64, 20.0, 30.0, 40.0];
    let mean = vs.iter().sum::<f64>() / 4.0;
    let sd = (vs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
    let want = json!({
        "n": 5, "n2": 5, "nv": 4, "names": 3,
        "avg": 24.75, "sum": 99, "min": 9, "max": 40, "sd": sd,
        // Nearest rank over [9, 20, 30, 40]: ceil(0.5·4) = 2nd, ceil(0.9·4) = 4th.
        "p50": 20, "p90": 40, "p0": 9, "p100": 40,
        // earliest/latest: the value of the earliest/latest event that has one.
        "first": 9, "last": 40, "first_name": "b", "last_name": "a",
        // Lexicographic: "20" < "30" < "40" < "9".
        "sf": "20", "sl": "9", "sfn": "a", "sln": "c",
        "newest": "2024-05-01 11:50:05.123",
    });
    assert_eq!(Value::Object(got), want);

    // Groups, including the group of events without the key (null), and an expression key.
    let out = run(
        &svc,
        &[GROUP],
        "stats count() as n, sum(v) as total by name, isempty(name) as anonymous | sort name asc",
    )
    .await;
    assert_eq!(
        out.rows,
        vec![
            vec![json!("a"), json!(0), json!(2), json!(20)],
            vec![json!("b"), json!(0), json!(1), json!(9)],
            vec![json!("c"), json!(0), json!(1), json!(30)],
            vec![Value::Null, json!(1), json!(1), json!(40)],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_compare_like_logs_insights() {
    let (_dir, svc) = setup().await;
    // A field widened to text ("17", "abc", 99 → "99") still compares as a number.
    assert_eq!(ids(&svc, "filter mixed > 20").await, vec![3]);
    assert_eq!(ids(&svc, "filter mixed = \"abc\"").await, vec![2]);
    assert_eq!(ids(&svc, "filter i in [42, \"3\"]").await, vec![1, 2]);
    assert_eq!(ids(&svc, "filter s like \"foo\"").await, vec![2]);
    assert_eq!(ids(&svc, "filter s not like \"foo\"").await, vec![1]);
    assert_eq!(ids(&svc, "filter not ispresent(v)").await, vec![4]);
    assert_eq!(ids(&svc, "filter flag").await, vec![1]);
    assert_eq!(ids(&svc, "filter isempty(name)").await, vec![5]);
    assert_eq!(ids(&svc, "filter strcontains(s, \"o\")").await, vec![1, 2]);
    // @timestamp against epoch milliseconds: events 2..5 are after 11:50:02.000.
    assert_eq!(
        ids(&svc, &format!("filter @timestamp > {}", base_ms() + 2000)).await,
        vec![2, 3, 4, 5]
    );
    assert_eq!(
        ids(&svc, "filter @logStream = \"s\" and id <= 2 or id = 5").await,
        vec![1, 2, 5]
    );
    // A field no event has is missing: nothing equals it, nothing is "present".
    assert_eq!(ids(&svc, "filter nosuch = \"x\"").await, Vec::<i64>::new());
    assert_eq!(
        ids(&svc, "filter ispresent(nosuch)").await,
        Vec::<i64>::new()
    );
}
