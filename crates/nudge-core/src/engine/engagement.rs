//! nudge's own events of what a user does with a message (reads, clicks, dismisses it). They
//! need no tracking-plan entry, and they are not activity: they start no session, re-arm no
//! `idle` wait and start no `on: "*"` trigger (reading the pause nudge must not re-arm it).
//! They reach only the rules that name them (`cancel_on: In-App Message Clicked`, a count of
//! `Email Link Clicked`), and change nothing when none does.

pub use crate::event::engagement::*;

use super::decision::Outcome;
use super::{Candidate, Engine};
use crate::event::Message;
use crate::rules::compiled::Reach;
use crate::state::UserState;
use crate::time::Millis;

impl Engine<'_> {
    /// An engagement event's effect: only on the slots, segments, cancellations and triggers
    /// of rules that name it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn engagement(
        &self,
        state: &mut UserState,
        user_id: &str,
        name: &str,
        msg: &Message,
        id_hash: u64,
        at: Millis,
        candidates: &mut Vec<Candidate>,
        out: &mut Outcome,
    ) {
        let event_id = self.rules.event_id(name);
        let Some(entry) = event_id.and_then(|i| self.rules.event_entries.get(i as usize)) else {
            return;
        };
        let dirty = entry.segment_mask;
        self.react(
            state,
            user_id,
            msg,
            (event_id, id_hash),
            at,
            Reach::Named,
            dirty,
            candidates,
            out,
        );
    }
}
