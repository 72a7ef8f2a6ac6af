//! AWS Signature Version 4, verified the way the service does it: the client's canonical
//! request (method, path, query, the headers it signed, the SHA-256 of the body) is rebuilt
//! from what arrived, signed with the secret of the access key named in the credential scope,
//! and compared in constant time. The scope must name the service `logs` (any region: the
//! region a client signs for is echoed in ARNs); the request time may be off by at most
//! 15 minutes, as AWS allows.
//!
//! Only the `Authorization` header form is taken (what SDKs, the aws CLI and Fluent Bit send
//! for JSON APIs); presigned query strings are not.

use std::collections::HashMap;
use std::path::Path;

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::CwError;
use crate::auth::Scope;

/// The service name in the credential scope.
pub const SERVICE: &str = "logs";
/// Largest difference between the request's time and the server's clock (AWS: 15 minutes).
pub const MAX_SKEW_SECS: i64 = 15 * 60;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// One access key pair and the scope of what it may do.
#[derive(Clone)]
pub struct AccessKey {
    pub access_key_id: String,
    secret: String,
    pub scope: Scope,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The access keys the CloudWatch-compatible API accepts, by access key id.
#[derive(Debug, Clone, Default)]
pub struct AccessKeys {
    keys: HashMap<String, AccessKey>,
}

/// The key file (`KINSIGHT_AWS_KEYS_FILE`), as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessKeysConfig {
    pub keys: Vec<AccessKeyConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessKeyConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub scope: Scope,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessKeysError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "access key id {0:?} must be 16 to 128 characters of letters, digits and underscores (like AWS's)"
    )]
    BadId(String),
    #[error("the secret access key of {0:?} must be at least 16 characters long")]
    WeakSecret(String),
    #[error("access key id {0:?} is configured twice")]
    Duplicate(String),
    #[error("KINSIGHT_AWS_ACCESS_KEY_ID and KINSIGHT_AWS_SECRET_ACCESS_KEY must be set together")]
    HalfPair,
}

impl AccessKeys {
    /// No keys: with authentication off (loopback, no `KINSIGHT_TOKEN`) every request is
    /// accepted unsigned; with it on, every request is refused.
    pub fn none() -> Self {
        AccessKeys::default()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Adds a key pair after checking it.
    pub fn add(&mut self, id: &str, secret: &str, scope: Scope) -> Result<(), AccessKeysError> {
        let id_ok = (16..=128).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !id_ok {
            return Err(AccessKeysError::BadId(id.to_string()));
        }
        if secret.len() < 16 {
            return Err(AccessKeysError::WeakSecret(id.to_string()));
        }
        if self.keys.contains_key(id) {
            return Err(AccessKeysError::Duplicate(id.to_string()));
        }
        self.keys.insert(
            id.to_string(),
            AccessKey {
                access_key_id: id.to_string(),
                secret: secret.to_string(),
                scope,
            },
        );
        Ok(())
    }

    /// The server's keys: the pair from `KINSIGHT_AWS_ACCESS_KEY_ID` /
    /// `KINSIGHT_AWS_SECRET_ACCESS_KEY` (admin scope) and those of the key file
    /// (`KINSIGHT_AWS_KEYS_FILE`), each with its own scope.
    pub fn load(
        primary_id: Option<&str>,
        primary_secret: Option<&str>,
        file: Option<&Path>,
    ) -> Result<AccessKeys, AccessKeysError> {
        let mut keys = AccessKeys::none();
        match (primary_id, primary_secret) {
            (Some(id), Some(secret)) => keys.add(id, secret, Scope::Admin)?,
            (None, None) => {}
            _ => return Err(AccessKeysError::HalfPair),
        }
        if let Some(path) = file {
            let file_err = |reason: String| AccessKeysError::File {
                path: path.display().to_string(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
            let cfg: AccessKeysConfig = serde_json::from_slice(&bytes)
                .map_err(|e| file_err(format!("not a key file: {e}")))?;
            for k in cfg.keys {
                keys.add(&k.access_key_id, &k.secret_access_key, k.scope)?;
            }
        }
        Ok(keys)
    }

    fn get(&self, id: &str) -> Option<&AccessKey> {
        self.keys.get(id)
    }
}

/// What a request proved about its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub scope: Scope,
    /// The region of the credential scope (echoed in ARNs).
    pub region: String,
}

/// The parts of a request that SigV4 covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    /// The body as sent (before any `Content-Encoding` is undone).
    pub body: &'a [u8],
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub terminator: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

fn incomplete(message: impl Into<String>) -> CwError {
    CwError::new(CwError::INCOMPLETE_SIGNATURE, message)
}

fn invalid(message: impl Into<String>) -> CwError {
    CwError::new(CwError::INVALID_SIGNATURE, message)
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/logs/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=…`.
pub fn parse_authorization(header: &str) -> Result<Authorization, CwError> {
    let header = header.trim();
    let (algorithm, rest) = header.split_once(' ').unwrap_or((header, ""));
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported authorization algorithm {algorithm:?}: only {ALGORITHM} (Signature Version 4) is accepted"
        )));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "Authorization header requires each component to be key=value, got {part:?}"
            )));
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed_headers = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let missing = |what: &str| {
        incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={header}"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts.iter().any(|p| p.is_empty()) {
        return Err(incomplete(format!(
            "Credential must have the form <access key id>/<YYYYMMDD>/<region>/{SERVICE}/aws4_request, got {credential:?}"
        )));
    }
    Ok(Authorization {
        access_key_id: parts[0].to_string(),
        date: parts[1].to_string(),
        region: parts[2].to_string(),
        service: parts[3].to_string(),
        terminator: parts[4].to_string(),
        signed_headers: signed_headers
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// `YYYYMMDDTHHMMSSZ` from `X-Amz-Date`, or the RFC 1123 `Date` header.
fn request_time(headers: &HeaderMap) -> Result<(DateTime<Utc>, String), CwError> {
    if let Some(v) = headers.get("x-amz-date") {
        let s = v
            .to_str()
            .map_err(|_| incomplete("X-Amz-Date must be ASCII"))?
            .trim();
        let t = NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
            .map_err(|_| {
                incomplete(format!(
                    "X-Amz-Date {s:?} is not a date in ISO 8601 basic format (YYYYMMDDTHHMMSSZ)"
                ))
            })?
            .and_utc();
        return Ok((t, s.to_string()));
    }
    if let Some(v) = headers.get(axum::http::header::DATE) {
        let s = v.to_str().map_err(|_| incomplete("Date must be ASCII"))?;
        let t = DateTime::parse_from_rfc2822(s.trim())
            .map_err(|_| incomplete(format!("Date header {s:?} is not an RFC 1123 date")))?
            .with_timezone(&Utc);
        return Ok((t, t.format("%Y%m%dT%H%M%SZ").to_string()));
    }
    Err(incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    ))
}

/// Percent-encodes per SigV4: unreserved characters stay, everything else is `%XX`;
/// `/` stays when `keep_slash`.
fn uri_encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The canonical query string: parameters decoded, re-encoded strictly, sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces collapsed.
fn canonical_value(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request of SigV4 (non-S3 rules: the path is encoded once more).
pub fn canonical_request(req: &SignedRequest<'_>, signed_headers: &[String]) -> String {
    let path = if req.path.is_empty() { "/" } else { req.path };
    let mut out = String::new();
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&uri_encode(path.as_bytes(), true));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for h in signed_headers {
        let values: Vec<String> = req
            .headers
            .get_all(h.as_str())
            .iter()
            .map(|v| canonical_value(v.as_bytes()))
            .collect();
        out.push_str(h);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(&hex::encode(Sha256::digest(req.body)));
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The hex signature of a canonical request.
pub fn signature(
    secret: &str,
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// The `Authorization` header a client sends for `req`, signing every header in it (names
/// sorted, as SDKs list them) for service `logs` at `amz_date` (`YYYYMMDDTHHMMSSZ`, which must
/// also be the request's `x-amz-date`). The server only verifies; this is for the clients it
/// is tested and measured with (tests, benchmarks, fuzz targets).
pub fn authorization(
    req: &SignedRequest<'_>,
    access_key_id: &str,
    secret: &str,
    amz_date: &str,
    region: &str,
) -> String {
    let mut names: Vec<String> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
    names.sort();
    names.dedup();
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let sig = signature(
        secret,
        amz_date,
        date,
        region,
        SERVICE,
        &canonical_request(req, &names),
    );
    format!(
        "{ALGORITHM} Credential={access_key_id}/{date}/{region}/{SERVICE}/aws4_request, SignedHeaders={}, Signature={sig}",
        names.join(";")
    )
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn basic(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// What the headers of a request proved before its body was read: a well-formed
/// `Authorization` naming a known key, scoped to this service, dated within the allowed skew.
#[derive(Debug)]
pub struct HeaderCheck<'k> {
    auth: Authorization,
    key: &'k AccessKey,
    amz_date: String,
}

impl HeaderCheck<'_> {
    pub fn access_key_id(&self) -> &str {
        &self.key.access_key_id
    }
    pub fn scope(&self) -> Scope {
        self.key.scope
    }
}

/// Checks everything SigV4 says about a request that does not need its body — the
/// `Authorization` header, the credential scope, the request time and the key id — so that
/// a request that cannot be authentic is refused before its body is read.
pub fn check_headers<'k>(
    keys: &'k AccessKeys,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<HeaderCheck<'k>, CwError> {
    let header = match headers.get(axum::http::header::AUTHORIZATION) {
        Some(h) => h
            .to_str()
            .map_err(|_| incomplete("the Authorization header must be ASCII"))?,
        None => {
            return Err(CwError::new(
                CwError::MISSING_AUTHENTICATION_TOKEN,
                "Missing Authentication Token",
            ));
        }
    };
    let auth = parse_authorization(header)?;
    if auth.service != SERVICE {
        return Err(invalid(format!(
            "Credential should be scoped to correct service: '{SERVICE}'. "
        )));
    }
    if auth.terminator != "aws4_request" {
        return Err(invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
            auth.terminator
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(incomplete(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let (time, amz_date) = request_time(headers)?;
    if !amz_date.starts_with(&auth.date) || auth.date.len() != 8 {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..amz_date.len().min(8)]
        )));
    }
    let skew = chrono::Duration::seconds(MAX_SKEW_SECS);
    if time < now - skew {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            basic(now - skew),
            basic(now)
        )));
    }
    if time > now + skew {
        return Err(invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            basic(now + skew),
            basic(now)
        )));
    }
    let Some(key) = keys.get(&auth.access_key_id) else {
        return Err(CwError::new(
            CwError::UNRECOGNIZED_CLIENT,
            "The security token included in the request is invalid.",
        ));
    };
    Ok(HeaderCheck {
        auth,
        key,
        amz_date,
    })
}

/// Verifies the signature of a request whose headers passed [`check_headers`], over its body.
pub fn verify_signature(
    checked: HeaderCheck<'_>,
    req: &SignedRequest<'_>,
) -> Result<Verified, CwError> {
    let HeaderCheck {
        auth,
        key,
        amz_date,
    } = checked;
    if let Some(declared) = req.headers.get("x-amz-content-sha256") {
        let declared = declared.to_str().unwrap_or("");
        if declared != "UNSIGNED-PAYLOAD"
            && !declared.eq_ignore_ascii_case(&hex::encode(Sha256::digest(req.body)))
        {
            return Err(invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
    }
    let creq = canonical_request(req, &auth.signed_headers);
    let expected = signature(
        &key.secret,
        &amz_date,
        &auth.date,
        &auth.region,
        &auth.service,
        &creq,
    );
    if !ct_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(Verified {
        access_key_id: key.access_key_id.clone(),
        scope: key.scope,
        region: auth.region,
    })
}

/// Verifies a request's signature against `keys` at time `now`: [`check_headers`], then
/// [`verify_signature`].
pub fn verify(
    keys: &AccessKeys,
    req: &SignedRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Verified, CwError> {
    verify_signature(check_headers(keys, req.headers, now)?, req)
}

/// The region a request says it was signed for, without verifying anything (authentication
/// off): for ARNs.
pub fn claimed_region(headers: &HeaderMap) -> Option<String> {
    let h = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    parse_authorization(h).ok().map(|a| a.region)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    // The AWS Signature Version 4 test suite (AKIDEXAMPLE, 2015-08-30T12:36:00Z, region
    // us-east-1, service "service").
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn suite_headers(extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        for (k, v) in extra {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn suite_signature(req: &SignedRequest<'_>, signed: &[&str]) -> String {
        let signed: Vec<String> = signed.iter().map(|s| s.to_string()).collect();
        let creq = canonical_request(req, &signed);
        signature(
            SECRET,
            "20150830T123600Z",
            "20150830",
            "us-east-1",
            "service",
            &creq,
        )
    }

    #[test]
    fn matches_the_aws_test_suite() {
        let h = suite_headers(&[]);
        let post_vanilla = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &h,
            body: b"",
        };
        assert_eq!(
            suite_signature(&post_vanilla, &["host", "x-amz-date"]),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
        let query = SignedRequest {
            query: "Param1=value1",
            ..post_vanilla
        };
        assert_eq!(
            suite_signature(&query, &["host", "x-amz-date"]),
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
        );
        let h = suite_headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let form = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &h,
            body: b"Param1=value1",
        };
        assert_eq!(
            suite_signature(&form, &["content-type", "host", "x-amz-date"]),
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    fn keys() -> AccessKeys {
        let mut k = AccessKeys::none();
        k.add("AKIDEXAMPLE00000", SECRET, Scope::Ingest).unwrap();
        k
    }

    fn signed_headers(secret: &str, amz_date: &str, body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("localhost:8080"));
        h.insert("x-amz-date", HeaderValue::from_str(amz_date).unwrap());
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("Logs_20140328.DescribeLogGroups"),
        );
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &h,
            body,
        };
        let auth = authorization(&req, "AKIDEXAMPLE00000", secret, amz_date, "eu-west-1");
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        h
    }

    fn check(h: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Verified, CwError> {
        verify(
            &keys(),
            &SignedRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: h,
                body,
            },
            now,
        )
    }

    #[test]
    fn verifies_signature_body_key_and_clock() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let h = signed_headers(SECRET, "20260101T115500Z", b"{}");
        let v = check(&h, b"{}", now).unwrap();
        assert_eq!(v.scope, Scope::Ingest);
        assert_eq!(v.region, "eu-west-1");
        // Another body than the one signed.
        assert_eq!(
            check(&h, b"{\"a\":1}", now).unwrap_err().kind,
            CwError::INVALID_SIGNATURE
        );
        // Another secret.
        let bad = signed_headers("not-the-secret-at-all", "20260101T115500Z", b"{}");
        assert_eq!(
            check(&bad, b"{}", now).unwrap_err().kind,
            CwError::INVALID_SIGNATURE
        );
        // 16 minutes off either way.
        let old = signed_headers(SECRET, "20260101T114400Z", b"{}");
        let e = check(&old, b"{}", now).unwrap_err();
        assert!(e.message.starts_with("Signature expired"), "{}", e.message);
        let new = signed_headers(SECRET, "20260101T121600Z", b"{}");
        assert_eq!(
            check(&new, b"{}", now).unwrap_err().kind,
            CwError::INVALID_SIGNATURE
        );
        // Unknown key, missing header.
        let mut other = h.clone();
        let a = other["authorization"]
            .to_str()
            .unwrap()
            .replace("AKIDEXAMPLE00000", "AKIDUNKNOWN00000");
        other.insert("authorization", HeaderValue::from_str(&a).unwrap());
        assert_eq!(
            check(&other, b"{}", now).unwrap_err().kind,
            CwError::UNRECOGNIZED_CLIENT
        );
        other.remove("authorization");
        assert_eq!(
            check(&other, b"{}", now).unwrap_err().kind,
            CwError::MISSING_AUTHENTICATION_TOKEN
        );
    }

    #[test]
    fn key_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.json");
        std::fs::write(
            &p,
            r#"{"keys": [{"accessKeyId": "AKIAREADONLY0001", "secretAccessKey": "0123456789abcdef0123", "scope": "read"}]}"#,
        )
        .unwrap();
        let k = AccessKeys::load(Some("AKIAADMIN0000001"), Some(SECRET), Some(&p)).unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k.get("AKIAREADONLY0001").unwrap().scope, Scope::Read);
        assert_eq!(k.get("AKIAADMIN0000001").unwrap().scope, Scope::Admin);
        assert!(matches!(
            AccessKeys::load(Some("AKIAADMIN0000001"), None, None),
            Err(AccessKeysError::HalfPair)
        ));
        assert!(matches!(
            AccessKeys::load(Some("short"), Some(SECRET), None),
            Err(AccessKeysError::BadId(_))
        ));
        std::fs::write(&p, r#"{"keys": [{"accessKeyId": "AKIAREADONLY0001"}]}"#).unwrap();
        assert!(matches!(
            AccessKeys::load(None, None, Some(&p)),
            Err(AccessKeysError::File { .. })
        ));
    }
}
