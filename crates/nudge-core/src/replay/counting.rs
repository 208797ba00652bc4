//! A replay's counters (`nudge report`): summed as the replay goes, or on a thread of their
//! own, where what each outcome adds is handed over in batches, so that counting a long
//! history does not slow the engine's thread.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use crate::engine::Outcome;
use crate::insights::record::Countable;
use crate::insights::Tally;
use crate::time::Millis;

/// Outcomes handed to the counting thread at a time.
const BATCH: usize = 1024;

/// Counting done here, or on a thread until its sums are asked for.
pub struct Counting {
    counted: Option<Tally>,
    aside: Option<Aside>,
}

struct Aside {
    batch: Vec<Countable>,
    to_thread: SyncSender<Vec<Countable>>,
    thread: JoinHandle<Tally>,
}

impl Counting {
    /// Counts here, as the replay goes.
    pub fn here(tally: Tally) -> Counting {
        Counting {
            counted: Some(tally),
            aside: None,
        }
    }

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
        Counting {
            counted: None,
            aside: Some(Aside {
                batch: Vec::with_capacity(BATCH),
                to_thread,
                thread,
            }),
        }
    }

    /// Counts `out` (its facts are taken when counting aside), its sends as delivered.
    pub fn record(&mut self, user_id: &str, out: &mut Outcome, at: Millis) {
        if let Some(t) = &mut self.counted {
            t.record(user_id, out, at, true);
        }
        if let Some(a) = &mut self.aside {
            a.batch.push(Countable::take(user_id, out, at));
            if a.batch.len() == BATCH {
                let batch = std::mem::replace(&mut a.batch, Vec::with_capacity(BATCH));
                // The thread only stops when this side hangs up (or panicked, which
                // `tally` reports).
                let _ = a.to_thread.send(batch);
            }
        }
    }

    /// The sums, once everything handed over is counted.
    pub fn tally(&mut self) -> Option<&Tally> {
        if let Some(a) = self.aside.take() {
            self.counted = Some(a.finish());
        }
        self.counted.as_ref()
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
