//! The explanation's types: what `nudge explain` says about a user and each trigger, as
//! printed (see `text`) and as JSON.

use crate::engine::{CancelReason, Reason};
use crate::rules::model::{Channel, Priority};
use crate::time::{format_instant, Millis};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Everything `nudge explain` says about one user.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub user_id: String,
    /// The instant conditions and policies are read at.
    #[serde(serialize_with = "instant")]
    pub at: Millis,
    pub user: UserSummary,
    /// In decision order.
    pub triggers: Vec<TriggerExplanation>,
}

/// What nudge keeps about the user.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub sessions: u32,
    #[serde(serialize_with = "opt_instant")]
    pub last_activity: Option<Millis>,
    /// Traits kept in state (only those the rules and templates read).
    pub traits: Map<String, Value>,
    /// Live segments at `at`.
    pub segments: Vec<String>,
    /// The zone quiet hours are read in.
    pub timezone: String,
    pub unsubscribed: bool,
    /// Size of the encoded state item.
    pub state_bytes: usize,
}

/// One trigger, for one user.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerExplanation {
    pub id: String,
    pub priority: Priority,
    pub channel: Channel,
    /// The trigger's set-up in words (`on ..., wait 24h, once: user`).
    pub setup: String,
    /// Events that cancel a pending wait, in words.
    pub cancel_on: Vec<String>,
    pub verdict: Verdict,
    /// Every decision the user got from this trigger up to `at`.
    pub decisions: Vec<Step>,
    /// Pending waits in state, earliest due first.
    pub pending: Vec<Pending>,
    /// What stops the trigger from firing now, if anything.
    pub blocked: Option<Block>,
    /// The user's latest event that matched `on` (event triggers only).
    pub last_match: Option<Match>,
    /// Where `properties` conditions read from.
    pub properties_from: PropsSource,
    /// `if`, `check` and `exit`, evaluated at `at`.
    pub conditions: Vec<Condition>,
    pub policy: PolicyState,
}

/// The one-line answer for a trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    Sent {
        #[serde(serialize_with = "instant")]
        at: Millis,
    },
    Suppressed {
        #[serde(serialize_with = "instant")]
        at: Millis,
        reason: Reason,
    },
    Cancelled {
        #[serde(serialize_with = "instant")]
        at: Millis,
        reason: CancelReason,
        by: Option<String>,
    },
    Waiting {
        #[serde(serialize_with = "instant")]
        due: Millis,
        #[serde(serialize_with = "instant")]
        armed_at: Millis,
        by: String,
        deferred: bool,
    },
    Blocked {
        block: Block,
    },
    /// No event of the user matched `on`.
    NeverStarted,
    /// The last matching event started nothing and `if` exists: it was false then.
    NotStarted {
        #[serde(serialize_with = "instant")]
        last_match: Millis,
    },
    /// A matching event happened but no decision was recorded for it.
    NoDecision {
        #[serde(serialize_with = "instant")]
        last_match: Millis,
    },
    /// A segment trigger with no decision; membership history is not kept, only the present.
    NoSegmentChange {
        segment: String,
        entered: bool,
        member_now: bool,
    },
}

/// What keeps a trigger from firing now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// `once: user`, spent by the decision at `at`.
    OnceUser {
        #[serde(serialize_with = "instant")]
        at: Millis,
    },
    /// `once: session`, spent in the current session.
    OnceSession { session: u32 },
    /// `once: {per}`, spent for the value the last matching event carries.
    OncePerValue { property: String, value: Value },
    Cooldown {
        #[serde(serialize_with = "instant")]
        until: Millis,
    },
}

/// One decision of the trigger for the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    Sent {
        #[serde(serialize_with = "instant")]
        at: Millis,
        message: String,
        variant: String,
        experiment: Option<String>,
    },
    Suppressed {
        #[serde(serialize_with = "instant")]
        at: Millis,
        reason: Reason,
    },
    Wait {
        #[serde(serialize_with = "instant")]
        at: Millis,
        #[serde(serialize_with = "instant")]
        due: Millis,
        deferred: bool,
    },
    Cancelled {
        #[serde(serialize_with = "instant")]
        at: Millis,
        reason: CancelReason,
        by: Option<String>,
    },
}

impl Step {
    pub(super) fn at(&self) -> Millis {
        match self {
            Step::Sent { at, .. }
            | Step::Suppressed { at, .. }
            | Step::Wait { at, .. }
            | Step::Cancelled { at, .. } => *at,
        }
    }
}

/// A wait in state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pending {
    #[serde(serialize_with = "instant")]
    pub due: Millis,
    #[serde(serialize_with = "instant")]
    pub armed_at: Millis,
    /// What armed it, in words.
    pub by: String,
    /// Quiet hours moved it to `due`.
    pub deferred: bool,
    /// Properties kept with it (read by `check`, `exit` and templates at fire time).
    pub properties: Map<String, Value>,
}

/// An event that matched a trigger's `on`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    #[serde(serialize_with = "instant")]
    pub at: Millis,
    pub event: String,
    pub properties: Map<String, Value>,
}

/// Where `properties` conditions read from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PropsSource {
    /// The properties kept with the earliest pending wait (what the engine reads at fire time).
    PendingWait {
        #[serde(serialize_with = "instant")]
        armed_at: Millis,
    },
    /// The last event that matched `on`.
    LastMatch {
        #[serde(serialize_with = "instant")]
        at: Millis,
    },
    NoEvent,
}

/// One of `if`, `check`, `exit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub role: &'static str,
    #[serde(flatten)]
    pub tree: CondNode,
}

/// A condition and its parts, with their values at `at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CondNode {
    pub holds: bool,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<CondNode>,
}

/// Delivery policies for the trigger's channel, at `at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyState {
    pub channel: Channel,
    /// The trigger's priority skips caps and quiet hours (its sends still count).
    pub exempt: bool,
    pub caps: Vec<CapState>,
    pub quiet_hours: Option<QuietState>,
    /// Email only: the user unsubscribed.
    pub unsubscribed: Option<bool>,
    pub min_gap: Option<GapState>,
    pub experiment: Option<ExperimentState>,
}

/// One frequency cap's use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapState {
    pub used: u32,
    pub max: u32,
    /// `7d`, or `session`.
    pub per: String,
    pub full: bool,
}

/// Quiet hours in the user's zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuietState {
    pub from: String,
    pub to: String,
    /// `defer` or `suppress`.
    pub action: &'static str,
    pub quiet_now: bool,
    /// Local date and time at `at`.
    pub local_time: String,
    pub timezone: String,
    /// Where a send now would be deferred to.
    #[serde(serialize_with = "opt_instant")]
    pub deferred_to: Option<Millis>,
}

/// The `min_gap` policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapState {
    pub gap: String,
    /// A send of at least this priority went out on the channel too recently.
    pub blocks_now: bool,
}

/// The user's arm of the trigger's experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentState {
    pub id: String,
    /// `None`: not assigned yet (assignment happens when the trigger first starts).
    pub variant: Option<String>,
}

fn instant<S: Serializer>(at: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_instant(*at))
}

fn opt_instant<S: Serializer>(at: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(&format_instant(*at)),
        None => s.serialize_none(),
    }
}
