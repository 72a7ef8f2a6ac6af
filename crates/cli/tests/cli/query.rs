//! `kinsight query` against a real `kinsight server`: table, JSON and CSV output, SQL, several
//! groups, a malformed query's line and column, and no progress line when stdout is not a
//! terminal.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const TOKEN: &str = "query-test-token-0123456789";
const APP: &str = "/kinsight/cli/application";
const PERF: &str = "/kinsight/cli/performance";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("KINSIGHT_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kinsight server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server start");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, url }
}

async fn ingest(url: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    let mut events = Vec::new();
    for i in 0..30i64 {
        let ns = ["prod", "staging", "prod"][i as usize % 3];
        let stream = if i % 5 == 0 { "stderr" } else { "stdout" };
        events.push(json!({
            "logGroupName": APP, "logStreamName": format!("node-{}", i % 2),
            "timestamp": now - 600_000 + i * 1000,
            "message": json!({"stream": stream, "log": format!("line {i}, with a comma"),
                              "kubernetes": {"namespace_name": ns}}).to_string(),
        }));
    }
    for i in 0..4i64 {
        events.push(json!({
            "logGroupName": PERF, "logStreamName": "node-0",
            "timestamp": now - 300_000 + i * 1000,
            "message": json!({"Type": "Node", "NodeName": format!("n{}", i % 2),
                              "node_cpu_utilization": 10 * (i + 1)}).to_string(),
        }));
    }
    let res = reqwest::Client::new()
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(TOKEN)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
}

fn kinsight_query(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .arg("query")
        .args(["--server", url])
        .args(args)
        .env("KINSIGHT_TOKEN", TOKEN)
        .output()
        .expect("run kinsight query")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "kinsight query failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_prints_tables_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"));
    ingest(&server.url).await;
    let url = server.url.as_str();

    // JSON: one object per row.
    let out = kinsight_query(
        url,
        &[
            "--group",
            APP,
            "--since",
            "1h",
            "--output",
            "json",
            "stats count() as n by kubernetes.namespace_name | sort kubernetes.namespace_name",
        ],
    );
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v,
        json!([
            {"kubernetes.namespace_name": "prod", "n": 20},
            {"kubernetes.namespace_name": "staging", "n": 10}
        ])
    );
    // Not a terminal: no progress or summary line.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("scanned"));

    // Table: aligned columns, @ptr left out, newest first.
    let out = kinsight_query(
        url,
        &[
            "--group",
            APP,
            "--since",
            "1h",
            "fields stream, log | filter stream = \"stderr\"",
        ],
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[0].starts_with("stream  log"), "{text}");
    assert!(!lines[0].contains("@ptr"));
    assert_eq!(lines[1], "stderr  line 25, with a comma");
    assert_eq!(lines[6], "stderr  line 0, with a comma");

    // CSV: quoted where needed, @ptr kept (to look events up).
    let out = kinsight_query(
        url,
        &[
            "--group",
            APP,
            "--start",
            "-1h",
            "--output",
            "csv",
            "fields log | filter stream = \"stderr\" | limit 1",
        ],
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("log,@ptr"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("\"line 25, with a comma\","),
        "{text}"
    );

    // Several groups and SQL.
    let out = kinsight_query(
        url,
        &[
            "--group",
            APP,
            "--group",
            PERF,
            "--since",
            "1h",
            "--output",
            "json",
            "stats count() as n by @log | sort @log",
        ],
    );
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v, json!([{"@log": APP, "n": 30}, {"@log": PERF, "n": 4}]));
    let sql = format!(
        "SELECT \"NodeName\", avg(node_cpu_utilization) AS cpu FROM \"{PERF}\" GROUP BY 1 ORDER BY 1"
    );
    let out = kinsight_query(url, &["--group", PERF, "--sql", "--output", "json", &sql]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v,
        json!([{"NodeName": "n0", "cpu": 20}, {"NodeName": "n1", "cpu": 30}])
    );

    // A wrong query: non-zero exit, the line and column on stderr.
    let out = kinsight_query(url, &["--group", APP, "stats count(*) by\n| sort x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MalformedQuery") && err.contains("line 2, column 1"),
        "{err}"
    );
    let out = kinsight_query(url, &["--group", "/nope", "limit 1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nope"));
}
