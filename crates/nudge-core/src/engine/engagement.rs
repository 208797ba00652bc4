//! nudge's own events of what a user does with a message (reads, clicks, dismisses it). They
//! need no tracking-plan entry, and they are not activity: they start no session, re-arm no
//! `idle` wait and start no `on: "*"` trigger (reading the pause nudge must not re-arm it).
//! They reach only the rules that name them (`cancel_on: In-App Message Clicked`, a count of
//! `Email Link Clicked`), and change nothing when none does.

use serde_json::{Map, Value};

use super::decision::Outcome;
use super::{activity, Candidate, Engine};
use crate::event::Message;
use crate::rules::compiled::Reach;
use crate::state::UserState;
use crate::time::Millis;

/// The user opened the inbox and saw an in-app message.
pub const IN_APP_MESSAGE_VIEWED: &str = "In-App Message Viewed";
/// The user followed an in-app message's link.
pub const IN_APP_MESSAGE_CLICKED: &str = "In-App Message Clicked";
/// The user dismissed an in-app message.
pub const IN_APP_MESSAGE_DISMISSED: &str = "In-App Message Dismissed";
/// The user followed a link of an email.
pub const EMAIL_LINK_CLICKED: &str = "Email Link Clicked";

/// Every engagement event's name.
pub const ENGAGEMENT_EVENTS: [&str; 4] = [
    IN_APP_MESSAGE_VIEWED,
    IN_APP_MESSAGE_CLICKED,
    IN_APP_MESSAGE_DISMISSED,
    EMAIL_LINK_CLICKED,
];

/// Whether an activity name is one of nudge's engagement events.
pub fn is_engagement(name: &str) -> bool {
    ENGAGEMENT_EVENTS.contains(&name)
}

/// The properties nudge records with an engagement event: the decision (message) it is about,
/// the trigger and channel, and the URL followed, if any.
pub fn properties(
    decision: &str,
    trigger: Option<&str>,
    channel: &str,
    url: Option<&str>,
) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("decision_id".into(), decision.into());
    if let Some(t) = trigger {
        p.insert("trigger".into(), t.into());
    }
    p.insert("channel".into(), channel.into());
    if let Some(u) = url {
        p.insert("url".into(), u.into());
    }
    p
}

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
        activity::update_slots(
            self.rules,
            state,
            event_id,
            &msg.properties,
            at,
            Reach::Named,
        );
        self.segment_transitions(state, user_id, at, Some(dirty), candidates, out);
        self.cancel_by_event(state, user_id, event_id, &msg.properties, Reach::Named, out);
        self.start_triggers(
            state,
            user_id,
            event_id,
            msg,
            id_hash,
            at,
            Reach::Named,
            candidates,
            out,
        );
    }
}
