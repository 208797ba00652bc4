//! The answers the API builds: JSON (and JSON errors in one shape), small HTML pages.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use serde_json::{json, Value};
use tracing::warn;

use crate::ingest::RequestError;

/// An answer of the API.
pub type Reply = Response<Bytes>;

/// A JSON response.
pub fn json_reply(status: StatusCode, body: &Value) -> Reply {
    json_bytes_reply(status, Bytes::from(body.to_string()))
}

/// A response of JSON already serialized.
pub(super) fn json_bytes_reply(status: StatusCode, body: Bytes) -> Reply {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON error: `{"success": false, "error": code, "message": text}` plus extra fields.
pub fn error_reply(status: StatusCode, code: &str, message: &str) -> Reply {
    json_reply(
        status,
        &json!({"success": false, "error": code, "message": message}),
    )
}

/// `405 method_not_allowed` with the `Allow` header RFC 9110 asks for.
pub fn method_not_allowed(method: &http::Method, path: &str, allowed: &[http::Method]) -> Reply {
    let mut r = error_reply(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("{method} is not allowed on {path}"),
    );
    let list = allowed
        .iter()
        .map(http::Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = header::HeaderValue::from_str(&list) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

pub(super) fn html_reply(status: StatusCode, body: String) -> Reply {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

pub(super) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:4em auto\"><h1>{title}</h1>{body}</body></html>"
    )
}

pub(super) fn store_failure(e: &crate::ports::StoreError) -> Reply {
    warn!(error = %e, "store failure");
    error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the store is unavailable; retry later",
    )
}

/// Why a request was refused, for callers that build their own envelope (Lambda).
pub fn request_error_reply(e: &RequestError) -> Reply {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_reply(status, e.code(), &e.to_string())
}
