//! `nudge explain`: replays the events up to an instant and tells, for one user, why each
//! trigger did or did not fire.

use crate::replay_cmd;
use nudge_core::explain::{self, Activity, Evidence, ExplainError};
use nudge_core::replay::Replay;
use nudge_core::time::{format_instant, parse_instant, Duration, Millis};
use nudge_service::rules_dir;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

/// What `nudge explain` was asked.
pub struct Args<'a> {
    pub rules: &'a Path,
    pub user: &'a str,
    pub events: &'a Path,
    pub trigger: Option<&'a str>,
    pub at: Option<&'a str>,
    pub json: bool,
}

/// Why `nudge explain` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ExplainCmdError {
    #[error("{0}")]
    Rules(#[from] rules_dir::LoadError),
    #[error("cannot read {path}: {source}")]
    Input {
        path: String,
        source: std::io::Error,
    },
    #[error("--at: `{0}` is neither an RFC 3339 time nor +DURATION")]
    At(String),
    #[error("--at: {0}")]
    AtDuration(#[from] nudge_core::time::DurationError),
    #[error("user `{user}` has no events in {path}")]
    UnknownUser { user: String, path: String },
    #[error("user `{user}` has no events at or before {at} (the first is at {first})")]
    TooEarly {
        user: String,
        at: String,
        first: String,
    },
    #[error(transparent)]
    Explain(#[from] ExplainError),
}

impl ExplainCmdError {
    /// 1 for a question about what is not there (user, trigger), 2 for unusable input.
    fn exit_code(&self) -> ExitCode {
        match self {
            ExplainCmdError::UnknownUser { .. }
            | ExplainCmdError::TooEarly { .. }
            | ExplainCmdError::Explain(_) => ExitCode::FAILURE,
            _ => ExitCode::from(2),
        }
    }
}

/// Runs the command; errors go to stderr.
pub fn run(args: &Args<'_>) -> ExitCode {
    let result = explain_to_stdout(args);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}

fn explain_to_stdout(args: &Args<'_>) -> Result<(), ExplainCmdError> {
    let rules = rules_dir::load(args.rules)?;
    let name = args.events.display().to_string();
    let io = |source| ExplainCmdError::Input {
        path: name.clone(),
        source,
    };
    let input = if name == "-" {
        replay_cmd::read_input(std::io::stdin().lock(), &rules).map_err(io)?
    } else {
        let file = std::fs::File::open(args.events).map_err(io)?;
        replay_cmd::read_input(BufReader::new(file), &rules).map_err(io)?
    };
    if input.rejected > 0 {
        eprintln!(
            "{name}: {} line{} rejected and left out (`nudge replay` lists them)",
            input.rejected,
            if input.rejected == 1 { "" } else { "s" }
        );
    }
    let mut times = input
        .events
        .iter()
        .filter(|(m, _)| m.user_key() == args.user) // not a secret: the user id
        .map(|(_, at)| *at);
    let Some(first) = times.next() else {
        return Err(ExplainCmdError::UnknownUser {
            user: args.user.to_string(),
            path: name,
        });
    };
    let last = times.next_back().unwrap_or(first);
    let at = at(args.at, first, last)?;
    if at < first {
        return Err(ExplainCmdError::TooEarly {
            user: args.user.to_string(),
            at: format_instant(at),
            first: format_instant(first),
        });
    }

    // Everyone's events run, so that the virtual clock and timers are as in `nudge replay`.
    let mut replay = Replay::new(&rules);
    replay.record_decisions_of(args.user);
    for (m, when) in input.events.iter().take_while(|(_, when)| *when <= at) {
        replay.event(m, *when);
    }
    replay.advance_to(at);
    let Some(state) = replay.state(args.user) else {
        // Only messages that are not the user's own (none) leave no state.
        return Err(ExplainCmdError::TooEarly {
            user: args.user.to_string(),
            at: format_instant(at),
            first: format_instant(first),
        });
    };
    let activities = Activity::of_user(&input.events, args.user, at);
    let evidence = Evidence {
        rules: &rules,
        user_id: args.user,
        state,
        decisions: replay.decisions_of(args.user),
        activities: &activities,
        at,
    };
    let explanation = explain::explain(&evidence, args.trigger)?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &explanation)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
    } else {
        write!(out, "{explanation}")
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ExplainCmdError::Input {
            path: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// `--at`: an RFC 3339 time, or +DURATION after the user's first event; by default the
/// user's last event.
fn at(spec: Option<&str>, first: Millis, last: Millis) -> Result<Millis, ExplainCmdError> {
    match spec {
        None => Ok(last),
        Some(s) => match s.strip_prefix('+') {
            Some(d) => Ok(first.saturating_add(Duration::parse(d)?.0)),
            None => parse_instant(s).map_err(|_| ExplainCmdError::At(s.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_reads_instants_and_offsets_from_the_first_event() {
        let first = parse_instant("2026-03-02T08:00:00Z").expect("instant");
        let last = parse_instant("2026-03-02T09:00:00Z").expect("instant");
        assert_eq!(at(None, first, last).ok(), Some(last));
        assert_eq!(
            at(Some("+1h30m"), first, last).ok(),
            parse_instant("2026-03-02T09:30:00Z").ok()
        );
        assert_eq!(
            at(Some("2026-03-05T00:00:00+01:00"), first, last).ok(),
            parse_instant("2026-03-04T23:00:00Z").ok()
        );
        assert!(matches!(
            at(Some("tomorrow"), first, last),
            Err(ExplainCmdError::At(_))
        ));
        assert!(matches!(
            at(Some("+soon"), first, last),
            Err(ExplainCmdError::AtDuration(_))
        ));
    }
}
