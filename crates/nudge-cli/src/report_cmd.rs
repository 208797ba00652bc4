//! `nudge report`: what these rules would have done on a history of events, and what it
//! converted: the report `nudge serve` and the AWS API answer, computed by replaying a file.

use std::path::Path;
use std::process::ExitCode;

use nudge_core::insights::{text, Period};
use nudge_core::replay::Replay;

use crate::input::{Order, OutOfOrder};
use nudge_core::time::parse_instant;
use nudge_service::rules_dir;

use crate::{replay_cmd, report_html};

/// How the report is printed.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Html,
}

pub struct Args<'a> {
    pub rules: &'a Path,
    pub until: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub format: Format,
    pub out: Option<&'a Path>,
    pub events: &'a Path,
}

pub fn run(args: &Args) -> ExitCode {
    let rules = match rules_dir::load(args.rules) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let name = args.events.display().to_string();
    let instant = |spec: Option<&str>, what: &str| match spec {
        None => Ok(None),
        Some(s) => parse_instant(s)
            .map(Some)
            .map_err(|e| format!("--{what} `{s}` is not an RFC 3339 time: {e}")),
    };
    let (from, to) = match (instant(args.from, "from"), instant(args.to, "to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            eprintln!("--from must not be after --to");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = replay_cmd::until(args.until, None) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    // Counted over the period given; an open end counts everything on that side (nothing
    // happens before the first event or after `--until`), and is named once they are known.
    let counted = Period {
        from: from.map_or(i64::MIN, |f| Period::covering(f, f).from),
        to: to.map_or(i64::MAX, |t| Period::covering(t, t).to),
    };
    // A report writes nothing before the end: a file is trusted to be in time order, and
    // read again, sorted, from the start if it is not (saving a pass over every file in order).
    let mut replay = Replay::new(&rules);
    replay.measure_aside(counted);
    let mut streamed = replay_cmd::stream(
        args.events,
        &name,
        &mut replay,
        &rules,
        Order::Trust,
        0,
        |_| Ok(()),
    );
    if let Some(unordered) = streamed.as_ref().err().and_then(OutOfOrder::of) {
        let line = unordered.line;
        replay = Replay::new(&rules);
        replay.measure_aside(counted);
        streamed = replay_cmd::stream(
            args.events,
            &name,
            &mut replay,
            &rules,
            Order::Sort,
            line,
            |_| Ok(()),
        );
    }
    let streamed = match streamed {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot read {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let until = match replay_cmd::until(args.until, streamed.last) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    replay.finish(until);
    if from.is_some_and(|f| f > to.unwrap_or(until)) {
        eprintln!("--from must not be after --to (default: --until)");
        return ExitCode::from(2);
    }
    let shown = Period::covering(
        from.unwrap_or(streamed.first.unwrap_or(until)),
        to.unwrap_or(until),
    );
    let Some(report) = replay.report_over(shown) else {
        return ExitCode::from(2);
    };
    let written = match args.format {
        Format::Json => serde_json::to_string_pretty(&report).map(|s| s + "\n"),
        Format::Html => report_html::page(&report),
        Format::Text => Ok(text::render(&report)),
    };
    let written = match written {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot write the report: {e}");
            return ExitCode::from(2);
        }
    };
    match args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, written) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        None => print!("{written}"),
    }
    if streamed.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
