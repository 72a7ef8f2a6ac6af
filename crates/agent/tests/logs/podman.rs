//! CRI lines as a real runtime writes them: a podman container with the k8s-file log driver
//! (`+00:00` timestamps, lines over 8 KiB split into `P` chunks). Set-up follows
//! ../shared/testbed/README.md: runc, cgroupfs, file events, ulimits within the hard limits,
//! and a busybox image imported from the static binary (no registry).

use super::journal::require;
use super::*;
use std::process::Command;

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Idempotent host set-up for podman on these machines (see the testbed README).
fn setup() {
    if !Path::new("/etc/containers/containers.conf").exists() {
        sh(r#"NOFILE=$(ulimit -Hn); NPROC=$(ulimit -Hu)
[ "$NOFILE" = unlimited ] && NOFILE=1048576; [ "$NOFILE" -gt 1048576 ] && NOFILE=1048576
{ [ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ]; } && NPROC=32768
mkdir -p /etc/containers
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\nlog_driver = "k8s-file"\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' $NOFILE $NOFILE $NPROC $NPROC > /etc/containers/containers.conf"#);
    }
    if !Command::new("podman")
        .args(["image", "exists", "localhost/busybox:test"])
        .status()
        .is_ok_and(|s| s.success())
    {
        sh(
            r#"set -e; D=$(mktemp -d); cd $D; mkdir -p rootfs/bin rootfs/etc rootfs/tmp rootfs/proc rootfs/sys rootfs/dev rootfs/root
cp /bin/busybox rootfs/bin/busybox
for a in $(rootfs/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > rootfs/etc/passwd; echo 'root:x:0:' > rootfs/etc/group; chmod 1777 rootfs/tmp
tar -C rootfs -cf rootfs.tar .
podman import -q --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' rootfs.tar localhost/busybox:test >/dev/null
cd /; rm -rf $D"#,
        );
    }
}

#[test]
fn cri_lines_written_by_podman_are_joined_and_timed() {
    if !require("podman") || !require("/bin/busybox") {
        return;
    }
    setup();
    let name = format!("kinsight-logs-{}", std::process::id());
    let script = r#"echo plain line; echo to stderr >&2; head -c 20000 /dev/zero | tr '\0' x; echo; echo '{"level":"warn","n":1}'"#;
    sh(&format!(
        "podman run -d --name {name} --log-driver k8s-file localhost/busybox:test sh -c \"{}\"",
        script.replace('"', "\\\"")
    ));
    sh(&format!("podman wait {name}"));
    let log = sh(&format!(
        "podman inspect -f '{{{{.HostConfig.LogConfig.Path}}}}' {name}"
    ));
    let raw = std::fs::read_to_string(&log).unwrap();
    let cleanup = || {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &name])
            .output();
    };
    assert!(
        raw.contains("+00:00 stdout P "),
        "podman splits long lines into P chunks: {}",
        &raw[..200.min(raw.len())]
    );

    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let dir = pod_dir(
        root.path(),
        "default",
        "podtest",
        "0c1d2e3f-aaaa-bbbb-cccc-000000000001",
        "app",
    );
    // A copy, not a link: a link out of the node's log directories is refused (issue 15,
    // item 7), and the container has exited, so its log is complete.
    std::fs::copy(&log, dir.join("0.log")).unwrap();
    let cfg = config(root.path(), state.path(), "");
    let out = state.path().join("out.jsonl");
    let events = collect_until(
        &cfg,
        &out,
        None,
        fast_options(),
        Duration::from_secs(20),
        |e| e.len() >= 4,
    );
    cleanup();
    assert_eq!(events.len(), 4, "{events:#?}");
    let now = kinsight_agent::run::now_ms();
    for e in &events {
        assert!(
            (now - e.timestamp).abs() < 120_000,
            "timestamp from the +00:00 time: {}",
            e.timestamp
        );
    }
    let m: Vec<serde_json::Value> = events.iter().map(message).collect();
    assert_eq!(m[0]["log"], "plain line");
    let err = m
        .iter()
        .find(|m| m["stream"] == "stderr")
        .unwrap_or_else(|| panic!("no stderr line in {m:#?}\nraw podman log:\n{raw}"));
    assert_eq!(err["log"], "to stderr");
    let long = m
        .iter()
        .find(|m| m["log"].as_str().unwrap().starts_with("xxx"))
        .unwrap();
    assert_eq!(
        long["log"].as_str().unwrap().len(),
        20_000,
        "8 KiB P chunks joined"
    );
    assert_eq!(long["_p"], "F");
    assert!(long["time"].as_str().unwrap().ends_with("+00:00"));
    let json = m.iter().find(|m| m.get("log_processed").is_some()).unwrap();
    assert_eq!(json["log_processed"]["level"], "warn");
}
