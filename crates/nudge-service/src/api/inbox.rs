//! Each user's in-app inbox, for the user's own app (the inbox widget): authenticated by the
//! user hash the app's server computes (`X-User-Hash`), so no user reads or changes another's
//! messages. The inbox answers with an `ETag` (a poll with `If-None-Match` gets 304 when
//! nothing changed); reading and dismissing record engagement events; each item with a link
//! carries its click link (`/v1/c/<token>`), which counts the click and redirects.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use nudge_core::engine::decision::DecisionId;
use nudge_core::engine::engagement::{About, IN_APP_MESSAGE_DISMISSED, IN_APP_MESSAGE_VIEWED};
use nudge_core::event::Message;
use nudge_core::rules::model::Channel;
use nudge_core::time::format_instant;
use serde_json::{json, Value};
use tracing::warn;

use super::reply::{error_reply, json_bytes_reply, json_reply, store_failure, Reply};
use super::{Api, Store, USER_HASH_HEADER};
use crate::ports::{Bus, Clock, InboxItem, StoreError};
use crate::signing::{click_token, verify_inbox_hash, ClickClaim};

/// A user's inbox as the API shows it: its JSON and that JSON's entity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxView {
    pub json: String,
    pub etag: String,
}

/// What the user's app does to one inbox item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxAction {
    Read,
    Dismiss,
}

impl InboxAction {
    /// The word of the path (`.../read`, `.../dismiss`).
    pub fn as_str(self) -> &'static str {
        match self {
            InboxAction::Read => "read",
            InboxAction::Dismiss => "dismiss",
        }
    }
}

/// Why a request may not see or change an inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InboxRefusal {
    #[error("the inbox needs an inbox secret (--inbox-secret / NUDGE_INBOX_SECRET)")]
    Disabled,
    #[error("send X-User-Hash: hex HMAC-SHA256(inbox secret, userId), computed by your server")]
    MissingHash,
    #[error("X-User-Hash does not match this user")]
    WrongHash,
}

impl InboxRefusal {
    /// The refusal as the API answers it.
    pub fn reply(self) -> Reply {
        let (status, code) = match self {
            InboxRefusal::Disabled => (StatusCode::FORBIDDEN, "inbox_disabled"),
            InboxRefusal::MissingHash => (StatusCode::UNAUTHORIZED, "missing_user_hash"),
            InboxRefusal::WrongHash => (StatusCode::FORBIDDEN, "invalid_user_hash"),
        };
        error_reply(status, code, &self.to_string())
    }
}

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    /// Whether the request proves it acts for `user` (the user hash in `X-User-Hash`).
    pub fn authorize_inbox(&self, headers: &HeaderMap, user: &str) -> Result<(), InboxRefusal> {
        if self.keys.inbox_secret.is_empty() {
            return Err(InboxRefusal::Disabled);
        }
        let Some(hash) = headers.get(USER_HASH_HEADER).and_then(|v| v.to_str().ok()) else {
            return Err(InboxRefusal::MissingHash);
        };
        if !verify_inbox_hash(&self.keys.inbox_secret, user, hash) {
            return Err(InboxRefusal::WrongHash);
        }
        Ok(())
    }

    /// The user's inbox now (for the inbox endpoint and `nudge serve`'s live stream).
    pub async fn inbox_view(&self, user: &str) -> Result<InboxView, StoreError> {
        let items = self.store.list(user, self.clock.now()).await?;
        let unread = items.iter().filter(|i| i.read_at.is_none()).count();
        let items: Vec<Value> = items.iter().map(|i| self.inbox_json(i)).collect();
        let json = json!({"user_id": user, "unread": unread, "items": items}).to_string();
        let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(json.as_bytes()));
        Ok(InboxView { json, etag })
    }

    pub(super) async fn inbox(&self, headers: &HeaderMap, user: &str) -> Reply {
        if let Err(refusal) = self.authorize_inbox(headers, user) {
            return refusal.reply();
        }
        let view = match self.inbox_view(user).await {
            Ok(v) => v,
            Err(e) => return store_failure(&e),
        };
        let unchanged = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == view.etag));
        let mut reply = if unchanged {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            json_bytes_reply(StatusCode::OK, Bytes::from(view.json))
        };
        if let Ok(tag) = HeaderValue::from_str(&view.etag) {
            reply.headers_mut().insert(header::ETAG, tag);
        }
        // Personal data: a shared cache must not keep it; the browser revalidates each time.
        reply.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
        reply
    }

    pub(super) async fn inbox_action(
        &self,
        headers: &HeaderMap,
        user: &str,
        item: &str,
        action: InboxAction,
    ) -> Reply {
        if let Err(refusal) = self.authorize_inbox(headers, user) {
            return refusal.reply();
        }
        let Ok(id) = item.parse::<DecisionId>() else {
            return error_reply(
                StatusCode::NOT_FOUND,
                "unknown_item",
                &format!("`{item}` is not an inbox item id (16 hex digits)"),
            );
        };
        let now = self.clock.now();
        let (done, event) = match action {
            InboxAction::Read => (
                self.store.mark_read(user, id, now).await,
                IN_APP_MESSAGE_VIEWED,
            ),
            InboxAction::Dismiss => (self.store.dismiss(user, id).await, IN_APP_MESSAGE_DISMISSED),
        };
        let item = match done {
            Ok(Some(item)) => item,
            Ok(None) => {
                return error_reply(
                    StatusCode::NOT_FOUND,
                    "unknown_item",
                    &format!("user has no inbox item {item}"),
                )
            }
            Err(e) => return store_failure(&e),
        };
        // Once per item and kind, however often the app says so.
        let message_id = format!("{}-{id}", action.as_str());
        let properties = About {
            decision: &id.to_string(),
            trigger: &item.trigger,
            variant: &item.variant,
            channel: Channel::InApp.as_str(),
            url: None,
        }
        .properties();
        let message = Message::track(user, &message_id, event, properties, now);
        if let Err(e) = self.record_engagement(message).await {
            // Stored, not counted: the app may send it again (both are idempotent).
            warn!(error = %e, user_id = user, "could not record an inbox engagement event");
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the change is stored but could not be recorded; retry",
            );
        }
        json_reply(StatusCode::OK, &json!({"success": true}))
    }

    /// An item as the inbox shows it, with its click link (a path on this API) if it has a
    /// link.
    fn inbox_json(&self, i: &InboxItem) -> Value {
        let click = i.url.as_ref().map(|url| {
            let claim = ClickClaim {
                user_id: i.user_id.clone(),
                decision: i.id,
                channel: Channel::InApp,
                trigger: i.trigger.clone(),
                variant: i.variant.clone(),
                url: url.clone(),
            };
            format!("/v1/c/{}", click_token(&self.keys.signing_secret, &claim))
        });
        json!({
            "id": i.id.to_string(),
            "trigger": i.trigger,
            "message": i.message,
            "title": i.title,
            "body": i.body,
            "url": i.url,
            "click": click,
            "created_at": format_instant(i.created_at),
            "read_at": i.read_at.map(format_instant),
        })
    }
}
