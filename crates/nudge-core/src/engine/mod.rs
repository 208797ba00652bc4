//! The trigger engine: given a user's state, an event or the passing of time, and the clock,
//! it updates the state and decides what to send, when, and what to cancel.

pub mod decision;
pub mod eval;
pub mod policy;

pub use decision::{CancelReason, Decision, Outcome, Reason, Send, SendContext};

use crate::event::Message;
use crate::rules::compiled::{COn, COnce, CTrigger, CompiledRules, SegmentMask};
use crate::rules::model::Channel;
use crate::state::{Scalar, TriggerMemo, UserState, Wait, MAX_ONCE_KEYS, SEEN_IDS};
use crate::time::Millis;
use eval::{lookup, value_key, Ctx, Props};
use serde_json::{Map, Value};
use std::sync::Arc;

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
                decisions: vec![],
                next_wake: self.next_wake(state),
            };
        }
        let mut out = Outcome::default();
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
            self.apply(state, user_id, msg, id_hash, at, &mut candidates, &mut out);
        }
        self.resolve(state, user_id, candidates, at, &mut out);
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
                eval::record_session_start(self.rules, state, at);
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
            eval::update_slots(self.rules, state, event_id, &msg.properties, at);
            self.segment_transitions(state, user_id, at, Some(dirty), candidates, out);
            self.cancel_by_event(state, user_id, event_id, &msg.properties, out);
            self.start_triggers(state, user_id, event_id, msg, id_hash, at, candidates, out);
        } else {
            self.segment_transitions(state, user_id, at, Some(dirty), candidates, out);
        }
    }

    /// Evaluates every tracked segment when the stored membership was computed under other
    /// segment definitions (or never, for a new user), so that cached membership is exact.
    fn refresh_segments(
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

    /// Fires every wait due at or before `now` (and re-checks segments), in time order.
    pub fn advance(&self, state: &mut UserState, user_id: &str, now: Millis) -> Outcome {
        state.fit(self.rules);
        let mut out = Outcome::default();
        self.advance_into(state, user_id, now, &mut out);
        out.next_wake = self.next_wake(state);
        out
    }

    /// The earliest instant this user's state needs the engine again.
    pub fn next_wake(&self, state: &UserState) -> Option<Millis> {
        state.waits.iter().map(|w| w.due).chain(state.wake_at).min()
    }

    #[allow(clippy::too_many_arguments)]
    fn start_triggers(
        &self,
        state: &mut UserState,
        user_id: &str,
        event_id: Option<u32>,
        msg: &Message,
        id_hash: u64,
        at: Millis,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        for ti in self.rules.triggers_for_id(event_id) {
            let COn::Event(m) = &self.rules.triggers[ti].on else {
                continue;
            };
            if eval::matches_id(m, event_id, &msg.properties) {
                self.arm(
                    state,
                    user_id,
                    ti,
                    &msg.properties,
                    id_hash,
                    at,
                    candidates,
                    out,
                );
            }
        }
    }

    /// Keeps the traits the rules read; returns whether any changed.
    fn update_traits(&self, state: &mut UserState, msg: &Message) -> bool {
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

    fn cancel_by_event(
        &self,
        state: &mut UserState,
        user_id: &str,
        event_id: Option<u32>,
        props: &Map<String, Value>,
        out: &mut Outcome,
    ) {
        for ti in self.rules.cancels_for_id(event_id) {
            let t = &self.rules.triggers[ti];
            if !state.waits.iter().any(|w| w.trigger == t.stable_id) {
                continue;
            }
            for c in &t.cancel_on {
                if !eval::matches_id(&c.event, event_id, props) {
                    continue;
                }
                let same: Vec<(String, Option<u32>)> = c
                    .same
                    .iter()
                    .map(|p| {
                        (
                            p.join("."),
                            lookup(props, p).filter(|v| !v.is_null()).map(value_key),
                        )
                    })
                    .collect();
                let mut i = 0;
                while i < state.waits.len() {
                    let w = &state.waits[i];
                    let hit = w.trigger == t.stable_id
                        && same.iter().all(|(path, key)| {
                            let captured = w
                                .props
                                .iter()
                                .find(|(k, _)| k == path)
                                .map(|(_, v)| v.to_json());
                            let captured = captured.filter(|v| !v.is_null()).map(|v| value_key(&v));
                            captured == *key
                        });
                    if hit {
                        let w = state.waits.remove(i);
                        out.decisions.push(Decision::Cancel {
                            id: timer_id(user_id, t, &w),
                            trigger: t.id.clone(),
                            reason: CancelReason::Event,
                        });
                    } else {
                        i += 1;
                    }
                }
            }
        }
    }

    /// A trigger's start: gate by once/`if`, then wait or become a candidate now.
    #[allow(clippy::too_many_arguments)]
    fn arm(
        &self,
        state: &mut UserState,
        user_id: &str,
        ti: usize,
        props: &Map<String, Value>,
        occurrence: u64,
        at: Millis,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        let t = &self.rules.triggers[ti];
        let key = wait_key(t, props);
        // The pending wait of this trigger and key, if any (sends held by quiet hours are
        // not pending waits: they already fell due).
        let pending = match t.wait {
            Some(_) => state
                .waits
                .iter()
                .position(|w| w.trigger == t.stable_id && w.key == key && !w.deferred),
            None => None,
        };
        let once = t
            .once_path
            .as_ref()
            .map(|p| lookup(props, p).map_or_else(|| value_key(&Value::Null), value_key));
        let blocked = spent(t, &state.triggers[ti], state.sessions, once)
            || t.when.as_ref().is_some_and(|w| {
                let ctx = Ctx {
                    rules: self.rules,
                    state,
                    now: at,
                    props: Props::Event(props),
                };
                !ctx.holds(w)
            });
        if blocked {
            // A re-arming event that does not start the trigger still ends the pending wait.
            if let (true, Some(i)) = (t.rearm, pending) {
                let w = state.waits.swap_remove(i);
                out.decisions.push(Decision::Cancel {
                    id: timer_id(user_id, t, &w),
                    trigger: t.id.clone(),
                    reason: CancelReason::Rearm,
                });
            }
            return;
        }
        if pending.is_some() && !t.rearm {
            // Keep the first wait: a new triggering event does not restart it.
            return;
        }
        // Only now, with the trigger started, keep what rules and templates read later.
        let captured: Vec<(String, Scalar)> = t
            .captured
            .iter()
            .zip(&t.captured_paths)
            .filter_map(|(p, path)| lookup(props, path).map(|v| (p.clone(), Scalar::from_json(v))))
            .collect();
        match t.wait {
            Some(wait) => {
                let wait = match t.experiment {
                    Some(ei) => {
                        let v = policy::assign(self.rules, state, user_id, ei);
                        self.rules.experiments[ei]
                            .variants
                            .get(usize::from(v))
                            .and_then(|v| v.wait)
                            .unwrap_or(wait)
                    }
                    None => wait,
                };
                let due = at.saturating_add(wait.0);
                let w = Wait {
                    trigger: t.stable_id,
                    key,
                    due,
                    origin: at,
                    occurrence,
                    props: captured,
                    deferred: false,
                };
                let id = timer_id(user_id, t, &w);
                // A re-arm moves the pending wait: the same timer, due later.
                match pending {
                    Some(i) => state.waits[i] = w,
                    None => state.waits.push(w),
                }
                out.decisions.push(Decision::Wait {
                    id,
                    trigger: t.id.clone(),
                    due,
                    deferred: false,
                });
            }
            None => candidates.push(Candidate {
                trigger: ti,
                key,
                occurrence,
                origin: at,
                props: captured,
            }),
        }
    }

    fn advance_into(&self, state: &mut UserState, user_id: &str, upto: Millis, out: &mut Outcome) {
        // Each round handles one instant; the bound keeps a pathological rule set finite.
        for _ in 0..10_000 {
            let Some(now) = self.next_wake(state).filter(|t| *t <= upto) else {
                return;
            };
            let mut due: Vec<Wait> = Vec::new();
            state.waits.retain(|w| {
                if w.due == now {
                    due.push(w.clone());
                    false
                } else {
                    true
                }
            });
            due.sort_by_key(|w| {
                (
                    self.rules
                        .trigger_by_id
                        .get(&w.trigger)
                        .copied()
                        .unwrap_or(usize::MAX),
                    w.origin,
                    w.occurrence,
                )
            });
            let mut candidates = Vec::new();
            // Segments first, so that conditions below read membership as of `now`. Waits
            // firing change no segment input; only a due segment wake re-evaluates them.
            self.refresh_segments(state, user_id, now, &mut candidates, out);
            if state.wake_at == Some(now) {
                state.wake_at = None;
                self.segment_transitions(state, user_id, now, None, &mut candidates, out);
            }
            for w in due {
                let Some(&ti) = self.rules.trigger_by_id.get(&w.trigger) else {
                    continue;
                };
                let t = &self.rules.triggers[ti];
                let id = timer_id(user_id, t, &w);
                let ctx = Ctx {
                    rules: self.rules,
                    state,
                    now,
                    props: Props::Captured(&w.props),
                };
                let fails_check = t.check.as_ref().is_some_and(|c| !ctx.holds(c));
                let exits = t.exit.as_ref().is_some_and(|c| ctx.holds(c));
                if spent(
                    t,
                    &state.triggers[ti],
                    state.sessions,
                    once_key(t, &w.props),
                ) || fails_check
                {
                    out.decisions.push(Decision::Cancel {
                        id,
                        trigger: t.id.clone(),
                        reason: CancelReason::Condition,
                    });
                    continue;
                }
                let cand = Candidate {
                    trigger: ti,
                    key: w.key,
                    occurrence: w.occurrence,
                    origin: w.origin,
                    props: w.props,
                };
                if exits {
                    let send = self.make_send(state, user_id, &cand, now);
                    self.suppress(
                        state,
                        send,
                        ti,
                        &cand,
                        decision::Reason::ExitCondition,
                        true,
                        out,
                    );
                    continue;
                }
                candidates.push(cand);
            }
            self.resolve(state, user_id, candidates, now, out);
        }
    }

    /// Re-evaluates tracked segments; entering or leaving starts segment triggers.
    /// `dirty`: the tracked segments an event may have changed (None: all, as when time
    /// passes). Skipped segments keep their membership and their share of `wake_at`.
    fn segment_transitions(
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

    /// Decides candidates of one instant in priority order so caps spend on the higher first.
    fn resolve(
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

    fn make_send(&self, state: &mut UserState, user_id: &str, c: &Candidate, at: Millis) -> Send {
        let t = &self.rules.triggers[c.trigger];
        let mut message = t.message;
        let mut experiment = None;
        let mut exp_variant: Option<(Arc<str>, Option<Arc<str>>)> = None;
        if let Some(ei) = t.experiment {
            let exp = &self.rules.experiments[ei];
            let v = policy::assign(self.rules, state, user_id, ei);
            experiment = Some(exp.id.clone());
            match exp.variants.get(usize::from(v)) {
                Some(var) => {
                    if let Some(m) = var.message {
                        message = m;
                    }
                    exp_variant = Some((var.name.clone(), var.content.clone()));
                }
                None => exp_variant = Some((exp.holdout_name.clone(), None)),
            }
        }
        let msg = &self.rules.messages[message];
        let variant_of = |content: &Arc<str>| match &exp_variant {
            Some((name, _)) => name.clone(),
            None => content.clone(),
        };
        let mut send = Send {
            id: decision::decision_id(user_id, &t.id, c.occurrence),
            at,
            user_id: user_id.to_string(),
            trigger: t.id.clone(),
            priority: t.priority,
            channel: t.channel,
            message: msg.id.clone(),
            variant: msg.default_name.clone(),
            content: msg.default_name.clone(),
            experiment,
            reason: None,
            context: SendContext::default(),
        };
        send.content = match &exp_variant {
            Some((_, Some(content))) => content.clone(),
            // Template globals are built only when a content variant's `requires` reads them;
            // sends that go out get their context in `with_context`.
            _ if msg.variants.iter().any(|v| !v.requires.is_empty()) => {
                send.context =
                    policy::template_context(self.rules, state, t, &c.props, c.origin, at);
                let globals = send.context.globals(&send);
                send.context = SendContext::default();
                policy::choose_content(self.rules, state, msg, &c.props, &globals, at)
            }
            _ => policy::choose_content(self.rules, state, msg, &c.props, &Map::new(), at),
        };
        send.variant = variant_of(&send.content);
        send
    }

    /// Adds the template context to a send that goes out.
    fn with_context(&self, state: &UserState, c: &Candidate, mut send: Send) -> Send {
        let t = &self.rules.triggers[c.trigger];
        send.context = policy::template_context(self.rules, state, t, &c.props, c.origin, send.at);
        send
    }

    /// Applies the guards in order: quiet hours first (a held send meets every other guard
    /// at the instant it really goes out), then holdout, cooldown, unsubscribe, caps, gap.
    fn decide(
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
            match policy::quiet_hours(self.rules, state, t.channel, at) {
                Some(policy::Quiet::Defer(until))
                    if held_sends(state, t) < MAX_HELD_PER_TRIGGER =>
                {
                    let id = decision::decision_id(user_id, &t.id, c.occurrence);
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
                    let send = self.make_send(state, user_id, &c, at);
                    let reason = decision::Reason::QuietHours;
                    return self.suppress(state, send, ti, &c, reason, true, out);
                }
                None => {}
            }
        }
        let send = self.make_send(state, user_id, &c, at);
        if &*send.variant == policy::HOLDOUT && send.experiment.is_some() {
            return self.suppress(state, send, ti, &c, decision::Reason::Holdout, true, out);
        }
        if let (Some(cd), Some(last)) = (t.cooldown, state.triggers[ti].last) {
            if at < last.saturating_add(cd.0) {
                return self.suppress(state, send, ti, &c, decision::Reason::Cooldown, false, out);
            }
        }
        if t.channel == Channel::Email && state.unsubscribed {
            return self.suppress(
                state,
                send,
                ti,
                &c,
                decision::Reason::Unsubscribed,
                true,
                out,
            );
        }
        if !exempt {
            if policy::capped(self.rules, state, t.channel, at) {
                return self.suppress(
                    state,
                    send,
                    ti,
                    &c,
                    decision::Reason::FrequencyCap,
                    true,
                    out,
                );
            }
            if policy::too_close(self.rules, state, t.channel, t.priority, at) {
                return self.suppress(state, send, ti, &c, decision::Reason::Priority, true, out);
            }
        }
        consume(t, &mut state.triggers[ti], state.sessions, &c.props, at);
        policy::record_send(self.rules, state, t.channel, t.priority, at);
        let send = self.with_context(state, &c, send);
        out.decisions.push(Decision::Send(Box::new(send)));
    }

    #[allow(clippy::too_many_arguments)]
    fn suppress(
        &self,
        state: &mut UserState,
        mut send: Send,
        ti: usize,
        c: &Candidate,
        reason: decision::Reason,
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

/// A wait's timer id. Pending waits have one per (user, trigger, `same` key), so a re-arm
/// moves the same timer (one write for a scheduler, not a delete and a put); sends held by
/// quiet hours have their decision's id.
pub fn timer_id(user_id: &str, t: &CTrigger, w: &Wait) -> decision::DecisionId {
    // Occurrences are 64-bit hashes; this tag keeps pending-wait ids apart from them.
    const PENDING: u64 = 0x7E5D_0000_0000_0000;
    if w.deferred {
        decision::decision_id(user_id, &t.id, w.occurrence)
    } else {
        decision::decision_id(user_id, &t.id, PENDING | u64::from(w.key))
    }
}

/// Most sends one trigger may have held by quiet hours at once; beyond it the send is
/// suppressed with reason `quiet_hours` (keeps state bounded when a trigger fires all night).
pub const MAX_HELD_PER_TRIGGER: usize = 2;

fn held_sends(state: &UserState, t: &CTrigger) -> usize {
    state
        .waits
        .iter()
        .filter(|w| w.deferred && w.trigger == t.stable_id)
        .count()
}

/// The part of a messageId hash kept in the seen ring.
fn seen_key(h: u64) -> u32 {
    (h >> 32) as u32
}

/// Stores a trait; returns whether its value changed.
fn set_trait(state: &mut UserState, name: &str, v: Scalar) -> bool {
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

/// The pending-wait key: the `same` properties' values (one wait per distinct value).
fn wait_key(t: &CTrigger, props: &Map<String, Value>) -> u32 {
    let mut key: u32 = 0;
    for c in &t.cancel_on {
        for p in &c.same {
            let k = lookup(props, p).map(value_key).unwrap_or(0);
            key = key.rotate_left(5) ^ k;
        }
    }
    key
}

fn once_key(t: &CTrigger, props: &[(String, Scalar)]) -> Option<u32> {
    let COnce::PerProperty(_) = &t.once else {
        return None;
    };
    let name = t.once_name.as_deref().unwrap_or_default();
    let key = props
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| eval::scalar_key(v))
        .unwrap_or_else(|| eval::scalar_key(&Scalar::Null));
    Some(key)
}

/// Whether once/once-per-session/once-per-value forbids firing now (`once_key`: the
/// `once: {per}` property's key for this occurrence).
fn spent(t: &CTrigger, memo: &TriggerMemo, session: u32, once_key: Option<u32>) -> bool {
    match &t.once {
        COnce::Never => false,
        COnce::User => memo.last.is_some(),
        COnce::Session => memo.session == Some(session),
        COnce::PerProperty(_) => once_key.is_some_and(|k| memo.keys.contains(&k)),
    }
}

/// Marks the trigger's once/cooldown as spent by a decision at `at`.
fn consume(
    t: &CTrigger,
    memo: &mut TriggerMemo,
    session: u32,
    props: &[(String, Scalar)],
    at: Millis,
) {
    if matches!(t.once, COnce::User) || t.cooldown.is_some() {
        memo.last = Some(at);
    }
    if matches!(t.once, COnce::Session) {
        memo.session = Some(session);
    }
    if let Some(k) = once_key(t, props) {
        if !memo.keys.contains(&k) {
            memo.keys.push(k);
            if memo.keys.len() > MAX_ONCE_KEYS {
                memo.keys.remove(0);
            }
        }
    }
}

#[cfg(test)]
mod tests;
