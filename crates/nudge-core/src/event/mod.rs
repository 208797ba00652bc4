//! Segment-spec messages (`track`, `identify`, `page`, `screen`, `group`, `alias`): parsing,
//! validation and the canonical JSON form that travels on the bus.
//!
//! Follows <https://segment.com/docs/connections/spec/common/>: the fields nudge uses are
//! validated precisely; the rest of what SDKs send (`integrations`, `_metadata`, `sentAt`,
//! `writeKey`, `receivedAt`, ...) is ignored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::Millis;

pub mod engagement;
mod read;

pub use read::TextError;

/// Longest accepted `userId`, `anonymousId`, `messageId`, `previousId` or `groupId`.
pub const MAX_ID_CHARS: usize = 256;
/// Longest accepted track event name.
pub const MAX_EVENT_NAME_CHARS: usize = 200;

/// The Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageKind {
    /// Every type, in the order the Segment spec lists them.
    pub const ALL: [MessageKind; 6] = [
        MessageKind::Track,
        MessageKind::Identify,
        MessageKind::Page,
        MessageKind::Screen,
        MessageKind::Group,
        MessageKind::Alias,
    ];

    /// The lowercase name used in `type` and in the HTTP path (`/v1/<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Track => "track",
            MessageKind::Identify => "identify",
            MessageKind::Page => "page",
            MessageKind::Screen => "screen",
            MessageKind::Group => "group",
            MessageKind::Alias => "alias",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `type` that is not one of the six Segment message types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown message type \"{0}\" (expected one of track, identify, page, screen, group, alias)"
)]
pub struct UnknownMessageKind(pub String);

impl FromStr for MessageKind {
    type Err = UnknownMessageKind;

    /// Parses the exact lowercase name, as Segment and RudderStack SDKs send it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownMessageKind(s.to_string()))
    }
}

/// Why a message was rejected: the offending field (JSON-path-like) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MessageError {
    /// JSON-path-like name of the field (`userId`, `context.traits`); `$` for the whole message.
    pub field: String,
    pub message: String,
}

impl MessageError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        MessageError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// One validated Segment message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: MessageKind,
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// Track: the event name (always present on a validated track message).
    pub event: Option<String>,
    /// Page / screen: the page or screen name.
    pub name: Option<String>,
    pub properties: Map<String, Value>,
    /// Identify / group: the top-level traits; other types: `context.traits`.
    pub traits: Map<String, Value>,
    pub context: Map<String, Value>,
    /// When the event happened on the client: `timestamp`, else `originalTimestamp`.
    pub timestamp: Option<Millis>,
    /// Alias: the previous id (always present on a validated alias message).
    pub previous_id: Option<String>,
    /// Group: the group id (always present on a validated group message).
    pub group_id: Option<String>,
}

impl Message {
    /// A track message nudge records of a user by itself (an unsubscribe by link), at `at`.
    pub fn track(
        user_id: &str,
        message_id: &str,
        event: &str,
        properties: Map<String, Value>,
        at: Millis,
    ) -> Message {
        Message {
            kind: MessageKind::Track,
            message_id: message_id.to_string(),
            user_id: Some(user_id.to_string()),
            anonymous_id: None,
            event: Some(event.to_string()),
            name: None,
            properties,
            traits: Map::new(),
            context: Map::new(),
            timestamp: Some(at),
            previous_id: None,
            group_id: None,
        }
    }

    /// The id behavioral state is kept under: `userId` if present, else `anonymousId`.
    pub fn user_key(&self) -> &str {
        self.user_id
            .as_deref()
            .or(self.anonymous_id.as_deref())
            .unwrap_or_default()
    }

    /// The user's IANA time zone as the SDK reported it: `context.timezone`, else `traits.timezone`.
    pub fn timezone(&self) -> Option<&str> {
        self.context
            .get("timezone")
            .and_then(Value::as_str)
            .or_else(|| self.traits.get("timezone").and_then(Value::as_str))
    }

    /// What rules match on: the track event name, `page:<name>` or `screen:<name>`; `None` for
    /// identify, group and alias, which describe the user rather than an activity.
    pub fn activity_name(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match self.kind {
            MessageKind::Track => self.event.as_deref().map(Cow::Borrowed),
            MessageKind::Page => Some(Cow::Owned(format!(
                "page:{}",
                self.name.as_deref().unwrap_or("")
            ))),
            MessageKind::Screen => Some(Cow::Owned(format!(
                "screen:{}",
                self.name.as_deref().unwrap_or("")
            ))),
            MessageKind::Identify | MessageKind::Group | MessageKind::Alias => None,
        }
    }

    /// Whether this is one of nudge's own engagement events (a track named like one).
    pub fn is_engagement(&self) -> bool {
        self.kind == MessageKind::Track
            && self.event.as_deref().is_some_and(engagement::is_engagement)
    }

    /// Canonical Segment JSON (camelCase keys); `from_json` reads it back to an equal message.
    pub fn to_json(&self) -> Value {
        self.clone().into_json()
    }

    /// [`Message::to_json`], moving the maps instead of copying them (ingest's hot path).
    pub fn into_json(self) -> Value {
        let mut map = Map::new();
        map.insert("type".into(), Value::String(self.kind.as_str().into()));
        map.insert("messageId".into(), Value::String(self.message_id));
        insert_opt(&mut map, "userId", &self.user_id);
        insert_opt(&mut map, "anonymousId", &self.anonymous_id);
        match self.kind {
            MessageKind::Track => insert_opt(&mut map, "event", &self.event),
            MessageKind::Page | MessageKind::Screen => insert_opt(&mut map, "name", &self.name),
            MessageKind::Alias => insert_opt(&mut map, "previousId", &self.previous_id),
            MessageKind::Group => insert_opt(&mut map, "groupId", &self.group_id),
            MessageKind::Identify => {}
        }
        let describes_activity = matches!(
            self.kind,
            MessageKind::Track | MessageKind::Page | MessageKind::Screen
        );
        if describes_activity || !self.properties.is_empty() {
            map.insert("properties".into(), Value::Object(self.properties));
        }
        let mut context = self.context;
        match self.kind {
            MessageKind::Identify | MessageKind::Group => {
                map.insert("traits".into(), Value::Object(self.traits));
            }
            _ if !self.traits.is_empty() && !context.contains_key("traits") => {
                context.insert("traits".into(), Value::Object(self.traits));
            }
            _ => {}
        }
        map.insert("context".into(), Value::Object(context));
        if let Some(ts) = self
            .timestamp
            .and_then(|at| jiff::Timestamp::from_millisecond(at).ok())
        {
            map.insert("timestamp".into(), Value::String(ts.to_string()));
        }
        Value::Object(map)
    }

    /// `gen-` + xxh3-128 of the canonical JSON without messageId: an SDK retry of the same
    /// message (whose `sentAt` and other ignored fields may differ) gets the same id.
    fn derived_message_id(&self) -> String {
        let mut json = self.to_json();
        if let Some(map) = json.as_object_mut() {
            map.remove("messageId");
        }
        let canonical = sorted_keys(&json);
        // Serializing a Value with string keys cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        format!("gen-{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
    }
}

/// Serializes as the canonical JSON, key for key what [`Message::to_json`] builds (in its
/// sorted key order), without building it: the journal and the bus write every accepted
/// message this way. Reading it back goes through `from_json`, which needs a
/// `serde_json::Value` (so self-describing formats only).
impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let kind = self.kind;
        let activity = matches!(
            kind,
            MessageKind::Track | MessageKind::Page | MessageKind::Screen
        );
        let traits_on_top = matches!(kind, MessageKind::Identify | MessageKind::Group);
        let traits_in_context =
            !traits_on_top && !self.traits.is_empty() && !self.context.contains_key("traits");
        let mut map = serializer.serialize_map(None)?;
        if let Some(v) = &self.anonymous_id {
            map.serialize_entry("anonymousId", v)?;
        }
        map.serialize_entry(
            "context",
            &ContextWithTraits {
                context: &self.context,
                traits: traits_in_context.then_some(&self.traits),
            },
        )?;
        if let (MessageKind::Track, Some(v)) = (kind, &self.event) {
            map.serialize_entry("event", v)?;
        }
        if let (MessageKind::Group, Some(v)) = (kind, &self.group_id) {
            map.serialize_entry("groupId", v)?;
        }
        map.serialize_entry("messageId", &self.message_id)?;
        if let (MessageKind::Page | MessageKind::Screen, Some(v)) = (kind, &self.name) {
            map.serialize_entry("name", v)?;
        }
        if let (MessageKind::Alias, Some(v)) = (kind, &self.previous_id) {
            map.serialize_entry("previousId", v)?;
        }
        if activity || !self.properties.is_empty() {
            map.serialize_entry("properties", &self.properties)?;
        }
        if let Some(ts) = self
            .timestamp
            .and_then(|at| jiff::Timestamp::from_millisecond(at).ok())
        {
            map.serialize_entry("timestamp", &ts.to_string())?;
        }
        if traits_on_top {
            map.serialize_entry("traits", &self.traits)?;
        }
        map.serialize_entry("type", kind.as_str())?;
        if let Some(v) = &self.user_id {
            map.serialize_entry("userId", v)?;
        }
        map.end()
    }
}

/// A message's context, with its traits under `traits` where `to_json` puts them there.
struct ContextWithTraits<'a> {
    context: &'a Map<String, Value>,
    traits: Option<&'a Map<String, Value>>,
}

impl Serialize for ContextWithTraits<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        let mut traits = self.traits;
        for (k, v) in self.context {
            // The context holds no `traits` key when traits go in: keep the sorted order.
            if let Some(t) = traits.filter(|_| k.as_str() > "traits") {
                map.serialize_entry("traits", t)?;
                traits = None;
            }
            map.serialize_entry(k, v)?;
        }
        if let Some(t) = traits {
            map.serialize_entry("traits", t)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Message::from_json_value(value, None).map_err(serde::de::Error::custom)
    }
}

/// A short description of a JSON value for error messages: `"two" (string)`, `3.5 (number)`.
pub(crate) fn describe_value(value: &Value) -> String {
    const MAX_CHARS: usize = 60;
    let kind = match value {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let text = serde_json::to_string(value).unwrap_or_default();
    let shown = if text.chars().count() > MAX_CHARS {
        let cut: String = text.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    };
    format!("{shown} ({kind})")
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.into(), Value::String(v.clone()));
    }
}

/// The same value with every object's keys in sorted order, so hashing ignores key order.
fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
