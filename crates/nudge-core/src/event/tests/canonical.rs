//! Derived message ids and the canonical JSON a message is written as.

use super::*;

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
    let a = parse(
        json!({"type": "track", "userId": "u", "event": "E", "timestamp": "2026-03-03T09:00:00Z"}),
    )
    .unwrap();
    let b = parse(
        json!({"type": "track", "userId": "u", "event": "E", "timestamp": "2026-03-03T09:00:01Z"}),
    )
    .unwrap();
    let c = parse(
        json!({"type": "track", "userId": "v", "event": "E", "timestamp": "2026-03-03T09:00:00Z"}),
    )
    .unwrap();
    assert_ne!(a.message_id, b.message_id);
    assert_ne!(a.message_id, c.message_id);
}

#[test]
fn given_message_id_is_kept_and_empty_one_is_derived() {
    let m =
        parse(json!({"type": "track", "userId": "u", "event": "E", "messageId": "abc"})).unwrap();
    assert_eq!(m.message_id, "abc");
    let m = parse(json!({"type": "track", "userId": "u", "event": "E", "messageId": ""})).unwrap();
    assert!(m.message_id.starts_with("gen-"));
    let m = parse(json!({"type": "track", "userId": "u", "event": "E", "messageId": 17})).unwrap();
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
