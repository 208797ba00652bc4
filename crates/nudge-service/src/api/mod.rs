//! The HTTP API, the same behind API Gateway (ingest Lambda) and in `nudge serve`: the
//! Segment-compatible tracking endpoints, each user's in-app inbox, one-click unsubscribe,
//! and the admin endpoints. Framework-free: `http` requests in, `http` responses out.
//!
//! This file routes; each group of endpoints has its file (`tracking.rs`, `inbox.rs`,
//! `click.rs`, `unsubscribe.rs`, `admin.rs`, `reports.rs`, `sdk.rs` for the inbox widget's
//! script), and `reply.rs` builds the answers.

mod admin;
mod click;
mod inbox;
mod open;
mod reply;
mod reports;
mod sdk;
mod tracking;
mod unsubscribe;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use nudge_core::rules::CompiledRules;
use serde_json::json;

pub use inbox::{InboxRefusal, InboxView};
pub use reply::{error_reply, json_reply, request_error_reply, Reply};
pub use tracking::basic_username;

use crate::cors;
use crate::ingest::{Endpoint, WriteKeys};
use crate::metrics::Metrics;
use crate::ports::{Bus, Clock, DeliveryStore, InboxStore, ReportStore, TimerStore, UserStore};
use reply::json_bytes_reply;

/// Every storage port at once (what the API reads and, for GDPR, erases).
pub trait Store: UserStore + TimerStore + DeliveryStore + InboxStore + ReportStore {}
impl<T: UserStore + TimerStore + DeliveryStore + InboxStore + ReportStore> Store for T {}

/// The secrets the API checks.
#[derive(Clone, Default)]
pub struct ApiKeys {
    pub write: WriteKeys,
    /// Admin endpoints are off without one.
    pub admin: Option<String>,
    /// Keys the per-user inbox hash (`X-User-Hash`).
    pub inbox_secret: Vec<u8>,
    /// Signs unsubscribe links (and webhooks, in deliver).
    pub signing_secret: Vec<u8>,
}

/// The header carrying the inbox token: hex HMAC-SHA256(inbox secret, userId).
pub const USER_HASH_HEADER: &str = "x-user-hash";

/// The HTTP API over a store, a bus and a clock.
pub struct Api<S, B, C> {
    pub rules: Arc<CompiledRules>,
    pub store: S,
    pub bus: B,
    pub clock: C,
    pub metrics: Arc<dyn Metrics>,
    pub keys: ApiKeys,
}

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    /// Answers one request.
    pub async fn handle(&self, req: Request<Bytes>) -> Reply {
        let started = Instant::now();
        let mut reply = if req.method() == Method::OPTIONS {
            cors::preflight(req.headers())
        } else {
            self.route(&req).await
        };
        // Browser SDKs (analytics.js) and in-app widgets call from other origins.
        cors::allow_origin(req.headers(), reply.headers_mut());
        self.metrics
            .handler_latency("api", started.elapsed().as_secs_f64());
        reply
    }

    async fn route(&self, req: &Request<Bytes>) -> Reply {
        let path = req.uri().path().trim_end_matches('/');
        let method = req.method();
        let segments: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let allow = |allowed: &[Method]| -> Option<Reply> {
            (!allowed.contains(method)).then(|| {
                let mut r = error_reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    &format!("{method} is not allowed on {path}"),
                );
                let list = allowed
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(v) = header::HeaderValue::from_str(&list) {
                    r.headers_mut().insert(header::ALLOW, v);
                }
                r
            })
        };
        match seg.as_slice() {
            ["healthz"] => allow(&[Method::GET])
                .unwrap_or_else(|| json_reply(StatusCode::OK, &json!({"status": "ok"}))),
            ["v1", "users", user, "inbox"] => match allow(&[Method::GET]) {
                Some(r) => r,
                None => self.inbox(req.headers(), user).await,
            },
            // `nudge serve` streams the inbox (its own route); behind API Gateway a Lambda
            // cannot, and the widget polls with `If-None-Match` instead.
            ["v1", "users", user, "inbox", "stream"] => match allow(&[Method::GET]) {
                Some(r) => r,
                None => match self.authorize_inbox(req.headers(), user) {
                    Err(refusal) => refusal.reply(),
                    Ok(()) => error_reply(
                        StatusCode::NOT_IMPLEMENTED,
                        "stream_unavailable",
                        "this deployment does not stream the inbox: poll GET /v1/users/{id}/inbox with If-None-Match",
                    ),
                },
            },
            ["v1", "users", user, "inbox", item, action @ ("read" | "dismiss")] => {
                match allow(&[Method::POST]) {
                    Some(r) => r,
                    None => self.inbox_action(req.headers(), user, item, action).await,
                }
            }
            ["v1", "c", token] => match allow(&[Method::GET]) {
                Some(r) => r,
                None => self.click(token).await,
            },
            ["v1", "o", file] => match allow(&[Method::GET]) {
                Some(r) => r,
                None => self.open(file).await,
            },
            ["v1", "sdk", "inbox.js"] => allow(&[Method::GET]).unwrap_or_else(sdk::inbox_js),
            ["v1", "unsubscribe"] => match allow(&[Method::GET, Method::POST]) {
                Some(r) => r,
                None => self.unsubscribe(req).await,
            },
            ["v1", "admin", "reports", rest @ ..] => {
                if let Some(r) = self.admin_auth(req.headers()) {
                    return r;
                }
                match allow(&[Method::GET]) {
                    Some(r) => r,
                    None => self.reports(req, rest).await,
                }
            }
            ["v1", "admin", "users", user, rest @ ..] => {
                if let Some(r) = self.admin_auth(req.headers()) {
                    return r;
                }
                match (rest, method) {
                    ([], &Method::DELETE) => self.erase(user).await,
                    ([], &Method::GET) => self.explain(user, None, true).await,
                    ([], _) => {
                        allow(&[Method::GET, Method::DELETE]).unwrap_or_else(|| not_found(path))
                    }
                    (_, &Method::GET) => self.admin_view(req, user, rest).await,
                    _ => allow(&[Method::GET]).unwrap_or_else(|| not_found(path)),
                }
            }
            // Any other admin path: the key first, so that without it every admin path is
            // refused alike and none is told apart from one that does not exist.
            ["v1", "admin", ..] => self
                .admin_auth(req.headers())
                .unwrap_or_else(|| not_found(path)),
            // analytics.js reports its own health here (the host of the events, unless told
            // otherwise); nothing in it is about users, so it is taken and let go.
            ["v1", "m"] => allow(&[Method::POST]).unwrap_or_else(|| {
                json_bytes_reply(StatusCode::OK, Bytes::from_static(br#"{"success":true}"#))
            }),
            _ => match Endpoint::of_path(path) {
                Some(endpoint) => match allow(&[Method::POST]) {
                    Some(r) => r,
                    None => self.track(req, endpoint).await,
                },
                None => not_found(path),
            },
        }
    }
}

fn not_found(path: &str) -> Reply {
    error_reply(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no endpoint at {path}"),
    )
}

/// The first value of a query parameter.
fn query_param(req: &Request<Bytes>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
