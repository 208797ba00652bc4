//! The delivery guards, in the order a send meets them (`decide`): quiet hours (hold the send
//! until the quiet period ends in the user's zone, or suppress it), experiment holdout,
//! cooldown, email unsubscribe, frequency caps, `min_gap` priority. Sends of one instant are
//! decided in priority order so caps spend on the more important one. A send that goes out
//! is counted toward caps and gaps here.

use super::decision::{decision_id, Decision, Outcome, Reason, Send};
use super::once::consume;
use super::wait::{held_sends, MAX_HELD_PER_TRIGGER};
use super::{Candidate, Engine};
use crate::rules::compiled::CompiledRules;
use crate::rules::model::{CapWindow, Channel, Priority, QuietAction, HOLDOUT};
use crate::state::{CapMemo, Scalar, UserState, Wait};
use crate::time::{time_zone, Millis};

impl Engine<'_> {
    /// Decides candidates of one instant in priority order so caps spend on the higher first.
    pub(super) fn resolve(
        &self,
        state: &mut UserState,
        user_id: &str,
        mut candidates: Vec<Candidate>,
        at: Millis,
        out: &mut Outcome,
    ) {
        candidates.sort_by_key(|c| c.trigger);
        for c in candidates {
            self.decide(state, user_id, c, at, out);
        }
    }

    /// Applies the guards in order: quiet hours first (a held send meets every other guard
    /// at the instant it really goes out), then holdout, cooldown, unsubscribe, caps, gap.
    pub(super) fn decide(
        &self,
        state: &mut UserState,
        user_id: &str,
        c: Candidate,
        at: Millis,
        out: &mut Outcome,
    ) {
        let ti = c.trigger;
        let t = &self.rules.triggers[ti];
        let exempt = self.rules.policies.exempt.contains(&t.priority);
        if !exempt {
            // A send that cannot be held (policy `suppress`, or the trigger already holds
            // its maximum) is suppressed with reason quiet_hours.
            match quiet_hours(self.rules, state, t.channel, at) {
                Some(Quiet::Defer(until)) if held_sends(state, t) < MAX_HELD_PER_TRIGGER => {
                    let id = decision_id(user_id, &t.id, c.occurrence);
                    out.decisions.push(Decision::Wait {
                        id,
                        trigger: t.id.clone(),
                        due: until,
                        deferred: true,
                    });
                    state.waits.push(Wait {
                        trigger: t.stable_id,
                        key: c.key,
                        due: until,
                        origin: c.origin,
                        occurrence: c.occurrence,
                        props: c.props,
                        deferred: true,
                    });
                    return;
                }
                Some(_) => {
                    let send = self.make_send(state, user_id, &c, at, out);
                    let reason = Reason::QuietHours;
                    return self.suppress(state, send, ti, &c, reason, true, out);
                }
                None => {}
            }
        }
        let send = self.make_send(state, user_id, &c, at, out);
        if &*send.variant == HOLDOUT && send.experiment.is_some() {
            return self.suppress(state, send, ti, &c, Reason::Holdout, true, out);
        }
        if let (Some(cd), Some(last)) = (t.cooldown, state.triggers[ti].last) {
            if at < last.saturating_add(cd.0) {
                return self.suppress(state, send, ti, &c, Reason::Cooldown, false, out);
            }
        }
        if t.channel == Channel::Email && state.unsubscribed {
            return self.suppress(state, send, ti, &c, Reason::Unsubscribed, true, out);
        }
        if !exempt {
            if capped(self.rules, state, t.channel, at) {
                return self.suppress(state, send, ti, &c, Reason::FrequencyCap, true, out);
            }
            if too_close(self.rules, state, t.channel, t.priority, at) {
                return self.suppress(state, send, ti, &c, Reason::Priority, true, out);
            }
        }
        consume(t, &mut state.triggers[ti], state.sessions, &c.props, at);
        record_send(self.rules, state, t.channel, t.priority, at);
        self.opened_window(state, ti, &send);
        let send = self.with_context(state, &c, send);
        out.decisions.push(Decision::Send(Box::new(send)));
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn suppress(
        &self,
        state: &mut UserState,
        mut send: Send,
        ti: usize,
        c: &Candidate,
        reason: Reason,
        consumes: bool,
        out: &mut Outcome,
    ) {
        if consumes {
            let t = &self.rules.triggers[ti];
            consume(
                t,
                &mut state.triggers[ti],
                state.sessions,
                &c.props,
                send.at,
            );
        }
        send.reason = Some(reason);
        out.decisions.push(Decision::Send(Box::new(send)));
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
