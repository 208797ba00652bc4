#![no_main]
//! Segment message parsing and tracking-plan validation: a message's text read the three ways
//! nudge reads one (`from_json_text` for `nudge replay`, `from_json` and `from_json_value` for
//! ingest), which must agree, for every endpoint type; an accepted message's canonical JSON
//! (what the bus and the journal carry) must read back equal; and every example tracking plan
//! checks it.

use libfuzzer_sys::fuzz_target;
use nudge_core::event::{Message, MessageKind, TextError};
use nudge_fuzz::rule_sets;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        // ingest reads bytes: invalid UTF-8 is refused by the JSON reader.
        assert!(serde_json::from_slice::<Value>(data).is_err());
        return;
    };
    let by_text = Message::from_json_text(text);
    let value = match serde_json::from_str::<Value>(text) {
        Ok(value) => value,
        Err(_) => {
            assert!(
                matches!(by_text, Err(TextError::Json(_))),
                "text that is not JSON was read: {by_text:?}"
            );
            return;
        }
    };
    let lent = Message::from_json(&value, None);
    let given = Message::from_json_value(value.clone(), None);
    match (&by_text, &lent) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "from_json_text and from_json disagree"),
        (Err(TextError::Message(a)), Err(b)) => assert_eq!(a, b, "different errors"),
        (a, b) => panic!("from_json_text gave {a:?}, from_json {b:?}"),
    }
    assert_eq!(lent, given, "from_json and from_json_value disagree");

    // The single-message endpoints imply a type.
    for kind in MessageKind::ALL {
        let _ = Message::from_json(&value, Some(kind));
    }

    let Ok(message) = lent else {
        return;
    };
    let canonical = message.to_json();
    let back = Message::from_json_value(canonical, None);
    assert_eq!(
        back.as_ref(),
        Ok(&message),
        "the canonical JSON does not read back"
    );
    let written = serde_json::to_string(&message).expect("a message serializes");
    let read: Message = serde_json::from_str(&written).expect("its JSON reads back");
    assert_eq!(read, message, "serialized JSON does not read back equal");
    let _ = message.user_key();
    let _ = message.activity_name();
    let _ = message.timezone();

    for rules in rule_sets::all() {
        let _ = rules.plan.check(&message);
    }
});
