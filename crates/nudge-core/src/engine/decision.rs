//! What the engine decides: sends (made or suppressed), waits and cancellations.

use crate::rules::model::{Channel, Priority};
use crate::time::Millis;
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a send was suppressed (replay's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    FrequencyCap,
    QuietHours,
    Cooldown,
    Holdout,
    Unsubscribed,
    Priority,
    ExitCondition,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FrequencyCap => "frequency_cap",
            Reason::QuietHours => "quiet_hours",
            Reason::Cooldown => "cooldown",
            Reason::Holdout => "holdout",
            Reason::Unsubscribed => "unsubscribed",
            Reason::Priority => "priority",
            Reason::ExitCondition => "exit_condition",
        }
    }
}

/// A decided send: sent, or suppressed with a reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Send {
    /// Deterministic id (user, trigger, occurrence): keys deliveries and inbox items.
    pub id: String,
    pub at: Millis,
    pub user_id: String,
    pub trigger: String,
    pub priority: Priority,
    pub channel: Channel,
    pub message: String,
    /// Content variant (or experiment variant) name.
    pub variant: String,
    /// Name of the content variant to render (differs from `variant` under experiments).
    pub content: String,
    pub experiment: Option<String>,
    pub reason: Option<Reason>,
    /// What templates read: traits, properties, data, user_id, trigger, variant, event.
    pub context: Map<String, Value>,
}

/// Why a pending wait ended without firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// A `cancel_on` event arrived.
    Event,
    /// A new triggering event restarted the wait.
    Rearm,
    /// The trigger's `check` was false, or once/session already spent, at fire time.
    Condition,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    Send(Send),
    /// Wait until `due`, then re-check (timer id = decision id).
    Wait {
        id: String,
        user_id: String,
        trigger: String,
        due: Millis,
        deferred: bool,
    },
    Cancel {
        id: String,
        user_id: String,
        trigger: String,
        reason: CancelReason,
    },
}

/// The result of handing one input to the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The input's messageId was already applied: nothing changed.
    pub duplicate: bool,
    pub decisions: Vec<Decision>,
    /// The earliest instant the engine must be woken for this user (pending waits, segment
    /// changes), after this input.
    pub next_wake: Option<Millis>,
}

impl Outcome {
    pub fn sends(&self) -> impl Iterator<Item = &Send> {
        self.decisions.iter().filter_map(|d| match d {
            Decision::Send(s) => Some(s),
            _ => None,
        })
    }
}

/// Deterministic decision id from user, trigger and occurrence.
pub fn decision_id(user_id: &str, trigger: &str, occurrence: u64) -> String {
    let mut buf = Vec::with_capacity(user_id.len() + trigger.len() + 10);
    buf.extend_from_slice(user_id.as_bytes());
    buf.push(0);
    buf.extend_from_slice(trigger.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&occurrence.to_le_bytes());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&buf))
}
