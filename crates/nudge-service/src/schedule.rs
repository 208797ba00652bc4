//! schedule-delay: the owner of timers. Sets and cancels each user's one timer on request
//! (newer versions win, so requests may arrive in any order), and turns due timers into
//! "Timer Fired" events: the sweeper claims them precisely (each exactly once), and on AWS
//! TTL deletions on the table's stream are the backstop.

use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use crate::bus::{BusEvent, TimerFired};
use crate::error::HandlerError;
use crate::metrics::Metrics;
use crate::ports::{Bus, Clock, TimerStore};

/// Most timers one sweep claims before publishing them.
pub const SWEEP_BATCH: usize = 500;

/// The schedule-delay handler.
pub struct Schedule<T, B, C> {
    pub timers: T,
    pub bus: B,
    pub clock: C,
    pub metrics: Arc<dyn Metrics>,
}

impl<T: TimerStore, B: Bus, C: Clock> Schedule<T, B, C> {
    /// Handles a delay request or cancel (other events are ignored).
    pub async fn handle(&self, event: &BusEvent) -> Result<(), HandlerError> {
        let started = Instant::now();
        match event {
            BusEvent::DelayRequested(req) => {
                debug!(user_id = %req.user_id, due = req.due, version = req.version, "timer set");
                self.timers.set(req).await?;
            }
            BusEvent::DelayCancelled(req) => {
                debug!(user_id = %req.user_id, version = req.version, "timer cancelled");
                self.timers.cancel(req).await?;
            }
            _ => {}
        }
        self.metrics
            .handler_latency("schedule", started.elapsed().as_secs_f64());
        Ok(())
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
            self.fire(due).await?;
            fired += n;
            if n < SWEEP_BATCH {
                return Ok(fired);
            }
        }
    }

    /// Publishes claimed timers as "Timer Fired" (the stream backstop on AWS calls this with
    /// timers TTL removed).
    pub async fn fire(&self, timers: Vec<TimerFired>) -> Result<(), HandlerError> {
        let events: Vec<BusEvent> = timers.iter().cloned().map(BusEvent::TimerFired).collect();
        if let Err(e) = self.bus.publish(&events).await {
            for t in &timers {
                let back = crate::bus::DelayRequest {
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
        Ok(())
    }
}
