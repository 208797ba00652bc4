//! Delivery policies and send context: experiments, content variants, quiet hours, caps.

use super::decision::SendContext;
use super::eval::{Ctx, Props};
use crate::rules::compiled::{CData, CMessage, CTrigger, CompiledRules};
use crate::rules::model::{CapWindow, Channel, Priority, QuietAction};
use crate::state::{CapMemo, Scalar, SlotValue, UserState};
use crate::time::{time_zone, Millis};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Variant name recorded for users in an experiment's holdout.
pub const HOLDOUT: &str = "holdout";
/// Variant index stored for holdout users.
const HOLDOUT_INDEX: u8 = u8::MAX;

/// The user's arm of an experiment: assigned once by hashing the user id, then kept in state
/// so that later weight changes never move a user.
pub fn assign(
    rules: &CompiledRules,
    state: &mut UserState,
    user_id: &str,
    experiment: usize,
) -> u8 {
    let exp = &rules.experiments[experiment];
    if let Some((_, v)) = state
        .assignments
        .iter()
        .find(|(id, _)| *id == exp.stable_id)
    {
        if *v == HOLDOUT_INDEX || usize::from(*v) < exp.variants.len() {
            return *v;
        }
    }
    let v = bucket_variant(exp, user_id);
    state.assignments.retain(|(id, _)| *id != exp.stable_id);
    state.assignments.push((exp.stable_id, v));
    v
}

/// Deterministic bucket 0..10000 of a user in an experiment.
pub fn bucket(experiment_id: &str, user_id: &str) -> u32 {
    let mut buf = Vec::with_capacity(experiment_id.len() + user_id.len() + 1);
    buf.extend_from_slice(experiment_id.as_bytes());
    buf.push(0);
    buf.extend_from_slice(user_id.as_bytes());
    (xxhash_rust::xxh3::xxh3_64(&buf) % 10_000) as u32
}

fn bucket_variant(exp: &crate::rules::compiled::CExperiment, user_id: &str) -> u8 {
    let b = bucket(&exp.id, user_id);
    if b < exp.holdout_upto {
        return HOLDOUT_INDEX;
    }
    exp.variants
        .iter()
        .position(|v| b < v.upto)
        .unwrap_or(exp.variants.len().saturating_sub(1)) as u8
}

/// The data templates see: traits, the triggering event's properties, computed data.
pub fn template_context(
    rules: &CompiledRules,
    state: &UserState,
    t: &CTrigger,
    props: &[(String, Scalar)],
    origin: Millis,
    at: Millis,
) -> SendContext {
    let eval = Ctx {
        rules,
        state,
        now: at,
        props: Props::Captured(props),
    };
    let data = t
        .data
        .iter()
        .map(|(name, spec)| {
            let v = match spec {
                CData::Collect { slot, fields } => match &state.slots[*slot] {
                    SlotValue::Items(items) => Value::Array(
                        items
                            .iter()
                            .map(|row| {
                                Value::Object(
                                    fields
                                        .iter()
                                        .cloned()
                                        .zip(row.iter().map(Scalar::to_json))
                                        .collect(),
                                )
                            })
                            .collect(),
                    ),
                    _ => Value::Array(vec![]),
                },
                CData::Count { slot, per } => Value::from(eval.count(*slot, per.as_deref())),
            };
            (name.clone(), v)
        })
        .collect();
    SendContext {
        traits: state.traits.clone(),
        properties: props.to_vec(),
        data,
        origin,
    }
}

/// The first content variant whose `when` holds and whose required data is present.
pub fn choose_content(
    rules: &CompiledRules,
    state: &UserState,
    msg: &CMessage,
    props: &[(String, Scalar)],
    context: &Map<String, Value>,
    at: Millis,
) -> Arc<str> {
    let ctx = Ctx {
        rules,
        state,
        now: at,
        props: Props::Captured(props),
    };
    for v in &msg.variants {
        let when_ok = v.when.as_ref().is_none_or(|c| ctx.holds(c));
        let data_ok = v
            .requires
            .iter()
            .all(|p| present(super::eval::lookup(context, p)));
        if when_ok && data_ok {
            return v.name.clone();
        }
    }
    msg.default_name.clone()
}

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

/// The user's time zone: their trait if it names a known zone, else the rule set's default.
pub fn user_timezone(rules: &CompiledRules, state: &UserState) -> jiff::tz::TimeZone {
    match state.trait_value(&rules.timezone_trait) {
        Some(Scalar::Str(name)) => {
            time_zone(name).unwrap_or_else(|| rules.default_timezone.clone())
        }
        _ => rules.default_timezone.clone(),
    }
}

/// What quiet hours say about a send at `at`.
pub enum Quiet {
    /// Send at this instant instead (the end of the quiet period, local time).
    Defer(Millis),
    Suppress,
}

/// Quiet hours for a channel at `at` in the user's zone, if they apply.
pub fn quiet_hours(
    rules: &CompiledRules,
    state: &UserState,
    channel: Channel,
    at: Millis,
) -> Option<Quiet> {
    let q = rules
        .policies
        .quiet_hours
        .iter()
        .find(|q| q.channels.contains(&channel))?;
    let tz = user_timezone(rules, state);
    let ts = jiff::Timestamp::from_millisecond(at).ok()?;
    let local = ts.to_zoned(tz.clone());
    let minute = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
    let quiet = if q.from < q.to {
        minute >= q.from && minute < q.to
    } else {
        minute >= q.from || minute < q.to
    };
    if !quiet {
        return None;
    }
    if q.action == QuietAction::Suppress {
        return Some(Quiet::Suppress);
    }
    // The next local `to` after now; `compatible` resolves a DST gap forward.
    let end_time = jiff::civil::Time::new((q.to / 60) as i8, (q.to % 60) as i8, 0, 0).ok()?;
    let mut date = local.date();
    for _ in 0..3 {
        let end = date.to_datetime(end_time).to_zoned(tz.clone()).ok()?;
        if end.timestamp() > ts {
            return Some(Quiet::Defer(end.timestamp().as_millisecond()));
        }
        date = date.tomorrow().ok()?;
    }
    Some(Quiet::Suppress)
}

/// Whether a frequency cap on the channel is full at `at`.
pub fn capped(rules: &CompiledRules, state: &UserState, channel: Channel, at: Millis) -> bool {
    rules
        .policies
        .caps
        .iter()
        .zip(&state.caps)
        .any(|(cap, memo)| {
            cap.channel == channel
                && match (cap.per, memo) {
                    (CapWindow::Rolling(per), CapMemo::Times(times)) => {
                        times
                            .iter()
                            .filter(|t| **t > at - per.0 && **t <= at)
                            .count()
                            >= cap.max as usize
                    }
                    (CapWindow::Session, CapMemo::Session { session, count }) => {
                        *session == state.sessions && *count >= cap.max
                    }
                    _ => cap.max == 0,
                }
        })
}

fn rank(p: Priority) -> u8 {
    p as u8
}

/// Whether `min_gap` forbids a send: one of at least this priority went out too recently.
pub fn too_close(
    rules: &CompiledRules,
    state: &UserState,
    channel: Channel,
    priority: Priority,
    at: Millis,
) -> bool {
    let Some(gap) = rules.policies.min_gap else {
        return false;
    };
    state
        .last_sends
        .iter()
        .any(|(ch, t, r)| *ch == channel as u8 && at - *t < gap.0 && *r <= rank(priority))
}

/// Counts a send toward the caps (urgent sends count too) and the gap policy.
pub fn record_send(
    rules: &CompiledRules,
    state: &mut UserState,
    channel: Channel,
    priority: Priority,
    at: Millis,
) {
    for (cap, memo) in rules.policies.caps.iter().zip(state.caps.iter_mut()) {
        if cap.channel != channel {
            continue;
        }
        *memo = match (cap.per, std::mem::take(memo)) {
            (CapWindow::Rolling(per), CapMemo::Times(mut times)) => {
                times.retain(|t| *t > at - per.0);
                times.push(at);
                let keep = cap.max.max(1) as usize;
                if times.len() > keep {
                    times.drain(..times.len() - keep);
                }
                CapMemo::Times(times)
            }
            (CapWindow::Rolling(_), _) => CapMemo::Times(vec![at]),
            (CapWindow::Session, CapMemo::Session { session, count })
                if session == state.sessions =>
            {
                CapMemo::Session {
                    session,
                    count: count.saturating_add(1),
                }
            }
            (CapWindow::Session, _) => CapMemo::Session {
                session: state.sessions,
                count: 1,
            },
        };
    }
    if rules.policies.min_gap.is_some() {
        state.last_sends.retain(|(ch, _, _)| *ch != channel as u8);
        state.last_sends.push((channel as u8, at, rank(priority)));
    }
}
