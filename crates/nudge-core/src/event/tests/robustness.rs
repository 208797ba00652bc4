//! Any JSON at all: nothing panics, and what is written reads back the same.

use super::*;

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
            let lent = Message::from_json(&body, Some(kind));
            proptest::prop_assert_eq!(lent, Message::from_json_value(body.clone(), Some(kind)));
        }
        for candidate in [&body, &overlaid] {
            let lent = Message::from_json(candidate, None);
            let text = candidate.to_string();
            proptest::prop_assert_eq!(from_text(&text), map_reading(&text));
            proptest::prop_assert_eq!(lent, Message::from_json_value(candidate.clone(), None));
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

#[test]
fn serializing_a_message_writes_exactly_its_canonical_json() {
    let cases = [
        json!({"type": "track", "userId": "u1", "anonymousId": "a1", "event": "E",
               "properties": {"b": 1, "a": [1, {"z": null}]}, "timestamp": "2026-03-03T10:00:00.123Z",
               "context": {"zone": 1, "app": {"v": "1"}, "timezone": "Europe/Berlin"},
               "traits": {"plan": "pro"}, "messageId": "m1"}),
        json!({"type": "track", "anonymousId": "a1", "event": "E", "context": {"traits": {"x": 1}},
               "traits": {"plan": "pro"}}),
        json!({"type": "identify", "userId": "u1", "traits": {"email": "a@x.io"}, "context": {"ip": "1"}}),
        json!({"type": "page", "userId": "u1", "name": "Pricing", "properties": {"path": "/p"}}),
        json!({"type": "screen", "anonymousId": "a", "name": "Home"}),
        json!({"type": "screen", "anonymousId": "a"}),
        json!({"type": "group", "userId": "u1", "groupId": "acme", "traits": {"size": 10}}),
        json!({"type": "alias", "userId": "u1", "previousId": "a1", "properties": {"x": 1}}),
        json!({"type": "track", "userId": "u1", "event": "E", "context": {"a": 1, "z": 2},
               "traits": {"t": true}}),
    ];
    for case in cases {
        let m = parse(case.clone()).unwrap();
        let direct = serde_json::to_string(&m).unwrap();
        let canonical = serde_json::to_string(&m.to_json()).unwrap();
        assert_eq!(direct, canonical, "{case}");
        let back: Message = serde_json::from_str(&direct).unwrap();
        assert_eq!(back, m);
    }
}
