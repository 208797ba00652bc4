//! A replay's counters (`nudge report`): summed as the replay goes, or on a thread of their
//! own, where what each outcome adds is handed over in batches, so that counting a long
//! history does not slow the engine's thread.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use crate::engine::Outcome;
use crate::insights::record::Countable;
use crate::insights::{Period, Tally};
use crate::time::Millis;

/// Outcomes handed to the counting thread at a time.
const BATCH: usize = 1024;

pub enum Counting {
    Here(Tally),
    Aside(Aside),
}

pub struct Aside {
    batch: Vec<Countable>,
    to_thread: SyncSender<Vec<Countable>>,
    thread: JoinHandle<Tally>,
}

impl Counting {
    /// Counts on a thread of its own.
    pub fn aside(tally: Tally) -> Counting {
        let (to_thread, batches) = sync_channel::<Vec<Countable>>(4);
        let thread = std::thread::spawn(move || {
            let mut tally = tally;
            for batch in batches {
                for c in &batch {
                    c.record(&mut tally);
                }
            }
            tally
        });
        Counting::Aside(Aside {
            batch: Vec::with_capacity(BATCH),
            to_thread,
            thread,
        })
    }

    /// Counts `out` (its facts are taken when counting aside), its sends as delivered.
    pub fn record(&mut self, user_id: &str, out: &mut Outcome, at: Millis) {
        match self {
            Counting::Here(t) => t.record(user_id, out, at, true),
            Counting::Aside(a) => {
                a.batch.push(Countable::take(user_id, out, at));
                if a.batch.len() == BATCH {
                    let batch = std::mem::replace(&mut a.batch, Vec::with_capacity(BATCH));
                    // The thread only stops when this side hangs up (or panicked, which
                    // `tally` reports).
                    let _ = a.to_thread.send(batch);
                }
            }
        }
    }

    /// The sums, once everything handed over is counted.
    pub fn tally(&mut self) -> &Tally {
        if matches!(self, Counting::Aside(_)) {
            let counted = Counting::Here(Tally::new(Period::all()));
            if let Counting::Aside(a) = std::mem::replace(self, counted) {
                *self = Counting::Here(a.finish());
            }
        }
        match self {
            Counting::Here(t) => t,
            Counting::Aside(_) => unreachable!("an aside count was finished just above"),
        }
    }
}

impl Aside {
    fn finish(self) -> Tally {
        // Hanging up after the last batch ends the thread's loop.
        let _ = self.to_thread.send(self.batch);
        drop(self.to_thread);
        self.thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}
