//! `nudge report`: what these rules would have done on a history of events, and what it
//! converted: the report `nudge serve` and the AWS API answer, computed by replaying a file.

use std::io::BufReader;
use std::path::Path;
use std::process::ExitCode;

use nudge_core::insights::{text, Period};
use nudge_core::replay::Replay;
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
    let input = if name == "-" {
        replay_cmd::read_input(std::io::stdin().lock(), &rules)
    } else {
        match std::fs::File::open(args.events) {
            Ok(f) => replay_cmd::read_input(BufReader::new(f), &rules),
            Err(e) => {
                eprintln!("cannot open {name}: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let input = match input {
        Ok(i) => i,
        Err(e) => {
            eprintln!("cannot read {name}: {e}");
            return ExitCode::from(2);
        }
    };
    for r in &input.rejected {
        eprintln!("{name}:{}: rejected: {}", r.line, r.message);
    }
    let first = input.events.first().map(|(_, at)| *at);
    let last = input.events.last().map(|(_, at)| *at);
    let until = match replay_cmd::until(args.until, last) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let instant = |spec: Option<&str>, default: i64, what: &str| match spec {
        None => Ok(default),
        Some(s) => {
            parse_instant(s).map_err(|e| format!("--{what} `{s}` is not an RFC 3339 time: {e}"))
        }
    };
    let period = match (
        instant(args.from, first.unwrap_or(until), "from"),
        instant(args.to, until, "to"),
    ) {
        (Ok(from), Ok(to)) if from <= to => Period::covering(from, to),
        (Ok(_), Ok(_)) => {
            eprintln!("--from must not be after --to");
            return ExitCode::from(2);
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut replay = Replay::new(&rules);
    replay.measure(period);
    for (m, at) in &input.events {
        replay.event(m, *at);
    }
    replay.finish(until);
    let Some(report) = replay.report() else {
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
    if input.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
