//! The `nudge` command line.

mod allocator;
mod explain_cmd;
mod input;
mod replay_cmd;
mod replay_lines;
mod report_cmd;
mod report_html;
mod serve_cmd;
use nudge_service::rules_dir;
mod test_cmd;

use clap::{Parser, Subcommand};

use input::Order;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nudge",
    version,
    about = "Behavioral trigger engine for product onboarding"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a rule set; every mistake is printed as file:line:col: message.
    Validate {
        /// The rule set directory (every *.yaml file in it).
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
    },
    /// Check a rule set and save it compiled beside its files (DIR/nudge-compiled.json), which
    /// later loads read instead of the YAML while the files are unchanged (Lambda cold starts).
    Compile {
        /// The rule set directory (every *.yaml file in it).
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
    },
    /// Run Segment JSONL events through the engine on a virtual clock; one JSON line per send decision.
    Replay {
        /// The rule set directory (every *.yaml file in it).
        #[arg(long)]
        rules: PathBuf,
        /// Stop the clock at this RFC 3339 time or +DURATION after the last event (default +30d).
        #[arg(long)]
        until: Option<String>,
        /// Print counts (events, duplicates, users, sent, suppressed) to stderr at the end.
        #[arg(long)]
        stats: bool,
        /// Segment messages, one JSON object a line (`-` for stdin).
        events: PathBuf,
    },
    /// Tell why each trigger did or did not fire for one user, replaying events up to an instant.
    Explain {
        #[arg(long)]
        rules: PathBuf,
        /// The user (userId, or anonymousId when there is none).
        #[arg(long)]
        user: String,
        /// Only this trigger.
        #[arg(long)]
        trigger: Option<String>,
        /// Read state at this RFC 3339 time or +DURATION after the user's first event (default: the user's last event).
        #[arg(long)]
        at: Option<String>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Segment messages, one JSON object a line (`-` for stdin).
        events: PathBuf,
    },
    /// What the rules would have done on a history of events, and what it converted: the
    /// report of `GET /v1/admin/reports`, computed by replaying the file on a virtual clock.
    Report {
        /// The rule set directory (every *.yaml file in it).
        #[arg(long)]
        rules: PathBuf,
        /// Stop the clock at this RFC 3339 time or +DURATION after the last event (default +30d).
        #[arg(long)]
        until: Option<String>,
        /// Start of the period reported (RFC 3339; default: the first event), rounded down to the hour.
        #[arg(long)]
        from: Option<String>,
        /// End of the period reported (RFC 3339; default: `--until`), rounded up to the hour.
        #[arg(long)]
        to: Option<String>,
        /// `text` for people, `json` for the API's shape, `html` for a self-contained page.
        #[arg(long, value_enum, default_value = "text")]
        format: report_cmd::Format,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Segment messages, one JSON object a line (`-` for stdin).
        events: PathBuf,
    },
    /// Run the engine as one local process: HTTP API, embedded store, timers and channels.
    Serve(serve_cmd::ServeArgs),
    /// Run the journey tests in DIR/tests/*.yaml against the rule set in DIR.
    Test {
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// Only tests whose `file: name` contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { rules } => validate(&rules),
        Command::Compile { rules } => match rules_dir::compile(&rules) {
            Ok(path) => {
                println!("{}: compiled to {}", rules.display(), path.display());
                ExitCode::SUCCESS
            }
            Err(e) => load_failure(&rules, e),
        },
        Command::Replay {
            rules,
            until,
            stats,
            events,
        } => {
            allocator::keep_freed_memory();
            replay(&rules, until.as_deref(), stats, &events)
        }
        Command::Explain {
            rules,
            user,
            trigger,
            at,
            json,
            events,
        } => {
            allocator::keep_freed_memory();
            explain_cmd::run(&explain_cmd::Args {
                rules: &rules,
                user: &user,
                events: &events,
                trigger: trigger.as_deref(),
                at: at.as_deref(),
                json,
            })
        }
        Command::Report {
            rules,
            until,
            from,
            to,
            format,
            out,
            events,
        } => {
            allocator::keep_freed_memory();
            report_cmd::run(&report_cmd::Args {
                rules: &rules,
                until: until.as_deref(),
                from: from.as_deref(),
                to: to.as_deref(),
                format,
                out: out.as_deref(),
                events: &events,
            })
        }
        Command::Test { rules, filter } => test_cmd::run(&rules, filter.as_deref()),
        Command::Serve(args) => serve_cmd::run(args),
    }
}

fn validate(dir: &std::path::Path) -> ExitCode {
    match rules_dir::load(dir) {
        Ok(r) => {
            println!(
                "{}: ok ({} events in the tracking plan, {} segments, {} triggers, {} messages, {} experiments, {} goals, {} funnels, {} state slots)",
                dir.display(),
                r.plan.events.len(),
                r.segments.len(),
                r.triggers.len(),
                r.messages.len(),
                r.experiments.len(),
                r.goals.len(),
                r.funnels.len(),
                r.slots.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => load_failure(dir, e),
    }
}

/// Prints why a rule set did not load (every mistake, then their count) and fails.
fn load_failure(dir: &std::path::Path, e: rules_dir::LoadError) -> ExitCode {
    match e {
        rules_dir::LoadError::Rules(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{} error{} in {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                dir.display()
            );
        }
        e => eprintln!("{e}"),
    }
    ExitCode::FAILURE
}

fn replay(
    dir: &std::path::Path,
    until: Option<&str>,
    stats: bool,
    events: &std::path::Path,
) -> ExitCode {
    let rules = match rules_dir::load(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // `--until` as an instant is known before the input; as +DURATION only after it.
    if let Err(e) = replay_cmd::until(until, None) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let name = events.display().to_string();
    let mut replay = nudge_core::replay::Replay::new(&rules);
    let result = std::thread::scope(|scope| {
        let out = std::io::BufWriter::new(std::io::stdout());
        let mut lines = replay_lines::ReplayLines::spawn(scope, &rules, out);
        // Its lines go out as they are decided: the order is checked first.
        let streamed =
            replay_cmd::stream(events, &name, &mut replay, &rules, Order::Check, 0, |s| {
                lines.write(s)
            })
            .and_then(|streamed| {
                let until =
                    replay_cmd::until(until, streamed.last).map_err(std::io::Error::other)?;
                for s in replay.finish(until) {
                    lines.write(s)?;
                }
                Ok(streamed)
            });
        // A write error (a closed pipe) is the cause of whatever stopped the stream.
        let written = lines.finish();
        written.and(streamed)
    });
    match result {
        Ok(streamed) => {
            if stats {
                let s = &replay.stats;
                eprintln!(
                    "events {} (duplicates {}, rejected {}), users {}, sent {}, suppressed {}",
                    s.events, s.duplicates, streamed.rejected, s.users, s.sent, s.suppressed
                );
            }
            if streamed.rejected == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("cannot open {name}: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("cannot replay {name}: {e}");
            ExitCode::from(2)
        }
    }
}
