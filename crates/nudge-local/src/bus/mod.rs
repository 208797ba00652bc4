//! The in-process bus of `nudge serve`: the same bus events as on EventBridge, routed to the
//! same handlers. Accepted events go to the journal (see `journal`), which ingest appends to
//! and a reader hands on to evaluate; every other event (timers fired, delay requests,
//! message requests) is first written to the store's queue, then dispatched. Either way
//! nothing published is lost to a crash, and an event is let go only once its handler is
//! done. Events of one user go to one evaluate worker, in order.
//!
//! Files: this one the bus itself (publishing, places in flight, the queue); `dispatch.rs`
//! routes what is read to the workers; `jobs.rs` runs a handler on one event with retries and
//! lets the event go when done.

mod dispatch;
mod jobs;

pub use dispatch::{dispatch, dispatch_journal, maintain_journal, shard_of, Routes};
pub use jobs::{ack_loop, run_job, Completion, Job};

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use nudge_core::time::Millis;
use nudge_service::bus::BusEvent;
use nudge_service::ports::{Bus, StoreError};
use nudge_service::schedule::SWEEP_BATCH;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::journal::{Journal, JournalError};
use crate::store::SqliteStore;

/// Queued events of one kind handed to handlers and not yet done, at most: bounds memory when
/// a handler falls behind (deliver behind evaluate, evaluate behind a sweep of many timers).
/// The rest wait in the queue table, and so does whoever publishes more.
pub const MAX_QUEUED_IN_FLIGHT: usize = 20_000;

/// A queued event on its way to a handler, with its place among those in flight.
pub struct Delivery {
    pub seq: i64,
    pub event: BusEvent,
    pub permit: OwnedSemaphorePermit,
}

/// Publishes into the journal or the durable queue and hands events to the dispatcher.
#[derive(Clone)]
pub struct LocalBus {
    store: SqliteStore,
    journal: Journal,
    tx: mpsc::UnboundedSender<Delivery>,
    depth: Arc<AtomicI64>,
    /// Places for events evaluate publishes (for schedule-delay and deliver, which publish
    /// nothing queued themselves, so waiting for a place never waits on itself).
    decided: Arc<Semaphore>,
    /// Places for fired timers (evaluate's input; evaluate waits only on `decided`).
    fired: Arc<Semaphore>,
    /// Places of each kind.
    places: usize,
}

/// Whether `event` takes its place among fired timers rather than decisions.
fn is_fired(event: &BusEvent) -> bool {
    matches!(event, BusEvent::TimerFired(_) | BusEvent::TimersFired(_))
}

impl LocalBus {
    /// A bus over the store's queue and the journal, and the receiving end for the
    /// dispatcher of queued events.
    pub fn new(
        store: SqliteStore,
        journal: Journal,
    ) -> (LocalBus, mpsc::UnboundedReceiver<Delivery>) {
        Self::with_places(store, journal, MAX_QUEUED_IN_FLIGHT)
    }

    /// [`LocalBus::new`] with `places` queued events of each kind in flight at most.
    pub(crate) fn with_places(
        store: SqliteStore,
        journal: Journal,
        places: usize,
    ) -> (LocalBus, mpsc::UnboundedReceiver<Delivery>) {
        let places = places.max(1);
        let (tx, rx) = mpsc::unbounded_channel();
        (
            LocalBus {
                store,
                journal,
                tx,
                depth: Arc::new(AtomicI64::new(0)),
                decided: Arc::new(Semaphore::new(places)),
                fired: Arc::new(Semaphore::new(places)),
                places,
            },
            rx,
        )
    }

    /// Events published and not yet handled: accepted events in the journal and queued ones.
    pub fn depth(&self) -> i64 {
        let journal = i64::try_from(self.journal.backlog()).unwrap_or(i64::MAX);
        journal.saturating_add(self.depth.load(Ordering::Relaxed))
    }

    /// Re-dispatches events a previous run left in the queue (crash or shutdown), as places
    /// among those in flight free up.
    pub async fn redeliver_unacked(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        let mut after = 0i64;
        loop {
            let batch = self.store.unacked_after(after, 1000).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for (seq, event) in batch {
                after = seq;
                n += 1;
                let permit = self.take(self.pool(&event), 1).await?;
                self.dispatch(seq, event, permit);
            }
        }
    }

    /// Waits for a place among the queued events in flight for each of `events`, in order.
    ///
    /// Each kind's places are taken at once, never one by one: publishers that each held some
    /// places while waiting for the rest could, together, hold them all and wait forever. A
    /// publisher needing more places than a kind has takes them all and publishes the rest
    /// beyond the bound (memory is then bounded by what one publisher writes at once).
    pub(crate) async fn places(
        &self,
        events: &[&BusEvent],
    ) -> Result<Vec<OwnedSemaphorePermit>, StoreError> {
        let fired = events.iter().filter(|e| is_fired(e)).count();
        let all = events.len();
        // Always the same order (timers fired, then decisions), as a second guard.
        let mut fired_places = self.take(&self.fired, fired).await?;
        let mut decided_places = self.take(&self.decided, all - fired).await?;
        Ok(events
            .iter()
            .map(|e| {
                let pool = if is_fired(e) {
                    &mut fired_places
                } else {
                    &mut decided_places
                };
                // `split(0)` always succeeds: a place beyond the bound holds no permit.
                pool.split(1).or_else(|| pool.split(0)).expect("split(0)")
            })
            .collect())
    }

    /// The pool of places `event` takes one of.
    fn pool(&self, event: &BusEvent) -> &Arc<Semaphore> {
        if is_fired(event) {
            &self.fired
        } else {
            &self.decided
        }
    }

    /// Takes `n` places of `pool` at once (all of them if it has fewer).
    async fn take(
        &self,
        pool: &Arc<Semaphore>,
        n: usize,
    ) -> Result<OwnedSemaphorePermit, StoreError> {
        let n = u32::try_from(n.min(self.places)).unwrap_or(u32::MAX);
        pool.clone()
            .acquire_many_owned(n)
            .await
            .map_err(|e| StoreError::backend("bus closed", false, e))
    }

    /// The local sweeper: claims timers due by `now` and queues their "Timer Fired" events in
    /// one transaction per batch (see [`SqliteStore::fire_due`]), then dispatches them.
    /// Returns how many fired.
    pub async fn fire_due_timers(&self, now: Millis) -> Result<usize, StoreError> {
        let mut fired = 0;
        loop {
            // Places first: a claimed timer is dispatched at once (unused places go back).
            let mut places = self.take(&self.fired, SWEEP_BATCH).await?;
            let want = places.num_permits();
            let batch = self.store.fire_due(now, want).await?;
            let n = batch.len();
            for (seq, event) in batch {
                match places.split(1) {
                    Some(permit) => self.dispatch(seq, event, permit),
                    // Cannot happen: as many places as timers claimed.
                    None => warn!(
                        seq,
                        "no place for a fired timer; it fires at the next start"
                    ),
                }
            }
            fired += n;
            if n < want {
                return Ok(fired);
            }
        }
    }

    /// Hands a stored event (`seq` in the queue) to the dispatcher.
    pub(crate) fn dispatch(&self, seq: i64, event: BusEvent, permit: OwnedSemaphorePermit) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        // The dispatcher lives as long as the node; a send after shutdown only loses the
        // in-memory copy, the queue row stays for the next start.
        let _ = self.tx.send(Delivery { seq, event, permit });
    }
}

impl Bus for LocalBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        let mut queued: Vec<BusEvent> = Vec::new();
        for e in events {
            match e {
                BusEvent::EventsAccepted(a) => {
                    self.journal.append(&a.events).await.map_err(|e| match e {
                        JournalError::Full { retry_after, .. } => {
                            StoreError::Overloaded { retry_after }
                        }
                        e => StoreError::backend("append to the journal", true, e),
                    })?
                }
                // Outcome reports have no local subscriber: they are logged, not queued.
                BusEvent::MessageSent(_)
                | BusEvent::MessageSuppressed(_)
                | BusEvent::MessageFailed(_) => {
                    debug!(detail_type = e.detail_type(), detail = %e.to_detail(), "bus event");
                }
                _ => queued.push(e.clone()),
            }
        }
        if queued.is_empty() {
            return Ok(());
        }
        let places = self.places(&queued.iter().collect::<Vec<_>>()).await?;
        let seqs = self.store.enqueue(&queued).await?;
        for ((seq, event), permit) in seqs.into_iter().zip(queued).zip(places) {
            self.dispatch(seq, event, permit);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nudge_service::bus::{AcceptedEvent, DelayCancel};

    use super::*;
    use crate::journal::Limits;
    use crate::store::test_support::TempDir;
    use nudge_core::event::Message;

    fn cancel(n: u64) -> BusEvent {
        BusEvent::DelayCancelled(DelayCancel {
            user_id: format!("u{n}"),
            version: n,
        })
    }

    #[tokio::test]
    async fn accepted_events_meeting_a_full_backlog_are_refused_as_overloaded() {
        let dir = TempDir::new("bus-overloaded");
        let limits = Limits {
            full_wait: Duration::from_millis(50),
            ..Limits::with_backlog(2)
        };
        let journal = Journal::open(&dir.path().join("journal"), limits).unwrap();
        let (bus, _rx) = LocalBus::new(dir.open(), journal);
        let accepted = |n: u64| {
            BusEvent::EventsAccepted(nudge_service::bus::AcceptedEvents {
                events: vec![AcceptedEvent::new(
                    Message::track(
                        &format!("u{n}"),
                        &format!("m{n}"),
                        "E",
                        Default::default(),
                        0,
                    ),
                    0,
                    0,
                )],
            })
        };
        bus.publish(&[accepted(1), accepted(2)]).await.unwrap();
        // Nothing is evaluated here, so the backlog stays full.
        match bus.publish(&[accepted(3)]).await {
            Err(StoreError::Overloaded { retry_after }) => {
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("expected Overloaded, got {other:?}"),
        }
        assert_eq!(bus.journal.backlog(), 2);
    }

    #[tokio::test]
    async fn a_publisher_waits_while_its_kind_has_no_place_in_flight() {
        let dir = TempDir::new("bus-places");
        let journal = Journal::open(&dir.path().join("journal"), Limits::with_backlog(10)).unwrap();
        let (bus, mut rx) = LocalBus::with_places(dir.open(), journal, 3);
        bus.publish(&[cancel(1), cancel(2), cancel(3)])
            .await
            .unwrap();

        // A fourth waits: the three are in flight (here, not even handled).
        let fourth = [cancel(4)];
        let waiting = tokio::time::timeout(Duration::from_millis(100), bus.publish(&fourth));
        assert!(waiting.await.is_err(), "no place for a fourth");

        // One handled frees a place; the fourth goes, stored and dispatched.
        let (acks, _acked) = mpsc::unbounded_channel();
        let first = rx.recv().await.unwrap();
        Completion::queued(first.seq, first.permit, 1, &bus, &acks).part_done();
        tokio::time::timeout(Duration::from_secs(5), bus.publish(&fourth))
            .await
            .expect("a place after a completion")
            .unwrap();
        let mut left = Vec::new();
        while let Ok(d) = rx.try_recv() {
            left.push(d.event);
        }
        assert_eq!(left, [cancel(2), cancel(3), cancel(4)]);
        // Every event is in the queue table until acked.
        assert_eq!(bus.store.unacked(10).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn publishers_take_their_places_at_once_so_two_partial_holders_never_wait_forever() {
        let dir = TempDir::new("bus-places-at-once");
        let journal = Journal::open(&dir.path().join("journal"), Limits::with_backlog(10)).unwrap();
        let (bus, mut rx) = LocalBus::with_places(dir.open(), journal, 3);
        // One place taken; two publishers want two each. Taken one by one, each could hold
        // one and wait forever for a second.
        bus.publish(&[cancel(1)]).await.unwrap();
        let (a, b) = ([cancel(2), cancel(3)], [cancel(4), cancel(5)]);
        let (bus_a, bus_b) = (bus.clone(), bus.clone());
        let pa = tokio::spawn(async move { bus_a.publish(&a).await });
        let pb = tokio::spawn(async move { bus_b.publish(&b).await });
        // Handling what is dispatched frees places, so both go through.
        let (acks, _acked) = mpsc::unbounded_channel();
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("a publisher waits forever")
                .unwrap();
            seen.push(d.event.clone());
            Completion::queued(d.seq, d.permit, 1, &bus, &acks).part_done();
        }
        pa.await.unwrap().unwrap();
        pb.await.unwrap().unwrap();
        seen.sort_by_key(|e| e.user_id().map(str::to_owned));
        assert_eq!(seen, (1..=5).map(cancel).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_publisher_needing_more_places_than_there_are_takes_them_all_and_goes_on() {
        let dir = TempDir::new("bus-places-beyond");
        let journal = Journal::open(&dir.path().join("journal"), Limits::with_backlog(10)).unwrap();
        let (bus, mut rx) = LocalBus::with_places(dir.open(), journal, 2);
        let many: Vec<BusEvent> = (1..=5).map(cancel).collect();
        tokio::time::timeout(Duration::from_secs(5), bus.publish(&many))
            .await
            .expect("a publisher larger than the bound waits forever")
            .unwrap();
        let mut got = Vec::new();
        while let Ok(d) = rx.try_recv() {
            got.push(d);
        }
        assert_eq!(
            got.iter().map(|d| d.event.clone()).collect::<Vec<_>>(),
            many
        );
        // Two hold the places; the rest went beyond the bound, holding none.
        let held: usize = got.iter().map(|d| d.permit.num_permits()).sum();
        assert_eq!(held, 2);
        // While they are in flight, the next publisher waits.
        let next = [cancel(6)];
        let waiting = tokio::time::timeout(Duration::from_millis(100), bus.publish(&next));
        assert!(
            waiting.await.is_err(),
            "no place while the bound is reached"
        );
    }
}
