//! Event times: which field counts, and which values are refused.

use super::*;

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
