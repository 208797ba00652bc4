//! `nudge replay`'s output: one JSON line per send decision (the contract's field order),
//! rendered and written on a thread of its own.

use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use nudge_core::engine::Send;
use nudge_core::replay::ReplayLine;
use nudge_core::rules::CompiledRules;

/// Renders and writes sends as replay output on a thread of its own, in the order they are
/// handed over: templates and JSON were a good part of the engine thread's time.
pub struct ReplayLines<'scope> {
    to_thread: Option<SyncSender<Vec<Send>>>,
    batch: Vec<Send>,
    thread: ScopedJoinHandle<'scope, std::io::Result<()>>,
}

/// Sends handed to the writing thread at a time.
const BATCH: usize = 256;

impl<'scope> ReplayLines<'scope> {
    pub fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        rules: &'env CompiledRules,
        mut out: impl Write + std::marker::Send + 'scope,
    ) -> ReplayLines<'scope> {
        let (to_thread, batches) = sync_channel::<Vec<Send>>(4);
        let thread = scope.spawn(move || {
            for batch in batches {
                for s in &batch {
                    write_line(rules, s, &mut out)?;
                }
            }
            out.flush()
        });
        ReplayLines {
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

/// Writes one send as a line of replay output.
pub fn write_line(rules: &CompiledRules, s: &Send, out: &mut impl Write) -> std::io::Result<()> {
    let line = ReplayLine::from_send(rules, s);
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
