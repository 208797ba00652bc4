//! The journey-test file parser: YAML test files (the format is in the `journey` module docs)
//! read into [`Journey`]s, every name checked against the rule set, every mistake reported
//! with its place. This file reads a test, its events and its segment checkpoints, with the
//! field readers the format shares; `expect.rs` reads the sends a test expects and forbids;
//! `report` items are `measures.rs`'s.

mod expect;

use self::expect::{parse_expect, parse_never, reasons};
use super::measures::parse_measure;
use super::{offset, Checkpoint, Journey, JourneyFile, Loc, Step, DEFAULT_START, DEFAULT_USER};
use crate::rules::model::Pos;
use crate::rules::yaml::{closest, kind, to_json, Diagnostics, Reader};
use crate::rules::{CompiledRules, RuleError};
use crate::time::{parse_instant, Duration, Millis};
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{LoaderOptions, Node};
use serde_json::{Map, Value};
use std::collections::HashSet;

const DEFAULT_HORIZON_MS: i64 = 30 * 86_400_000;
const FILE_KEYS: &[&str] = &["tests"];
const TEST_KEYS: &[&str] = &[
    "name",
    "start",
    "user",
    "traits",
    "events",
    "until",
    "expect",
    "never",
    "exhaustive",
    "segments",
    "report",
];
const EVENT_KEYS: &[&str] = &[
    "at",
    "event",
    "identify",
    "page",
    "screen",
    "user",
    "properties",
    "message_id",
    "context",
];
const CHECKPOINT_KEYS: &[&str] = &["at", "user", "in", "not_in"];

/// Parses every test file against `rules`; all mistakes are returned, sorted by place.
pub fn parse(files: &[JourneyFile], rules: &CompiledRules) -> Result<Vec<Journey>, Vec<RuleError>> {
    let mut d = Diagnostics::default();
    let mut journeys = Vec::new();
    let refs = Refs::new(rules);
    for (i, f) in files.iter().enumerate() {
        parse_file(i, f, &refs, &mut journeys, &mut d);
    }
    if d.errors.is_empty() {
        return Ok(journeys);
    }
    Err(d.into_rule_errors(|i| files.get(i).map(|f| f.name.clone()).unwrap_or_default()))
}

/// The names tests may refer to.
struct Refs<'r> {
    rules: &'r CompiledRules,
    triggers: Vec<String>,
    segments: Vec<String>,
    messages: Vec<String>,
    experiments: Vec<String>,
    variants: Vec<String>,
    reasons: Vec<&'static str>,
}

impl<'r> Refs<'r> {
    fn new(rules: &'r CompiledRules) -> Self {
        let mut variants = vec![
            "default".to_string(),
            crate::rules::model::HOLDOUT.to_string(),
        ];
        for m in &rules.messages {
            variants.extend(m.variants.iter().map(|v| v.name.to_string()));
        }
        for e in &rules.experiments {
            variants.extend(e.variants.iter().map(|v| v.name.to_string()));
        }
        let mut seen = HashSet::new();
        variants.retain(|v| seen.insert(v.clone()));
        Refs {
            rules,
            triggers: rules.triggers.iter().map(|t| t.id.to_string()).collect(),
            segments: rules.segments.iter().map(|s| s.id.clone()).collect(),
            messages: rules.messages.iter().map(|m| m.id.to_string()).collect(),
            experiments: rules.experiments.iter().map(|e| e.id.to_string()).collect(),
            variants,
            reasons: reasons(),
        }
    }
}

/// Checks that `value` is one of `known`, with a did-you-mean hint.
pub(super) fn check_ref(
    value: &str,
    known: &[impl AsRef<str>],
    what: &str,
    pos: Pos,
    d: &mut Diagnostics,
) -> bool {
    let names: Vec<&str> = known.iter().map(|k| k.as_ref()).collect();
    if names.contains(&value) {
        return true;
    }
    let hint = match closest(value, &names) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None if names.is_empty() => " (the rule set defines none)".to_string(),
        None if names.len() <= 12 => format!(" (expected one of: {})", names.join(", ")),
        None => String::new(),
    };
    d.error(pos, format!("unknown {what} `{value}`{hint}"));
    false
}

/// Where a node starts. A block mapping's own span starts at its first key's colon, so a
/// mapping is placed at its first key when that comes earlier.
pub(super) fn start_of(r: Reader, node: &Node) -> Pos {
    match node {
        Node::Mapping(m) => r.map_pos(m),
        _ => r.pos(node),
    }
}

fn is_null(node: &Node) -> bool {
    matches!(node, Node::Scalar(s) if s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
}

/// The items of an optional list (an empty value is an empty list).
fn items<'a>(r: Reader, node: Option<&'a Node>, what: &str, d: &mut Diagnostics) -> Vec<&'a Node> {
    match node {
        None => vec![],
        Some(n) if is_null(n) => vec![],
        Some(n) => r.list(n, what, d).unwrap_or_default(),
    }
}

fn parse_file(
    i: usize,
    f: &JourneyFile,
    refs: &Refs<'_>,
    out: &mut Vec<Journey>,
    d: &mut Diagnostics,
) {
    if f.text.trim().is_empty() {
        return;
    }
    let opts = LoaderOptions::default().error_on_duplicate_keys(true);
    let root = match marked_yaml::parse_yaml_with_options(i, &f.text, opts) {
        Ok(n) => n,
        Err(e) => {
            d.errors.push(crate::rules::parse::load_error(
                i,
                &e,
                "a journey test file must be a mapping with `tests:`",
            ));
            return;
        }
    };
    let r = Reader { file: i };
    let Some(top) = r.map(&root, "a journey test file", d) else {
        return;
    };
    r.check_keys(top, FILE_KEYS, "a journey test file", d);
    let Some(tests) = r.required(top, "tests", "a journey test file", d) else {
        return;
    };
    let mut names: Vec<(String, usize)> = Vec::new();
    for node in items(r, Some(tests), "tests", d) {
        let Some(j) = parse_test(r, &f.name, node, refs, d) else {
            continue;
        };
        if let Some((_, line)) = names.iter().find(|(n, _)| *n == j.name) {
            d.error(
                Pos {
                    file: i,
                    line: j.loc.line,
                    col: j.loc.col,
                },
                format!("duplicate test name `{}` (first on line {line})", j.name),
            );
            continue;
        }
        names.push((j.name.clone(), j.loc.line));
        out.push(j);
    }
}

/// An instant: `+DURATION` after `start`, or RFC 3339.
fn instant(
    r: Reader,
    node: &Node,
    start: Millis,
    what: &str,
    d: &mut Diagnostics,
) -> Option<Millis> {
    let Node::Scalar(s) = node else {
        d.error(
            start_of(r, node),
            format!(
                "{what} must be +DURATION or an RFC 3339 time, found {}",
                kind(node)
            ),
        );
        return None;
    };
    let text = s.as_str().trim();
    let at = if let Some(rest) = text.strip_prefix('+') {
        match Duration::parse(rest) {
            Ok(dur) => start.checked_add(dur.0),
            Err(e) => {
                d.error(r.pos(node), format!("{what}: {e}"));
                return None;
            }
        }
    } else {
        match parse_instant(text) {
            Ok(at) => Some(at),
            Err(_) => {
                d.error(
                    r.pos(node),
                    format!("{what}: `{text}` is neither +DURATION (after start, e.g. `+24h`) nor an RFC 3339 time"),
                );
                return None;
            }
        }
    };
    match at.filter(|at| jiff::Timestamp::from_millisecond(*at).is_ok()) {
        Some(at) => Some(at),
        None => {
            d.error(r.pos(node), format!("{what}: `{text}` is out of range"));
            None
        }
    }
}

/// A duration that may be zero.
fn span(r: Reader, node: &Node, what: &str, d: &mut Diagnostics) -> Option<i64> {
    let Node::Scalar(s) = node else {
        d.error(
            start_of(r, node),
            format!("{what} must be a duration like `1s`, found {}", kind(node)),
        );
        return None;
    };
    match Duration::parse(s.as_str()) {
        Ok(v) => Some(v.0),
        Err(e) => {
            d.error(r.pos(node), format!("{what}: {e}"));
            None
        }
    }
}

/// A mapping turned into a JSON object.
fn object(r: Reader, node: &Node, what: &str, d: &mut Diagnostics) -> Option<Map<String, Value>> {
    if is_null(node) {
        return Some(Map::new());
    }
    r.map(node, what, d)?;
    match to_json(node) {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A string value and where it is written.
pub(super) fn string_at(
    r: Reader,
    m: &MarkedMappingNode,
    key: &str,
    d: &mut Diagnostics,
) -> Option<(String, Pos)> {
    m.get_node(key)
        .and_then(|n| r.string(n, key, d))
        .map(|s| (s.value, s.pos))
}

fn string(r: Reader, m: &MarkedMappingNode, key: &str, d: &mut Diagnostics) -> Option<String> {
    m.get_node(key)
        .and_then(|n| r.string(n, key, d))
        .map(|s| s.value)
}

/// A string that must name something the rule set defines.
fn reference(
    r: Reader,
    m: &MarkedMappingNode,
    key: &str,
    known: &[impl AsRef<str>],
    what: &str,
    d: &mut Diagnostics,
) -> Option<String> {
    let n = m.get_node(key)?;
    let s = r.string(n, key, d)?;
    check_ref(&s.value, known, what, s.pos, d).then_some(s.value)
}

fn parse_test(
    r: Reader,
    file: &str,
    node: &Node,
    refs: &Refs<'_>,
    d: &mut Diagnostics,
) -> Option<Journey> {
    let m = r.map(node, "a test", d)?;
    r.check_keys(m, TEST_KEYS, "a test", d);
    let loc = Loc::from(start_of(r, node));
    let name = r
        .required(m, "name", "a test", d)
        .and_then(|n| r.string(n, "name", d))
        .map(|s| s.value);
    let default_start = parse_instant(DEFAULT_START).unwrap_or_default();
    let start = match m.get_node("start") {
        Some(n) if matches!(n, Node::Scalar(s) if s.as_str().trim().starts_with('+')) => {
            d.error(
                r.pos(n),
                "start must be an RFC 3339 time, e.g. 2026-03-02T09:00:00Z",
            );
            default_start
        }
        Some(n) => instant(r, n, default_start, "start", d).unwrap_or(default_start),
        None => default_start,
    };
    let user = string(r, m, "user", d).unwrap_or_else(|| DEFAULT_USER.to_string());
    let test_name = name.clone().unwrap_or_default();

    let mut steps = Vec::new();
    if let Some(n) = m.get_node("traits") {
        if let Some(traits) = object(r, n, "traits", d) {
            let json = message_json(
                "identify",
                &user,
                None,
                ("traits", traits),
                None,
                start,
                &format!("{}#traits", id_prefix(&test_name)),
            );
            steps.push(Step {
                index: None,
                loc: Loc::from(r.pos(n)),
                at: start,
                json,
            });
        }
    }
    for (index, n) in items(r, m.get_node("events"), "events", d)
        .into_iter()
        .enumerate()
    {
        if let Some(step) = parse_event(r, n, index, start, &user, &test_name, d) {
            steps.push(step);
        }
    }
    // Time order; equal times keep the written order (sort_by_key is stable).
    steps.sort_by_key(|s| s.at);
    let last = steps.last().map(|s| s.at).unwrap_or(start);
    let until = match m.get_node("until") {
        Some(n) => {
            let u = instant(r, n, start, "until", d);
            if let Some(u) = u.filter(|u| *u < last) {
                d.error(
                    r.pos(n),
                    format!(
                        "until ({}) is before the last event ({})",
                        offset(u - start),
                        offset(last - start)
                    ),
                );
            }
            u.unwrap_or(last)
        }
        None => last.saturating_add(DEFAULT_HORIZON_MS),
    };

    let expect = items(r, m.get_node("expect"), "expect", d)
        .into_iter()
        .filter_map(|n| parse_expect(r, n, start, &user, refs, d))
        .collect();
    let never = items(r, m.get_node("never"), "never", d)
        .into_iter()
        .filter_map(|n| parse_never(r, n, start, refs, d))
        .collect();
    let exhaustive = m
        .get_node("exhaustive")
        .and_then(|n| r.boolean(n, "exhaustive", d))
        .unwrap_or(false);
    let mut checkpoints: Vec<Checkpoint> = items(r, m.get_node("segments"), "segments", d)
        .into_iter()
        .filter_map(|n| parse_checkpoint(r, n, start, &user, until, refs, d))
        .collect();
    checkpoints.sort_by_key(|c| c.at);
    let measures = items(r, m.get_node("report"), "report", d)
        .into_iter()
        .filter_map(|n| parse_measure(r, n, refs.rules, d))
        .collect();

    Some(Journey {
        file: file.to_string(),
        name: name?,
        loc,
        start,
        user,
        until,
        steps,
        expect,
        never,
        exhaustive,
        checkpoints,
        measures,
    })
}

/// The test name as a messageId prefix, short enough for Segment's id limit.
fn id_prefix(name: &str) -> String {
    name.chars().take(200).collect()
}

/// Segment JSON for one call.
fn message_json(
    kind: &str,
    user: &str,
    name: Option<(&str, String)>,
    body: (&str, Map<String, Value>),
    context: Option<Map<String, Value>>,
    at: Millis,
    message_id: &str,
) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String(kind.into()));
    m.insert("userId".into(), Value::String(user.into()));
    if let Some((key, value)) = name {
        m.insert(key.into(), Value::String(value));
    }
    m.insert(body.0.into(), Value::Object(body.1));
    if let Some(c) = context {
        m.insert("context".into(), Value::Object(c));
    }
    if let Ok(ts) = jiff::Timestamp::from_millisecond(at) {
        m.insert("timestamp".into(), Value::String(ts.to_string()));
    }
    m.insert("messageId".into(), Value::String(message_id.into()));
    Value::Object(m)
}

fn parse_event(
    r: Reader,
    node: &Node,
    index: usize,
    start: Millis,
    default_user: &str,
    test_name: &str,
    d: &mut Diagnostics,
) -> Option<Step> {
    let what = format!("events[{index}]");
    let m = r.map(node, &what, d)?;
    r.check_keys(m, EVENT_KEYS, "an event", d);
    let at = r
        .required(m, "at", &what, d)
        .and_then(|n| instant(r, n, start, "at", d));
    let calls: Vec<&str> = ["event", "identify", "page", "screen"]
        .into_iter()
        .filter(|k| m.get_node(k).is_some())
        .collect();
    let call = match calls.as_slice() {
        [one] => *one,
        [] => {
            d.error(
                start_of(r, node),
                format!("{what} needs one of `event`, `identify`, `page`, `screen`"),
            );
            return None;
        }
        many => {
            d.error(
                start_of(r, node),
                format!("{what} has {}: write one call per event", many.join(", ")),
            );
            return None;
        }
    };
    let props = match m.get_node("properties") {
        Some(n) if call == "identify" => {
            d.error(
                r.pos(n),
                "an identify has traits, not properties: write `identify: {trait: value}`",
            );
            None
        }
        Some(n) => object(r, n, "properties", d),
        None => Some(Map::new()),
    };
    let context = match m.get_node("context") {
        Some(n) => Some(object(r, n, "context", d)?),
        None => None,
    };
    let user = string(r, m, "user", d).unwrap_or_else(|| default_user.to_string());
    let message_id = match m.get_node("message_id") {
        Some(n) => r.string(n, "message_id", d)?.value,
        None => format!("{}#{index}", id_prefix(test_name)),
    };
    let call_node = m.get_node(call)?;
    let json_for =
        |kind: &str, name: Option<(&str, String)>, body: (&str, Map<String, Value>), at: Millis| {
            message_json(kind, &user, name, body, context.clone(), at, &message_id)
        };
    let json = match call {
        "identify" => {
            let traits = object(r, call_node, "identify", d)?;
            json_for("identify", None, ("traits", traits), at?)
        }
        "event" => {
            let name = r.string(call_node, "event", d)?.value;
            json_for("track", Some(("event", name)), ("properties", props?), at?)
        }
        kind => {
            let name = r.string(call_node, kind, d)?.value;
            json_for(kind, Some(("name", name)), ("properties", props?), at?)
        }
    };
    Some(Step {
        index: Some(index),
        loc: Loc::from(start_of(r, node)),
        at: at?,
        json,
    })
}

fn parse_checkpoint(
    r: Reader,
    node: &Node,
    start: Millis,
    user: &str,
    until: Millis,
    refs: &Refs<'_>,
    d: &mut Diagnostics,
) -> Option<Checkpoint> {
    let m = r.map(node, "a segments checkpoint", d)?;
    r.check_keys(m, CHECKPOINT_KEYS, "a segments checkpoint", d);
    let at_node = r.required(m, "at", "a segments checkpoint", d);
    let at = at_node.and_then(|n| instant(r, n, start, "at", d));
    if let (Some(at), Some(n)) = (at, at_node) {
        if at > until {
            d.error(
                r.pos(n),
                format!(
                    "the checkpoint ({}) is after `until` ({})",
                    offset(at - start),
                    offset(until - start)
                ),
            );
        }
    }
    let user = string(r, m, "user", d).unwrap_or_else(|| user.to_string());
    let mut ok = true;
    let mut ids = |key: &str, d: &mut Diagnostics| -> Vec<String> {
        let Some(n) = m.get_node(key) else {
            return vec![];
        };
        if is_null(n) {
            return vec![];
        }
        r.strings(n, key, d)
            .into_iter()
            .filter_map(|s| {
                let known = check_ref(&s.value, &refs.segments, "segment", s.pos, d);
                ok &= known;
                known.then_some(s.value)
            })
            .collect()
    };
    let member_of = ids("in", d);
    let not_member_of = ids("not_in", d);
    if m.get_node("in").is_none() && m.get_node("not_in").is_none() {
        d.error(
            start_of(r, node),
            "a segments checkpoint needs `in` or `not_in`",
        );
        return None;
    }
    if !ok {
        return None;
    }
    Some(Checkpoint {
        loc: Loc::from(start_of(r, node)),
        at: at?,
        user,
        member_of,
        not_member_of,
    })
}

#[cfg(test)]
mod tests;
