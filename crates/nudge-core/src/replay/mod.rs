//! `nudge replay`: many users' events through the engine on a virtual clock. Memory is what
//! the users need (their states, one pending wake-up each) and the messageIds of one window
//! (`seen.rs`), whatever the length of the history.

mod counting;
mod seen;
mod wake_ups;

use counting::Counting;
use wake_ups::WakeUps;

pub use seen::{Seen, DEDUP_WINDOW_MS};

use crate::engine::{Decision, Engine, Outcome, Send};
use crate::event::Message;
use crate::insights::{Period, Report, Tally};
use crate::render::render;
use crate::rules::CompiledRules;
use crate::state::UserState;
use crate::time::{format_instant, Millis};
use serde::Serialize;

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

/// One user a replay has met.
struct Known {
    id: String,
    /// Boxed: the list of users grows by doubling, and moving whole states showed.
    state: Box<UserState>,
    /// The wake-up asked for last; cleared when it fires.
    wake: Option<Millis>,
}

/// Users' states and the virtual clock's timer queue.
pub struct Replay<'r> {
    engine: Engine<'r>,
    /// Users in the order first met; the queue and the pending events name them by index,
    /// so the hot path hashes a user's id once per input, not at every step.
    known: Vec<Known>,
    index: HashMap<String, u32>,
    seen: Seen,
    /// Wake-ups by due time, then the order they were asked in. A wake-up that moved leaves
    /// its entry behind, skipped when it comes up, so the queue holds the moves of one
    /// wait's length, not more.
    timers: WakeUps,
    clock: Millis,
    pub stats: ReplayStats,
    /// Every decision (with the instant it was taken) of the users `record_decisions_of` named.
    recorded: HashMap<String, Vec<(Millis, Decision)>>,
    /// Events of the current instant (with their user), applied together once the clock
    /// moves on so that each user's sends at one instant are decided in priority order.
    pending: Vec<(u32, Message)>,
    pending_at: Option<Millis>,
    /// Counters over a period, when measuring (`nudge report`).
    tally: Option<Counting>,
    /// Messages done with, when the caller frees them (`keep_spent`).
    spent: Option<Vec<Message>>,
}

impl<'r> Replay<'r> {
    pub fn new(rules: &'r CompiledRules) -> Self {
        Replay {
            engine: Engine::new(rules),
            known: Vec::new(),
            index: HashMap::default(),
            seen: Seen::default(),
            timers: WakeUps::default(),
            clock: Millis::MIN,
            stats: ReplayStats::default(),
            recorded: HashMap::default(),
            pending: Vec::new(),
            pending_at: None,
            tally: None,
            spent: None,
        }
    }

    /// Counts what the replay decides over `period`, as a deployment's counters would. A
    /// replay sends nothing, so each send counts as delivered, as the outbox and the inbox
    /// would deliver it.
    pub fn measure(&mut self, period: Period) {
        self.tally = Some(Counting::here(Tally::new(period)));
    }

    /// [`Replay::measure`], counting on a thread of its own (a long replay's counters).
    pub fn measure_aside(&mut self, period: Period) {
        self.tally = Some(Counting::aside(Tally::new(period)));
    }

    /// The report of what was measured, if measuring.
    pub fn report(&mut self) -> Option<Report> {
        let t = self.tally.as_mut()?.tally()?;
        Some(Report::build(self.engine.rules, t.period(), &t.sums()))
    }

    /// The report of what was measured, named for `period` (a measure over an open period,
    /// once its ends are known).
    pub fn report_over(&mut self, period: Period) -> Option<Report> {
        let t = self.tally.as_mut()?.tally()?;
        Some(Report::build(self.engine.rules, period, &t.sums()))
    }

    /// The state of a user, if they have sent anything.
    pub fn state(&self, user_id: &str) -> Option<&UserState> {
        let i = *self.index.get(user_id)?;
        Some(&self.known[i as usize].state)
    }

    pub fn users(&self) -> impl Iterator<Item = (&String, &UserState)> {
        self.known.iter().map(|k| (&k.id, &*k.state))
    }

    /// The index of a user, met now if not before.
    fn user_index(&mut self, user_id: &str) -> u32 {
        if let Some(&i) = self.index.get(user_id) {
            return i;
        }
        let i = u32::try_from(self.known.len()).expect("fewer than 2^32 users in one replay");
        self.known.push(Known {
            id: user_id.to_string(),
            state: Box::new(UserState::new(self.engine.rules)),
            wake: None,
        });
        self.index.insert(user_id.to_string(), i);
        i
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
        self.take_event_into(msg, at, &mut sends);
        sends
    }

    /// [`Replay::take_event`], adding the sends decided to `sends` (a buffer the caller
    /// reuses: most events decide nothing, and a new one each time showed in profiles).
    pub fn take_event_into(&mut self, msg: Message, at: Millis, sends: &mut Vec<Send>) {
        // Like a store's idempotency record: a messageId applied within the window counts once.
        let first = self.seen.insert(&msg.message_id, at);
        self.take_checked_event_into(msg, at, first, sends);
    }

    /// [`Replay::take_event_into`] for a caller that recognised repeated messageIds itself,
    /// with a [`Seen`] of its own over the same messages in the same order (a stage of a
    /// pipeline, off the engine's thread): `first` is what its `insert` said.
    pub fn take_checked_event_into(
        &mut self,
        msg: Message,
        at: Millis,
        first: bool,
        sends: &mut Vec<Send>,
    ) {
        if self.pending_at.is_some_and(|p| p != at) {
            self.flush(sends);
        }
        self.run_timers(|due| due < at, sends);
        self.clock = self.clock.max(at);
        self.stats.events += 1;
        if !first {
            self.stats.duplicates += 1;
            self.spend(msg);
            return;
        }
        let user = self.user_index(msg.user_key());
        self.pending_at = Some(at);
        self.pending.push((user, msg));
    }

    /// Applies the events of the pending instant, grouped per user in order of appearance.
    fn flush(&mut self, sends: &mut Vec<Send>) {
        let Some(at) = self.pending_at.take() else {
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        // Nearly always one event an instant: no grouping to do.
        if let [(user, msg)] = pending.as_slice() {
            self.apply(*user, &[msg], at, sends);
        } else {
            let mut order: Vec<u32> = Vec::new();
            for (u, _) in &pending {
                if !order.contains(u) {
                    order.push(*u);
                }
            }
            for user in order {
                let msgs: Vec<&Message> = pending
                    .iter()
                    .filter(|(u, _)| *u == user)
                    .map(|(_, m)| m)
                    .collect();
                self.apply(user, &msgs, at, sends);
            }
        }
        // The buffer's room is kept for the next instant.
        self.pending = pending;
        if let Some(spent) = &mut self.spent {
            spent.extend(self.pending.drain(..).map(|(_, m)| m));
        }
        self.pending.clear();
    }

    /// Keeps the messages applied (or found repeated) for [`Replay::take_spent`] instead of
    /// dropping them, so that a caller can free them on another thread: freeing millions of
    /// messages showed on the engine's thread.
    pub fn keep_spent(&mut self) {
        self.spent.get_or_insert_with(Vec::new);
    }

    /// The messages kept since the last call, once there are at least `batch`; `room` (an
    /// emptied batch given back, if there is one) takes their place, so that no new buffer is
    /// grown.
    pub fn take_spent(
        &mut self,
        batch: usize,
        room: impl FnOnce() -> Option<Vec<Message>>,
    ) -> Option<Vec<Message>> {
        let spent = self.spent.as_mut()?;
        if spent.len() < batch {
            return None;
        }
        let room = room().unwrap_or_else(|| Vec::with_capacity(batch + batch / 4));
        Some(std::mem::replace(spent, room))
    }

    fn spend(&mut self, msg: Message) {
        if let Some(spent) = &mut self.spent {
            spent.push(msg);
        }
    }

    /// One user's events of one instant through the engine.
    fn apply(&mut self, user: u32, msgs: &[&Message], at: Millis, sends: &mut Vec<Send>) {
        let known = &mut self.known[user as usize];
        let out = self
            .engine
            .handle_all(&mut known.state, &known.id, msgs, at);
        if out.duplicate {
            self.stats.duplicates += msgs.len();
        }
        self.absorb(user, at, out, sends);
    }

    /// Runs the clock on to `until`, firing every timer due by then.
    pub fn finish(&mut self, until: Millis) -> Vec<Send> {
        let mut sends = Vec::new();
        self.flush(&mut sends);
        self.run_timers(|due| due <= until, &mut sends);
        self.clock = self.clock.max(until);
        self.stats.users = self.known.len();
        sends
    }

    fn run_timers(&mut self, due_ok: impl Fn(Millis) -> bool, sends: &mut Vec<Send>) {
        while let Some((due, user)) = self.timers.pop_if(&due_ok) {
            let known = &mut self.known[user as usize];
            // A wake-up that moved since it was queued: the engine asked for another instant,
            // and waking the user now would decide nothing.
            if known.wake != Some(due) {
                continue;
            }
            known.wake = None;
            let out = self.engine.advance(&mut known.state, &known.id, due);
            self.absorb(user, due, out, sends);
        }
    }

    /// What an outcome for `user` at `at` leaves: counts, sends, the next wake-up.
    fn absorb(&mut self, user: u32, at: Millis, mut out: Outcome, sends: &mut Vec<Send>) {
        let known = &mut self.known[user as usize];
        if let Some(t) = &mut self.tally {
            t.record(&known.id, &mut out, at);
        }
        if !self.recorded.is_empty() {
            if let Some(kept) = self.recorded.get_mut(&known.id) {
                kept.extend(out.decisions.iter().map(|d| (at, d.clone())));
            }
        }
        for d in out.decisions {
            if let Decision::Send(s) = d {
                if s.reason.is_none() {
                    self.stats.sent += 1;
                } else {
                    self.stats.suppressed += 1;
                }
                sends.push(*s);
            }
        }
        if let Some(t) = out.next_wake {
            // The same instant again (every event of a user with a pending wait asks): the
            // entry queued first wakes the user then, a second would decide nothing.
            if known.wake != Some(t) {
                known.wake = Some(t);
                self.timers.push(t, user);
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
        let mut sends = Vec::new();
        self.flush(&mut sends);
        self.run_timers(|due| due <= at, &mut sends);
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
        let Some(state) = self.state(user_id) else {
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
