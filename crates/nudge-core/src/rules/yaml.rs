//! Reading marked YAML nodes with precise positions: every error names its line and column.

use super::model::{Pos, Sp};
use crate::time::Duration;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{Node, Span};
use serde_json::Value;

/// Errors collected while reading one rule set; reading goes on after an error so that
/// `nudge validate` reports every mistake at once.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<(Pos, String)>,
}

impl Diagnostics {
    /// The errors as `file:line:col` records, sorted by place, repeats removed.
    pub fn into_rule_errors(self, file_name: impl Fn(usize) -> String) -> Vec<super::RuleError> {
        let mut errors: Vec<super::RuleError> = self
            .errors
            .into_iter()
            .map(|(pos, message)| super::RuleError {
                file: file_name(pos.file),
                line: pos.line,
                col: pos.col,
                message,
            })
            .collect();
        errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        errors.dedup();
        errors
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push((pos, message.into()));
    }
}

/// The position where a span starts.
pub fn span_pos(file: usize, span: &Span) -> Pos {
    match span.start() {
        Some(m) => Pos {
            file,
            line: m.line(),
            col: m.column(),
        },
        None => Pos {
            file,
            line: 1,
            col: 1,
        },
    }
}

/// The position of a node.
pub fn pos(file: usize, node: &Node) -> Pos {
    span_pos(file, node.span())
}

/// What kind of YAML node this is, for messages.
pub fn kind(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a scalar",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// A reader bound to one file.
#[derive(Clone, Copy)]
pub struct Reader {
    pub file: usize,
}

impl Reader {
    pub fn pos(&self, node: &Node) -> Pos {
        pos(self.file, node)
    }

    pub fn key_pos(&self, key: &MarkedScalarNode) -> Pos {
        span_pos(self.file, key.span())
    }

    /// The node as a mapping, or an error naming what was expected.
    pub fn map<'a>(
        &self,
        node: &'a Node,
        what: &str,
        d: &mut Diagnostics,
    ) -> Option<&'a MarkedMappingNode> {
        match node {
            Node::Mapping(m) => Some(m),
            other => {
                d.error(
                    self.pos(other),
                    format!("{what} must be a mapping, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// The node as a list; a single item stands for a list of one when `allow_single`.
    pub fn list<'a>(
        &self,
        node: &'a Node,
        what: &str,
        d: &mut Diagnostics,
    ) -> Option<Vec<&'a Node>> {
        match node {
            Node::Sequence(s) => Some(s.iter().collect()),
            other => {
                d.error(
                    self.pos(other),
                    format!("{what} must be a list, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// The node as a list, or a single item standing for a list of one.
    pub fn one_or_many<'a>(&self, node: &'a Node) -> Vec<&'a Node> {
        match node {
            Node::Sequence(s) => s.iter().collect(),
            other => vec![other],
        }
    }

    /// Reports keys that are not in `allowed`.
    pub fn check_keys(
        &self,
        m: &MarkedMappingNode,
        allowed: &[&str],
        what: &str,
        d: &mut Diagnostics,
    ) {
        for key in m.keys() {
            if !allowed.contains(&key.as_str()) {
                let hint = closest(key.as_str(), allowed)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| format!(" (expected one of: {})", allowed.join(", ")));
                d.error(
                    self.key_pos(key),
                    format!("unknown key `{}` in {what}{hint}", key.as_str()),
                );
            }
        }
    }

    /// Where a mapping starts. marked-yaml starts a block mapping's span at the colon after
    /// its first key; the first key is where a reader looks.
    pub fn map_pos(&self, m: &MarkedMappingNode) -> Pos {
        let own = span_pos(self.file, m.span());
        match m.keys().next().map(|k| self.key_pos(k)) {
            Some(k) if (k.line, k.col) < (own.line, own.col) => k,
            _ => own,
        }
    }

    /// A required key, reported at the mapping's start when missing.
    pub fn required<'a>(
        &self,
        m: &'a MarkedMappingNode,
        key: &str,
        what: &str,
        d: &mut Diagnostics,
    ) -> Option<&'a Node> {
        let found = m.get_node(key);
        if found.is_none() {
            d.error(self.map_pos(m), format!("{what} needs `{key}`"));
        }
        found
    }

    /// A non-empty string scalar.
    pub fn string(&self, node: &Node, what: &str, d: &mut Diagnostics) -> Option<Sp<String>> {
        match node {
            Node::Scalar(s) if !s.as_str().trim().is_empty() => {
                Some(Sp::new(s.as_str().to_string(), self.pos(node)))
            }
            Node::Scalar(_) => {
                d.error(self.pos(node), format!("{what} must not be empty"));
                None
            }
            other => {
                d.error(
                    self.pos(other),
                    format!("{what} must be a string, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// A string scalar that may be empty (templates).
    pub fn text(&self, node: &Node, what: &str, d: &mut Diagnostics) -> Option<Sp<String>> {
        match node {
            Node::Scalar(s) => Some(Sp::new(s.as_str().to_string(), self.pos(node))),
            other => {
                d.error(
                    self.pos(other),
                    format!("{what} must be text, found {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn duration(&self, node: &Node, what: &str, d: &mut Diagnostics) -> Option<Sp<Duration>> {
        let s = match node {
            Node::Scalar(s) => s.as_str(),
            other => {
                d.error(
                    self.pos(other),
                    format!(
                        "{what} must be a duration like `30m`, found {}",
                        kind(other)
                    ),
                );
                return None;
            }
        };
        match Duration::parse(s) {
            Ok(v) if v.0 > 0 => Some(Sp::new(v, self.pos(node))),
            Ok(_) => {
                d.error(self.pos(node), format!("{what} must be longer than zero"));
                None
            }
            Err(e) => {
                d.error(self.pos(node), format!("{what}: {e}"));
                None
            }
        }
    }

    pub fn number(&self, node: &Node, what: &str, d: &mut Diagnostics) -> Option<f64> {
        if let Node::Scalar(s) = node {
            if let Ok(v) = s.as_str().trim().parse::<f64>() {
                if v.is_finite() {
                    return Some(v);
                }
            }
        }
        d.error(
            self.pos(node),
            format!("{what} must be a number, found {}", describe(node)),
        );
        None
    }

    pub fn whole(&self, node: &Node, what: &str, d: &mut Diagnostics) -> Option<u64> {
        if let Node::Scalar(s) = node {
            if let Ok(v) = s.as_str().trim().parse::<u64>() {
                return Some(v);
            }
        }
        d.error(
            self.pos(node),
            format!("{what} must be a whole number, found {}", describe(node)),
        );
        None
    }

    pub fn boolean(&self, node: &Node, what: &str, d: &mut Diagnostics) -> Option<bool> {
        if let Node::Scalar(s) = node {
            match s.as_str().to_ascii_lowercase().as_str() {
                "true" | "yes" => return Some(true),
                "false" | "no" => return Some(false),
                _ => {}
            }
        }
        d.error(
            self.pos(node),
            format!("{what} must be true or false, found {}", describe(node)),
        );
        None
    }

    /// A list of non-empty strings; a single string counts as a list of one.
    pub fn strings(&self, node: &Node, what: &str, d: &mut Diagnostics) -> Vec<Sp<String>> {
        self.one_or_many(node)
            .into_iter()
            .filter_map(|n| self.string(n, what, d))
            .collect()
    }
}

/// A scalar's JSON value as YAML would type it: quoted text stays a string.
pub fn scalar_value(s: &MarkedScalarNode) -> Value {
    let t = s.as_str();
    if !s.may_coerce() {
        return Value::String(t.to_string());
    }
    match t {
        "null" | "~" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if t.contains(['.', 'e', 'E'])
        && t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '-')
    {
        if let Ok(f) = t.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return Value::Number(n);
            }
        }
    }
    Value::String(t.to_string())
}

/// Converts any node into JSON, scalars typed as YAML would.
pub fn to_json(node: &Node) -> Value {
    match node {
        Node::Scalar(s) => scalar_value(s),
        Node::Sequence(seq) => Value::Array(seq_to_json(seq)),
        Node::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
                .collect(),
        ),
    }
}

fn seq_to_json(seq: &MarkedSequenceNode) -> Vec<Value> {
    seq.iter().map(to_json).collect()
}

fn describe(node: &Node) -> String {
    match node {
        Node::Scalar(s) => format!("`{}`", s.as_str()),
        other => kind(other).to_string(),
    }
}

/// The allowed word nearest to a misspelling, if any is close.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(dist, c)| *dist <= 2.max(c.len() / 4))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, c)| c)
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
