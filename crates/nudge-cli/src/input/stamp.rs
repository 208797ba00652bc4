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
/// timestamp, not a message).
pub fn stamp(line: &str) -> Option<Millis> {
    match serde_json::from_str::<Stamps>(line) {
        Ok(s) => parse_instant(s.timestamp.or(s.original)?.as_ref()).ok(),
        // Anything unusual (a non-string timestamp, a repeated key): the full reading decides.
        Err(_) => {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            Message::from_json(&value, None).ok()?.timestamp
        }
    }
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
        ] {
            assert_eq!(stamp(line), full(line), "{line}");
        }
    }
}
