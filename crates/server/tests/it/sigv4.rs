//! Property tests of SigV4 (issue 15, "Fuzzing"): the `Authorization` header parser never
//! panics and reads back what a client wrote; a request signed as a client signs it verifies,
//! and changing anything it signed — a byte of the body, a signed header, the secret, the
//! clock beyond 15 minutes — makes it fail.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Duration, Utc};
use kinsight_server::Scope;
use kinsight_server::cwlogs::sigv4::{
    MAX_SKEW_SECS, SignedRequest, authorization, parse_authorization, verify,
};
use kinsight_server::cwlogs::{AccessKeys, CwError};
use proptest::prelude::*;

const KEY_ID: &str = "AKIAPROPERTYTEST01";
const SECRET: &str = "property-test-secret-0123456789";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn keys() -> AccessKeys {
    let mut k = AccessKeys::none();
    k.add(KEY_ID, SECRET, Scope::Ingest).unwrap();
    k
}

/// A request as a client builds it.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: String,
    query: String,
    /// Headers besides host and x-amz-date, lower-case names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    region: String,
    /// Seconds between the request's time and the server's.
    offset_secs: i64,
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT"]),
        "/[a-zA-Z0-9/%._~ -]{0,12}",
        prop::collection::vec(("[a-zA-Z0-9%+._~-]{1,6}", "[a-zA-Z0-9%+=._~-]{0,6}"), 0..4),
        prop::collection::vec(("x-amz-[a-z]{1,8}", "[ -~]{0,16}"), 0..4),
        prop::collection::vec(any::<u8>(), 0..64),
        "[a-z]{2}-[a-z]{4,9}-[1-9]",
        -(MAX_SKEW_SECS - 60)..(MAX_SKEW_SECS - 60),
    )
        .prop_map(
            |(method, path, query, headers, body, region, offset_secs)| Req {
                method,
                path,
                query: query
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&"),
                headers,
                body,
                region,
                offset_secs,
            },
        )
}

impl Req {
    fn amz_date(&self) -> String {
        (now() + Duration::seconds(self.offset_secs))
            .format("%Y%m%dT%H%M%SZ")
            .to_string()
    }

    /// Headers, signed with `secret` over `signed` (header names).
    fn signed(&self, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("logs.example:8080"));
        let amz_date = self.amz_date();
        h.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
        for (k, v) in &self.headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let auth = authorization(&self.as_signed(&h), KEY_ID, secret, &amz_date, &self.region);
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        h
    }

    fn as_signed<'a>(&'a self, h: &'a HeaderMap) -> SignedRequest<'a> {
        SignedRequest {
            method: self.method,
            path: &self.path,
            query: &self.query,
            headers: h,
            body: &self.body,
        }
    }

    fn verify(&self, h: &HeaderMap) -> Result<(), CwError> {
        verify(&keys(), &self.as_signed(h), now()).map(|_| ())
    }
}

fn kind(r: Result<(), CwError>) -> &'static str {
    r.err().map(|e| e.kind).unwrap_or("ok")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_authorization_header_parses_or_is_refused(header in "(?s).{0,120}") {
        if let Ok(a) = parse_authorization(&header) {
            for part in [&a.access_key_id, &a.date, &a.region, &a.service, &a.terminator] {
                prop_assert!(!part.is_empty() && !part.contains('/'), "{header:?}: {a:?}");
            }
        }
    }

    #[test]
    fn damaged_authorization_headers_never_panic(
        cut in 0usize..200,
        insert in "[ ,=/;A-Za-z0-9]{0,4}",
    ) {
        let good = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/logs/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b";
        let at = good.char_indices().map(|(i, _)| i).nth(cut % good.len()).unwrap_or(0);
        let damaged = format!("{}{insert}{}", &good[..at], &good[(at + 3).min(good.len())..]);
        let _ = parse_authorization(&damaged);
    }

    #[test]
    fn the_parser_reads_back_what_a_client_wrote(
        id in "[A-Z0-9]{16,24}",
        date in "[0-9]{8}",
        region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
        headers in prop::collection::vec("[A-Za-z][A-Za-z0-9-]{0,10}", 1..5),
        sig in "[0-9a-fA-F]{64}",
        space in prop::sample::select(vec![" ", "  ", ",", ", "]),
    ) {
        let header = format!(
            "AWS4-HMAC-SHA256 Credential={id}/{date}/{region}/logs/aws4_request{space}SignedHeaders={}{space}Signature={sig}",
            headers.join(";")
        );
        // A space alone does not separate components (they are comma-separated).
        let a = match parse_authorization(&header) {
            Ok(a) => a,
            Err(e) => {
                prop_assert!(!space.contains(','), "{header}: {}", e.message);
                return Ok(());
            }
        };
        prop_assert_eq!(a.access_key_id, id);
        prop_assert_eq!(a.date, date);
        prop_assert_eq!(a.region, region);
        prop_assert_eq!(a.service, "logs");
        prop_assert_eq!(a.terminator, "aws4_request");
        prop_assert_eq!(a.signed_headers, headers.iter().map(|h| h.to_ascii_lowercase()).collect::<Vec<_>>());
        prop_assert_eq!(a.signature, sig.to_ascii_lowercase());
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_is_refused(
        r in req(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let h = r.signed(SECRET);
        prop_assert_eq!(kind(r.verify(&h)), "ok", "{:?}", r);

        // One bit of the body.
        if !r.body.is_empty() {
            let mut changed = r.clone();
            changed.body[flip.index(r.body.len())] ^= 1 << bit;
            prop_assert_eq!(kind(changed.verify(&h)), CwError::INVALID_SIGNATURE);
        }
        // A signed header.
        let mut h2 = h.clone();
        h2.insert("host", HeaderValue::from_static("elsewhere.example"));
        prop_assert_eq!(kind(r.verify(&h2)), CwError::INVALID_SIGNATURE);
        // The method.
        let other = Req { method: if r.method == "GET" { "POST" } else { "GET" }, ..r.clone() };
        prop_assert_eq!(kind(other.verify(&h)), CwError::INVALID_SIGNATURE);
        // Another secret.
        prop_assert_eq!(kind(r.verify(&r.signed("another-secret-0123456789"))), CwError::INVALID_SIGNATURE);
        // A clock more than 15 minutes away.
        let late = Req { offset_secs: MAX_SKEW_SECS + 1 + r.offset_secs.abs(), ..r.clone() };
        prop_assert_eq!(kind(late.verify(&late.signed(SECRET))), CwError::INVALID_SIGNATURE);
    }

    #[test]
    fn the_order_of_query_parameters_is_not_signed(
        r in req(),
        extra in prop::collection::vec(("[a-z]{1,4}", "[a-z0-9]{0,4}"), 2..5),
    ) {
        let with = |pairs: &[(String, String)]| {
            let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Req { query: q.join("&"), ..r.clone() }
        };
        let mut reversed = extra.clone();
        reversed.reverse();
        let (a, b) = (with(&extra), with(&reversed));
        let h = a.signed(SECRET);
        prop_assert_eq!(kind(b.verify(&h)), "ok");
    }
}
