//! The rule language as written: what `nudge validate` checks and the compiler reads.
//! Every name that refers to something else keeps its position for error messages.

use crate::plan::TrackingPlan;
use crate::time::Duration;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Variant name recorded for users in an experiment's holdout.
pub const HOLDOUT: &str = "holdout";

/// A place in a rule file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub file: usize,
    pub line: usize,
    pub col: usize,
}

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Sp<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        Sp { value, pos }
    }
}

/// A whole rule set, merged from every YAML file of its directory.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Display names of the files, indexed by `Pos::file`.
    pub file_names: Vec<String>,
    pub name: Option<String>,
    pub settings: Settings,
    pub plan: TrackingPlan,
    /// Where each tracking-plan event was declared.
    pub plan_positions: BTreeMap<String, Pos>,
    pub segments: Vec<SegmentDef>,
    pub triggers: Vec<TriggerDef>,
    pub policies: Policies,
    pub experiments: Vec<ExperimentDef>,
    pub messages: Vec<MessageDef>,
    pub goals: Vec<GoalDef>,
    pub funnels: Vec<FunnelDef>,
}

/// Rule-set-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// IANA zone used when a user has none.
    pub default_timezone: Sp<String>,
    /// The trait that holds a user's IANA zone (`context.timezone` also sets it).
    pub timezone_trait: String,
    /// A gap this long or longer between two events starts a new session.
    pub session_gap: Duration,
    /// Email links go through signed click links, so clicks are counted (default on).
    pub track_email_links: bool,
    /// Emails carry an open pixel (default off: image proxies and blockers make opens
    /// unreliable).
    pub track_email_opens: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_timezone: Sp::new("UTC".into(), Pos::default()),
            timezone_trait: "timezone".into(),
            session_gap: Duration::from_secs(30 * 60),
            track_email_links: true,
            track_email_opens: false,
        }
    }
}

/// Matches events: by name (`*` for any activity) and property filters.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMatch {
    pub name: Sp<String>,
    pub filters: Vec<Filter>,
}

/// A test on one property or trait value.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Dotted path inside the properties (or traits).
    pub path: Sp<String>,
    pub op: FilterOp,
}

/// How a [`Filter`] compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FilterOp {
    Eq(Value),
    Ne(Value),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Exists(bool),
    Contains(String),
}

/// A numeric or duration comparison: `at_least`, `at_most`, `exactly`, `more_than`, `less_than`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Cmp {
    AtLeast(f64),
    AtMost(f64),
    Exactly(f64),
    MoreThan(f64),
    LessThan(f64),
}

impl Cmp {
    pub fn holds(self, x: f64) -> bool {
        match self {
            Cmp::AtLeast(v) => x >= v,
            Cmp::AtMost(v) => x <= v,
            Cmp::Exactly(v) => x == v,
            Cmp::MoreThan(v) => x > v,
            Cmp::LessThan(v) => x < v,
        }
    }
    pub fn bound(self) -> f64 {
        match self {
            Cmp::AtLeast(v)
            | Cmp::AtMost(v)
            | Cmp::Exactly(v)
            | Cmp::MoreThan(v)
            | Cmp::LessThan(v) => v,
        }
    }
    pub fn keyword(self) -> &'static str {
        match self {
            Cmp::AtLeast(_) => "at_least",
            Cmp::AtMost(_) => "at_most",
            Cmp::Exactly(_) => "exactly",
            Cmp::MoreThan(_) => "more_than",
            Cmp::LessThan(_) => "less_than",
        }
    }
}

/// Which occurrences of an event a count or time condition looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrences {
    pub event: EventMatch,
    /// Sliding window ending now; with `after`, the window's length from the anchor.
    pub within: Option<Duration>,
    /// Only occurrences since the latest occurrence of this event.
    pub since: Option<EventMatch>,
    /// Only occurrences in `[first anchor, first anchor + within]`.
    pub after: Option<EventMatch>,
    /// Counted separately per value of this property (read from the event being evaluated).
    pub per: Option<Sp<String>>,
    /// Only occurrences in the current session.
    pub in_session: bool,
}

/// A condition on the user's behaviour, traits or the current event.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    /// How many matching occurrences.
    Count {
        occ: Occurrences,
        cmp: Vec<Cmp>,
        pos: Pos,
    },
    /// Time since the last (or first) matching occurrence; false when there is none.
    TimeSince {
        occ: Occurrences,
        first: bool,
        cmp: Vec<Cmp>,
        pos: Pos,
    },
    /// Time since the user's last activity.
    Idle {
        cmp: Vec<Cmp>,
        pos: Pos,
    },
    /// Number of sessions, all time or started within a window.
    Sessions {
        within: Option<Duration>,
        cmp: Vec<Cmp>,
        pos: Pos,
    },
    /// Membership of a segment.
    InSegment(Sp<String>),
    /// Filters on user traits.
    Traits(Vec<Filter>),
    /// Filters on the current event's properties (captured ones at fire time).
    Properties(Vec<Filter>),
}

/// A named live segment.
#[derive(Debug, Clone)]
pub struct SegmentDef {
    pub id: Sp<String>,
    pub description: Option<String>,
    pub condition: Cond,
}

/// Urgency of a trigger; decisions at one instant are taken in this order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Urgent,
    High,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::High => "high",
            Priority::Low => "low",
        }
    }
}

/// A delivery channel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    InApp,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::InApp, Channel::Webhook];
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::InApp => "in_app",
            Channel::Webhook => "webhook",
        }
    }
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What starts a trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum On {
    Event(EventMatch),
    SegmentEntered(Sp<String>),
    SegmentExited(Sp<String>),
}

/// How often a trigger may fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Once {
    Never,
    User,
    Session,
    PerProperty(Sp<String>),
}

/// An event that cancels a pending wait; `match` names properties that must equal the
/// triggering event's.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelOn {
    pub event: EventMatch,
    pub same: Vec<Sp<String>>,
}

/// A value computed at send time and handed to the message template under `data.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSpec {
    /// The listed properties of recent occurrences, oldest first.
    Collect {
        occ: Occurrences,
        fields: Vec<String>,
        max: usize,
    },
    Count(Occurrences),
}

/// A trigger rule.
#[derive(Debug, Clone)]
pub struct TriggerDef {
    pub id: Sp<String>,
    pub description: Option<String>,
    pub priority: Priority,
    pub on: On,
    pub when: Option<Cond>,
    pub wait: Option<Sp<Duration>>,
    pub rearm: bool,
    pub cancel_on: Vec<CancelOn>,
    pub check: Option<Cond>,
    pub exit: Option<Cond>,
    pub once: Once,
    pub cooldown: Option<Duration>,
    pub experiment: Option<Sp<String>>,
    /// The goal a send converts to, and the attribution window from the send.
    pub goal: Option<GoalRef>,
    pub channel: Sp<Channel>,
    pub message: Sp<String>,
    pub data: Vec<(String, DataSpec)>,
}

/// A frequency-cap window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum CapWindow {
    Rolling(Duration),
    Session,
}

/// At most `max` sends on a channel per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapDef {
    pub channel: Channel,
    pub max: u32,
    pub per: CapWindow,
}

/// What to do with a send that falls due in quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuietAction {
    Defer,
    Suppress,
}

/// Local-time hours during which a channel stays silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuietHoursDef {
    pub channels: Vec<Channel>,
    /// Minutes after local midnight.
    pub from: u32,
    pub to: u32,
    pub action: QuietAction,
}

/// Global delivery policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policies {
    pub caps: Vec<CapDef>,
    pub quiet_hours: Vec<QuietHoursDef>,
    /// Priorities exempt from caps and quiet hours (they still count toward caps).
    pub exempt: Vec<Priority>,
    /// When set, two sends on one channel closer than this: the lower priority is
    /// suppressed with reason `priority`.
    pub min_gap: Option<Duration>,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            caps: Vec::new(),
            quiet_hours: Vec::new(),
            exempt: vec![Priority::Urgent],
            min_gap: None,
        }
    }
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentVariant {
    pub name: Sp<String>,
    pub weight: f64,
    pub wait: Option<Duration>,
    pub message: Option<Sp<String>>,
    pub content: Option<Sp<String>>,
    /// The variant the others are compared with (`control: true`; default the first).
    pub control: bool,
}

/// A/B test with deterministic assignment by user id.
#[derive(Debug, Clone)]
pub struct ExperimentDef {
    pub id: Sp<String>,
    pub holdout: f64,
    pub variants: Vec<ExperimentVariant>,
    /// The goal a user converts to, and the window from their assignment.
    pub goal: Option<GoalRef>,
    /// The smallest difference of conversion rates worth detecting (absolute, 0..1).
    pub min_detectable_effect: Option<f64>,
}

/// What counts as success: an event (with filters), and optionally one of its numeric
/// properties summed as the value it brings (revenue).
#[derive(Debug, Clone)]
pub struct GoalDef {
    pub id: Sp<String>,
    pub description: Option<String>,
    pub event: EventMatch,
    /// Property path inside the goal event's properties.
    pub value: Option<Sp<String>>,
}

/// A goal named by a trigger or an experiment, with its attribution window.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalRef {
    pub id: Sp<String>,
    pub within: Duration,
}

/// One step of a funnel: an event reference, with a name for reports.
#[derive(Debug, Clone)]
pub struct FunnelStep {
    pub name: Option<String>,
    pub event: EventMatch,
}

/// What a funnel's users are split by.
#[derive(Debug, Clone, PartialEq)]
pub enum Breakdown {
    /// In the segment or not, when they entered the funnel.
    Segment(Sp<String>),
    /// The trait's value when they entered the funnel.
    Trait(Sp<String>),
    /// Their arm of the experiment when they entered the funnel.
    Experiment(Sp<String>),
}

/// Ordered steps a user takes within a window from the first (as in Mixpanel or Amplitude).
#[derive(Debug, Clone)]
pub struct FunnelDef {
    pub id: Sp<String>,
    pub description: Option<String>,
    pub steps: Vec<FunnelStep>,
    pub within: Duration,
    pub breakdown: Option<Breakdown>,
}

/// Template text with where it was written.
pub type TemplateText = Sp<String>;

/// Content for one channel.
#[derive(Debug, Clone)]
pub enum Content {
    Email {
        subject: TemplateText,
        html: Option<TemplateText>,
        text: Option<TemplateText>,
    },
    InApp {
        title: TemplateText,
        body: TemplateText,
        url: Option<TemplateText>,
    },
    Webhook {
        url: TemplateText,
        body: Sp<Value>,
    },
}

/// A content variant chosen by segment or data availability.
#[derive(Debug, Clone)]
pub struct ContentVariant {
    pub name: Sp<String>,
    pub when: Option<Cond>,
    /// Template paths that must have a value for this variant to be chosen.
    pub requires: Vec<Sp<String>>,
    pub content: Content,
}

/// A message: default content plus variants, first match wins.
#[derive(Debug, Clone)]
pub struct MessageDef {
    pub id: Sp<String>,
    pub channel: Channel,
    pub content: Content,
    pub variants: Vec<ContentVariant>,
}
