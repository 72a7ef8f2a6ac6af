//! The local kubelet's `/pods` endpoint: pod metadata, requests and limits, container
//! statuses, restart counts and owners (reference §2.1: refreshed every 30 s in the CloudWatch
//! agent; kinsight refreshes once per collection, at most every 10 s); and its Summary API
//! (`/stats/summary`, [`crate::summary`]) for the containers' filesystems, on the same cadence.
//!
//! The paths asked are those of [`crate::access`] entries (`nodes/pods` and `nodes/stats` to
//! the kubelet's authorizer), the list the RBAC of `deploy/` is checked against.
//!
//! The kubelet cannot run on a test machine: tests serve recorded PodList JSON and a Summary
//! modelled on a kubelet's.

use crate::access::{self, Access};
use k8s_openapi::api::core::v1::Pod;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KubeletError {
    #[error("kubelet at {url} is not reachable: {message}")]
    Unreachable { url: String, message: String },
    /// The TLS handshake failed on the kubelet's certificate: nothing was sent, the token
    /// neither.
    #[error(
        "kubelet at {url}: its TLS certificate is not trusted ({message}); nothing was sent to it. \
         Kubelets that sign their own serving certificate (serverTLSBootstrap off, the kubeadm \
         default) are not signed by the cluster CA: set kinsight.kubelet_ca_file to the CA that \
         signed it (now {ca_file}), or set kinsight.kubelet_insecure_skip_verify to true to skip \
         the verification"
    )]
    Untrusted {
        url: String,
        ca_file: String,
        message: String,
    },
    #[error("kubelet at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("kubelet at {url} answered something that is not a {what}: {message}")]
    Garbage {
        url: String,
        what: &'static str,
        message: String,
    },
    #[error("cannot build the kubelet client: {0}")]
    Client(String),
}

/// A client of one kubelet.
#[derive(Clone)]
pub struct KubeletClient {
    base_url: String,
    token_file: Option<PathBuf>,
    /// What the kubelet's certificate is verified against (for error messages); `None` when
    /// verification is skipped or the URL is plain HTTP.
    verified_by: Option<VerifiedBy>,
    http: reqwest::Client,
}

#[derive(Clone)]
struct VerifiedBy {
    ca_file: String,
    /// Why the CA file gave no certificate, if it did not.
    problem: Option<String>,
}

impl KubeletClient {
    /// An `https://` kubelet is verified against the certificates in `ca_file` — and only
    /// those, not the public web's roots — unless `insecure` (issue 15, item 9). The token is
    /// sent only over HTTPS, after the certificate was accepted: the read-only port
    /// (`http://…:10255`) needs none, and a plain connection would show it to the network.
    pub fn new(
        base_url: &str,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        insecure: bool,
    ) -> Result<Self, KubeletError> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2));
        let https = base_url.starts_with("https://");
        let mut verified_by = None;
        if insecure {
            b = b.danger_accept_invalid_certs(true);
        } else if https {
            // Only the CA's certificates are trusted. A CA that cannot be read leaves none:
            // every handshake then fails, with an error saying why (see `pods`), rather than
            // the agent starting without a kubelet.
            b = b.tls_built_in_root_certs(false);
            let (certs, problem) = match &ca_file {
                None => (Vec::new(), Some("no CA file is configured".to_string())),
                Some(ca) => match std::fs::read(ca) {
                    Err(e) => (Vec::new(), Some(format!("it cannot be read: {e}"))),
                    Ok(pem) => match reqwest::Certificate::from_pem_bundle(&pem) {
                        Err(e) => (Vec::new(), Some(format!("it is not PEM: {e}"))),
                        Ok(c) if c.is_empty() => {
                            (c, Some("it holds no PEM certificate".to_string()))
                        }
                        Ok(c) => (c, None),
                    },
                },
            };
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
            verified_by = Some(VerifiedBy {
                ca_file: ca_file
                    .as_ref()
                    .map_or_else(|| "unset".to_string(), |p| p.display().to_string()),
                problem,
            });
        }
        let http = b.build().map_err(|e| KubeletError::Client(e.to_string()))?;
        Ok(KubeletClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            token_file: token_file.filter(|_| https),
            verified_by,
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// `GET /pods` (RBAC: `get` on `nodes/pods`, honoured by kubelets 1.33+).
    pub async fn pods(&self) -> Result<Vec<Pod>, KubeletError> {
        let (url, body) = self.get(&access::KUBELET_PODS).await?;
        parse_pod_list(&body).map_err(|message| KubeletError::Garbage {
            url,
            what: "PodList",
            message,
        })
    }

    /// `GET /stats/summary` (RBAC: `get` on `nodes/stats`).
    pub async fn stats_summary(&self) -> Result<crate::summary::Summary, KubeletError> {
        let (url, body) = self.get(&access::KUBELET_STATS_SUMMARY).await?;
        crate::summary::parse_summary(&body).map_err(|message| KubeletError::Garbage {
            url,
            what: "stats Summary",
            message,
        })
    }

    /// One GET of the kubelet, of `access`'s path: the URL asked and the body of a successful
    /// answer. The service-account token is re-read each time: it is rotated.
    async fn get(&self, access: &'static Access) -> Result<(String, bytes::Bytes), KubeletError> {
        let path = access.kubelet_path();
        debug_assert!(path.is_some(), "{access} is not a kubelet path");
        let url = format!("{}{}", self.base_url, path.unwrap_or_default());
        let mut req = self.http.get(&url);
        if let Some(token) = self
            .token_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            req = req.bearer_auth(token.trim());
        }
        let unreachable = |e: reqwest::Error| match (certificate_problem(&e), &self.verified_by) {
            (Some(message), Some(v)) => KubeletError::Untrusted {
                url: url.clone(),
                ca_file: v.ca_file.clone(),
                message: match &v.problem {
                    Some(p) => format!("{message}; the CA file {}: {p}", v.ca_file),
                    None => message,
                },
            },
            _ => KubeletError::Unreachable {
                url: url.clone(),
                message: error_chain(&e),
            },
        };
        let resp = req.send().await.map_err(unreachable)?;
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
        Ok((url, body))
    }
}

/// The peer-certificate error somewhere in `e`'s causes (rustls's, which the TLS stack wraps
/// in an I/O error that hyper wraps in another), if that is why the request failed.
fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    /// The rustls error `err` is, or wraps in (nested) I/O errors.
    fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
        rustls_error(inner)
    }
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(
            t @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType),
        ) = rustls_error(err)
        {
            return Some(t.to_string());
        }
        cur = err.source();
    }
    None
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
