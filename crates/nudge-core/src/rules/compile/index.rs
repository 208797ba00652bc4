//! The compiled rules' lookup tables: which slots, triggers, cancels, goals and funnel steps
//! each event touches, the order tracked segments are evaluated in and what can change each
//! of them.

use crate::rules::compiled::{
    stable_id, CCond, COn, CompiledRules, EventEntry, Matcher, NameMatch, SegmentMask, SlotKind,
};
use std::collections::{BTreeSet, HashSet};

/// Numbers every event name the matchers mention and points each matcher at its number.
fn number_events(r: &mut CompiledRules) {
    fn visit(m: &mut Matcher, ids: &mut rustc_hash::FxHashMap<String, u32>) {
        if let NameMatch::Name(n) = &m.name {
            let next = ids.len() as u32;
            m.event_id = Some(*ids.entry(n.clone()).or_insert(next));
        }
    }
    let mut ids = rustc_hash::FxHashMap::default();
    for s in &mut r.slots {
        visit(&mut s.event, &mut ids);
        if let Some(reset) = &mut s.reset {
            visit(reset, &mut ids);
        }
    }
    for t in &mut r.triggers {
        if let COn::Event(m) = &mut t.on {
            visit(m, &mut ids);
        }
        for c in &mut t.cancel_on {
            visit(&mut c.event, &mut ids);
        }
    }
    for g in &mut r.goals {
        visit(&mut g.event, &mut ids);
    }
    for f in &mut r.funnels {
        for s in &mut f.steps {
            visit(&mut s.event, &mut ids);
        }
    }
    r.event_entries = vec![EventEntry::default(); ids.len()];
    for (gi, g) in r.goals.iter().enumerate() {
        if let Some(id) = g.event.event_id {
            r.event_entries[id as usize].goals.push(gi);
        }
    }
    for (fi, f) in r.funnels.iter().enumerate() {
        for (si, s) in f.steps.iter().enumerate() {
            if let Some(id) = s.event.event_id {
                r.event_entries[id as usize].funnel_steps.push((fi, si));
            }
        }
    }
    for (name, &id) in &ids {
        let e = &mut r.event_entries[id as usize];
        e.triggers = r.triggers_by_event.get(name).cloned().unwrap_or_default();
        e.slots = r.slots_by_event.get(name).cloned().unwrap_or_default();
        e.cancels = r.cancels_by_event.get(name).cloned().unwrap_or_default();
    }
    r.event_ids = ids;
    segment_masks(r);
}

/// What each tracked segment reads, so an event re-evaluates only the segments it can change.
/// With more than 128 tracked segments every mask is full (always re-evaluate).
fn segment_masks(r: &mut CompiledRules) {
    #[derive(Default)]
    struct Deps {
        slots: Vec<usize>,
        idle: Option<f64>,
        sessions: bool,
        traits: bool,
    }
    fn walk(r: &CompiledRules, c: &CCond, d: &mut Deps, depth: usize) {
        match c {
            CCond::All(v) | CCond::Any(v) => v.iter().for_each(|c| walk(r, c, d, depth)),
            CCond::Not(c) => walk(r, c, d, depth),
            CCond::Count { slot, .. } | CCond::TimeSince { slot, .. } => {
                d.slots.push(*slot);
                if let SlotKind::Anchored { anchor, .. } = r.slots[*slot].kind {
                    d.slots.push(anchor);
                }
                if r.slots[*slot].in_session {
                    d.sessions = true;
                }
            }
            CCond::Idle { cmp } => {
                let least = cmp.iter().map(|c| c.bound()).fold(f64::INFINITY, f64::min);
                d.idle = Some(d.idle.map_or(least, |x| x.min(least)));
            }
            CCond::Sessions { .. } => d.sessions = true,
            CCond::Traits(_) => d.traits = true,
            // Segment cycles are rejected; the depth bound is a second guard.
            CCond::InSegment(s) if depth < 64 => walk(r, &r.segments[*s].cond, d, depth + 1),
            CCond::InSegment(_) | CCond::Props(_) => {}
        }
    }
    let all = if r.tracked_segments.len() > 128 {
        u128::MAX
    } else {
        0
    };
    let mut idle = all;
    let mut min_idle = if all != 0 { 0.0 } else { f64::INFINITY };
    let mut sessions = all;
    let mut traits = all;
    let mut any_event = all;
    let mut per_slot: Vec<SegmentMask> = vec![all; r.slots.len()];
    for (bit, &si) in r.tracked_segments.iter().enumerate().take(128) {
        let mut d = Deps::default();
        walk(r, &r.segments[si].cond, &mut d, 0);
        let b = 1u128 << bit;
        if let Some(bound) = d.idle {
            idle |= b;
            min_idle = f64::min(min_idle, bound);
        }
        if d.sessions {
            sessions |= b;
        }
        if d.traits {
            traits |= b;
        }
        for s in d.slots {
            per_slot[s] |= b;
        }
    }
    for &s in &r.slots_any {
        any_event |= per_slot[s];
    }
    for e in &mut r.event_entries {
        e.segment_mask = e.slots.iter().fold(all, |m, s| m | per_slot[*s]);
    }
    r.idle_segment_mask = idle;
    r.min_idle_bound = if min_idle.is_finite() {
        min_idle as i64
    } else {
        i64::MAX
    };
    r.session_segment_mask = sessions;
    r.trait_segment_mask = traits;
    r.any_event_segment_mask = any_event;
}

/// Fills the lookup tables of freshly compiled rules.
pub(super) fn index(r: &mut CompiledRules) {
    for (i, s) in r.slots.iter().enumerate() {
        if let SlotKind::SessionStarts { .. } = s.kind {
            r.session_slots.push(i);
            continue;
        }
        let mut names: Vec<&NameMatch> = vec![&s.event.name];
        if let Some(reset) = &s.reset {
            names.push(&reset.name);
        }
        let mut any = false;
        let mut named = BTreeSet::new();
        for n in names {
            match n {
                NameMatch::Any => any = true,
                NameMatch::Name(n) => {
                    named.insert(n.clone());
                }
            }
        }
        if any {
            r.slots_any.push(i);
        } else {
            for n in named {
                r.slots_by_event.entry(n).or_default().push(i);
            }
        }
    }
    for (i, t) in r.triggers.iter().enumerate() {
        match &t.on {
            COn::Event(m) => match &m.name {
                NameMatch::Any => r.triggers_any.push(i),
                NameMatch::Name(n) => r.triggers_by_event.entry(n.clone()).or_default().push(i),
            },
            COn::SegmentEntered(_) | COn::SegmentExited(_) => r.segment_triggers.push(i),
        }
        let mut seen = HashSet::new();
        for c in &t.cancel_on {
            match &c.event.name {
                NameMatch::Any => {
                    if seen.insert(None) {
                        r.cancels_any.push(i)
                    }
                }
                NameMatch::Name(n) => {
                    if seen.insert(Some(n.clone())) {
                        r.cancels_by_event.entry(n.clone()).or_default().push(i)
                    }
                }
            }
        }
    }
    let mut tracked: Vec<usize> = r
        .segment_triggers
        .iter()
        .filter_map(|&ti| match r.triggers[ti].on {
            COn::SegmentEntered(s) | COn::SegmentExited(s) => Some(s),
            COn::Event(_) => None,
        })
        .collect();
    tracked.sort_unstable();
    tracked.dedup();
    // A tracked segment that reads another through `in_segment` is evaluated after it (cycles
    // are rejected, so depths are finite): the engine caches membership as it goes.
    fn depth(r: &CompiledRules, c: &CCond, seen: usize) -> usize {
        match c {
            CCond::All(v) | CCond::Any(v) => v.iter().map(|c| depth(r, c, seen)).max().unwrap_or(0),
            CCond::Not(c) => depth(r, c, seen),
            CCond::InSegment(s) if seen < 64 => 1 + depth(r, &r.segments[*s].cond, seen + 1),
            _ => 0,
        }
    }
    tracked.sort_by_key(|&s| (depth(r, &r.segments[s].cond, 0), s));
    r.track_segments = !tracked.is_empty();
    r.segment_tracked = (0..r.segments.len())
        .map(|i| tracked.contains(&i))
        .collect();
    // Definitions (not positions) of the tracked segments and of what they read.
    let defs: Vec<String> = tracked
        .iter()
        .map(|&i| format!("{}={:?}", r.segments[i].id, r.segments[i].cond))
        .collect();
    let slots: Vec<String> = r
        .slots
        .iter()
        .map(|s| format!("{}:{:?}", s.id, s.kind))
        .collect();
    r.segments_fingerprint = stable_id(&format!("{defs:?}{slots:?}")) | 1;
    r.tracked_segments = tracked;
    number_events(r);
}
