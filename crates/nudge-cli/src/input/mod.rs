//! Replay input streamed, not held: `nudge replay` and `nudge report` read a file (or stdin) of
//! Segment messages in time order with memory bounded by what the replay keeps (users' state,
//! timers), not by the file. A file in time order streams as it is; one that is not is sorted
//! first, stably and through temporary files (`sort.rs`). Lines are parsed on every core and
//! handed on in order (`parse.rs`). Whether a file is in order is read cheaply from the
//! timestamps alone (`stamp.rs`); stdin is spooled to a temporary file on the way.

mod parse;
mod sort;
mod stamp;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::Path;

use nudge_core::event::Message;
use nudge_core::rules::CompiledRules;
use nudge_core::time::Millis;

pub use parse::parse_line;

/// One line of the input and its 1-based number in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub number: usize,
    pub text: String,
}

/// What one line became.
// Nearly every line is an Event: boxing its message would allocate once more per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// A message replay takes, with what the tracking plan flags about it.
    Event {
        line: usize,
        msg: Message,
        at: Millis,
        flags: Vec<String>,
    },
    /// A line replay skips, and why.
    Rejected { line: usize, message: String },
}

/// Threads that parse lines: every core (the caller's thread runs the engine beside them).
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Reads the messages of `path` (`-`: stdin) in time order (equal instants in file order) and
/// hands each, parsed, to `sink`. Returns whether the input had to be sorted.
pub fn each_event(
    path: &Path,
    rules: &CompiledRules,
    sink: impl FnMut(Parsed) -> io::Result<()>,
) -> io::Result<bool> {
    let (mut file, ordered) = if path.as_os_str() == "-" {
        spool(io::stdin().lock())?
    } else {
        let mut file = File::open(path)?;
        let ordered = in_time_order(BufReader::with_capacity(1 << 20, &mut file))?;
        file.rewind()?;
        (file, ordered)
    };
    if ordered {
        let mut lines = BufReader::with_capacity(1 << 20, &mut file);
        let mut number = 0;
        let next = || -> io::Result<Option<Line>> {
            loop {
                let mut text = String::new();
                if lines.read_line(&mut text)? == 0 {
                    return Ok(None);
                }
                number += 1;
                if text.trim().is_empty() {
                    continue;
                }
                return Ok(Some(Line { number, text }));
            }
        };
        parse::parse_all(next, rules, workers(), sink)?;
    } else {
        let mut sorted = sort::Sorted::new(BufReader::with_capacity(1 << 20, file))?;
        parse::parse_all(|| sorted.next_line(), rules, workers(), sink)?;
    }
    Ok(!ordered)
}

/// Whether every line's instant is at or after the one before (lines replay rejects aside).
fn in_time_order(input: impl BufRead) -> io::Result<bool> {
    let mut last = Millis::MIN;
    for line in input.lines() {
        if let Some(at) = stamp::stamp(&line?) {
            if at < last {
                return Ok(false);
            }
            last = at;
        }
    }
    Ok(true)
}

/// Copies `input` to a temporary file, noting whether it is in time order.
fn spool(input: impl BufRead) -> io::Result<(File, bool)> {
    let mut file = tempfile::tempfile()?;
    let mut ordered = true;
    let mut last = Millis::MIN;
    {
        let mut w = BufWriter::with_capacity(1 << 20, &mut file);
        for line in input.lines() {
            let line = line?;
            if ordered {
                if let Some(at) = stamp::stamp(&line) {
                    ordered = at >= last;
                    last = at;
                }
            }
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    file.rewind()?;
    Ok((file, ordered))
}
