//! schedule-delay: the owner of timers. Sets and cancels each user's one timer on request
//! (newer versions win, so requests may arrive in any order), and turns due timers into
//! "Timer Fired" events: the sweeper claims them precisely (each exactly once), and on AWS
//! TTL deletions on the table's stream are the backstop.

use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use crate::bus::{BusEvent, DelayCancel, DelayRequest, TimerFired};
use crate::error::{FirstFailure, HandlerError};
use crate::metrics::Metrics;
use crate::ports::{Bus, Clock, TimerStore};

/// Most timers one sweep claims before publishing them.
pub const SWEEP_BATCH: usize = 500;

/// What found a timer due and fired it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiredBy {
    /// The sweeper (the timer loop of `nudge serve`, the minute sweeper on AWS).
    Sweep,
    /// A delayed queue message arriving at the due second (AWS's precise tier).
    Queue,
    /// The timer's expiry (DynamoDB's TTL deletion on the table's stream: the backstop).
    Expiry,
}

impl FiredBy {
    /// The name metrics carry.
    pub fn as_str(self) -> &'static str {
        match self {
            FiredBy::Sweep => "sweep",
            FiredBy::Queue => "queue",
            FiredBy::Expiry => "expiry",
        }
    }
}

/// The schedule-delay handler.
pub struct Schedule<T, B, C> {
    pub timers: T,
    pub bus: B,
    pub clock: C,
    pub metrics: Arc<dyn Metrics>,
}

impl<T: TimerStore, B: Bus, C: Clock> Schedule<T, B, C> {
    /// Handles a delay request or cancel, or several packed in "Timers Changed" (each is
    /// tried; the first failure is reported, retryable ones first). Other events are ignored.
    pub async fn handle(&self, event: &BusEvent) -> Result<(), HandlerError> {
        let started = Instant::now();
        let result = match event {
            BusEvent::DelayRequested(req) => self.set(req).await,
            BusEvent::DelayCancelled(req) => self.cancel(req).await,
            BusEvent::TimersChanged(changes) => {
                let mut first = FirstFailure::default();
                for req in &changes.set {
                    if let Err(e) = self.set(req).await {
                        first.note(&req.user_id, e);
                    }
                }
                for req in &changes.cancel {
                    if let Err(e) = self.cancel(req).await {
                        first.note(&req.user_id, e);
                    }
                }
                first.into_result()
            }
            _ => Ok(()),
        };
        self.metrics
            .handler_latency("schedule", started.elapsed().as_secs_f64());
        result
    }

    async fn set(&self, req: &DelayRequest) -> Result<(), HandlerError> {
        debug!(user_id = %req.user_id, due = req.due, version = req.version, "timer set");
        Ok(self.timers.set(req).await?)
    }

    async fn cancel(&self, req: &DelayCancel) -> Result<(), HandlerError> {
        debug!(user_id = %req.user_id, version = req.version, "timer cancelled");
        Ok(self.timers.cancel(req).await?)
    }

    /// Claims every timer due by now and publishes a "Timer Fired" for each. Returns how many
    /// fired. A claimed timer whose publish fails is handed back (set again at its version)
    /// so the next sweep fires it.
    pub async fn sweep(&self) -> Result<usize, HandlerError> {
        let mut fired = 0;
        loop {
            let now = self.clock.now();
            let due = self.timers.claim_due(now, SWEEP_BATCH).await?;
            if due.is_empty() {
                return Ok(fired);
            }
            let n = due.len();
            self.fire(due, FiredBy::Sweep).await?;
            fired += n;
            if n < SWEEP_BATCH {
                return Ok(fired);
            }
        }
    }

    /// Publishes claimed timers as "Timer Fired" (the stream backstop on AWS calls this with
    /// timers TTL removed, the delay queue with timers its messages found due) and reports
    /// how late each fired.
    pub async fn fire(&self, timers: Vec<TimerFired>, by: FiredBy) -> Result<(), HandlerError> {
        let events: Vec<BusEvent> = timers.iter().cloned().map(BusEvent::TimerFired).collect();
        if let Err(e) = self.bus.publish(&events).await {
            for t in &timers {
                let back = DelayRequest {
                    user_id: t.user_id.clone(),
                    due: t.due,
                    version: t.version,
                };
                // Restoring at the same version: claiming left a tombstone of that version,
                // so the restore must be forced; stores accept an equal version from here.
                self.timers.restore(&back).await?;
            }
            return Err(e.into());
        }
        let now = self.clock.now();
        for t in &timers {
            self.metrics
                .timer_fired(by.as_str(), now.saturating_sub(t.due).max(0) as f64);
        }
        Ok(())
    }
}
