//! Traits kept from identify calls and `context.traits` (only those the rules read), the
//! time zone from `context.timezone`, and the `unsubscribed` trait.

use super::{Engine, UNSUBSCRIBED_TRAIT};
use crate::event::Message;
use crate::state::{Scalar, UserState};
use serde_json::Value;

impl Engine<'_> {
    /// Keeps the traits the rules read; returns whether any changed.
    pub(super) fn update_traits(&self, state: &mut UserState, msg: &Message) -> bool {
        let mut changed = false;
        let tz_trait = &self.rules.timezone_trait;
        // Only the traits the rules read are kept (`rules.traits` is sorted).
        for (name, v) in &msg.traits {
            if self.rules.traits.binary_search(name).is_ok() {
                changed |= set_trait(state, name, Scalar::from_json(v));
            }
        }
        if let Some(tz) = msg.timezone() {
            // Most events repeat the zone the user already has: compare before storing.
            let known = matches!(state.trait_value(tz_trait), Some(Scalar::Str(s)) if s == tz);
            if !known && msg.traits.get(tz_trait).is_none() {
                changed |= set_trait(state, tz_trait, Scalar::Str(tz.to_string()));
            }
        }
        match msg.traits.get(UNSUBSCRIBED_TRAIT) {
            Some(Value::Bool(b)) => state.unsubscribed = *b,
            Some(Value::String(s)) if s == "true" => state.unsubscribed = true,
            _ => {}
        }
        changed
    }
}

/// Stores a trait; returns whether its value changed.
pub(super) fn set_trait(state: &mut UserState, name: &str, v: Scalar) -> bool {
    match state.traits.iter_mut().find(|(k, _)| k == name) {
        Some(slot) if slot.1 == v => false,
        Some(slot) => {
            slot.1 = v;
            true
        }
        None => {
            state.traits.push((name.to_string(), v));
            state.traits.sort_by(|a, b| a.0.cmp(&b.0));
            true
        }
    }
}
