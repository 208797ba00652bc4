#![no_main]
//! Liquid templates: parsed (`Template::compile`, as the rule compiler does for every message)
//! and rendered with arbitrary data (the event's properties and the user's traits come from
//! outside). The input is the template text, then optionally a NUL byte and a JSON object of
//! the render's data. A template must also render the same after a trip through the compiled
//! snapshot (which keeps it unparsed until its first render). Every guard's limit holds.

use libfuzzer_sys::fuzz_target;
use nudge_core::template::{html_to_text, Template, MAX_OUTPUT_BYTES};
use nudge_fuzz::panics;
use serde_json::{json, Map, Value};

/// The data of a send, as the sample events give it, when the input brings none.
fn sample_data() -> Map<String, Value> {
    let data = json!({
        "traits": {"first_name": "Alice", "email": "alice@example.com", "plan": "team", "seats": 5},
        "properties": {"step": "profile", "step_index": 2, "items": [
            {"name": "Tea", "price": 3.5, "tags": ["hot", "green"]},
            {"name": "Cake", "price": 4, "tags": []}
        ]},
        "user_id": "alice",
        "event": "Onboarding Step Viewed"
    });
    match data {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, data_text) = text.split_once('\0').unwrap_or((text, ""));
    let globals = match serde_json::from_str::<Value>(data_text) {
        Ok(Value::Object(map)) => map,
        _ => sample_data(),
    };
    panics::contained(|| {
        let _ = html_to_text(source);
        let Ok(template) = Template::compile(source) else {
            return;
        };
        let _ = template.referenced_paths();
        let rendered = template.render(&globals);
        if let Ok(out) = &rendered {
            assert!(out.len() <= MAX_OUTPUT_BYTES, "output over the cap");
            let _ = html_to_text(out);
        }
        let saved = serde_json::to_string(&template).expect("a template saves");
        let loaded: Template = serde_json::from_str(&saved).expect("a saved template loads");
        assert_eq!(
            loaded.render(&globals),
            rendered,
            "renders differently after the compiled snapshot"
        );
    });
});
