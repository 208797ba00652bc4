//! ingest's input: an API Gateway HTTP API request (payload format 2.0), as `lambda_http`
//! reads it, turned into the request the service's HTTP API takes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::{Body, RequestExt};
use std::panic::AssertUnwindSafe;

/// Why an invocation's payload is not an API Gateway request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not the JSON of an HTTP API (payload format 2.0) request.
    #[error("not an API Gateway HTTP API request: {0}")]
    Json(#[from] serde_json::Error),
    /// `isBase64Encoded` with a body that is not base64 (which `lambda_http` would panic on).
    #[error("the body is marked base64 but does not decode: {0}")]
    Base64Body(#[from] base64::DecodeError),
    /// `lambda_http` could not build a request of it (a host, path or header that makes no
    /// URL: it panics on those).
    #[error("no HTTP request can be built of it (a host or path that makes no URL?)")]
    Unbuildable,
}

/// Reads an invocation's payload as `lambda_http` does, refusing with an error what it would
/// panic on.
pub fn read_request(payload: &str) -> Result<lambda_http::Request, RequestError> {
    let request: LambdaRequest = serde_json::from_str(payload)?;
    if let LambdaRequest::ApiGatewayV2(event) = &request {
        if let (true, Some(body)) = (event.is_base64_encoded, &event.body) {
            STANDARD.decode(body)?;
        }
    }
    // The conversion unwraps its URL parses; a panic there is this payload's error. (The
    // panic hook still logs it.)
    std::panic::catch_unwind(AssertUnwindSafe(|| lambda_http::Request::from(request)))
        .map_err(|_| RequestError::Unbuildable)
}

/// The path the API routes on: the request path without a stage prefix. `lambda_http` puts
/// the stage in front of the path for any stage but `$default` (the template's), so a
/// function behind a named stage, or a sample event recorded from one, routes the same.
pub fn service_path(req: &lambda_http::Request) -> String {
    let path = req.uri().path();
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    };
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => {
            let prefix = format!("/{stage}");
            match path.strip_prefix(&prefix) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => path.to_string(),
            }
        }
        _ => path.to_string(),
    }
}

/// The request as the service takes it: method, path with query, headers and the body's
/// bytes (`lambda_http` already decoded a base64 body).
pub fn to_service_request(req: lambda_http::Request) -> Result<http::Request<Bytes>, http::Error> {
    let path = service_path(&req);
    let target = match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    };
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        other => Bytes::copy_from_slice(&other),
    };
    let mut out = http::Request::builder()
        .method(parts.method)
        .uri(target)
        .body(body)?;
    *out.headers_mut() = parts.headers;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_request(
        stage: &str,
        raw_path: &str,
        query: &str,
        body: &str,
        base64: bool,
    ) -> lambda_http::Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /v1/track",
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": {"content-type": "application/json", "authorization": "Basic d2tfdGVzdDo="},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {"method": "POST", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
                "requestId": "req-1",
                "routeKey": "POST /v1/track",
                "stage": stage,
                "time": "02/Mar/2026:08:00:00 +0000",
                "timeEpoch": 1772438400000i64
            },
            "body": body,
            "isBase64Encoded": base64
        });
        read_request(&event.to_string()).unwrap()
    }

    #[test]
    fn a_body_marked_base64_that_does_not_decode_is_an_error() {
        // Found by the lambda_input fuzz target: lambda_http panicked on it.
        let event = serde_json::json!({
            "version": "2.0", "rawPath": "/v1/track", "rawQueryString": "",
            "requestContext": {"http": {"method": "POST", "path": "/v1/track"}},
            "body": "not base64!", "isBase64Encoded": true
        });
        let err = read_request(&event.to_string()).unwrap_err();
        assert!(matches!(err, RequestError::Base64Body(_)), "{err}");
        assert!(matches!(read_request("[]"), Err(RequestError::Json(_))));
    }

    #[test]
    fn a_host_that_makes_no_url_is_an_error() {
        // Found by the lambda_input fuzz target: lambda_http unwrapped the URL parse.
        let event = serde_json::json!({
            "version": "2.0", "rawPath": "/v1/track", "rawQueryString": "",
            "headers": {"host": "api.example.com:notaport"},
            "requestContext": {"http": {"method": "POST", "path": "/v1/track"}},
            "body": "{}", "isBase64Encoded": false
        });
        let err = read_request(&event.to_string()).unwrap_err();
        assert!(matches!(err, RequestError::Unbuildable), "{err}");
    }

    #[test]
    fn keeps_method_path_query_headers_and_body() {
        let req = to_service_request(v2_request(
            "$default",
            "/v1/track",
            "a=1&b=2",
            "{\"x\":1}",
            false,
        ))
        .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri().to_string(), "/v1/track?a=1&b=2");
        assert_eq!(req.headers()["authorization"], "Basic d2tfdGVzdDo=");
        assert_eq!(req.body().as_ref(), b"{\"x\":1}");
    }

    #[test]
    fn decodes_base64_bodies_and_drops_a_named_stage() {
        // base64 of {"x":1}
        let req = to_service_request(v2_request("dev", "/dev/v1/track", "", "eyJ4IjoxfQ==", true))
            .unwrap();
        assert_eq!(req.uri().to_string(), "/v1/track");
        assert_eq!(req.body().as_ref(), b"{\"x\":1}");
    }
}
