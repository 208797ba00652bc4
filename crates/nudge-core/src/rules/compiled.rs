//! The compiled form of a rule set: matchers, state slots and indexes the engine runs on.

use super::model::{Channel, Cmp, FilterOp, Policies, Priority};
use crate::plan::TrackingPlan;
use crate::template::Template;
use crate::time::Duration;
use serde::{Deserialize, Serialize};
use serde_json::Value;
// Lookups on the per-event path use FxHash: keys are our own names and ids, not attacker-chosen
// collision material worth SipHash's cost.
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

/// Which event names a matcher accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NameMatch {
    /// Any activity (track, page, screen).
    Any,
    Name(String),
}

/// A compiled property (or trait) filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CFilter {
    pub path: Vec<String>,
    pub op: FilterOp,
}

/// A compiled event matcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: NameMatch,
    pub filters: Vec<CFilter>,
    /// Index of the event name in `CompiledRules::event_ids` (None for `*`), so matching
    /// compares integers.
    pub event_id: Option<u32>,
}

/// What a state slot keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SlotKind {
    /// Number of matches (since the reset, in the current session when `in_session`).
    Count,
    /// Timestamps of the newest `cap` matches, for sliding-window counts.
    Window { within: Duration, cap: usize },
    /// Matches in `[first anchor, first anchor + within]`; `anchor` is a `First` slot.
    Anchored { anchor: usize, within: Duration },
    /// Number of matches per value of a property (hashed), the `cap` most recent keys.
    PerKey { property: Vec<String>, cap: usize },
    /// Time of the first match (since the reset).
    First,
    /// Time of the latest match (since the reset).
    Last,
    /// Listed properties of the newest `max` matches.
    Collect { fields: Vec<String>, max: usize },
    /// Start times of the newest `cap` sessions (not matched against events).
    SessionStarts { cap: usize },
}

/// One piece of per-user state the rule set needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotSpec {
    /// Stable id: a hash of the slot's definition, so state survives rule edits that keep it.
    pub id: u32,
    pub kind: SlotKind,
    pub event: Matcher,
    pub reset: Option<Matcher>,
    pub in_session: bool,
    /// Human description for `explain`.
    pub label: String,
}

/// A compiled condition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CCond {
    All(Vec<CCond>),
    Any(Vec<CCond>),
    Not(Box<CCond>),
    /// A count slot compared; `within` set for window slots (read at the clock).
    Count {
        slot: usize,
        cmp: Vec<Cmp>,
        per: Option<Vec<String>>,
    },
    TimeSince {
        slot: usize,
        cmp: Vec<Cmp>,
    },
    Idle {
        cmp: Vec<Cmp>,
    },
    /// `slot` is a SessionStarts slot when a window is given.
    Sessions {
        window: Option<(usize, Duration)>,
        cmp: Vec<Cmp>,
    },
    InSegment(usize),
    Traits(Vec<CFilter>),
    Props(Vec<CFilter>),
}

/// A compiled live segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CSegment {
    pub id: String,
    pub stable_id: u32,
    pub cond: CCond,
}

/// What starts a compiled trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum COn {
    Event(Matcher),
    SegmentEntered(usize),
    SegmentExited(usize),
}

/// How often a trigger may fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum COnce {
    Never,
    User,
    Session,
    PerProperty(Vec<String>),
}

/// A compiled cancel rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CCancel {
    pub event: Matcher,
    pub same: Vec<Vec<String>>,
}

/// A compiled data item for templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CData {
    Collect {
        slot: usize,
        fields: Vec<String>,
    },
    Count {
        slot: usize,
        per: Option<Vec<String>>,
    },
}

/// A compiled trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CTrigger {
    pub id: Arc<str>,
    pub stable_id: u32,
    pub priority: Priority,
    pub on: COn,
    pub when: Option<CCond>,
    pub wait: Option<Duration>,
    pub rearm: bool,
    pub cancel_on: Vec<CCancel>,
    pub check: Option<CCond>,
    pub exit: Option<CCond>,
    pub once: COnce,
    pub cooldown: Option<Duration>,
    pub experiment: Option<usize>,
    /// The goal its sends convert to.
    pub goal: Option<CGoalRef>,
    /// Every `Send::variant` its sends may carry (experiment arms and the holdout, or the
    /// message's content variants): state keeps a send's variant as an index into it.
    pub variant_names: Vec<Arc<str>>,
    pub channel: Channel,
    pub message: usize,
    pub data: Vec<(String, CData)>,
    /// Properties of the triggering event kept with a pending wait (templates, `same`,
    /// `once: {per}`, `properties` conditions at fire time).
    pub captured: Vec<String>,
    /// The `once: {per}` property as written (a key of the captured properties).
    pub once_name: Option<String>,
    /// The same, split into a path.
    pub once_path: Option<Vec<String>>,
    /// `captured`, split into path segments once.
    pub captured_paths: Vec<Vec<String>>,
}

/// A compiled experiment arm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CVariant {
    pub name: Arc<str>,
    /// Upper bound of this arm's share of the 0..10000 buckets.
    pub upto: u32,
    pub wait: Option<Duration>,
    pub message: Option<usize>,
    pub content: Option<Arc<str>>,
}

/// A compiled experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CExperiment {
    pub id: Arc<str>,
    pub stable_id: u32,
    /// Buckets below this are the holdout.
    pub holdout_upto: u32,
    /// "holdout", shared by every holdout decision.
    pub holdout_name: Arc<str>,
    pub variants: Vec<CVariant>,
    /// The goal its users convert to, counted once from their assignment.
    pub goal: Option<CGoalRef>,
    /// The variant the others are compared with.
    #[serde(default)]
    pub control: usize,
    /// The smallest difference of rates worth detecting, if the experiment says.
    #[serde(default)]
    pub min_detectable_effect: Option<f64>,
}

/// A compiled goal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CGoal {
    pub id: Arc<str>,
    pub stable_id: u32,
    pub event: Matcher,
    /// Property path of the goal event whose number is its value.
    pub value: Option<Vec<String>>,
}

/// A goal a trigger or an experiment is judged on, and the attribution window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CGoalRef {
    pub goal: usize,
    pub within: Duration,
}

/// A compiled funnel step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CFunnelStep {
    /// The step's name in reports (as written, or the event reference in words).
    pub label: Arc<str>,
    pub event: Matcher,
}

/// What a funnel's users are split by, read when they enter it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CBreakdown {
    Segment(usize),
    Trait(String),
    Experiment(usize),
}

/// A compiled funnel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CFunnel {
    pub id: Arc<str>,
    pub stable_id: u32,
    pub steps: Vec<CFunnelStep>,
    pub within: Duration,
    pub breakdown: Option<CBreakdown>,
}

/// Compiled content for one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CContent {
    Email {
        subject: Template,
        html: Option<Template>,
        text: Option<Template>,
    },
    InApp {
        title: Template,
        body: Template,
        url: Option<Template>,
    },
    Webhook {
        url: Template,
        body: CJson,
    },
}

/// A JSON document whose strings are templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CJson {
    Template(Template),
    Literal(Value),
    Array(Vec<CJson>),
    Object(Vec<(String, CJson)>),
}

/// A compiled content variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CContentVariant {
    pub name: Arc<str>,
    pub when: Option<CCond>,
    pub requires: Vec<Vec<String>>,
    pub content: CContent,
}

/// A compiled message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CMessage {
    pub id: Arc<str>,
    /// "default", shared by every send of the default content.
    pub default_name: Arc<str>,
    pub channel: Channel,
    pub content: CContent,
    pub variants: Vec<CContentVariant>,
}

/// What one event name reaches, resolved once per event.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventEntry {
    pub triggers: Vec<usize>,
    pub slots: Vec<usize>,
    pub cancels: Vec<usize>,
    /// Goals this event name may reach (their filters still apply).
    pub goals: Vec<usize>,
    /// (funnel, step) pairs whose step names this event.
    pub funnel_steps: Vec<(usize, usize)>,
    /// Tracked segments (bit i = `tracked_segments[i]`) whose state this event can change.
    pub segment_mask: u128,
}

/// Which tracked segments must be re-evaluated after an input (bit i = `tracked_segments[i]`).
pub type SegmentMask = u128;

/// Whether emails' links go through click links and whether they carry an open pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTracking {
    pub links: bool,
    pub opens: bool,
}

impl Default for EmailTracking {
    fn default() -> Self {
        EmailTracking {
            links: true,
            opens: false,
        }
    }
}

/// A rule set ready to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompiledRules {
    pub name: String,
    #[serde(with = "crate::time::zone_by_name")]
    pub default_timezone: jiff::tz::TimeZone,
    pub timezone_trait: String,
    pub session_gap: Duration,
    /// How deliver marks emails for engagement counts (settings `track_email_*`).
    #[serde(default)]
    pub email_tracking: EmailTracking,
    pub plan: TrackingPlan,
    pub slots: Vec<SlotSpec>,
    pub slot_by_id: HashMap<u32, usize>,
    pub segments: Vec<CSegment>,
    pub triggers: Vec<CTrigger>,
    pub trigger_by_id: HashMap<u32, usize>,
    pub experiments: Vec<CExperiment>,
    pub experiment_by_id: HashMap<u32, usize>,
    pub messages: Vec<CMessage>,
    pub goals: Vec<CGoal>,
    pub funnels: Vec<CFunnel>,
    pub funnel_by_id: HashMap<u32, usize>,
    pub policies: Policies,
    /// Traits kept in state (those the rules and templates read).
    pub traits: Vec<String>,
    /// Every event name the rules mention, numbered.
    pub event_ids: HashMap<String, u32>,
    /// Per event id: the triggers it starts, slots it touches and waits it may cancel.
    pub event_entries: Vec<EventEntry>,
    /// Slots touched by events of a name (as matched event, reset or anchor).
    pub slots_by_event: HashMap<String, Vec<usize>>,
    /// Slots touched by any activity.
    pub slots_any: Vec<usize>,
    /// Event triggers by event name, in decision order (priority, then definition).
    pub triggers_by_event: HashMap<String, Vec<usize>>,
    pub triggers_any: Vec<usize>,
    /// Triggers with a cancel rule that names this event.
    pub cancels_by_event: HashMap<String, Vec<usize>>,
    pub cancels_any: Vec<usize>,
    /// Segment enter/exit triggers.
    pub segment_triggers: Vec<usize>,
    /// SessionStarts slots, updated when a session starts.
    pub session_slots: Vec<usize>,
    /// Segments whose membership is tracked over time (some trigger reacts to entering or
    /// leaving them); the others are evaluated only when read.
    pub tracked_segments: Vec<usize>,
    /// Whether any segment is tracked.
    pub track_segments: bool,
    /// Per segment: whether it is tracked.
    pub segment_tracked: Vec<bool>,
    /// A hash of the tracked segments' definitions; state records the one its membership
    /// was computed under.
    pub segments_fingerprint: u32,
    /// Tracked segments that read idleness: an activity can change them only after a gap of
    /// at least `min_idle_bound` (the smallest idle duration they compare against).
    pub idle_segment_mask: SegmentMask,
    pub min_idle_bound: i64,
    /// Tracked segments that read sessions (changed when a session starts).
    pub session_segment_mask: SegmentMask,
    /// Tracked segments that read traits.
    pub trait_segment_mask: SegmentMask,
    /// Tracked segments that read slots touched by any activity (`*` matchers).
    pub any_event_segment_mask: SegmentMask,
}

/// Which rules an event reaches: those naming it and those on `*` (every activity), or only
/// those naming it (nudge's own engagement events, which are not activity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    All,
    Named,
}

impl Reach {
    /// The `*` entries, or none.
    fn any(self, any: &[usize]) -> &[usize] {
        match self {
            Reach::All => any,
            Reach::Named => &[],
        }
    }
}

impl CompiledRules {
    /// The id of an event name the rules mention.
    pub fn event_id(&self, name: &str) -> Option<u32> {
        self.event_ids.get(name).copied()
    }

    fn entry(&self, id: Option<u32>) -> Option<&EventEntry> {
        id.and_then(|i| self.event_entries.get(i as usize))
    }

    /// Triggers an event starts, in decision order (named ones and `*` ones merged).
    pub fn triggers_for_id(&self, id: Option<u32>) -> impl Iterator<Item = usize> + '_ {
        self.triggers_reached(id, Reach::All)
    }

    /// Slots an event touches.
    pub fn slots_for_id(&self, id: Option<u32>) -> impl Iterator<Item = usize> + '_ {
        self.slots_reached(id, Reach::All)
    }

    /// Triggers whose pending waits an event may cancel.
    pub fn cancels_for_id(&self, id: Option<u32>) -> impl Iterator<Item = usize> + '_ {
        self.cancels_reached(id, Reach::All)
    }

    /// [`CompiledRules::triggers_for_id`], with or without the `*` ones.
    pub fn triggers_reached(
        &self,
        id: Option<u32>,
        reach: Reach,
    ) -> impl Iterator<Item = usize> + '_ {
        let named = self.entry(id).map(|e| e.triggers.as_slice()).unwrap_or(&[]);
        merge_sorted(named, reach.any(&self.triggers_any))
    }

    /// [`CompiledRules::slots_for_id`], with or without the `*` ones.
    pub fn slots_reached(&self, id: Option<u32>, reach: Reach) -> impl Iterator<Item = usize> + '_ {
        let named = self.entry(id).map(|e| e.slots.as_slice()).unwrap_or(&[]);
        named.iter().chain(reach.any(&self.slots_any)).copied()
    }

    /// [`CompiledRules::cancels_for_id`], with or without the `*` ones.
    pub fn cancels_reached(
        &self,
        id: Option<u32>,
        reach: Reach,
    ) -> impl Iterator<Item = usize> + '_ {
        let named = self.entry(id).map(|e| e.cancels.as_slice()).unwrap_or(&[]);
        named.iter().chain(reach.any(&self.cancels_any)).copied()
    }

    /// Triggers an event name starts, in decision order.
    pub fn triggers_for(&self, name: &str) -> impl Iterator<Item = usize> + '_ {
        self.triggers_for_id(self.event_id(name))
    }

    /// Slots an event name touches.
    pub fn slots_for(&self, name: &str) -> impl Iterator<Item = usize> + '_ {
        self.slots_for_id(self.event_id(name))
    }

    /// Triggers whose pending waits an event name may cancel.
    pub fn cancels_for(&self, name: &str) -> impl Iterator<Item = usize> + '_ {
        self.cancels_for_id(self.event_id(name))
    }

    pub fn trigger_index(&self, id: &str) -> Option<usize> {
        self.triggers.iter().position(|t| &*t.id == id)
    }
    pub fn segment_index(&self, id: &str) -> Option<usize> {
        self.segments.iter().position(|s| s.id == id)
    }
}

/// Merges two ascending index lists (trigger indices are already in decision order).
fn merge_sorted<'a>(a: &'a [usize], b: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let next = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x <= y => {
                i += 1;
                if x == y {
                    j += 1;
                }
                x
            }
            (_, Some(&y)) => {
                j += 1;
                y
            }
            (Some(&x), None) => {
                i += 1;
                x
            }
            (None, None) => return None,
        };
        Some(next)
    })
}

/// A stable 32-bit id for a name or definition.
pub fn stable_id(text: &str) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(text.as_bytes()) >> 32) as u32
}
