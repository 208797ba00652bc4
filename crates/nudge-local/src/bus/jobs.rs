//! One event's run through its handler: retried with backoff (a failing backend for as long as
//! it fails), set aside for the next start when it keeps failing for reasons of its own, and
//! let go (the queue row acked, the journal records completed) once every part is done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nudge_service::bus::BusEvent;
use nudge_service::error::HandlerError;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::{error, warn};

use super::LocalBus;
use crate::store::SqliteStore;

/// Attempts at a retryable failure before the event is left in the queue for the next start.
const MAX_ATTEMPTS: u32 = 12;
/// Where a job's event came from, and so how it is let go.
enum Origin {
    /// A row of the store's queue, deleted (acked) once every part is done; its place among
    /// the queued events in flight is given back then.
    Queue {
        seq: i64,
        acks: mpsc::UnboundedSender<i64>,
        _permit: OwnedSemaphorePermit,
    },
    /// Journal records, completed once handled.
    Journal { seqs: Vec<u64> },
}

/// Counts down the parts of one event; the last part lets it go.
pub struct Completion {
    origin: Origin,
    parts: AtomicUsize,
    bus: LocalBus,
    /// Set when a part gave up: the event stays queued for the next start.
    keep: std::sync::atomic::AtomicBool,
}

impl Completion {
    pub(super) fn queued(
        seq: i64,
        permit: OwnedSemaphorePermit,
        parts: usize,
        bus: &LocalBus,
        acks: &mpsc::UnboundedSender<i64>,
    ) -> Arc<Self> {
        Arc::new(Completion {
            origin: Origin::Queue {
                seq,
                acks: acks.clone(),
                _permit: permit,
            },
            parts: AtomicUsize::new(parts.max(1)),
            bus: bus.clone(),
            keep: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(super) fn journal(seqs: Vec<u64>, bus: &LocalBus) -> Arc<Self> {
        Arc::new(Completion {
            origin: Origin::Journal { seqs },
            parts: AtomicUsize::new(1),
            bus: bus.clone(),
            keep: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// One part is finished: handled, or failed for good.
    pub fn part_done(&self) {
        if self.parts.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    /// One part kept failing but may succeed later: `event` (that part) is set aside for the
    /// next start. A queue row simply stays; journal records are moved into the queue. When
    /// the queue cannot take it either, the event comes back: the caller keeps trying.
    pub async fn give_up(&self, event: BusEvent) -> Result<(), BusEvent> {
        if let Origin::Journal { seqs } = &self.origin {
            if let Err(e) = self.bus.store.enqueue(std::slice::from_ref(&event)).await {
                error!(error = %e, records = seqs.len(), "could not set a failing event aside; trying it again");
                return Err(event);
            }
        } else {
            self.keep.store(true, Ordering::Relaxed);
        }
        self.part_done();
        Ok(())
    }

    fn finish(&self) {
        let keep = self.keep.load(Ordering::Relaxed);
        match &self.origin {
            Origin::Queue { seq, acks, .. } => {
                self.bus.depth.fetch_sub(1, Ordering::Relaxed);
                if !keep {
                    let _ = acks.send(*seq);
                }
            }
            Origin::Journal { seqs } => {
                if !keep {
                    self.bus.journal.complete(seqs);
                }
            }
        }
    }
}

/// A unit of work for a worker.
pub struct Job {
    pub event: BusEvent,
    pub done: Arc<Completion>,
}

/// Runs `handle` on a job, retrying retryable failures with backoff (up to 5 s apart):
/// - a failure of the backend (the store or the disk failing, full or busy) is retried until
///   it passes, however long that takes: nothing accepted is dropped because a disk filled up;
/// - another retryable failure is tried [`MAX_ATTEMPTS`] times, then set aside for the next
///   start;
/// - a failure for good (an event that can never be handled) is logged and dropped.
pub async fn run_job<F, Fut>(job: Job, handle: F)
where
    F: Fn(BusEvent) -> Fut,
    Fut: std::future::Future<Output = (BusEvent, Result<(), HandlerError>)>,
{
    let mut event = job.event;
    let mut backoff = Duration::from_millis(50);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (back, result) = handle(event).await;
        event = back;
        let e = match result {
            Ok(()) => {
                job.done.part_done();
                return;
            }
            Err(e) => e,
        };
        if !e.is_retryable() {
            error!(error = %e, detail_type = event.detail_type(), detail = %event.to_detail(), "handler failed for good; event dropped");
            job.done.part_done();
            return;
        }
        if e.waits_for_backend() || attempt < MAX_ATTEMPTS {
            // Loud at first and then now and again, not at every try of a long outage.
            if attempt <= 3 || attempt % 50 == 0 {
                warn!(attempt, error = %e, detail_type = event.detail_type(), "handler failed; retrying");
            }
        } else {
            error!(error = %e, detail_type = event.detail_type(), "handler kept failing; the event is set aside for the next start");
            match job.done.give_up(event).await {
                Ok(()) => return,
                Err(back) => event = back,
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Acks handled events in batches.
pub async fn ack_loop(store: SqliteStore, mut rx: mpsc::UnboundedReceiver<i64>) {
    let mut buf = Vec::with_capacity(1024);
    while rx.recv_many(&mut buf, 1024).await > 0 {
        if let Err(e) = store.ack(&buf).await {
            // Unacked events are redelivered at the next start; handlers are idempotent.
            warn!(error = %e, "could not ack handled events");
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use nudge_service::bus::{AcceptedEvent, AcceptedEvents};
    use nudge_service::ports::StoreError;

    use super::*;
    use crate::journal::{Journal, Limits};
    use crate::store::test_support::TempDir;
    use nudge_core::event::Message;

    /// A journal job of one accepted event, and the journal it came from.
    async fn journal_job(dir: &TempDir) -> (Job, LocalBus, Journal) {
        let journal = Journal::open(&dir.path().join("journal"), Limits::with_backlog(10)).unwrap();
        let (bus, _rx) = LocalBus::new(dir.open(), journal.clone());
        let event =
            AcceptedEvent::new(Message::track("u1", "m1", "E", Default::default(), 0), 0, 0);
        journal.append(std::slice::from_ref(&event)).await.unwrap();
        let (records, _) = journal.reader().next_batch(10).await;
        let job = Job {
            event: BusEvent::EventsAccepted(AcceptedEvents {
                events: vec![records[0].1.clone()],
            }),
            done: Completion::journal(vec![records[0].0], &bus),
        };
        (job, bus, journal)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_backend_is_waited_for_however_long_and_the_event_then_handled() {
        let dir = TempDir::new("bus-disk-full");
        let (job, bus, journal) = journal_job(&dir).await;
        let tries = AtomicUsize::new(0);
        // The disk is full for 100 tries (minutes of backoff), then has room again.
        run_job(job, |event| {
            let n = tries.fetch_add(1, Ordering::Relaxed);
            async move {
                let result = if n < 100 {
                    Err(HandlerError::Store(StoreError::backend(
                        "save user",
                        true,
                        std::io::Error::other("database or disk is full"),
                    )))
                } else {
                    Ok(())
                };
                (event, result)
            }
        })
        .await;
        assert_eq!(tries.load(Ordering::Relaxed), 101);
        assert_eq!(journal.backlog(), 0, "handled, not dropped or set aside");
        assert!(bus.store.unacked(10).await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_that_keeps_failing_is_set_aside_for_the_next_start() {
        let dir = TempDir::new("bus-set-aside");
        let (job, bus, journal) = journal_job(&dir).await;
        let tries = AtomicUsize::new(0);
        run_job(job, |event| {
            tries.fetch_add(1, Ordering::Relaxed);
            async move { (event, Err(HandlerError::Contended("u1".into()))) }
        })
        .await;
        assert_eq!(tries.load(Ordering::Relaxed), MAX_ATTEMPTS as usize);
        // Moved from the journal into the queue, which the next start redelivers.
        assert_eq!(journal.backlog(), 0);
        assert_eq!(bus.store.unacked(10).await.unwrap().len(), 1);
    }
}
