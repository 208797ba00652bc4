//! What an activity (a track, page or screen call) does to a user's behavioral state: the
//! slots the rules read (counts, sliding windows, first and last times, counts per property
//! value, collected rows) and the starts of sessions.

use super::conditions::{lookup, matches_id, value_key};
use crate::rules::compiled::{CompiledRules, Reach, SlotKind};
use crate::state::{Scalar, SlotValue, UserState};
use crate::time::Millis;
use serde_json::{Map, Value};

/// Applies one activity (its name resolved to an event id) to the slots it touches.
pub fn update_slots(
    rules: &CompiledRules,
    state: &mut UserState,
    event_id: Option<u32>,
    props: &Map<String, Value>,
    at: Millis,
    reach: Reach,
) {
    let session = state.sessions;
    for i in rules.slots_reached(event_id, reach) {
        let spec = &rules.slots[i];
        if let Some(reset) = &spec.reset {
            if matches_id(reset, event_id, props) {
                state.slots[i] = SlotValue::Empty;
            }
        }
        if !matches_id(&spec.event, event_id, props) {
            continue;
        }
        let anchor_time = match &spec.kind {
            SlotKind::Anchored { anchor, .. } => match state.slots.get(*anchor) {
                Some(SlotValue::Time(t)) => Some(*t),
                _ => None,
            },
            _ => None,
        };
        let slot = &mut state.slots[i];
        match &spec.kind {
            SlotKind::Count => bump(slot, spec.in_session, session),
            SlotKind::Anchored { within, .. } => {
                if let Some(a) = anchor_time {
                    if at >= a && at <= a + within.0 {
                        bump(slot, spec.in_session, session);
                    }
                }
            }
            SlotKind::Window { within, cap } => {
                let mut times = match std::mem::take(slot) {
                    SlotValue::Times(t) => t,
                    _ => Vec::new(),
                };
                times.retain(|t| *t >= at - within.0);
                times.push(at);
                times.sort_unstable();
                if times.len() > *cap {
                    times.drain(..times.len() - cap);
                }
                *slot = SlotValue::Times(times);
            }
            SlotKind::PerKey { property, cap } => {
                let Some(v) = lookup(props, property).filter(|v| !v.is_null()) else {
                    continue;
                };
                let key = value_key(v);
                let mut keys = match std::mem::take(slot) {
                    SlotValue::Keys(k) => k,
                    _ => Vec::new(),
                };
                let count = match keys.iter().position(|(k, _)| *k == key) {
                    Some(p) => keys.remove(p).1,
                    None => 0,
                };
                keys.push((key, count.saturating_add(1)));
                if keys.len() > *cap {
                    keys.remove(0);
                }
                *slot = SlotValue::Keys(keys);
            }
            SlotKind::First => {
                if *slot == SlotValue::Empty {
                    *slot = SlotValue::Time(at);
                }
            }
            SlotKind::Last => *slot = SlotValue::Time(at),
            SlotKind::Collect { fields, max } => {
                let mut items = match std::mem::take(slot) {
                    SlotValue::Items(i) => i,
                    _ => Vec::new(),
                };
                let row = fields
                    .iter()
                    .map(|f| {
                        let path: Vec<String> = f.split('.').map(str::to_string).collect();
                        lookup(props, &path)
                            .map(Scalar::from_json)
                            .unwrap_or(Scalar::Null)
                    })
                    .collect();
                // The same row again moves to the end: a list shows each item once, newest last.
                items.retain(|r| *r != row);
                items.push(row);
                if items.len() > *max {
                    items.remove(0);
                }
                *slot = SlotValue::Items(items);
            }
            SlotKind::SessionStarts { .. } => {}
        }
    }
}

fn bump(slot: &mut SlotValue, in_session: bool, session: u32) {
    *slot = match (&*slot, in_session) {
        (SlotValue::SessionCount { session: s, count }, true) if *s == session => {
            SlotValue::SessionCount {
                session,
                count: count.saturating_add(1),
            }
        }
        (_, true) => SlotValue::SessionCount { session, count: 1 },
        (SlotValue::Count(n), false) => SlotValue::Count(n.saturating_add(1)),
        (_, false) => SlotValue::Count(1),
    };
}

/// Records a new session's start in the slots that count sessions over a window.
pub fn record_session_start(rules: &CompiledRules, state: &mut UserState, at: Millis) {
    for &i in &rules.session_slots {
        if let SlotKind::SessionStarts { cap } = rules.slots[i].kind {
            let mut times = match std::mem::take(&mut state.slots[i]) {
                SlotValue::Times(t) => t,
                _ => Vec::new(),
            };
            times.push(at);
            if times.len() > cap {
                times.remove(0);
            }
            state.slots[i] = SlotValue::Times(times);
        }
    }
}
