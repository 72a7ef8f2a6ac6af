//! AWS Signature Version 4 on the CloudWatch-compatible endpoint (`POST /`): the
//! `Authorization` header parser and the verification of a whole request
//! (`kinsight_server::cwlogs::sigv4`). Two kinds of input:
//! * as received: `authorization \n x-amz-date \n method \n path?query \n body` — anything a
//!   client may send;
//! * `!region \n name:value|name:value \n method \n path?query \n body` — a request the target
//!   signs itself, so that verification also runs to its end on odd paths, queries, headers
//!   and bodies.
//!
//! Invariants: no panic; a parsed header has five non-empty credential parts and lower-case
//! signed headers and signature; whatever verifies is refused once its body changes or under
//! another secret; a request signed as clients sign it verifies.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use kinsight_server::Scope;
use kinsight_server::cwlogs::AccessKeys;
use kinsight_server::cwlogs::sigv4::{
    SignedRequest, authorization, parse_authorization, verify,
};

const KEY_ID: &str = "AKIAFUZZKEY0000001";
const SECRET: &str = "fuzz-secret-key-0123456789abcdef";
/// The server's clock: 2026-01-01T12:00:00Z.
const NOW_SECS: i64 = 1_767_268_800;
const AMZ_DATE: &str = "20260101T120000Z";

fn keys(secret: &str) -> AccessKeys {
    let mut k = AccessKeys::none();
    k.add(KEY_ID, secret, Scope::Admin)
        .expect("a valid key pair");
    k
}

pub fn run(data: &[u8]) {
    let now = DateTime::<Utc>::from_timestamp(NOW_SECS, 0).expect("a valid time");
    let (sign, data) = match data.strip_prefix(b"!") {
        Some(rest) => (true, rest),
        None => (false, data),
    };
    let mut parts = data.splitn(5, |&b| b == b'\n');
    let first = parts.next().unwrap_or_default();
    let second = parts.next().unwrap_or_default();
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let target = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));

    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("logs.fuzz.example"));
    if sign {
        let region = String::from_utf8_lossy(first).into_owned();
        signed(&mut headers, &region, second, &method, path, query, body);
        let req = SignedRequest { method: &method, path, query, headers: &headers, body };
        let plain_region = !region.is_empty()
            && region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if plain_region {
            if let Err(e) = verify(&keys(SECRET), &req, now) {
                panic!("a request signed as clients sign it was refused: {}: {}", e.kind, e.message);
            }
        }
        refused_when_changed(&req, now);
        return;
    }
    if let Ok(auth) = std::str::from_utf8(first) {
        if let Ok(a) = parse_authorization(auth) {
            for p in [&a.access_key_id, &a.date, &a.region, &a.service, &a.terminator] {
                assert!(!p.is_empty() && !p.contains('/'), "{auth:?} → {a:?}");
            }
            assert!(a.signed_headers.iter().all(|h| *h == h.to_ascii_lowercase()), "{a:?}");
            assert_eq!(a.signature, a.signature.to_ascii_lowercase());
        }
    }
    if let Ok(v) = HeaderValue::from_bytes(first) {
        headers.insert("authorization", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(second) {
        headers.insert("x-amz-date", v);
    }
    let req = SignedRequest { method: &method, path, query, headers: &headers, body };
    refused_when_changed(&req, now);
}

/// Adds `x-amz-date`, the given headers and an `Authorization` signed with [`SECRET`].
fn signed(
    headers: &mut HeaderMap,
    region: &str,
    extra: &[u8],
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) {
    headers.insert("x-amz-date", HeaderValue::from_static(AMZ_DATE));
    for pair in extra.split(|&b| b == b'|') {
        let Some(colon) = pair.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&pair[..colon]),
            HeaderValue::from_bytes(&pair[colon + 1..]),
        ) else {
            continue;
        };
        if matches!(
            name.as_str(),
            "host" | "x-amz-date" | "authorization" | "x-amz-content-sha256"
        ) {
            continue;
        }
        headers.append(name, value);
    }
    let req = SignedRequest { method, path, query, headers, body };
    let auth = authorization(&req, KEY_ID, SECRET, AMZ_DATE, region);
    if let Ok(v) = HeaderValue::from_str(&auth) {
        headers.insert("authorization", v);
    }
}

/// If `req` verifies, it must not once its body changes, nor under another secret.
fn refused_when_changed(req: &SignedRequest<'_>, now: DateTime<Utc>) {
    if verify(&keys(SECRET), req, now).is_err() {
        return;
    }
    let mut body = req.body.to_vec();
    body.push(b'x');
    let changed = SignedRequest { body: &body, ..*req };
    assert!(verify(&keys(SECRET), &changed, now).is_err(), "a changed body verified");
    assert!(
        verify(&keys("another-secret-0123456789abcdef"), req, now).is_err(),
        "a request verified under another secret"
    );
}
