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
//!     report:                       # counts of the run's report (see `measures.rs`)
//!       - {trigger: profile-reminder, sent: 1, converted: 1}
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
//!
//! Files: `parse/` reads test files into [`Journey`]s (`expect.rs` the expected sends),
//! `run.rs` runs one and matches the sends it produced against its expectations,
//! `measures.rs` reads and checks `report` items, `report.rs` writes a result up for people.

mod measures;
mod parse;
mod report;
mod run;
#[cfg(test)]
mod test_support;

pub use parse::parse;

use crate::replay::ReplayLine;
use crate::rules::model::Pos;
use crate::rules::{CompiledRules, RuleError};
use crate::time::{Duration, Millis};
use measures::MeasureExpect;
use serde_json::Value;
use std::fmt;

/// When a test starts unless it says otherwise (a Monday morning, UTC).
pub const DEFAULT_START: &str = "2026-03-02T09:00:00Z";
/// The user of a test unless it says otherwise.
pub const DEFAULT_USER: &str = "u1";

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
    /// Counts the run's report must have.
    measures: Vec<MeasureExpect>,
}

/// A send that happened during a journey.
#[derive(Debug, Clone, PartialEq)]
pub struct ActualSend {
    pub at: Millis,
    pub line: ReplayLine,
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
    /// A count of the run's report differed from a `report` item.
    Measure {
        loc: Loc,
        row: String,
        field: String,
        expected: f64,
        actual: f64,
    },
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
}

/// `+1h30m` for offsets from a journey's start (`-…` before it).
pub fn offset(ms: i64) -> String {
    if ms < 0 {
        format!("-{}", Duration(ms.saturating_neg()))
    } else {
        format!("+{}", Duration(ms))
    }
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

impl Journey {
    /// `file: name`, as the runner prints it.
    pub fn title(&self) -> String {
        format!("{}: {}", self.file, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::rules;
    use super::*;

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
