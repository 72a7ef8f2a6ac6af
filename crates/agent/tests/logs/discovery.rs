//! Which files the collector reads and from where: symlinks that leave the node's log
//! directories are refused (issue 15, item 7), and a pod that starts with the agent on a new
//! node loses none of its first lines (issue 15, item 15).

use super::*;

const API_UID: &str = "7b3c1a52-2f0e-4d6a-9a61-3c0f6f2b7e11";
const SECRET: &str = "root:$6$kinsight-test-secret-hash$:19000:0:99999:7:::";

fn link(target: impl AsRef<Path>, at: &Path) {
    std::os::unix::fs::symlink(target, at).unwrap();
}

/// A node (`host_root` = a temporary directory) where someone who can write to /var/log has
/// planted links to a "shadow" file, next to the kubelet's own links.
#[test]
fn links_out_of_the_log_directories_are_never_read() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::create_dir_all(r.join("var/log/containers")).unwrap();
    std::fs::write(r.join("etc/shadow"), format!("{SECRET}\n")).unwrap();
    // A name that exists only under this host root, so the link is absolute on the node
    // without ever naming a file of the machine running the test.
    let abs = format!("/etc/kinsight-test-{}", std::process::id());
    std::fs::write(r.join(abs.trim_start_matches('/')), format!("{SECRET}\n")).unwrap();

    // Host files: syslog is a link out (absolute, as written on the node), auth.log relative,
    // kern.log through `..` past the node's `/`, and messages a real file.
    link(&abs, &r.join("var/log/syslog"));
    link("../../etc/shadow", &r.join("var/log/auth.log"));
    link(
        "../../../../../../../../etc/shadow",
        &r.join("var/log/kern.log"),
    );
    std::fs::write(
        r.join("var/log/messages"),
        "2024-05-01T10:00:06.000000+00:00 node kernel: eth0 up\n",
    )
    .unwrap();
    // A pod log file that is a link out, and a pod directory that is one.
    let evil = pod_dir(r, "prod", "evil", "u1", "c");
    link("/etc/shadow", &evil.join("0.log"));
    std::fs::create_dir_all(r.join("var/log/pods")).unwrap();
    link("../../../etc", &r.join("var/log/pods/prod_evil2_u2"));
    std::fs::create_dir_all(r.join("etc/c")).unwrap();
    std::fs::write(r.join("etc/c/0.log"), format!("{SECRET}\n")).unwrap();

    // The legitimate links: cri-dockerd's pod log is an absolute link into docker's
    // directory, and /var/log/containers names the container id.
    let cid = "ab".repeat(32);
    let docker = r.join(format!("var/lib/docker/containers/{cid}"));
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join(format!("{cid}-json.log")),
        "{\"log\":\"api ready\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:05.5Z\"}\n",
    )
    .unwrap();
    let api = pod_dir(r, "prod", "api-7d9f8b6c5d-x2k4q", API_UID, "api");
    link(
        format!("/var/lib/docker/containers/{cid}/{cid}-json.log"),
        &api.join("1.log"),
    );
    link(
        format!("/var/log/pods/prod_api-7d9f8b6c5d-x2k4q_{API_UID}/api/1.log"),
        &r.join(format!(
            "var/log/containers/api-7d9f8b6c5d-x2k4q_prod_api-{cid}.log"
        )),
    );

    let cfg = config(r, state.path(), "");
    let out = state.path().join("out.jsonl");
    let events = collect_until(
        &cfg,
        &out,
        Some(fixture_pods()),
        fast_options(),
        Duration::from_secs(20),
        |e| e.len() >= 2,
    );
    let raw = std::fs::read_to_string(&out).unwrap();
    assert!(!raw.contains("kinsight-test-secret-hash"), "leaked: {raw}");
    let mut got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let m = message(e);
            let text = m
                .get("log")
                .or_else(|| m.get("message"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            (e.log_stream_name.clone(), text)
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                format!(
                    "{NODE}-application.var.log.containers.api-7d9f8b6c5d-x2k4q_prod_api-{cid}.log"
                ),
                "api ready".to_string()
            ),
            (
                format!("{NODE}.host.messages"),
                "2024-05-01T10:00:06.000000+00:00 node kernel: eth0 up".to_string()
            ),
        ],
        "the kubelet's links work, nothing else is read"
    );
}

/// On a new node the agent and the pods start together. A pod log file created right after
/// the collector starts — before its first scan in the code this replaced, which waited for
/// pod metadata first — arrives whole, not from its end. (That files older than the first
/// start are still read from their end is the tailer's test
/// `first_start_reads_from_the_end_unless_asked_and_later_files_from_the_head`: birth times
/// cannot be set, so only the tailer's state can pretend an older first start.)
#[test]
fn a_pod_log_created_as_the_agent_starts_arrives_whole() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("var/log/pods")).unwrap();
    let doc = format!(
        r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "test-cluster"}}}}}},
            "kinsight": {{"host_root": "{}", "state_dir": "{}",
                         "logs": {{"read_from_head": false, "journald": false}}}}}}"#,
        r.display(),
        state.path().display()
    );
    let cfg =
        AgentConfig::from_json_with_env(&doc, &|k| (k == "HOST_NAME").then(|| NODE.to_string()))
            .unwrap();
    let out = state.path().join("out.jsonl");
    // No pod metadata yet (the kubelet has not answered): the collector waits up to 3 s for it.
    let opts = CollectorOptions {
        metadata_wait: Duration::from_secs(3),
        ..fast_options()
    };
    let api = r.join(format!(
        "var/log/pods/prod_api-7d9f8b6c5d-x2k4q_{API_UID}/api"
    ));
    let lines = [
        "2024-05-01T10:00:00.000000001Z stdout F starting api 1.2.3",
        "2024-05-01T10:00:00.000000002Z stderr F config: DATABASE_URL is not set",
        "2024-05-01T10:00:00.000000003Z stderr F exiting with status 1",
    ];
    let events = collect_after(
        &cfg,
        &out,
        Some(Vec::new()),
        opts,
        Duration::from_secs(20),
        || {
            // The collector has started once it has opened its state directory.
            let logs_state = state.path().join("logs");
            let until = Instant::now() + Duration::from_secs(10);
            while !logs_state.exists() {
                assert!(Instant::now() < until, "the collector did not start");
                std::thread::sleep(Duration::from_millis(5));
            }
            std::fs::create_dir_all(&api).unwrap();
            std::fs::write(api.join("0.log"), lines.join("\n") + "\n").unwrap();
        },
        |e| e.len() >= lines.len(),
    );
    let got: Vec<String> = events
        .iter()
        .map(|e| message(e)["log"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = lines
        .iter()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap().to_string())
        .collect();
    assert_eq!(got, want, "every first line, in order");
}
