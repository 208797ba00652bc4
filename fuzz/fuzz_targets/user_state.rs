#![no_main]
//! Stored user state: what a corrupted SQLite row or DynamoDB item can hand the decoders. The
//! first byte picks the stored part, the rest is its bytes: the state itself
//! (`UserState::decode`, against each example rule set), the report counter changes kept
//! beside it on DynamoDB (`Deltas::decode`), the outbox (JSON bus events), and the inbox item
//! and delivery log rows (JSON). A damaged part must be an error, never a panic or a huge
//! allocation (the runs set `-malloc_limit_mb`). What decodes must encode and decode back to
//! the same, and a decoded state must go through the engine, as evaluate takes it next.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nudge_core::engine::Engine;
use nudge_core::event::Message;
use nudge_core::insights::Deltas;
use nudge_core::state::UserState;
use nudge_fuzz::clock::NOW;
use nudge_fuzz::rule_sets;
use nudge_service::bus::BusEvent;
use nudge_service::ports::{Delivery, InboxItem};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Messages evaluate could apply next: the profile step of saas-onboarding, an identify.
fn next_messages() -> &'static [Message] {
    static MESSAGES: OnceLock<Vec<Message>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        [
            r#"{"type":"track","userId":"alice","messageId":"fuzz-1","event":"Onboarding Step Viewed","properties":{"step":"profile","step_index":2},"timestamp":"2026-03-03T09:00:00Z"}"#,
            r#"{"type":"identify","userId":"alice","messageId":"fuzz-2","traits":{"email":"alice@example.com","first_name":"Alice","timezone":"Europe/Berlin"}}"#,
        ]
        .iter()
        .map(|text| Message::from_json_text(text).expect("a sample message"))
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&part, bytes)) = data.split_first() else {
        return;
    };
    match part % 5 {
        0 => state(bytes),
        1 => deltas(bytes),
        2 => json_roundtrip::<Vec<BusEvent>>(bytes),
        3 => json_roundtrip::<InboxItem>(bytes),
        _ => json_roundtrip::<Delivery>(bytes),
    }
});

fn state(bytes: &[u8]) {
    for rules in rule_sets::all() {
        let Ok(mut state) = UserState::decode(bytes, rules) else {
            continue;
        };
        let again = UserState::decode(&state.encode(rules), rules);
        assert_eq!(
            again.ok().as_ref(),
            Some(&state),
            "state changed through a save"
        );
        let engine = Engine::new(rules);
        let _ = engine.next_wake(&state);
        let _ = engine.advance(&mut state, "alice", NOW);
        for message in next_messages() {
            let _ = engine.handle(&mut state, "alice", message, NOW);
        }
        let _ = UserState::decode(&state.encode(rules), rules).expect("an evaluated state loads");
    }
}

fn deltas(bytes: &[u8]) {
    let Ok(mut deltas) = Deltas::decode(bytes) else {
        return;
    };
    let again = Deltas::decode(&deltas.encode());
    assert_eq!(
        again.ok().as_ref(),
        Some(&deltas),
        "counts changed through a save"
    );
    // What a store does with the changes of several writes.
    deltas.merge(deltas.clone());
    deltas.compact();
}

fn json_roundtrip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(bytes) else {
        return;
    };
    let written = serde_json::to_vec(&value).expect("a stored record serializes");
    let read = serde_json::from_slice::<T>(&written);
    assert_eq!(read.ok().as_ref(), Some(&value), "changed through a save");
}
