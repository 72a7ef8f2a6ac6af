//! Issue 15: hostile input against the real `kinsight server` and `kinsight agent` processes.
//! Each attack of the issue's report is replayed — concurrent unsigned and oversized bodies,
//! connections that never finish their headers, deeply nested patterns and queries, allocation
//! bombs (compressed bodies, scalar functions, huge results), forged browser requests, a
//! webhook to the cloud-metadata address, a symlink planted in `/var/log` — and after each the
//! server must still answer `/healthz`. Across all of them the server's peak memory stays
//! bounded, and afterwards its memory and open files come back near where they started and
//! nothing leaked (a secret file, a webhook URL).

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::{ServerProc, TOKEN, api};

const AWS_KEY: (&str, &str) = ("AKIAHOSTILETEST00001", "hostile-secret-key-0123456789");

/// Peak memory the server may reach during the whole suite (a debug build; the query memory
/// is set to 256 MiB below, the results budgets to a few MiB). Measured: about 140 MiB from a
/// 100 MiB baseline. Without the limits, the unsigned bodies alone held 128 × 16 MiB, the zstd
/// bomb 256 MiB and `repeat` 2 GB.
const PEAK_RSS_LIMIT_KIB: u64 = 512 * 1024;

fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn healthy(url: &str) {
    let r = http()
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("/healthz answers");
    assert!(r.status().is_success(), "/healthz: {}", r.status());
}

/// A JSON answer for a failure message: its first 600 characters.
fn brief(v: &Value) -> String {
    v.to_string().chars().take(600).collect()
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// The status line of the answer to raw request bytes (`None` if the server closed first).
async fn raw_status(addr: &str, head: &[u8], body: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.ok()?;
    // A body the server may refuse before reading: write what it takes, ignore the rest.
    let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(body)).await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .expect("an answer within 30 s")
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().map(str::to_string)
}

/// The headers botocore sends for `action`, signed over `body` with `key`.
fn signed_headers(host: &str, action: &str, body: &[u8], key: (&str, &str)) -> String {
    use axum::http::{HeaderMap, HeaderValue};
    use kinsight_server::cwlogs::sigv4::{SignedRequest, authorization};
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let target = format!("Logs_20140328.{action}");
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_str(host).unwrap());
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    h.insert("x-amz-target", HeaderValue::from_str(&target).unwrap());
    h.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
    let req = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &h,
        body,
    };
    let auth = authorization(&req, key.0, key.1, &amz_date, "us-east-1");
    format!(
        "Host: {host}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\nX-Amz-Date: {amz_date}\r\nAuthorization: {auth}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_and_agent_survive_hostile_input_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProc::start(
        &data,
        &[
            "--header-read-timeout",
            "2s",
            "--body-read-timeout",
            "5s",
            "--query-memory",
            "256MiB",
            "--query-result-max",
            "1MiB",
            "--query-results-retained",
            "8MiB",
        ],
        &[
            ("KINSIGHT_AWS_ACCESS_KEY_ID", AWS_KEY.0.to_string()),
            ("KINSIGHT_AWS_SECRET_ACCESS_KEY", AWS_KEY.1.to_string()),
        ],
    );
    let url = server.url.clone();
    let addr = host_port(&url);
    let pid = server.pid();

    // Warm up: a group with events, a read token, one query and one CloudWatch call, so that
    // what is allocated once is in the baseline.
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<Value> = (0..200)
        .map(|i| {
            json!({"logGroupName": "/h/app", "logStreamName": "s", "timestamp": now - 1000 + i,
                        "message": format!("{{\"i\":{i},\"text\":\"{}\"}}", "x".repeat(1000))})
        })
        .collect();
    let (s, v) = api(
        reqwest::Method::POST,
        format!("{url}/v1/ingest"),
        TOKEN,
        Some(Value::Array(events)),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api(
        reqwest::Method::POST,
        format!("{url}/v1/tokens"),
        TOKEN,
        Some(json!({"name": "reader", "scope": "read"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let reader = v["token"].as_str().unwrap().to_string();
    let run_query = |query: &'static str, sql: bool| {
        let (url, reader) = (url.clone(), reader.clone());
        async move {
            let (s, v) = api(
                reqwest::Method::POST,
                format!("{url}/v1/queries"),
                &reader,
                Some(json!({"groups": ["/h/app"], "query": query,
                            "language": if sql { "sql" } else { "insights" },
                            "start": now - 3_600_000, "end": now + 60_000})),
            )
            .await;
            assert_eq!(s, 201, "{query}: {v}");
            let id = v["queryId"].as_str().unwrap().to_string();
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let (_, snap) = api(
                    reqwest::Method::GET,
                    format!("{url}/v1/queries/{id}"),
                    &reader,
                    None,
                )
                .await;
                let st = snap["status"].as_str().unwrap_or("").to_string();
                if !["Scheduled", "Running"].contains(&st.as_str()) {
                    return snap;
                }
                assert!(Instant::now() < deadline, "{query} still {st}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let snap = run_query("stats count() as n", false).await;
    assert_eq!(snap["rows"], json!([[200]]), "{}", brief(&snap));
    let body = br#"{"logGroupName": "/h/app", "logStreamName": "s"}"#;
    let head = format!(
        "POST / HTTP/1.1\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n",
        signed_headers(&addr, "GetLogEvents", body, AWS_KEY),
        body.len()
    );
    assert_eq!(
        raw_status(&addr, head.as_bytes(), body).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    let base_rss = status_kib(pid, "VmRSS:");
    let base_fds = open_fds(pid);

    // 1. 64 concurrent unsigned requests announcing 16 MiB bodies, and 64 signed with a valid
    // key but over the protocol's size: refused from their headers, at once.
    let big = vec![b'{'; 1 << 20];
    let mut tasks = Vec::new();
    for i in 0..128 {
        let (addr, big) = (addr.clone(), big.clone());
        tasks.push(tokio::spawn(async move {
            let auth = if i % 2 == 0 {
                format!(
                    "Host: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Logs_20140328.PutLogEvents\r\n"
                )
            } else {
                signed_headers(&addr, "PutLogEvents", b"", AWS_KEY)
            };
            let head = format!("POST / HTTP/1.1\r\n{auth}Content-Length: 16777216\r\n\r\n");
            raw_status(&addr, head.as_bytes(), &big).await
        }));
    }
    for t in tasks {
        let line = t.await.unwrap();
        assert_eq!(line.as_deref(), Some("HTTP/1.1 400 Bad Request"));
    }
    healthy(&url).await;

    // 2. 200 connections that never finish their request line: closed by the server after
    // the header timeout, while it keeps serving.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTT").await.unwrap();
        slow.push(s);
    }
    healthy(&url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for mut s in slow {
        let mut b = [0u8; 64];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut b)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {} // closed (EOF, reset, or an error answer then EOF)
            Err(_) => panic!("a connection without headers was still open after 30 s"),
        }
    }
    healthy(&url).await;

    // 3. Deep nesting: a FilterLogEvents pattern and a Logs Insights query.
    let pattern = format!(
        "{{ {}$.i = 1{} }}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let body =
        serde_json::to_vec(&json!({"logGroupName": "/h/app", "filterPattern": pattern})).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n",
        signed_headers(&addr, "FilterLogEvents", &body, AWS_KEY),
        body.len()
    );
    assert_eq!(
        raw_status(&addr, head.as_bytes(), &body).await.as_deref(),
        Some("HTTP/1.1 400 Bad Request")
    );
    let nested = format!("filter {}1{}", "(".repeat(5000), ")".repeat(5000));
    let (s, v) = api(
        reqwest::Method::POST,
        format!("{url}/v1/queries"),
        &reader,
        Some(json!({"groups": ["/h/app"], "query": nested, "start": 0, "end": now + 1})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    healthy(&url).await;

    // 4. Allocation bombs: 256 MiB of zeros in a small zstd body; a scalar function asked for
    // gigabytes; a query whose results would be large.
    let bomb = zstd::encode_all(std::io::Read::take(std::io::repeat(0), 256 << 20), 3).unwrap();
    assert!(bomb.len() < 1 << 20);
    let r = http()
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let snap = run_query("SELECT length(repeat('x', 2000000000)) FROM logs", true).await;
    assert_eq!(snap["status"], "Failed", "{}", brief(&snap));
    assert!(
        snap["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("repeat"),
        "{}",
        brief(&snap)
    );
    for _ in 0..5 {
        let snap = run_query(
            "SELECT \"@message\" || \"@message\" AS m FROM logs CROSS JOIN generate_series(1, 50)",
            true,
        )
        .await;
        assert_eq!(snap["status"], "Complete", "{}", brief(&snap));
        assert!(
            snap["warnings"].to_string().contains("results were cut"),
            "{}",
            brief(&snap)
        );
    }
    healthy(&url).await;

    // 5. A webhook to the cloud-metadata address is refused; a read token does not see the
    // URLs of alarms it may list.
    let alarm = |actions: Value| {
        json!({"AlarmName": "hostile", "Namespace": "App", "MetricName": "m", "Statistic": "Average",
               "Period": 60, "EvaluationPeriods": 1, "Threshold": 1,
               "ComparisonOperator": "GreaterThanThreshold", "AlarmActions": actions})
    };
    let (s, v) = api(
        reqwest::Method::PUT,
        format!("{url}/v1/alarms"),
        TOKEN,
        Some(alarm(json!(["http://169.254.169.254/latest/meta-data/"]))),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let secret_hook = "https://hooks.example.com/services/T000/B000/SECRETPATH";
    let (s, v) = api(
        reqwest::Method::PUT,
        format!("{url}/v1/alarms"),
        TOKEN,
        Some(alarm(json!([secret_hook]))),
    )
    .await;
    assert!(s == 200 || s == 201, "{v}");
    let (_, listed) = api(
        reqwest::Method::GET,
        format!("{url}/v1/alarms"),
        &reader,
        None,
    )
    .await;
    assert!(listed.to_string().contains("hooks.example.com"), "{listed}");
    assert!(!listed.to_string().contains("SECRETPATH"), "{listed}");
    healthy(&url).await;

    // Memory: the peak stayed bounded; what the attacks held is given back; the connections
    // they opened are closed.
    let peak = status_kib(pid, "VmHWM:");
    eprintln!("hostile: baseline RSS {base_rss} KiB, peak {peak} KiB");
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "peak RSS {peak} KiB (baseline {base_rss} KiB)"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (rss, fds) = (status_kib(pid, "VmRSS:"), open_fds(pid));
        if rss < base_rss + 256 * 1024 && fds <= base_fds + 16 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the attacks: RSS {rss} KiB (baseline {base_rss}), open files {fds} (baseline {base_fds})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);

    // 6. Forged browser requests against a server without a token (loopback only).
    let open_data = dir.path().join("open");
    let open = ServerProc::start(&open_data, &[], &[("KINSIGHT_TOKEN", String::new())]);
    let oaddr = host_port(&open.url);
    let event = br#"[{"logGroupName":"/b","logStreamName":"s","timestamp":1,"message":"m"}]"#;
    let forged = [
        format!("POST /v1/ingest HTTP/1.1\r\nHost: {oaddr}\r\nContent-Type: text/plain\r\n"),
        "POST /v1/ingest HTTP/1.1\r\nHost: attacker.example:8080\r\nContent-Type: application/json\r\n"
            .to_string(),
        format!(
            "POST /v1/ingest HTTP/1.1\r\nHost: {oaddr}\r\nOrigin: https://attacker.example\r\nContent-Type: application/json\r\n"
        ),
    ];
    for head in forged {
        let head = format!(
            "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
            event.len()
        );
        let line = raw_status(&oaddr, head.as_bytes(), event).await.unwrap();
        assert!(
            line.contains(" 403 ") || line.contains(" 415 "),
            "{head}: {line}"
        );
    }
    let (s, v) = api(
        reqwest::Method::GET,
        format!("{}/v1/groups", open.url),
        "",
        None,
    )
    .await;
    assert_eq!((s, &v["groups"]), (200, &json!([])), "nothing was stored");
    drop(open);

    // 7. A symlink planted in /var/log pointing out of the log directories: the agent never
    // reads what it points to, and goes on collecting the rest.
    let host = dir.path().join("host");
    let state = dir.path().join("state");
    std::fs::create_dir_all(host.join("var/log")).unwrap();
    std::fs::create_dir_all(host.join("etc")).unwrap();
    std::fs::write(
        host.join("etc/shadow"),
        "root:SECRET-HASH-NEVER-SHIPPED:19000::\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../../etc/shadow", host.join("var/log/secure")).unwrap();
    // The machine's own /proc and /sys stand for the node's (the agent checks they are there).
    std::os::unix::fs::symlink("/proc", host.join("proc")).unwrap();
    std::os::unix::fs::symlink("/sys", host.join("sys")).unwrap();
    std::fs::write(
        host.join("var/log/messages"),
        "2024-05-01T10:00:06.000000+00:00 node kernel: marker-line-shipped\n",
    )
    .unwrap();
    let cfg = dir.path().join("agent.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "c"}}}}}},
                 "kinsight": {{"host_root": "{}", "state_dir": "{}",
                               "logs": {{"read_from_head": true, "journald": false}}}}}}"#,
            host.display(),
            state.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(["agent", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(format!("file:{}", out.display()))
        .env("HOST_NAME", "node-1")
        .env_remove("HOST_IP")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("marker-line-shipped") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never shipped the host log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = agent.kill();
    let output = agent.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("SECRET-HASH"),
        "the planted link was followed"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("var/log/secure"),
        "the refusal names the link: {stderr}"
    );
    let _ = std::io::stderr().flush();
}
