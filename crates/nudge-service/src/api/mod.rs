//! The HTTP API, the same behind API Gateway (ingest Lambda) and in `nudge serve`: the
//! Segment-compatible tracking endpoints, each user's in-app inbox, one-click unsubscribe,
//! and the admin endpoints. Framework-free: `http` requests in, `http` responses out.
//!
//! This file dispatches the operations `routes.rs` lists (the OpenAPI description,
//! `openapi.rs`, documents each); each group of endpoints has its file (`tracking.rs`,
//! `inbox.rs`, `click.rs`, `open.rs`, `unsubscribe.rs`, `admin.rs`, `reports.rs`, `sdk.rs` for
//! the inbox widget's script), and `reply.rs` builds the answers.

mod admin;
mod click;
mod inbox;
mod open;
pub mod openapi;
mod reply;
mod reports;
pub mod routes;
mod sdk;
mod tracking;
mod unsubscribe;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use nudge_core::rules::CompiledRules;
use serde_json::json;

pub use inbox::{InboxAction, InboxRefusal, InboxView};
pub use reply::{error_reply, json_reply, method_not_allowed, request_error_reply, Reply};
pub use tracking::basic_username;

use crate::cors;
use crate::ingest::{Endpoint, WriteKeys};
use crate::metrics::Metrics;
use crate::ports::{Bus, Clock, DeliveryStore, InboxStore, ReportStore, TimerStore, UserStore};
use reply::json_bytes_reply;
use reports::ReportScope;
use routes::{Operation, Params, Route};

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
        let path = req.uri().path();
        let method = req.method();
        let segments = routes::path_segments(path);
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        // Under /v1/admin the key comes first, so that without it every admin path is refused
        // alike and none is told apart from one that does not exist.
        if routes::is_admin_path(&seg) {
            if let Some(refusal) = self.admin_auth(req.headers()) {
                return refusal;
            }
        }
        let here = routes::routes_at(&seg);
        let Some((route, params)) = here.iter().find(|(r, _)| r.method == method) else {
            if here.is_empty() {
                return not_found(path);
            }
            let allowed: Vec<Method> = here.iter().map(|(r, _)| r.method.clone()).collect();
            return method_not_allowed(method, path, &allowed);
        };
        self.dispatch(route, *params, req).await
    }

    async fn dispatch(&self, route: &Route, p: Params<'_>, req: &Request<Bytes>) -> Reply {
        let headers = req.headers();
        match route.operation {
            Operation::Health => json_reply(StatusCode::OK, &json!({"status": "ok"})),
            Operation::Description => openapi::description(),
            Operation::Track => match Endpoint::of_path(route.path) {
                Some(endpoint) => self.track(req, endpoint).await,
                // The routes' own test holds every tracking route to an endpoint.
                None => not_found(req.uri().path()),
            },
            // analytics.js reports its own health here (the host of the events, unless told
            // otherwise); nothing in it is about users, so it is taken and let go.
            Operation::SdkMetrics => {
                json_bytes_reply(StatusCode::OK, Bytes::from_static(br#"{"success":true}"#))
            }
            Operation::Inbox => self.inbox(headers, p.get(0)).await,
            // `nudge serve` streams the inbox (its own route); behind API Gateway a Lambda
            // cannot, and the widget polls with `If-None-Match` instead.
            Operation::InboxStream => match self.authorize_inbox(headers, p.get(0)) {
                Err(refusal) => refusal.reply(),
                Ok(()) => error_reply(
                    StatusCode::NOT_IMPLEMENTED,
                    "stream_unavailable",
                    "this deployment does not stream the inbox: poll GET /v1/users/{id}/inbox with If-None-Match",
                ),
            },
            Operation::InboxRead => {
                self.inbox_action(headers, p.get(0), p.get(1), InboxAction::Read)
                    .await
            }
            Operation::InboxDismiss => {
                self.inbox_action(headers, p.get(0), p.get(1), InboxAction::Dismiss)
                    .await
            }
            Operation::Click => self.click(p.get(0)).await,
            Operation::OpenPixel => self.open(p.get(0)).await,
            Operation::InboxWidget => sdk::inbox_js(),
            Operation::Unsubscribe => self.unsubscribe(req).await,
            Operation::User => self.explain(p.get(0), None, true).await,
            Operation::EraseUser => self.erase(p.get(0)).await,
            Operation::UserTimer => self.user_timer(p.get(0)).await,
            Operation::UserDecisions => self.user_decisions(p.get(0)).await,
            Operation::ExplainUser => {
                let trigger = query_param(req, "trigger");
                self.explain(p.get(0), trigger.as_deref(), false).await
            }
            Operation::Report => self.reports(req, ReportScope::All).await,
            Operation::TriggerReport => self.reports(req, ReportScope::Trigger(p.get(0))).await,
            Operation::FunnelReport => self.reports(req, ReportScope::Funnel(p.get(0))).await,
            Operation::ExperimentReport => {
                self.reports(req, ReportScope::Experiment(p.get(0))).await
            }
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
