//! HTTPS end to end (issue 15 item 16): `kinsight server --tls-cert --tls-key` with a CA made
//! here (rcgen; no key is committed), the agent shipping to it with `kinsight.server_ca_file`,
//! the CLI reading with `--ca-file` / `KINSIGHT_CA_FILE`, a wrong CA refused with an error that
//! says so, and `kinsight up` serving HTTPS to its console and its in-process agent.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::server::{ServerProc, TOKEN};

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA and a server certificate for localhost / 127.0.0.1, written under `dir/name`.
fn pki(dir: &Path, name: &str) -> Pki {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let p = Pki {
        ca: d.join("ca.crt"),
        cert: d.join("tls.crt"),
        key: d.join("tls.key"),
    };
    std::fs::write(&p.ca, ca_cert.pem()).unwrap();
    std::fs::write(&p.cert, cert.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

fn kinsight() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kinsight"));
    c.env_remove("KINSIGHT_CA_FILE").env_remove("HOST_IP");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn agent_config(dir: &Path, server: &str, ca: Option<&Path>) -> PathBuf {
    let p = dir.join("agent.json");
    let ca = ca
        .map(|c| format!(r#""server_ca_file": "{}","#, c.display()))
        .unwrap_or_default();
    std::fs::write(
        &p,
        format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "tls", "metrics_collection_interval": 1}}}}}},
                "kinsight": {{"server_url": "{server}", {ca} "state_dir": "{}", "logs": {{"enabled": false}}}}}}"#,
            dir.join("state").display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn agent_and_cli_over_https_verify_the_server_against_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let wrong = pki(dir.path(), "wrong");
    let server = ServerProc::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            good.cert.to_str().unwrap(),
            "--tls-key",
            good.key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    // The agent ships one collection over HTTPS, trusting the CA of kinsight.server_ca_file.
    let cfg = agent_config(dir.path(), &server.url, Some(&good.ca));
    let out = kinsight()
        .args(["agent", "--once", "--sample-interval", "300ms", "--config"])
        .arg(&cfg)
        .env("KINSIGHT_TOKEN", TOKEN)
        .env("HOST_NAME", "node-tls")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // The CLI reads it back with --ca-file, and with KINSIGHT_CA_FILE.
    let out = kinsight()
        .args(["logs", "groups", "--server", &server.url, "--ca-file"])
        .arg(&good.ca)
        .env("KINSIGHT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("/kinsight/tls/performance"),
        "{}",
        text(&out)
    );
    let out = kinsight()
        .args([
            "logs",
            "tail",
            "/kinsight/tls/performance",
            "--server",
            &server.url,
        ])
        .env("KINSIGHT_CA_FILE", &good.ca)
        .env("KINSIGHT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("node-tls"), "{}", text(&out));

    // Another CA: the CLI refuses the server and says why.
    let out = kinsight()
        .args(["logs", "groups", "--server", &server.url, "--ca-file"])
        .arg(&wrong.ca)
        .env("KINSIGHT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("invalid peer certificate") && err.contains("not trusted"),
        "{err}"
    );
    // No CA file: the built-in roots do not know our CA either.
    let out = kinsight()
        .args(["logs", "groups", "--server", &server.url])
        .env("KINSIGHT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("not trusted"), "{}", text(&out));

    // The agent with the wrong CA keeps its data and logs why it cannot ship.
    let wrong_dir = dir.path().join("wrong-agent");
    std::fs::create_dir_all(&wrong_dir).unwrap();
    let cfg = agent_config(&wrong_dir, &server.url, Some(&wrong.ca));
    let mut agent = kinsight()
        .args(["agent", "--config"])
        .arg(&cfg)
        .env("KINSIGHT_TOKEN", TOKEN)
        .env("HOST_NAME", "node-wrong")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = agent.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.contains("shipping to") && l.contains("not trusted") => break true,
            Ok(l) => seen.push(l),
            Err(_) if Instant::now() > deadline => break false,
            Err(_) => {}
        }
    };
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(found, "no clear error from the agent: {seen:#?}");

    // A CA file for an http:// server is a configuration error naming the key.
    let cfg = agent_config(&wrong_dir, "http://127.0.0.1:1", Some(&wrong.ca));
    let out = kinsight()
        .args(["agent", "--check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("kinsight.server_ca_file"),
        "{}",
        text(&out)
    );
}

#[test]
fn kinsight_up_serves_https_to_its_console_and_its_agent() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), "up");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut up = kinsight()
        .args(["up", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--interval", "1s"])
        .arg("--tls-cert")
        .arg(&p.cert)
        .arg("--tls-key")
        .arg(&p.key)
        .env_remove("KINSIGHT_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = BufReader::new(up.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
    });
    let url = first.trim().rsplit(' ').next().unwrap().to_string();
    assert!(
        url.starts_with(&format!("https://127.0.0.1:{port}/?token=")),
        "{first}"
    );
    let token = url.split("token=").nth(1).unwrap().to_string();
    let server = format!("https://127.0.0.1:{port}");
    // The in-process agent ships its host's metrics over the same HTTPS listener.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last;
    let ok = loop {
        let out = kinsight()
            .args(["logs", "groups", "--server", &server, "--ca-file"])
            .arg(&p.ca)
            .env("KINSIGHT_TOKEN", &token)
            .output()
            .unwrap();
        last = text(&out);
        if out.status.success() && last.contains("/kinsight/local/performance") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = up.kill();
    let _ = up.wait();
    assert!(
        ok,
        "no performance events over HTTPS from up's agent: {last}"
    );
}
