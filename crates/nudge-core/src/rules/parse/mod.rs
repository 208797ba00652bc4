//! Turns the YAML files of a rule set into the [`RuleSet`] model, collecting every error.
//!
//! `parse_file` reads a file's top-level sections, each in the file named after it:
//! `settings`, `tracking_plan`, `segments`, `triggers`, `policies`, `experiments`,
//! `messages`, `goals` and `funnels`. What several sections share has a file of its own: `conditions` (conditions
//! and occurrence modifiers), `events` (event references and filters) and `values`
//! (channels, times of day, shares).

mod conditions;
mod events;
mod experiments;
mod funnels;
mod goals;
mod messages;
mod policies;
mod segments;
mod settings;
mod tracking_plan;
mod triggers;
mod values;

pub use conditions::parse_cond;
pub use events::{parse_event_match, parse_filters};
pub use funnels::MAX_FUNNEL_STEPS;

use super::model::{Pos, RuleSet, Sp};
use super::yaml::{Diagnostics, Reader};
use experiments::parse_experiment;
use funnels::parse_funnel;
use goals::parse_goal;
use marked_yaml::LoaderOptions;
use messages::parse_message;
use policies::parse_policies;
use segments::parse_segment;
use settings::parse_settings;
use tracking_plan::parse_plan;
use triggers::parse_trigger;

const TOP_KEYS: &[&str] = &[
    "name",
    "settings",
    "tracking_plan",
    "segments",
    "triggers",
    "policies",
    "experiments",
    "messages",
    "goals",
    "funnels",
];

/// Parses one file's text into `set`, appending errors to `d`.
pub fn parse_file(file: usize, text: &str, set: &mut RuleSet, d: &mut Diagnostics) {
    if text.trim().is_empty() {
        return;
    }
    let opts = LoaderOptions::default().error_on_duplicate_keys(true);
    let root = match marked_yaml::parse_yaml_with_options(file, text, opts) {
        Ok(n) => n,
        Err(e) => {
            d.errors.push(load_error(
                file,
                &e,
                "a rule file must be a mapping of sections",
            ));
            return;
        }
    };
    let r = Reader { file };
    let Some(top) = r.map(&root, "a rule file", d) else {
        return;
    };
    r.check_keys(top, TOP_KEYS, "a rule file", d);
    if let Some(n) = top.get_node("name") {
        set.name = r.string(n, "name", d).map(|s| s.value);
    }
    if let Some(n) = top.get_node("settings") {
        parse_settings(r, n, set, d);
    }
    if let Some(n) = top.get_node("tracking_plan") {
        parse_plan(r, n, set, d);
    }
    if let Some(n) = top.get_node("segments") {
        if let Some(m) = r.map(n, "segments", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(seg) = parse_segment(r, id, v, d) {
                    set.segments.push(seg);
                }
            }
        }
    }
    if let Some(n) = top.get_node("triggers") {
        if let Some(m) = r.map(n, "triggers", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(t) = parse_trigger(r, id, v, d) {
                    set.triggers.push(t);
                }
            }
        }
    }
    if let Some(n) = top.get_node("policies") {
        parse_policies(r, n, set, d);
    }
    if let Some(n) = top.get_node("experiments") {
        if let Some(m) = r.map(n, "experiments", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(e) = parse_experiment(r, id, v, d) {
                    set.experiments.push(e);
                }
            }
        }
    }
    if let Some(n) = top.get_node("goals") {
        if let Some(m) = r.map(n, "goals", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(g) = parse_goal(r, id, v, d) {
                    set.goals.push(g);
                }
            }
        }
    }
    if let Some(n) = top.get_node("funnels") {
        if let Some(m) = r.map(n, "funnels", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(f) = parse_funnel(r, id, v, d) {
                    set.funnels.push(f);
                }
            }
        }
    }
    if let Some(n) = top.get_node("messages") {
        if let Some(m) = r.map(n, "messages", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(msg) = parse_message(r, id, v, d) {
                    set.messages.push(msg);
                }
            }
        }
    }
}

/// Where and why a YAML text could not be loaded; `top` says what the top level must be.
pub fn load_error(file: usize, e: &marked_yaml::LoadError, top: &str) -> (Pos, String) {
    use marked_yaml::LoadError::*;
    let at = |m: &marked_yaml::Marker| Pos {
        file,
        line: m.line(),
        col: m.column(),
    };
    match e {
        TopLevelMustBeMapping(m) => (at(m), top.to_string()),
        TopLevelMustBeSequence(m) => (at(m), "expected a list".into()),
        UnexpectedAnchor(m) => (at(m), "YAML anchors and aliases are not supported".into()),
        MappingKeyMustBeScalar(m) => (at(m), "mapping keys must be plain strings".into()),
        UnexpectedTag(m) => (at(m), "YAML tags are not supported".into()),
        ScanError(m, se) => (at(m), format!("YAML syntax error: {}", se.info())),
        DuplicateKey(inner) => {
            let p = inner.key.span().start().map(at).unwrap_or(Pos {
                file,
                line: 1,
                col: 1,
            });
            let first = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            (
                p,
                format!(
                    "duplicate key `{}` (first defined on line {first})",
                    inner.key.as_str()
                ),
            )
        }
    }
}
