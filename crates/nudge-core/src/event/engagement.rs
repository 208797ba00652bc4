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

/// The mail server (SES, SMTP, the outbox) accepted an email.
pub const EMAIL_DELIVERED: &str = "Email Delivered";
/// The email's open pixel was loaded (off by default: opens are unreliable).
pub const EMAIL_OPENED: &str = "Email Opened";
/// An email could not be handed over, after every retry.
pub const EMAIL_FAILED: &str = "Email Failed";
/// An in-app message was written to the user's inbox.
pub const IN_APP_MESSAGE_DELIVERED: &str = "In-App Message Delivered";
/// An in-app message could not be made (its content did not render).
pub const IN_APP_MESSAGE_FAILED: &str = "In-App Message Failed";
/// A webhook answered 2xx.
pub const WEBHOOK_DELIVERED: &str = "Webhook Delivered";
/// A webhook failed, after every retry.
pub const WEBHOOK_FAILED: &str = "Webhook Failed";

/// Every engagement event's name.
pub const ENGAGEMENT_EVENTS: [&str; 11] = [
    IN_APP_MESSAGE_VIEWED,
    IN_APP_MESSAGE_CLICKED,
    IN_APP_MESSAGE_DISMISSED,
    EMAIL_LINK_CLICKED,
    EMAIL_DELIVERED,
    EMAIL_OPENED,
    EMAIL_FAILED,
    IN_APP_MESSAGE_DELIVERED,
    IN_APP_MESSAGE_FAILED,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
];

/// Whether an activity name is one of nudge's engagement events.
pub fn is_engagement(name: &str) -> bool {
    ENGAGEMENT_EVENTS.contains(&name)
}

/// What an engagement event says happened to a message, as reports count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engagement {
    Delivered,
    Failed,
    /// An email's pixel loaded, or an in-app message read.
    Opened,
    Clicked,
    Dismissed,
}

impl Engagement {
    /// The kind as reports and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Engagement::Delivered => "delivered",
            Engagement::Failed => "failed",
            Engagement::Opened => "opened",
            Engagement::Clicked => "clicked",
            Engagement::Dismissed => "dismissed",
        }
    }

    /// The kind of an engagement event, by its name.
    pub fn of(name: &str) -> Option<Engagement> {
        Some(match name {
            EMAIL_DELIVERED | IN_APP_MESSAGE_DELIVERED | WEBHOOK_DELIVERED => Engagement::Delivered,
            EMAIL_FAILED | IN_APP_MESSAGE_FAILED | WEBHOOK_FAILED => Engagement::Failed,
            EMAIL_OPENED | IN_APP_MESSAGE_VIEWED => Engagement::Opened,
            EMAIL_LINK_CLICKED | IN_APP_MESSAGE_CLICKED => Engagement::Clicked,
            IN_APP_MESSAGE_DISMISSED => Engagement::Dismissed,
            _ => return None,
        })
    }
}

/// The message an engagement event is about, as recorded in its properties (`decision_id`,
/// `trigger`, `variant`, `channel`, `url`): reports count the event for that trigger and
/// variant.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    pub decision: &'a str,
    pub trigger: &'a str,
    pub variant: &'a str,
    pub channel: &'a str,
    /// The link followed, for clicks.
    pub url: Option<&'a str>,
}

impl About<'_> {
    /// The event's properties.
    pub fn properties(&self) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("decision_id".into(), self.decision.into());
        p.insert("trigger".into(), self.trigger.into());
        p.insert("variant".into(), self.variant.into());
        p.insert("channel".into(), self.channel.into());
        if let Some(u) = self.url {
            p.insert("url".into(), u.into());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engagement_event_counts_as_one_kind() {
        for name in ENGAGEMENT_EVENTS {
            assert!(is_engagement(name));
            assert!(Engagement::of(name).is_some(), "{name}");
        }
        let failed: Vec<&str> = ENGAGEMENT_EVENTS
            .into_iter()
            .filter(|n| Engagement::of(n) == Some(Engagement::Failed))
            .collect();
        assert_eq!(
            failed,
            [EMAIL_FAILED, IN_APP_MESSAGE_FAILED, WEBHOOK_FAILED]
        );
        assert_eq!(Engagement::of("Signed Up"), None);
    }
}
