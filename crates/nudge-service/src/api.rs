//! The HTTP API, the same behind API Gateway (ingest Lambda) and in `nudge serve`: the
//! Segment-compatible tracking endpoints, each user's in-app inbox, one-click unsubscribe,
//! and the admin endpoints. Framework-free: `http` requests in, `http` responses out.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use nudge_core::engine::decision::DecisionId;
use nudge_core::engine::{Decision, Engine, Send};
use nudge_core::explain::{explain, Evidence};
use nudge_core::rules::CompiledRules;
use nudge_core::state::UserState;
use nudge_core::time::{format_instant, Millis};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::bus::{AcceptedEvent, AcceptedEvents, BusEvent};
use crate::cors;
use crate::ingest::{constant_time_eq, intake, pack, Endpoint, RequestError, WriteKeys};
use crate::metrics::Metrics;
use crate::ports::{
    Bus, Clock, Delivery, DeliveryStore, InboxItem, InboxStore, StoreError, TimerStore, UserStore,
};
use crate::signing::{verify_inbox_hash, verify_unsubscribe_token};

/// Every storage port at once (what the API reads and, for GDPR, erases).
pub trait Store: UserStore + TimerStore + DeliveryStore + InboxStore {}
impl<T: UserStore + TimerStore + DeliveryStore + InboxStore> Store for T {}

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
/// How many delivery log entries the admin endpoints show.
const RECENT: usize = 50;

/// The HTTP API over a store, a bus and a clock.
pub struct Api<S, B, C> {
    pub rules: Arc<CompiledRules>,
    pub store: S,
    pub bus: B,
    pub clock: C,
    pub metrics: Arc<dyn Metrics>,
    pub keys: ApiKeys,
}

type Reply = Response<Bytes>;

/// A JSON response.
pub fn json_reply(status: StatusCode, body: &Value) -> Reply {
    json_bytes_reply(status, Bytes::from(body.to_string()))
}

/// A response of JSON already serialized.
fn json_bytes_reply(status: StatusCode, body: Bytes) -> Reply {
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

fn html_reply(status: StatusCode, body: String) -> Reply {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
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
            ["v1", "users", user, "inbox", item, action @ ("read" | "dismiss")] => {
                match allow(&[Method::POST]) {
                    Some(r) => r,
                    None => self.inbox_action(req.headers(), user, item, action).await,
                }
            }
            ["v1", "unsubscribe"] => match allow(&[Method::GET, Method::POST]) {
                Some(r) => r,
                None => self.unsubscribe(req).await,
            },
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

    async fn track(&self, req: &Request<Bytes>, endpoint: Endpoint) -> Reply {
        // RudderStack's sendBeacon transport can set no header: its key rides in the query.
        let key = basic_username(req.headers()).or_else(|| query_param(req, "writeKey"));
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
            match self.bus.publish(&pack(out.accepted)).await {
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

    /// The user's inbox, if the request proves it acts for that user.
    fn inbox_auth(&self, headers: &HeaderMap, user: &str) -> Option<Reply> {
        if self.keys.inbox_secret.is_empty() {
            return Some(error_reply(
                StatusCode::FORBIDDEN,
                "inbox_disabled",
                "the inbox needs an inbox secret (--inbox-secret / NUDGE_INBOX_SECRET)",
            ));
        }
        let Some(hash) = headers.get(USER_HASH_HEADER).and_then(|v| v.to_str().ok()) else {
            return Some(error_reply(
                StatusCode::UNAUTHORIZED,
                "missing_user_hash",
                "send X-User-Hash: hex HMAC-SHA256(inbox secret, userId), computed by your server",
            ));
        };
        if !verify_inbox_hash(&self.keys.inbox_secret, user, hash) {
            return Some(error_reply(
                StatusCode::FORBIDDEN,
                "invalid_user_hash",
                "X-User-Hash does not match this user",
            ));
        }
        None
    }

    async fn inbox(&self, headers: &HeaderMap, user: &str) -> Reply {
        if let Some(r) = self.inbox_auth(headers, user) {
            return r;
        }
        match self.store.list(user, self.clock.now()).await {
            Ok(items) => {
                let unread = items.iter().filter(|i| i.read_at.is_none()).count();
                let items: Vec<Value> = items.iter().map(inbox_json).collect();
                json_reply(
                    StatusCode::OK,
                    &json!({"user_id": user, "unread": unread, "items": items}),
                )
            }
            Err(e) => store_failure(&e),
        }
    }

    async fn inbox_action(
        &self,
        headers: &HeaderMap,
        user: &str,
        item: &str,
        action: &str,
    ) -> Reply {
        if let Some(r) = self.inbox_auth(headers, user) {
            return r;
        }
        let Ok(id) = item.parse::<DecisionId>() else {
            return error_reply(
                StatusCode::NOT_FOUND,
                "unknown_item",
                &format!("`{item}` is not an inbox item id (16 hex digits)"),
            );
        };
        let done = if action == "read" {
            self.store.mark_read(user, id, self.clock.now()).await
        } else {
            self.store.dismiss(user, id).await
        };
        match done {
            Ok(true) => json_reply(StatusCode::OK, &json!({"success": true})),
            Ok(false) => error_reply(
                StatusCode::NOT_FOUND,
                "unknown_item",
                &format!("user has no inbox item {item}"),
            ),
            Err(e) => store_failure(&e),
        }
    }

    async fn unsubscribe(&self, req: &Request<Bytes>) -> Reply {
        let token = query_param(req, "token");
        let Some(token) = token else {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "missing_token",
                "the link has no token",
            );
        };
        let claim = match verify_unsubscribe_token(&self.keys.signing_secret, &token) {
            Ok(c) => c,
            Err(e) => {
                return error_reply(
                    StatusCode::FORBIDDEN,
                    "invalid_token",
                    &format!("this unsubscribe link is not valid: {e}"),
                )
            }
        };
        if req.method() == Method::GET {
            // Mail scanners open links: a GET only asks; the POST (the button, or the mail
            // client's RFC 8058 one-click POST) unsubscribes.
            return html_reply(StatusCode::OK, confirm_page(&token));
        }
        let now = self.clock.now();
        let event = AcceptedEvent {
            user_id: claim.user_id.clone(),
            // One unsubscribe per link, however often it is clicked.
            message_id: format!("unsubscribe-{}", claim.decision),
            at: now,
            received_at: now,
            message: json!({
                "type": "track",
                "event": nudge_core::engine::EMAIL_UNSUBSCRIBED,
                "userId": claim.user_id,
                "messageId": format!("unsubscribe-{}", claim.decision),
                "properties": {"decision_id": claim.decision.to_string(), "method": "link"},
                "timestamp": format_instant(now),
            }),
        };
        let published = self
            .bus
            .publish(&[BusEvent::EventsAccepted(AcceptedEvents {
                events: vec![event],
            })])
            .await;
        if let Err(e) = published {
            warn!(error = %e, "could not record an unsubscribe");
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "could not record the unsubscribe; retry",
            );
        }
        info!(user_id = %claim.user_id, decision_id = %claim.decision, "unsubscribed from email");
        let wants_html = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if wants_html {
            html_reply(
                StatusCode::OK,
                page(
                    "Unsubscribed",
                    "<p>You will not get these emails any more.</p>",
                ),
            )
        } else {
            json_reply(
                StatusCode::OK,
                &json!({"success": true, "unsubscribed": true}),
            )
        }
    }

    fn admin_auth(&self, headers: &HeaderMap) -> Option<Reply> {
        let Some(admin) = self.keys.admin.as_deref().filter(|k| !k.is_empty()) else {
            return Some(error_reply(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "admin endpoints need an admin key (--admin-key / NUDGE_ADMIN_KEY)",
            ));
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            None => Some(error_reply(
                StatusCode::UNAUTHORIZED,
                "missing_admin_key",
                "send Authorization: Bearer <admin key>",
            )),
            Some(k) if constant_time_eq(k.trim().as_bytes(), admin.as_bytes()) => None,
            Some(_) => Some(error_reply(
                StatusCode::FORBIDDEN,
                "invalid_admin_key",
                "the admin key is not valid",
            )),
        }
    }

    async fn admin_view(&self, req: &Request<Bytes>, user: &str, rest: &[&str]) -> Reply {
        match rest {
            ["timers"] => match self.store.pending(user).await {
                Ok(t) => json_reply(
                    StatusCode::OK,
                    &json!({"user_id": user, "timer": t.map(|t| json!({"due": format_instant(t.due), "version": t.version}))}),
                ),
                Err(e) => store_failure(&e),
            },
            ["decisions"] => match self.store.recent(user, RECENT).await {
                Ok(d) => json_reply(
                    StatusCode::OK,
                    &json!({"user_id": user, "decisions": d.iter().map(delivery_json).collect::<Vec<_>>()}),
                ),
                Err(e) => store_failure(&e),
            },
            ["explain"] => {
                let trigger = query_param(req, "trigger");
                self.explain(user, trigger.as_deref(), false).await
            }
            _ => not_found(req.uri().path()),
        }
    }

    /// The user's state summary (`summary_only`) or the full explanation.
    async fn explain(&self, user: &str, trigger: Option<&str>, summary_only: bool) -> Reply {
        let rules = &*self.rules;
        let stored = match self.store.load(user, &[]).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return error_reply(
                    StatusCode::NOT_FOUND,
                    "unknown_user",
                    &format!("no state is stored for user `{user}`"),
                )
            }
            Err(e) => return store_failure(&e),
        };
        let mut state = match UserState::decode(&stored.state, rules) {
            Ok(s) => s,
            Err(e) => {
                return error_reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "corrupt_state",
                    &e.to_string(),
                )
            }
        };
        let now = self.clock.now();
        // Read conditions at now, as if due timers had fired (on a copy; nothing is stored).
        let _ = Engine::new(rules).advance(&mut state, user, now);
        let deliveries = match self.store.recent(user, RECENT).await {
            Ok(d) => d,
            Err(e) => return store_failure(&e),
        };
        let timer = match self.store.pending(user).await {
            Ok(t) => t,
            Err(e) => return store_failure(&e),
        };
        let mut decisions: Vec<(Millis, Decision)> = deliveries
            .iter()
            .filter_map(|d| decision_of(rules, d).map(|s| (d.at, Decision::Send(Box::new(s)))))
            .collect();
        decisions.sort_by_key(|(at, _)| *at);
        let evidence = Evidence {
            rules,
            user_id: user,
            state: &state,
            decisions: &decisions,
            activities: &[],
            at: now,
        };
        match explain(&evidence, trigger) {
            Ok(x) if summary_only => json_reply(
                StatusCode::OK,
                &json!({
                    "user_id": user,
                    "version": stored.version,
                    "user": x.user,
                    "timer": timer.map(|t| json!({"due": format_instant(t.due), "version": t.version})),
                    "decisions": deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
                }),
            ),
            Ok(x) => json_reply(
                StatusCode::OK,
                &serde_json::to_value(&x).unwrap_or(Value::Null),
            ),
            Err(e) => error_reply(StatusCode::NOT_FOUND, "unknown_trigger", &e.to_string()),
        }
    }

    async fn erase(&self, user: &str) -> Reply {
        match self.store.erase_user(user).await {
            Ok(()) => {
                info!(user_id = %user, "user erased");
                json_reply(StatusCode::OK, &json!({"success": true, "erased": user}))
            }
            Err(e) => store_failure(&e),
        }
    }
}

/// A 429 that SDKs honour: they wait `Retry-After` seconds, then send the same events again.
fn overloaded(retry_after: std::time::Duration) -> Reply {
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

/// The first value of a query parameter.
fn query_param(req: &Request<Bytes>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether an SDK says this request is a retry: Segment's `X-Retry-Count` (analytics.js,
/// the mobile SDKs) or RudderStack's `Rsa-Retry-Attempt`, above 0.
fn is_retry(headers: &HeaderMap) -> bool {
    ["x-retry-count", "rsa-retry-attempt"].iter().any(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .is_some_and(|n| n > 0)
    })
}

fn not_found(path: &str) -> Reply {
    error_reply(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no endpoint at {path}"),
    )
}

fn store_failure(e: &crate::ports::StoreError) -> Reply {
    warn!(error = %e, "store failure");
    error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the store is unavailable; retry later",
    )
}

/// The request body, gunzipped when `Content-Encoding: gzip` (RudderStack SDKs compress);
/// decompression stops one byte past `limit`, so a small bomb cannot grow large.
fn decoded_body(
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

fn inbox_json(i: &InboxItem) -> Value {
    json!({
        "id": i.id.to_string(),
        "trigger": i.trigger,
        "message": i.message,
        "title": i.title,
        "body": i.body,
        "url": i.url,
        "created_at": format_instant(i.created_at),
        "read_at": i.read_at.map(format_instant),
    })
}

#[derive(Serialize)]
struct DeliveryView<'a> {
    id: String,
    trigger: &'a str,
    channel: &'a str,
    message: &'a str,
    variant: &'a str,
    experiment: Option<&'a str>,
    status: crate::ports::DeliveryStatus,
    reason: Option<&'a str>,
    error: Option<&'a str>,
    at: String,
    updated_at: String,
    attempts: u32,
    subject: Option<&'a str>,
}

fn delivery_json(d: &Delivery) -> Value {
    serde_json::to_value(DeliveryView {
        id: d.id.to_string(),
        trigger: &d.trigger,
        channel: d.channel.as_str(),
        message: &d.message,
        variant: &d.variant,
        experiment: d.experiment.as_deref(),
        status: d.status,
        reason: d.reason.as_deref(),
        error: d.error.as_deref(),
        at: format_instant(d.at),
        updated_at: format_instant(d.updated_at),
        attempts: d.attempts,
        subject: d.subject.as_deref(),
    })
    .unwrap_or(Value::Null)
}

/// The send a delivery log entry records, for explanations (content context is not kept).
fn decision_of(rules: &CompiledRules, d: &Delivery) -> Option<Send> {
    let t = rules.triggers.iter().find(|t| *t.id == *d.trigger)?;
    Some(Send {
        id: d.id,
        at: d.at,
        user_id: d.user_id.clone(),
        trigger: t.id.clone(),
        priority: t.priority,
        channel: d.channel,
        message: d.message.as_str().into(),
        variant: d.variant.as_str().into(),
        content: d.variant.as_str().into(),
        experiment: d.experiment.as_deref().map(Into::into),
        reason: d
            .reason
            .as_deref()
            .and_then(|r| serde_json::from_value(Value::String(r.to_string())).ok()),
        context: Default::default(),
    })
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:4em auto\"><h1>{title}</h1>{body}</body></html>"
    )
}

fn confirm_page(token: &str) -> String {
    // The token is URL-safe base64 and hex joined by dots: nothing to escape.
    page(
        "Unsubscribe",
        &format!(
            "<p>Stop getting these emails?</p><form method=\"post\" action=\"?token={token}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>"
        ),
    )
}

/// Why a request was refused, for callers that build their own envelope (Lambda).
pub fn request_error_reply(e: &RequestError) -> Reply {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_reply(status, e.code(), &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
