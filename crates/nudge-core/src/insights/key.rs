//! What a counter counts: a scope (totals, a trigger, an experiment, a funnel), the names
//! that place it (trigger and variant and channel, funnel and breakdown and step, ...) and
//! the field. Stores keep keys as five text columns (`Key::parts`), so the schema does not
//! change when a field is added.

use std::fmt;
use std::sync::Arc;

/// The hour bucket of an instant (hours since the epoch, UTC).
pub fn hour_of(at: crate::time::Millis) -> i64 {
    at.div_euclid(HOUR_MS)
}

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// The empty part of a key, shared: keys are made for every event, and each empty
/// `Arc<str>` made anew would be an allocation.
pub fn blank() -> Arc<str> {
    shared("")
}

/// A fixed name (a channel, a suppression reason) as a key part, allocated once per thread.
/// There are a handful: a list searched by address (the names are static) beats hashing.
pub fn shared(name: &'static str) -> Arc<str> {
    thread_local! {
        static NAMES: std::cell::RefCell<Vec<(&'static str, Arc<str>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    NAMES.with_borrow_mut(|names| {
        let known = names
            .iter()
            .find(|(n, _)| std::ptr::eq(*n, name))
            .or_else(|| names.iter().find(|(n, _)| *n == name));
        match known {
            Some((_, arc)) => arc.clone(),
            None => {
                let arc: Arc<str> = name.into();
                names.push((name, arc.clone()));
                arc
            }
        }
    })
}

/// Where a counter belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Totals: events applied.
    Totals,
    /// A trigger x variant x channel.
    Trigger,
    /// An experiment x variant.
    Experiment,
    /// A funnel x breakdown value x step.
    Funnel,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Totals => "totals",
            Scope::Trigger => "trigger",
            Scope::Experiment => "experiment",
            Scope::Funnel => "funnel",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "totals" => Scope::Totals,
            "trigger" => Scope::Trigger,
            "experiment" => Scope::Experiment,
            "funnel" => Scope::Funnel,
            _ => return None,
        })
    }
}

/// A counter's key. Unused parts are empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub scope: Scope,
    /// Trigger, experiment or funnel id.
    pub name: Arc<str>,
    /// Variant (trigger, experiment) or breakdown value (funnel).
    pub variant: Arc<str>,
    /// Channel (trigger) or step index (funnel).
    pub part: Arc<str>,
    pub field: Field,
}

/// What is counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Events applied (totals).
    Events,
    Started,
    Cancelled,
    Sent,
    Suppressed(Arc<str>),
    Delivered,
    Failed,
    Opened,
    Clicked,
    Dismissed,
    /// Sends (triggers) or users (experiments) converted.
    Converted,
    /// Goal value, in thousandths.
    Value,
    /// Sum over users of the square of each user's goal value, in thousandths (experiments:
    /// the spread behind the interval of value per user).
    ValueSquares,
    /// Triggering event to send: one histogram bucket.
    Latency(u16),
    /// Users assigned (experiments).
    Assigned,
    /// Users reaching the step (funnels).
    Users,
    /// Time from the previous step: one histogram bucket (funnels).
    FromPrevious(u16),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Events => f.write_str("events"),
            Field::Started => f.write_str("started"),
            Field::Cancelled => f.write_str("cancelled"),
            Field::Sent => f.write_str("sent"),
            Field::Suppressed(r) => write!(f, "suppressed.{r}"),
            Field::Delivered => f.write_str("delivered"),
            Field::Failed => f.write_str("failed"),
            Field::Opened => f.write_str("opened"),
            Field::Clicked => f.write_str("clicked"),
            Field::Dismissed => f.write_str("dismissed"),
            Field::Converted => f.write_str("converted"),
            Field::Value => f.write_str("value"),
            Field::ValueSquares => f.write_str("value_squares"),
            Field::Latency(b) => write!(f, "latency.{b}"),
            Field::Assigned => f.write_str("assigned"),
            Field::Users => f.write_str("users"),
            Field::FromPrevious(b) => write!(f, "from_previous.{b}"),
        }
    }
}

impl Field {
    pub fn parse(s: &str) -> Option<Field> {
        if let Some((head, tail)) = s.split_once('.') {
            return match head {
                "suppressed" => Some(Field::Suppressed(tail.into())),
                "latency" => tail.parse().ok().map(Field::Latency),
                "from_previous" => tail.parse().ok().map(Field::FromPrevious),
                _ => None,
            };
        }
        Some(match s {
            "events" => Field::Events,
            "started" => Field::Started,
            "cancelled" => Field::Cancelled,
            "sent" => Field::Sent,
            "delivered" => Field::Delivered,
            "failed" => Field::Failed,
            "opened" => Field::Opened,
            "clicked" => Field::Clicked,
            "dismissed" => Field::Dismissed,
            "converted" => Field::Converted,
            "value" => Field::Value,
            "value_squares" => Field::ValueSquares,
            "assigned" => Field::Assigned,
            "users" => Field::Users,
            _ => return None,
        })
    }
}

impl Key {
    pub fn new(
        scope: Scope,
        name: impl Into<Arc<str>>,
        variant: impl Into<Arc<str>>,
        part: impl Into<Arc<str>>,
        field: Field,
    ) -> Key {
        Key {
            scope,
            name: name.into(),
            variant: variant.into(),
            part: part.into(),
            field,
        }
    }

    /// The key as stores keep it: scope, name, variant, part, field.
    pub fn parts(&self) -> [String; 5] {
        [
            self.scope.as_str().to_string(),
            self.name.to_string(),
            self.variant.to_string(),
            self.part.to_string(),
            self.field.to_string(),
        ]
    }

    /// A key read back from a store; `None` for one this build does not know.
    pub fn from_parts(
        scope: &str,
        name: &str,
        variant: &str,
        part: &str,
        field: &str,
    ) -> Option<Key> {
        Some(Key {
            scope: Scope::parse(scope)?,
            name: name.into(),
            variant: variant.into(),
            part: part.into(),
            field: Field::parse(field)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_their_stored_form() {
        let keys = [
            Key::new(Scope::Totals, "", "", "", Field::Events),
            Key::new(
                Scope::Trigger,
                "t-1",
                "a",
                "email",
                Field::Suppressed("quiet_hours".into()),
            ),
            Key::new(Scope::Trigger, "t", "", "in_app", Field::Latency(17)),
            Key::new(
                Scope::Funnel,
                "f",
                "team plan. x",
                "3",
                Field::FromPrevious(0),
            ),
            Key::new(Scope::Experiment, "e", "holdout", "", Field::Assigned),
        ];
        for k in keys {
            let [s, n, v, p, f] = k.parts();
            assert_eq!(Key::from_parts(&s, &n, &v, &p, &f), Some(k));
        }
        assert_eq!(Key::from_parts("nope", "", "", "", "events"), None);
        assert_eq!(Key::from_parts("totals", "", "", "", "latency.x"), None);
    }

    #[test]
    fn hours_are_utc_hours_since_the_epoch() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), 1);
        assert_eq!(hour_of(-1), -1);
    }
}
