//! The kubelet over real TLS (issue 15, item 9). The test makes a cluster CA and the kubelet's
//! serving certificate (rcgen); a rustls server serves the recorded `/pods` answer (the real
//! kubelet cannot run here). By default the agent verifies the certificate against the
//! cluster CA and sends the service-account token only once it is accepted.

use super::fake_kube::FakeKube;
use super::fixtures::{docs, kube};
use kinsight_agent::kubelet::{KubeletClient, KubeletError};
use kinsight_agent::run::MetricsLoop;
use kinsight_model::config::AgentConfig;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::Path;

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.service-account-token.signature";

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A serving certificate for 127.0.0.1 (the kubelet is reached at HOST_IP) signed by `ca`.
fn kubelet_cert(
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "ip-10-0-1-23@1714557600");
    let cert = params.signed_by(&key, ca).unwrap();
    (
        vec![cert.der().clone(), ca.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// The agent's config for this kubelet, with the service account's files in `sa`.
fn config(kubelet: &str, api: Option<&str>, sa: &Path, extra: &str) -> AgentConfig {
    let api = api.map_or(String::new(), |a| format!(r#""api_server_url": "{a}","#));
    AgentConfig::from_json_with_env(
        &format!(
            r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "it"}}}}}},
                "kinsight": {{"kubelet_url": "{kubelet}", {api}
                             "kubelet_token_file": "{}", "kubelet_ca_file": "{}" {extra}}}}}"#,
            sa.join("token").display(),
            sa.join("ca.crt").display()
        ),
        &|k| (k == "HOST_NAME").then(|| "node-x".to_string()),
    )
    .unwrap()
}

fn client(cfg: &AgentConfig) -> KubeletClient {
    let k = &cfg.kinsight;
    KubeletClient::new(
        k.kubelet_url.as_deref().unwrap(),
        Some(k.kubelet_token_file.clone()),
        Some(k.kubelet_ca_file.clone()),
        k.kubelet_insecure_skip_verify,
    )
    .unwrap()
}

fn pods_json() -> String {
    kube(
        "pods.json",
        &[("NODE", "node-x"), ("API_APP_RESTARTS", "0")],
    )
}

#[tokio::test]
async fn the_kubelet_is_verified_against_the_cluster_ca_and_gets_the_token_only_then() {
    let cluster_ca = ca("kubernetes");
    let (chain, key) = kubelet_cert(&cluster_ca);
    let kubelet = FakeKube::start_tls(pods_json(), chain, key).await;
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("token"), format!("{TOKEN}\n")).unwrap();

    // Default settings and the cluster's CA: verified, and the token goes with the request.
    std::fs::write(sa.path().join("ca.crt"), cluster_ca.pem()).unwrap();
    let cfg = config(&kubelet.url, None, sa.path(), "");
    assert!(
        !cfg.kinsight.kubelet_insecure_skip_verify,
        "verification is the default"
    );
    let pods = client(&cfg).pods().await.unwrap();
    assert_eq!(pods.len(), 4);
    assert_eq!(
        kubelet.state.lock().unwrap().kubelet_auth,
        vec![Some(format!("Bearer {TOKEN}"))]
    );

    // Another CA (a kubelet that signs its own certificate looks like this): refused in the
    // handshake, so no request — and no token — reaches the server.
    std::fs::write(sa.path().join("ca.crt"), ca("some other CA").pem()).unwrap();
    let err = client(&cfg).pods().await.unwrap_err();
    assert!(matches!(err, KubeletError::Untrusted { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in [
        "not trusted",
        "kinsight.kubelet_ca_file",
        "kinsight.kubelet_insecure_skip_verify",
        sa.path().join("ca.crt").to_str().unwrap(),
        "UnknownIssuer",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    // The server notices the refused handshake on its own time.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while kubelet.state.lock().unwrap().handshake_failures == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the client did not connect and refuse"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        kubelet.state.lock().unwrap().kubelet_auth.len(),
        1,
        "a request reached the kubelet"
    );

    // No readable CA: nothing is trusted, and the error says why.
    let missing = config(&kubelet.url, None, &sa.path().join("not-mounted"), "");
    let msg = client(&missing).pods().await.unwrap_err().to_string();
    assert!(msg.contains("cannot be read"), "{msg}");
    assert_eq!(kubelet.state.lock().unwrap().kubelet_auth.len(), 1);

    // Skipping the verification is an explicit option, and works with the wrong CA too.
    let skip = config(
        &kubelet.url,
        None,
        sa.path(),
        r#", "kubelet_insecure_skip_verify": true"#,
    );
    assert_eq!(client(&skip).pods().await.unwrap().len(), 4);
    assert_eq!(kubelet.state.lock().unwrap().kubelet_auth.len(), 2);
}

/// A kubelet whose certificate the cluster CA did not sign: the agent reads this node's pods
/// from the API server (verified against the same CA) and says what to set.
#[tokio::test]
async fn an_untrusted_kubelet_falls_back_to_the_api_server() {
    let self_signed = ca("ip-10-0-1-23-ca@1714557600");
    let (chain, key) = kubelet_cert(&self_signed);
    let kubelet = FakeKube::start_tls(pods_json(), chain, key).await;
    let api = FakeKube::start(pods_json()).await;
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("token"), TOKEN).unwrap();
    std::fs::write(sa.path().join("ca.crt"), ca("kubernetes").pem()).unwrap();
    let mut ml = MetricsLoop::new(&config(&kubelet.url, Some(&api.url), sa.path(), ""));
    let feed = ml.pod_feed();
    let (_, evs) = ml.tick().await;
    let evs = docs(evs);
    let node = evs.iter().find(|e| e["Type"] == "Node").unwrap();
    assert_eq!(
        node["node_number_of_running_pods"], 3,
        "pods came from the API server"
    );
    assert_eq!(feed.borrow().len(), 4);
    assert!(kubelet.state.lock().unwrap().kubelet_auth.is_empty());
}
