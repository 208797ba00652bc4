//! Cross-origin access to the HTTP API from web pages: analytics.js and RudderStack's browser
//! SDK post events from the product's own origin, and the inbox widget reads the user's inbox
//! from it.
//!
//! Every origin may call. Nothing on the API authenticates by cookie (write keys, inbox hashes
//! and the admin key travel in headers or the body), so the browser's ambient credentials give
//! a page of another origin nothing. The caller's origin is echoed rather than `*` so that SDKs
//! configured with `credentials: 'include'` are not refused by the browser.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

/// Headers a preflight allows when the browser does not say which it wants: what the SDKs and
/// the widget send (Segment's `X-Retry-Count`, RudderStack's `AnonymousId`, `SentAt` and
/// `Rsa-*` retry headers).
const DEFAULT_ALLOWED_HEADERS: &str = "Authorization, Content-Type, Content-Encoding, \
     X-User-Hash, X-Retry-Count, AnonymousId, SentAt, Rsa-Retry-Attempt, Rsa-Since-Last-Attempt, \
     Rsa-Since-First-Attempt, Rsa-Retry-Reason, Rsa-Recovered, If-None-Match, Last-Event-ID";

/// How long a browser may reuse a preflight's answer (Chromium caps it at two hours).
const PREFLIGHT_MAX_AGE: &str = "7200";

/// Adds the headers that let the calling page read the answer (and `Retry-After` and `ETag`
/// in it, which are not readable across origins by default).
pub fn allow_origin(request: &HeaderMap, reply: &mut HeaderMap) {
    match request.get(header::ORIGIN) {
        Some(origin) => {
            reply.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            reply.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            reply.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            reply.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    reply.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After, ETag"),
    );
}

/// The answer to a CORS preflight (`OPTIONS`): any method the API has, the request headers the
/// browser asks for, and access from a public page to a server on a private network (Chrome's
/// Private Network Access, for a `nudge serve` on a developer's machine).
pub fn preflight(request: &HeaderMap) -> Response<Bytes> {
    let mut r = Response::new(Bytes::new());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    let asked = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| !v.is_empty())
        .cloned();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        asked.unwrap_or(HeaderValue::from_static(DEFAULT_ALLOWED_HEADERS)),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    let private_network = request
        .get("access-control-request-private-network")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    if private_network {
        h.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
    h.append(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
    allow_origin(request, h);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_caller_origin_is_echoed_with_credentials_allowed() {
        let mut reply = HeaderMap::new();
        allow_origin(
            &headers(&[("origin", "https://app.example.com")]),
            &mut reply,
        );
        assert_eq!(
            reply[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(reply[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(reply[header::VARY], "Origin");
        assert_eq!(
            reply[header::ACCESS_CONTROL_EXPOSE_HEADERS],
            "Retry-After, ETag"
        );

        let mut no_origin = HeaderMap::new();
        allow_origin(&HeaderMap::new(), &mut no_origin);
        assert_eq!(no_origin[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(no_origin
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none());
    }

    #[test]
    fn a_preflight_allows_the_headers_asked_for_and_private_network_access() {
        let r = preflight(&headers(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type,x-retry-count",
            ),
            ("access-control-request-private-network", "true"),
        ]));
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "authorization,content-type,x-retry-count"
        );
        assert!(h[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("POST"));
        assert_eq!(h["access-control-allow-private-network"], "true");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );

        let bare = preflight(&HeaderMap::new());
        let allowed = bare.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap();
        for name in [
            "X-Retry-Count",
            "X-User-Hash",
            "AnonymousId",
            "Authorization",
        ] {
            assert!(allowed.contains(name), "{name} in {allowed}");
        }
        assert!(bare
            .headers()
            .get("access-control-allow-private-network")
            .is_none());
    }
}
