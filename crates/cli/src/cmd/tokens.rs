//! `kinsight tokens ensure-secret`: makes the Secret holding the server's admin token and the
//! agents' ingest token, once (issue 15, item 14). The Helm chart runs it as a hook Job when
//! no token is given: the chart itself renders no random value, so every `helm template` and
//! GitOps render is the same, and a re-run never changes a token the pods already hold.

use anyhow::Context;
use clap::{Args, Subcommand};
use kinsight_agent::apiserver::{ApiServer, SecretOutcome};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[derive(Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Create the tokens Secret with random tokens if it does not exist; add only the keys it
    /// lacks if it does. A token already in it is never changed.
    EnsureSecret(EnsureSecretArgs),
}

#[derive(Args)]
struct EnsureSecretArgs {
    /// Name of the Secret.
    #[arg(long)]
    name: String,
    /// Its namespace (default: the pod's own, from its service account).
    #[arg(long)]
    namespace: Option<String>,
    /// Keys that must hold a token.
    #[arg(long = "key", default_values = ["admin-token", "ingest-token"])]
    keys: Vec<String>,
    /// Labels of a created Secret, `key=value`.
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The API server (default: the in-cluster one, with the service account's token and CA).
    #[arg(long)]
    api_server: Option<String>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

pub fn run(args: TokensArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TokensCommand::EnsureSecret(a) => ensure_secret(a),
    }
}

fn ensure_secret(a: EnsureSecretArgs) -> anyhow::Result<ExitCode> {
    let sa = PathBuf::from(SA_DIR);
    let url = match a.api_server {
        Some(u) => u,
        None => {
            let host = std::env::var("KUBERNETES_SERVICE_HOST").context(
                "not in a cluster (KUBERNETES_SERVICE_HOST is not set): pass --api-server",
            )?;
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
            if host.contains(':') {
                format!("https://[{host}]:{port}")
            } else {
                format!("https://{host}:{port}")
            }
        }
    };
    let namespace = match a.namespace {
        Some(n) => n,
        None => std::fs::read_to_string(sa.join("namespace"))
            .map(|n| n.trim().to_string())
            .with_context(|| format!("no --namespace, and {SA_DIR}/namespace cannot be read"))?,
    };
    let labels: BTreeMap<String, String> = a.labels.into_iter().collect();
    // Helm never deletes it (uninstall, or an upgrade that stops rendering an older
    // chart-made Secret): the tokens outlive the release, like the data they guard.
    let annotations = BTreeMap::from([("helm.sh/resource-policy".to_string(), "keep".to_string())]);
    let outcome = super::runtime()?.block_on(async {
        // The client needs the runtime from its construction on.
        let api = ApiServer::connect(&url, Some(sa.join("token")), Some(sa.join("ca.crt")))?;
        api.ensure_token_secret(&namespace, &a.name, &a.keys, &labels, &annotations)
            .await
    })?;
    let what = match outcome {
        SecretOutcome::Created => format!("created with new tokens under {}", a.keys.join(", ")),
        SecretOutcome::Completed { added } => {
            format!(
                "existed; added {} (the other tokens are unchanged)",
                added.join(", ")
            )
        }
        SecretOutcome::Kept => "exists with every key; unchanged".to_string(),
    };
    println!("secret {namespace}/{}: {what}", a.name);
    Ok(ExitCode::SUCCESS)
}
