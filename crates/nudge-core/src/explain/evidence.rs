//! What an explanation is read from: the user's state, decisions and activities at one instant.

use crate::engine::Decision;
use crate::event::Message;
use crate::rules::compiled::CompiledRules;
use crate::state::UserState;
use crate::time::Millis;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// One activity of the user (track, page, screen) as rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// The rule-facing name (`Signed Up`, `page:Pricing`).
    pub name: String,
    pub properties: Map<String, Value>,
    pub at: Millis,
}

impl Activity {
    /// The activities of `user_id` among time-ordered events up to `at`, each messageId once
    /// across all users (as the replay counts them).
    pub fn of_user(events: &[(Message, Millis)], user_id: &str, at: Millis) -> Vec<Activity> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (m, t) in events.iter().filter(|(_, t)| *t <= at) {
            if !seen.insert(m.message_id.as_str()) || m.user_key() != user_id {
                continue;
            }
            if let Some(name) = m.activity_name() {
                out.push(Activity {
                    name: name.into_owned(),
                    properties: m.properties.clone(),
                    at: *t,
                });
            }
        }
        out
    }
}

/// What an explanation is read from.
#[derive(Clone, Copy)]
pub struct Evidence<'a> {
    pub rules: &'a CompiledRules,
    pub user_id: &'a str,
    /// The user's state with every event and timer up to `at` applied.
    pub state: &'a UserState,
    /// The engine's decisions for the user up to `at`, each with the instant it was taken.
    pub decisions: &'a [(Millis, Decision)],
    /// The user's activities up to `at`, in time order.
    pub activities: &'a [Activity],
    /// The instant conditions and policies are read at.
    pub at: Millis,
}
