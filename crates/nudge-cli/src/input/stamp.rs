//! The instant a line's message happened, read cheaply: only `timestamp` (else
//! `originalTimestamp`) is deserialized, as `Message::from_json` picks it. Deciding whether a
//! file is in time order, and sorting one that is not, needs nothing else.

use std::borrow::Cow;

use nudge_core::event::Message;
use nudge_core::time::{parse_instant, Millis};
use serde::Deserialize;

#[derive(Deserialize)]
struct Stamps<'a> {
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "originalTimestamp")]
    original: Option<Cow<'a, str>>,
}

/// When the line's message happened; `None` for a line replay will reject (no valid
/// timestamp, not a message). For such a line the answer may also be an instant found deeper
/// in it: replay skips the line wherever it goes.
pub fn stamp(line: &str) -> Option<Millis> {
    if let Some(at) = at_a_glance(line) {
        return at;
    }
    match serde_json::from_str::<Stamps>(line) {
        Ok(s) => parse_instant(s.timestamp.or(s.original)?.as_ref()).ok(),
        // Anything unusual (a non-string timestamp, a repeated key): the full reading decides.
        Err(_) => {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            Message::from_json(&value, None).ok()?.timestamp
        }
    }
}

/// The instant of a plain line without reading it as JSON: one `"timestamp"` in it, at the
/// top level, no `"originalTimestamp"` and no backslash (so no escaped quote can hide or fake
/// a key), ending as an object does. For a message replay takes this is its timestamp; for a
/// line it rejects (malformed further on) the instant only places the line, which replay
/// skips. `None` when the line is not that plain.
fn at_a_glance(line: &str) -> Option<Option<Millis>> {
    const KEY: &str = "\"timestamp\"";
    if line.contains('\\') || line.contains("\"originalTimestamp\"") {
        return None;
    }
    if !line.trim_end().ends_with('}') {
        return None;
    }
    let (before, after) = line.split_once(KEY)?;
    if after.contains(KEY) || depth(before) != 1 {
        return None;
    }
    let value = after.trim_start().strip_prefix(':')?.trim_start();
    let (text, _) = value.strip_prefix('"')?.split_once('"')?;
    Some(parse_instant(text).ok())
}

/// How deep in objects and arrays the end of `text` is (no backslash in it, so every quote
/// opens or closes a string).
fn depth(text: &str) -> i32 {
    let mut in_string = false;
    let mut depth = 0;
    for b in text.bytes() {
        match b {
            b'"' => in_string = !in_string,
            b'{' | b'[' if !in_string => depth += 1,
            b'}' | b']' if !in_string => depth -= 1,
            _ => {}
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::stamp;
    use nudge_core::event::Message;

    /// The full reading's timestamp, for comparison.
    fn full(line: &str) -> Option<i64> {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        Message::from_json(&value, None).ok()?.timestamp
    }

    #[test]
    fn the_cheap_reading_agrees_with_the_full_one() {
        for line in [
            r#"{"type":"track","userId":"u","event":"E","timestamp":"2026-03-02T09:00:00Z"}"#,
            r#"{"type":"track","userId":"u","event":"E","originalTimestamp":"2026-03-02T09:00:00+01:00"}"#,
            r#"{"type":"track","userId":"u","event":"E","timestamp":null,"originalTimestamp":"2026-03-02T09:00:00Z"}"#,
            r#"{"type":"track","userId":"u","event":"E","timestamp":"2026-03-02T09:00:00Z","timestamp":"2026-03-03T09:00:00Z"}"#,
            r#"{"type":"track","userId":"u","event":"E","timestamp":"2026-03-02T09:00:00\u005a"}"#,
            r#"{"type":"track","userId":"u","event":"E","timestamp":12}"#,
            r#"{"type":"track","userId":"u","event":"E"}"#,
            r#"not json"#,
            r#"{"type":"track","userId":"u","event":"timestamp","timestamp":"2026-03-02T09:00:00Z"}"#,
            r#"{"type":"track","userId":"u","event":"E","properties":{"timestamp":"2020-01-01T00:00:00Z"},"timestamp":"2026-03-02T09:00:00Z"}"#,
            r#"{"type":"track","userId":"u","event":"E","properties":{"a":"timestamp"},"originalTimestamp":"2026-03-02T09:00:00Z"}"#,
            r#"{"type":"track","userId":"u","event":"E \"timestamp\": \"2020-01-01T00:00:00Z\"","timestamp":"2026-03-02T09:00:00Z"}"#,
            r#"{"type":"track","userId":"u","event":"E", "timestamp" :  "2026-03-02T09:00:00.250+02:00" }"#,
            r#"{"type":"track","userId":"u","event":"E","timestamp":"yesterday"}"#,
        ] {
            assert_eq!(stamp(line), full(line), "{line}");
        }
    }

    #[test]
    fn a_plain_line_is_read_at_a_glance() {
        let line =
            r#"{"userId":"u","timestamp":"2026-03-02T09:00:00Z","type":"track","event":"E"}"#;
        assert!(super::at_a_glance(line).is_some());
        // Only a top-level key is read at a glance, in a line that ends as an object does.
        let nested_only = r#"{"userId":"u","type":"track","event":"E","properties":{"timestamp":"2026-03-02T09:00:00Z"}}"#;
        assert_eq!(super::at_a_glance(nested_only), None);
        assert_eq!(stamp(nested_only), full(nested_only));
        let braces_in_text =
            r#"{"userId":"u","event":"{[","type":"track","timestamp":"2026-03-02T09:00:00Z"}"#;
        assert!(super::at_a_glance(braces_in_text).is_some());
        let cut = r#"{"userId":"u","type":"track","timestamp":"2026-03-02T09:00:00Z","event":"#;
        assert_eq!(super::at_a_glance(cut), None);
    }
}
