//! The Secret of the server's and agents' tokens, made once in the cluster by the Helm chart's
//! hook Job (`kinsight tokens ensure-secret`, issue 15, item 14) against a test server
//! standing in for the API server.

use super::fake_kube::FakeKube;
use base64::Engine;
use kinsight_agent::apiserver::{ApiServer, SecretOutcome, TOKEN_CHARS};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn keys() -> Vec<String> {
    vec!["admin-token".into(), "ingest-token".into()]
}

fn keep() -> BTreeMap<String, String> {
    BTreeMap::from([("helm.sh/resource-policy".into(), "keep".into())])
}

fn decoded(secret: &Value, key: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][key].as_str().unwrap())
        .unwrap();
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn the_token_secret_is_made_once_and_never_overwritten() {
    let fake = FakeKube::start(String::new()).await;
    let api = ApiServer::connect(&fake.url, None, None).unwrap();
    let labels = BTreeMap::from([("app.kubernetes.io/name".into(), "kinsight".into())]);
    let secret = || {
        fake.state.lock().unwrap().secrets[&("obs".to_string(), "kinsight-tokens".to_string())]
            .clone()
    };

    let made = api
        .ensure_token_secret("obs", "kinsight-tokens", &keys(), &labels, &keep())
        .await
        .unwrap();
    assert_eq!(made, SecretOutcome::Created);
    let first = secret();
    let (admin, ingest) = (
        decoded(&first, "admin-token"),
        decoded(&first, "ingest-token"),
    );
    assert_eq!(admin.len(), TOKEN_CHARS);
    assert!(admin.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(admin, ingest);
    assert_eq!(
        first["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(
        first["metadata"]["labels"]["app.kubernetes.io/name"],
        "kinsight"
    );

    // Every later run (an upgrade, a re-sync, a second render applied) keeps it as it is.
    for _ in 0..2 {
        let again = api
            .ensure_token_secret("obs", "kinsight-tokens", &keys(), &labels, &keep())
            .await
            .unwrap();
        assert_eq!(again, SecretOutcome::Kept);
    }
    assert_eq!(secret(), first);
    assert_eq!(
        fake.state.lock().unwrap().secret_writes,
        1,
        "nothing was written again"
    );

    // One an operator made, with one key only and no annotation: completed, not replaced.
    fake.state.lock().unwrap().secrets.insert(
        ("obs".into(), "kinsight-tokens".into()),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "kinsight-tokens", "namespace": "obs"},
               "data": {"admin-token": base64::engine::general_purpose::STANDARD.encode("chosen-by-the-operator")}}),
    );
    let done = api
        .ensure_token_secret("obs", "kinsight-tokens", &keys(), &labels, &keep())
        .await
        .unwrap();
    assert_eq!(
        done,
        SecretOutcome::Completed {
            added: vec!["ingest-token".into()]
        }
    );
    let s = secret();
    assert_eq!(decoded(&s, "admin-token"), "chosen-by-the-operator");
    assert_eq!(decoded(&s, "ingest-token").len(), TOKEN_CHARS);
    assert_eq!(
        s["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_an_error_naming_the_request() {
    let api = ApiServer::connect("http://127.0.0.1:9", None, None).unwrap();
    let e = api
        .ensure_token_secret("obs", "kinsight-tokens", &keys(), &BTreeMap::new(), &keep())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("get secret"), "{e}");
}
