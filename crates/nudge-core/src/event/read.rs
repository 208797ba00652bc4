//! Reading a Segment message from JSON: every field nudge uses validated, with the field's
//! name in the error. A caller that keeps its JSON lends it (the fields are copied); one that
//! is done with it gives it away (`Message::from_json_value`: the fields are moved); one with
//! the text reads only the fields nudge uses (`Message::from_json_text`: the message is not
//! built as a map first). The three agree on every input (tests.rs); a backtest of millions
//! of lines notices the difference in cost.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    describe_value, Message, MessageError, MessageKind, MAX_EVENT_NAME_CHARS, MAX_ID_CHARS,
};
use crate::time::{parse_instant, Millis};

/// A message's fields, lent or given. A missing field and a null one read the same.
trait Body {
    fn get(&self, key: &str) -> Option<&Value>;
    /// The value of `key`: copied from a lent body, moved out of a given one.
    fn take(&mut self, key: &str) -> Option<Value>;
}

impl Body for &Map<String, Value> {
    fn get(&self, key: &str) -> Option<&Value> {
        Map::get(self, key)
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        Map::get(self, key).cloned()
    }
}

impl Body for Map<String, Value> {
    fn get(&self, key: &str) -> Option<&Value> {
        Map::get(self, key)
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.remove(key)
    }
}

/// The top-level names nudge reads, in the order of [`Fields`]' slots.
const NAMES: [&str; 13] = [
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "timestamp",
    "originalTimestamp",
    "event",
    "name",
    "previousId",
    "groupId",
    "properties",
    "traits",
    "context",
];

/// The fields nudge reads, straight from a message's text, without building the message as a
/// map. Other fields are read and dropped, so that what the map's reading refuses (a lone
/// surrogate, a number out of range, nesting too deep) is refused here too; a repeated field
/// keeps the last, as in a map.
#[derive(Default)]
struct Fields([Option<Value>; NAMES.len()]);

impl Fields {
    fn slot(key: &str) -> Option<usize> {
        NAMES.iter().position(|n| *n == key)
    }
}

impl Body for Fields {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0[Fields::slot(key)?].as_ref()
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.0[Fields::slot(key)?].take()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let value: Value = map.next_value()?;
                    if let Some(i) = Fields::slot(&key) {
                        fields.0[i] = Some(value);
                    }
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Why a message's text was not read.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Message(#[from] MessageError),
}

fn not_an_object(value: &Value) -> MessageError {
    MessageError::new(
        "$",
        format!(
            "expected a JSON object (a Segment message), got {}",
            describe_value(value)
        ),
    )
}

impl Message {
    /// Parses one Segment message. `path_kind` is the type implied by the HTTP path (/v1/track), if any; a body `type` that disagrees is an error; without either, `type` is required.
    pub fn from_json(
        value: &Value,
        path_kind: Option<MessageKind>,
    ) -> Result<Message, MessageError> {
        match value {
            Value::Object(body) => Message::from_body(body, path_kind),
            other => Err(not_an_object(other)),
        }
    }

    /// [`Message::from_json`] for a value the caller gives away: its strings and objects are
    /// moved into the message, not copied.
    pub fn from_json_value(
        value: Value,
        path_kind: Option<MessageKind>,
    ) -> Result<Message, MessageError> {
        match value {
            Value::Object(body) => Message::from_body(body, path_kind),
            other => Err(not_an_object(&other)),
        }
    }

    /// A message from its JSON text (no path implies its type): what
    /// `from_json_value(serde_json::from_str(text)?, None)` gives, without building the whole
    /// message as a map first.
    pub fn from_json_text(text: &str) -> Result<Message, TextError> {
        if let Ok(fields) = serde_json::from_str::<Fields>(text) {
            return Ok(Message::from_body(fields, None)?);
        }
        // Not an object, or not JSON: the map's reading names what is wrong.
        let value: Value = serde_json::from_str(text)?;
        Ok(Message::from_json_value(value, None)?)
    }

    fn from_body(
        mut body: impl Body,
        path_kind: Option<MessageKind>,
    ) -> Result<Message, MessageError> {
        let kind = message_kind(&body, path_kind)?;

        let user_id = optional_id(&mut body, "userId")?;
        let anonymous_id = optional_id(&mut body, "anonymousId")?;
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(MessageError::new(
                "userId",
                "either userId or anonymousId is required (a non-empty string)",
            ));
        }

        let properties = optional_object(&mut body, "properties")?;
        let context = optional_object(&mut body, "context")?;
        let has_top_traits = body_has(&body, "traits");
        let top_traits = optional_object(&mut body, "traits")?;
        let context_traits = match context.get("traits") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                return Err(MessageError::new(
                    "context.traits",
                    format!("expected an object, got {}", describe_value(other)),
                ))
            }
        };
        let traits = match kind {
            // Some SDKs (RudderStack) send identify traits only under context.traits.
            MessageKind::Identify | MessageKind::Group if has_top_traits => top_traits,
            _ => context_traits.cloned().unwrap_or_default(),
        };

        // Both are checked when present: a bad `originalTimestamp` is refused even beside a
        // `timestamp` that makes it unused.
        let stated = body_has(&body, "timestamp")
            .then(|| instant(&body, "timestamp"))
            .transpose()?;
        let original = body_has(&body, "originalTimestamp")
            .then(|| instant(&body, "originalTimestamp"))
            .transpose()?;
        let timestamp = stated.or(original);

        let event = match kind {
            MessageKind::Track => Some(event_name(&mut body)?),
            _ => None,
        };
        let name = match kind {
            MessageKind::Page | MessageKind::Screen => optional_string(&mut body, "name")?,
            _ => None,
        };
        let previous_id = match kind {
            MessageKind::Alias => Some(required_id(&mut body, "previousId", "alias")?),
            _ => None,
        };
        let group_id = match kind {
            MessageKind::Group => Some(required_id(&mut body, "groupId", "group")?),
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
        message.message_id = match optional_id(&mut body, "messageId")? {
            Some(id) => id,
            None => message.derived_message_id(),
        };
        Ok(message)
    }
}

/// Present and not null: SDKs send `"userId": null` for anonymous users.
fn body_has(body: &impl Body, key: &str) -> bool {
    !matches!(body.get(key), None | Some(Value::Null))
}

fn message_kind(
    body: &impl Body,
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
fn optional_id(body: &mut impl Body, key: &str) -> Result<Option<String>, MessageError> {
    let id = match body.take(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s,
        Some(other) => match integer_id(&other) {
            Some(id) => id,
            None => {
                return Err(MessageError::new(
                    key,
                    format!(
                        "expected a non-empty string or an integer, got {}",
                        describe_value(&other)
                    ),
                ))
            }
        },
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

/// The largest magnitude of an integer id written with a fraction or an exponent: 2^53, up to
/// which a float holds every integer exactly. Past it the written digits are already lost
/// (`-9223372036854775809`, below the smallest id, reads as the smallest id), so such a
/// number names no integer for sure.
const MAX_FLOAT_ID: f64 = 9_007_199_254_740_992.0;

/// An integer id, written without a fraction. JSON Schema (and so the OpenAPI description)
/// counts `42.0` and `4.2e1` integers too, so they are 42 like `42`, up to 2^53 in magnitude.
fn integer_id(value: &Value) -> Option<String> {
    let Value::Number(n) = value else {
        return None;
    };
    if n.is_i64() || n.is_u64() {
        return Some(n.to_string());
    }
    let f = n
        .as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() <= MAX_FLOAT_ID)?;
    // In range and whole, so the conversion is exact.
    Some((f as i64).to_string())
}

fn required_id(body: &mut impl Body, key: &str, kind: &str) -> Result<String, MessageError> {
    optional_id(body, key)?
        .ok_or_else(|| MessageError::new(key, format!("required for {kind} messages")))
}

fn optional_object(body: &mut impl Body, key: &str) -> Result<Map<String, Value>, MessageError> {
    match body.take(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(MessageError::new(
            key,
            format!("expected an object, got {}", describe_value(&other)),
        )),
    }
}

fn optional_string(body: &mut impl Body, key: &str) -> Result<Option<String>, MessageError> {
    match body.take(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(MessageError::new(
            key,
            format!("expected a string, got {}", describe_value(&other)),
        )),
    }
}

fn event_name(body: &mut impl Body) -> Result<String, MessageError> {
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

fn instant(body: &impl Body, key: &str) -> Result<Millis, MessageError> {
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
