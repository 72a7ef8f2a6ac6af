//! The agent shipping to a real `kinsight server` process: with the ingest-only token the
//! deployment hands it (`KINSIGHT_INGEST_TOKEN`), through a server outage (the spool holds the
//! samples) and a SIGKILL of the agent (the spool is replayed at the next start).

use crate::server::{ServerProc, TOKEN};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INGEST: &str = "agents-ingest-token-0123456789";

fn config(dir: &std::path::Path, server: &str, interval: u64) -> std::path::PathBuf {
    let p = dir.join("agent.json");
    std::fs::write(
        &p,
        format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "ship", "metrics_collection_interval": {interval}}}}}}},
                "kinsight": {{"server_url": "{server}", "state_dir": "{}", "logs": {{"enabled": false}}}}}}"#,
            dir.join("state").display()
        ),
    )
    .unwrap();
    p
}

fn node_events(server: &str, token: &str) -> Result<Vec<Value>, u16> {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{server}/v1/events?group=%2Fkinsight%2Fship%2Fperformance&direction=forward&limit=10000&start=0"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let code: u16 = code.trim().parse().unwrap();
    if code != 200 {
        return Err(code);
    }
    let v: Value = serde_json::from_str(body).unwrap();
    Ok(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["message"].as_str().unwrap().contains(r#""Type":"Node""#))
        .cloned()
        .collect())
}

#[test]
fn agent_ships_with_the_ingest_token_and_survives_outages_and_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("KINSIGHT_INGEST_TOKEN", INGEST.to_string())];
    let server = ServerProc::start(&data, &[], &env);
    let url = server.url.clone();

    // One collection with --once is delivered before the agent exits.
    let cfg = config(dir.path(), &url, 1);
    let out = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(["agent", "--once", "--sample-interval", "300ms", "--config"])
        .arg(&cfg)
        .env("KINSIGHT_TOKEN", INGEST)
        .env("HOST_NAME", "node-a")
        .env_remove("HOST_IP")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = node_events(&url, TOKEN).unwrap();
    assert_eq!(first.len(), 1, "the --once collection is stored");
    assert_eq!(first[0]["logStreamName"], "node-a");
    // The ingest token can send but not read.
    assert_eq!(node_events(&url, INGEST).unwrap_err(), 403);

    // The server goes away; the agent keeps collecting into its spool.
    let port = url.rsplit(':').next().unwrap().to_string();
    server.kill9();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(["agent", "--config"])
        .arg(&cfg)
        .env("KINSIGHT_TOKEN", INGEST)
        .env("HOST_NAME", "node-a")
        .env_remove("HOST_IP")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // kill -9 the agent while it holds unsent samples; start it again.
    agent.kill().unwrap();
    agent.wait().unwrap();
    let spooled = std::fs::read_dir(dir.path().join("state/spool"))
        .unwrap()
        .count();
    assert!(spooled >= 2, "samples waited in the spool: {spooled}");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(["agent", "--config"])
        .arg(&cfg)
        .env("KINSIGHT_TOKEN", INGEST)
        .env("HOST_NAME", "node-a")
        .env_remove("HOST_IP")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // The server comes back on the same address and data directory.
    let server = ServerProc::start(&data, &["--listen", &format!("127.0.0.1:{port}")], &env);
    assert_eq!(server.url, url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = 0;
    while Instant::now() < deadline {
        got = node_events(&url, TOKEN).unwrap().len();
        if got >= 1 + spooled + 3
            && std::fs::read_dir(dir.path().join("state/spool"))
                .unwrap()
                .count()
                == 0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = Command::new("kill").arg(agent.id().to_string()).status();
    agent.wait().unwrap();
    assert!(
        got >= 1 + spooled + 3,
        "spooled samples and new ones arrived: {got} Node events, {spooled} were spooled"
    );
    let events = node_events(&url, TOKEN).unwrap();
    let mut stamps: Vec<i64> = events
        .iter()
        .map(|e| e["timestamp"].as_i64().unwrap())
        .collect();
    let n = stamps.len();
    stamps.dedup();
    assert_eq!(stamps.len(), n, "no collection stored twice");
}
