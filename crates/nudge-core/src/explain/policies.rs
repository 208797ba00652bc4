//! Delivery policies for a trigger's channel as they stand for the user now.

use super::{CapState, Evidence, ExperimentState, GapState, PolicyState, QuietState};
use crate::engine::guards;
use crate::rules::compiled::{CTrigger, CompiledRules};
use crate::rules::model::{CapWindow, Channel, QuietAction};
use crate::state::{CapMemo, UserState};
use crate::time::format_instant;

/// The zone quiet hours are read in for the user.
pub(super) fn zone_name(rules: &CompiledRules, state: &UserState) -> String {
    guards::user_timezone(rules, state)
        .iana_name()
        .unwrap_or("UTC")
        .to_string()
}

/// Caps, quiet hours, unsubscription, `min_gap` and experiment arm for the trigger.
pub(super) fn policy_state(e: &Evidence<'_>, t: &CTrigger) -> PolicyState {
    let (rules, state, at) = (e.rules, e.state, e.at);
    let caps = rules
        .policies
        .caps
        .iter()
        .zip(&state.caps)
        .filter(|(cap, _)| cap.channel == t.channel)
        .map(|(cap, memo)| {
            let (used, per) = match (cap.per, memo) {
                (CapWindow::Rolling(per), CapMemo::Times(times)) => (
                    times
                        .iter()
                        .filter(|s| **s > at - per.0 && **s <= at)
                        .count() as u32,
                    per.to_string(),
                ),
                (CapWindow::Rolling(per), _) => (0, per.to_string()),
                (CapWindow::Session, CapMemo::Session { session, count })
                    if *session == state.sessions =>
                {
                    (*count, "session".to_string())
                }
                (CapWindow::Session, _) => (0, "session".to_string()),
            };
            CapState {
                used,
                max: cap.max,
                per,
                full: used >= cap.max,
            }
        })
        .collect();
    let quiet_hours = rules
        .policies
        .quiet_hours
        .iter()
        .find(|q| q.channels.contains(&t.channel))
        .map(|q| {
            let tz = guards::user_timezone(rules, state);
            let local_time = jiff::Timestamp::from_millisecond(at)
                .map(|ts| ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|_| format_instant(at));
            let now = guards::quiet_hours(rules, state, t.channel, at);
            QuietState {
                from: clock(q.from),
                to: clock(q.to),
                action: match q.action {
                    QuietAction::Defer => "defer",
                    QuietAction::Suppress => "suppress",
                },
                quiet_now: now.is_some(),
                local_time,
                timezone: zone_name(rules, state),
                deferred_to: match now {
                    Some(guards::Quiet::Defer(until)) => Some(until),
                    _ => None,
                },
            }
        });
    PolicyState {
        channel: t.channel,
        exempt: rules.policies.exempt.contains(&t.priority),
        caps,
        quiet_hours,
        unsubscribed: (t.channel == Channel::Email).then_some(state.unsubscribed),
        min_gap: rules.policies.min_gap.map(|gap| GapState {
            gap: gap.to_string(),
            blocks_now: guards::too_close(rules, state, t.channel, t.priority, at),
        }),
        experiment: t.experiment.map(|ei| {
            let exp = &rules.experiments[ei];
            let variant = state
                .assignments
                .iter()
                .find(|(id, _)| *id == exp.stable_id)
                .map(|(_, v)| match exp.variants.get(usize::from(*v)) {
                    Some(var) => var.name.to_string(),
                    None => crate::rules::model::HOLDOUT.to_string(),
                });
            ExperimentState {
                id: exp.id.to_string(),
                variant,
            }
        }),
    }
}

fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}
