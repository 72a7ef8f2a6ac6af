//! Request bodies: size limits, `Content-Encoding: zstd | gzip`, and JSON parsing whose
//! failures come back as `{code, message}` naming the line and column.

use std::io::Read;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A request body, decompressed, within the server's limits; what it holds is reserved in the
/// server's request budget until it is dropped.
pub struct DecodedBody {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub reserved: crate::budget::Reserved,
}

/// 503 when the request budget has no room (many large requests in flight).
pub fn busy() -> ApiError {
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        "the server holds as many request bodies as its memory budget allows; retry shortly",
    )
}

/// The `Content-Length` a request declares.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl FromRequest<AppState> for DecodedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limits = state.limits;
        let headers = req.headers().clone();
        // Room for the body as sent: its declared length (or what the body knows of its
        // size), or the limit when nothing is known.
        let known =
            content_length(&headers).or_else(|| http_body::Body::size_hint(req.body()).upper());
        let declared = known.map_or(limits.max_body_bytes, |n| {
            n.min(limits.max_body_bytes as u64) as usize
        });
        let budgets = &state.budgets;
        let mut reserved = budgets
            .requests
            .reserve(declared, budgets.wait)
            .await
            .ok_or_else(busy)?;
        let raw = axum::body::to_bytes(req.into_body(), limits.max_body_bytes)
            .await
            .map_err(|e| {
                if let Some(message) = read_timeout(&e) {
                    ApiError::new(ErrorCode::RequestTimeout, message)
                } else if is_length_limit(&e) {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("request body exceeds {} bytes", limits.max_body_bytes),
                    )
                } else {
                    ApiError::bad_param(format!("could not read the request body: {e}"))
                }
            })?;
        let bytes = decode(&headers, raw, limits.max_decoded_bytes, &mut |n| {
            let more = budgets.requests.try_reserve(n)?;
            reserved.merge(more);
            Some(())
        })?;
        Ok(DecodedBody {
            reserved,
            bytes,
            content_type: headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|s| {
                    s.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                }),
        })
    }
}

/// Whether reading a body failed because it was over its limit. axum wraps
/// http-body-util's `LengthLimitError`; it is matched by its text rather than depending on
/// that crate for one type.
pub fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("length limit exceeded") {
            return true;
        }
        source = s.source();
    }
    false
}

/// The message of a body that did not arrive within the body-read timeout
/// ([`crate::transport::BodyReadTimeout`], issue 15 item 2), if that is why reading failed.
pub fn read_timeout(e: &axum::Error) -> Option<String> {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<crate::transport::BodyReadTimeout>() {
            return Some(t.to_string());
        }
        source = s.source();
    }
    None
}

/// Decompresses per `Content-Encoding`, refusing more than `max` decoded bytes (a small zstd
/// body can expand enormously). `reserve(n)` is asked for every [`DECODE_STEP`] bytes the
/// decoded body grows by; `None` stops decoding with 503 ([`busy`]).
pub fn decode(
    headers: &HeaderMap,
    raw: Bytes,
    max: usize,
    reserve: &mut dyn FnMut(usize) -> Option<()>,
) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let too_big = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("decompressed request body exceeds {max} bytes"),
        )
    };
    let mut read_limited = |r: &mut dyn Read, what: &str| -> Result<Bytes, ApiError> {
        let mut out: Vec<u8> = Vec::new();
        let mut r = r.take(max as u64 + 1);
        loop {
            reserve(DECODE_STEP).ok_or_else(busy)?;
            let before = out.len();
            out.reserve(DECODE_STEP);
            let n = (&mut r)
                .take(DECODE_STEP as u64)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::new(ErrorCode::BadEncoding, format!("invalid {what} body: {e}"))
                })?;
            if out.len() > max {
                return Err(too_big());
            }
            if n == 0 || out.len() - before < DECODE_STEP {
                break;
            }
        }
        Ok(Bytes::from(out))
    };
    match encoding.as_str() {
        "" | "identity" => {
            if raw.len() > max {
                return Err(too_big());
            }
            Ok(raw)
        }
        "zstd" => {
            let mut d = zstd::stream::read::Decoder::new(&raw[..]).map_err(|e| {
                ApiError::new(ErrorCode::BadEncoding, format!("invalid zstd body: {e}"))
            })?;
            read_limited(&mut d, "zstd")
        }
        "gzip" | "x-gzip" => {
            let mut d = flate2::read::MultiGzDecoder::new(&raw[..]);
            read_limited(&mut d, "gzip")
        }
        // Snappy's block format, as remote write sends it: the decoded size is in the header.
        "snappy" => {
            let n = snap::raw::decompress_len(&raw).map_err(|e| {
                ApiError::new(ErrorCode::BadEncoding, format!("invalid snappy body: {e}"))
            })?;
            if n > max {
                return Err(too_big());
            }
            reserve(n).ok_or_else(busy)?;
            snap::raw::Decoder::new()
                .decompress_vec(&raw)
                .map(Bytes::from)
                .map_err(|e| {
                    ApiError::new(ErrorCode::BadEncoding, format!("invalid snappy body: {e}"))
                })
        }
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Encoding {other:?} is not supported; use zstd, gzip, snappy or none"),
        )),
    }
}

/// How much a decoded body grows between two reservations.
pub const DECODE_STEP: usize = 1 << 20;

/// Parses JSON, naming line and column on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| json_error(&e, what))
}

pub fn json_error(e: &serde_json::Error, what: &str) -> ApiError {
    use serde_json::error::Category;
    let code = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ErrorCode::MalformedJson,
        Category::Data => ErrorCode::MalformedJson,
    };
    ApiError::new(code, format!("{what}: {e}"))
}

/// A JSON body (any encoding) parsed into `T`, with errors in the API's shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let body = DecodedBody::from_request(req, state).await?;
        if let Some(ct) = &body.content_type
            && ct != "application/json"
        {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("Content-Type {ct:?}: this endpoint takes application/json"),
            ));
        }
        parse_json(&body.bytes, "request body").map(JsonBody)
    }
}

/// Query-string parameters parsed into `T`, with errors in the API's shape.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        parse_query(q).map(QueryParams)
    }
}

fn parse_query<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| ApiError::bad_param("invalid query string"))?,
    )
    .map(|axum::extract::Query(t)| t)
    .map_err(|e| ApiError::bad_param(format!("query string: {}", e.body_text())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn decode(h: &HeaderMap, raw: Bytes, max: usize) -> Result<Bytes, ApiError> {
        super::decode(h, raw, max, &mut |_| Some(()))
    }

    /// Issue 15: decoding takes its room from the request budget a step at a time, and stops
    /// with 503 when the budget has none.
    #[test]
    fn decoding_reserves_as_it_grows_and_stops_when_the_budget_is_full() {
        let data = vec![b'a'; 5 * DECODE_STEP + 10];
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        let z = Bytes::from(zstd::encode_all(&data[..], 3).unwrap());
        let budget = crate::budget::MemoryBudget::new(4 * DECODE_STEP);
        let mut held = crate::budget::Reserved::none();
        let err = super::decode(&h, z.clone(), 64 << 20, &mut |n| {
            held.merge(budget.try_reserve(n)?);
            Some(())
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::ServiceUnavailable);
        drop(held);
        let mut asked = 0;
        let out = super::decode(&h, z, 64 << 20, &mut |n| {
            asked += n;
            Some(())
        })
        .unwrap();
        assert_eq!(out.len(), data.len());
        assert_eq!(asked, 6 * DECODE_STEP);
    }

    #[test]
    fn decodes_zstd_and_gzip_and_refuses_bombs() {
        let data = b"{\"a\":1}".repeat(1000);
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            &decode(&h, Bytes::from(z.clone()), 1 << 20).unwrap()[..],
            &data[..]
        );
        let err = decode(&h, Bytes::from(z), 100).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);

        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            &decode(&h, Bytes::from(gz), 1 << 20).unwrap()[..],
            &data[..]
        );
        let err = decode(&h, Bytes::from_static(b"not gzip"), 1 << 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadEncoding);

        h.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(
            decode(&h, Bytes::new(), 10).unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
    }
}
