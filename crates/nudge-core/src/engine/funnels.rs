//! Funnels, counted as users move through them: a user counts at step k, once, the first time
//! they do steps 1..k in order within the window from step 1, and is counted in the hour they
//! first entered the funnel (their cohort), so the users of a period are exact, not sums of
//! daily uniques.
//!
//! An attempt starts at a step-1 event and is anchored there (a repeated step 1 does not
//! restart it); each event advances it by at most one step. Once its window has passed, the
//! next step-1 event starts a new attempt, which counts only steps the user never reached.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::conditions::{matches_id, Ctx, Props};
use super::decision::{Fact, FactKind, Outcome};
use super::{experiment, Engine};
use crate::rules::compiled::{CBreakdown, CCond};
use crate::state::{secs, truncated, FunnelProgress, Scalar, UserState};
use crate::time::Millis;

/// Longest breakdown value kept (a trait's value), in bytes.
const MAX_BREAKDOWN: usize = 40;

impl Engine<'_> {
    /// Advances the funnels whose steps this event may be.
    pub(super) fn funnel_event(
        &self,
        state: &mut UserState,
        event_id: Option<u32>,
        props: &Map<String, Value>,
        at: Millis,
        out: &mut Outcome,
    ) {
        let Some(entry) = event_id.and_then(|i| self.rules.event_entries.get(i as usize)) else {
            return;
        };
        // Pairs are grouped by funnel, steps ascending (see `index`).
        for group in entry.funnel_steps.chunk_by(|a, b| a.0 == b.0) {
            let fi = group[0].0;
            let f = &self.rules.funnels[fi];
            let is_step = |si: usize| {
                group.iter().any(|&(_, s)| s == si)
                    && matches_id(&f.steps[si].event, event_id, props)
            };
            match state.funnels.iter().position(|p| p.funnel == f.stable_id) {
                None => {
                    if !is_step(0) {
                        continue;
                    }
                    let breakdown = f.breakdown.as_ref().map(|b| self.breakdown(state, b, at));
                    out.facts.push(Fact {
                        at,
                        kind: FactKind::FunnelStep {
                            funnel: f.id.clone(),
                            step: 0,
                            breakdown: breakdown.as_deref().map(Arc::from),
                            after: None,
                        },
                    });
                    state.funnels.push(FunnelProgress {
                        funnel: f.stable_id,
                        entered: secs(at),
                        best: 1,
                        start: 0,
                        step: 1,
                        last: 0,
                        breakdown,
                    });
                }
                Some(k) => {
                    let p = &mut state.funnels[k];
                    let n = f.steps.len();
                    if usize::from(p.best) >= n {
                        continue;
                    }
                    let (entered, start, last) = p.times();
                    let open = at <= start.saturating_add(f.within.0);
                    let next = usize::from(p.step);
                    if open && next < n && is_step(next) {
                        let after = at - last;
                        p.step += 1;
                        p.last = secs(at).saturating_sub(secs(start));
                        if p.step > p.best {
                            p.best = p.step;
                            out.facts.push(Fact {
                                at: entered,
                                kind: FactKind::FunnelStep {
                                    funnel: f.id.clone(),
                                    step: next,
                                    breakdown: p.breakdown.as_deref().map(Arc::from),
                                    after: Some(after),
                                },
                            });
                            if usize::from(p.best) == n {
                                // Done for good: only that it is done is kept.
                                *p = FunnelProgress {
                                    funnel: p.funnel,
                                    entered: 0,
                                    best: p.best,
                                    start: 0,
                                    step: 0,
                                    last: 0,
                                    breakdown: None,
                                };
                            }
                        }
                    } else if !open && is_step(0) {
                        p.start = secs(at).saturating_sub(p.entered);
                        p.step = 1;
                        p.last = 0;
                    }
                }
            }
        }
    }

    /// The breakdown value of a user entering a funnel.
    fn breakdown(&self, state: &UserState, b: &CBreakdown, at: Millis) -> String {
        match b {
            CBreakdown::Segment(si) => {
                let ctx = Ctx {
                    rules: self.rules,
                    state,
                    now: at,
                    props: Props::Captured(&[]),
                };
                if ctx.holds(&CCond::InSegment(*si)) {
                    "in".into()
                } else {
                    "out".into()
                }
            }
            CBreakdown::Trait(name) => match state.trait_value(name) {
                None | Some(Scalar::Null) => "(none)".into(),
                Some(Scalar::Str(s)) => truncated_to(s, MAX_BREAKDOWN).into(),
                Some(other) => truncated_to(&other.to_json().to_string(), MAX_BREAKDOWN).into(),
            },
            CBreakdown::Experiment(ei) => {
                let exp = &self.rules.experiments[*ei];
                match state
                    .assignments
                    .iter()
                    .find(|(id, _)| *id == exp.stable_id)
                {
                    Some((_, v)) => experiment::arm_name(exp, *v).to_string(),
                    None => "unassigned".into(),
                }
            }
        }
    }
}

/// At most `max` bytes of a text, on a char boundary.
fn truncated_to(s: &str, max: usize) -> &str {
    let s = truncated(s);
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
