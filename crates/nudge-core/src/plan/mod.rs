//! The tracking plan: which track events and properties a product may send, checked at ingest
//! so bad data is rejected (or flagged) before it reaches user state.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{describe_value, Message, MessageKind};

/// The events a product sends and the properties each carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackingPlan {
    /// Accept (and flag) events the plan does not list; otherwise reject them.
    pub allow_unknown_events: bool,
    /// Event name -> its specification.
    pub events: BTreeMap<String, EventSpec>,
}

impl Default for TrackingPlan {
    /// No plan: every event is accepted without flags (see [`TrackingPlan::check`]).
    fn default() -> Self {
        TrackingPlan {
            allow_unknown_events: true,
            events: BTreeMap::new(),
        }
    }
}

/// The properties of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSpec {
    pub properties: BTreeMap<String, PropertySpec>,
    /// Accept (and flag) properties the spec does not list; otherwise reject them.
    pub allow_unknown_properties: bool,
}

impl Default for EventSpec {
    /// An event listed without properties: whatever it carries is accepted without flags.
    fn default() -> Self {
        EventSpec {
            properties: BTreeMap::new(),
            allow_unknown_properties: true,
        }
    }
}

/// What one property's value must look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertySpec {
    pub ty: PropertyType,
    pub required: bool,
    /// Least allowed value for numbers; least length for strings (characters) and arrays (items).
    pub min: Option<f64>,
    /// Greatest allowed value for numbers; greatest length for strings and arrays.
    pub max: Option<f64>,
    /// The allowed values (numbers compare by value, so `3` matches `3.0`).
    pub one_of: Option<Vec<Value>>,
}

/// The JSON type a property must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PropertyType {
    String,
    /// A number without a fractional part (`3` and `3.0`, not `3.5`).
    Integer,
    Number,
    Boolean,
    Object,
    Array,
    Any,
}

impl PropertyType {
    /// Every type, in the order the plan's documentation lists them.
    pub const ALL: [PropertyType; 7] = [
        PropertyType::String,
        PropertyType::Integer,
        PropertyType::Number,
        PropertyType::Boolean,
        PropertyType::Object,
        PropertyType::Array,
        PropertyType::Any,
    ];

    /// The name written in the plan.
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyType::String => "string",
            PropertyType::Integer => "integer",
            PropertyType::Number => "number",
            PropertyType::Boolean => "boolean",
            PropertyType::Object => "object",
            PropertyType::Array => "array",
            PropertyType::Any => "any",
        }
    }

    /// Whether a (non-null) value has this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            PropertyType::String => value.is_string(),
            PropertyType::Integer => is_integral(value),
            PropertyType::Number => value.is_number(),
            PropertyType::Boolean => value.is_boolean(),
            PropertyType::Object => value.is_object(),
            PropertyType::Array => value.is_array(),
            PropertyType::Any => true,
        }
    }
}

impl fmt::Display for PropertyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A property type name the plan does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown property type \"{0}\" (expected one of string, integer, number, boolean, object, array, any)"
)]
pub struct UnknownPropertyType(pub String);

impl FromStr for PropertyType {
    type Err = UnknownPropertyType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PropertyType::ALL
            .into_iter()
            .find(|ty| ty.as_str() == s)
            .ok_or_else(|| UnknownPropertyType(s.to_string()))
    }
}

/// Something accepted but worth a look: an event or property the plan does not list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanFlag {
    pub field: String,
    pub message: String,
}

impl fmt::Display for PlanFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a message breaks the plan and is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PlanViolation {
    pub field: String,
    pub message: String,
}

impl TrackingPlan {
    /// Checks a track message against the plan: Ok(flags) when acceptable, Err(violations) when a listed property has the wrong type, is out of range/not one of the allowed values, or a required one is missing. Non-track messages pass with no flags. Unknown events: flagged when allow_unknown_events, else a violation. Unknown properties of a known event: flagged (violation when allow_unknown_properties is false).
    ///
    /// A plan that lists no events and allows unknown ones (the default, i.e. no plan) flags
    /// nothing; likewise an event listed without properties that allows unknown ones flags none
    /// of its properties.
    pub fn check(&self, msg: &Message) -> Result<Vec<PlanFlag>, Vec<PlanViolation>> {
        if msg.kind != MessageKind::Track {
            return Ok(Vec::new());
        }
        let Some(event) = msg.event.as_deref() else {
            return Err(vec![PlanViolation {
                field: "event".into(),
                message: "a track message needs an event name".into(),
            }]);
        };
        let Some(spec) = self.events.get(event) else {
            // A plan that lists no events and lets unknown ones through is no plan at all:
            // flagging every event would only be noise.
            if self.events.is_empty() && self.allow_unknown_events {
                return Ok(Vec::new());
            }
            let message = format!("\"{event}\" is not in the tracking plan");
            return if self.allow_unknown_events {
                Ok(vec![PlanFlag {
                    field: "event".into(),
                    message,
                }])
            } else {
                Err(vec![PlanViolation {
                    field: "event".into(),
                    message: format!("{message} (unknown events are not allowed)"),
                }])
            };
        };

        let mut flags = Vec::new();
        let mut violations = Vec::new();
        for (name, property) in &spec.properties {
            // Named only when something is wrong: most events break nothing.
            let field = || format!("properties.{name}");
            let value = msg.properties.get(name).filter(|v| !v.is_null());
            match value {
                None if property.required => violations.push(PlanViolation {
                    message: format!(
                        "required {}, got {}",
                        property.expectation(),
                        if msg.properties.contains_key(name) {
                            "null"
                        } else {
                            "nothing"
                        }
                    ),
                    field: field(),
                }),
                None => {}
                Some(value) => {
                    if let Err(mismatch) = property.check(value) {
                        violations.push(PlanViolation {
                            field: field(),
                            message: mismatch.to_string(),
                        });
                    }
                }
            }
        }
        // An event listed without properties that allows unknown ones declares the event only.
        let properties_declared = !spec.properties.is_empty() || !spec.allow_unknown_properties;
        for name in msg.properties.keys() {
            if !properties_declared || spec.properties.contains_key(name) {
                continue;
            }
            let field = format!("properties.{name}");
            let message = format!("not in the tracking plan for \"{event}\"");
            if spec.allow_unknown_properties {
                flags.push(PlanFlag { field, message });
            } else {
                violations.push(PlanViolation {
                    field,
                    message: format!("{message} (unknown properties are not allowed)"),
                });
            }
        }
        if violations.is_empty() {
            Ok(flags)
        } else {
            Err(violations)
        }
    }
}

/// A property value that breaks its spec: what the spec asks for and what came, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {got}")]
struct Mismatch {
    expected: String,
    got: String,
}

impl PropertySpec {
    /// A spec of this type with no other constraint.
    pub fn of(ty: PropertyType) -> Self {
        PropertySpec {
            ty,
            required: false,
            min: None,
            max: None,
            one_of: None,
        }
    }

    /// Checks a present, non-null value.
    fn check(&self, value: &Value) -> Result<(), Mismatch> {
        let fits = self.ty.accepts(value)
            && self.in_range(value)
            && self
                .one_of
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(|a| same_value(a, value)));
        if fits {
            Ok(())
        } else {
            Err(Mismatch {
                expected: self.expectation(),
                got: describe_value(value),
            })
        }
    }

    /// Numbers compare by value; strings by length in characters, arrays by item count.
    fn in_range(&self, value: &Value) -> bool {
        let measured = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => Some(s.chars().count() as f64),
            Value::Array(items) => Some(items.len() as f64),
            _ => None,
        };
        let Some(x) = measured else {
            return true;
        };
        self.min.is_none_or(|min| x >= min) && self.max.is_none_or(|max| x <= max)
    }

    /// What the spec asks for, in words: `integer between 1 and 5`, `string of at most 80
    /// characters, one of "a", "b"`.
    fn expectation(&self) -> String {
        let mut text = match self.ty {
            PropertyType::Any => "any value".to_string(),
            ty => ty.as_str().to_string(),
        };
        let unit = match self.ty {
            PropertyType::String => Some("characters"),
            PropertyType::Array => Some("items"),
            _ => None,
        };
        let range = match (self.min, self.max) {
            (Some(min), Some(max)) => Some(match unit {
                Some(unit) => format!("of {} to {} {unit}", number(min), number(max)),
                None => format!("between {} and {}", number(min), number(max)),
            }),
            (Some(min), None) => Some(match unit {
                Some(unit) => format!("of at least {} {unit}", number(min)),
                None => format!("at least {}", number(min)),
            }),
            (None, Some(max)) => Some(match unit {
                Some(unit) => format!("of at most {} {unit}", number(max)),
                None => format!("at most {}", number(max)),
            }),
            (None, None) => None,
        };
        if let Some(range) = range {
            text.push(' ');
            text.push_str(&range);
        }
        if let Some(allowed) = &self.one_of {
            let listed: Vec<String> = allowed
                .iter()
                .map(|v| serde_json::to_string(v).unwrap_or_default())
                .collect();
            text.push_str(", one of ");
            text.push_str(&listed.join(", "));
        }
        text
    }
}

/// A JSON number with no fractional part.
fn is_integral(value: &Value) -> bool {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => true,
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0),
        _ => false,
    }
}

/// JSON equality where numbers compare by value (`3` equals `3.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// A bound as people write it: `5`, not `5.0`.
fn number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests;
