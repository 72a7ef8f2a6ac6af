//! `POST /v1/ingest` bodies: `Content-Encoding` none / zstd / gzip with the decoded-size cap
//! (`kinsight_server::body::decode`), then a JSON array, `{batchId, events}` or NDJSON
//! (`kinsight_server::api::ingest::parse_batch`), then the store's batch rules
//! (`kinsight_store::validate_batch`, `classify`). The first byte picks the headers:
//! bits 0–1 the encoding (none, zstd, gzip, `br` — unsupported), bits 2–3 the content type
//! (JSON, none, NDJSON, text/plain), bit 4 "compress the rest here first", so the fuzzer also
//! reaches the JSON parsers through the decompressors.
//!
//! Invariants: no panic; a body is decoded or refused with a 4xx error; what is decoded never
//! exceeds the cap and is covered by the request-memory reservations taken while decoding;
//! what the target compressed itself decodes to exactly what it compressed
//! (or is refused as too large); every refusal, of the body or of the batch, is a 4xx.

use std::io::Write;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue};
use kinsight_server::ApiError;
use kinsight_server::api::ingest::parse_batch;
use kinsight_server::body::{DecodedBody, decode};
use kinsight_server::budget::Reserved;
use kinsight_store::ingest::{classify, validate_batch};
use kinsight_store::IngestRequest;

/// The decoded-size cap of this target: smaller than the server's 32 MiB so that each run
/// stays fast; the code path is the same.
const MAX_DECODED: usize = 64 * 1024;
const NOW_MS: i64 = 1_767_225_600_000;

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let encoding = ["", "zstd", "gzip", "br"][usize::from(mode & 0b11)];
    let content_type = [Some("application/json"), None, Some("application/x-ndjson"), Some("text/plain")]
        [usize::from((mode >> 2) & 0b11)];
    let compress_here = mode & 0b1_0000 != 0;
    let raw: Vec<u8> = match (compress_here, encoding) {
        (true, "zstd") => zstd::encode_all(rest, 1).expect("zstd compresses in memory"),
        (true, "gzip") => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(rest).expect("gzip compresses in memory");
            e.finish().expect("gzip compresses in memory")
        }
        _ => rest.to_vec(),
    };
    let mut headers = HeaderMap::new();
    if !encoding.is_empty() {
        headers.insert("content-encoding", HeaderValue::from_static(encoding));
    }
    // The server reserves request memory a step at a time as the body grows: what it reserved
    // must cover what was decoded.
    let mut reserved = 0usize;
    let decoded = decode(&headers, Bytes::from(raw), MAX_DECODED, &mut |n| {
        reserved += n;
        Some(())
    });
    let bytes = match decoded {
        Ok(b) => b,
        Err(e) => {
            client_error(&e);
            if compress_here && encoding != "br" {
                assert!(rest.len() > MAX_DECODED, "compressed here yet refused: {}", e.message);
            }
            return;
        }
    };
    assert!(bytes.len() <= MAX_DECODED, "decoded {} bytes past the cap", bytes.len());
    if !encoding.is_empty() {
        assert!(reserved >= bytes.len(), "decoded {} bytes, reserved {reserved}", bytes.len());
    }
    if compress_here || encoding.is_empty() {
        assert_eq!(&bytes[..], rest, "decoding changed the body");
    }
    let body = DecodedBody {
        bytes,
        content_type: content_type.map(str::to_string),
        reserved: Reserved::none(),
    };
    let (batch_id, events) = match parse_batch(&body) {
        Ok(v) => v,
        Err(e) => return client_error(&e),
    };
    let req = IngestRequest { batch_id, events, auto_create_groups: true };
    if let Err(e) = validate_batch(&req) {
        return client_error(&ApiError::from(e));
    }
    for e in &req.events {
        let _ = classify(e, NOW_MS, Some(1));
    }
}

fn client_error(e: &ApiError) {
    assert!(
        e.code.status().is_client_error(),
        "refused with {} ({:?}): {}",
        e.code.status(),
        e.code,
        e.message
    );
}
