//! `nudge test`: runs the journey tests in `DIR/tests/*.yaml` and reports like a test runner.
//!
//! Exit codes: 0 when every test passes, 1 when one fails (or there are no tests to run), 2
//! when the rule set or a test file has mistakes.

use nudge_core::journey::{self, JourneyFile, JourneyResult};
use nudge_service::rules_dir;
use similar::{ChangeTag, TextDiff};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs `nudge test --rules DIR [--filter SUBSTRING]`.
pub fn run(dir: &Path, filter: Option<&str>) -> ExitCode {
    let rules = match rules_dir::load(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let tests_dir = dir.join("tests");
    let files = match read_files(&tests_dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot read journey tests in {}: {e}", tests_dir.display());
            return ExitCode::from(2);
        }
    };
    let journeys = match journey::parse(&files, &rules) {
        Ok(j) => j,
        Err(errors) => {
            for e in &errors {
                eprintln!(
                    "{}:{}:{}: {}",
                    tests_dir.join(&e.file).display(),
                    e.line,
                    e.col,
                    e.message
                );
            }
            let s = if errors.len() == 1 { "" } else { "s" };
            eprintln!("{} error{s} in {}", errors.len(), tests_dir.display());
            return ExitCode::from(2);
        }
    };
    if journeys.is_empty() {
        eprintln!("no journey tests in {}", tests_dir.display());
        return ExitCode::FAILURE;
    }
    let total = journeys.len();
    let selected: Vec<_> = journeys
        .iter()
        .filter(|j| filter.is_none_or(|f| j.title().contains(f)))
        .collect();
    if selected.is_empty() {
        eprintln!(
            "no journey tests match `{}` ({total} in {})",
            filter.unwrap_or_default(),
            tests_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match report(&mut out, &tests_dir, total, &selected, &rules) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // The reader went away (`nudge test | head`): the outcome still counts.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cannot write output: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the selected journeys, printing as they go; true when all passed.
fn report(
    out: &mut impl Write,
    tests_dir: &Path,
    total: usize,
    selected: &[&journey::Journey],
    rules: &nudge_core::rules::CompiledRules,
) -> std::io::Result<bool> {
    let n = selected.len();
    let filtered = if total > n {
        format!(" ({} filtered out)", total - n)
    } else {
        String::new()
    };
    let s = if n == 1 { "" } else { "s" };
    writeln!(
        out,
        "running {n} journey test{s} from {}{filtered}",
        tests_dir.display()
    )?;
    let mut failed: Vec<JourneyResult> = Vec::new();
    for j in selected {
        let result = j.run(rules);
        let verdict = if result.passed() { "ok" } else { "FAILED" };
        writeln!(out, "test {} ... {verdict}", result.title())?;
        out.flush()?;
        if !result.passed() {
            failed.push(result);
        }
    }
    if !failed.is_empty() {
        writeln!(out, "\nfailures:")?;
        for f in &failed {
            writeln!(out, "---- {} ----", f.title())?;
            write!(out, "{}", f.report(&text_diff))?;
            writeln!(out)?;
        }
    } else {
        writeln!(out)?;
    }
    let passed = n - failed.len();
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    writeln!(
        out,
        "test result: {verdict}. {passed} passed, {} failed",
        failed.len()
    )?;
    out.flush()?;
    Ok(failed.is_empty())
}

/// A line diff of two texts: `-` expected, `+` actual, ` ` both.
fn text_diff(expected: &str, actual: &str) -> String {
    let diff = TextDiff::from_lines(expected, actual);
    let mut s = String::new();
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            ChangeTag::Delete => '-',
            ChangeTag::Insert => '+',
            ChangeTag::Equal => ' ',
        };
        s.push(sign);
        s.push_str(change.value().trim_end_matches('\n'));
        s.push('\n');
    }
    s
}

/// The test files (`*.yaml`, `*.yml`) of a directory, sorted, named relative to it; none
/// when the directory does not exist.
fn read_files(dir: &Path) -> std::io::Result<Vec<JourneyFile>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(JourneyFile { name, text })
        })
        .collect()
}
