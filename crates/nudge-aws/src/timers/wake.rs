//! A delay-queue message arrives: it claims the user's timer if it is due (conditionally on
//! the version and due time read, so a cancelled timer is a no-op and a message delivered
//! twice fires nothing twice), re-queues itself if the timer moved later, and leaves alone a
//! timer that another message (or the sweeper) now carries.

use nudge_core::time::Millis;
use nudge_service::bus::TimerFired;
use nudge_service::ports::StoreError;
use tracing::debug;

use super::TieredTimers;
use crate::sqs::Wakeup;

/// Reads and conditional writes one arrival may try before giving up (each failure means
/// someone changed the timer in between; the message is then delivered again).
const ATTEMPTS: usize = 4;

/// What a message did on arrival.
#[derive(Debug, Clone, PartialEq)]
pub enum Woken {
    /// It claimed the timer, which is due: fire it.
    Fire(TimerFired),
    /// The timer moved later; the message re-queued itself for the new due time.
    Requeued(Millis),
    /// The timer moved beyond the horizon; the sweeper will queue it when it comes near.
    Parked,
    /// Nothing to do: the timer is gone (fired, cancelled) or another message carries it.
    Nothing,
}

impl TieredTimers {
    /// Handles one arrival of `wakeup`.
    pub async fn wake(&self, wakeup: &Wakeup) -> Result<Woken, StoreError> {
        for _ in 0..ATTEMPTS {
            let now = self.clock.now();
            let Some(timer) = self.store.live_timer(&wakeup.user_id).await? else {
                debug!(
                    due = wakeup.due,
                    "no live timer: cancelled or fired already"
                );
                return Ok(Woken::Nothing);
            };
            if timer.due <= now {
                if self.store.claim_live(&timer).await? {
                    return Ok(Woken::Fire(TimerFired {
                        user_id: timer.user_id,
                        due: timer.due,
                        version: timer.version,
                    }));
                }
                continue;
            }
            // Moved later (or the message came a moment early). Only the message the mark
            // names carries the timer on; any other is a spare.
            if timer.queued != Some(wakeup.due) {
                debug!(queued = timer.queued, "another message carries the timer");
                return Ok(Woken::Nothing);
            }
            let near = match &self.near {
                Some(near) if Self::is_near(near, timer.due, now) => near,
                _ => {
                    if self.store.mark_queued(&timer, None).await? {
                        return Ok(Woken::Parked);
                    }
                    continue;
                }
            };
            if self.enqueue(near, &timer, now).await? {
                return Ok(Woken::Requeued(timer.due));
            }
        }
        Err(StoreError::Conflict(wakeup.user_id.clone()))
    }
}
