//! What the server benchmarks share: the release `kinsight` binary started as a real server
//! process, and its CPU time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const TOKEN: &str = "bench-token-0123456789abcdef";

/// `KINSIGHT_BIN`, or `target/release/kinsight` next to this bench binary
/// (`target/release/deps/<bench>-…`).
pub fn kinsight_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KINSIGHT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("kinsight"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --release --bin kinsight` first (or set KINSIGHT_BIN)",
        bin.display()
    );
    bin
}

/// A `kinsight server` on a free loopback port with the admin token [`TOKEN`]; killed on drop.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`, the Host header requests are signed with.
    #[allow(dead_code)]
    pub host: String,
}

impl Server {
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_with(data, &[], env)
    }

    /// [`Server::start`] with more arguments (`--object-store s3://…`).
    pub fn start_with(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(kinsight_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("KINSIGHT_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kinsight server");
        // The first line on stdout ends with the address it listens on.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        let host = url.trim_start_matches("http://").to_string();
        Server { child, url, host }
    }

    /// User + system CPU seconds of the server process so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        ticks / clock_ticks_per_second()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// USER_HZ (clock ticks of /proc/<pid>/stat), from `getconf CLK_TCK`; 100 on Linux.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Sends one event to `writer` and polls `/v1/events` of its stream on `reader` (the same
/// server, or another replica) until the event is there; returns (ack ms, readable ms).
#[allow(dead_code)] // not every bench measures freshness
pub async fn write_to_read(
    c: &reqwest::Client,
    writer: &str,
    reader: &str,
    group: &str,
    stream: &str,
) -> (f64, f64) {
    let marker = format!("{stream}-{}", rand::random::<u64>());
    let now = chrono::Utc::now().timestamp_millis();
    let body = serde_json::json!([{"logGroupName": group, "logStreamName": stream, "timestamp": now, "message": marker}]);
    let t0 = std::time::Instant::now();
    let r = c
        .post(format!("{writer}/v1/ingest"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let ack = t0.elapsed();
    loop {
        let page: serde_json::Value = c
            .get(format!("{reader}/v1/events"))
            .bearer_auth(TOKEN)
            .query(&[("group", group), ("stream", stream), ("limit", "1")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(serde_json::Value::Null);
        if page["events"][0]["message"] == marker.as_str() {
            return (
                ack.as_secs_f64() * 1000.0,
                t0.elapsed().as_secs_f64() * 1000.0,
            );
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "{stream} never readable on {reader}"
        );
    }
}
