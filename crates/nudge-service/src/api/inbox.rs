//! Each user's in-app inbox, for the user's own app: authenticated by the user hash the
//! app's server computes (`X-User-Hash`), so no user reads or changes another's messages.

use http::{HeaderMap, StatusCode};
use nudge_core::engine::decision::DecisionId;
use nudge_core::time::format_instant;
use serde_json::{json, Value};

use super::reply::{error_reply, json_reply, store_failure, Reply};
use super::{Api, Store, USER_HASH_HEADER};
use crate::ports::{Bus, Clock, InboxItem};
use crate::signing::verify_inbox_hash;

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    /// The user's inbox, if the request proves it acts for that user.
    pub(super) fn inbox_auth(&self, headers: &HeaderMap, user: &str) -> Option<Reply> {
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

    pub(super) async fn inbox(&self, headers: &HeaderMap, user: &str) -> Reply {
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

    pub(super) async fn inbox_action(
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
}

pub(super) fn inbox_json(i: &InboxItem) -> Value {
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
