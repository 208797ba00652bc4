//! Where conditions are evaluated: whether an event matches an event reference (`on`,
//! `cancel_on`, `where` filters), and what a condition reads from a user's state (counts,
//! times since, sessions, idleness, traits, segment membership): [`Ctx::holds`]. Also when a
//! condition can next change by time alone ([`Ctx::next_change`]), for segment wake-ups.

use crate::rules::compiled::{CCond, CFilter, CompiledRules, Matcher, NameMatch, SlotKind};
use crate::rules::model::{Cmp, FilterOp};
use crate::state::{Scalar, SlotValue, UserState};
use crate::time::Millis;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The properties a condition reads as "the event's": a live event's, or those captured with
/// a pending wait.
#[derive(Clone, Copy)]
pub enum Props<'a> {
    None,
    Event(&'a Map<String, Value>),
    Captured(&'a [(String, Scalar)]),
}

impl<'a> Props<'a> {
    /// The value at a dotted path.
    pub fn get(&self, path: &[String]) -> Option<Cow<'a, Value>> {
        match self {
            Props::None => None,
            Props::Event(m) => lookup(m, path).map(Cow::Borrowed),
            Props::Captured(items) => items
                .iter()
                .find(|(k, _)| is_dotted(k, path))
                .map(|(_, v)| Cow::Owned(v.to_json())),
        }
    }
}

/// The value at a dotted path inside a JSON object.
pub fn lookup<'a>(m: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = m.get(first)?;
    for p in rest {
        v = match v {
            Value::Object(o) => o.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether a filter holds for a value (None: absent).
pub fn filter_holds(op: &FilterOp, v: Option<&Value>) -> bool {
    let v = v.filter(|v| !v.is_null());
    match op {
        FilterOp::Eq(x) => v.is_some_and(|v| json_eq(v, x)),
        FilterOp::Ne(x) => !v.is_some_and(|v| json_eq(v, x)),
        FilterOp::Gt(x) => v.and_then(Value::as_f64).is_some_and(|n| n > *x),
        FilterOp::Gte(x) => v.and_then(Value::as_f64).is_some_and(|n| n >= *x),
        FilterOp::Lt(x) => v.and_then(Value::as_f64).is_some_and(|n| n < *x),
        FilterOp::Lte(x) => v.and_then(Value::as_f64).is_some_and(|n| n <= *x),
        FilterOp::In(xs) => v.is_some_and(|v| xs.iter().any(|x| json_eq(v, x))),
        FilterOp::NotIn(xs) => !v.is_some_and(|v| xs.iter().any(|x| json_eq(v, x))),
        FilterOp::Exists(want) => v.is_some() == *want,
        FilterOp::Contains(s) => match v {
            Some(Value::String(t)) => t.contains(s.as_str()),
            Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(s.as_str())),
            _ => false,
        },
    }
}

/// [`filter_holds`] for a value kept in state, without building JSON.
pub fn scalar_holds(op: &FilterOp, v: Option<&Scalar>) -> bool {
    let v = v.filter(|v| !matches!(v, Scalar::Null));
    let eq = |x: &Value| v.is_some_and(|v| scalar_eq(v, x));
    let num = v.and_then(|v| match v {
        Scalar::Int(i) => Some(*i as f64),
        Scalar::Float(f) => Some(*f),
        _ => None,
    });
    match op {
        FilterOp::Eq(x) => eq(x),
        FilterOp::Ne(x) => !eq(x),
        FilterOp::Gt(x) => num.is_some_and(|n| n > *x),
        FilterOp::Gte(x) => num.is_some_and(|n| n >= *x),
        FilterOp::Lt(x) => num.is_some_and(|n| n < *x),
        FilterOp::Lte(x) => num.is_some_and(|n| n <= *x),
        FilterOp::In(xs) => xs.iter().any(eq),
        FilterOp::NotIn(xs) => !xs.iter().any(eq),
        FilterOp::Exists(want) => v.is_some() == *want,
        // Arrays are kept as JSON text; read them back to look inside.
        FilterOp::Contains(_) => filter_holds(op, v.map(Scalar::to_json).as_ref()),
    }
}

fn scalar_eq(s: &Scalar, x: &Value) -> bool {
    match (s, x) {
        (Scalar::Str(a), Value::String(b)) => a == b,
        (Scalar::Bool(a), Value::Bool(b)) => a == b,
        (Scalar::Int(a), Value::Number(n)) => n.as_f64() == Some(*a as f64),
        (Scalar::Float(a), Value::Number(n)) => n.as_f64() == Some(*a),
        _ => false,
    }
}

/// Whether `key` is the dotted form of `path` (no allocation).
pub fn is_dotted(key: &str, path: &[String]) -> bool {
    let mut rest = key;
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix('.') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match rest.strip_prefix(part.as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether an activity matches, its name already resolved to an event id.
pub fn matches_id(m: &Matcher, event_id: Option<u32>, props: &Map<String, Value>) -> bool {
    let name_ok = match m.name {
        NameMatch::Any => true,
        NameMatch::Name(_) => m.event_id.is_some() && m.event_id == event_id,
    };
    name_ok
        && m.filters
            .iter()
            .all(|f| filter_holds(&f.op, lookup(props, &f.path)))
}

/// Whether an activity (its rule-facing name and properties) matches.
pub fn matches(m: &Matcher, name: &str, props: &Map<String, Value>) -> bool {
    let name_ok = match &m.name {
        NameMatch::Any => true,
        NameMatch::Name(n) => n == name,
    };
    name_ok
        && m.filters
            .iter()
            .all(|f| filter_holds(&f.op, lookup(props, &f.path)))
}

/// A 32-bit key for a property value (per-key counts, once per value, `same`).
pub fn value_key(v: &Value) -> u32 {
    // Texts are cut as state keeps them, so a key from a live event equals the key of the
    // same value captured with a wait (`scalar_key`).
    let text = match v {
        Value::String(s) => Cow::Borrowed(crate::state::truncated(s)),
        Value::Number(n) => Cow::Owned(n.as_f64().map(|f| f.to_string()).unwrap_or_default()),
        other => Cow::Owned(other.to_string()),
    };
    ((xxhash_rust::xxh3::xxh3_64(text.as_bytes()) >> 32) as u32) & crate::state::KEY_MASK
}

/// The same key as [`value_key`] for a value kept in state.
pub fn scalar_key(v: &Scalar) -> u32 {
    let hash = |text: &str| {
        ((xxhash_rust::xxh3::xxh3_64(text.as_bytes()) >> 32) as u32) & crate::state::KEY_MASK
    };
    match v {
        Scalar::Str(s) => hash(s),
        Scalar::Int(i) => hash(&(*i as f64).to_string()),
        Scalar::Float(f) => hash(&f.to_string()),
        Scalar::Bool(b) => hash(if *b { "true" } else { "false" }),
        Scalar::Null => hash("null"),
    }
}

/// Everything a condition reads.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub rules: &'a CompiledRules,
    pub state: &'a UserState,
    pub now: Millis,
    pub props: Props<'a>,
}

/// A reading of one condition atom, for `explain`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Number(f64),
    Millis(Option<i64>),
    Bool(bool),
}

impl Ctx<'_> {
    /// The count a slot holds at the clock.
    pub fn count(&self, slot: usize, per: Option<&[String]>) -> f64 {
        let spec = &self.rules.slots[slot];
        match (&spec.kind, &self.state.slots[slot]) {
            (_, SlotValue::Count(n)) => f64::from(*n),
            (_, SlotValue::SessionCount { session, count }) if *session == self.state.sessions => {
                f64::from(*count)
            }
            (_, SlotValue::SessionCount { .. }) => 0.0,
            (SlotKind::Window { within, .. }, SlotValue::Times(t)) => {
                // `in_session`: only this session's part of the window.
                let session_start = if spec.in_session {
                    self.state.session_start.unwrap_or(Millis::MIN)
                } else {
                    Millis::MIN
                };
                let from = (self.now - within.0).max(session_start);
                t.iter().filter(|t| **t >= from && **t <= self.now).count() as f64
            }
            (SlotKind::PerKey { .. }, SlotValue::Keys(keys)) => {
                let Some(path) = per else { return 0.0 };
                let Some(v) = self.props.get(path) else {
                    return 0.0;
                };
                let key = value_key(&v);
                keys.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, c)| f64::from(*c))
                    .unwrap_or(0.0)
            }
            (SlotKind::Collect { .. }, SlotValue::Items(items)) => items.len() as f64,
            _ => 0.0,
        }
    }

    /// Milliseconds since the time a slot holds.
    pub fn since(&self, slot: usize) -> Option<i64> {
        match self.state.slots[slot] {
            SlotValue::Time(t) => Some(self.now - t),
            _ => None,
        }
    }

    pub fn sessions(&self, window: Option<(usize, crate::time::Duration)>) -> f64 {
        match window {
            None => f64::from(self.state.sessions),
            Some((slot, w)) => match &self.state.slots[slot] {
                SlotValue::Times(t) => t.iter().filter(|t| **t >= self.now - w.0).count() as f64,
                _ => 0.0,
            },
        }
    }

    pub fn trait_json(&self, path: &[String]) -> Option<Value> {
        let (first, rest) = path.split_first()?;
        let v = self.state.trait_value(first)?.to_json();
        if rest.is_empty() {
            return Some(v);
        }
        match v {
            Value::String(s) => serde_json::from_str::<Value>(&s)
                .ok()
                .and_then(|parsed| parsed.as_object().and_then(|o| lookup(o, rest).cloned())),
            _ => None,
        }
    }

    /// Whether a condition holds.
    pub fn holds(&self, c: &CCond) -> bool {
        match c {
            CCond::All(v) => v.iter().all(|c| self.holds(c)),
            CCond::Any(v) => v.iter().any(|c| self.holds(c)),
            CCond::Not(c) => !self.holds(c),
            CCond::Count { slot, cmp, per } => all_hold(cmp, self.count(*slot, per.as_deref())),
            CCond::TimeSince { slot, cmp } => {
                self.since(*slot).is_some_and(|ms| all_hold(cmp, ms as f64))
            }
            CCond::Idle { cmp } => self
                .state
                .last_activity
                .is_some_and(|t| all_hold(cmp, (self.now - t) as f64)),
            CCond::Sessions { window, cmp } => all_hold(cmp, self.sessions(*window)),
            // Tracked segments keep their membership in state, kept exact by the engine.
            CCond::InSegment(i) if self.rules.segment_tracked[*i] => self
                .state
                .segments
                .binary_search(&self.rules.segments[*i].stable_id)
                .is_ok(),
            CCond::InSegment(i) => {
                let seg = Ctx {
                    props: Props::None,
                    ..*self
                };
                seg.holds(&self.rules.segments[*i].cond)
            }
            CCond::Traits(fs) => fs.iter().all(|f| match f.path.as_slice() {
                [name] => scalar_holds(&f.op, self.state.trait_value(name)),
                _ => filter_holds(&f.op, self.trait_json(&f.path).as_ref()),
            }),
            CCond::Props(fs) => fs.iter().all(|f| self.prop_holds(f)),
        }
    }

    /// Like [`Ctx::holds`] but evaluates every `in_segment` from its definition, ignoring the
    /// membership kept in state (a reference for tests and diagnostics).
    pub fn holds_uncached(&self, c: &CCond) -> bool {
        match c {
            CCond::All(v) => v.iter().all(|c| self.holds_uncached(c)),
            CCond::Any(v) => v.iter().any(|c| self.holds_uncached(c)),
            CCond::Not(c) => !self.holds_uncached(c),
            CCond::InSegment(i) => {
                let seg = Ctx {
                    props: Props::None,
                    ..*self
                };
                seg.holds_uncached(&self.rules.segments[*i].cond)
            }
            other => self.holds(other),
        }
    }

    fn prop_holds(&self, f: &CFilter) -> bool {
        match self.props {
            Props::Captured(items) => scalar_holds(
                &f.op,
                items
                    .iter()
                    .find(|(k, _)| is_dotted(k, &f.path))
                    .map(|(_, v)| v),
            ),
            _ => filter_holds(&f.op, self.props.get(&f.path).as_deref()),
        }
    }

    /// The earliest instant after the clock when a condition's value may change with no new
    /// event (windows closing, durations passing).
    pub fn next_change(&self, c: &CCond, out: &mut Option<Millis>) {
        let mut at = |t: Millis| {
            if t > self.now && out.is_none_or(|o| t < o) {
                *out = Some(t);
            }
        };
        match c {
            CCond::All(v) | CCond::Any(v) => v.iter().for_each(|c| self.next_change(c, out)),
            CCond::Not(c) => self.next_change(c, out),
            CCond::Count { slot, .. } => {
                if let (SlotKind::Window { within, .. }, SlotValue::Times(ts)) =
                    (&self.rules.slots[*slot].kind, &self.state.slots[*slot])
                {
                    ts.iter().for_each(|t| at(t + within.0 + 1));
                }
            }
            CCond::TimeSince { slot, cmp } => {
                if let SlotValue::Time(t) = self.state.slots[*slot] {
                    cmp.iter().for_each(|c| edge(*c, t, &mut at));
                }
            }
            CCond::Idle { cmp } => {
                if let Some(t) = self.state.last_activity {
                    cmp.iter().for_each(|c| edge(*c, t, &mut at));
                }
            }
            CCond::Sessions {
                window: Some((slot, w)),
                ..
            } => {
                if let SlotValue::Times(ts) = &self.state.slots[*slot] {
                    ts.iter().for_each(|t| at(t + w.0 + 1));
                }
            }
            CCond::InSegment(i) => self.next_change(&self.rules.segments[*i].cond, out),
            _ => {}
        }
    }
}

/// When a duration comparison measured from `t` flips.
fn edge(c: Cmp, t: Millis, at: &mut impl FnMut(Millis)) {
    let b = c.bound() as i64;
    match c {
        Cmp::AtLeast(_) | Cmp::LessThan(_) => at(t + b),
        Cmp::MoreThan(_) | Cmp::AtMost(_) => at(t + b + 1),
        Cmp::Exactly(_) => {
            at(t + b);
            at(t + b + 1);
        }
    }
}

pub fn all_hold(cmp: &[Cmp], x: f64) -> bool {
    cmp.iter().all(|c| c.holds(x))
}
