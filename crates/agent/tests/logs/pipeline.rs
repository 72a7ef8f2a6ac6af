//! The collector end to end on files in the kubelet's layout, with recorded pod metadata.

use super::*;
use std::io::Write;

const API_UID: &str = "7b3c1a52-2f0e-4d6a-9a61-3c0f6f2b7e11";
const KP_UID: &str = "3e1d9c44-5a6b-4f70-8c21-9d0e1f2a3b4c";
const JOB_UID: &str = "c5a7e0b2-8d3f-4e19-b6a4-2f1c0d9e8a7b";
const LEDGER_UID: &str = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";

fn write(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Runs the pipeline over host root `r` (default settings, the fixture pods) until `n`
/// events are out or `within` has passed.
fn collect_n(r: &Path, state: &Path, n: usize, within: Duration) -> Vec<LogEvent> {
    let cfg = config(r, state, "");
    let out = state.join("out.jsonl");
    collect_until(
        &cfg,
        &out,
        Some(fixture_pods()),
        fast_options(),
        within,
        |e| e.len() >= n,
    )
}

#[test]
fn containers_host_and_dataplane_are_parsed_routed_and_enriched() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = root.path();
    let api = pod_dir(r, "prod", "api-7d9f8b6c5d-x2k4q", API_UID, "api");
    let big = "x".repeat(20_000);
    let mut api_log = Vec::new();
    api_log.extend_from_slice(
        b"2024-05-01T10:00:00.100000000Z stdout F {\"level\":\"info\",\"msg\":\"ready\"}\n",
    );
    // A 20 000-byte line split by the runtime into 16 KiB P chunks + F.
    api_log.extend_from_slice(
        format!(
            "2024-05-01T10:00:00.200000000Z stdout P {}\n",
            &big[..16384]
        )
        .as_bytes(),
    );
    api_log.extend_from_slice(
        format!(
            "2024-05-01T10:00:00.200000001Z stdout F {}\n",
            &big[16384..]
        )
        .as_bytes(),
    );
    api_log.extend_from_slice(
        b"2024-05-01T10:00:00.300000000+00:00 stderr F bad bytes \xff\xfe end\n",
    );
    api_log.extend_from_slice(b"garbage that is not CRI\n");
    write(&api.join("1.log"), &api_log);
    // The symlink names the container id, as on a node.
    let cid = "ab".repeat(32);
    std::fs::create_dir_all(r.join("var/log/containers")).unwrap();
    std::os::unix::fs::symlink(
        format!("/var/log/pods/prod_api-7d9f8b6c5d-x2k4q_{API_UID}/api/1.log"),
        r.join(format!(
            "var/log/containers/api-7d9f8b6c5d-x2k4q_prod_api-{cid}.log"
        )),
    )
    .unwrap();
    let kp = pod_dir(r, "kube-system", "kube-proxy-8xk2p", KP_UID, "kube-proxy");
    write(
        &kp.join("0.log"),
        b"2024-05-01T10:00:01Z stderr F I0501 proxier synced\n",
    );
    let job = pod_dir(r, "prod", "batch-report-28573140-q9z7m", JOB_UID, "report");
    write(
        &job.join("0.log"),
        b"2024-05-01T10:00:02Z stdout F excluded by annotation\n",
    );
    let ledger = pod_dir(
        r,
        "payments",
        "ledger-5c6d7e8f9-abcde",
        LEDGER_UID,
        "ledger",
    );
    write(
        &ledger.join("0.log"),
        b"2024-05-01T10:00:03Z stdout F Exception in thread \"main\" java.lang.IllegalStateException: boom\n\
2024-05-01T10:00:03Z stdout F \tat com.example.Ledger.post(Ledger.java:42)\n\
2024-05-01T10:00:03Z stdout F \tat com.example.Main.main(Main.java:7)\n\
2024-05-01T10:00:04Z stdout F next record\n",
    );
    // A pod unknown to the kubelet, Docker json-file format with a 16 KiB split.
    let web = pod_dir(
        r,
        "legacy",
        "web-1",
        "11111111-2222-3333-4444-555555555555",
        "web",
    );
    write(
        &web.join("0.log"),
        b"{\"log\":\"part one \",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:05.5Z\"}\n{\"log\":\"part two\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:05.6Z\"}\n",
    );
    write(
        &r.join("var/log/syslog"),
        b"2024-05-01T10:00:06.000000+00:00 node kernel: eth0 up\n",
    );
    write(&r.join("var/log/dpkg.log"), b"not collected\n");

    let events = collect_n(r, state.path(), 9, Duration::from_secs(30));
    // api 4, kube-proxy 1, ledger 2 (a joined stack trace + one line), web 1, host 1.
    assert_eq!(events.len(), 9, "{events:#?}");

    let app = "/kinsight/test-cluster/application";
    let api_stream =
        format!("{NODE}-application.var.log.containers.api-7d9f8b6c5d-x2k4q_prod_api-{cid}.log");
    let api_ev: Vec<&LogEvent> = events
        .iter()
        .filter(|e| e.log_stream_name == api_stream)
        .collect();
    assert_eq!(api_ev.len(), 4);
    assert!(api_ev.iter().all(|e| e.log_group_name == app));
    let m0 = message(api_ev[0]);
    assert_eq!(m0["log_processed"]["msg"], "ready");
    assert_eq!(m0["stream"], "stdout");
    assert_eq!(m0["time"], "2024-05-01T10:00:00.100000000Z");
    assert_eq!(api_ev[0].timestamp, 1_714_557_600_100);
    let k = &m0["kubernetes"];
    assert_eq!(k["pod_name"], "api-7d9f8b6c5d-x2k4q");
    assert_eq!(k["namespace_name"], "prod");
    assert_eq!(k["pod_id"], API_UID);
    assert_eq!(k["container_name"], "api");
    assert_eq!(k["docker_id"], cid.as_str());
    assert_eq!(k["host"], NODE);
    assert!(k["container_hash"].as_str().unwrap().contains("@sha256:"));
    assert_eq!(
        k["container_image"],
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1.2.3"
    );
    assert_eq!(k["labels"]["app"], "api");
    assert!(k.get("annotations").is_none(), "annotations are opt-in");
    assert_eq!(
        message(api_ev[1])["log"].as_str().unwrap(),
        big,
        "P chunks joined"
    );
    let m2 = message(api_ev[2]);
    assert_eq!(m2["log"], "bad bytes \u{fffd}\u{fffd} end");
    assert_eq!(m2["stream"], "stderr");
    assert_eq!(message(api_ev[3])["log"], "garbage that is not CRI");

    let kp_ev = events
        .iter()
        .find(|e| e.log_stream_name.contains("kube-proxy"))
        .unwrap();
    assert_eq!(kp_ev.log_group_name, "/kinsight/test-cluster/dataplane");
    assert!(kp_ev.log_stream_name.starts_with(&format!(
        "{NODE}-dataplane.tail.var.log.containers.kube-proxy-8xk2p_kube-system_kube-proxy-"
    )));

    assert!(
        !events
            .iter()
            .any(|e| e.message.contains("excluded by annotation"))
    );

    let ledger_ev: Vec<&LogEvent> = events
        .iter()
        .filter(|e| e.log_stream_name.contains("ledger"))
        .collect();
    assert_eq!(ledger_ev.len(), 2, "java stack trace joined by annotation");
    assert_eq!(
        message(ledger_ev[0])["log"]
            .as_str()
            .unwrap()
            .lines()
            .count(),
        3
    );

    let web_ev = events
        .iter()
        .find(|e| e.log_stream_name.contains("web-1"))
        .unwrap();
    assert_eq!(message(web_ev)["log"], "part one part two");
    assert!(
        web_ev.log_stream_name.ends_with("web-1_legacy_web-0.log"),
        "no id known: restart number"
    );
    assert_eq!(message(web_ev)["kubernetes"]["namespace_name"], "legacy");

    let host = events
        .iter()
        .find(|e| e.log_group_name.ends_with("/host"))
        .unwrap();
    assert_eq!(host.log_stream_name, format!("{NODE}.host.messages"));
    assert_eq!(
        message(host)["message"],
        "2024-05-01T10:00:06.000000+00:00 node kernel: eth0 up"
    );
    assert_eq!(host.timestamp, 1_714_557_606_000);
    for e in &events {
        kinsight_model::names::validate_log_stream_name(&e.log_stream_name).unwrap();
    }
}

#[test]
fn filters_rate_limit_and_oversized_lines() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = root.path();
    let api = pod_dir(r, "prod", "api-7d9f8b6c5d-x2k4q", API_UID, "api");
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("2024-05-01T10:00:00Z stdout F line {i}\n"));
    }
    write(&api.join("1.log"), text.as_bytes());
    let ledger = pod_dir(
        r,
        "payments",
        "ledger-5c6d7e8f9-abcde",
        LEDGER_UID,
        "ledger",
    );
    write(
        &ledger.join("0.log"),
        b"2024-05-01T10:00:00Z stdout F noisy\n",
    );
    let sys = pod_dir(r, "kube-system", "kube-proxy-8xk2p", KP_UID, "kube-proxy");
    write(
        &sys.join("0.log"),
        b"2024-05-01T10:00:00Z stdout F in an excluded namespace\n",
    );
    // 50 MiB with no newline, written by a misbehaving app through a raw (non-CRI) file.
    let other = pod_dir(
        r,
        "prod",
        "dumper-1",
        "99999999-0000-0000-0000-000000000000",
        "dump",
    );
    let big = "0123456789abcdef".repeat(50 * 1024 * 1024 / 16);
    write(&other.join("0.log"), big.as_bytes());
    write(&other.join("0.log"), b"\n");

    let cfg = config(
        r,
        state.path(),
        r#", "exclude_namespaces": ["kube-system"], "exclude_pod_labels": {"logging": "noisy"},
            "rate_limit_lines_per_second": 100, "annotations": true"#,
    );
    let out = state.path().join("out.jsonl");
    let want_pieces = big.len().div_ceil(240 * 1024);
    let events = collect_until(
        &cfg,
        &out,
        Some(fixture_pods()),
        fast_options(),
        Duration::from_secs(60),
        |e| {
            e.iter()
                .filter(|e| e.log_stream_name.contains("dumper"))
                .count()
                >= want_pieces
        },
    );
    let api_n = events
        .iter()
        .filter(|e| e.log_stream_name.contains("api-7d9f"))
        .count();
    assert!(
        (100..=200).contains(&api_n),
        "rate limit 100/s over a short run: {api_n}"
    );
    assert!(
        !events.iter().any(|e| e.message.contains("noisy")),
        "label exclusion"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.message.contains("excluded namespace"))
    );
    let api_ev = events
        .iter()
        .find(|e| e.log_stream_name.contains("api-7d9f"))
        .unwrap();
    assert_eq!(
        message(api_ev)["kubernetes"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let dump: Vec<&LogEvent> = events
        .iter()
        .filter(|e| e.log_stream_name.contains("dumper"))
        .collect();
    assert_eq!(dump.len(), want_pieces);
    let mut joined = String::new();
    for (i, e) in dump.iter().enumerate() {
        assert!(e.billed_size_bytes() <= kinsight_model::limits::MAX_EVENT_BYTES);
        let m = message(e);
        assert_eq!(m["_p"], if i + 1 < dump.len() { "P" } else { "F" });
        joined.push_str(m["log"].as_str().unwrap());
    }
    assert!(joined == big, "pieces add up to the line");
}

#[test]
fn metadata_arriving_late_and_deleted_pods_still_enrich() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = root.path();
    let api = pod_dir(r, "prod", "api-7d9f8b6c5d-x2k4q", API_UID, "api");
    write(&api.join("1.log"), b"2024-05-01T10:00:00Z stdout F first\n");
    let cfg = config(r, state.path(), "");
    let out = state.path().join("out.jsonl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = rt.block_on(async {
        let sink = Arc::new(FileSink::open(&out).unwrap());
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        let c = LogCollector::new(&cfg, sink, Some(rx)).with_options(fast_options());
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(c.run(stop_rx));
        let wait_for = |n: usize| {
            let out = out.clone();
            async move {
                for _ in 0..200 {
                    if read_events(&out).len() >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!("timed out waiting for {n} events");
            }
        };
        wait_for(1).await;
        // The kubelet answers: the pod is known from now on.
        tx.send(Arc::new(fixture_pods())).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        write(
            &api.join("1.log"),
            b"2024-05-01T10:00:01Z stdout F second\n",
        );
        wait_for(2).await;
        // The pod is deleted; its last line arrives afterwards.
        tx.send(Arc::new(Vec::new())).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        write(
            &api.join("1.log"),
            b"2024-05-01T10:00:02Z stdout F last words\n",
        );
        wait_for(3).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap().unwrap();
        read_events(&out)
    });
    assert!(
        message(&events[0])["kubernetes"]
            .get("container_image")
            .is_none()
    );
    assert_eq!(
        message(&events[0])["kubernetes"]["pod_name"],
        "api-7d9f8b6c5d-x2k4q",
        "from the path"
    );
    for e in &events[1..] {
        assert!(
            message(e)["kubernetes"]["container_image"].is_string(),
            "{}",
            e.message
        );
    }
}

/// The runtime writes each stream's lines as they come: a stderr line can land between the `P`
/// chunks of a long stdout line (podman does this when a program writes to both). Chunks are
/// joined per stream, so neither line takes in the other.
#[test]
fn a_stderr_line_between_the_chunks_of_a_stdout_line_stays_apart() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = root.path();
    let api = pod_dir(r, "prod", "api-7d9f8b6c5d-x2k4q", API_UID, "api");
    let big = "x".repeat(20_000);
    let log = format!(
        "2024-05-01T10:00:00.100000000Z stdout P {}\n\
         2024-05-01T10:00:00.100000100Z stderr F to stderr\n\
         2024-05-01T10:00:00.100000200Z stdout F {}\n\
         2024-05-01T10:00:00.100000300Z stdout F after\n",
        &big[..8192],
        &big[8192..]
    );
    write(&api.join("0.log"), log.as_bytes());
    let events = collect_n(r, state.path(), 3, Duration::from_secs(20));
    let m: Vec<serde_json::Value> = events.iter().map(message).collect();
    let lines: Vec<(&str, &str)> = m
        .iter()
        .map(|m| (m["stream"].as_str().unwrap(), m["log"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("stderr", "to stderr"),
            ("stdout", big.as_str()),
            ("stdout", "after")
        ],
        "{m:#?}"
    );
}
