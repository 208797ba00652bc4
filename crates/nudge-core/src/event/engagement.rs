//! nudge's own events of what a user does with a message (reads, clicks, dismisses it): track
//! messages nudge records itself. Their names, and the properties recorded with them. How they
//! touch a user's state (not as activity) is the engine's `engagement.rs`.

use serde_json::{Map, Value};

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
