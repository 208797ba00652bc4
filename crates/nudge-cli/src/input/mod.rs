//! Replay input streamed, not held: `nudge replay` and `nudge report` read a file (or stdin) of
//! Segment messages in time order with memory bounded by what the replay keeps (users' state,
//! timers), not by the file. A file in time order streams as it is; one that is not is sorted
//! first, stably and through temporary files (`sort.rs`). Lines are parsed on every core and
//! handed on in order (`parse.rs`). Whether a file is in order is read cheaply from the
//! timestamps alone (`stamp.rs`); stdin (or a pipe) is spooled to a temporary file on the way.

mod line;
mod order;
mod parse;
mod sort;
mod stamp;

pub use line::{is_blank, read_line_bytes, Line};
pub use order::{Order, OutOfOrder};

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

use nudge_core::event::Message;
use nudge_core::rules::CompiledRules;
use nudge_core::time::Millis;

pub use parse::parse_line;

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
        /// Its messageId was not applied within the dedup window before: set by
        /// `each_event` in time order (`order.rs`); `true` from `parse_line` alone.
        first_seen: bool,
    },
    /// A line replay skips, and why.
    Rejected { line: usize, message: String },
}

/// Threads that parse lines: every core (the caller's thread runs the engine beside them).
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Reads the messages of `path` (`-`: stdin) in time order (equal instants in file order) and
/// hands each, parsed, to `sink`.
pub fn each_event(
    path: &Path,
    rules: &CompiledRules,
    order: Order,
    sink: impl FnMut(Parsed) -> io::Result<()>,
) -> io::Result<()> {
    // Only a file is trusted: stdin and pipes are spooled, and their order known on the way.
    let mut trusted = false;
    let (mut file, ordered) = if path.as_os_str() == "-" {
        spool(io::stdin().lock())?
    } else {
        let mut file = File::open(path)?;
        if file.metadata()?.is_file() {
            let ordered = match order {
                Order::Check => in_time_order(&mut file, workers())?,
                Order::Trust => {
                    trusted = true;
                    true
                }
                Order::Sort => false,
            };
            file.rewind()?;
            (file, ordered)
        } else {
            // A pipe or a device cannot be read twice: spooled like stdin.
            spool(BufReader::with_capacity(1 << 20, file))?
        }
    };
    let ordered = ordered && order != Order::Sort;
    if ordered {
        let mut lines = BufReader::with_capacity(1 << 20, &mut file);
        let mut number = 0;
        // Read into one buffer, then copied at its length: one allocation a line instead of
        // a string grown a few times over.
        let mut scratch = Vec::with_capacity(4096);
        let next = || -> io::Result<Option<Line>> {
            loop {
                if !line::read_line_bytes(&mut lines, &mut scratch)? {
                    return Ok(None);
                }
                number += 1;
                if line::is_blank(&scratch) {
                    continue;
                }
                return Ok(Some(Line::new(number, scratch.as_slice().to_owned())));
            }
        };
        parse::parse_all(next, rules, workers(), order::in_order(trusted), sink)?;
    } else {
        let mut sorted = sort::Sorted::new(BufReader::with_capacity(1 << 20, file))?;
        parse::parse_all(
            || sorted.next_line(),
            rules,
            workers(),
            order::in_order(false),
            sink,
        )?;
    }
    Ok(())
}

/// Whether every line's instant is at or after the one before (lines replay rejects aside).
/// Blocks of the file are read here and their timestamps on every core.
fn in_time_order(mut input: impl Read, workers: usize) -> io::Result<bool> {
    /// First and last instant of a block, and whether it is in order inside.
    type Summary = (Option<Millis>, Option<Millis>, bool);
    fn summary(block: &[u8]) -> Summary {
        let (mut first, mut last, mut ordered) = (None, None, true);
        for line in block.split(|b| *b == b'\n') {
            let Some(at) = std::str::from_utf8(line).ok().and_then(stamp::stamp) else {
                continue;
            };
            if last.is_some_and(|l| at < l) {
                ordered = false;
            }
            first.get_or_insert(at);
            last = Some(at);
        }
        (first, last, ordered)
    }
    const BLOCK: usize = 4 << 20;
    let workers = workers.max(1);
    std::thread::scope(|scope| {
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for _ in 0..workers {
            let (to_worker, from_main) = std::sync::mpsc::channel::<Vec<u8>>();
            let (to_main, from_worker) = std::sync::mpsc::channel::<(Summary, Vec<u8>)>();
            scope.spawn(move || {
                for block in from_main {
                    if to_main.send((summary(&block), block)).is_err() {
                        break;
                    }
                }
            });
            inputs.push(to_worker);
            outputs.push(from_worker);
        }
        let mut carry: Vec<u8> = Vec::new();
        // Blocks come back from the workers to be read into again: a new 4 MB block each
        // time cost the kernel more, zeroing fresh pages, than reading the file.
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut in_flight = std::collections::VecDeque::new();
        let (mut sent, mut last, mut eof) = (0usize, None::<Millis>, false);
        loop {
            while !eof && in_flight.len() < 2 * workers {
                // Room for the carried line too, so a block is not grown when it comes back.
                let mut block = spare
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(BLOCK + (64 << 10)));
                block.clear();
                block.reserve(carry.len() + BLOCK);
                block.append(&mut carry);
                let n = (&mut input).take(BLOCK as u64).read_to_end(&mut block)?;
                if n == 0 {
                    eof = true;
                } else if let Some(cut) = block.iter().rposition(|b| *b == b'\n') {
                    // The line cut off at the end goes with the next block.
                    carry.extend_from_slice(&block[cut + 1..]);
                    block.truncate(cut + 1);
                }
                if block.is_empty() {
                    break;
                }
                inputs[sent % workers]
                    .send(block)
                    .map_err(|_| io::Error::other("a reading thread stopped"))?;
                in_flight.push_back(sent);
                sent += 1;
            }
            let Some(id) = in_flight.pop_front() else {
                return Ok(true);
            };
            let ((first, block_last, ordered), block) = outputs[id % workers]
                .recv()
                .map_err(|_| io::Error::other("a reading thread stopped"))?;
            spare.push(block);
            if !ordered || first.zip(last).is_some_and(|(f, l)| f < l) {
                return Ok(false);
            }
            last = block_last.or(last);
        }
    })
}

/// Copies `input` to a temporary file, noting whether it is in time order.
fn spool(input: impl BufRead) -> io::Result<(File, bool)> {
    let mut file = tempfile::tempfile()?;
    let mut ordered = true;
    let mut last = Millis::MIN;
    {
        let mut w = BufWriter::with_capacity(1 << 20, &mut file);
        let (mut input, mut line) = (input, Vec::new());
        while line::read_line_bytes(&mut input, &mut line)? {
            if ordered {
                if let Some(at) = std::str::from_utf8(&line).ok().and_then(stamp::stamp) {
                    ordered = at >= last;
                    last = at;
                }
            }
            w.write_all(&line)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    file.rewind()?;
    Ok((file, ordered))
}
