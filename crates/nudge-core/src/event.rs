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

use crate::time::{parse_instant, Millis};

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
    /// Parses one Segment message. `path_kind` is the type implied by the HTTP path (/v1/track), if any; a body `type` that disagrees is an error; without either, `type` is required.
    pub fn from_json(
        value: &Value,
        path_kind: Option<MessageKind>,
    ) -> Result<Message, MessageError> {
        let body = value.as_object().ok_or_else(|| {
            MessageError::new(
                "$",
                format!(
                    "expected a JSON object (a Segment message), got {}",
                    describe_value(value)
                ),
            )
        })?;

        let kind = message_kind(body, path_kind)?;

        let user_id = optional_id(body, "userId")?;
        let anonymous_id = optional_id(body, "anonymousId")?;
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(MessageError::new(
                "userId",
                "either userId or anonymousId is required (a non-empty string)",
            ));
        }

        let properties = optional_object(body, "properties")?;
        let context = optional_object(body, "context")?;
        let top_traits = optional_object(body, "traits")?;
        let context_traits = match context.get("traits") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(MessageError::new(
                    "context.traits",
                    format!("expected an object, got {}", describe_value(other)),
                ))
            }
        };
        let traits = match kind {
            // Some SDKs (RudderStack) send identify traits only under context.traits.
            MessageKind::Identify | MessageKind::Group if body_has(body, "traits") => top_traits,
            _ => context_traits,
        };

        let timestamp = if body_has(body, "timestamp") {
            Some(instant(body, "timestamp")?)
        } else if body_has(body, "originalTimestamp") {
            Some(instant(body, "originalTimestamp")?)
        } else {
            None
        };

        let event = match kind {
            MessageKind::Track => Some(event_name(body)?),
            _ => None,
        };
        let name = match kind {
            MessageKind::Page | MessageKind::Screen => optional_string(body, "name")?,
            _ => None,
        };
        let previous_id = match kind {
            MessageKind::Alias => Some(required_id(body, "previousId", "alias")?),
            _ => None,
        };
        let group_id = match kind {
            MessageKind::Group => Some(required_id(body, "groupId", "group")?),
            _ => None,
        };

        let mut message = Message {
            kind,
            message_id: String::new(),
            user_id,
            anonymous_id,
            event,
            name,
            properties,
            traits,
            context,
            timestamp,
            previous_id,
            group_id,
        };
        message.message_id = match optional_id(body, "messageId")? {
            Some(id) => id,
            None => message.derived_message_id(),
        };
        Ok(message)
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

/// Serializes as the canonical JSON (for JSON and other self-describing formats: reading it
/// back goes through `from_json`, which needs a `serde_json::Value`).
impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Message::from_json(&value, None).map_err(serde::de::Error::custom)
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

/// Present and not null: SDKs send `"userId": null` for anonymous users.
fn body_has(body: &Map<String, Value>, key: &str) -> bool {
    !matches!(body.get(key), None | Some(Value::Null))
}

fn message_kind(
    body: &Map<String, Value>,
    path_kind: Option<MessageKind>,
) -> Result<MessageKind, MessageError> {
    let expected = "expected one of track, identify, page, screen, group, alias";
    let body_kind = match body.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse::<MessageKind>().map_err(|_| {
            MessageError::new(
                "type",
                format!(
                    "{expected}, got {}",
                    describe_value(&Value::String(s.clone()))
                ),
            )
        })?),
        Some(other) => {
            return Err(MessageError::new(
                "type",
                format!("{expected}, got {}", describe_value(other)),
            ))
        }
    };
    match (body_kind, path_kind) {
        (Some(body_kind), Some(path_kind)) if body_kind != path_kind => Err(MessageError::new(
            "type",
            format!("\"{body_kind}\" does not match the endpoint /v1/{path_kind}"),
        )),
        (Some(kind), _) | (None, Some(kind)) => Ok(kind),
        (None, None) => Err(MessageError::new(
            "type",
            format!("required when the endpoint does not imply it ({expected})"),
        )),
    }
}

/// An id: a non-empty string or an integer (Segment accepts numeric ids), at most 256 chars.
/// Null and the empty string count as absent.
fn optional_id(body: &Map<String, Value>, key: &str) -> Result<Option<String>, MessageError> {
    let id = match body.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(MessageError::new(
                key,
                format!(
                    "expected a non-empty string or an integer, got {}",
                    describe_value(other)
                ),
            ))
        }
    };
    let chars = id.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(MessageError::new(
            key,
            format!("longer than {MAX_ID_CHARS} characters ({chars})"),
        ));
    }
    Ok(Some(id))
}

fn required_id(body: &Map<String, Value>, key: &str, kind: &str) -> Result<String, MessageError> {
    optional_id(body, key)?
        .ok_or_else(|| MessageError::new(key, format!("required for {kind} messages")))
}

fn optional_object(
    body: &Map<String, Value>,
    key: &str,
) -> Result<Map<String, Value>, MessageError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => Err(MessageError::new(
            key,
            format!("expected an object, got {}", describe_value(other)),
        )),
    }
}

fn optional_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, MessageError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(MessageError::new(
            key,
            format!("expected a string, got {}", describe_value(other)),
        )),
    }
}

fn event_name(body: &Map<String, Value>) -> Result<String, MessageError> {
    let name = optional_string(body, "event")?
        .ok_or_else(|| MessageError::new("event", "required for track messages"))?;
    if name.trim().is_empty() {
        return Err(MessageError::new("event", "must not be empty"));
    }
    let chars = name.chars().count();
    if chars > MAX_EVENT_NAME_CHARS {
        return Err(MessageError::new(
            "event",
            format!("longer than {MAX_EVENT_NAME_CHARS} characters ({chars})"),
        ));
    }
    Ok(name)
}

fn instant(body: &Map<String, Value>, key: &str) -> Result<Millis, MessageError> {
    let example =
        "an ISO-8601 / RFC 3339 timestamp with an offset, such as \"2026-03-03T09:01:00Z\"";
    match body.get(key) {
        Some(Value::String(text)) => parse_instant(text).map_err(|err| {
            MessageError::new(
                key,
                format!(
                    "expected {example}, got {}: {err}",
                    describe_value(&Value::String(text.clone()))
                ),
            )
        }),
        Some(other) => Err(MessageError::new(
            key,
            format!("expected {example}, got {}", describe_value(other)),
        )),
        None => Err(MessageError::new(key, format!("expected {example}"))),
    }
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
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Message, MessageError> {
        Message::from_json(&value, None)
    }

    fn error_of(value: Value) -> MessageError {
        match parse(value) {
            Ok(m) => panic!("expected an error, got {m:?}"),
            Err(e) => e,
        }
    }

    // --- MessageKind ---

    #[test]
    fn message_kind_names_round_trip_through_display_fromstr_and_serde() {
        for kind in MessageKind::ALL {
            let text = kind.to_string();
            assert_eq!(text.parse::<MessageKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(text));
            assert_eq!(
                serde_json::from_value::<MessageKind>(json!(text)).unwrap(),
                kind
            );
        }
        assert_eq!(MessageKind::Track.to_string(), "track");
    }

    #[test]
    fn message_kind_rejects_unknown_and_capitalised_names() {
        let err = "Track".parse::<MessageKind>().unwrap_err();
        assert_eq!(err, UnknownMessageKind("Track".into()));
        assert!(err.to_string().contains("expected one of track, identify"));
        assert!("".parse::<MessageKind>().is_err());
        assert!("batch".parse::<MessageKind>().is_err());
    }

    // --- parsing: happy paths ---

    #[test]
    fn parses_a_full_track_message() {
        // given a track call as analytics.js sends it, with SDK fields nudge ignores
        let body = json!({
            "type": "track",
            "messageId": "m-1",
            "userId": "u1",
            "anonymousId": "a1",
            "event": "Profile Step Completed",
            "properties": {"step_index": 2},
            "context": {"timezone": "Europe/Paris", "traits": {"plan": "pro"}},
            "timestamp": "2026-03-03T09:01:00.750+01:00",
            "integrations": {"All": true},
            "_metadata": {"bundled": []},
            "sentAt": "2026-03-03T08:01:01Z",
            "writeKey": "wk",
            "receivedAt": "2026-03-03T08:01:02Z",
            "version": 2,
            "channel": "client"
        });
        // when it is parsed
        let m = parse(body).unwrap();
        // then every field nudge uses is read
        assert_eq!(m.kind, MessageKind::Track);
        assert_eq!(m.message_id, "m-1");
        assert_eq!(m.user_id.as_deref(), Some("u1"));
        assert_eq!(m.anonymous_id.as_deref(), Some("a1"));
        assert_eq!(m.event.as_deref(), Some("Profile Step Completed"));
        assert_eq!(m.properties.get("step_index"), Some(&json!(2)));
        assert_eq!(m.traits.get("plan"), Some(&json!("pro")));
        assert_eq!(
            m.timestamp,
            Some(parse_instant("2026-03-03T08:01:00.750Z").unwrap())
        );
        assert_eq!(m.name, None);
        assert_eq!(m.previous_id, None);
        assert_eq!(m.group_id, None);
        assert_eq!(m.user_key(), "u1");
        assert_eq!(m.timezone(), Some("Europe/Paris"));
        assert_eq!(m.activity_name().as_deref(), Some("Profile Step Completed"));
    }

    #[test]
    fn path_kind_supplies_the_type_when_the_body_has_none() {
        // given a body without `type` posted to /v1/track
        let body = json!({"userId": "u1", "event": "Signed Up"});
        // when parsed with the path's kind
        let m = Message::from_json(&body, Some(MessageKind::Track)).unwrap();
        // then it is a track message
        assert_eq!(m.kind, MessageKind::Track);
    }

    #[test]
    fn body_type_agreeing_with_the_path_is_accepted() {
        let body = json!({"type": "identify", "userId": "u1"});
        let m = Message::from_json(&body, Some(MessageKind::Identify)).unwrap();
        assert_eq!(m.kind, MessageKind::Identify);
    }

    #[test]
    fn identify_reads_top_level_traits_and_is_not_an_activity() {
        // given an identify with top-level traits and different context traits
        let body = json!({
            "type": "identify", "userId": "u1",
            "traits": {"name": "Alice", "timezone": "America/New_York"},
            "context": {"traits": {"name": "stale"}}
        });
        // when parsed
        let m = parse(body).unwrap();
        // then the top-level traits win, the time zone comes from them, and rules see no activity
        assert_eq!(m.traits.get("name"), Some(&json!("Alice")));
        assert_eq!(m.timezone(), Some("America/New_York"));
        assert_eq!(m.activity_name(), None);
    }

    #[test]
    fn identify_falls_back_to_context_traits_as_rudderstack_sends_them() {
        let body =
            json!({"type": "identify", "userId": "u1", "context": {"traits": {"email": "a@x.io"}}});
        let m = parse(body).unwrap();
        assert_eq!(m.traits.get("email"), Some(&json!("a@x.io")));
    }

    #[test]
    fn track_takes_traits_from_context_not_from_the_top_level() {
        let body = json!({
            "type": "track", "userId": "u1", "event": "E",
            "traits": {"ignored": true},
            "context": {"traits": {"plan": "free"}}
        });
        let m = parse(body).unwrap();
        assert_eq!(m.traits.get("plan"), Some(&json!("free")));
        assert_eq!(m.traits.get("ignored"), None);
    }

    #[test]
    fn context_timezone_wins_over_traits_timezone_and_non_strings_are_ignored() {
        let m = parse(json!({
            "type": "identify", "userId": "u1",
            "traits": {"timezone": "Asia/Tokyo"}, "context": {"timezone": "Europe/Paris"}
        }))
        .unwrap();
        assert_eq!(m.timezone(), Some("Europe/Paris"));

        let m = parse(json!({
            "type": "identify", "userId": "u1",
            "traits": {"timezone": "Asia/Tokyo"}, "context": {"timezone": 5}
        }))
        .unwrap();
        assert_eq!(m.timezone(), Some("Asia/Tokyo"));

        let m =
            parse(json!({"type": "identify", "userId": "u1", "traits": {"timezone": 1}})).unwrap();
        assert_eq!(m.timezone(), None);
    }

    #[test]
    fn page_and_screen_activities_are_prefixed_names() {
        let page = parse(json!({"type": "page", "anonymousId": "a", "name": "Pricing"})).unwrap();
        assert_eq!(page.activity_name().as_deref(), Some("page:Pricing"));
        let unnamed = parse(json!({"type": "page", "anonymousId": "a"})).unwrap();
        assert_eq!(unnamed.activity_name().as_deref(), Some("page:"));
        let screen = parse(json!({"type": "screen", "anonymousId": "a", "name": "Home"})).unwrap();
        assert_eq!(screen.activity_name().as_deref(), Some("screen:Home"));
        let unnamed_screen = parse(json!({"type": "screen", "anonymousId": "a"})).unwrap();
        assert_eq!(unnamed_screen.activity_name().as_deref(), Some("screen:"));
    }

    #[test]
    fn group_and_alias_read_their_ids_and_are_not_activities() {
        let group = parse(
            json!({"type": "group", "userId": "u1", "groupId": "acme", "traits": {"size": 10}}),
        )
        .unwrap();
        assert_eq!(group.group_id.as_deref(), Some("acme"));
        assert_eq!(group.traits.get("size"), Some(&json!(10)));
        assert_eq!(group.activity_name(), None);

        let alias = parse(json!({"type": "alias", "userId": "u1", "previousId": "a1"})).unwrap();
        assert_eq!(alias.previous_id.as_deref(), Some("a1"));
        assert_eq!(alias.activity_name(), None);
    }

    #[test]
    fn anonymous_id_is_the_user_key_when_there_is_no_user_id() {
        let m =
            parse(json!({"type": "track", "userId": null, "anonymousId": "anon-7", "event": "E"}))
                .unwrap();
        assert_eq!(m.user_id, None);
        assert_eq!(m.user_key(), "anon-7");
    }

    #[test]
    fn empty_user_id_counts_as_absent() {
        let m = parse(json!({"type": "track", "userId": "", "anonymousId": "a", "event": "E"}))
            .unwrap();
        assert_eq!(m.user_id, None);
        assert_eq!(m.user_key(), "a");
    }

    #[test]
    fn integer_ids_are_converted_to_strings() {
        let m = parse(json!({"type": "track", "userId": 42, "event": "E"})).unwrap();
        assert_eq!(m.user_id.as_deref(), Some("42"));
        let m = parse(json!({"type": "track", "userId": -7, "event": "E"})).unwrap();
        assert_eq!(m.user_key(), "-7");
        let m = parse(json!({"type": "track", "userId": u64::MAX, "event": "E"})).unwrap();
        assert_eq!(m.user_key(), "18446744073709551615");
        let m = parse(json!({"type": "group", "userId": 1, "groupId": 99})).unwrap();
        assert_eq!(m.group_id.as_deref(), Some("99"));
    }

    #[test]
    fn user_key_of_a_hand_built_message_without_ids_is_empty_not_a_panic() {
        let mut m = parse(json!({"type": "track", "userId": "u", "event": "E"})).unwrap();
        m.user_id = None;
        assert_eq!(m.user_key(), "");
    }

    #[test]
    fn null_optional_objects_count_as_absent() {
        let m = parse(json!({
            "type": "track", "userId": "u", "event": "E",
            "properties": null, "context": null, "traits": null, "timestamp": null
        }))
        .unwrap();
        assert!(m.properties.is_empty());
        assert!(m.context.is_empty());
        assert!(m.traits.is_empty());
        assert_eq!(m.timestamp, None);
    }

    // --- timestamps ---

    #[test]
    fn accepts_rfc3339_timestamps_with_z_offsets_and_fractions() {
        let cases = [
            ("2026-03-03T09:01:00Z", "2026-03-03T09:01:00Z"),
            ("2026-03-03T09:01:00.123Z", "2026-03-03T09:01:00.123Z"),
            ("2026-03-03T10:01:00+01:00", "2026-03-03T09:01:00Z"),
            ("2026-03-03T04:01:00.5-05:00", "2026-03-03T09:01:00.5Z"),
            ("2026-03-03T09:01:00.123456789Z", "2026-03-03T09:01:00.123Z"),
        ];
        for (given, expected) in cases {
            let m =
                parse(json!({"type": "track", "userId": "u", "event": "E", "timestamp": given}))
                    .unwrap();
            assert_eq!(
                m.timestamp,
                Some(parse_instant(expected).unwrap()),
                "{given}"
            );
        }
    }

    #[test]
    fn original_timestamp_is_used_only_without_timestamp() {
        let both = parse(json!({
            "type": "track", "userId": "u", "event": "E",
            "timestamp": "2026-03-03T09:00:00Z", "originalTimestamp": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(
            both.timestamp,
            Some(parse_instant("2026-03-03T09:00:00Z").unwrap())
        );

        let original = parse(json!({
            "type": "track", "userId": "u", "event": "E",
            "originalTimestamp": "2026-01-01T00:00:00Z", "sentAt": "2026-02-02T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(
            original.timestamp,
            Some(parse_instant("2026-01-01T00:00:00Z").unwrap())
        );
    }

    #[test]
    fn sent_at_and_received_at_are_not_event_times() {
        let m = parse(json!({
            "type": "track", "userId": "u", "event": "E",
            "sentAt": "2026-02-02T00:00:00Z", "receivedAt": "2026-02-02T00:00:01Z"
        }))
        .unwrap();
        assert_eq!(m.timestamp, None);
    }

    #[test]
    fn rejects_timestamps_without_an_offset_naming_the_value() {
        // given a local time without an offset
        let err = error_of(
            json!({"type": "track", "userId": "u", "event": "E", "timestamp": "2026-03-03T09:01:00"}),
        );
        // then the error names the field, the value and why
        assert_eq!(err.field, "timestamp");
        assert!(
            err.message.contains("\"2026-03-03T09:01:00\" (string)"),
            "{}",
            err.message
        );
        assert!(err.message.contains("offset"), "{}", err.message);
    }

    #[test]
    fn rejects_malformed_and_non_string_timestamps() {
        for bad in [
            json!("yesterday"),
            json!("2026-13-01T00:00:00Z"),
            json!("2026-03-03"),
            json!(""),
        ] {
            let err =
                error_of(json!({"type": "track", "userId": "u", "event": "E", "timestamp": bad}));
            assert_eq!(err.field, "timestamp");
            assert!(
                err.message.contains(&describe_value(&bad)),
                "{}",
                err.message
            );
        }
        let err = error_of(
            json!({"type": "track", "userId": "u", "event": "E", "timestamp": 1_772_528_460}),
        );
        assert_eq!(err.field, "timestamp");
        assert!(
            err.message.ends_with("got 1772528460 (number)"),
            "{}",
            err.message
        );

        let err = error_of(
            json!({"type": "track", "userId": "u", "event": "E", "originalTimestamp": "soon"}),
        );
        assert_eq!(err.field, "originalTimestamp");
    }

    // --- validation errors ---

    #[test]
    fn rejects_a_body_that_is_not_an_object() {
        for bad in [json!([]), json!("track"), json!(null), json!(3)] {
            let err = error_of(bad);
            assert_eq!(err.field, "$");
            assert!(err.message.starts_with("expected a JSON object"));
        }
    }

    #[test]
    fn type_is_required_without_a_path_kind() {
        let err = error_of(json!({"userId": "u", "event": "E"}));
        assert_eq!(err.field, "type");
        assert!(err
            .message
            .starts_with("required when the endpoint does not imply it"));
    }

    #[test]
    fn rejects_unknown_or_non_string_types() {
        let err = error_of(json!({"type": "purchase", "userId": "u"}));
        assert_eq!(err.field, "type");
        assert!(
            err.message.contains("got \"purchase\" (string)"),
            "{}",
            err.message
        );
        let err = error_of(json!({"type": 1, "userId": "u"}));
        assert_eq!(err.field, "type");
        assert!(err.message.contains("got 1 (number)"));
    }

    #[test]
    fn body_type_disagreeing_with_the_path_is_an_error() {
        // given an identify body posted to /v1/track
        let body = json!({"type": "identify", "userId": "u"});
        // when parsed
        let err = Message::from_json(&body, Some(MessageKind::Track)).unwrap_err();
        // then the error says so
        assert_eq!(
            err.to_string(),
            "type: \"identify\" does not match the endpoint /v1/track"
        );
    }

    #[test]
    fn requires_user_id_or_anonymous_id() {
        for body in [
            json!({"type": "track", "event": "E"}),
            json!({"type": "track", "event": "E", "userId": null, "anonymousId": null}),
            json!({"type": "track", "event": "E", "userId": "", "anonymousId": "  "}),
        ] {
            let err = error_of(body);
            assert_eq!(err.field, "userId");
            assert!(err.message.contains("userId or anonymousId is required"));
        }
    }

    #[test]
    fn rejects_ids_of_the_wrong_type() {
        for (key, bad) in [
            ("userId", json!(1.5)),
            ("userId", json!(true)),
            ("anonymousId", json!({"id": 1})),
            ("messageId", json!([1])),
        ] {
            let mut body = json!({"type": "track", "userId": "u", "event": "E"});
            body[key] = bad.clone();
            let err = error_of(body);
            assert_eq!(err.field, key);
            assert!(
                err.message.contains(&describe_value(&bad)),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn ids_are_limited_to_256_characters() {
        let ok = "é".repeat(256);
        let m = parse(json!({"type": "track", "userId": ok, "event": "E"})).unwrap();
        assert_eq!(m.user_key().chars().count(), 256);

        for key in ["userId", "anonymousId", "messageId"] {
            let mut body = json!({"type": "track", "userId": "u", "event": "E"});
            body[key] = json!("x".repeat(257));
            let err = error_of(body);
            assert_eq!(err.field, key);
            assert_eq!(err.message, "longer than 256 characters (257)");
        }
        let err = error_of(json!({"type": "alias", "userId": "u", "previousId": "p".repeat(300)}));
        assert_eq!(err.field, "previousId");
    }

    #[test]
    fn properties_traits_and_context_must_be_objects() {
        for key in ["properties", "traits", "context"] {
            let mut body = json!({"type": "track", "userId": "u", "event": "E"});
            body[key] = json!([1, 2]);
            let err = error_of(body);
            assert_eq!(err.field, key);
            assert_eq!(err.message, "expected an object, got [1,2] (array)");
        }
        let err = error_of(
            json!({"type": "track", "userId": "u", "event": "E", "context": {"traits": "x"}}),
        );
        assert_eq!(err.field, "context.traits");
    }

    #[test]
    fn track_requires_a_sensible_event_name() {
        let err = error_of(json!({"type": "track", "userId": "u"}));
        assert_eq!(err.to_string(), "event: required for track messages");
        let err = error_of(json!({"type": "track", "userId": "u", "event": "   "}));
        assert_eq!(err.to_string(), "event: must not be empty");
        let err = error_of(json!({"type": "track", "userId": "u", "event": 3}));
        assert_eq!(err.to_string(), "event: expected a string, got 3 (number)");
        let err = error_of(json!({"type": "track", "userId": "u", "event": "e".repeat(201)}));
        assert_eq!(err.to_string(), "event: longer than 200 characters (201)");
        assert!(parse(json!({"type": "track", "userId": "u", "event": "e".repeat(200)})).is_ok());
    }

    #[test]
    fn page_name_must_be_a_string() {
        let err = error_of(json!({"type": "page", "userId": "u", "name": {"x": 1}}));
        assert_eq!(err.field, "name");
    }

    #[test]
    fn alias_requires_previous_id_and_group_requires_group_id() {
        let err = error_of(json!({"type": "alias", "userId": "u"}));
        assert_eq!(err.to_string(), "previousId: required for alias messages");
        let err = error_of(json!({"type": "group", "userId": "u", "groupId": ""}));
        assert_eq!(err.to_string(), "groupId: required for group messages");
    }

    #[test]
    fn fields_of_other_types_are_ignored() {
        // given an identify carrying a stray `event` and a page carrying `groupId`
        let identify = parse(json!({"type": "identify", "userId": "u", "event": 5})).unwrap();
        let page =
            parse(json!({"type": "page", "userId": "u", "groupId": [], "previousId": {}})).unwrap();
        // then they are not read
        assert_eq!(identify.event, None);
        assert_eq!(page.group_id, None);
        assert_eq!(page.previous_id, None);
    }

    #[test]
    fn error_display_and_serialization() {
        let err = MessageError::new("properties", "expected an object, got 1 (number)");
        assert_eq!(
            err.to_string(),
            "properties: expected an object, got 1 (number)"
        );
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({"field": "properties", "message": "expected an object, got 1 (number)"})
        );
    }

    // --- message ids ---

    #[test]
    fn derived_message_id_is_stable_across_retries_and_key_order() {
        // given the same message sent twice, with a different sentAt and key order
        let first = json!({
            "type": "track", "userId": "u", "event": "E",
            "properties": {"a": 1, "b": {"x": 1, "y": 2}}, "timestamp": "2026-03-03T09:00:00Z",
            "sentAt": "2026-03-03T09:00:01Z"
        });
        let retry = json!({
            "sentAt": "2026-03-03T09:00:07Z", "timestamp": "2026-03-03T09:00:00Z",
            "properties": {"b": {"y": 2, "x": 1}, "a": 1}, "event": "E", "userId": "u", "type": "track"
        });
        // when both are parsed
        let a = parse(first).unwrap();
        let b = parse(retry).unwrap();
        // then they share one generated id
        assert_eq!(a.message_id, b.message_id);
        assert!(a.message_id.starts_with("gen-"));
        assert_eq!(a.message_id.len(), 4 + 32);
    }

    #[test]
    fn derived_message_id_differs_for_different_messages() {
        let a = parse(json!({"type": "track", "userId": "u", "event": "E", "timestamp": "2026-03-03T09:00:00Z"})).unwrap();
        let b = parse(json!({"type": "track", "userId": "u", "event": "E", "timestamp": "2026-03-03T09:00:01Z"})).unwrap();
        let c = parse(json!({"type": "track", "userId": "v", "event": "E", "timestamp": "2026-03-03T09:00:00Z"})).unwrap();
        assert_ne!(a.message_id, b.message_id);
        assert_ne!(a.message_id, c.message_id);
    }

    #[test]
    fn given_message_id_is_kept_and_empty_one_is_derived() {
        let m = parse(json!({"type": "track", "userId": "u", "event": "E", "messageId": "abc"}))
            .unwrap();
        assert_eq!(m.message_id, "abc");
        let m =
            parse(json!({"type": "track", "userId": "u", "event": "E", "messageId": ""})).unwrap();
        assert!(m.message_id.starts_with("gen-"));
        let m =
            parse(json!({"type": "track", "userId": "u", "event": "E", "messageId": 17})).unwrap();
        assert_eq!(m.message_id, "17");
    }

    // --- canonical JSON ---

    #[test]
    fn to_json_writes_canonical_camel_case() {
        let m = parse(json!({
            "type": "track", "messageId": "m1", "userId": "u", "anonymousId": "a", "event": "E",
            "properties": {"p": 1}, "timestamp": "2026-03-03T10:00:00.250+01:00", "sentAt": "x"
        }))
        .unwrap();
        assert_eq!(
            m.to_json(),
            json!({
                "type": "track", "messageId": "m1", "userId": "u", "anonymousId": "a", "event": "E",
                "properties": {"p": 1}, "context": {}, "timestamp": "2026-03-03T09:00:00.25Z"
            })
        );
        // Objects are written with sorted keys, so the canonical text is deterministic.
        let keys: Vec<String> = m.to_json().as_object().unwrap().keys().cloned().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn to_json_round_trips_every_kind() {
        let bodies = [
            json!({"type": "track", "userId": 5, "event": "E", "properties": {"n": 1.5, "s": "x"},
                   "context": {"timezone": "UTC", "traits": {"plan": "pro"}}, "timestamp": "2026-03-03T09:00:00.001Z"}),
            json!({"type": "identify", "anonymousId": "a", "traits": {"email": "a@b.c"}, "originalTimestamp": "2026-03-03T09:00:00Z"}),
            json!({"type": "identify", "userId": "u", "context": {"traits": {"email": "a@b.c"}}}),
            json!({"type": "page", "userId": "u", "name": "Home", "properties": {"url": "/"}}),
            json!({"type": "page", "userId": "u"}),
            json!({"type": "screen", "userId": "u", "name": "Settings"}),
            json!({"type": "group", "userId": "u", "groupId": "g", "traits": {"seats": 4}}),
            json!({"type": "alias", "userId": "u", "previousId": "a", "properties": {"odd": true}}),
        ];
        for body in bodies {
            let m = parse(body.clone()).unwrap();
            let again = parse(m.to_json()).unwrap();
            assert_eq!(again, m, "{body}");
            assert_eq!(again.to_json(), m.to_json());
        }
    }

    #[test]
    fn to_json_keeps_traits_set_on_a_hand_built_track_message() {
        let mut m = parse(json!({"type": "track", "userId": "u", "event": "E"})).unwrap();
        m.traits.insert("plan".into(), json!("pro"));
        let again = parse(m.to_json()).unwrap();
        assert_eq!(again.traits, m.traits);
    }

    #[test]
    fn to_json_leaves_out_an_unrepresentable_timestamp_instead_of_panicking() {
        let mut m = parse(json!({"type": "track", "userId": "u", "event": "E"})).unwrap();
        m.timestamp = Some(i64::MAX);
        assert!(m.to_json().get("timestamp").is_none());
        assert!(parse(m.to_json()).is_ok());
    }

    #[test]
    fn serde_goes_through_the_canonical_json() {
        let m = parse(json!({"type": "screen", "anonymousId": "a", "name": "Home"})).unwrap();
        let text = serde_json::to_string(&m).unwrap();
        let back: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        let err = serde_json::from_str::<Message>(r#"{"type":"track","userId":"u"}"#).unwrap_err();
        assert!(err
            .to_string()
            .contains("event: required for track messages"));
    }

    // --- describe_value ---

    #[test]
    fn describe_value_names_the_json_type_and_truncates_long_values() {
        assert_eq!(describe_value(&json!("two")), "\"two\" (string)");
        assert_eq!(describe_value(&json!(3.5)), "3.5 (number)");
        assert_eq!(describe_value(&json!(false)), "false (boolean)");
        assert_eq!(describe_value(&json!(null)), "null");
        assert_eq!(describe_value(&json!({"a": 1})), "{\"a\":1} (object)");
        let long = describe_value(&json!("ü".repeat(500)));
        assert!(long.ends_with("… (string)"));
        assert!(long.chars().count() < 80);
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-zA-Z0-9:.+ -]{0,30}".prop_map(Value::String),
            Just(json!("2026-03-03T09:01:00Z")),
            Just(json!("track")),
            Just(json!("identify")),
            Just(json!("alias")),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            let key = prop_oneof![
                Just("type".to_string()),
                Just("userId".to_string()),
                Just("anonymousId".to_string()),
                Just("event".to_string()),
                Just("name".to_string()),
                Just("properties".to_string()),
                Just("traits".to_string()),
                Just("context".to_string()),
                Just("timestamp".to_string()),
                Just("originalTimestamp".to_string()),
                Just("previousId".to_string()),
                Just("groupId".to_string()),
                Just("messageId".to_string()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((key, inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_json_parses_or_errors_and_accepted_messages_round_trip(body in arbitrary_json()) {
            // given arbitrary JSON, when parsed, then it never panics; and what is accepted
            // comes back equal from its canonical JSON
            // (also laid over a valid message, so that many variants get accepted)
            let mut overlaid = json!({"type": "track", "userId": "u", "event": "E"});
            if let (Some(base), Some(fields)) = (overlaid.as_object_mut(), body.as_object()) {
                base.extend(fields.clone());
            }
            for candidate in [&body, &overlaid] {
                if let Ok(m) = Message::from_json(candidate, None) {
                    let again = Message::from_json(&m.to_json(), None);
                    proptest::prop_assert_eq!(again, Ok(m.clone()));
                    proptest::prop_assert!(!m.user_key().is_empty());
                    proptest::prop_assert!(!m.message_id.is_empty());
                }
            }
            for kind in MessageKind::ALL {
                let _ = Message::from_json(&body, Some(kind));
            }
        }
    }

    #[test]
    fn never_panics_on_odd_inputs() {
        // given assorted hostile bodies
        let bodies = [
            json!({}),
            json!({"type": null, "userId": null}),
            json!({"type": "track", "userId": {"nested": "x"}, "event": "E"}),
            json!({"type": "track", "userId": "u", "event": "E", "timestamp": "9999-12-31T23:59:59.999999999Z"}),
            json!({"type": "track", "userId": "u", "event": "E", "timestamp": "-009999-01-01T00:00:00Z"}),
            json!({"type": "track", "userId": "u", "event": "\u{0}", "properties": {"": null}}),
            json!({"type": "alias", "userId": "u", "previousId": 1e300}),
        ];
        // when parsed, then each yields a result rather than a panic
        for body in bodies {
            let _ = Message::from_json(&body, None);
            let _ = Message::from_json(&body, Some(MessageKind::Page));
        }
    }
}
