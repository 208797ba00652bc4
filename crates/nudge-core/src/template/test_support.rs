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
