//! Tests of the Segment message model: parsing, validation and canonical JSON.

use super::*;
use crate::time::parse_instant;
use serde_json::json;

/// Reads `value` every way, lent, given and from its text, which must agree (value and
/// error alike).
fn parse(value: Value) -> Result<Message, MessageError> {
    let lent = Message::from_json(&value, None);
    let text = value.to_string();
    assert_eq!(from_text(&text), map_reading(&text), "{text}");
    let given = Message::from_json_value(value, None);
    assert_eq!(lent, given, "the lent and the given readings differ");
    lent
}

/// The map's reading of a text, `None` when the text is not JSON.
fn map_reading(text: &str) -> Option<Result<Message, MessageError>> {
    let value = serde_json::from_str::<Value>(text).ok()?;
    Some(Message::from_json_value(value, None))
}

/// The text's reading, `None` when the text is not JSON.
fn from_text(text: &str) -> Option<Result<Message, MessageError>> {
    match Message::from_json_text(text) {
        Ok(m) => Some(Ok(m)),
        Err(TextError::Message(e)) => Some(Err(e)),
        Err(TextError::Json(_)) => None,
    }
}

#[test]
fn the_text_reading_agrees_with_the_map_reading_where_they_could_differ() {
    for text in [
        // A repeated field: the last one counts, as in a map.
        r#"{"type":"track","userId":"a","userId":"b","event":"E"}"#,
        r#"{"type":"track","userId":"a","event":"E","event":""}"#,
        // An array is not a message (serde would read a struct from it by position).
        r#"["track","u","x","m"]"#,
        // Escapes in keys and values.
        r#"{"type":"track","userId":"u","event":"E
"}"#,
        // Null and missing read the same; numbers as ids; wrong types.
        r#"{"type":"track","userId":null,"anonymousId":7,"event":"E","timestamp":null,"originalTimestamp":"2026-03-02T09:00:00Z"}"#,
        r#"{"type":"track","userId":"u","event":"E","timestamp":12}"#,
        r#"{"type":"identify","userId":"u","traits":null,"context":{"traits":{"a":1}}}"#,
        r#"{"type":"identify","userId":"u","traits":{"b":2},"context":{"traits":[1]}}"#,
        r#"{"type":"track","userId":"u","event":"E","properties":[],"extra":{"deep":[1,2,{"x":null}]}}"#,
        r#"  {"type":"page","anonymousId":"a","name":"Home"}  "#,
        r#"{"type":"track","userId":"u","event":"E"} trailing"#,
        // What only a full reading of skipped fields refuses.
        r#"{"type":"track","userId":"u","event":"E","x":"\ud800"}"#,
        r#"{"type":"track","userId":"u","event":"E","sentAt":1e400}"#,
        r#"not json"#,
    ] {
        assert_eq!(from_text(text), map_reading(text), "{text}");
    }
    let deep = format!(
        r#"{{"type":"track","userId":"u","event":"E","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(from_text(&deep), map_reading(&deep));
    assert_eq!(
        from_text(&deep),
        None,
        "nested too deep is not JSON to serde"
    );
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

    let m = parse(json!({"type": "identify", "userId": "u1", "traits": {"timezone": 1}})).unwrap();
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
    let group =
        parse(json!({"type": "group", "userId": "u1", "groupId": "acme", "traits": {"size": 10}}))
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
    let m = parse(json!({"type": "track", "userId": null, "anonymousId": "anon-7", "event": "E"}))
        .unwrap();
    assert_eq!(m.user_id, None);
    assert_eq!(m.user_key(), "anon-7");
}

#[test]
fn empty_user_id_counts_as_absent() {
    let m =
        parse(json!({"type": "track", "userId": "", "anonymousId": "a", "event": "E"})).unwrap();
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

/// Regression (schemathesis, issue 16): `1380.0` is an integer to JSON Schema, so to the
/// OpenAPI description, and was refused as a userId.
#[test]
fn integer_ids_written_with_a_fraction_or_an_exponent_are_the_same_integers() {
    for (written, id) in [
        ("1380.0", "1380"),
        ("-26971.0", "-26971"),
        ("4.2e1", "42"),
        ("-0.0", "0"),
        ("9498003591.0", "9498003591"),
        ("9007199254740992.0", "9007199254740992"),
        // Read exactly (serde_json's float_roundtrip), not one unit off in the last place.
        ("-4439485540699770.0", "-4439485540699770"),
        ("-9.007199254740992e15", "-9007199254740992"),
    ] {
        let text =
            format!(r#"{{"type":"track","userId":{written},"messageId":{written},"event":"E"}}"#);
        let m = parse(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(m.user_id.as_deref(), Some(id), "{written}");
        assert_eq!(m.message_id, id, "{written}");
    }
    // Not integers, or past 2^53, where the digits written are lost: `-9223372036854775809`,
    // one below the smallest id, would read as the smallest.
    for written in [
        "1.5",
        "-0.25",
        "1e20",
        "-9223372036854775809",
        "18446744073709551616",
        "9007199254740994.0",
    ] {
        let text = format!(r#"{{"type":"track","userId":{written},"event":"E"}}"#);
        let err = parse(serde_json::from_str(&text).unwrap()).unwrap_err();
        assert_eq!(err.field, "userId", "{written}");
    }
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
        let m = parse(json!({"type": "track", "userId": "u", "event": "E", "timestamp": given}))
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
        let err = error_of(json!({"type": "track", "userId": "u", "event": "E", "timestamp": bad}));
        assert_eq!(err.field, "timestamp");
        assert!(
            err.message.contains(&describe_value(&bad)),
            "{}",
            err.message
        );
    }
    let err =
        error_of(json!({"type": "track", "userId": "u", "event": "E", "timestamp": 1_772_528_460}));
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

/// Regression (schemathesis, issue 16): a bad `originalTimestamp` beside a good `timestamp`
/// was taken, though the description (and the rule for `timestamp`) refuses it.
#[test]
fn a_bad_original_timestamp_is_refused_even_when_timestamp_is_given() {
    for bad in [json!(""), json!("soon"), json!(5)] {
        let err = error_of(json!({
            "type": "track", "userId": "u", "event": "E",
            "timestamp": "2026-03-03T09:01:00Z", "originalTimestamp": bad
        }));
        assert_eq!(err.field, "originalTimestamp");
    }
    // And a good one beside `timestamp` is still unused.
    let m = parse(json!({
        "type": "track", "userId": "u", "event": "E",
        "timestamp": "2026-03-03T09:01:00Z", "originalTimestamp": "2026-01-01T00:00:00Z"
    }))
    .unwrap();
    assert_eq!(
        m.timestamp,
        Some(parse_instant("2026-03-03T09:01:00Z").unwrap())
    );
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
