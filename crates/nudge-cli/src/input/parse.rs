//! Reading lines into messages on every core, in order: chunks of lines go round-robin to
//! worker threads (JSON, Segment validation, the tracking plan) and come back to the caller
//! in the order they were read, with a bounded number of chunks in flight, so memory does not
//! depend on the input's length.

use std::collections::VecDeque;
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
    let msg = match Message::from_json_text(&line.text) {
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
/// in the order the lines came.
pub fn parse_all(
    mut next_line: impl FnMut() -> io::Result<Option<Line>>,
    rules: &CompiledRules,
    workers: usize,
    mut sink: impl FnMut(Parsed) -> io::Result<()>,
) -> io::Result<()> {
    let workers = workers.max(1);
    std::thread::scope(|scope| {
        let mut inputs = Vec::with_capacity(workers);
        let mut outputs = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (to_worker, from_main) = mpsc::channel::<Vec<Line>>();
            let (to_main, from_worker) = mpsc::channel::<Vec<Parsed>>();
            scope.spawn(move || {
                for chunk in from_main {
                    let parsed = chunk.into_iter().map(|l| parse_line(l, rules)).collect();
                    if to_main.send(parsed).is_err() {
                        break;
                    }
                }
            });
            inputs.push(to_worker);
            outputs.push(from_worker);
        }
        // Chunk ids in flight, oldest first; chunk i went to worker i % workers.
        let mut in_flight: VecDeque<usize> = VecDeque::new();
        let mut sent = 0usize;
        let mut done = false;
        loop {
            while !done && in_flight.len() < 2 * workers {
                let mut chunk = Vec::with_capacity(CHUNK);
                while chunk.len() < CHUNK {
                    match next_line()? {
                        Some(l) => chunk.push(l),
                        None => {
                            done = true;
                            break;
                        }
                    }
                }
                if chunk.is_empty() {
                    break;
                }
                let w = sent % workers;
                if inputs[w].send(chunk).is_err() {
                    return Err(io::Error::other("a parsing thread stopped"));
                }
                in_flight.push_back(sent);
                sent += 1;
            }
            let Some(id) = in_flight.pop_front() else {
                break;
            };
            let parsed = outputs[id % workers]
                .recv()
                .map_err(|_| io::Error::other("a parsing thread stopped"))?;
            for p in parsed {
                sink(p)?;
            }
        }
        // Dropping the senders ends the workers.
        drop(inputs);
        Ok(())
    })
}
