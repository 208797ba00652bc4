//! Checks a [`RuleSet`] for mistakes across files and compiles it into [`CompiledRules`].
//!
//! [`compile`] walks the sections through one `Compiler`, whose methods live in the file of
//! the section they compile: `segments`, `triggers`, `experiments` and `messages`. What the
//! sections share has a file of its own: `ids` (ids defined once and well formed),
//! `events` (event references against the tracking plan), `conditions` and `slots` (the
//! occurrence counts state keeps). `index` builds the engine's lookup tables last.

mod conditions;
mod events;
mod experiments;
mod funnels;
mod goals;
mod ids;
mod index;
mod messages;
mod segments;
mod slots;
mod triggers;

pub use events::op_text;

use super::compiled::{
    CExperiment, CFunnel, CGoal, CMessage, CSegment, CTrigger, CompiledRules, EmailTracking,
    SlotSpec,
};
use super::model::{Channel, RuleSet, TriggerDef};
use super::yaml::Diagnostics;
use crate::time::time_zone;
use std::collections::{BTreeSet, HashMap};

/// Property values a per-key count remembers (the most recently seen ones).
pub const PER_KEY_CAP: usize = 24;

/// Compiles a parsed rule set, reporting every semantic mistake with its position.
pub fn compile(set: &RuleSet, d: &mut Diagnostics) -> Option<CompiledRules> {
    let mut c = Compiler::new(set, d);
    c.check_duplicates();
    // The parser already reported an unknown zone at its position.
    let tz = time_zone(&set.settings.default_timezone.value).unwrap_or(jiff::tz::TimeZone::UTC);
    c.check_segment_cycles();
    let messages: Vec<CMessage> = set.messages.iter().map(|m| c.message(m)).collect();
    let goals: Vec<CGoal> = set.goals.iter().map(|g| c.goal(g)).collect();
    let segments: Vec<CSegment> = set.segments.iter().map(|s| c.segment(s)).collect();
    let experiments: Vec<CExperiment> = set.experiments.iter().map(|e| c.experiment(e)).collect();
    // Decision order: priority, then the order written.
    let mut order: Vec<&TriggerDef> = set.triggers.iter().collect();
    order.sort_by_key(|t| t.priority);
    let mut triggers: Vec<CTrigger> = order.iter().filter_map(|t| c.trigger(t)).collect();
    for t in &mut triggers {
        t.variant_names = variant_names(t, &experiments, &messages);
    }
    let funnels: Vec<CFunnel> = set.funnels.iter().map(|f| c.funnel(f)).collect();
    if !c.d.errors.is_empty() {
        return None;
    }
    let mut rules = CompiledRules {
        name: set.name.clone().unwrap_or_else(|| "rules".into()),
        default_timezone: tz,
        timezone_trait: set.settings.timezone_trait.clone(),
        session_gap: set.settings.session_gap,
        email_tracking: EmailTracking {
            links: set.settings.track_email_links,
            opens: set.settings.track_email_opens,
        },
        plan: set.plan.clone(),
        slot_by_id: c.slots.iter().enumerate().map(|(i, s)| (s.id, i)).collect(),
        slots: std::mem::take(&mut c.slots),
        segments,
        trigger_by_id: triggers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.stable_id, i))
            .collect(),
        triggers,
        experiment_by_id: experiments
            .iter()
            .enumerate()
            .map(|(i, e)| (e.stable_id, i))
            .collect(),
        experiments,
        messages,
        goals,
        funnel_by_id: funnels
            .iter()
            .enumerate()
            .map(|(i, f)| (f.stable_id, i))
            .collect(),
        funnels,
        policies: set.policies.clone(),
        traits: c.traits.iter().cloned().collect(),
        event_ids: Default::default(),
        event_entries: vec![],
        slots_by_event: Default::default(),
        slots_any: vec![],
        triggers_by_event: Default::default(),
        triggers_any: vec![],
        cancels_by_event: Default::default(),
        cancels_any: vec![],
        segment_triggers: vec![],
        session_slots: vec![],
        tracked_segments: vec![],
        track_segments: false,
        segment_tracked: vec![],
        segments_fingerprint: 0,
        idle_segment_mask: 0,
        min_idle_bound: 0,
        session_segment_mask: 0,
        trait_segment_mask: 0,
        any_event_segment_mask: 0,
    };
    index::index(&mut rules);
    Some(rules)
}

/// Where a condition is read, which decides what it may use.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    /// No event at hand: segments.
    Segment,
    /// Evaluated with a triggering event (trigger `if`, `check`, `exit`, content variants).
    Event,
}

/// One rule set being compiled; every mistake goes to `d` and compiling goes on. Its methods
/// live in the files of what they compile.
struct Compiler<'a> {
    set: &'a RuleSet,
    d: &'a mut Diagnostics,
    slots: Vec<SlotSpec>,
    slot_keys: HashMap<String, usize>,
    traits: BTreeSet<String>,
    segment_ids: HashMap<&'a str, usize>,
    message_ids: HashMap<&'a str, usize>,
    experiment_ids: HashMap<&'a str, usize>,
    goal_ids: HashMap<&'a str, usize>,
}

impl<'a> Compiler<'a> {
    fn new(set: &'a RuleSet, d: &'a mut Diagnostics) -> Self {
        let mut traits = BTreeSet::new();
        traits.insert(set.settings.timezone_trait.clone());
        if set.messages.iter().any(|m| m.channel == Channel::Email) {
            traits.insert("email".to_string());
        }
        Compiler {
            set,
            d,
            slots: vec![],
            slot_keys: HashMap::new(),
            traits,
            segment_ids: set
                .segments
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.value.as_str(), i))
                .collect(),
            message_ids: set
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.value.as_str(), i))
                .collect(),
            experiment_ids: set
                .experiments
                .iter()
                .enumerate()
                .map(|(i, e)| (e.id.value.as_str(), i))
                .collect(),
            goal_ids: set
                .goals
                .iter()
                .enumerate()
                .map(|(i, g)| (g.id.value.as_str(), i))
                .collect(),
        }
    }
}

/// The variants a trigger's sends may carry: the experiment's arms and its holdout, or the
/// message's default content and its content variants.
fn variant_names(
    t: &CTrigger,
    experiments: &[CExperiment],
    messages: &[CMessage],
) -> Vec<std::sync::Arc<str>> {
    match t.experiment.and_then(|e| experiments.get(e)) {
        Some(e) => e
            .variants
            .iter()
            .map(|v| v.name.clone())
            .chain([e.holdout_name.clone()])
            .collect(),
        None => match messages.get(t.message) {
            Some(m) => [m.default_name.clone()]
                .into_iter()
                .chain(m.variants.iter().map(|v| v.name.clone()))
                .collect(),
            None => vec![],
        },
    }
}

/// A property path (`address.city`) as its parts.
fn split_path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}
