//! Live segments: membership re-evaluated as events arrive (only the segments an event can
//! change) and as time passes (at the next instant any could change by time alone), and the
//! triggers that start on entering or leaving one.

use serde_json::Map;

use super::conditions::{Ctx, Props};
use super::decision::Outcome;
use super::{Candidate, Engine};
use crate::rules::compiled::{COn, SegmentMask};
use crate::state::UserState;
use crate::time::Millis;

impl Engine<'_> {
    /// Evaluates every tracked segment when the stored membership was computed under other
    /// segment definitions (or never, for a new user), so that cached membership is exact.
    pub(super) fn refresh_segments(
        &self,
        state: &mut UserState,
        user_id: &str,
        at: Millis,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        if self.rules.track_segments
            && state.segments_fingerprint != self.rules.segments_fingerprint
        {
            let tracked = |id: &u32| {
                self.rules
                    .tracked_segments
                    .iter()
                    .any(|&i| self.rules.segments[i].stable_id == *id)
            };
            state.segments.retain(tracked);
            self.segment_transitions(state, user_id, at, None, candidates, out);
            state.segments_fingerprint = self.rules.segments_fingerprint;
        }
    }

    /// Re-evaluates tracked segments; entering or leaving starts segment triggers.
    /// `dirty`: the tracked segments an event may have changed (None: all, as when time
    /// passes). Skipped segments keep their membership and their share of `wake_at`.
    pub(super) fn segment_transitions(
        &self,
        state: &mut UserState,
        user_id: &str,
        at: Millis,
        dirty: Option<SegmentMask>,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        if !self.rules.track_segments || dirty == Some(0) {
            return;
        }
        let mut changes = Vec::new();
        // A skipped segment's next change is still covered by the earlier wake (at worst
        // early: a wake that finds nothing re-evaluates everything and moves on).
        let mut wake: Option<Millis> = match dirty {
            Some(_) => state.wake_at.filter(|w| *w >= at),
            None => None,
        };
        // In dependency order, each result stored at once: a later segment reading this one
        // through `in_segment` sees its new membership.
        for (bit, &si) in self.rules.tracked_segments.iter().enumerate() {
            if let Some(mask) = dirty {
                if bit < 128 && mask & (1u128 << bit) == 0 {
                    continue;
                }
            }
            let seg = &self.rules.segments[si];
            let ctx = Ctx {
                rules: self.rules,
                state,
                now: at,
                props: Props::None,
            };
            let now_in = ctx.holds(&seg.cond);
            ctx.next_change(&seg.cond, &mut wake);
            let pos = state.segments.binary_search(&seg.stable_id);
            match (now_in, pos) {
                (true, Err(p)) => {
                    state.segments.insert(p, seg.stable_id);
                    changes.push((si, true));
                }
                (false, Ok(p)) => {
                    state.segments.remove(p);
                    changes.push((si, false));
                }
                _ => {}
            }
        }
        state.wake_at = wake;
        let empty = Map::new();
        for (si, entered) in changes {
            let sid = self.rules.segments[si].stable_id;
            for &ti in &self.rules.segment_triggers {
                let fires = match self.rules.triggers[ti].on {
                    COn::SegmentEntered(s) => entered && s == si,
                    COn::SegmentExited(s) => !entered && s == si,
                    COn::Event(_) => false,
                };
                if fires {
                    let occurrence = xxhash_rust::xxh3::xxh3_64(
                        format!("segment:{sid}:{entered}:{at}").as_bytes(),
                    );
                    self.arm(state, user_id, ti, &empty, occurrence, at, candidates, out);
                }
            }
        }
    }
}
