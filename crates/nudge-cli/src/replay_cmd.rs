//! `nudge replay`: Segment JSONL in, one JSON line per send decision out (`replay_lines.rs`),
//! streamed (see `input/`); `read_input` reads a whole file into memory for `nudge explain`.

use nudge_core::engine::Send;
use nudge_core::event::Message;
use nudge_core::replay::Replay;
use nudge_core::rules::CompiledRules;
use nudge_core::time::{parse_instant, Duration, Millis};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::mpsc::sync_channel;

use crate::input::{self, Order, Parsed};

/// Parsed input: time-ordered messages, and how many lines were rejected.
pub struct Input {
    pub events: Vec<(Message, Millis)>,
    pub rejected: usize,
}

/// Reads Segment messages, one JSON object a line, into memory (`nudge explain` looks at one
/// user's whole history); blank lines are skipped.
pub fn read_input(reader: impl BufRead, rules: &CompiledRules) -> std::io::Result<Input> {
    let mut events = Vec::new();
    let mut rejected = 0;
    let (mut reader, mut bytes, mut number) = (reader, Vec::new(), 0);
    while input::read_line_bytes(&mut reader, &mut bytes)? {
        number += 1;
        if input::is_blank(&bytes) {
            continue;
        }
        match input::parse_line(input::Line::new(number, bytes.clone()), rules) {
            Parsed::Event { msg, at, .. } => events.push((msg, at)),
            Parsed::Rejected { .. } => rejected += 1,
        }
    }
    // Time order; equal instants keep the file's order.
    events.sort_by_key(|(_, at)| *at);
    Ok(Input { events, rejected })
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

/// What streaming an input through a replay met.
#[derive(Debug, Default)]
pub struct Streamed {
    /// Lines rejected (each reported on stderr as it came).
    pub rejected: usize,
    /// The first and last instants replayed.
    pub first: Option<Millis>,
    pub last: Option<Millis>,
}

/// Streams the messages of `path` (`-`: stdin) through `replay` in time order (found out as
/// `order` says), reporting rejected and flagged lines on stderr as `NAME:LINE: ...` as they
/// come (those before line `quiet_before` excepted: a second pass does not report again), and
/// hands every send decided on the way to `on_send`. The caller finishes the replay.
pub fn stream(
    path: &Path,
    name: &str,
    replay: &mut Replay,
    rules: &CompiledRules,
    order: Order,
    quiet_before: usize,
    mut on_send: impl FnMut(Send) -> std::io::Result<()>,
) -> std::io::Result<Streamed> {
    let mut streamed = Streamed::default();
    let stderr = std::io::stderr();
    let mut sends = Vec::new();
    replay.keep_spent();
    // Messages done with are freed on a thread of their own, which gives the emptied buffers
    // back (a new one each time had the kernel zeroing fresh pages on the engine's thread).
    let (to_free, spent) = sync_channel::<Vec<Message>>(2);
    let (give_back, emptied) = sync_channel::<Vec<Message>>(2);
    let freeing = std::thread::spawn(move || {
        for mut batch in spent {
            batch.clear();
            // Never waits on the engine's thread: a buffer it has no room for is freed.
            let _ = give_back.try_send(batch);
        }
    });
    let result = input::each_event(path, rules, order, |parsed| {
        match parsed {
            Parsed::Rejected { line, message } => {
                streamed.rejected += 1;
                if line >= quiet_before {
                    writeln!(stderr.lock(), "{name}:{line}: rejected: {message}")?;
                }
            }
            Parsed::Event {
                line,
                msg,
                at,
                flags,
                first_seen,
            } => {
                for f in flags.iter().filter(|_| line >= quiet_before) {
                    writeln!(stderr.lock(), "{name}:{line}: flagged: {f}")?;
                }
                streamed.first.get_or_insert(at);
                streamed.last = Some(at);
                replay.take_checked_event_into(msg, at, first_seen, &mut sends);
                for s in sends.drain(..) {
                    on_send(s)?;
                }
                if let Some(batch) = replay.take_spent(SPENT_BATCH, || emptied.try_recv().ok()) {
                    // Dropped here if the freeing thread is gone.
                    let _ = to_free.send(batch);
                }
            }
        }
        Ok(())
    });
    drop(to_free);
    drop(emptied);
    let _ = freeing.join();
    result?;
    Ok(streamed)
}

/// Messages freed at a time on the freeing thread.
const SPENT_BATCH: usize = 4096;
