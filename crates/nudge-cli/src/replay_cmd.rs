//! `nudge replay`: Segment JSONL in, one JSON line per send decision out, streamed (see
//! `input/`); `read_input` reads a whole file into memory for `nudge explain`.

use nudge_core::engine::Send;
use nudge_core::event::Message;
use nudge_core::replay::{Replay, ReplayLine};
use nudge_core::rules::CompiledRules;
use nudge_core::time::{parse_instant, Duration, Millis};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

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
    for (i, text) in reader.lines().enumerate() {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        match input::parse_line(
            input::Line {
                number: i + 1,
                text,
            },
            rules,
        ) {
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
                first,
            } => {
                for f in flags.iter().filter(|_| line >= quiet_before) {
                    writeln!(stderr.lock(), "{name}:{line}: flagged: {f}")?;
                }
                streamed.first.get_or_insert(at);
                streamed.last = Some(at);
                replay.take_checked_event_into(msg, at, first, &mut sends);
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

/// Renders and writes sends as replay output on a thread of its own, in the order they are
/// handed over: templates and JSON were a good part of the engine thread's time.
pub struct LineWriter<'scope> {
    to_thread: Option<SyncSender<Vec<Send>>>,
    batch: Vec<Send>,
    thread: ScopedJoinHandle<'scope, std::io::Result<()>>,
}

/// Sends handed to the writing thread at a time.
const BATCH: usize = 256;

impl<'scope> LineWriter<'scope> {
    pub fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        rules: &'env CompiledRules,
        mut out: impl Write + std::marker::Send + 'scope,
    ) -> LineWriter<'scope> {
        let (to_thread, batches) = sync_channel::<Vec<Send>>(4);
        let thread = scope.spawn(move || {
            for batch in batches {
                for s in &batch {
                    write_line(rules, s, &mut out)?;
                }
            }
            out.flush()
        });
        LineWriter {
            to_thread: Some(to_thread),
            batch: Vec::with_capacity(BATCH),
            thread,
        }
    }

    pub fn write(&mut self, s: Send) -> std::io::Result<()> {
        self.batch.push(s);
        if self.batch.len() == BATCH {
            self.hand_over()?;
        }
        Ok(())
    }

    fn hand_over(&mut self) -> std::io::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let sent = self.to_thread.as_ref().map(|t| t.send(batch));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped on a write error, which `finish` reports.
            _ => Err(std::io::Error::other("the writing thread stopped")),
        }
    }

    /// Writes what is left and waits for the thread: the first write error, if any.
    pub fn finish(mut self) -> std::io::Result<()> {
        let handed = if self.batch.is_empty() {
            Ok(())
        } else {
            self.hand_over()
        };
        self.to_thread = None;
        let written = self
            .thread
            .join()
            .map_err(|_| std::io::Error::other("the writing thread panicked"))?;
        written.and(handed)
    }
}

/// Messages freed at a time on the freeing thread.
const SPENT_BATCH: usize = 4096;

/// Writes one send as a line of replay output.
pub fn write_line(rules: &CompiledRules, s: &Send, out: &mut impl Write) -> std::io::Result<()> {
    let line = ReplayLine::from_send(rules, s);
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
