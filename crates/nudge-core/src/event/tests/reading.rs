//! Reading Segment messages: kinds, ids, traits, context, what each type carries.

use super::*;

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
