//! `nudge replay`: Segment JSONL in, one JSON line per send decision out.

use nudge_core::event::Message;
use nudge_core::replay::{Replay, ReplayLine};
use nudge_core::rules::CompiledRules;
use nudge_core::time::{parse_instant, Duration, Millis};
use std::io::{BufRead, Write};

/// A rejected input line.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub line: usize,
    pub message: String,
}

/// Parsed input: time-ordered messages, rejected lines and tracking-plan flags.
pub struct Input {
    pub events: Vec<(Message, Millis)>,
    pub rejected: Vec<Rejected>,
    pub flagged: Vec<Rejected>,
}

/// Reads Segment messages, one JSON object a line; blank lines are skipped.
pub fn read_input(reader: impl BufRead, rules: &CompiledRules) -> std::io::Result<Input> {
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    let mut flagged = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                rejected.push(Rejected {
                    line: n,
                    message: format!("malformed JSON: {e}"),
                });
                continue;
            }
        };
        let msg = match Message::from_json(&value, None) {
            Ok(m) => m,
            Err(e) => {
                rejected.push(Rejected {
                    line: n,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let Some(at) = msg.timestamp else {
            rejected.push(Rejected {
                line: n,
                message: "timestamp: replay needs a timestamp on every message".into(),
            });
            continue;
        };
        match rules.plan.check(&msg) {
            Ok(flags) => flagged.extend(flags.into_iter().map(|f| Rejected {
                line: n,
                message: format!("{}: {}", f.field, f.message),
            })),
            Err(violations) => {
                let text: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
                rejected.push(Rejected {
                    line: n,
                    message: text.join("; "),
                });
                continue;
            }
        }
        events.push((msg, at));
    }
    // Time order; equal instants keep the file's order.
    events.sort_by_key(|(_, at)| *at);
    Ok(Input {
        events,
        rejected,
        flagged,
    })
}

/// Why `--until` was refused.
#[derive(Debug, thiserror::Error)]
pub enum UntilError {
    #[error("--until: {0}")]
    Duration(#[from] nudge_core::time::DurationError),
    #[error("--until: `{text}` is neither an RFC 3339 time nor +DURATION: {source}")]
    Instant {
        text: String,
        #[source]
        source: jiff::Error,
    },
}

/// When the virtual clock stops: an instant, or a duration after the last event.
pub fn until(spec: Option<&str>, last: Option<Millis>) -> Result<Millis, UntilError> {
    let last = last.unwrap_or(0);
    match spec {
        None => Ok(last + Duration::parse("30d").map(|d| d.0).unwrap_or(0)),
        Some(s) if s.starts_with('+') => Ok(last + Duration::parse(&s[1..])?.0),
        Some(s) => parse_instant(s).map_err(|source| UntilError::Instant {
            text: s.to_string(),
            source,
        }),
    }
}

/// Runs the replay and writes its lines.
pub fn run(
    rules: &CompiledRules,
    input: &Input,
    until: Millis,
    out: &mut impl Write,
) -> std::io::Result<nudge_core::replay::ReplayStats> {
    let mut replay = Replay::new(rules);
    for (m, at) in &input.events {
        for s in replay.event(m, *at) {
            write_line(rules, &s, out)?;
        }
    }
    for s in replay.finish(until) {
        write_line(rules, &s, out)?;
    }
    Ok(replay.stats.clone())
}

fn write_line(
    rules: &CompiledRules,
    s: &nudge_core::engine::Send,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let line = ReplayLine::from_send(rules, s);
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
