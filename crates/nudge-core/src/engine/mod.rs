//! The trigger engine: given a user's state, an event or the passing of time, and the clock,
//! it updates the state and decides what to send, when, and what to cancel.
//!
//! One file per step of a trigger's lifecycle (docs/rule-language.md, "Trigger lifecycle"):
//! - `start.rs`: an event or a segment change starts a trigger; `once` and `if` gate it;
//! - `wait.rs`: the pending wait (one per trigger and `same` key) and its timer id;
//! - `cancel.rs`: `cancel_on` events cancel waits;
//! - `fire.rs`: due waits fire, re-checked (`once`, `check`, `exit`);
//! - `guards.rs`: quiet hours, holdout, cooldown, unsubscribe, caps and `min_gap`, in that
//!   order, for every send of an instant in priority order;
//! - `content.rs`: which message, content variant and template data a send carries.
//!
//! And what they read and keep: `conditions.rs` (matching events, evaluating conditions),
//! `activity.rs` (behavioral slots and sessions), `segments.rs` (live membership and segment
//! triggers), `traits.rs`, `once.rs` (once and cooldown memory), `experiment.rs`
//! (assignment), `decision.rs` (what the engine outputs).
//!
//! What reports count is recorded as facts of the outcome: `measure.rs` (starts,
//! cancellations, waits, assignments, goal conversions, engagement) and `funnels.rs`.

mod activity;
mod cancel;
pub mod conditions;
mod content;
pub mod decision;
pub mod engagement;
pub mod experiment;
mod fire;
mod funnels;
pub mod guards;
mod measure;
mod once;
mod segments;
mod start;
mod traits;
mod wait;

pub use decision::{CancelReason, Decision, Fact, FactKind, Outcome, Reason, Send, SendContext};
pub use wait::{timer_id, MAX_HELD_PER_TRIGGER};

use crate::event::Message;
use crate::rules::compiled::{CompiledRules, Reach, SegmentMask};
use crate::state::{Scalar, UserState, SEEN_IDS};
use crate::time::Millis;

/// Segment event name that unsubscribes a user from email (Segment's email spec).
pub const EMAIL_UNSUBSCRIBED: &str = "Email Unsubscribed";
/// Trait that, when true, unsubscribes a user from email.
pub const UNSUBSCRIBED_TRAIT: &str = "unsubscribed";

/// A send waiting for its guards, at one instant.
struct Candidate {
    trigger: usize,
    key: u32,
    occurrence: u64,
    origin: Millis,
    props: Vec<(String, Scalar)>,
}

/// Runs a compiled rule set against one user's state at a time.
#[derive(Clone, Copy)]
pub struct Engine<'r> {
    pub rules: &'r CompiledRules,
}

impl<'r> Engine<'r> {
    pub fn new(rules: &'r CompiledRules) -> Self {
        Engine { rules }
    }

    /// Applies one message at instant `at` (its timestamp, or the time it was received).
    /// Waits due strictly before `at` fire first. A messageId seen before changes nothing.
    pub fn handle(
        &self,
        state: &mut UserState,
        user_id: &str,
        msg: &Message,
        at: Millis,
    ) -> Outcome {
        self.handle_all(state, user_id, &[msg], at)
    }

    /// Applies several messages of one user that share the instant `at`: each updates the
    /// state and starts its triggers in turn, then every send falling at `at` is decided
    /// together in priority order (so caps spend on the more important message).
    pub fn handle_all(
        &self,
        state: &mut UserState,
        user_id: &str,
        msgs: &[&Message],
        at: Millis,
    ) -> Outcome {
        state.fit(self.rules);
        let hash = |m: &Message| xxhash_rust::xxh3::xxh3_64(m.message_id.as_bytes());
        if msgs.iter().all(|m| state.seen.contains(&seen_key(hash(m)))) {
            return Outcome {
                duplicate: true,
                applied: 0,
                decisions: vec![],
                facts: vec![],
                next_wake: self.next_wake(state),
            };
        }
        let mut out = Outcome::default();
        let waits_before = self.wait_counts(state);
        self.advance_into(state, user_id, at.saturating_sub(1), &mut out);
        let mut candidates = Vec::new();
        self.refresh_segments(state, user_id, at, &mut candidates, &mut out);
        for msg in msgs {
            let id_hash = hash(msg);
            if state.seen.contains(&seen_key(id_hash)) {
                continue;
            }
            state.seen.push(seen_key(id_hash));
            if state.seen.len() > SEEN_IDS {
                state.seen.remove(0);
            }
            if !msg.is_engagement() {
                out.applied += 1;
            }
            self.apply(state, user_id, msg, id_hash, at, &mut candidates, &mut out);
        }
        self.resolve(state, user_id, candidates, at, &mut out);
        self.waits_changed(waits_before, state, at, &mut out);
        out.next_wake = self.next_wake(state);
        out
    }

    /// One message's effect on state, then on tracked segments (so that `in_segment` reads
    /// current membership), cancellations and trigger starts.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        state: &mut UserState,
        user_id: &str,
        msg: &Message,
        id_hash: u64,
        at: Millis,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        let mut dirty: SegmentMask = 0;
        if self.update_traits(state, msg) {
            dirty |= self.rules.trait_segment_mask;
        }
        if let Some(name) = msg.activity_name() {
            if msg.is_engagement() {
                let name = name.into_owned();
                self.engaged(&name, &msg.properties, at, out);
                return self.engagement(state, user_id, &name, msg, id_hash, at, candidates, out);
            }
            let gap = self.rules.session_gap.0;
            // Idle conditions flip on activity only after a long enough gap.
            let idle_for = state.last_activity.map(|last| at - last);
            if idle_for.is_none_or(|g| g >= self.rules.min_idle_bound) {
                dirty |= self.rules.idle_segment_mask;
            }
            if idle_for.is_none_or(|g| g >= gap) {
                dirty |= self.rules.session_segment_mask;
                state.sessions = state.sessions.saturating_add(1);
                state.session_start = Some(at);
                activity::record_session_start(self.rules, state, at);
            }
            state.last_activity = Some(state.last_activity.map_or(at, |l| l.max(at)));
            if name == EMAIL_UNSUBSCRIBED {
                state.unsubscribed = true;
            }
            // The name is looked up once; matching below compares event ids.
            let event_id = self.rules.event_id(&name);
            dirty |= self.rules.any_event_segment_mask;
            if let Some(e) = event_id.and_then(|i| self.rules.event_entries.get(i as usize)) {
                dirty |= e.segment_mask;
            }
            self.react(
                state,
                user_id,
                msg,
                (event_id, id_hash),
                at,
                Reach::All,
                dirty,
                candidates,
                out,
            );
        } else {
            self.segment_transitions(state, user_id, at, Some(dirty), candidates, out);
        }
    }

    /// What an activity's (or a named engagement event's) event does to the rules that `reach`
    /// takes in: their slots, goals, funnels, segments, cancellations and trigger starts.
    #[allow(clippy::too_many_arguments)]
    fn react(
        &self,
        state: &mut UserState,
        user_id: &str,
        msg: &Message,
        (event_id, id_hash): (Option<u32>, u64),
        at: Millis,
        reach: Reach,
        dirty: SegmentMask,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        activity::update_slots(self.rules, state, event_id, &msg.properties, at, reach);
        self.goal_event(state, event_id, &msg.properties, at, out);
        self.funnel_event(state, event_id, &msg.properties, at, out);
        self.segment_transitions(state, user_id, at, Some(dirty), candidates, out);
        self.cancel_by_event(state, user_id, event_id, &msg.properties, reach, at, out);
        self.start_triggers(
            state, user_id, event_id, msg, id_hash, at, reach, candidates, out,
        );
    }

    /// Fires every wait due at or before `now` (and re-checks segments), in time order.
    pub fn advance(&self, state: &mut UserState, user_id: &str, now: Millis) -> Outcome {
        state.fit(self.rules);
        let mut out = Outcome::default();
        let waits_before = self.wait_counts(state);
        self.advance_into(state, user_id, now, &mut out);
        self.waits_changed(waits_before, state, now, &mut out);
        out.next_wake = self.next_wake(state);
        out
    }

    /// The earliest instant this user's state needs the engine again.
    pub fn next_wake(&self, state: &UserState) -> Option<Millis> {
        state.waits.iter().map(|w| w.due).chain(state.wake_at).min()
    }
}

/// The part of a messageId hash kept in the seen ring.
fn seen_key(h: u64) -> u32 {
    (h >> 32) as u32
}

#[cfg(test)]
mod tests;
