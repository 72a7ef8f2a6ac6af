//! `kinsight alarms` and `kinsight metrics` against a real `kinsight server` process (issue
//! #6): aws-cli-style flags, DescribeAlarms' JSON shape, errors that name the problem, a real
//! webhook receiver, the server's own wall-clock evaluator, and a SIGKILL restart in the middle
//! that changes nothing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use serde_json::{Value, json};

const TOKEN: &str = "alarms-cli-token-0123456789";

struct ServerProc {
    child: Child,
    url: String,
}

impl ServerProc {
    fn start(data_dir: &Path) -> ServerProc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kinsight"))
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("KINSIGHT_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        ServerProc { child, url }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kinsight <args>` with the token; returns (exit code, stdout, stderr).
fn kinsight(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(args)
        .env("KINSIGHT_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = kinsight(args);
    assert_eq!(code, 0, "kinsight {args:?} failed: {err}");
    out
}

type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on 127.0.0.1, on its own runtime thread.
fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let state = inbox.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            async fn hook(
                State(inbox): State<Inbox>,
                UrlPath(p): UrlPath<String>,
                body: Bytes,
            ) -> &'static str {
                inbox
                    .lock()
                    .unwrap()
                    .push((p, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                "ok"
            }
            let app = Router::new().route("/{p}", post(hook)).with_state(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{}", rx.recv().unwrap()), inbox)
}

fn wait_for(inbox: &Inbox, what: &str, pred: impl Fn(&str, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Some((_, v)) = inbox.lock().unwrap().iter().find(|(p, v)| pred(p, v)) {
            return v.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {what} within 90 s: {:?}", inbox.lock().unwrap());
}

/// Node events with CPU `cpu` at the given times, through the ingest API.
fn ingest(url: &str, times: &[i64], cpu: f64) {
    let events: Vec<Value> = times
        .iter()
        .map(|ts| {
            let mut ev = json!({"Type": "Node", "Version": "0", "Timestamp": ts.to_string(),
                "ClusterName": "prod", "NodeName": "n1", "InstanceId": "i-1", "node_cpu_utilization": cpu});
            ev["CloudWatchMetrics"] = serde_json::to_value(kinsight_model::catalogue::directives_for(ev.as_object().unwrap(), false)).unwrap();
            json!({"logGroupName": "/kinsight/prod/performance", "logStreamName": "n1", "timestamp": ts, "message": ev.to_string()})
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/v1/ingest"))
            .bearer_auth(TOKEN)
            .json(&events)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "{status}");
}

fn metric_values(url: &str) -> Value {
    let out = ok(&[
        "metrics",
        "get",
        "--namespace",
        "ContainerInsights",
        "--metric-name",
        "node_cpu_utilization",
        "--dimensions",
        "Name=ClusterName,Value=prod",
        "--statistic",
        "SampleCount",
        "--period",
        "3600",
        "--start-time",
        "-3h",
        "--output",
        "json",
        "--server",
        url,
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["Series"][0]["Values"].clone()
}

#[test]
fn alarms_and_metrics_cli_against_a_real_server_with_a_sigkill_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (hooks, inbox) = receiver();
    let srv = ServerProc::start(&data);
    let url = srv.url.clone();

    // put with aws-cli flags; the pager is a real local webhook. (No data ever reaches this
    // cluster and missing data is ignored, so the evaluator never moves the state SetAlarmState
    // sets below — the test does not race the wall clock.)
    let pager = format!("{hooks}/pager");
    ok(&[
        "alarms",
        "put",
        "--alarm-name",
        "node-cpu",
        "--namespace",
        "ContainerInsights",
        "--metric-name",
        "node_cpu_utilization",
        "--dimensions",
        "Name=ClusterName,Value=staging",
        "--statistic",
        "Average",
        "--period",
        "60",
        "--evaluation-periods",
        "3",
        "--datapoints-to-alarm",
        "2",
        "--threshold",
        "80",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--treat-missing-data",
        "ignore",
        "--alarm-actions",
        &pager,
        "--server",
        &url,
    ]);
    // Errors name the problem and fail the command.
    let (code, _, err) = kinsight(&[
        "alarms",
        "put",
        "--alarm-name",
        "bad",
        "--namespace",
        "N",
        "--metric-name",
        "m",
        "--statistic",
        "Average",
        "--period",
        "45",
        "--evaluation-periods",
        "1",
        "--threshold",
        "1",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--server",
        &url,
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("invalid Period: 45 s: must be 10, 30 or a multiple of 60"),
        "{err}"
    );
    let (code, _, err) = kinsight(&["alarms", "list", "--server", "http://127.0.0.1:9"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot reach the kinsight server at http://127.0.0.1:9"),
        "{err}"
    );
    let (code, _, err) = kinsight(&["alarms", "delete", "nope", "--server", &url]);
    assert_ne!(code, 0);
    assert!(
        err.contains("ResourceNotFound") && err.contains("\"nope\""),
        "{err}"
    );

    // SetAlarmState runs the action through the server's notifier.
    ok(&[
        "alarms",
        "set-state",
        "node-cpu",
        "--state-value",
        "ALARM",
        "--state-reason",
        "pager test",
        "--server",
        &url,
    ]);
    let page = wait_for(&inbox, "page", |p, _| p == "pager");
    assert_eq!(page["NewStateReason"], "pager test");
    let list: Value = serde_json::from_str(&ok(&[
        "alarms", "list", "--output", "json", "--server", &url,
    ]))
    .unwrap();
    let a = &list["MetricAlarms"][0];
    assert_eq!(
        (a["AlarmName"].as_str(), a["StateValue"].as_str()),
        (Some("node-cpu"), Some("ALARM"))
    );
    assert_eq!(a["StateReason"], "pager test");
    assert_eq!(a["DatapointsToAlarm"], 2);
    let table = ok(&["alarms", "list", "--server", &url]);
    assert!(
        table.contains("node-cpu") && table.contains("node_cpu_utilization Average > 80"),
        "{table}"
    );

    // Metrics through the API; then a SIGKILL and a restart: same numbers (WAL replay into
    // the metric store counts nothing twice), same alarm.
    let now = chrono::Utc::now().timestamp_millis();
    ingest(
        &url,
        &(0..12)
            .map(|i| now - 60_000 + i * 5_000)
            .collect::<Vec<_>>(),
        42.0,
    );
    // The ingest answer means durable; the metric store applies the batch right after, on
    // the store's observer thread.
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let v = metric_values(&url);
        let total: f64 = v.as_array().unwrap().iter().filter_map(Value::as_f64).sum();
        if total >= 12.0 || Instant::now() > deadline {
            assert_eq!(total, 12.0, "{v}");
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    srv.kill9();
    let srv = ServerProc::start(&data);
    let url = srv.url.clone();
    assert_eq!(metric_values(&url), before);
    let list: Value = serde_json::from_str(&ok(&[
        "alarms", "list", "--output", "json", "--server", &url,
    ]))
    .unwrap();
    assert_eq!(list["MetricAlarms"][0]["StateValue"], "ALARM");
    let listed = ok(&[
        "metrics",
        "list",
        "--namespace",
        "ContainerInsights",
        "--server",
        &url,
    ]);
    assert!(
        listed.contains("node_cpu_utilization")
            && listed.contains("ClusterName=prod,InstanceId=i-1,NodeName=n1"),
        "{listed}"
    );

    // The server's own evaluator, on the wall clock: a 10-s alarm over a hot node.
    ok(&[
        "alarms",
        "put",
        "--alarm-name",
        "fast",
        "--namespace",
        "ContainerInsights",
        "--metric-name",
        "node_cpu_utilization",
        "--dimensions",
        "Name=ClusterName,Value=prod",
        "--extended-statistic",
        "p90",
        "--period",
        "10",
        "--evaluation-periods",
        "1",
        "--threshold",
        "90",
        "--comparison-operator",
        "GreaterThanOrEqualToThreshold",
        "--alarm-actions",
        &format!("slack+{hooks}/chat"),
        "--server",
        &url,
    ]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ingest(&url, &[chrono::Utc::now().timestamp_millis()], 97.0);
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };
    let chat = wait_for(&inbox, "Slack message", |p, _| p == "chat");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
    assert!(
        chat["text"]
            .as_str()
            .unwrap()
            .contains("*fast* is now *ALARM*"),
        "{chat}"
    );

    // History, pack, delete.
    let h: Value = serde_json::from_str(&ok(&[
        "alarms", "history", "fast", "--output", "json", "--server", &url,
    ]))
    .unwrap();
    let kinds: Vec<&str> = h["AlarmHistoryItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["HistoryItemType"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"StateUpdate") && kinds.contains(&"ConfigurationUpdate"),
        "{kinds:?}"
    );
    let installed = ok(&[
        "alarms",
        "pack",
        "install",
        "--cluster",
        "prod",
        "--server",
        &url,
    ]);
    assert_eq!(installed.lines().count(), 7, "{installed}");
    assert!(installed.contains("kinsight-prod-node-cpu-high"));
    assert!(installed.contains("kinsight-prod-oom-kills"), "{installed}");
    let shown: Value =
        serde_json::from_str(&ok(&["alarms", "pack", "show", "--cluster", "prod"])).unwrap();
    assert_eq!(shown.as_array().unwrap().len(), 7);
    ok(&["alarms", "delete", "fast", "--server", &url]);
    let list: Value = serde_json::from_str(&ok(&[
        "alarms", "list", "--output", "json", "--server", &url,
    ]))
    .unwrap();
    assert_eq!(list["MetricAlarms"].as_array().unwrap().len(), 8);
    drop(srv);
}

/// `--promql` (kinsight extension): errors that name the problem without reaching a server,
/// then a PromQL alarm saved on a real server, listed with its expression and described with
/// its `PromQL` member.
#[test]
fn put_with_promql() {
    let common = [
        "--alarm-name",
        "cpu-promql",
        "--period",
        "60",
        "--evaluation-periods",
        "3",
        "--threshold",
        "80",
        "--comparison-operator",
        "GreaterThanThreshold",
    ];
    let put = |extra: &[&str], server: &str| {
        let mut args = vec!["alarms", "put"];
        args.extend(common);
        args.extend(extra);
        args.extend(["--server", server]);
        kinsight(&args)
    };
    let nowhere = "http://127.0.0.1:9";
    let expr = r#"avg(node_cpu_utilization{ClusterName="prod"})"#;

    // Both ways.
    let (code, _, err) = put(
        &[
            "--promql",
            expr,
            "--namespace",
            "ContainerInsights",
            "--statistic",
            "Average",
        ],
        nowhere,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("--promql replaces the metric: drop --namespace, --statistic"),
        "{err}"
    );
    // Neither.
    let (code, _, err) = put(&[], nowhere);
    assert_ne!(code, 0);
    assert!(
        err.contains("give --promql EXPR, or --namespace, --metric-name, --statistic"),
        "{err}"
    );
    // A metric alarm missing its statistic is named as such.
    let (code, _, err) = put(&["--namespace", "N", "--metric-name", "m"], nowhere);
    assert_ne!(code, 0);
    assert!(
        err.contains("or --statistic (or --extended-statistic) for a metric alarm"),
        "{err}"
    );
    // An expression that does not parse, or is not an instant vector: refused locally.
    let (code, _, err) = put(&["--promql", "avg(node_cpu_utilization"], nowhere);
    assert_ne!(code, 0);
    assert!(err.contains("invalid PromQL: parse error"), "{err}");
    let (code, _, err) = put(&["--promql", "node_cpu_utilization[5m]"], nowhere);
    assert_ne!(code, 0);
    assert!(err.contains("instant vector or a scalar"), "{err}");

    // Saved on a real server.
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(&dir.path().join("data"));
    let (code, _, err) = put(&["--promql", expr], &srv.url);
    assert_eq!(code, 0, "{err}");
    let table = ok(&["alarms", "list", "--server", &srv.url]);
    assert!(table.contains(&format!("{expr} > 80")), "{table}");
    let v: Value = serde_json::from_str(&ok(&[
        "alarms",
        "describe",
        "cpu-promql",
        "--server",
        &srv.url,
    ]))
    .unwrap();
    let a = &v["MetricAlarms"][0];
    assert_eq!(a["PromQL"], expr);
    assert!(
        a.get("MetricName").is_none() && a.get("Statistic").is_none(),
        "{a}"
    );
}
