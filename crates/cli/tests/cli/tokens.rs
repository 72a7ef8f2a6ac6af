//! `kinsight tokens ensure-secret`, the Helm chart's hook Job (issue 15, item 14), against a
//! minimal stand-in for the API server (a real one cannot run here): it creates the Secret
//! once, with the chart's labels and the keep annotation, and leaves an existing one alone.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// Serves `GET`/`POST` of one namespace's Secrets over HTTP/1.1, keeping them in memory.
fn fake_api_server() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let secrets = Arc::new(Mutex::new(Vec::<Value>::new()));
    let store = secrets.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut out) = conn else { continue };
            let store = store.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(out.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (method, path) = {
                        let mut p = line.split_whitespace();
                        (
                            p.next().unwrap_or("").to_string(),
                            p.next().unwrap_or("").to_string(),
                        )
                    };
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let mut s = store.lock().unwrap();
                    let (status, answer) = match method.as_str() {
                        "GET" => {
                            let name = path.rsplit('/').next().unwrap_or_default();
                            match s.iter().find(|x| x["metadata"]["name"] == name) {
                                Some(x) => ("200 OK", x.clone()),
                                None => (
                                    "404 Not Found",
                                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("secrets \"{name}\" not found")}),
                                ),
                            }
                        }
                        "POST" => {
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            s.push(v.clone());
                            ("201 Created", v)
                        }
                        _ => ("405 Method Not Allowed", json!({})),
                    };
                    let text = answer.to_string();
                    let _ = write!(
                        out,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                }
            });
        }
    });
    (url, secrets)
}

fn ensure(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args([
            "tokens",
            "ensure-secret",
            "--name",
            "rel-kinsight-tokens",
            "--namespace",
            "obs",
        ])
        .args([
            "--label",
            "app.kubernetes.io/name=kinsight",
            "--label",
            "app.kubernetes.io/instance=rel",
        ])
        .args(["--api-server", url])
        .output()
        .unwrap()
}

#[test]
fn ensure_secret_creates_the_tokens_once() {
    let (url, secrets) = fake_api_server();
    let out = ensure(&url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "secret obs/rel-kinsight-tokens: created with new tokens under admin-token, ingest-token"
    );
    let made = secrets.lock().unwrap()[0].clone();
    assert_eq!(
        made["metadata"]["labels"]["app.kubernetes.io/instance"],
        "rel"
    );
    assert_eq!(
        made["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    for k in ["admin-token", "ingest-token"] {
        assert!(made["data"][k].as_str().unwrap().len() >= 64, "{made}");
    }
    let again = ensure(&url);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("unchanged"));
    assert_eq!(secrets.lock().unwrap().len(), 1, "created once");
    assert_eq!(secrets.lock().unwrap()[0], made);
}

#[test]
fn ensure_secret_names_an_unreachable_api_server() {
    let out = ensure("http://127.0.0.1:9");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("API server request `get secret` failed"),
        "{err}"
    );
}
