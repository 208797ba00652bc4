//! `nudge replay`: many users' events through the engine on a virtual clock.

use crate::engine::{Decision, Engine, Send};
use crate::event::Message;
use crate::render::render;
use crate::rules::CompiledRules;
use crate::state::UserState;
use crate::time::{format_instant, Millis};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

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
            trigger: s.trigger.clone(),
            outcome: if s.reason.is_none() { "sent" } else { "suppressed" },
            channel: s.channel.as_str(),
            message: s.message.clone(),
            variant: s.variant.clone(),
            experiment: s.experiment.clone(),
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
    seen: HashSet<String>,
    timers: BinaryHeap<Reverse<(Millis, u64, String)>>,
    seq: u64,
    clock: Millis,
    pub stats: ReplayStats,
}

impl<'r> Replay<'r> {
    pub fn new(rules: &'r CompiledRules) -> Self {
        Replay {
            engine: Engine::new(rules),
            users: HashMap::new(),
            seen: HashSet::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            clock: Millis::MIN,
            stats: ReplayStats::default(),
        }
    }

    /// The state of a user, if they have sent anything.
    pub fn state(&self, user_id: &str) -> Option<&UserState> {
        self.users.get(user_id)
    }

    pub fn users(&self) -> impl Iterator<Item = (&String, &UserState)> {
        self.users.iter()
    }

    /// Applies one message at `at` (events must come in time order); timers due strictly
    /// before it fire first. Returns the sends decided, in time order.
    pub fn event(&mut self, msg: &Message, at: Millis) -> Vec<Send> {
        let mut sends = self.run_timers(|due| due < at);
        self.clock = self.clock.max(at);
        self.stats.events += 1;
        // The replay keeps every messageId, like a store's idempotency record.
        if !self.seen.insert(msg.message_id.clone()) {
            self.stats.duplicates += 1;
            return sends;
        }
        let user = msg.user_key().to_string();
        let rules = self.engine.rules;
        let state = self.users.entry(user.clone()).or_insert_with(|| UserState::new(rules));
        let out = self.engine.handle(state, &user, msg, at);
        if out.duplicate {
            self.stats.duplicates += 1;
        }
        self.absorb(&user, out.decisions, out.next_wake, &mut sends);
        sends
    }

    /// Runs the clock on to `until`, firing every timer due by then.
    pub fn finish(&mut self, until: Millis) -> Vec<Send> {
        let sends = self.run_timers(|due| due <= until);
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
            let Some(Reverse((due, _, user))) = self.timers.pop() else { break };
            let Some(state) = self.users.get_mut(&user) else { continue };
            let out = self.engine.advance(state, &user, due);
            self.absorb(&user, out.decisions, out.next_wake, &mut sends);
        }
        sends
    }

    fn absorb(&mut self, user: &str, decisions: Vec<Decision>, next_wake: Option<Millis>, sends: &mut Vec<Send>) {
        for d in decisions {
            if let Decision::Send(s) = d {
                if s.reason.is_none() {
                    self.stats.sent += 1;
                } else {
                    self.stats.suppressed += 1;
                }
                sends.push(s);
            }
        }
        if let Some(t) = next_wake {
            self.seq += 1;
            self.timers.push(Reverse((t, self.seq, user.to_string())));
        }
    }
}

/// Replays time-ordered `(message, instant)` pairs to `until` and returns every send.
pub fn replay_all(rules: &CompiledRules, events: &[(Message, Millis)], until: Millis) -> (Vec<Send>, ReplayStats) {
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
        let sends = self.run_timers(|due| due <= at);
        self.clock = self.clock.max(at);
        sends
    }

    /// The segments a user is in at `at` (live: evaluated on the state as of the clock).
    pub fn segments_of(&self, user_id: &str, at: Millis) -> Vec<String> {
        let Some(state) = self.users.get(user_id) else { return vec![] };
        let rules = self.engine.rules;
        let ctx = crate::engine::eval::Ctx { rules, state, now: at, props: crate::engine::eval::Props::None };
        rules.segments.iter().filter(|s| ctx.holds(&s.cond)).map(|s| s.id.clone()).collect()
    }
}
