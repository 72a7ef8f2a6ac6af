//! Integration tests of log collection: the whole collector on real files in the kubelet's
//! layout (pipeline.rs), which files it reads and from where (discovery.rs), kill -9 while a separate process rotates at high rate (crash.rs), real
//! podman containers (podman.rs) and a real journal file (journal.rs).
//!
//! The kubelet cannot run here: pod metadata comes from a recorded `/pods` answer
//! (tests/fixtures/logs/pods.json) fed through the collector's pod channel.

mod crash;
mod discovery;
mod journal;
mod pipeline;
mod podman;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kinsight_agent::logs::{CollectorOptions, LogCollector};
use kinsight_agent::sink::FileSink;
use kinsight_model::LogEvent;
use kinsight_model::config::AgentConfig;
use tokio::sync::watch;

pub const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";

pub fn fixture_pods() -> Vec<Pod> {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/logs/pods.json"
    ))
    .unwrap();
    kinsight_agent::kubelet::parse_pod_list(&text).unwrap()
}

/// Config for a node whose filesystem is under `root`, with extra `kinsight.logs` keys.
pub fn config(root: &Path, state: &Path, logs_extra: &str) -> AgentConfig {
    let doc = format!(
        r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "test-cluster"}}}}}},
            "kinsight": {{"host_root": "{}", "state_dir": "{}", "batch_max_events": 500,
                         "logs": {{"read_from_head": true, "journald": false {logs_extra}}}}}}}"#,
        root.display(),
        state.display()
    );
    AgentConfig::from_json_with_env(&doc, &|k| (k == "HOST_NAME").then(|| NODE.to_string()))
        .unwrap()
}

pub fn fast_options() -> CollectorOptions {
    CollectorOptions {
        linger: Duration::from_millis(50),
        poll_interval: Duration::from_millis(50),
        rotate_wait: Duration::from_millis(200),
        metadata_wait: Duration::from_millis(300),
        ..CollectorOptions::default()
    }
}

pub fn read_events(path: &Path) -> Vec<LogEvent> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    // A kill -9 in the middle of a write can leave a torn last line: it is not an event.
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn message(e: &LogEvent) -> serde_json::Value {
    serde_json::from_str(&e.message).unwrap()
}

/// Runs a collector in-process until `done(events)` holds or `timeout` passes.
pub fn collect_until(
    cfg: &AgentConfig,
    out: &Path,
    pods: Option<Vec<Pod>>,
    opts: CollectorOptions,
    timeout: Duration,
    done: impl Fn(&[LogEvent]) -> bool,
) -> Vec<LogEvent> {
    collect_after(cfg, out, pods, opts, timeout, || {}, done)
}

/// [`collect_until`], calling `started()` once the collector task runs (spawned, not yet
/// necessarily past any given point: `started` waits for what it needs).
pub fn collect_after(
    cfg: &AgentConfig,
    out: &Path,
    pods: Option<Vec<Pod>>,
    opts: CollectorOptions,
    timeout: Duration,
    started: impl FnOnce(),
    done: impl Fn(&[LogEvent]) -> bool,
) -> Vec<LogEvent> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sink = Arc::new(FileSink::open(out).unwrap());
        // The sender lives as long as the collector, like the metrics loop's: a closed feed
        // would end the collector's wait for metadata at once.
        let (_pod_tx, feed) = match pods {
            Some(p) => {
                let (tx, rx) = watch::channel(Arc::new(p));
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let collector = LogCollector::new(cfg, sink, feed).with_options(opts);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(collector.run(stop_rx));
        tokio::task::block_in_place(started);
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let ev = read_events(out);
            if done(&ev) || start.elapsed() > timeout {
                break;
            }
        }
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("collector stops")
            .unwrap()
            .unwrap();
        read_events(out)
    })
}

pub fn pod_dir(root: &Path, ns: &str, pod: &str, uid: &str, container: &str) -> PathBuf {
    let d = root.join(format!("var/log/pods/{ns}_{pod}_{uid}/{container}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}
