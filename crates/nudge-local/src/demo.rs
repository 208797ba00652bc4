//! The demo page of `nudge serve` (`/demo`, off with `--no-demo`): a mock product's onboarding
//! that sends the SaaS example's events with Segment's analytics.js (vendored in
//! `web/vendor/`) and shows the nudges in the inbox widget. `POST /demo/session` hands the
//! page a fresh demo user with its inbox hash and the write key; it never hashes a user id of
//! the caller's choosing.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use nudge_service::api::error_reply;
use nudge_service::signing::inbox_hash;
use serde_json::json;

use crate::handlers::Handlers;
use crate::server::ServeRoute;

const PAGE: &str = include_str!("../../../web/demo/index.html");
const SCRIPT: &str = include_str!("../../../web/demo/demo.js");
const ANALYTICS: &str = include_str!("../../../web/vendor/analytics-next/analytics.min.js");

/// The demo's routes.
pub const DEMO_ROUTES: &[ServeRoute] = &[
    ServeRoute::new(Method::GET, "/demo", |r, m| {
        r.on(m, || async { asset("text/html; charset=utf-8", PAGE) })
    }),
    ServeRoute::new(Method::GET, "/demo/demo.js", |r, m| {
        r.on(m, || async {
            asset("text/javascript; charset=utf-8", SCRIPT)
        })
    }),
    ServeRoute::new(Method::GET, "/demo/analytics.js", |r, m| {
        r.on(m, || async {
            asset("text/javascript; charset=utf-8", ANALYTICS)
        })
    }),
    ServeRoute::new(Method::POST, "/demo/session", |r, m| r.on(m, session)),
    // The page names no icon; without this the browser's guess is a 404 in its console.
    ServeRoute::new(Method::GET, "/favicon.ico", |r, m| {
        r.on(m, || async { StatusCode::NO_CONTENT })
    }),
];

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A new demo user: a random id, its inbox hash, and the write key to send its events with.
async fn session(State(h): State<Arc<Handlers>>) -> Response {
    let mut random = [0u8; 8];
    if getrandom::fill(&mut random).is_err() {
        return error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no randomness for a demo user id; retry",
        )
        .map(Body::from);
    }
    let user_id = format!("demo-{}", hex::encode(random));
    let user_hash = inbox_hash(&h.api.keys.inbox_secret, &user_id);
    let write_key = h.demo_write_key.clone();
    let body = json!({"user_id": user_id, "user_hash": user_hash, "write_key": write_key});
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
