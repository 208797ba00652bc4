//! The ingest function: API Gateway HTTP API (payload 2.0) requests in, the service's HTTP
//! API answers out. Everything the API does (tracking, inbox, unsubscribe, admin) lives in
//! [`Api::handle`]; this edge only converts between `lambda_http` and `http` types.

use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use nudge_service::api::{error_reply, Api, Store};
use nudge_service::ports::{Bus, Clock};
use tracing::{info_span, Instrument};

// Reading the request needs no SDK: it lives with the other Lambda inputs (and the fuzz targets).
pub use nudge_lambda_events::api_gateway::{service_path, to_service_request};

/// Answers one HTTP request.
pub async fn handler<S: Store, B: Bus, C: Clock>(
    api: &Api<S, B, C>,
    req: lambda_http::Request,
) -> Result<lambda_http::Response<Body>, lambda_http::Error> {
    let request_id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    // The path only: query strings carry unsubscribe tokens, which stay out of the logs.
    let span = info_span!(
        "request",
        method = %req.method(),
        path = %service_path(&req),
        api_request_id = request_id.as_deref(),
    );
    let reply = match to_service_request(req) {
        Ok(req) => api.handle(req).instrument(span).await,
        Err(e) => error_reply(http::StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
    };
    Ok(to_lambda_response(reply))
}

/// The service's answer as API Gateway takes it: text bodies as text, anything else
/// base64-encoded (by `lambda_http`, for a [`Body::Binary`]).
pub fn to_lambda_response(reply: http::Response<Bytes>) -> lambda_http::Response<Body> {
    let (parts, bytes) = reply.into_parts();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    lambda_http::Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_status_headers_and_text() {
        let reply = error_reply(http::StatusCode::UNAUTHORIZED, "unknown_write_key", "no");
        let out = to_lambda_response(reply);
        assert_eq!(out.status(), 401);
        assert_eq!(out.headers()["content-type"], "application/json");
        assert!(matches!(out.body(), Body::Text(t) if t.contains("unknown_write_key")));
        let binary = to_lambda_response(http::Response::new(Bytes::from_static(&[0xff, 0x00])));
        assert!(matches!(binary.body(), Body::Binary(b) if b == &[0xff, 0x00]));
    }
}
