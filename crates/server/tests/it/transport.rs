//! The transport over real sockets (issue 15 items 2 and 16): clients that never finish their
//! headers or bodies are dropped, idle connections are closed, the connection and request caps
//! refuse clearly and the server serves again afterwards; HTTPS with a CA generated here
//! (rcgen), HTTP/2 by ALPN, a wrong CA refused, certificates reloaded from their files.
//!
//! Every wait is a poll with a deadline far above the configured limit, so a slow machine
//! makes a test slower, not red; a test fails only when the server keeps what it must drop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kinsight_server::transport::TlsCerts;
use kinsight_server::{Server, ServerConfig, ServerError, TlsConfig, TransportConfig};
use kinsight_store::StoreConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Far above every limit configured in these tests.
const DEADLINE: Duration = Duration::from_secs(20);

struct Running {
    url: String,
    addr: std::net::SocketAddr,
    tls: Option<Arc<TlsCerts>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), ServerError>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

async fn start(transport: TransportConfig) -> Running {
    start_with(transport, Default::default()).await
}

async fn start_with(transport: TransportConfig, limits: kinsight_server::state::Limits) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreConfig::new(dir.path()),
        admin_token: Some(ADMIN.into()),
        transport,
        limits,
        query: Default::default(),
    };
    let server = Server::bind(config, vec![]).await.unwrap();
    let (url, addr, tls) = (server.url(), server.addr, server.tls.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    Running {
        url,
        addr,
        tls,
        stop: Some(tx),
        handle,
        _dir: dir,
    }
}

fn limits() -> TransportConfig {
    TransportConfig {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        ..TransportConfig::default()
    }
}

/// Reads until the server closes the connection (EOF or reset) or `DEADLINE` passes; returns
/// what was read and whether it was closed.
async fn read_until_closed(s: &mut TcpStream) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The position to follow a group from (`seq` of the events API).
async fn last_seq(c: &reqwest::Client, url: &str, group: &str) -> u64 {
    c.get(format!("{url}/v1/events?group={group}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["seq"]
        .as_u64()
        .unwrap()
}

async fn healthz(url: &str) -> reqwest::StatusCode {
    reqwest::get(format!("{url}/healthz"))
        .await
        .unwrap()
        .status()
}

/// Polls `/healthz` on fresh connections until one is answered 200, failing with `what` after
/// [`DEADLINE`].
async fn served_again(url: &str, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let fresh = reqwest::Client::new();
        let ok = fresh
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{what} after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_headers_are_closed() {
    let server = start(limits()).await;
    // What was tried against the release binary: many connections that send half a request
    // and wait. Some stop in the request line, some in the headers, some send nothing.
    let mut conns = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let partial: &[u8] = match i % 3 {
            0 => b"GET /healthz HT",
            1 => b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: appl",
            _ => b"",
        };
        s.write_all(partial).await.unwrap();
        conns.push(s);
    }
    // Meanwhile the server answers.
    assert_eq!(healthz(&server.url).await, 200);
    let started = Instant::now();
    let results = futures::future::join_all(conns.iter_mut().map(read_until_closed)).await;
    let open = results.iter().filter(|(_, closed)| !closed).count();
    assert_eq!(
        open, 0,
        "{open} of 300 unfinished connections still open after {DEADLINE:?}"
    );
    assert!(
        results.iter().all(|(text, _)| text.is_empty()),
        "no request was answered: {:?}",
        results.iter().find(|(t, _)| !t.is_empty())
    );
    eprintln!("all closed after {:?}", started.elapsed());
    assert_eq!(healthz(&server.url).await, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_but_long_polls_are_not() {
    let server = start(TransportConfig {
        idle_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    // A keep-alive connection that made one request and then waits.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (text, closed) = read_until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "the idle connection was kept past the idle timeout");

    // A long-poll that waits longer than both the idle and the header timeouts is a request in
    // progress: it ends when its wait does, with an answer.
    let url = server.url.clone();
    let c = reqwest::Client::new();
    let post = c
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(ADMIN)
        .json(&json!([event("/lp", "a", now_ms(), "x")]))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    let seq = last_seq(&c, &url, "/lp").await;
    let started = Instant::now();
    let res = c
        .get(format!("{url}/v1/follow?group=/lp&after={seq}&waitMs=2500"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert!(v["events"].as_array().unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(2500));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off_with_408() {
    let server = start(limits()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // One byte every 100 ms: never finished within the deadline.
    let trickle = tokio::spawn(async move {
        for _ in 0..400 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let closed = loop {
        match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    };
    trickle.abort();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "RequestTimeout");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("body read timeout"),
        "{body}"
    );
    assert!(closed, "the connection stays open after the cut-off body");
    assert_eq!(healthz(&server.url).await, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_refuses_clearly_and_frees_up() {
    let server = start(TransportConfig {
        max_connections: 4,
        ..limits()
    })
    .await;
    // Four keep-alive connections, each answered once (so each is surely accepted), held.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    // The fifth is refused at once: a 503 and closed.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let (text, closed) = read_until_closed(&mut s).await;
    assert!(closed);
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert!(text.contains("\"code\":\"ServiceUnavailable\""), "{text}");
    assert!(text.contains("max-connections"), "{text}");
    // One held connection goes away: the server serves new ones again.
    drop(held.pop());
    served_again(&server.url, "no connection accepted after one was freed").await;
    drop(held);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_cap_answers_503_with_retry_after_and_frees_up() {
    let server = start(TransportConfig {
        max_requests: 2,
        max_long_polls: 2,
        body_read_timeout: Duration::from_secs(60),
        ..limits()
    })
    .await;
    let url = server.url.clone();
    let c = reqwest::Client::new();
    let ingested = c
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(ADMIN)
        .json(&json!([event("/cap", "a", now_ms(), "x")]))
        .send()
        .await
        .unwrap();
    assert_eq!(ingested.status(), 200);
    let acked = ingested.json::<Value>().await.unwrap()["seq"]
        .as_u64()
        .unwrap();
    // Follow from the acknowledged batch on (not from what a read saw, which on a loaded
    // machine may be older: the polls would then return at once with the event).
    let seq = last_seq(&c, &url, "/cap").await.max(acked);
    // Two long-polls take both long-poll places, none of the request places (issue 15: a
    // read token must not starve ingest with waiting polls). They wait the longest the API
    // allows — longer than any deadline below — so that a slow machine cannot see them end
    // before the probe is refused.
    let follow = format!(
        "GET /v1/follow?group=/cap&after={seq}&waitMs=60000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
    );
    let mut long = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(follow.as_bytes()).await.unwrap();
        long.push(s);
    }
    // A third long-poll is refused once both wait; ordinary requests are still served. (The
    // probe waits briefly: on a loaded machine it may get in before the two, and must not then
    // hold the place it took for long.)
    let probe = follow.replace("waitMs=60000", "waitMs=100");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(probe.as_bytes()).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a third long-poll was never refused"
        );
    }
    assert_eq!(
        c.get(format!("{url}/v1/groups"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Two requests whose bodies never arrive take both request places (raw connections, so
    // that closing them is up to us).
    let mut polls = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let req = format!(
            "POST /v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n["
        );
        s.write_all(req.as_bytes()).await.unwrap();
        polls.push(s);
    }
    // Once both are in their handlers, the next request is refused.
    let deadline = Instant::now() + DEADLINE;
    let refused = loop {
        let r = c
            .get(format!("{url}/v1/groups"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            break r;
        }
        assert!(Instant::now() < deadline, "never refused: {}", r.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "ServiceUnavailable");
    assert!(body["message"].as_str().unwrap().contains("max-requests"));
    // The CloudWatch API gets its own error shape.
    let cw = c
        .post(format!("{url}/"))
        .header("x-amz-target", "Logs_20140328.DescribeLogGroups")
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(cw.status(), 503);
    assert_eq!(cw.headers()["retry-after"], "1");
    let body: Value = cw.json().await.unwrap();
    assert_eq!(body["__type"], "ServiceUnavailableException");
    // The liveness probe is never refused.
    assert_eq!(healthz(&url).await, 200);
    // The stalled requests go away: requests are served again.
    drop(polls);
    drop(long);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = c
            .get(format!("{url}/v1/groups"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {}", r.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_long_polls_and_event_streams() {
    // One long-poll at most: a 503 to a second one tells that the first is in its handler.
    let server = start(TransportConfig {
        max_long_polls: 1,
        ..limits()
    })
    .await;
    let url = server.url.clone();
    let c = reqwest::Client::new();
    c.post(format!("{url}/v1/ingest"))
        .bearer_auth(ADMIN)
        .json(&json!([event("/sd", "a", now_ms(), "x")]))
        .send()
        .await
        .unwrap();
    // An event stream: once its headers are out it no longer counts against the cap.
    let tail = c
        .get(format!("{url}/v1/tail?group=/sd"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let seq = last_seq(&c, &url, "/sd").await;
    let poll = tokio::spawn({
        let (c, url) = (c.clone(), url.clone());
        async move {
            c.get(format!(
                "{url}/v1/follow?group=/sd&after={seq}&waitMs=60000"
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
        }
    });
    let deadline = Instant::now() + DEADLINE;
    while c
        .get(format!("{url}/v1/follow?group=/sd"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .status()
        != 503
    {
        assert!(Instant::now() < deadline, "the long-poll never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
    // The long-poll was answered, although its wait had 60 s to go: ended by the shutdown, not
    // cut at the 25 s shutdown timeout (which would be a connection error here).
    let answered = tokio::time::timeout(DEADLINE, poll)
        .await
        .expect("long-poll ended")
        .unwrap()
        .expect("long-poll answered");
    assert_eq!(answered.status(), 200);
    let rest = tokio::time::timeout(DEADLINE, tail.bytes()).await;
    assert!(rest.is_ok(), "the event stream did not end");
}

// --- TLS ----------------------------------------------------------------------------------

pub struct Ca {
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A CA of our own, made at test time (no private key is committed).
pub fn new_ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

impl Ca {
    /// A server certificate for localhost / 127.0.0.1: (certificate PEM, key PEM).
    pub fn server_cert(&self) -> (String, String) {
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn client_trusting(ca: &Ca) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
}

fn write_pair(dir: &std::path::Path, (cert, key): &(String, String)) -> TlsConfig {
    // Replace, as a Secret update or cert-manager does: a new file renamed over the old.
    for (name, text) in [("tls.crt", cert), ("tls.key", key)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    TlsConfig::new(dir.join("tls.crt"), dir.join("tls.key"))
}

fn error_text(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_http2_and_http1_and_a_wrong_ca_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let ca = new_ca("kinsight test CA");
    let tls = write_pair(certs.path(), &ca.server_cert());
    let server = start(TransportConfig {
        tls: Some(tls),
        ..limits()
    })
    .await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    let h2 = client_trusting(&ca).build().unwrap();
    let r = h2
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
    let ingest = h2
        .post(format!("{}/v1/ingest", server.url))
        .bearer_auth(ADMIN)
        .json(&json!([event("/tls", "a", now_ms(), "over https")]))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 200);

    let h1 = client_trusting(&ca).http1_only().build().unwrap();
    let r = h1
        .get(format!("{}/v1/events?group=/tls", server.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["events"][0]["message"], "over https");

    // A client that trusts another CA refuses the server, and says why.
    let other = new_ca("someone else");
    let e = client_trusting(&other)
        .build()
        .unwrap()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap_err();
    let text = error_text(&e);
    assert!(text.contains("invalid peer certificate"), "{text}");
    // Plain HTTP to the TLS port gets no answer.
    assert!(
        reqwest::get(format!("http://{}/healthz", server.addr))
            .await
            .is_err()
    );
    // A handshake that never completes is dropped like unfinished headers.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let (_, closed) = read_until_closed(&mut s).await;
    assert!(closed, "an unfinished TLS handshake is kept open");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_certificate_files_are_served_to_new_connections() {
    let certs = tempfile::tempdir().unwrap();
    let first = new_ca("first CA");
    let mut tls = write_pair(certs.path(), &first.server_cert());
    tls.reload_interval = Duration::from_millis(100);
    let server = start(TransportConfig {
        tls: Some(tls),
        ..limits()
    })
    .await;
    let trusts_first = client_trusting(&first).build().unwrap();
    assert_eq!(
        trusts_first
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The files are replaced by a pair of another CA: a new connection soon sees it.
    let second = new_ca("second CA");
    write_pair(certs.path(), &second.server_cert());
    let deadline = Instant::now() + DEADLINE;
    loop {
        // A new client each time: a new connection, a new handshake.
        let c = client_trusting(&second).build().unwrap();
        if c.get(format!("{}/healthz", server.url))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = client_trusting(&first)
        .build()
        .unwrap()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap_err();
    assert!(error_text(&e).contains("invalid peer certificate"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_new_pair_keeps_the_served_one() {
    let certs = tempfile::tempdir().unwrap();
    let ca = new_ca("CA");
    let good = ca.server_cert();
    let mut tls = write_pair(certs.path(), &good);
    // Reloads are driven by the test here, not by the timer.
    tls.reload_interval = Duration::from_secs(3600);
    let server = start(TransportConfig {
        tls: Some(tls),
        ..limits()
    })
    .await;
    let reloader = server.tls.clone().unwrap();
    assert!(!reloader.reload().unwrap(), "unchanged files are no news");
    let get = || async {
        client_trusting(&ca)
            .build()
            .unwrap()
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .map(|r| r.status())
    };
    assert_eq!(get().await.unwrap(), 200);

    // A key that does not belong to the certificate: refused, named, the old pair stays.
    let other = ca.server_cert();
    write_pair(certs.path(), &(good.0.clone(), other.1.clone()));
    let e = reloader.reload().unwrap_err().to_string();
    assert!(e.contains("does not fit") && e.contains("tls.key"), "{e}");
    assert_eq!(get().await.unwrap(), 200);
    // Not PEM at all.
    write_pair(certs.path(), &("garbage".into(), other.1.clone()));
    let e = reloader.reload().unwrap_err().to_string();
    assert!(
        e.contains("tls.crt") && e.contains("no PEM certificate"),
        "{e}"
    );
    assert_eq!(get().await.unwrap(), 200);
    // A good pair again is taken.
    write_pair(certs.path(), &other);
    assert!(reloader.reload().unwrap());
    assert_eq!(get().await.unwrap(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_server_with_unreadable_tls_files_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreConfig::new(dir.path()),
        admin_token: Some(ADMIN.into()),
        transport: TransportConfig {
            tls: Some(TlsConfig::new(
                dir.path().join("missing.crt"),
                dir.path().join("missing.key"),
            )),
            ..TransportConfig::default()
        },
        limits: Default::default(),
        query: Default::default(),
    };
    let e = Server::bind(config, vec![])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.crt"), "{e}");
}

/// Issue 15 (review): a client that stops reading its response holds its connection only for
/// the write timeout. Here the only connection place is taken by a client that pipelines
/// requests for 1 MiB pages and reads nothing; once the server gives up on it, the place is
/// free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_responses_is_dropped() {
    let server = start(TransportConfig {
        max_connections: 1,
        write_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let url = server.url.clone();
    // (A client of its own, whose pooled connection must not hold the only place.)
    ingest_large(&url, "/w", 5).await;
    let one = format!(
        "GET /v1/events?group=/w&limit=100 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
    );
    // Connect (once the earlier client's connection has gone), pipeline requests for 64 pages
    // and read only the first bytes of the first answer.
    let deadline = Instant::now() + DEADLINE;
    let reader = loop {
        if let Ok(mut s) = socket_connect(server.addr).await {
            for _ in 0..64 {
                if s.write_all(one.as_bytes()).await.is_err() {
                    break;
                }
            }
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).await.is_ok() && &head == b"HTTP/1.1 200" {
                break s;
            }
        }
        assert!(Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // …and holds the only place meanwhile.
    let held = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .send()
        .await
        .map(|r| r.status());
    assert!(
        held.is_err() || held.as_ref().is_ok_and(|s| *s == 503),
        "{held:?}"
    );
    // Once the server drops it, others are served.
    served_again(
        &url,
        "a client that reads nothing still holds its connection",
    )
    .await;
    drop(reader);
    server.stop().await;
}

/// Review of issue 15: over HTTP/2, a client that keeps a stream's window shut while it sends
/// PINGs (each answered: bytes the server writes) is dropped after the write timeout. Bytes on
/// an HTTP/2 socket are not progress of a response; before, every PING answer counted as such
/// and the response was held for as long as the client liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_whose_window_stays_shut_is_dropped_despite_pings() {
    let server = start(TransportConfig {
        write_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    ingest_large(&server.url, "/h2", 3).await;
    let mut h2 = H2::connect(server.addr, 0).await;
    let _unread = h2
        .get_200(&format!("{}/v1/events?group=/h2&limit=10", server.url))
        .await;
    let (mut pings, conn) = (h2.pings, h2.conn);
    let started = Instant::now();
    loop {
        let pong =
            tokio::time::timeout(Duration::from_secs(2), pings.ping(h2::Ping::opaque())).await;
        if conn.is_finished() || !matches!(pong, Ok(Ok(_))) {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "a response whose window never opened was still held after {DEADLINE:?} of PINGs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// Review of issue 15: an answer waiting for a client that does not read keeps its bytes in
/// the request budget until it has been sent. hyper takes a body's frames whole and drops the
/// body with its last one; handed over in pieces, the answer (and its reservation) stays with
/// the server until it is nearly sent. Two HTTP/2 streams whose window lets one byte through
/// hold two ~1 MB answers of a 2 MiB budget: a third request for a large answer is refused
/// with 503 until they go. Before, the whole answer went to h2's send queue at the first byte
/// of window and its reservation was released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_waiting_for_readers_keep_their_budget_until_sent() {
    let limits = kinsight_server::state::Limits {
        request_memory_bytes: 2 << 20,
        ..Default::default()
    };
    let server = start_with(limits_with_long_writes(), limits).await;
    let url = server.url.clone();
    ingest_large(&url, "/r", 5).await;
    let c = reqwest::Client::new();
    let page_uri = format!("{url}/v1/events?group=/r&limit=100");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut h2 = H2::connect(server.addr, 1).await;
        let body = h2.get_200(&page_uri).await;
        held.push((h2, body));
    }
    let third = c.get(&page_uri).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(
        third.status(),
        503,
        "two unsent answers should fill the budget"
    );
    for (h2, _) in &held {
        h2.conn.abort();
    }
    drop(held);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = c
            .get(&page_uri)
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the budget never came back: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// The default limits, with a write timeout far above the test's run.
fn limits_with_long_writes() -> TransportConfig {
    TransportConfig {
        write_timeout: Duration::from_secs(600),
        ..limits()
    }
}

/// An HTTP/2 client whose streams start with a receive window of `window` bytes, its
/// connection driven by a task of its own.
struct H2 {
    client: h2::client::SendRequest<axum::body::Bytes>,
    pings: h2::PingPong,
    conn: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

impl H2 {
    async fn connect(addr: std::net::SocketAddr, window: u32) -> H2 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (client, mut conn) = h2::client::Builder::new()
            .initial_window_size(window)
            .handshake::<_, axum::body::Bytes>(tcp)
            .await
            .unwrap();
        let pings = conn.ping_pong().expect("PINGs");
        let conn = tokio::spawn(conn);
        let client = client.ready().await.unwrap();
        H2 {
            client,
            pings,
            conn,
        }
    }

    /// GETs `uri` as the admin; asserts 200 and returns the body, unread.
    async fn get_200(&mut self, uri: &str) -> h2::RecvStream {
        let req = axum::http::Request::get(uri)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(())
            .unwrap();
        let (resp, _) = self.client.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body()
    }
}

/// Stores `n` events of 200 KiB in `group` (answers of a page are then about `n` × 200 KiB),
/// through a client that is dropped afterwards.
async fn ingest_large(url: &str, group: &str, n: i64) {
    let big = "x".repeat(200 * 1024);
    let events: Vec<Value> = (0..n)
        .map(|i| event(group, "s", now_ms() - 10 + i, &big))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(ADMIN)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn socket_connect(addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect(addr).await
}
