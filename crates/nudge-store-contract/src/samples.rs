//! What the checks are made of: writes, timer requests, log entries and inbox items with
//! plain values, and the wall clock the stores' expiry filters read.

use nudge_core::engine::decision::DecisionId;
use nudge_core::insights::Deltas;
use nudge_core::rules::model::Channel;
use nudge_core::time::Millis;
use nudge_service::bus::{BusEvent, DelayCancel, DelayRequest};
use nudge_service::ports::{
    Clock, Delivery, DeliveryStatus, InboxItem, SystemClock, UserWrite, INBOX_RETENTION_MS,
};

/// A day in ms.
pub const DAY: Millis = 24 * 3600 * 1000;

/// Now by the wall clock.
pub fn now() -> Millis {
    SystemClock.now()
}

/// A write of `state` with its outbox and messageIds, made now, with no counter changes.
pub fn write<'a>(
    state: &'a [u8],
    outbox: &'a [BusEvent],
    message_ids: &'a [&'a str],
) -> UserWrite<'a> {
    UserWrite {
        state,
        outbox,
        message_ids,
        now: now(),
        counts: Deltas::none(),
    }
}

/// A "Delay Requested" for the user.
pub fn delay(user_id: &str, due: Millis, version: u64) -> DelayRequest {
    DelayRequest {
        user_id: user_id.into(),
        due,
        version,
    }
}

/// A "Delay Cancelled" for the user.
pub fn cancel(user_id: &str, version: u64) -> DelayCancel {
    DelayCancel {
        user_id: user_id.into(),
        version,
    }
}

/// An outbox event (a timer request of the user).
pub fn requested(user_id: &str, version: u64) -> BusEvent {
    BusEvent::DelayRequested(delay(user_id, now() + DAY, version))
}

/// A delivery log entry being sent, decided at `at`.
pub fn delivery(user_id: &str, id: u64, at: Millis) -> Delivery {
    Delivery {
        id: DecisionId(id),
        user_id: user_id.into(),
        trigger: "welcome".into(),
        channel: Channel::Email,
        message: "welcome_email".into(),
        variant: "default".into(),
        experiment: Some("subject-test".into()),
        status: DeliveryStatus::Sending,
        reason: None,
        error: None,
        at,
        updated_at: at,
        attempts: 0,
        subject: Some("Welcome".into()),
    }
}

/// An unread in-app item created at `created_at`, kept for the inbox retention.
pub fn inbox_item(user_id: &str, id: u64, created_at: Millis) -> InboxItem {
    InboxItem {
        id: DecisionId(id),
        user_id: user_id.into(),
        trigger: "tip".into(),
        variant: "short".into(),
        message: "tip_in_app".into(),
        title: Some(format!("Tip {id}")),
        body: "Try the thing".into(),
        url: Some("https://example.invalid/tip".into()),
        created_at,
        read_at: None,
        expires_at: created_at + INBOX_RETENTION_MS,
    }
}
