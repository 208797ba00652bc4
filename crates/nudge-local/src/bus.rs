//! The in-process bus of `nudge serve`: the same bus events as on EventBridge, routed to the
//! same handlers. Every published event is first written to the store's queue (so nothing
//! accepted is lost to a crash), then dispatched; it leaves the queue once its handler is
//! done. Events of one user go to one evaluate worker, in order.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nudge_core::time::Millis;
use nudge_service::bus::{AcceptedEvents, BusEvent};
use nudge_service::error::HandlerError;
use nudge_service::ports::{Bus, StoreError};
use nudge_service::schedule::SWEEP_BATCH;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, warn};

use crate::store::SqliteStore;

/// Accepted messages that may wait for evaluate at once before ingest slows down.
pub const MAX_IN_FLIGHT: usize = 50_000;
/// Attempts at a retryable failure before the event is left in the queue for the next start.
const MAX_ATTEMPTS: u32 = 12;

/// A queued event on its way to a handler.
pub struct Delivery {
    pub seq: i64,
    pub event: BusEvent,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Publishes into the durable queue and hands events to the dispatcher.
#[derive(Clone)]
pub struct LocalBus {
    store: SqliteStore,
    tx: mpsc::UnboundedSender<Delivery>,
    /// Set for the bus ingest publishes through: accepted messages take permits, so the HTTP
    /// API slows down when evaluate falls behind instead of memory growing.
    permits: Option<Arc<Semaphore>>,
    depth: Arc<AtomicI64>,
}

impl LocalBus {
    /// A bus for handlers (no backpressure: they must never wait on themselves) and the
    /// receiving end for the dispatcher.
    pub fn new(store: SqliteStore) -> (LocalBus, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            LocalBus {
                store,
                tx,
                permits: None,
                depth: Arc::new(AtomicI64::new(0)),
            },
            rx,
        )
    }

    /// The same bus with backpressure, for ingest.
    pub fn with_backpressure(&self) -> LocalBus {
        LocalBus {
            permits: Some(Arc::new(Semaphore::new(MAX_IN_FLIGHT))),
            ..self.clone()
        }
    }

    /// Events published and not yet handled.
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Re-dispatches events a previous run left in the queue (crash or shutdown).
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
                self.dispatch(seq, event, None);
            }
        }
    }

    /// The local sweeper: claims timers due by `now` and queues their "Timer Fired" events in
    /// one transaction per batch (see [`SqliteStore::fire_due`]), then dispatches them.
    /// Returns how many fired.
    pub async fn fire_due_timers(&self, now: Millis) -> Result<usize, StoreError> {
        let mut fired = 0;
        loop {
            let batch = self.store.fire_due(now, SWEEP_BATCH).await?;
            let n = batch.len();
            for (seq, event) in batch {
                self.dispatch(seq, event, None);
            }
            fired += n;
            if n < SWEEP_BATCH {
                return Ok(fired);
            }
        }
    }

    fn dispatch(&self, seq: i64, event: BusEvent, permit: Option<OwnedSemaphorePermit>) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        // The dispatcher lives as long as the node; a send after shutdown only loses the
        // in-memory copy, the queue row stays for the next start.
        let _ = self.tx.send(Delivery { seq, event, permit });
    }
}

impl Bus for LocalBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        // Outcome reports have no local subscriber: they are logged, not queued.
        let routed: Vec<BusEvent> = events
            .iter()
            .filter(|e| {
                let report = matches!(
                    e,
                    BusEvent::MessageSent(_)
                        | BusEvent::MessageSuppressed(_)
                        | BusEvent::MessageFailed(_)
                );
                if report {
                    debug!(detail_type = e.detail_type(), detail = %e.to_detail(), "bus event");
                }
                !report
            })
            .cloned()
            .collect();
        if routed.is_empty() {
            return Ok(());
        }
        let mut permits = Vec::new();
        if let Some(sem) = &self.permits {
            for e in &routed {
                let n = match e {
                    BusEvent::EventsAccepted(a) => a.events.len().clamp(1, MAX_IN_FLIGHT),
                    _ => 1,
                };
                let p = sem
                    .clone()
                    .acquire_many_owned(n as u32)
                    .await
                    .map_err(|e| StoreError::backend("bus closed", false, e))?;
                permits.push(Some(p));
            }
        } else {
            permits.resize_with(routed.len(), || None);
        }
        let seqs = self.store.enqueue(&routed).await?;
        for ((seq, event), permit) in seqs.into_iter().zip(routed).zip(permits) {
            self.dispatch(seq, event, permit);
        }
        Ok(())
    }
}

/// Counts down the parts of one queued event; the last part acks it.
pub struct Completion {
    seq: i64,
    parts: AtomicUsize,
    acks: mpsc::UnboundedSender<i64>,
    depth: Arc<AtomicI64>,
    _permit: Option<OwnedSemaphorePermit>,
    /// Set when a part gave up: the event stays queued for the next start.
    keep: std::sync::atomic::AtomicBool,
}

impl Completion {
    fn new(
        seq: i64,
        permit: Option<OwnedSemaphorePermit>,
        parts: usize,
        bus: &LocalBus,
        acks: &mpsc::UnboundedSender<i64>,
    ) -> Arc<Self> {
        Arc::new(Completion {
            seq,
            parts: AtomicUsize::new(parts.max(1)),
            acks: acks.clone(),
            depth: bus.depth.clone(),
            _permit: permit,
            keep: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// One part is finished (`ok`: handled, or failed for good).
    pub fn part_done(&self, ok: bool) {
        if !ok {
            self.keep.store(true, Ordering::Relaxed);
        }
        if self.parts.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            if !self.keep.load(Ordering::Relaxed) {
                let _ = self.acks.send(self.seq);
            }
        }
    }
}

/// A unit of work for a worker.
pub struct Job {
    pub event: BusEvent,
    pub done: Arc<Completion>,
}

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
        let done = |parts: usize| Completion::new(seq, permit, parts, &bus, &routes.acks);
        match event {
            BusEvent::EventsAccepted(batch) => {
                let mut parts: Vec<Vec<_>> = vec![Vec::new(); shards];
                for e in batch.events {
                    parts[shard_of(&e.user_id, shards)].push(e);
                }
                let n = parts.iter().filter(|p| !p.is_empty()).count();
                let done = done(n);
                if n == 0 {
                    done.part_done(true);
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
            event @ (BusEvent::DelayRequested(_) | BusEvent::DelayCancelled(_)) => {
                let done = done(1);
                let _ = routes.schedule.send(Job { event, done });
            }
            event @ BusEvent::MessageRequested(_) => {
                let done = done(1);
                let _ = routes.deliver.send(Job { event, done });
            }
            _ => done(1).part_done(true),
        }
    }
}

/// Runs `handle` on a job, retrying retryable failures with backoff; a job that keeps
/// failing (or fails for good) is logged, and one that may still succeed stays queued.
pub async fn run_job<F, Fut>(job: Job, handle: F)
where
    F: Fn(BusEvent) -> Fut,
    Fut: std::future::Future<Output = (BusEvent, Result<(), HandlerError>)>,
{
    let mut event = job.event;
    let mut backoff = Duration::from_millis(50);
    for attempt in 1..=MAX_ATTEMPTS {
        let (back, result) = handle(event).await;
        event = back;
        match result {
            Ok(()) => {
                job.done.part_done(true);
                return;
            }
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                warn!(attempt, error = %e, detail_type = event.detail_type(), "handler failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) if e.is_retryable() => {
                error!(error = %e, detail_type = event.detail_type(), "handler kept failing; the event stays queued for the next start");
                job.done.part_done(false);
                return;
            }
            Err(e) => {
                error!(error = %e, detail_type = event.detail_type(), detail = %event.to_detail(), "handler failed for good; event dropped");
                job.done.part_done(true);
                return;
            }
        }
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
