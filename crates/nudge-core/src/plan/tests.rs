//! Tests of the tracking plan checks.

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
        let v =
            violations(plan.check(&track("Profile Step Completed", json!({"step_index": bad}))));
        assert_eq!(v.len(), 1);
        assert!(v[0].starts_with("properties.step_index: expected integer between 1 and 5, got "));
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
