//! The Segment-compatible tracking endpoints: authentication by write key (Basic, body or
//! query), gzip bodies, validation of each message, and handing the accepted ones to the bus;
//! a 429 with `Retry-After` when the bus is full, a 503 when it fails.

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use serde_json::json;
use tracing::{info, warn};

use super::reply::{error_reply, json_bytes_reply, json_reply, request_error_reply, Reply};
use super::{query_param, Api, Store};
use crate::bus::{AcceptedEvents, BusEvent};
use crate::ingest::{intake, Endpoint, RequestError};
use crate::ports::{Bus, Clock, StoreError};

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    pub(super) async fn track(&self, req: &Request<Bytes>, endpoint: Endpoint) -> Reply {
        let key = match presented_write_key(req) {
            Ok(key) => key,
            Err(e) => {
                self.metrics.events_rejected(e.code(), 1);
                return request_error_reply(&e);
            }
        };
        if is_retry(req.headers()) {
            self.metrics.client_retries(1);
        }
        let now = self.clock.now();
        let body = match decoded_body(req, endpoint.max_body()) {
            Ok(b) => b,
            Err(e) => {
                self.metrics.events_rejected(e.code(), 1);
                return request_error_reply(&e);
            }
        };
        let out = match intake(
            endpoint,
            &body,
            key.as_deref(),
            &self.keys.write,
            &self.rules.plan,
            now,
        ) {
            Ok(out) => out,
            Err(e) => {
                self.metrics.events_rejected(e.code(), 1);
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                return error_reply(status, e.code(), &e.to_string());
            }
        };
        let accepted = out.accepted.len();
        if !out.accepted.is_empty() {
            let accepted_events = [BusEvent::EventsAccepted(AcceptedEvents {
                events: out.accepted,
            })];
            match self.bus.publish(&accepted_events).await {
                Ok(()) => {}
                Err(StoreError::Overloaded { retry_after }) => {
                    self.metrics.events_rejected("overloaded", accepted as u64);
                    return overloaded(retry_after);
                }
                Err(e) => {
                    warn!(error = %e, "could not hand accepted events to the bus");
                    self.metrics.events_rejected("unavailable", accepted as u64);
                    return error_reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "events could not be stored; retry later",
                    );
                }
            }
        }
        self.metrics.events_accepted(accepted as u64);
        if !out.rejected.is_empty() {
            self.metrics
                .events_rejected("invalid_event", out.rejected.len() as u64);
        }
        for (i, flag) in &out.flags {
            info!(index = i, field = %flag.field, "{}", flag.message);
        }
        match (endpoint, out.rejected.is_empty()) {
            // The answer to nearly every tracking call, without building it each time.
            (_, true) => {
                json_bytes_reply(StatusCode::OK, Bytes::from_static(br#"{"success":true}"#))
            }
            (Endpoint::Single(_), false) => {
                let errors = &out.rejected[0].errors;
                let message = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                json_reply(
                    StatusCode::BAD_REQUEST,
                    &json!({"success": false, "error": "invalid_event", "message": message, "errors": errors}),
                )
            }
            (Endpoint::Batch, false) => json_reply(
                StatusCode::BAD_REQUEST,
                &json!({
                    "success": false,
                    "error": "invalid_events",
                    "message": format!("{} of {} messages rejected; the others were accepted", out.rejected.len(), out.rejected.len() + accepted),
                    "accepted": accepted,
                    "rejected": out.rejected,
                }),
            ),
        }
    }
}

/// A 429 that SDKs honour: they wait `Retry-After` seconds, then send the same events again.
pub(super) fn overloaded(retry_after: std::time::Duration) -> Reply {
    let secs = retry_after.as_secs().max(1);
    let mut r = error_reply(
        StatusCode::TOO_MANY_REQUESTS,
        "overloaded",
        &format!("too many events wait for evaluation; nothing of this request was kept; retry in {secs} s"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    r
}

/// Whether an SDK says this request is a retry: Segment's `X-Retry-Count` (analytics.js,
/// the mobile SDKs) or RudderStack's `Rsa-Retry-Attempt`, above 0.
pub(super) fn is_retry(headers: &HeaderMap) -> bool {
    ["x-retry-count", "rsa-retry-attempt"].iter().any(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .is_some_and(|n| n > 0)
    })
}

/// The request body, gunzipped when `Content-Encoding: gzip` (RudderStack SDKs compress);
/// decompression stops one byte past `limit`, so a small bomb cannot grow large.
pub(super) fn decoded_body(
    req: &Request<Bytes>,
    limit: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, RequestError> {
    use std::io::Read;
    let gzip = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(std::borrow::Cow::Borrowed(req.body()));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(req.body().as_ref())
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RequestError::MalformedGzip(e.to_string()))?;
    Ok(std::borrow::Cow::Owned(out))
}

/// The write key a tracking request carries outside its body: the HTTP Basic username, or
/// else `?writeKey=` (RudderStack's sendBeacon transport can set no header). An
/// `Authorization` header that is not HTTP Basic is refused rather than passed over for a
/// key in the query or body: a request with a wrong credential is never taken on another.
fn presented_write_key(req: &Request<Bytes>) -> Result<Option<String>, RequestError> {
    if !req.headers().contains_key(header::AUTHORIZATION) {
        return Ok(query_param(req, "writeKey"));
    }
    basic_username(req.headers())
        .map(Some)
        .ok_or(RequestError::NotBasicAuthorization)
}

/// The HTTP Basic username (Segment SDKs send the write key there, password empty).
pub fn basic_username(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(u, _)| u.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn overload_is_a_429_with_retry_after_in_whole_seconds() {
        let r = overloaded(std::time::Duration::from_millis(2_500));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "overloaded");
        // Never "retry in 0 s": SDKs would come straight back.
        let soon = overloaded(std::time::Duration::from_millis(10));
        assert_eq!(soon.headers()[header::RETRY_AFTER], "1");
    }

    fn request(uri: &str, authorization: Option<&str>) -> Request<Bytes> {
        let mut b = Request::post(uri);
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Bytes::new()).unwrap()
    }

    /// Regression (schemathesis, issue 16): `Authorization: f` beside a valid `?writeKey=` was
    /// taken on the query's key; a wrong credential now refuses the request.
    #[test]
    fn an_authorization_that_is_not_http_basic_is_refused_not_passed_over() {
        for wrong in ["f", "Bearer wk", "Basic !!!not-base64", "Basic"] {
            let got = presented_write_key(&request("/v1/t?writeKey=wk", Some(wrong)));
            assert_eq!(got, Err(RequestError::NotBasicAuthorization), "{wrong}");
            assert_eq!(RequestError::NotBasicAuthorization.status(), 401);
        }
        // The ways a key is presented still work.
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("wk:")
        );
        assert_eq!(
            presented_write_key(&request("/v1/t", Some(&basic))),
            Ok(Some("wk".into()))
        );
        assert_eq!(
            presented_write_key(&request("/v1/t?writeKey=wk", None)),
            Ok(Some("wk".into()))
        );
        // None here: the body's `writeKey` is read by `intake`.
        assert_eq!(presented_write_key(&request("/v1/t", None)), Ok(None));
    }

    #[test]
    fn retries_are_recognised_by_segment_and_rudderstack_headers() {
        let mut h = HeaderMap::new();
        assert!(!is_retry(&h));
        h.insert("x-retry-count", header::HeaderValue::from_static("0"));
        assert!(!is_retry(&h), "the first attempt says 0");
        h.insert("x-retry-count", header::HeaderValue::from_static("2"));
        assert!(is_retry(&h));
        let mut rs = HeaderMap::new();
        rs.insert("rsa-retry-attempt", header::HeaderValue::from_static("1"));
        assert!(is_retry(&rs));
        rs.insert("rsa-retry-attempt", header::HeaderValue::from_static("x"));
        assert!(!is_retry(&rs));
    }
}
