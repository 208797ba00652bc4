//! Routing what the bus reads to the workers: queued events by kind (evaluate, schedule-delay,
//! deliver), journal records to the evaluate workers, each user's always to the same one (so
//! a user's events are handled in order); and the journal's upkeep.

use nudge_service::bus::{AcceptedEvent, AcceptedEvents, BusEvent};
use tokio::sync::mpsc;
use tracing::{error, warn};

use super::jobs::{Completion, Job};
use super::{Delivery, LocalBus};
use crate::journal::{Journal, JournalReader, SYNC_EVERY};

/// Most journal records the reader takes at once. Large: each worker gets its share of a read
/// as one job, whose users are loaded and saved with one store command each, so under load
/// the store does a few large commands rather than many small ones (the writer thread's
/// commits, not the engine, bound how fast evaluation goes). Under light load a read takes
/// what there is, so nothing waits for a batch to fill.
const JOURNAL_BATCH: usize = 16_384;
/// Where the dispatcher sends work.
pub struct Routes {
    /// Evaluate workers; a user always maps to the same one.
    pub evaluate: Vec<mpsc::UnboundedSender<Job>>,
    pub schedule: mpsc::UnboundedSender<Job>,
    pub deliver: mpsc::UnboundedSender<Job>,
    pub acks: mpsc::UnboundedSender<i64>,
}

/// The evaluate worker a user belongs to.
pub fn shard_of(user_id: &str, shards: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(user_id.as_bytes()) % shards.max(1) as u64) as usize
}

/// Routes queued events to workers until the bus is dropped.
pub async fn dispatch(mut rx: mpsc::UnboundedReceiver<Delivery>, bus: LocalBus, routes: Routes) {
    let shards = routes.evaluate.len();
    while let Some(Delivery { seq, event, permit }) = rx.recv().await {
        let done = |parts: usize| Completion::queued(seq, permit, parts, &bus, &routes.acks);
        match event {
            // Accepted events of a previous version's queue.
            BusEvent::EventsAccepted(batch) => {
                let mut parts: Vec<Vec<_>> = vec![Vec::new(); shards];
                for e in batch.events {
                    parts[shard_of(&e.user_id, shards)].push(e);
                }
                let n = parts.iter().filter(|p| !p.is_empty()).count();
                let done = done(n);
                if n == 0 {
                    done.part_done();
                }
                for (i, events) in parts.into_iter().enumerate() {
                    if !events.is_empty() {
                        let _ = routes.evaluate[i].send(Job {
                            event: BusEvent::EventsAccepted(AcceptedEvents { events }),
                            done: done.clone(),
                        });
                    }
                }
            }
            event @ BusEvent::TimerFired(_) => {
                let i = shard_of(event.user_id().unwrap_or_default(), shards);
                let done = done(1);
                let _ = routes.evaluate[i].send(Job { event, done });
            }
            // Packed timers (the local bus publishes single events; these come only from a
            // queue written elsewhere): each user's to its worker.
            event @ BusEvent::TimersFired(_) => {
                let timers = event.unpack();
                let done = done(timers.len());
                if timers.is_empty() {
                    done.part_done();
                }
                for event in timers {
                    let i = shard_of(event.user_id().unwrap_or_default(), shards);
                    let _ = routes.evaluate[i].send(Job {
                        event,
                        done: done.clone(),
                    });
                }
            }
            event @ (BusEvent::DelayRequested(_)
            | BusEvent::DelayCancelled(_)
            | BusEvent::TimersChanged(_)) => {
                let done = done(1);
                let _ = routes.schedule.send(Job { event, done });
            }
            event @ BusEvent::MessageRequested(_) => {
                let done = done(1);
                let _ = routes.deliver.send(Job { event, done });
            }
            _ => done(1).part_done(),
        }
    }
}

/// Hands the journal's accepted events to the evaluate workers, each user's to its worker, in
/// order, until the workers are gone.
pub async fn dispatch_journal(
    mut reader: JournalReader,
    bus: LocalBus,
    evaluate: Vec<mpsc::UnboundedSender<Job>>,
) {
    let shards = evaluate.len();
    loop {
        let (records, lost) = reader.next_batch(JOURNAL_BATCH).await;
        if lost > 0 {
            error!(lost, "journal records could not be read");
        }
        let mut parts: Vec<(Vec<u64>, Vec<AcceptedEvent>)> = vec![Default::default(); shards];
        for (seq, e) in records {
            let part = &mut parts[shard_of(&e.user_id, shards)];
            part.0.push(seq);
            part.1.push(e);
        }
        for (i, (seqs, events)) in parts.into_iter().enumerate() {
            if events.is_empty() {
                continue;
            }
            let job = Job {
                event: BusEvent::EventsAccepted(AcceptedEvents { events }),
                done: Completion::journal(seqs, &bus),
            };
            if evaluate[i].send(job).is_err() {
                return;
            }
        }
    }
}

/// Saves the journal's progress, deletes what it no longer needs and syncs it, every
/// [`SYNC_EVERY`].
pub async fn maintain_journal(journal: Journal) {
    loop {
        tokio::time::sleep(SYNC_EVERY).await;
        let j = journal.clone();
        match tokio::task::spawn_blocking(move || j.maintain()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "journal upkeep failed"),
            Err(e) => warn!(error = %e, "journal upkeep stopped"),
        }
    }
}
