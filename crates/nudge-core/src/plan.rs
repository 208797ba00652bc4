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
            let field = format!("properties.{name}");
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
                    field,
                }),
                None => {}
                Some(value) => {
                    if let Err(message) = property.check(value) {
                        violations.push(PlanViolation { field, message });
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

    /// Checks a present, non-null value; the error is the message for the violation.
    fn check(&self, value: &Value) -> Result<(), String> {
        let fits = self.ty.accepts(value)
            && self.in_range(value)
            && self
                .one_of
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(|a| same_value(a, value)));
        if fits {
            Ok(())
        } else {
            Err(format!(
                "expected {}, got {}",
                self.expectation(),
                describe_value(value)
            ))
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
mod tests {
    use super::*;
    use serde_json::json;

    fn track(event: &str, properties: Value) -> Message {
        Message::from_json(
            &json!({"type": "track", "userId": "u1", "event": event, "properties": properties}),
            None,
        )
        .unwrap()
    }

    fn prop(ty: PropertyType) -> PropertySpec {
        PropertySpec::of(ty)
    }

    fn required(ty: PropertyType) -> PropertySpec {
        PropertySpec {
            required: true,
            ..PropertySpec::of(ty)
        }
    }

    fn plan_with(event: &str, properties: Vec<(&str, PropertySpec)>) -> TrackingPlan {
        TrackingPlan {
            allow_unknown_events: false,
            events: BTreeMap::from([(
                event.to_string(),
                EventSpec {
                    properties: properties
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                    allow_unknown_properties: true,
                },
            )]),
        }
    }

    fn step_plan() -> TrackingPlan {
        plan_with(
            "Profile Step Completed",
            vec![(
                "step_index",
                PropertySpec {
                    min: Some(1.0),
                    max: Some(5.0),
                    ..required(PropertyType::Integer)
                },
            )],
        )
    }

    fn violations(result: Result<Vec<PlanFlag>, Vec<PlanViolation>>) -> Vec<String> {
        match result {
            Ok(flags) => panic!("expected violations, got flags {flags:?}"),
            Err(v) => v.iter().map(ToString::to_string).collect(),
        }
    }

    // --- PropertyType ---

    #[test]
    fn property_type_names_round_trip() {
        for ty in PropertyType::ALL {
            assert_eq!(ty.to_string().parse::<PropertyType>().unwrap(), ty);
        }
        assert_eq!(
            "integer".parse::<PropertyType>().unwrap(),
            PropertyType::Integer
        );
        let err = "int".parse::<PropertyType>().unwrap_err();
        assert_eq!(err, UnknownPropertyType("int".into()));
        assert!(err.to_string().contains("expected one of string, integer"));
    }

    #[test]
    fn integer_accepts_whole_numbers_only() {
        let ty = PropertyType::Integer;
        assert!(ty.accepts(&json!(3)));
        assert!(ty.accepts(&json!(3.0)));
        assert!(ty.accepts(&json!(-3)));
        assert!(ty.accepts(&json!(u64::MAX)));
        assert!(!ty.accepts(&json!(3.5)));
        assert!(!ty.accepts(&json!("3")));
        assert!(!ty.accepts(&json!(true)));
    }

    #[test]
    fn each_type_accepts_its_json_values() {
        let samples = [
            json!("s"),
            json!(1),
            json!(1.5),
            json!(true),
            json!({}),
            json!([]),
        ];
        let expect = [
            (
                PropertyType::String,
                [true, false, false, false, false, false],
            ),
            (
                PropertyType::Integer,
                [false, true, false, false, false, false],
            ),
            (
                PropertyType::Number,
                [false, true, true, false, false, false],
            ),
            (
                PropertyType::Boolean,
                [false, false, false, true, false, false],
            ),
            (
                PropertyType::Object,
                [false, false, false, false, true, false],
            ),
            (
                PropertyType::Array,
                [false, false, false, false, false, true],
            ),
            (PropertyType::Any, [true; 6]),
        ];
        for (ty, accepted) in expect {
            for (sample, ok) in samples.iter().zip(accepted) {
                assert_eq!(ty.accepts(sample), ok, "{ty} {sample}");
            }
        }
    }

    // --- check: passing ---

    #[test]
    fn non_track_messages_pass_without_flags() {
        // given a strict plan
        let plan = step_plan();
        // when identify, page and alias messages are checked
        for body in [
            json!({"type": "identify", "userId": "u", "traits": {"x": 1}}),
            json!({"type": "page", "userId": "u", "name": "Home", "properties": {"junk": 1}}),
            json!({"type": "alias", "userId": "u", "previousId": "a"}),
        ] {
            let msg = Message::from_json(&body, None).unwrap();
            // then nothing is flagged
            assert_eq!(plan.check(&msg), Ok(vec![]));
        }
    }

    #[test]
    fn a_conforming_event_passes_without_flags() {
        let plan = step_plan();
        assert_eq!(
            plan.check(&track("Profile Step Completed", json!({"step_index": 2}))),
            Ok(vec![])
        );
        assert_eq!(
            plan.check(&track("Profile Step Completed", json!({"step_index": 5.0}))),
            Ok(vec![])
        );
        assert_eq!(
            plan.check(&track("Profile Step Completed", json!({"step_index": 1}))),
            Ok(vec![])
        );
    }

    #[test]
    fn unknown_event_is_flagged_when_allowed() {
        // given a plan that lets unknown events through
        let plan = TrackingPlan {
            allow_unknown_events: true,
            ..step_plan()
        };
        // when an unlisted event arrives
        let result = plan.check(&track("Clicked Banner", json!({"anything": [1]})));
        // then it is accepted with one flag naming it
        assert_eq!(
            result,
            Ok(vec![PlanFlag {
                field: "event".into(),
                message: "\"Clicked Banner\" is not in the tracking plan".into()
            }])
        );
    }

    #[test]
    fn unknown_property_is_flagged_when_allowed() {
        let plan = step_plan();
        let flags = plan
            .check(&track(
                "Profile Step Completed",
                json!({"step_index": 1, "source": "web"}),
            ))
            .unwrap();
        assert_eq!(flags.len(), 1);
        assert_eq!(
            flags[0].to_string(),
            "properties.source: not in the tracking plan for \"Profile Step Completed\""
        );
    }

    #[test]
    fn null_or_missing_optional_properties_count_as_absent() {
        let plan = plan_with(
            "E",
            vec![(
                "coupon",
                PropertySpec {
                    one_of: Some(vec![json!("A")]),
                    ..prop(PropertyType::String)
                },
            )],
        );
        assert_eq!(plan.check(&track("E", json!({}))), Ok(vec![]));
        assert_eq!(plan.check(&track("E", json!({"coupon": null}))), Ok(vec![]));
    }

    #[test]
    fn any_accepts_every_value_and_still_applies_ranges_to_numbers() {
        let plan = plan_with(
            "E",
            vec![(
                "v",
                PropertySpec {
                    max: Some(10.0),
                    ..prop(PropertyType::Any)
                },
            )],
        );
        assert_eq!(plan.check(&track("E", json!({"v": {"k": 1}}))), Ok(vec![]));
        assert_eq!(plan.check(&track("E", json!({"v": true}))), Ok(vec![]));
        assert_eq!(
            violations(plan.check(&track("E", json!({"v": 11})))),
            ["properties.v: expected any value at most 10, got 11 (number)"]
        );
    }

    #[test]
    fn the_default_plan_accepts_everything_without_flags() {
        // given no tracking plan
        let plan = TrackingPlan::default();
        // when any track event arrives
        let result = plan.check(&track("Whatever Happened", json!({"x": [1]})));
        // then it passes silently
        assert_eq!(result, Ok(vec![]));
        assert!(plan.allow_unknown_events);
        assert!(EventSpec::default().allow_unknown_properties);
    }

    #[test]
    fn an_empty_plan_that_forbids_unknown_events_rejects_them() {
        let plan = TrackingPlan {
            allow_unknown_events: false,
            events: BTreeMap::new(),
        };
        assert_eq!(violations(plan.check(&track("E", json!({})))).len(), 1);
    }

    #[test]
    fn an_event_listed_without_properties_accepts_any_properties_silently() {
        // given `Signed Up` listed with no properties
        let mut plan = TrackingPlan {
            allow_unknown_events: false,
            events: BTreeMap::from([("Signed Up".to_string(), EventSpec::default())]),
        };
        // then its properties are neither flagged nor rejected
        assert_eq!(plan.check(&track("Signed Up", json!({}))), Ok(vec![]));
        assert_eq!(plan.check(&track("Signed Up", json!({"a": 1}))), Ok(vec![]));
        // unless the plan says it carries none
        if let Some(spec) = plan.events.get_mut("Signed Up") {
            spec.allow_unknown_properties = false;
        }
        assert_eq!(
            violations(plan.check(&track("Signed Up", json!({"a": 1})))).len(),
            1
        );
    }

    // --- check: violations ---

    #[test]
    fn wrong_type_names_path_expectation_and_value() {
        // given the onboarding plan
        let plan = step_plan();
        // when step_index is sent as a word
        let result = plan.check(&track(
            "Profile Step Completed",
            json!({"step_index": "two"}),
        ));
        // then the violation says exactly what was expected and what came
        assert_eq!(
            violations(result),
            ["properties.step_index: expected integer between 1 and 5, got \"two\" (string)"]
        );
    }

    #[test]
    fn fractional_value_for_an_integer_is_a_violation() {
        let plan = step_plan();
        assert_eq!(
            violations(plan.check(&track("Profile Step Completed", json!({"step_index": 3.5})))),
            ["properties.step_index: expected integer between 1 and 5, got 3.5 (number)"]
        );
    }

    #[test]
    fn out_of_range_numbers_are_violations() {
        let plan = step_plan();
        for bad in [json!(0), json!(6), json!(-1), json!(1e20)] {
            let v = violations(
                plan.check(&track("Profile Step Completed", json!({"step_index": bad}))),
            );
            assert_eq!(v.len(), 1);
            assert!(
                v[0].starts_with("properties.step_index: expected integer between 1 and 5, got ")
            );
        }
    }

    #[test]
    fn one_sided_bounds_are_described() {
        let plan = plan_with(
            "Purchase",
            vec![
                (
                    "amount",
                    PropertySpec {
                        min: Some(0.5),
                        ..prop(PropertyType::Number)
                    },
                ),
                (
                    "items",
                    PropertySpec {
                        max: Some(3.0),
                        ..prop(PropertyType::Number)
                    },
                ),
            ],
        );
        let mut v = violations(plan.check(&track("Purchase", json!({"amount": 0.25, "items": 4}))));
        v.sort();
        assert_eq!(
            v,
            [
                "properties.amount: expected number at least 0.5, got 0.25 (number)",
                "properties.items: expected number at most 3, got 4 (number)",
            ]
        );
    }

    #[test]
    fn string_and_array_bounds_are_lengths() {
        let plan = plan_with(
            "E",
            vec![
                (
                    "title",
                    PropertySpec {
                        min: Some(1.0),
                        max: Some(3.0),
                        ..prop(PropertyType::String)
                    },
                ),
                (
                    "tags",
                    PropertySpec {
                        max: Some(2.0),
                        ..prop(PropertyType::Array)
                    },
                ),
            ],
        );
        assert_eq!(
            plan.check(&track("E", json!({"title": "héé", "tags": ["a", "b"]}))),
            Ok(vec![])
        );
        let mut v = violations(plan.check(&track("E", json!({"title": "", "tags": [1, 2, 3]}))));
        v.sort();
        assert_eq!(
            v,
            [
                "properties.tags: expected array of at most 2 items, got [1,2,3] (array)",
                "properties.title: expected string of 1 to 3 characters, got \"\" (string)",
            ]
        );
    }

    #[test]
    fn value_outside_one_of_is_a_violation() {
        let plan = plan_with(
            "Plan Chosen",
            vec![(
                "plan",
                PropertySpec {
                    one_of: Some(vec![json!("free"), json!("pro")]),
                    ..required(PropertyType::String)
                },
            )],
        );
        assert_eq!(
            plan.check(&track("Plan Chosen", json!({"plan": "pro"}))),
            Ok(vec![])
        );
        assert_eq!(
            violations(plan.check(&track("Plan Chosen", json!({"plan": "gold"})))),
            ["properties.plan: expected string, one of \"free\", \"pro\", got \"gold\" (string)"]
        );
    }

    #[test]
    fn one_of_compares_numbers_by_value() {
        let plan = plan_with(
            "E",
            vec![(
                "n",
                PropertySpec {
                    one_of: Some(vec![json!(1), json!(2.0), json!([1, {"a": 2}])]),
                    ..prop(PropertyType::Any)
                },
            )],
        );
        assert_eq!(plan.check(&track("E", json!({"n": 1.0}))), Ok(vec![]));
        assert_eq!(plan.check(&track("E", json!({"n": 2}))), Ok(vec![]));
        assert_eq!(
            plan.check(&track("E", json!({"n": [1.0, {"a": 2}]}))),
            Ok(vec![])
        );
        assert!(plan.check(&track("E", json!({"n": 3}))).is_err());
        assert!(plan.check(&track("E", json!({"n": "1"}))).is_err());
        assert!(plan
            .check(&track("E", json!({"n": [1, {"a": 2, "b": 3}]})))
            .is_err());
    }

    #[test]
    fn missing_or_null_required_property_is_a_violation() {
        let plan = step_plan();
        assert_eq!(
            violations(plan.check(&track("Profile Step Completed", json!({})))),
            ["properties.step_index: required integer between 1 and 5, got nothing"]
        );
        assert_eq!(
            violations(plan.check(&track(
                "Profile Step Completed",
                json!({"step_index": null})
            ))),
            ["properties.step_index: required integer between 1 and 5, got null"]
        );
    }

    #[test]
    fn unknown_event_is_a_violation_when_not_allowed() {
        let plan = step_plan();
        assert_eq!(
            violations(plan.check(&track("Clicked Banner", json!({})))),
            ["event: \"Clicked Banner\" is not in the tracking plan (unknown events are not allowed)"]
        );
    }

    #[test]
    fn unknown_property_is_a_violation_when_not_allowed() {
        let mut plan = step_plan();
        for spec in plan.events.values_mut() {
            spec.allow_unknown_properties = false;
        }
        assert_eq!(
            violations(plan.check(&track("Profile Step Completed", json!({"step_index": 1, "src": "x"})))),
            ["properties.src: not in the tracking plan for \"Profile Step Completed\" (unknown properties are not allowed)"]
        );
    }

    #[test]
    fn every_violation_is_reported_and_flags_are_dropped() {
        // given a plan with two required properties
        let plan = plan_with(
            "Signed Up",
            vec![
                ("method", required(PropertyType::String)),
                ("invited", required(PropertyType::Boolean)),
                ("meta", prop(PropertyType::Object)),
            ],
        );
        // when all three are wrong and an extra property comes along
        let msg = track("Signed Up", json!({"method": 1, "meta": [], "extra": 1}));
        // then three violations come back, in the plan's property order
        assert_eq!(
            violations(plan.check(&msg)),
            [
                "properties.invited: required boolean, got nothing",
                "properties.meta: expected object, got [] (array)",
                "properties.method: expected string, got 1 (number)",
            ]
        );
    }

    #[test]
    fn a_hand_built_track_without_event_name_is_a_violation() {
        let mut msg = track("E", json!({}));
        msg.event = None;
        assert_eq!(
            violations(step_plan().check(&msg)),
            ["event: a track message needs an event name"]
        );
    }

    #[test]
    fn nan_and_infinite_bounds_do_not_panic() {
        let plan = plan_with(
            "E",
            vec![(
                "x",
                PropertySpec {
                    min: Some(f64::NAN),
                    max: Some(f64::INFINITY),
                    ..prop(PropertyType::Number)
                },
            )],
        );
        // NaN bounds compare false: the value is out of range, reported rather than panicking.
        assert_eq!(
            violations(plan.check(&track("E", json!({"x": 1})))),
            ["properties.x: expected number between NaN and inf, got 1 (number)"]
        );
    }

    #[test]
    fn flags_and_violations_serialize_as_field_and_message() {
        let flag = PlanFlag {
            field: "event".into(),
            message: "m".into(),
        };
        let violation = PlanViolation {
            field: "properties.x".into(),
            message: "n".into(),
        };
        assert_eq!(
            serde_json::to_value(&flag).unwrap(),
            json!({"field": "event", "message": "m"})
        );
        assert_eq!(
            serde_json::to_value(&violation).unwrap(),
            json!({"field": "properties.x", "message": "n"})
        );
        assert_eq!(violation.to_string(), "properties.x: n");
    }
}
