//! Browsers against the no-token mode (issue 15 item 6).
//!
//! Without `KINSIGHT_TOKEN` the server listens on loopback only and every caller is admin. A
//! browser on the same machine is such a caller, and any web page it shows can make it send
//! requests: a `POST` with a CORS-safelisted content type (`text/plain`, a form) goes out
//! without a preflight, and a page whose host name is re-pointed to 127.0.0.1 (DNS
//! rebinding) is even same-origin to the browser. So in this mode every request must:
//! - name a loopback host in `Host` (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`, with
//!   any port): a rebound name is refused;
//! - if it carries an `Origin` (browsers send one on every cross-origin and every unsafe
//!   request), name a loopback origin;
//! - if it is a `POST`, `PUT` or `PATCH`, declare a JSON content type (`application/json`,
//!   `application/*+json`, `application/x-ndjson`, `application/jsonl`, AWS's
//!   `application/x-amz-json-1.x`): none of these is safelisted, so a cross-origin page
//!   cannot send one without a preflight, which this server never grants.
//!
//! With a token the checks are off: browsers do not attach bearer tokens or SigV4 signatures on
//! their own, so a page cannot act for a user.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Middleware over the whole router: in the no-token mode, refuses what a web page could have
/// sent on its own (403 `Forbidden`, 415 `UnsupportedMediaType`).
pub async fn guard_open_mode(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !state.auth.enabled() {
        check(req.method(), req.headers(), req.uri().host())?;
    }
    Ok(next.run(req).await)
}

/// The rules of the module doc. `uri_host` is the authority of an absolute-form request
/// target (HTTP/2's `:authority`), which stands for `Host` when present.
pub fn check(method: &Method, headers: &HeaderMap, uri_host: Option<&str>) -> Result<(), ApiError> {
    let host = uri_host.or_else(|| headers.get(HOST).and_then(|v| v.to_str().ok()));
    match host {
        Some(h) if is_loopback_authority(h) => {}
        Some(h) => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "Host {h:?} is not a loopback name: without KINSIGHT_TOKEN this server answers requests addressed to localhost, 127.0.0.1 or [::1] only (set a token to serve other names)"
                ),
            ));
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "the request has no Host header: without KINSIGHT_TOKEN it must name localhost, 127.0.0.1 or [::1]",
            ));
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        let authority = o
            .strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"));
        if !authority.is_some_and(is_loopback_authority) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "requests from the web page at {o:?} are refused: without KINSIGHT_TOKEN only pages served from a loopback address may call this server"
                ),
            ));
        }
    }
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        let ct = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json_content_type(ct) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "Content-Type {ct:?}: without KINSIGHT_TOKEN a {method} must declare a JSON content type (application/json, application/x-ndjson, application/x-amz-json-1.1)"
                ),
            ));
        }
    }
    Ok(())
}

/// `host[:port]` naming this machine: `localhost`, `*.localhost` (RFC 6761: browsers resolve
/// these to loopback themselves), an IPv4 address in 127.0.0.0/8 or `[::1]`.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        match rest.split_once(']') {
            Some((v6, tail)) if tail.is_empty() || is_port(tail) => v6,
            _ => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return false,
            None => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    })
}

fn is_port(s: &str) -> bool {
    let digits = s.strip_prefix(':').unwrap_or(s);
    !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
}

fn is_json_content_type(ct: &str) -> bool {
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json"
        || mime == "application/x-ndjson"
        || mime == "application/jsonl"
        || mime.starts_with("application/x-amz-json-")
        || (mime.starts_with("application/") && mime.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_authorities() {
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "kinsight.localhost:80",
            "127.0.0.1",
            "127.1.2.3:8080",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:8080",
            "0.0.0.0:8080",
            "[::ffff:127.0.0.1]:x",
            "[::1",
            "localhost:80:80",
            "",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "application/x-amz-json-1.1",
            "application/x-ndjson",
            "application/vnd.api+json",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }
}
