//! What the engine decides: sends (made or suppressed), waits and cancellations.

use crate::rules::model::{Channel, Priority};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Why a send was suppressed (replay's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Deterministic id of a decision: a 64-bit hash of (user, trigger, occurrence). Keys timers,
/// deliveries and inbox items within one user's partition (where a collision needs billions
/// of one user's decisions); written as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DecisionId(pub u64);

impl std::fmt::Display for DecisionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for DecisionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for DecisionId {
    type Err = std::num::ParseIntError;

    /// Reads the 16 hex digits [`DecisionId`]'s `Display` writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(DecisionId)
    }
}

impl<'de> Deserialize<'de> for DecisionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A decided send: sent, or suppressed with a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Send {
    /// Deterministic id (user, trigger, occurrence): keys deliveries and inbox items.
    pub id: DecisionId,
    pub at: Millis,
    pub user_id: String,
    pub trigger: Arc<str>,
    pub priority: Priority,
    pub channel: Channel,
    pub message: Arc<str>,
    /// Content variant (or experiment variant) name.
    pub variant: Arc<str>,
    /// Name of the content variant to render (differs from `variant` under experiments).
    pub content: Arc<str>,
    pub experiment: Option<Arc<str>>,
    pub reason: Option<Reason>,
    /// What templates read (traits, the triggering event's properties, data), captured
    /// when the send went out; empty for suppressed ones. `render` builds the globals.
    pub context: SendContext,
}

/// A send's template data as values; [`SendContext::globals`] builds the template globals
/// (`traits`, `properties`, `data`, `event`, `user_id`, `trigger`, `variant`) when rendering.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SendContext {
    pub traits: Vec<(String, crate::state::Scalar)>,
    pub properties: Vec<(String, crate::state::Scalar)>,
    pub data: Vec<(String, Value)>,
    /// When the triggering event happened (`event.timestamp`).
    pub origin: Millis,
}

impl SendContext {
    /// The template globals for `send`.
    pub fn globals(&self, send: &Send) -> Map<String, Value> {
        let mut g = Map::new();
        g.insert("user_id".into(), Value::String(send.user_id.clone()));
        g.insert("trigger".into(), Value::String(send.trigger.to_string()));
        g.insert("variant".into(), Value::String(send.variant.to_string()));
        g.insert(
            "traits".into(),
            Value::Object(
                self.traits
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        );
        let mut properties = Map::new();
        for (k, v) in &self.properties {
            insert_path(&mut properties, k, v.to_json());
        }
        g.insert("properties".into(), Value::Object(properties));
        g.insert(
            "data".into(),
            Value::Object(self.data.iter().cloned().collect()),
        );
        let mut event = Map::new();
        event.insert(
            "timestamp".into(),
            Value::String(crate::time::format_instant(self.origin)),
        );
        g.insert("event".into(), Value::Object(event));
        g
    }
}

/// Sets `a.b.c` inside an object, creating the objects on the way.
fn insert_path(m: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            m.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let entry = m
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                insert_path(inner, rest, v);
            }
        }
    }
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
    /// Boxed: sends are rarer than waits and cancels, and much larger.
    Send(Box<Send>),
    /// Wait until `due`, then re-check. `id` is the timer's: a later `Wait` with the same id
    /// moves that timer (a re-arm); a `Cancel` with it deletes it.
    Wait {
        id: DecisionId,
        trigger: Arc<str>,
        due: Millis,
        deferred: bool,
    },
    Cancel {
        id: DecisionId,
        trigger: Arc<str>,
        reason: CancelReason,
    },
}

/// Something the engine saw that reports count, besides its decisions, at the instant it
/// belongs to (a conversion belongs to its send's, a funnel step to the user's entry).
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub at: Millis,
    pub kind: FactKind,
}

/// What a [`Fact`] records.
#[derive(Debug, Clone, PartialEq)]
pub enum FactKind {
    /// A trigger started: a wait armed, or a send about to meet its guards. `variant` is
    /// the user's experiment arm when the trigger runs one.
    Started {
        trigger: Arc<str>,
        variant: Option<Arc<str>>,
        channel: Channel,
    },
    /// A trigger's wait ended without a send: a `cancel_on` event, a re-arm replacing it, or
    /// its `check` (or spent `once`) at fire time.
    Cancelled {
        trigger: Arc<str>,
        variant: Option<Arc<str>>,
        channel: Channel,
    },
    /// Pending waits of a trigger, up or down.
    Waiting {
        trigger: Arc<str>,
        channel: Channel,
        delta: i64,
    },
    /// A goal event within a send's window (`at` is the send's instant). `first` for the
    /// first one, which converts the send; `value` (thousandths) counts for each.
    Converted {
        trigger: Arc<str>,
        variant: Arc<str>,
        channel: Channel,
        first: bool,
        value: i64,
    },
    /// A user was assigned an arm of an experiment (or its holdout).
    Assigned {
        experiment: Arc<str>,
        variant: Arc<str>,
    },
    /// A goal event within an assigned user's window (`at` is the assignment's instant).
    ExperimentGoal {
        experiment: Arc<str>,
        variant: Arc<str>,
        first: bool,
        value: i64,
        /// The user's goal value in this experiment before this event (thousandths).
        before: i64,
    },
    /// A user reached a funnel step for the first time (`at` is when they entered the
    /// funnel); `after` is the time since the step before, in this attempt.
    FunnelStep {
        funnel: Arc<str>,
        step: usize,
        breakdown: Option<Arc<str>>,
        after: Option<Millis>,
    },
    /// One of nudge's engagement events (delivered, opened, clicked, ...) about a send.
    Engaged {
        engagement: crate::event::engagement::Engagement,
        trigger: Arc<str>,
        variant: Arc<str>,
        channel: Arc<str>,
    },
}

/// The result of handing one input to the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The input's messageId was already applied: nothing changed.
    pub duplicate: bool,
    /// Product messages applied (not seen before; nudge's own engagement events are not
    /// counted).
    pub applied: u32,
    pub decisions: Vec<Decision>,
    /// What reports count besides the decisions.
    pub facts: Vec<Fact>,
    /// The earliest instant the engine must be woken for this user (pending waits, segment
    /// changes), after this input.
    pub next_wake: Option<Millis>,
}

impl Default for Outcome {
    fn default() -> Self {
        // Most inputs decide a handful of things; reserve once instead of growing.
        Outcome {
            duplicate: false,
            applied: 0,
            decisions: Vec::with_capacity(8),
            facts: Vec::new(),
            next_wake: None,
        }
    }
}

impl Outcome {
    pub fn sends(&self) -> impl Iterator<Item = &Send> {
        self.decisions.iter().filter_map(|d| match d {
            Decision::Send(s) => Some(&**s),
            _ => None,
        })
    }
}

/// Deterministic decision id from user, trigger and occurrence.
pub fn decision_id(user_id: &str, trigger: &str, occurrence: u64) -> DecisionId {
    // One-shot hashing over a stack buffer; the streaming hasher costs more to set up.
    let mut buf = [0u8; 192];
    let len = user_id.len() + trigger.len() + 10;
    if len <= buf.len() {
        let (u, t) = (user_id.len(), trigger.len());
        buf[..u].copy_from_slice(user_id.as_bytes());
        buf[u + 1..u + 1 + t].copy_from_slice(trigger.as_bytes());
        buf[u + t + 2..len].copy_from_slice(&occurrence.to_le_bytes());
        return DecisionId(xxhash_rust::xxh3::xxh3_64(&buf[..len]));
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(user_id.as_bytes());
    h.update(&[0]);
    h.update(trigger.as_bytes());
    h.update(&[0]);
    h.update(&occurrence.to_le_bytes());
    DecisionId(h.digest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_ids_hash_the_same_bytes_for_short_and_long_inputs() {
        // The stack-buffer path and the streaming path must agree.
        let short = decision_id("u1", "profile-reminder", 42);
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(b"u1\0profile-reminder\0");
        h.update(&42u64.to_le_bytes());
        assert_eq!(short, DecisionId(h.digest()));
        let long_user = "u".repeat(300);
        assert_ne!(
            decision_id(&long_user, "t", 1),
            decision_id(&long_user, "t", 2)
        );
        assert_eq!(short.to_string().len(), 16);
    }
}
