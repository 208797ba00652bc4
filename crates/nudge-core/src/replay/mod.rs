//! `nudge replay`: many users' events through the engine on a virtual clock. Memory is what
//! the users need (their states, one pending wake-up each) and the messageIds of one window
//! (`seen.rs`), whatever the length of the history.

mod seen;

use seen::Seen;
pub use seen::DEDUP_WINDOW_MS;

use crate::engine::{Decision, Engine, Send};
use crate::event::Message;
use crate::insights::{Deltas, Period, Report, Tally};
use crate::render::render;
use crate::rules::CompiledRules;
use crate::state::UserState;
use crate::time::{format_instant, Millis};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap as HashMap;

/// One line of replay output (field order is part of the contract).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayLine {
    pub at: String,
    pub user_id: String,
    pub trigger: String,
    pub outcome: &'static str,
    pub channel: &'static str,
    pub message: String,
    pub variant: String,
    pub experiment: Option<String>,
    pub reason: Option<&'static str>,
    pub subject: Option<String>,
    pub body: Option<String>,
}

impl ReplayLine {
    /// The output line for a send; content is rendered for sends that went out.
    pub fn from_send(rules: &CompiledRules, s: &Send) -> ReplayLine {
        let (subject, body) = if s.reason.is_none() {
            match render(rules, s) {
                Ok(r) => (r.subject, Some(r.body)),
                Err(e) => (None, Some(format!("[render error: {e}]"))),
            }
        } else {
            (None, None)
        };
        ReplayLine {
            at: format_instant(s.at),
            user_id: s.user_id.clone(),
            trigger: s.trigger.to_string(),
            outcome: if s.reason.is_none() {
                "sent"
            } else {
                "suppressed"
            },
            channel: s.channel.as_str(),
            message: s.message.to_string(),
            variant: s.variant.to_string(),
            experiment: s.experiment.as_deref().map(str::to_string),
            reason: s.reason.map(|r| r.as_str()),
            subject,
            body,
        }
    }
}

/// Counters a replay reports at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayStats {
    pub events: usize,
    pub duplicates: usize,
    pub users: usize,
    pub sent: usize,
    pub suppressed: usize,
}

/// Users' states and the virtual clock's timer queue.
pub struct Replay<'r> {
    engine: Engine<'r>,
    users: HashMap<String, UserState>,
    seen: Seen,
    /// Wake-ups by due time. A wake-up that moved leaves its entry behind, skipped when it
    /// comes up, so the queue holds the moves of one wait's length, not more.
    timers: BinaryHeap<Reverse<(Millis, u64, String)>>,
    /// Each user's wake-up queued last: asked again for the same instant, it is not queued
    /// twice.
    wakes: HashMap<String, Millis>,
    seq: u64,
    clock: Millis,
    pub stats: ReplayStats,
    /// Every decision (with the instant it was taken) of the users `record_decisions_of` named.
    recorded: HashMap<String, Vec<(Millis, Decision)>>,
    /// Events of the current instant, applied together once the clock moves on so that each
    /// user's sends at one instant are decided in priority order.
    pending: Vec<Message>,
    pending_at: Option<Millis>,
    /// Counters over a period, when measuring (`nudge report`).
    tally: Option<Tally>,
}

impl<'r> Replay<'r> {
    pub fn new(rules: &'r CompiledRules) -> Self {
        Replay {
            engine: Engine::new(rules),
            users: HashMap::default(),
            seen: Seen::default(),
            timers: BinaryHeap::new(),
            wakes: HashMap::default(),
            seq: 0,
            clock: Millis::MIN,
            stats: ReplayStats::default(),
            recorded: HashMap::default(),
            pending: Vec::new(),
            pending_at: None,
            tally: None,
        }
    }

    /// Counts what the replay decides over `period`, as a deployment's counters would. A
    /// replay sends nothing, so each send counts as delivered, as the outbox and the inbox
    /// would deliver it.
    pub fn measure(&mut self, period: Period) {
        self.tally = Some(Tally::new(period));
    }

    /// The report of what was measured, if measuring.
    pub fn report(&self) -> Option<Report> {
        let t = self.tally.as_ref()?;
        Some(Report::build(self.engine.rules, t.period(), &t.sums()))
    }

    /// The report of what was measured, named for `period` (a measure over an open period,
    /// once its ends are known).
    pub fn report_over(&self, period: Period) -> Option<Report> {
        let t = self.tally.as_ref()?;
        Some(Report::build(self.engine.rules, period, &t.sums()))
    }

    fn count(&mut self, user: &str, at: Millis, out: &crate::engine::Outcome) {
        if let Some(t) = &mut self.tally {
            let mut d = Deltas::default();
            d.record(user, out, at);
            d.assume_delivered(out);
            t.apply(d);
        }
    }

    /// The state of a user, if they have sent anything.
    pub fn state(&self, user_id: &str) -> Option<&UserState> {
        self.users.get(user_id)
    }

    pub fn users(&self) -> impl Iterator<Item = (&String, &UserState)> {
        self.users.iter()
    }

    /// Takes one message at `at` (events must come in time order). Events sharing an instant
    /// are applied together when the clock moves past it (or at `advance_to`/`finish`); timers
    /// due strictly before `at` fire first. Returns the sends decided so far, in time order.
    pub fn event(&mut self, msg: &Message, at: Millis) -> Vec<Send> {
        self.take_event(msg.clone(), at)
    }

    /// [`Replay::event`] for a message the caller gives away (no copy is made).
    pub fn take_event(&mut self, msg: Message, at: Millis) -> Vec<Send> {
        let mut sends = Vec::new();
        if self.pending_at.is_some_and(|p| p != at) {
            sends.extend(self.flush());
        }
        sends.extend(self.run_timers(|due| due < at));
        self.clock = self.clock.max(at);
        self.stats.events += 1;
        // Like a store's idempotency record: a messageId applied within the window counts once.
        if !self.seen.insert(&msg.message_id, at) {
            self.stats.duplicates += 1;
            return sends;
        }
        self.pending_at = Some(at);
        self.pending.push(msg);
        sends
    }

    /// Applies the events of the pending instant, grouped per user in order of appearance.
    fn flush(&mut self) -> Vec<Send> {
        let mut sends = Vec::new();
        let Some(at) = self.pending_at.take() else {
            return sends;
        };
        let pending = std::mem::take(&mut self.pending);
        let mut order: Vec<&str> = Vec::new();
        for m in &pending {
            if !order.contains(&m.user_key()) {
                order.push(m.user_key());
            }
        }
        for user in order {
            let msgs: Vec<&Message> = pending.iter().filter(|m| m.user_key() == user).collect();
            let rules = self.engine.rules;
            let state = self
                .users
                .entry(user.to_string())
                .or_insert_with(|| UserState::new(rules));
            let out = self.engine.handle_all(state, user, &msgs, at);
            if out.duplicate {
                self.stats.duplicates += msgs.len();
            }
            self.count(user, at, &out);
            self.absorb(user, at, out.decisions, out.next_wake, &mut sends);
        }
        sends
    }

    /// Runs the clock on to `until`, firing every timer due by then.
    pub fn finish(&mut self, until: Millis) -> Vec<Send> {
        let mut sends = self.flush();
        sends.extend(self.run_timers(|due| due <= until));
        let sends = sends;
        self.clock = self.clock.max(until);
        self.stats.users = self.users.len();
        sends
    }

    fn run_timers(&mut self, due_ok: impl Fn(Millis) -> bool) -> Vec<Send> {
        let mut sends = Vec::new();
        while let Some(Reverse((due, _, _))) = self.timers.peek() {
            if !due_ok(*due) {
                break;
            }
            let Some(Reverse((due, _, user))) = self.timers.pop() else {
                break;
            };
            // A wake-up that moved since it was queued: the engine asked for another instant,
            // and waking the user now would decide nothing.
            if self.wakes.get(&user) != Some(&due) {
                continue;
            }
            self.wakes.remove(&user);
            let Some(state) = self.users.get_mut(&user) else {
                continue;
            };
            let out = self.engine.advance(state, &user, due);
            self.count(&user, due, &out);
            self.absorb(&user, due, out.decisions, out.next_wake, &mut sends);
        }
        sends
    }

    fn absorb(
        &mut self,
        user: &str,
        at: Millis,
        decisions: Vec<Decision>,
        next_wake: Option<Millis>,
        sends: &mut Vec<Send>,
    ) {
        if let Some(kept) = self.recorded.get_mut(user) {
            kept.extend(decisions.iter().map(|d| (at, d.clone())));
        }
        for d in decisions {
            if let Decision::Send(s) = d {
                if s.reason.is_none() {
                    self.stats.sent += 1;
                } else {
                    self.stats.suppressed += 1;
                }
                sends.push(*s);
            }
        }
        if let Some(t) = next_wake {
            // The same instant again (every event of a user with a pending wait asks): the
            // entry queued first wakes the user then, a second would decide nothing.
            if self.wakes.get(user) != Some(&t) {
                self.wakes.insert(user.to_string(), t);
                self.seq += 1;
                self.timers.push(Reverse((t, self.seq, user.to_string())));
            }
        }
    }
}

/// Replays time-ordered `(message, instant)` pairs to `until` and returns every send.
pub fn replay_all(
    rules: &CompiledRules,
    events: &[(Message, Millis)],
    until: Millis,
) -> (Vec<Send>, ReplayStats) {
    let mut r = Replay::new(rules);
    let mut sends = Vec::new();
    for (m, at) in events {
        sends.extend(r.event(m, *at));
    }
    sends.extend(r.finish(until));
    (sends, r.stats.clone())
}

impl Replay<'_> {
    /// Runs every timer due at or before `at` without ending the replay (journey checkpoints).
    pub fn advance_to(&mut self, at: Millis) -> Vec<Send> {
        let mut sends = self.flush();
        sends.extend(self.run_timers(|due| due <= at));
        self.clock = self.clock.max(at);
        sends
    }

    /// Keeps every decision taken for this user from now on (sends, waits, cancellations), for
    /// [`Replay::decisions_of`]; off by default so that large replays keep no history.
    pub fn record_decisions_of(&mut self, user_id: &str) {
        self.recorded.entry(user_id.to_string()).or_default();
    }

    /// The decisions recorded for a user, in order, each with the instant it was taken (an
    /// event's timestamp, or the due time of the timer that woke the engine).
    pub fn decisions_of(&self, user_id: &str) -> &[(Millis, Decision)] {
        self.recorded.get(user_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The segments a user is in at `at` (live: evaluated on the state as of the clock).
    pub fn segments_of(&self, user_id: &str, at: Millis) -> Vec<String> {
        let Some(state) = self.users.get(user_id) else {
            return vec![];
        };
        let rules = self.engine.rules;
        let ctx = crate::engine::conditions::Ctx {
            rules,
            state,
            now: at,
            props: crate::engine::conditions::Props::None,
        };
        rules
            .segments
            .iter()
            .filter(|s| ctx.holds(&s.cond))
            .map(|s| s.id.clone())
            .collect()
    }
}
