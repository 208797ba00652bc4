//! The admin endpoints, behind their own key: a user's state summary, pending timer,
//! delivery log and explanation, and the GDPR erase.

use http::{header, HeaderMap, HeaderValue, StatusCode};
use nudge_core::engine::{Decision, Engine, Send};
use nudge_core::explain::{explain, Evidence};
use nudge_core::rules::CompiledRules;
use nudge_core::state::UserState;
use nudge_core::time::{format_instant, Millis};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::info;

use super::reply::{error_reply, json_reply, store_failure, Reply};
use super::{Api, Store};
use crate::constant_time::same_secret;
use crate::ports::{Bus, Clock, Delivery};

/// The challenge of an admin refusal (RFC 9110 asks a 401 for one).
const ADMIN_CHALLENGE: &str = "Bearer realm=\"nudge admin\"";

/// How many delivery log entries the admin endpoints show.
const RECENT: usize = 50;

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    /// `None` when the request carries the admin key; otherwise the refusal, one answer for a
    /// missing key and a wrong one alike (and the same on every admin path), so a caller
    /// learns nothing but "not allowed".
    pub(super) fn admin_auth(&self, headers: &HeaderMap) -> Option<Reply> {
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
        if presented.is_some_and(|k| same_secret(k.trim().as_bytes(), admin.as_bytes())) {
            return None;
        }
        let mut refusal = error_reply(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_key",
            "send the admin key: Authorization: Bearer <admin key>",
        );
        refusal.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(ADMIN_CHALLENGE),
        );
        Some(refusal)
    }

    pub(super) async fn user_timer(&self, user: &str) -> Reply {
        match self.store.pending(user).await {
            Ok(t) => json_reply(
                StatusCode::OK,
                &json!({"user_id": user, "timer": t.map(|t| json!({"due": format_instant(t.due), "version": t.version}))}),
            ),
            Err(e) => store_failure(&e),
        }
    }

    pub(super) async fn user_decisions(&self, user: &str) -> Reply {
        match self.store.recent(user, RECENT).await {
            Ok(d) => json_reply(
                StatusCode::OK,
                &json!({"user_id": user, "decisions": d.iter().map(delivery_json).collect::<Vec<_>>()}),
            ),
            Err(e) => store_failure(&e),
        }
    }

    /// The user's state summary (`summary_only`) or the full explanation.
    pub(super) async fn explain(
        &self,
        user: &str,
        trigger: Option<&str>,
        summary_only: bool,
    ) -> Reply {
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

    pub(super) async fn erase(&self, user: &str) -> Reply {
        match self.store.erase_user(user).await {
            Ok(()) => {
                info!(user_id = %user, "user erased");
                json_reply(StatusCode::OK, &json!({"success": true, "erased": user}))
            }
            Err(e) => store_failure(&e),
        }
    }
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

pub(super) fn delivery_json(d: &Delivery) -> Value {
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
pub(super) fn decision_of(rules: &CompiledRules, d: &Delivery) -> Option<Send> {
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
