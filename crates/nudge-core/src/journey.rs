//! Journey tests: a user's events on a virtual clock and the sends they must (and must not)
//! produce, written in YAML next to a rule set (`DIR/tests/*.yaml`) and run by `nudge test`.
//!
//! This module parses test files and runs them; it reads no files and prints nothing.
//!
//! # Format
//!
//! A test file is a mapping with one key, `tests`, a list of tests:
//!
//! ```yaml
//! tests:
//!   - name: profile reminder fires 24h after viewing the profile step
//!     start: 2026-03-02T09:00:00Z   # optional; default 2026-03-02T09:00:00Z (a Monday)
//!     user: u1                      # default user of events and expectations; default "u1"
//!     traits: {first_name: Alice, timezone: Europe/Berlin}  # optional: an identify at +0s,
//!                                   # before the events
//!     events:
//!       - at: +0s                   # required: +DURATION after start, or an RFC 3339 time
//!         event: Signed Up          # a track call; or one of:
//!       - at: +2m
//!         identify: {plan: pro}     #   an identify call with these traits
//!       - at: +3m
//!         page: Pricing             #   a page call (its name)
//!       - at: +4m
//!         screen: Home              #   a screen call (its name)
//!       - at: +5m
//!         user: u2                  # optional: another user
//!         event: Feature Used
//!         properties: {feature: x}  # optional, for event / page / screen
//!         message_id: m-17          # optional; default "<test name>#<index>" (index from 0;
//!                                   # the `traits` identify is "<test name>#traits")
//!         context: {timezone: America/New_York}   # optional Segment context
//!     until: +3d                    # optional, offset or absolute; default 30 days after the
//!                                   # last event
//!     expect:                       # sends that must happen, each matched to a distinct send
//!       - trigger: profile-reminder # required
//!         at: +24h1m                # optional (omitted: any time)
//!         tolerance: 1s             # optional, default 0s: |actual - at| <= tolerance
//!         user: u1                  # optional, default the test's user
//!         outcome: sent             # optional: sent or suppressed; default sent, or
//!                                   # suppressed when `reason` is given
//!         reason: frequency_cap     # required when outcome is suppressed
//!         channel: email            # optional fields that must be equal when given:
//!         message: profile_reminder
//!         variant: default
//!         experiment: followup-delay   # or null: no experiment
//!         subject: "Alice, finish your profile"
//!         body: "..."               # the whole rendered body
//!         body_contains: "profile"  # a part of it
//!     never:                        # sends that must not happen
//!       - trigger: pause-nudge      # required; with only a trigger: no send of it to anyone
//!       - {trigger: failed-login-help, user: u1, outcome: sent, reason: cooldown,
//!          from: +10m, to: +1h}     # optional narrowing; from/to inclusive
//!     exhaustive: true              # optional: every actual send must match an `expect` item
//!     segments:                     # live segment membership at checkpoints
//!       - at: +8m                   # required; after the events at or before it
//!         user: u1                  # optional, default the test's user
//!         in: [hesitant]            # a list or a single id
//!         not_in: [explorer]
//! ```
//!
//! Times written as `+DURATION` are offsets from `start`. Events run in time order (equal
//! times keep the written order). Each event becomes a Segment message that goes through the
//! same validation as `nudge replay` input (`Message::from_json`, then the tracking plan): a
//! rejected message fails the test. `expect` items are matched in the order written, each to
//! the first not yet matched send, in time order, that agrees with every field given.
//!
//! Mistakes in a test file (YAML syntax, unknown keys, unknown trigger, segment, message,
//! experiment, variant, channel, outcome or reason) are reported as `file:line:col: message`.

use crate::engine::{Reason, Send};
use crate::event::Message;
use crate::replay::{Replay, ReplayLine};
use crate::rules::model::{Channel, Pos};
use crate::rules::yaml::{closest, kind, to_json, Diagnostics, Reader};
use crate::rules::{CompiledRules, RuleError};
use crate::time::{parse_instant, Duration, Millis};
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{LoaderOptions, Node};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;

/// When a test starts unless it says otherwise (a Monday morning, UTC).
pub const DEFAULT_START: &str = "2026-03-02T09:00:00Z";
/// The user of a test unless it says otherwise.
pub const DEFAULT_USER: &str = "u1";

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
const EXPECT_KEYS: &[&str] = &[
    "trigger",
    "at",
    "tolerance",
    "user",
    "outcome",
    "reason",
    "channel",
    "message",
    "variant",
    "experiment",
    "subject",
    "body",
    "body_contains",
];
const NEVER_KEYS: &[&str] = &["trigger", "user", "outcome", "reason", "from", "to"];
const CHECKPOINT_KEYS: &[&str] = &["at", "user", "in", "not_in"];
const OUTCOMES: &[&str] = &["sent", "suppressed"];

/// Every suppression reason, as tests write them.
fn reasons() -> Vec<&'static str> {
    // The match makes a new Reason variant a compile error here, so this list stays complete.
    let listed = |r: Reason| match r {
        Reason::FrequencyCap
        | Reason::QuietHours
        | Reason::Cooldown
        | Reason::Holdout
        | Reason::Unsubscribed
        | Reason::Priority
        | Reason::ExitCondition => r.as_str(),
    };
    [
        Reason::FrequencyCap,
        Reason::QuietHours,
        Reason::Cooldown,
        Reason::Holdout,
        Reason::Unsubscribed,
        Reason::Priority,
        Reason::ExitCondition,
    ]
    .into_iter()
    .map(listed)
    .collect()
}

/// One journey test file: its display name (e.g. `profile.yaml`) and text.
#[derive(Debug, Clone)]
pub struct JourneyFile {
    pub name: String,
    pub text: String,
}

/// A place in a test file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: usize,
    pub col: usize,
}

impl From<Pos> for Loc {
    fn from(p: Pos) -> Self {
        Loc {
            line: p.line,
            col: p.col,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Which kind of send an expectation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Suppressed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Suppressed => "suppressed",
        }
    }
}

/// One input message of a journey, as Segment JSON (validated when the journey runs).
#[derive(Debug, Clone)]
struct Step {
    /// Index in `events`; `None` for the identify that `traits` stands for.
    index: Option<usize>,
    loc: Loc,
    at: Millis,
    json: Value,
}

/// A send that must happen.
#[derive(Debug, Clone)]
struct Expect {
    loc: Loc,
    trigger: String,
    at: Option<Millis>,
    tolerance: i64,
    user: String,
    outcome: Outcome,
    reason: Option<String>,
    channel: Option<String>,
    message: Option<String>,
    variant: Option<String>,
    experiment: Option<Option<String>>,
    subject: Option<String>,
    body: Option<String>,
    body_contains: Option<String>,
}

/// Sends that must not happen.
#[derive(Debug, Clone)]
struct Never {
    loc: Loc,
    trigger: String,
    user: Option<String>,
    outcome: Option<Outcome>,
    reason: Option<String>,
    from: Option<Millis>,
    to: Option<Millis>,
}

/// A segment-membership checkpoint.
#[derive(Debug, Clone)]
struct Checkpoint {
    loc: Loc,
    at: Millis,
    user: String,
    member_of: Vec<String>,
    not_member_of: Vec<String>,
}

/// One parsed journey test.
#[derive(Debug, Clone)]
pub struct Journey {
    /// The test file's name.
    pub file: String,
    pub name: String,
    /// Where the test starts in its file.
    pub loc: Loc,
    pub start: Millis,
    pub user: String,
    pub until: Millis,
    steps: Vec<Step>,
    expect: Vec<Expect>,
    never: Vec<Never>,
    exhaustive: bool,
    checkpoints: Vec<Checkpoint>,
}

/// A send that happened during a journey.
#[derive(Debug, Clone, PartialEq)]
pub struct ActualSend {
    pub at: Millis,
    pub line: ReplayLine,
}

impl ActualSend {
    /// One compact line: `+24h1m u1 profile-reminder sent email/profile_reminder variant=default "subject"`.
    pub fn compact(&self, start: Millis) -> String {
        let l = &self.line;
        let mut s = format!("{} {} {} ", offset(self.at - start), l.user_id, l.trigger);
        match l.reason {
            Some(r) => s.push_str(&format!("suppressed({r})")),
            None => s.push_str(l.outcome),
        }
        s.push_str(&format!(
            " {}/{} variant={}",
            l.channel, l.message, l.variant
        ));
        if let Some(e) = &l.experiment {
            s.push_str(&format!(" experiment={e}"));
        }
        if let Some(subject) = &l.subject {
            s.push_str(&format!(" {subject:?}"));
        }
        s
    }
}

/// A field of an expectation that a send does not agree with.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub field: &'static str,
    pub expected: String,
    pub actual: String,
}

/// Why a journey failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// An input message was rejected by validation or the tracking plan.
    Rejected {
        loc: Loc,
        index: Option<usize>,
        message: String,
    },
    /// No send matched an `expect` item; `closest` is the unmatched send of the same trigger
    /// that differs in the fewest fields, with those fields.
    Missing {
        loc: Loc,
        expected: String,
        closest: Option<(usize, Vec<Mismatch>)>,
    },
    /// Sends matched a `never` item.
    Forbidden {
        loc: Loc,
        rule: String,
        sends: Vec<usize>,
    },
    /// Sends no `expect` item matched, in an exhaustive test.
    Unexpected { sends: Vec<usize> },
    /// Segment membership differed at a checkpoint.
    Segments {
        loc: Loc,
        at: Millis,
        user: String,
        missing: Vec<String>,
        unexpected: Vec<String>,
        actual: Vec<String>,
    },
}

/// The outcome of one journey test.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyResult {
    pub file: String,
    pub name: String,
    pub start: Millis,
    /// Every send, in time order.
    pub sends: Vec<ActualSend>,
    pub failures: Vec<Failure>,
    /// Things worth a look when the test fails (events the tracking plan flags).
    pub notes: Vec<String>,
}

impl JourneyResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// `file: name`, as the runner prints it.
    pub fn title(&self) -> String {
        format!("{}: {}", self.file, self.name)
    }

    /// What went wrong and every send that happened instead. `text_diff(expected, actual)`
    /// renders the difference of two multi-line texts (bodies).
    pub fn report(&self, text_diff: &dyn Fn(&str, &str) -> String) -> String {
        let mut out = String::new();
        let at = |loc: &Loc| format!("{}:{loc}", self.file);
        let send = |i: usize| {
            self.sends
                .get(i)
                .map(|s| s.compact(self.start))
                .unwrap_or_default()
        };
        for f in &self.failures {
            match f {
                Failure::Rejected {
                    loc,
                    index,
                    message,
                } => {
                    let what = match index {
                        Some(i) => format!("events[{i}]"),
                        None => "the identify for `traits`".to_string(),
                    };
                    out.push_str(&format!("{what} ({}) was rejected: {message}\n", at(loc)));
                }
                Failure::Missing {
                    loc,
                    expected,
                    closest,
                } => {
                    out.push_str(&format!(
                        "expected send not found ({}): {expected}\n",
                        at(loc)
                    ));
                    match closest {
                        Some((i, mismatches)) => {
                            out.push_str(&format!("    closest: {}\n", send(*i)));
                            for m in mismatches {
                                out.push_str(&mismatch_text(m, text_diff));
                            }
                        }
                        None => out.push_str("    (no unmatched send of this trigger)\n"),
                    }
                }
                Failure::Forbidden { loc, rule, sends } => {
                    out.push_str(&format!(
                        "forbidden send happened ({}): never {rule}\n",
                        at(loc)
                    ));
                    for i in sends {
                        out.push_str(&format!("    {}\n", send(*i)));
                    }
                }
                Failure::Unexpected { sends } => {
                    out.push_str("unexpected sends (exhaustive: no `expect` item matches them):\n");
                    for i in sends {
                        out.push_str(&format!("    {}\n", send(*i)));
                    }
                }
                Failure::Segments {
                    loc,
                    at: when,
                    user,
                    missing,
                    unexpected,
                    actual,
                } => {
                    out.push_str(&format!(
                        "segments at {} for {user} ({}):\n",
                        offset(when - self.start),
                        at(loc)
                    ));
                    if !missing.is_empty() {
                        out.push_str(&format!("    expected in: {}\n", missing.join(", ")));
                    }
                    if !unexpected.is_empty() {
                        out.push_str(&format!("    expected not in: {}\n", unexpected.join(", ")));
                    }
                    out.push_str(&format!("    actually in: [{}]\n", actual.join(", ")));
                }
            }
        }
        let rejected = self
            .failures
            .iter()
            .any(|f| matches!(f, Failure::Rejected { .. }));
        if rejected {
            out.push_str("(the journey did not run)\n");
        } else if self.sends.is_empty() {
            out.push_str("actual sends: none\n");
        } else {
            out.push_str(&format!("actual sends ({}):\n", self.sends.len()));
            for s in &self.sends {
                out.push_str(&format!("    {}\n", s.compact(self.start)));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("notes:\n");
            for n in &self.notes {
                out.push_str(&format!("    {n}\n"));
            }
        }
        out
    }
}

fn mismatch_text(m: &Mismatch, text_diff: &dyn Fn(&str, &str) -> String) -> String {
    if m.field == "body" && (m.expected.contains('\n') || m.actual.contains('\n')) {
        let diff = text_diff(&m.expected, &m.actual);
        let indented: String = diff
            .lines()
            .map(|l| format!("        {l}").trim_end().to_string() + "\n")
            .collect();
        return format!("      body differs (- expected, + actual):\n{indented}");
    }
    format!(
        "      {}: expected {}, got {}\n",
        m.field, m.expected, m.actual
    )
}

/// `+1h30m` for offsets from a journey's start (`-…` before it).
pub fn offset(ms: i64) -> String {
    if ms < 0 {
        format!("-{}", Duration(ms.saturating_neg()))
    } else {
        format!("+{}", Duration(ms))
    }
}

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

/// Parses the files and runs every journey whose `file: name` contains `filter`.
pub fn run_all(
    files: &[JourneyFile],
    rules: &CompiledRules,
    filter: Option<&str>,
) -> Result<Vec<JourneyResult>, Vec<RuleError>> {
    let journeys = parse(files, rules)?;
    Ok(journeys
        .iter()
        .filter(|j| filter.is_none_or(|f| j.title().contains(f)))
        .map(|j| j.run(rules))
        .collect())
}

/// The names tests may refer to.
struct Refs {
    triggers: Vec<String>,
    segments: Vec<String>,
    messages: Vec<String>,
    experiments: Vec<String>,
    variants: Vec<String>,
    reasons: Vec<&'static str>,
}

impl Refs {
    fn new(rules: &CompiledRules) -> Self {
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
fn check_ref(
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
fn start_of(r: Reader, node: &Node) -> Pos {
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

fn parse_file(i: usize, f: &JourneyFile, refs: &Refs, out: &mut Vec<Journey>, d: &mut Diagnostics) {
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
    refs: &Refs,
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

fn outcome(r: Reader, m: &MarkedMappingNode, d: &mut Diagnostics) -> Option<Option<Outcome>> {
    let Some(n) = m.get_node("outcome") else {
        return Some(None);
    };
    let s = r.string(n, "outcome", d)?;
    match s.value.as_str() {
        "sent" => Some(Some(Outcome::Sent)),
        "suppressed" => Some(Some(Outcome::Suppressed)),
        other => {
            check_ref(other, OUTCOMES, "outcome", s.pos, d);
            None
        }
    }
}

fn parse_expect(
    r: Reader,
    node: &Node,
    start: Millis,
    user: &str,
    refs: &Refs,
    d: &mut Diagnostics,
) -> Option<Expect> {
    let m = r.map(node, "an expect item", d)?;
    r.check_keys(m, EXPECT_KEYS, "an expect item", d);
    let trigger = r
        .required(m, "trigger", "an expect item", d)
        .and_then(|n| r.string(n, "trigger", d));
    let trigger_ok = trigger
        .as_ref()
        .is_some_and(|t| check_ref(&t.value, &refs.triggers, "trigger", t.pos, d));
    let at = m.get_node("at").map(|n| instant(r, n, start, "at", d));
    let tolerance = match m.get_node("tolerance") {
        Some(n) if at.is_none() => {
            d.error(r.pos(n), "tolerance needs `at`");
            None
        }
        Some(n) => span(r, n, "tolerance", d),
        None => Some(0),
    };
    let outcome = outcome(r, m, d);
    let reason = reference(r, m, "reason", &refs.reasons, "reason", d);
    let outcome = match (outcome, &reason) {
        (Some(Some(o)), _) => Some(o),
        (Some(None), Some(_)) => Some(Outcome::Suppressed),
        (Some(None), None) if m.get_node("reason").is_none() => Some(Outcome::Sent),
        _ => None,
    };
    if outcome == Some(Outcome::Suppressed) && m.get_node("reason").is_none() {
        d.error(
            start_of(r, node),
            "an expected suppressed send needs `reason` (one of: ".to_string()
                + &refs.reasons.join(", ")
                + ")",
        );
    }
    if let (Some(Outcome::Sent), Some(n)) = (outcome, m.get_node("reason")) {
        d.error(r.pos(n), "a send with outcome `sent` has no reason");
    }
    let channel = match m.get_node("channel") {
        Some(n) => {
            let s = r.string(n, "channel", d)?;
            let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
            check_ref(&s.value, &names, "channel", s.pos, d).then_some(Some(s.value))?
        }
        None => None,
    };
    let message = reference(r, m, "message", &refs.messages, "message", d);
    let variant = reference(r, m, "variant", &refs.variants, "variant", d);
    let experiment = match m.get_node("experiment") {
        Some(n) if is_null(n) => Some(None),
        Some(n) => {
            let s = r.string(n, "experiment", d)?;
            check_ref(&s.value, &refs.experiments, "experiment", s.pos, d)
                .then_some(Some(Some(s.value)))?
        }
        None => None,
    };
    let text = |key: &str, d: &mut Diagnostics| {
        m.get_node(key)
            .and_then(|n| r.text(n, key, d))
            .map(|s| s.value)
    };
    let subject = text("subject", d);
    let body = text("body", d);
    let body_contains = text("body_contains", d);
    let user = string(r, m, "user", d).unwrap_or_else(|| user.to_string());
    if !trigger_ok {
        return None;
    }
    if m.get_node("message").is_some_and(|_| message.is_none())
        || m.get_node("variant").is_some_and(|_| variant.is_none())
    {
        return None;
    }
    Some(Expect {
        loc: Loc::from(start_of(r, node)),
        trigger: trigger?.value,
        at: at.map(|a| a.ok_or(())).transpose().ok()?,
        tolerance: tolerance?,
        user,
        outcome: outcome?,
        reason,
        channel,
        message,
        variant,
        experiment,
        subject,
        body,
        body_contains,
    })
}

fn parse_never(
    r: Reader,
    node: &Node,
    start: Millis,
    refs: &Refs,
    d: &mut Diagnostics,
) -> Option<Never> {
    let m = r.map(node, "a never item", d)?;
    r.check_keys(m, NEVER_KEYS, "a never item", d);
    let trigger = r
        .required(m, "trigger", "a never item", d)
        .and_then(|n| r.string(n, "trigger", d));
    let trigger_ok = trigger
        .as_ref()
        .is_some_and(|t| check_ref(&t.value, &refs.triggers, "trigger", t.pos, d));
    let user = string(r, m, "user", d);
    let outcome = outcome(r, m, d);
    let reason = reference(r, m, "reason", &refs.reasons, "reason", d);
    let from = m.get_node("from").map(|n| instant(r, n, start, "from", d));
    let to = m.get_node("to").map(|n| instant(r, n, start, "to", d));
    if let (Some(Some(f)), Some(Some(t)), Some(n)) = (from, to, m.get_node("to")) {
        if t < f {
            d.error(r.pos(n), "`to` is before `from`");
        }
    }
    if !trigger_ok || (m.get_node("reason").is_some() && reason.is_none()) {
        return None;
    }
    Some(Never {
        loc: Loc::from(start_of(r, node)),
        trigger: trigger?.value,
        user,
        outcome: outcome?,
        reason,
        from: from.map(|a| a.ok_or(())).transpose().ok()?,
        to: to.map(|a| a.ok_or(())).transpose().ok()?,
    })
}

fn parse_checkpoint(
    r: Reader,
    node: &Node,
    start: Millis,
    user: &str,
    until: Millis,
    refs: &Refs,
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

impl Expect {
    /// The fields of `s` that disagree with this expectation (none: it matches).
    fn mismatches(&self, s: &ActualSend, start: Millis) -> Vec<Mismatch> {
        let mut out = Vec::new();
        let l = &s.line;
        let mut check = |field: &'static str, ok: bool, expected: String, actual: String| {
            if !ok {
                out.push(Mismatch {
                    field,
                    expected,
                    actual,
                });
            }
        };
        check(
            "trigger",
            l.trigger == self.trigger,
            self.trigger.clone(),
            l.trigger.clone(),
        );
        check(
            "user",
            l.user_id == self.user,
            self.user.clone(),
            l.user_id.clone(),
        );
        if let Some(at) = self.at {
            let tol = if self.tolerance > 0 {
                format!(" (±{})", Duration(self.tolerance))
            } else {
                String::new()
            };
            check(
                "at",
                (s.at - at).abs() <= self.tolerance,
                format!("{}{tol}", offset(at - start)),
                offset(s.at - start),
            );
        }
        check(
            "outcome",
            l.outcome == self.outcome.as_str(),
            self.outcome.as_str().into(),
            l.outcome.into(),
        );
        if let Some(reason) = &self.reason {
            check(
                "reason",
                l.reason == Some(reason.as_str()),
                reason.clone(),
                l.reason.unwrap_or("none").into(),
            );
        }
        if let Some(channel) = &self.channel {
            check(
                "channel",
                l.channel == channel,
                channel.clone(),
                l.channel.into(),
            );
        }
        if let Some(message) = &self.message {
            check(
                "message",
                &l.message == message,
                message.clone(),
                l.message.clone(),
            );
        }
        if let Some(variant) = &self.variant {
            check(
                "variant",
                &l.variant == variant,
                variant.clone(),
                l.variant.clone(),
            );
        }
        if let Some(experiment) = &self.experiment {
            let show = |e: &Option<String>| e.clone().unwrap_or_else(|| "null".into());
            check(
                "experiment",
                &l.experiment == experiment,
                show(experiment),
                show(&l.experiment),
            );
        }
        let quoted = |v: &Option<String>| {
            v.as_ref()
                .map(|t| format!("{t:?}"))
                .unwrap_or_else(|| "none".into())
        };
        if let Some(subject) = &self.subject {
            check(
                "subject",
                l.subject.as_ref() == Some(subject),
                format!("{subject:?}"),
                quoted(&l.subject),
            );
        }
        if let Some(body) = &self.body {
            let multi = body.contains('\n') || l.body.as_ref().is_some_and(|b| b.contains('\n'));
            let (e, a) = if multi {
                (body.clone(), l.body.clone().unwrap_or_default())
            } else {
                (format!("{body:?}"), quoted(&l.body))
            };
            check("body", l.body.as_ref() == Some(body), e, a);
        }
        if let Some(part) = &self.body_contains {
            let ok = l.body.as_ref().is_some_and(|b| b.contains(part.as_str()));
            check(
                "body_contains",
                ok,
                format!("a body containing {part:?}"),
                quoted(&l.body),
            );
        }
        out
    }

    /// The expectation as written, compactly: `{trigger: x, at: +1h, user: u1, outcome: sent}`.
    fn describe(&self, start: Millis) -> String {
        let mut parts = vec![format!("trigger: {}", self.trigger)];
        if let Some(at) = self.at {
            parts.push(format!("at: {}", offset(at - start)));
            if self.tolerance > 0 {
                parts.push(format!("tolerance: {}", Duration(self.tolerance)));
            }
        }
        parts.push(format!("user: {}", self.user));
        parts.push(format!("outcome: {}", self.outcome.as_str()));
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}: {v}"));
            }
        };
        opt("reason", &self.reason);
        opt("channel", &self.channel);
        opt("message", &self.message);
        opt("variant", &self.variant);
        if let Some(e) = &self.experiment {
            parts.push(format!("experiment: {}", e.as_deref().unwrap_or("null")));
        }
        if let Some(s) = &self.subject {
            parts.push(format!("subject: {s:?}"));
        }
        if let Some(b) = &self.body {
            parts.push(format!("body: {b:?}"));
        }
        if let Some(b) = &self.body_contains {
            parts.push(format!("body_contains: {b:?}"));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

impl Never {
    fn matches(&self, s: &ActualSend) -> bool {
        let l = &s.line;
        l.trigger == self.trigger
            && self.user.as_ref().is_none_or(|u| *u == l.user_id)
            && self.outcome.is_none_or(|o| o.as_str() == l.outcome)
            && self
                .reason
                .as_ref()
                .is_none_or(|r| l.reason == Some(r.as_str()))
            && self.from.is_none_or(|f| s.at >= f)
            && self.to.is_none_or(|t| s.at <= t)
    }

    fn describe(&self, start: Millis) -> String {
        let mut parts = vec![format!("trigger: {}", self.trigger)];
        if let Some(u) = &self.user {
            parts.push(format!("user: {u}"));
        }
        if let Some(o) = self.outcome {
            parts.push(format!("outcome: {}", o.as_str()));
        }
        if let Some(r) = &self.reason {
            parts.push(format!("reason: {r}"));
        }
        if let Some(f) = self.from {
            parts.push(format!("from: {}", offset(f - start)));
        }
        if let Some(t) = self.to {
            parts.push(format!("to: {}", offset(t - start)));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

impl Journey {
    /// `file: name`, as the runner prints it.
    pub fn title(&self) -> String {
        format!("{}: {}", self.file, self.name)
    }

    /// Runs the journey on a virtual clock and checks its expectations.
    pub fn run(&self, rules: &CompiledRules) -> JourneyResult {
        let mut result = JourneyResult {
            file: self.file.clone(),
            name: self.name.clone(),
            start: self.start,
            sends: Vec::new(),
            failures: Vec::new(),
            notes: Vec::new(),
        };
        let mut messages = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let label = match step.index {
                Some(i) => format!("events[{i}]"),
                None => "traits".to_string(),
            };
            let rejected = |message: String| Failure::Rejected {
                loc: step.loc,
                index: step.index,
                message,
            };
            let msg = match Message::from_json(&step.json, None) {
                Ok(m) => m,
                Err(e) => {
                    result.failures.push(rejected(e.to_string()));
                    continue;
                }
            };
            match rules.plan.check(&msg) {
                Ok(flags) => {
                    result.notes.extend(
                        flags
                            .iter()
                            .map(|f| format!("{label} ({}:{}): {f}", self.file, step.loc)),
                    );
                }
                Err(violations) => {
                    let text: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
                    result.failures.push(rejected(text.join("; ")));
                    continue;
                }
            }
            messages.push((msg, step.at));
        }
        if !result.failures.is_empty() {
            return result;
        }

        let mut replay = Replay::new(rules);
        let mut sends: Vec<Send> = Vec::new();
        let mut segment_failures = Vec::new();
        let mut checkpoints = self.checkpoints.iter().peekable();
        let mut check = |replay: &mut Replay, c: &Checkpoint, sends: &mut Vec<Send>| {
            sends.extend(replay.advance_to(c.at));
            let actual = replay.segments_of(&c.user, c.at);
            let missing: Vec<String> = c
                .member_of
                .iter()
                .filter(|s| !actual.contains(s))
                .cloned()
                .collect();
            let unexpected: Vec<String> = c
                .not_member_of
                .iter()
                .filter(|s| actual.contains(s))
                .cloned()
                .collect();
            if !missing.is_empty() || !unexpected.is_empty() {
                segment_failures.push(Failure::Segments {
                    loc: c.loc,
                    at: c.at,
                    user: c.user.clone(),
                    missing,
                    unexpected,
                    actual,
                });
            }
        };
        for (msg, at) in &messages {
            while let Some(c) = checkpoints.next_if(|c| c.at < *at) {
                check(&mut replay, c, &mut sends);
            }
            sends.extend(replay.event(msg, *at));
        }
        for c in checkpoints {
            check(&mut replay, c, &mut sends);
        }
        sends.extend(replay.finish(self.until));
        sends.sort_by_key(|s| s.at);
        result.sends = sends
            .iter()
            .map(|s| ActualSend {
                at: s.at,
                line: ReplayLine::from_send(rules, s),
            })
            .collect();

        let mut matched = vec![false; result.sends.len()];
        for e in &self.expect {
            let found = (0..result.sends.len())
                .find(|&i| !matched[i] && e.mismatches(&result.sends[i], self.start).is_empty());
            match found {
                Some(i) => matched[i] = true,
                None => {
                    let closest = (0..result.sends.len())
                        .filter(|&i| !matched[i] && result.sends[i].line.trigger == e.trigger)
                        .map(|i| (i, e.mismatches(&result.sends[i], self.start)))
                        .min_by_key(|(_, m)| m.len());
                    result.failures.push(Failure::Missing {
                        loc: e.loc,
                        expected: e.describe(self.start),
                        closest,
                    });
                }
            }
        }
        for n in &self.never {
            let hits: Vec<usize> = (0..result.sends.len())
                .filter(|&i| n.matches(&result.sends[i]))
                .collect();
            if !hits.is_empty() {
                result.failures.push(Failure::Forbidden {
                    loc: n.loc,
                    rule: n.describe(self.start),
                    sends: hits,
                });
            }
        }
        if self.exhaustive {
            let extra: Vec<usize> = (0..result.sends.len()).filter(|&i| !matched[i]).collect();
            if !extra.is_empty() {
                result.failures.push(Failure::Unexpected { sends: extra });
            }
        }
        result.failures.extend(segment_failures);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
name: journey-test
tracking_plan:
  allow_unknown_events: true
  events:
    Signed Up: {}
    Step Viewed:
      properties:
        step: {type: string, required: true}
    Profile Completed: {}
segments:
  signed_up: {ever: Signed Up}
  idle: {idle: {at_least: 10m}}
triggers:
  welcome:
    on: Signed Up
    send: {channel: in_app, message: hello}
  reminder:
    on: {event: Step Viewed, where: {step: profile}}
    wait: 24h
    cancel_on: [Profile Completed]
    send: {channel: email, message: remind}
policies:
  frequency_caps:
    - {channel: in_app, max: 1, per: 1d}
messages:
  hello:
    channel: in_app
    in_app: {title: "Hi {{ traits.first_name | default: 'there' }}", body: Welcome aboard}
  remind:
    channel: email
    email: {subject: Finish your profile, text: "Line one\nLine two"}
"#;

    fn rules() -> CompiledRules {
        crate::test_support::compile(RULES)
    }

    /// One test file holding `body` (the YAML of one test, indented as a list item).
    fn run_one(body: &str) -> JourneyResult {
        let r = rules();
        let text = format!("tests:\n{body}");
        let files = [JourneyFile {
            name: "t.yaml".into(),
            text,
        }];
        let results = match run_all(&files, &r, None) {
            Ok(results) => results,
            Err(e) => panic!(
                "test file does not parse: {}",
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        };
        assert_eq!(results.len(), 1);
        results.into_iter().next().expect("one result")
    }

    fn errors(text: &str) -> Vec<String> {
        let files = [JourneyFile {
            name: "t.yaml".into(),
            text: text.into(),
        }];
        match parse(&files, &rules()) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn plain_diff(expected: &str, actual: &str) -> String {
        format!("-{expected}\n+{actual}\n")
    }

    const PROFILE_EVENTS: &str = r#"
    traits: {first_name: Alice}
    events:
      - at: +0s
        event: Signed Up
      - at: +1m
        event: Step Viewed
        properties: {step: profile}
"#;

    #[test]
    fn a_passing_journey_matches_every_expectation() {
        // Given a sign-up and a profile step view, with exhaustive expectations and checkpoints
        let res = run_one(&format!(
            r#"  - name: welcome then reminder
{PROFILE_EVENTS}
    until: +3d
    expect:
      - {{trigger: welcome, at: +0s, channel: in_app, message: hello, variant: default, experiment: null, subject: Hi Alice, body: Welcome aboard}}
      - trigger: reminder
        at: +24h1m
        subject: Finish your profile
        body: "Line one\nLine two"
        body_contains: two
    never:
      - trigger: reminder
        to: +24h
    exhaustive: true
    segments:
      - {{at: +5m, in: [signed_up], not_in: idle}}
      - {{at: +11m, in: [signed_up, idle]}}
"#
        ));
        // Then it passes, with both sends recorded in time order
        assert!(res.passed(), "{}", res.report(&plain_diff));
        let lines: Vec<String> = res.sends.iter().map(|s| s.compact(res.start)).collect();
        assert_eq!(
            lines,
            vec![
                r#"+0s u1 welcome sent in_app/hello variant=default "Hi Alice""#,
                r#"+1d1m u1 reminder sent email/remind variant=default "Finish your profile""#,
            ]
        );
        assert_eq!(res.title(), "t.yaml: welcome then reminder");
    }

    #[test]
    fn a_missing_send_shows_the_closest_and_every_actual_send() {
        // Given an expectation one hour off
        let res = run_one(&format!(
            "  - name: wrong time\n{PROFILE_EVENTS}\n    expect:\n      - {{trigger: reminder, at: +25h1m}}\n"
        ));
        // Then the report names the expectation, the nearest send and what really happened
        assert!(!res.passed());
        let report = res.report(&plain_diff);
        assert!(report.contains("expected send not found (t.yaml:13:9): {trigger: reminder, at: +1d1h1m, user: u1, outcome: sent}"), "{report}");
        assert!(
            report.contains("closest: +1d1m u1 reminder sent"),
            "{report}"
        );
        assert!(
            report.contains("at: expected +1d1h1m, got +1d1m"),
            "{report}"
        );
        assert!(report.contains("actual sends (2):\n    +0s u1 welcome sent in_app/hello variant=default \"Hi Alice\"\n"), "{report}");
    }

    #[test]
    fn a_body_mismatch_uses_the_text_diff() {
        let res = run_one(&format!(
            "  - name: body\n{PROFILE_EVENTS}\n    expect:\n      - {{trigger: reminder, body: \"Line one\\nLine 2\"}}\n"
        ));
        let report = res.report(&plain_diff);
        assert!(
            report.contains("body differs (- expected, + actual):\n        -Line one\n"),
            "{report}"
        );
    }

    #[test]
    fn a_violated_never_fails_and_shows_the_send() {
        let res = run_one(&format!(
            "  - name: never\n{PROFILE_EVENTS}\n    never:\n      - trigger: reminder\n      - {{trigger: welcome, outcome: suppressed}}\n"
        ));
        assert_eq!(res.failures.len(), 1, "{}", res.report(&plain_diff));
        let report = res.report(&plain_diff);
        assert!(report.contains("forbidden send happened (t.yaml:13:9): never {trigger: reminder}\n    +1d1m u1 reminder sent"), "{report}");
    }

    #[test]
    fn an_exhaustive_test_reports_extra_sends() {
        let res = run_one(&format!(
            "  - name: exhaustive\n{PROFILE_EVENTS}\n    expect: [{{trigger: welcome}}]\n    exhaustive: true\n"
        ));
        assert_eq!(res.failures, vec![Failure::Unexpected { sends: vec![1] }]);
        assert!(res.report(&plain_diff).contains(
            "unexpected sends (exhaustive: no `expect` item matches them):\n    +1d1m u1 reminder"
        ));
    }

    #[test]
    fn segment_checkpoints_see_time_pass() {
        // Given checkpoints before and after the 10-minute idle mark
        let res = run_one(&format!(
            "  - name: idle\n{PROFILE_EVENTS}\n    segments:\n      - {{at: +10m, not_in: [idle]}}\n      - {{at: +11m, in: idle}}\n      - {{at: +12m, not_in: idle, in: signed_up}}\n"
        ));
        // Then only the last one fails, and says what the user was in
        assert_eq!(res.failures.len(), 1);
        let Failure::Segments {
            missing,
            unexpected,
            actual,
            ..
        } = &res.failures[0]
        else {
            panic!("not a segment failure: {:?}", res.failures)
        };
        assert!(missing.is_empty());
        assert_eq!(unexpected, &vec!["idle".to_string()]);
        assert_eq!(actual, &vec!["signed_up".to_string(), "idle".to_string()]);
        assert!(res
            .report(&plain_diff)
            .contains("segments at +12m for u1 (t.yaml:15:9):\n    expected not in: idle\n"));
    }

    #[test]
    fn tolerance_widens_the_expected_time() {
        let within = run_one(&format!("  - name: tol\n{PROFILE_EVENTS}\n    expect: [{{trigger: reminder, at: +24h, tolerance: 1m}}]\n"));
        assert!(within.passed(), "{}", within.report(&plain_diff));
        let outside = run_one(&format!("  - name: tol\n{PROFILE_EVENTS}\n    expect: [{{trigger: reminder, at: +24h, tolerance: 59s}}]\n"));
        assert!(!outside.passed());
        assert!(outside
            .report(&plain_diff)
            .contains("at: expected +1d (±59s), got +1d1m"));
    }

    #[test]
    fn suppressed_sends_match_on_reason_and_duplicates_count_once() {
        let res = run_one(
            r#"  - name: capped
    events:
      - {at: +0s, event: Signed Up}
      - {at: +1m, event: Signed Up}
      - {at: +2m, event: Signed Up, message_id: same}
      - {at: +3m, event: Signed Up, message_id: same}
    expect:
      - {trigger: welcome, at: +0s}
      - {trigger: welcome, at: +1m, reason: frequency_cap}
      - {trigger: welcome, at: +2m, outcome: suppressed, reason: frequency_cap}
    exhaustive: true
"#,
        );
        assert!(res.passed(), "{}", res.report(&plain_diff));
        assert!(res.sends[1]
            .compact(res.start)
            .starts_with("+1m u1 welcome suppressed(frequency_cap) in_app/hello"));
    }

    #[test]
    fn rejected_events_fail_the_test_naming_the_event() {
        let res = run_one("  - name: bad\n    events:\n      - {at: +0s, event: Signed Up}\n      - {at: +1m, event: Step Viewed}\n");
        assert_eq!(res.failures.len(), 1);
        let report = res.report(&plain_diff);
        assert!(
            report.contains("events[1] (t.yaml:5:9) was rejected: properties.step:"),
            "{report}"
        );
        assert!(report.contains("(the journey did not run)"));
    }

    #[test]
    fn other_users_and_call_kinds_build_valid_messages() {
        let res = run_one(
            r#"  - name: kinds
    user: alice
    events:
      - {at: +0s, event: Signed Up}
      - {at: +1m, identify: {first_name: Al}}
      - {at: +2m, page: Pricing, properties: {path: /pricing}}
      - {at: +3m, screen: Home}
      - {at: 2026-03-02T09:04:00Z, user: bob, event: Signed Up, context: {timezone: Europe/Berlin}}
    expect:
      - {trigger: welcome, at: +0s, subject: Hi there}
      - {trigger: welcome, at: +4m, user: bob}
    never:
      - {trigger: welcome, user: alice, from: +1m}
"#,
        );
        assert!(res.passed(), "{}", res.report(&plain_diff));
    }

    #[test]
    fn parse_errors_have_positions_and_hints() {
        let errs = errors(
            r#"tests:
  - name: typos
    evnets: []
    events:
      - {at: soon, event: Signed Up}
      - {at: +1m}
    expect:
      - {trigger: welcom}
      - {trigger: welcome, outcome: suppresed}
      - {trigger: welcome, reason: frequency}
      - {trigger: welcome, outcome: suppressed}
      - {trigger: welcome, tolerance: 1s}
    never:
      - user: u1
    segments:
      - {at: +1m, in: [idel]}
      - {at: +99d}
"#,
        );
        let expected = [
            "t.yaml:3:5: unknown key `evnets` in a test (did you mean `events`?)",
            "t.yaml:5:14: at: `soon` is neither +DURATION (after start, e.g. `+24h`) nor an RFC 3339 time",
            "t.yaml:6:9: events[1] needs one of `event`, `identify`, `page`, `screen`",
            "t.yaml:8:19: unknown trigger `welcom` (did you mean `welcome`?)",
            "t.yaml:9:37: unknown outcome `suppresed` (did you mean `suppressed`?)",
            "t.yaml:10:36: unknown reason `frequency`",
            "t.yaml:11:9: an expected suppressed send needs `reason`",
            "t.yaml:12:39: tolerance needs `at`",
            "t.yaml:14:9: a never item needs `trigger`",
            "t.yaml:16:24: unknown segment `idel` (did you mean `idle`?)",
            "t.yaml:17:9: a segments checkpoint needs `in` or `not_in`",
            "t.yaml:17:14: the checkpoint (+99d) is after `until` (+30d)",
        ];
        for e in expected {
            assert!(
                errs.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in:\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), expected.len(), "{}", errs.join("\n"));
    }

    #[test]
    fn yaml_and_structure_errors_have_positions() {
        assert_eq!(
            errors("tests:\n  - name: a\n    name: b\n"),
            vec!["t.yaml:3:5: duplicate key `name` (first defined on line 2)"]
        );
        assert_eq!(
            errors("test: []\n")[0],
            "t.yaml:1:1: unknown key `test` in a journey test file (did you mean `tests`?)"
        );
        assert_eq!(
            errors("tests:\n  - name: same\n  - name: same\n"),
            vec!["t.yaml:3:5: duplicate test name `same` (first on line 2)"]
        );
        assert_eq!(
            errors("tests:\n  - name: x\n    events: [{at: +1h, event: A}]\n    until: +1m\n"),
            vec!["t.yaml:4:12: until (+1m) is before the last event (+1h)"]
        );
        assert!(errors("tests: [\n")[0].starts_with("t.yaml:"));
    }

    #[test]
    fn filter_selects_by_title() {
        let text = "tests:\n  - name: alpha\n  - name: beta\n".to_string();
        let files = [JourneyFile {
            name: "f.yaml".into(),
            text,
        }];
        let res = run_all(&files, &rules(), Some("f.yaml: be")).unwrap_or_default();
        assert_eq!(res.len(), 1);
        assert_eq!(res[0].name, "beta");
        assert!(res[0].passed());
    }
}
