//! Reading lines into messages on every core, in order: chunks of lines go round-robin to
//! worker threads (JSON, Segment validation, the tracking plan) and come back to the caller
//! in the order they were read, with a bounded number of chunks in flight, so memory does not
//! depend on the input's length.

use std::io;
use std::sync::mpsc;

use nudge_core::event::Message;
use nudge_core::rules::CompiledRules;

use super::{Line, Parsed};

/// Lines per chunk handed to a worker.
const CHUNK: usize = 2048;

/// One line read as replay takes it.
pub fn parse_line(line: Line, rules: &CompiledRules) -> Parsed {
    let rejected = |message: String| Parsed::Rejected {
        line: line.number,
        message,
    };
    let text = match &line.text {
        Ok(text) => text,
        Err(e) => return rejected(super::line::not_text(e)),
    };
    let msg = match Message::from_json_text(text) {
        Ok(m) => m,
        Err(e) => return rejected(e.to_string()),
    };
    let Some(at) = msg.timestamp else {
        return rejected("timestamp: replay needs a timestamp on every message".into());
    };
    match rules.plan.check(&msg) {
        Ok(flags) => Parsed::Event {
            line: line.number,
            msg,
            at,
            first_seen: true,
            flags: flags
                .into_iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect(),
        },
        Err(violations) => {
            let text: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
            rejected(text.join("; "))
        }
    }
}

/// Parses every line `next_line` yields on `workers` threads and hands the results to `sink`
/// in the order the lines came, after `in_order` saw each in that order. Lines are read on a
/// thread of their own, and put back in order (through `in_order`) on another, so the
/// caller's thread only takes what is parsed.
pub fn parse_all(
    mut next_line: impl FnMut() -> io::Result<Option<Line>> + Send,
    rules: &CompiledRules,
    workers: usize,
    mut in_order: impl FnMut(&mut Parsed) -> io::Result<()> + Send,
    mut sink: impl FnMut(Parsed) -> io::Result<()>,
) -> io::Result<()> {
    let workers = workers.max(1);
    let stopped = || io::Error::other("a parsing thread stopped");
    std::thread::scope(|scope| {
        let mut inputs = Vec::with_capacity(workers);
        let mut outputs = Vec::with_capacity(workers);
        for _ in 0..workers {
            // Two chunks queued each way per worker: memory is bounded, whatever the input.
            let (to_worker, from_reader) = mpsc::sync_channel::<Vec<Line>>(2);
            let (to_main, from_worker) = mpsc::sync_channel::<Vec<Parsed>>(2);
            scope.spawn(move || {
                for chunk in from_reader {
                    let parsed = chunk.into_iter().map(|l| parse_line(l, rules)).collect();
                    if to_main.send(parsed).is_err() {
                        break;
                    }
                }
            });
            inputs.push(to_worker);
            outputs.push(from_worker);
        }
        // Chunk i goes to worker i % workers, and comes back from it in turn.
        let reader = scope.spawn(move || -> io::Result<()> {
            for w in (0..workers).cycle() {
                let mut chunk = Vec::with_capacity(CHUNK);
                while chunk.len() < CHUNK {
                    match next_line()? {
                        Some(l) => chunk.push(l),
                        None => break,
                    }
                }
                let last = chunk.len() < CHUNK;
                if !chunk.is_empty() && inputs[w].send(chunk).is_err() {
                    // The caller stopped taking lines (its error is the one to report).
                    return Ok(());
                }
                if last {
                    break;
                }
            }
            Ok(())
        });
        let (to_caller, ordered) = mpsc::sync_channel::<Vec<Parsed>>(2);
        let orderer = scope.spawn(move || -> io::Result<()> {
            for w in (0..workers).cycle() {
                // A closed worker has had every chunk: the input is done.
                let Ok(mut parsed) = outputs[w].recv() else {
                    break;
                };
                // Up to a line `in_order` refuses: the lines before it are the caller's.
                let refused = parsed
                    .iter_mut()
                    .enumerate()
                    .find_map(|(i, p)| in_order(p).err().map(|e| (i, e)));
                if let Some((i, _)) = &refused {
                    parsed.truncate(*i);
                }
                if to_caller.send(parsed).is_err() {
                    break;
                }
                if let Some((_, e)) = refused {
                    return Err(e);
                }
            }
            // Returning drops the receivers, which stops the workers, and through them the
            // reader.
            Ok(())
        });
        let mut taken = Ok(());
        for parsed in &ordered {
            if let Err(e) = parsed.into_iter().try_for_each(&mut sink) {
                taken = Err(e);
                break;
            }
        }
        drop(ordered);
        let put_in_order = orderer.join().map_err(|_| stopped())?;
        let read = reader.join().map_err(|_| stopped())?;
        // The caller's own error first; else the orderer's (a trusted order broken), which
        // ended the stream early.
        taken.and(put_in_order).and(read)
    })
}
