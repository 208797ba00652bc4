//! The one-line answer for a trigger, from its steps, pending waits, block and last match.

use super::{Block, Evidence, Match, Pending, Step, Verdict};
use crate::engine::CancelReason;
use crate::rules::compiled::{COn, CTrigger};

/// The latest outcome, unless a wait is pending or a later event tells more.
pub(super) fn verdict(
    e: &Evidence<'_>,
    t: &CTrigger,
    decisions: &[Step],
    pending: &[Pending],
    blocked: Option<&Block>,
    last_match: Option<&Match>,
) -> Verdict {
    if let Some(p) = pending.first() {
        return Verdict::Waiting {
            due: p.due,
            armed_at: p.armed_at,
            by: p.by.clone(),
            deferred: p.deferred,
        };
    }
    // The latest outcome; a wait or a re-arm is only a step towards one.
    let last = decisions.iter().rev().find(|s| {
        !matches!(
            s,
            Step::Wait { .. }
                | Step::Cancelled {
                    reason: CancelReason::Rearm,
                    ..
                }
        )
    });
    // A matching event after the last outcome tells more than the outcome does.
    let superseded = matches!((last, last_match), (Some(s), Some(m)) if m.at > s.at());
    if let (Some(s), false) = (last, superseded) {
        return match s {
            Step::Sent { at, .. } => Verdict::Sent { at: *at },
            Step::Suppressed { at, reason } => Verdict::Suppressed {
                at: *at,
                reason: *reason,
            },
            Step::Cancelled { at, reason, by } => Verdict::Cancelled {
                at: *at,
                reason: *reason,
                by: by.clone(),
            },
            Step::Wait { .. } => Verdict::NeverStarted,
        };
    }
    if let Some(b) = blocked {
        return Verdict::Blocked { block: b.clone() };
    }
    match &t.on {
        COn::Event(_) => match last_match {
            None => Verdict::NeverStarted,
            Some(m) if t.when.is_some() => Verdict::NotStarted { last_match: m.at },
            Some(m) => Verdict::NoDecision { last_match: m.at },
        },
        COn::SegmentEntered(s) | COn::SegmentExited(s) => {
            let seg = &e.rules.segments[*s];
            Verdict::NoSegmentChange {
                segment: seg.id.clone(),
                entered: matches!(t.on, COn::SegmentEntered(_)),
                member_now: e.state.segments.contains(&seg.stable_id),
            }
        }
    }
}
