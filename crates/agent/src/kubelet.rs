//! The local kubelet's `/pods` endpoint: pod metadata, requests and limits, container
//! statuses, restart counts and owners (reference §2.1: refreshed every 30 s in the CloudWatch
//! agent; kinsight refreshes once per collection, at most every 10 s).
//!
//! The kubelet cannot run on a test machine: tests serve recorded PodList JSON.

use k8s_openapi::api::core::v1::Pod;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KubeletError {
    #[error("kubelet at {url} is not reachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("kubelet at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("kubelet at {url} answered something that is not a PodList: {message}")]
    Garbage { url: String, message: String },
    #[error("cannot build the kubelet client: {0}")]
    Client(String),
}

/// A client of one kubelet.
#[derive(Clone)]
pub struct KubeletClient {
    base_url: String,
    token_file: Option<PathBuf>,
    http: reqwest::Client,
}

impl KubeletClient {
    /// `ca_file` is used when it exists and `insecure` is false.
    pub fn new(
        base_url: &str,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        insecure: bool,
    ) -> Result<Self, KubeletError> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2));
        if insecure {
            b = b.danger_accept_invalid_certs(true);
        } else if let Some(ca) = ca_file.as_ref().filter(|p| p.exists()) {
            let pem = std::fs::read(ca)
                .map_err(|e| KubeletError::Client(format!("cannot read {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| KubeletError::Client(format!("{}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().map_err(|e| KubeletError::Client(e.to_string()))?;
        Ok(KubeletClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            token_file,
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// `GET /pods`. The service-account token is re-read each time: it is rotated.
    pub async fn pods(&self) -> Result<Vec<Pod>, KubeletError> {
        let url = format!("{}/pods", self.base_url);
        let mut req = self.http.get(&url);
        if let Some(token) = self
            .token_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            req = req.bearer_auth(token.trim());
        }
        let resp = req.send().await.map_err(|e| KubeletError::Unreachable {
            url: url.clone(),
            message: error_chain(&e),
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| KubeletError::Unreachable {
            url: url.clone(),
            message: error_chain(&e),
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(KubeletError::Status {
                url,
                status: status.as_u16(),
                body: text,
            });
        }
        parse_pod_list(&body).map_err(|message| KubeletError::Garbage { url, message })
    }
}

/// Parses a PodList document.
pub fn parse_pod_list(body: &[u8]) -> Result<Vec<Pod>, String> {
    let list: k8s_openapi::List<Pod> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(list.items)
}

/// reqwest's top-level message hides the cause ("error sending request"); include it.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_pod_list(b"<html>").is_err());
        assert!(parse_pod_list(b"{\"kind\":\"PodList\",\"items\":[{\"metadata\":5}]}").is_err());
        let pods =
            parse_pod_list(br#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}"#)
                .unwrap();
        assert!(pods.is_empty());
    }
}
