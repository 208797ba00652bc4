//! Per-user behavioral state: only what the compiled rule set needs, bounded in size, and
//! encoded compactly (postcard) for storage.

use crate::rules::compiled::{CompiledRules, SlotKind};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Message ids remembered in state to drop immediate redeliveries; stores keep a longer
/// idempotency record of their own.
pub const SEEN_IDS: usize = 8;
/// Longest string kept for a trait or captured property.
pub const MAX_TEXT: usize = 120;

/// A scalar value kept in state (traits, captured properties, collected fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    /// Finite: JSON holds no NaN or infinity, so a stored one is a corrupted row.
    #[serde(deserialize_with = "finite")]
    Float(f64),
    Str(String),
}

fn finite<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let f = f64::deserialize(d)?;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(serde::de::Error::custom("a number that is not finite"))
    }
}

impl Scalar {
    /// Keeps a JSON value; nested values are kept as JSON text, long text is cut.
    pub fn from_json(v: &Value) -> Scalar {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Scalar::Int(i),
                None => Scalar::Float(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => Scalar::Str(truncate(s)),
            other => Scalar::Str(truncate(&other.to_string())),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::from(*i),
            Scalar::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Scalar::Str(s) => Value::String(s.clone()),
        }
    }
}

fn truncate(s: &str) -> String {
    truncated(s).to_string()
}

/// The part of a text that state keeps (at most [`MAX_TEXT`] bytes, on a char boundary).
pub fn truncated(s: &str) -> &str {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Property-value keys (per-key counts, `once: {per}`) are 24-bit hashes: with at most a few
/// dozen kept per user a collision is a few-in-a-million event, and each costs 3 bytes stored
/// where a varint of a random 32-bit hash costs 5.
pub const KEY_MASK: u32 = 0x00FF_FFFF;

/// Fixed-width byte encodings for lists of hashes, which varints would make larger.
mod packed {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    struct Bytes;
    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("packed bytes")
        }
        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    fn bytes<'de, D: Deserializer<'de>>(d: D, width: usize) -> Result<Vec<u8>, D::Error> {
        let b = d.deserialize_bytes(Bytes)?;
        if b.len() % width != 0 {
            return Err(D::Error::custom("packed list has a partial item"));
        }
        Ok(b)
    }

    /// A random `u32` as 4 bytes (a varint would take 5).
    pub mod fixed_u32 {
        use super::*;
        pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&v.to_le_bytes())
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
            let b = bytes(d, 4)?;
            match <[u8; 4]>::try_from(b.as_slice()) {
                Ok(a) => Ok(u32::from_le_bytes(a)),
                Err(_) => Err(D::Error::custom("expected 4 bytes")),
            }
        }
    }

    /// A random `u64` as 8 bytes (a varint would take 10).
    pub mod fixed_u64 {
        use super::*;
        pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&v.to_le_bytes())
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
            let b = bytes(d, 8)?;
            match <[u8; 8]>::try_from(b.as_slice()) {
                Ok(a) => Ok(u64::from_le_bytes(a)),
                Err(_) => Err(D::Error::custom("expected 8 bytes")),
            }
        }
    }

    /// `Vec<u32>` as 4 bytes each.
    pub mod u32s {
        use super::*;
        pub fn serialize<S: Serializer>(v: &[u32], s: S) -> Result<S::Ok, S::Error> {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            s.serialize_bytes(&b)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
            Ok(bytes(d, 4)?
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        }
    }

    /// 24-bit keys as 3 bytes each.
    pub mod keys {
        use super::*;
        pub fn serialize<S: Serializer>(v: &[u32], s: S) -> Result<S::Ok, S::Error> {
            let b: Vec<u8> = v
                .iter()
                .flat_map(|x| x.to_le_bytes().into_iter().take(3))
                .collect();
            s.serialize_bytes(&b)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
            Ok(bytes(d, 3)?
                .chunks_exact(3)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], 0]))
                .collect())
        }
    }

    /// (24-bit key, count) as 3 + 2 bytes; counts above 65,535 are kept at 65,535.
    pub mod key_counts {
        use super::*;
        pub fn serialize<S: Serializer>(v: &[(u32, u32)], s: S) -> Result<S::Ok, S::Error> {
            let mut b = Vec::with_capacity(v.len() * 5);
            for (k, c) in v {
                b.extend(k.to_le_bytes().into_iter().take(3));
                b.extend((u16::try_from(*c).unwrap_or(u16::MAX)).to_le_bytes());
            }
            s.serialize_bytes(&b)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u32, u32)>, D::Error> {
            Ok(bytes(d, 5)?
                .chunks_exact(5)
                .map(|c| {
                    (
                        u32::from_le_bytes([c[0], c[1], c[2], 0]),
                        u32::from(u16::from_le_bytes([c[3], c[4]])),
                    )
                })
                .collect())
        }
    }
}

/// The value of one state slot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum SlotValue {
    #[default]
    Empty,
    Count(u32),
    /// A count that belongs to one session.
    SessionCount {
        session: u32,
        count: u32,
    },
    Time(Millis),
    Times(Vec<Millis>),
    /// (key of a property value, count), most recently updated last.
    Keys(#[serde(with = "packed::key_counts")] Vec<(u32, u32)>),
    Items(Vec<Vec<Scalar>>),
}

/// What a trigger remembers: when it last consumed its once/cooldown, in which session, and
/// which property values it has fired for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TriggerMemo {
    pub last: Option<Millis>,
    pub session: Option<u32>,
    #[serde(with = "packed::keys")]
    pub keys: Vec<u32>,
}

impl TriggerMemo {
    fn is_empty(&self) -> bool {
        self.last.is_none() && self.session.is_none() && self.keys.is_empty()
    }
}

/// Most property values a `once: {per}` trigger remembers.
pub const MAX_ONCE_KEYS: usize = 48;

/// A pending wait: a delayed send that re-checks its trigger when it falls due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    /// Stable id of the trigger.
    #[serde(with = "packed::fixed_u32")]
    pub trigger: u32,
    /// Hash of the `same` properties (0 when none): one pending wait per key.
    pub key: u32,
    pub due: Millis,
    /// When the triggering event happened.
    pub origin: Millis,
    /// Identifies the occurrence (hash of the triggering messageId); with user and trigger it
    /// makes the decision id.
    #[serde(with = "packed::fixed_u64")]
    pub occurrence: u64,
    /// Properties of the triggering event the rules and templates read.
    pub props: Vec<(String, Scalar)>,
    /// Set when quiet hours moved the send to `due`.
    pub deferred: bool,
}

/// A frequency cap's memory: recent send times (rolling) or this session's count.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum CapMemo {
    #[default]
    Empty,
    Times(Vec<Millis>),
    Session {
        session: u32,
        count: u32,
    },
}

/// Sends with a goal whose window is open at once, per user; a newer send pushes the oldest
/// out (it can then no longer convert).
pub const MAX_ATTRIBUTIONS: usize = 8;

/// A send whose goal window is open: a goal event at most `within` after it converts it.
/// Times are whole seconds (state stays small; windows are hours or days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// Stable id of the trigger.
    #[serde(with = "packed::fixed_u32")]
    pub trigger: u32,
    /// Index into the trigger's `variant_names`, plus [`CONVERTED`] once converted.
    pub variant: u8,
    /// When it was sent, in seconds since the epoch.
    pub sent: u32,
}

/// The flag of [`Attribution::variant`] and [`Enrollment::variant`] set once converted.
pub const CONVERTED: u8 = 0x80;

/// An experiment assignment whose goal window is open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    /// Stable id of the experiment.
    #[serde(with = "packed::fixed_u32")]
    pub experiment: u32,
    /// Arm index (`0x7F` the holdout), plus [`CONVERTED`] once converted.
    pub variant: u8,
    /// When the user was assigned, in seconds since the epoch.
    pub since: u32,
    /// The goal value the user brought so far, in thousandths (format version 3 on).
    pub value: i64,
}

/// An [`Enrollment`] as format version 2 stored it (without the value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EnrollmentV2 {
    #[serde(with = "packed::fixed_u32")]
    experiment: u32,
    variant: u8,
    since: u32,
}

/// A user's way through a funnel: when they first entered it (their cohort), the furthest
/// step counted, and the current attempt (`step` steps done). Times are whole seconds: the
/// entry since the epoch, the attempt's start after the entry, its last step after its start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelProgress {
    /// Stable id of the funnel.
    #[serde(with = "packed::fixed_u32")]
    pub funnel: u32,
    pub entered: u32,
    pub best: u8,
    pub start: u32,
    pub step: u8,
    pub last: u32,
    /// The breakdown value read when the user entered.
    pub breakdown: Option<String>,
}

impl FunnelProgress {
    /// When the user entered, when the current attempt started, and its last step.
    pub fn times(&self) -> (Millis, Millis, Millis) {
        let entered = at_secs(self.entered);
        let start = entered + at_secs(self.start);
        (entered, start, start + at_secs(self.last))
    }
}

impl Attribution {
    /// Index into the trigger's `variant_names`.
    pub fn variant_index(&self) -> usize {
        usize::from(self.variant & !CONVERTED)
    }
    pub fn converted(&self) -> bool {
        self.variant & CONVERTED != 0
    }
}

/// The arm index an [`Enrollment`] stores for the holdout.
const ENROLLED_HOLDOUT: u8 = 0x7F;

impl Enrollment {
    /// An assignment to arm `arm` (255 for the holdout, as assignments keep it).
    pub fn new(experiment: u32, arm: u8, since: Millis) -> Self {
        Enrollment {
            experiment,
            variant: if arm == u8::MAX {
                ENROLLED_HOLDOUT
            } else {
                arm.min(ENROLLED_HOLDOUT - 1)
            },
            since: secs(since),
            value: 0,
        }
    }
    /// The arm index as assignments keep it (255 for the holdout).
    pub fn arm(&self) -> u8 {
        match self.variant & !CONVERTED {
            ENROLLED_HOLDOUT => u8::MAX,
            v => v,
        }
    }
    pub fn converted(&self) -> bool {
        self.variant & CONVERTED != 0
    }
}

/// Seconds since the epoch of an instant, as state keeps them (0 before the epoch).
pub fn secs(at: Millis) -> u32 {
    u32::try_from(at.div_euclid(1000)).unwrap_or(if at < 0 { 0 } else { u32::MAX })
}

/// The instant of whole seconds since the epoch.
pub fn at_secs(s: u32) -> Millis {
    i64::from(s) * 1000
}

/// Everything nudge keeps about one user.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserState {
    /// Hashes of the latest messageIds (32-bit).
    pub seen: Vec<u32>,
    pub last_activity: Option<Millis>,
    pub session_start: Option<Millis>,
    pub sessions: u32,
    pub traits: Vec<(String, Scalar)>,
    pub unsubscribed: bool,
    /// Aligned with `rules.slots`.
    pub slots: Vec<SlotValue>,
    /// Aligned with `rules.triggers`.
    pub triggers: Vec<TriggerMemo>,
    pub waits: Vec<Wait>,
    /// Aligned with `rules.policies.caps`.
    pub caps: Vec<CapMemo>,
    /// Last send per channel: (channel index, time, priority rank), for `min_gap`.
    pub last_sends: Vec<(u8, Millis, u8)>,
    /// Stable ids of the segments the user is in (tracked only when a trigger reacts to them).
    pub segments: Vec<u32>,
    /// Experiment assignments: (experiment stable id, variant index; 255 = holdout).
    pub assignments: Vec<(u32, u8)>,
    /// When segment membership may next change by the passing of time.
    pub wake_at: Option<Millis>,
    /// `CompiledRules::segments_fingerprint` when `segments` was computed (0: never).
    pub segments_fingerprint: u32,
    /// Sends whose goal window is open (at most [`MAX_ATTRIBUTIONS`]).
    pub attributions: Vec<Attribution>,
    /// Experiment assignments whose goal window is open.
    pub enrollments: Vec<Enrollment>,
    /// Progress through each funnel the user entered.
    pub funnels: Vec<FunnelProgress>,
}

/// The stored form: slots and memos keyed by stable ids so that state survives rule edits.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    version: u8,
    #[serde(with = "packed::u32s")]
    seen: Vec<u32>,
    last_activity: Option<Millis>,
    session_start: Option<Millis>,
    sessions: u32,
    traits: Vec<(String, Scalar)>,
    unsubscribed: bool,
    slots: Vec<(u32, SlotValue)>,
    triggers: Vec<(u32, TriggerMemo)>,
    waits: Vec<Wait>,
    caps: Vec<(u32, CapMemo)>,
    last_sends: Vec<(u8, Millis, u8)>,
    segments: Vec<u32>,
    assignments: Vec<(u32, u8)>,
    wake_at: Option<Millis>,
    segments_fingerprint: u32,
}

/// What reports need kept, stored after [`Stored`] from format version 2 on.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredMeasures {
    attributions: Vec<Attribution>,
    enrollments: Vec<Enrollment>,
    funnels: Vec<FunnelProgress>,
}

/// [`StoredMeasures`] as format version 2 wrote them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredMeasuresV2 {
    attributions: Vec<Attribution>,
    enrollments: Vec<EnrollmentV2>,
    funnels: Vec<FunnelProgress>,
}

impl From<StoredMeasuresV2> for StoredMeasures {
    fn from(m: StoredMeasuresV2) -> Self {
        StoredMeasures {
            attributions: m.attributions,
            enrollments: m
                .enrollments
                .into_iter()
                .map(|e| Enrollment {
                    experiment: e.experiment,
                    variant: e.variant,
                    since: e.since,
                    value: 0,
                })
                .collect(),
            funnels: m.funnels,
        }
    }
}

/// Version 2 appends [`StoredMeasures`], version 3 keeps each enrollment's value; versions 1
/// (without measures) and 2 still load.
const FORMAT_VERSION: u8 = 3;

/// Why stored state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("stored state is corrupt: {0}")]
    Corrupt(#[from] postcard::Error),
    #[error(
        "stored state has format version {0}, this build reads versions 1 to {FORMAT_VERSION}"
    )]
    Version(u8),
}

impl UserState {
    /// An empty state shaped for `rules`.
    pub fn new(rules: &CompiledRules) -> Self {
        let mut s = UserState::default();
        s.fit(rules);
        s
    }

    /// Makes the aligned vectors match the rule set's shape.
    pub fn fit(&mut self, rules: &CompiledRules) {
        self.slots.resize(rules.slots.len(), SlotValue::Empty);
        self.triggers
            .resize(rules.triggers.len(), TriggerMemo::default());
        self.caps.resize(rules.policies.caps.len(), CapMemo::Empty);
    }

    /// A trait's value, if kept.
    pub fn trait_value(&self, name: &str) -> Option<&Scalar> {
        self.traits.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Encodes for storage.
    pub fn encode(&self, rules: &CompiledRules) -> Vec<u8> {
        let stored = Stored {
            version: FORMAT_VERSION,
            seen: self.seen.clone(),
            last_activity: self.last_activity,
            session_start: self.session_start,
            sessions: self.sessions,
            traits: self.traits.clone(),
            unsubscribed: self.unsubscribed,
            slots: rules
                .slots
                .iter()
                .zip(&self.slots)
                .filter(|(_, v)| **v != SlotValue::Empty)
                .map(|(s, v)| (s.id, v.clone()))
                .collect(),
            triggers: rules
                .triggers
                .iter()
                .zip(&self.triggers)
                .filter(|(_, m)| !m.is_empty())
                .map(|(t, m)| (t.stable_id, m.clone()))
                .collect(),
            waits: self.waits.clone(),
            caps: rules
                .policies
                .caps
                .iter()
                .zip(&self.caps)
                .filter(|(_, m)| **m != CapMemo::Empty)
                .map(|(c, m)| (cap_id(c), m.clone()))
                .collect(),
            last_sends: self.last_sends.clone(),
            segments: self.segments.clone(),
            assignments: self.assignments.clone(),
            wake_at: self.wake_at,
            segments_fingerprint: self.segments_fingerprint,
        };
        // Serializing plain data into a Vec cannot fail.
        let mut bytes = postcard::to_allocvec(&stored).unwrap_or_default();
        let measures = StoredMeasures {
            attributions: self.attributions.clone(),
            enrollments: self.enrollments.clone(),
            funnels: self.funnels.clone(),
        };
        bytes.extend(postcard::to_allocvec(&measures).unwrap_or_default());
        bytes
    }

    /// Decodes stored state for `rules`; parts the rule set no longer uses are dropped.
    pub fn decode(bytes: &[u8], rules: &CompiledRules) -> Result<Self, StateError> {
        let (stored, rest): (Stored, &[u8]) = postcard::take_from_bytes(bytes)?;
        let measures = match stored.version {
            1 => StoredMeasures::default(),
            2 => postcard::from_bytes::<StoredMeasuresV2>(rest)?.into(),
            FORMAT_VERSION => postcard::from_bytes(rest)?,
            other => return Err(StateError::Version(other)),
        };
        let mut s = UserState::new(rules);
        s.seen = stored.seen;
        s.last_activity = stored.last_activity;
        s.session_start = stored.session_start;
        s.sessions = stored.sessions;
        s.traits = stored.traits;
        s.unsubscribed = stored.unsubscribed;
        for (id, v) in stored.slots {
            if let Some(&i) = rules.slot_by_id.get(&id) {
                if value_fits(&rules.slots[i].kind, &v) {
                    s.slots[i] = v;
                }
            }
        }
        for (id, m) in stored.triggers {
            if let Some(&i) = rules.trigger_by_id.get(&id) {
                s.triggers[i] = m;
            }
        }
        s.waits = stored
            .waits
            .into_iter()
            .filter(|w| rules.trigger_by_id.contains_key(&w.trigger))
            .collect();
        for (id, m) in stored.caps {
            if let Some(i) = rules.policies.caps.iter().position(|c| cap_id(c) == id) {
                s.caps[i] = m;
            }
        }
        s.last_sends = stored.last_sends;
        s.segments = stored.segments;
        s.assignments = stored.assignments;
        s.wake_at = stored.wake_at;
        s.segments_fingerprint = stored.segments_fingerprint;
        s.attributions = measures
            .attributions
            .into_iter()
            .filter(|a| rules.trigger_by_id.contains_key(&a.trigger))
            .collect();
        s.enrollments = measures
            .enrollments
            .into_iter()
            .filter(|e| rules.experiment_by_id.contains_key(&e.experiment))
            .collect();
        s.funnels = measures
            .funnels
            .into_iter()
            .filter(|f| rules.funnel_by_id.contains_key(&f.funnel))
            .collect();
        Ok(s)
    }
}

fn value_fits(kind: &SlotKind, v: &SlotValue) -> bool {
    matches!(
        (kind, v),
        (_, SlotValue::Empty)
            | (
                SlotKind::Count | SlotKind::Anchored { .. },
                SlotValue::Count(_) | SlotValue::SessionCount { .. }
            )
            | (
                SlotKind::Window { .. } | SlotKind::SessionStarts { .. },
                SlotValue::Times(_)
            )
            | (SlotKind::First | SlotKind::Last, SlotValue::Time(_))
            | (SlotKind::PerKey { .. }, SlotValue::Keys(_))
            | (SlotKind::Collect { .. }, SlotValue::Items(_))
    )
}

fn cap_id(c: &crate::rules::model::CapDef) -> u32 {
    crate::rules::compiled::stable_id(&format!("{c:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
tracking_plan: {events: {Signed Up: {}, Done: {}}}
goals: {done: Done}
triggers:
  welcome: {on: Signed Up, experiment: copy, send: {channel: in_app, message: hi}}
experiments:
  copy: {goal: {id: done, within: 7d}, variants: {a: {}}}
messages:
  hi: {channel: in_app, in_app: {title: Hi, body: Hello}}
"#;

    #[test]
    fn a_stored_number_that_is_not_finite_is_a_corrupt_row() {
        // Found by the user_state fuzz target: a NaN trait loaded, and a state holding it
        // is not equal to itself.
        let rules = crate::test_support::compile(RULES);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut state = UserState::new(&rules);
            state.traits.push(("score".into(), Scalar::Float(bad)));
            let err = UserState::decode(&state.encode(&rules), &rules).unwrap_err();
            assert!(matches!(err, StateError::Corrupt(_)), "{err}");
        }
        let mut state = UserState::new(&rules);
        state.traits.push(("score".into(), Scalar::Float(2.5)));
        assert_eq!(
            UserState::decode(&state.encode(&rules), &rules).unwrap(),
            state
        );
    }

    #[test]
    fn version_2_state_loads_with_its_enrollments_valued_at_zero() {
        let rules = crate::test_support::compile(RULES);
        let mut state = UserState::new(&rules);
        let mut e = Enrollment::new(rules.experiments[0].stable_id, 0, 5_000);
        e.value = 12_500;
        state.enrollments.push(e.clone());
        let v3 = state.encode(&rules);
        assert_eq!(UserState::decode(&v3, &rules).unwrap(), state);

        // The same state as version 2 wrote it: the enrollment without its value.
        let (mut stored, _): (Stored, &[u8]) = postcard::take_from_bytes(&v3).unwrap();
        stored.version = 2;
        let mut v2 = postcard::to_allocvec(&stored).unwrap();
        let old = StoredMeasuresV2 {
            attributions: vec![],
            enrollments: vec![EnrollmentV2 {
                experiment: e.experiment,
                variant: e.variant,
                since: e.since,
            }],
            funnels: vec![],
        };
        v2.extend(postcard::to_allocvec(&old).unwrap());
        let loaded = UserState::decode(&v2, &rules).unwrap();
        assert_eq!(loaded.enrollments, [Enrollment { value: 0, ..e }]);

        let mut future = v3.clone();
        future[0] = FORMAT_VERSION + 1;
        assert!(matches!(
            UserState::decode(&future, &rules),
            Err(StateError::Version(_))
        ));
    }
}
