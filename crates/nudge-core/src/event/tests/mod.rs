//! Tests of the Segment message model: parsing, validation and canonical JSON.

use super::*;
use crate::time::parse_instant;
use serde_json::json;

mod canonical;
mod reading;
mod robustness;
mod timestamps;
mod validation;

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
