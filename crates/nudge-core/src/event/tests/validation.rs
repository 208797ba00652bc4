//! What makes a message invalid, and how the error names it.

use super::*;

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
    let err =
        error_of(json!({"type": "track", "userId": "u", "event": "E", "context": {"traits": "x"}}));
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
