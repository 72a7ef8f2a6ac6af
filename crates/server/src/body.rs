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

/// A request body, decompressed, within the server's limits.
pub struct DecodedBody {
    pub bytes: Bytes,
    pub content_type: Option<String>,
}

impl FromRequest<AppState> for DecodedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limits = state.limits;
        let headers = req.headers().clone();
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
        let bytes = decode(&headers, raw, limits.max_decoded_bytes)?;
        Ok(DecodedBody {
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
/// body can expand enormously).
pub fn decode(headers: &HeaderMap, raw: Bytes, max: usize) -> Result<Bytes, ApiError> {
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
    let read_limited = |r: &mut dyn Read, what: &str| -> Result<Bytes, ApiError> {
        let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(max));
        r.take(max as u64 + 1).read_to_end(&mut out).map_err(|e| {
            ApiError::new(ErrorCode::BadEncoding, format!("invalid {what} body: {e}"))
        })?;
        if out.len() > max {
            return Err(too_big());
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
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Encoding {other:?} is not supported; use zstd, gzip or none"),
        )),
    }
}

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
