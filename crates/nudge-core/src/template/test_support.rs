//! Helpers shared by the template's unit tests.

use liquid::model::Value;
use serde_json::Map;

use super::data::to_liquid;
use super::{Template, TemplateError};

pub(super) fn globals(value: serde_json::Value) -> Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("globals must be an object, got {other}"),
    }
}

pub(super) fn render(source: &str, data: serde_json::Value) -> String {
    Template::compile(source)
        .unwrap_or_else(|e| panic!("compile {source:?}: {e}"))
        .render(&globals(data))
        .unwrap_or_else(|e| panic!("render {source:?}: {e}"))
}

pub(super) fn render_err(source: &str, data: serde_json::Value) -> TemplateError {
    match Template::compile(source)
        .unwrap_or_else(|e| panic!("compile {source:?}: {e}"))
        .render(&globals(data))
    {
        Ok(out) => panic!("expected a render error for {source:?}, got {out:?}"),
        Err(e) => e,
    }
}

pub(super) fn compile_err(source: &str) -> TemplateError {
    match Template::compile(source) {
        Ok(t) => panic!("expected a compile error for {source:?}, got {t:?}"),
        Err(e) => e,
    }
}

pub(super) fn paths(source: &str) -> Vec<Vec<String>> {
    Template::compile(source)
        .unwrap_or_else(|e| panic!("compile {source:?}: {e}"))
        .referenced_paths()
        .to_vec()
}

pub(super) fn p(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Renders with the liquid crate directly, for comparing whitespace handling.
pub(super) fn plain_liquid(source: &str, data: serde_json::Value) -> String {
    let template = liquid::ParserBuilder::with_stdlib()
        .build()
        .unwrap()
        .parse(source)
        .unwrap();
    let object = match to_liquid(&data, 0) {
        Value::Object(object) => object,
        other => panic!("not an object: {other:?}"),
    };
    template.render(&object).unwrap()
}

/// Renders `source` with `data` in the ways a send can meet it: one compiled template rendered
/// again and again, compiled afresh, after a trip through the compiled snapshot, and with the
/// data's objects built in other key orders (each render makes Liquid's hash maps anew).
/// Asserts that every way gives the same result, and returns it.
pub(super) fn render_every_way(
    source: &str,
    data: serde_json::Value,
) -> Result<String, TemplateError> {
    let template = Template::compile(source).unwrap_or_else(|e| panic!("compile {source:?}: {e}"));
    let first = template.render(&globals(data.clone()));
    let saved = serde_json::to_string(&template).expect("a template saves");
    for round in 0..16 {
        let data = globals(rotated(&data, round));
        let fresh = Template::compile(source).expect("compiled once already");
        let loaded: Template = serde_json::from_str(&saved).expect("a saved template loads");
        for (way, result) in [
            ("again", template.render(&data)),
            ("fresh", fresh.render(&data)),
            ("loaded", loaded.render(&data)),
        ] {
            assert_eq!(result, first, "{source:?}: rendered {way}, round {round}");
        }
    }
    first
}

/// `value` with the keys of each object inserted starting `by` places further on.
fn rotated(value: &serde_json::Value, by: usize) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            if !entries.is_empty() {
                let len = entries.len();
                entries.rotate_left(by % len);
            }
            let rotated: Map<String, serde_json::Value> = entries
                .into_iter()
                .map(|(key, value)| (key.clone(), rotated(value, by)))
                .collect();
            serde_json::Value::Object(rotated)
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|item| rotated(item, by)).collect())
        }
        other => other.clone(),
    }
}
