//! schedule-delay's timers on AWS, in two tiers. The table holds every timer (and TTL is the
//! backstop); a timer due within the horizon (15 minutes at most, SQS's longest delay) also
//! rides the delay queue, whose message arrives at its due second: when it is set, or when
//! the sweeper finds it entering the horizon. The minute sweeper still claims whatever the
//! queue missed. Far timers (a 24-hour reminder) stay in the table until they come near.
//!
//! A timer enters the queue once: the item's `queued` mark names the due time of the message
//! on its way. A timer moved later keeps that message, which re-queues itself for the new
//! time on arrival (`wake.rs`), so a wait pushed back by every event costs one message per
//! firing attempt rather than one per event; a timer moved earlier than its message gets a
//! new one.

mod wake;

use std::sync::Arc;

use nudge_core::time::Millis;
use nudge_service::bus::{DelayCancel, DelayRequest, TimerFired};
use nudge_service::ports::{Clock, ExpiredTimerClaim, StoreError, Timer, TimerStore};
use tracing::{debug, info, instrument};

use crate::dynamodb::{DynamoDbStore, LiveTimer, TimerSet};
use crate::sqs::{delay_seconds, SqsTimerQueue, Wakeup, MAX_DELAY_SECS};

pub use wake::Woken;

/// The longest horizon: SQS holds a message back at most 15 minutes.
pub const MAX_HORIZON_MS: Millis = MAX_DELAY_SECS as Millis * 1000;

/// Most timers one sweep queues (the rest wait for the next sweep, still ahead of their due
/// time when the horizon is much longer than the sweep period).
pub const ENTERING_BATCH: usize = 2_000;

/// How long after its time a mark counts as lost: a message fails five times (two minutes
/// of visibility timeout each) before it goes to the dead-letter queue.
pub const STALE_MARK_MS: Millis = 10 * 60 * 1000;

/// The precise tier: the delay queue and how far ahead it takes timers.
#[derive(Debug, Clone)]
pub struct NearTier {
    pub queue: SqsTimerQueue,
    /// Timers due within this many ms of now ride the queue (at most [`MAX_HORIZON_MS`]).
    pub horizon_ms: Millis,
}

/// Timers in the table, near ones also on the delay queue (if there is a [`NearTier`]).
pub struct TieredTimers {
    pub store: DynamoDbStore,
    near: Option<NearTier>,
    clock: Arc<dyn Clock>,
}

impl TieredTimers {
    /// Both tiers; `clock` says when "now" is (the wall clock on Lambda).
    pub fn new(store: DynamoDbStore, near: NearTier, clock: Arc<dyn Clock>) -> Self {
        let near = NearTier {
            horizon_ms: near.horizon_ms.clamp(0, MAX_HORIZON_MS),
            ..near
        };
        TieredTimers {
            store,
            near: Some(near),
            clock,
        }
    }

    /// The table and its sweeper only: timers fire up to a sweep period late (a queue
    /// message that still arrives claims its timer when due, as the sweeper would).
    pub fn sweeper_only(store: DynamoDbStore, clock: Arc<dyn Clock>) -> Self {
        TieredTimers {
            store,
            near: None,
            clock,
        }
    }

    /// Whether a timer due at `due` is within the horizon now.
    fn is_near(near: &NearTier, due: Millis, now: Millis) -> bool {
        due <= now.saturating_add(near.horizon_ms)
    }

    /// Queues the timers without a message that are due within the horizon, and those whose
    /// message was lost (the sweeper's second task, after claiming due ones). Returns how
    /// many were queued.
    #[instrument(skip(self))]
    pub async fn queue_entering(&self) -> Result<usize, StoreError> {
        let Some(near) = &self.near else {
            return Ok(0);
        };
        let now = self.clock.now();
        let entering = self
            .store
            .unqueued_due_between(
                now,
                now.saturating_add(near.horizon_ms),
                now.saturating_sub(STALE_MARK_MS),
                ENTERING_BATCH,
            )
            .await?;
        if entering.is_empty() {
            return Ok(0);
        }
        let wakeups: Vec<(Wakeup, i32)> = entering
            .iter()
            .map(|t| (wakeup_of(t), delay_seconds(t.due, now)))
            .collect();
        let sent = near.queue.send_all(&wakeups).await?;
        let mut queued = 0;
        for i in sent {
            let t = &entering[i];
            // `false`: the timer changed since the query; its set decided about a message.
            if self.store.mark_queued(t, Some(t.due)).await? {
                queued += 1;
            }
        }
        if queued > 0 {
            info!(queued, "timers entering the horizon queued");
        }
        Ok(queued)
    }

    /// Sends a wake-up for `timer` and marks it; `false` if the timer changed meanwhile
    /// (the message sent is then a spare: on arrival it finds the timer not its own).
    async fn enqueue(
        &self,
        near: &NearTier,
        timer: &LiveTimer,
        now: Millis,
    ) -> Result<bool, StoreError> {
        near.queue
            .send(&wakeup_of(timer), delay_seconds(timer.due, now))
            .await?;
        self.store.mark_queued(timer, Some(timer.due)).await
    }
}

fn wakeup_of(t: &LiveTimer) -> Wakeup {
    Wakeup {
        user_id: t.user_id.clone(),
        due: t.due,
        version: t.version,
    }
}

impl TimerStore for TieredTimers {
    /// Sets the timer in the table; a near one also gets a message unless the one on its way
    /// arrives no later than the new due time (it will re-queue itself then). A near timer
    /// without a message is marked in the same write as it is set, then its message sent.
    async fn set(&self, req: &DelayRequest) -> Result<(), StoreError> {
        let now = self.clock.now();
        let near = self
            .near
            .as_ref()
            .filter(|near| Self::is_near(near, req.due, now));
        let TimerSet::Set { queued } = self.store.set_timer(req, near.map(|_| req.due)).await?
        else {
            return Ok(());
        };
        let Some(near) = near else {
            return Ok(());
        };
        let timer = LiveTimer {
            user_id: req.user_id.clone(),
            due: req.due,
            version: req.version,
            queued,
        };
        match queued {
            Some(at) if at <= req.due => {
                debug!(user_id = %req.user_id, queued = at, due = req.due, "the queued message will re-queue itself");
                Ok(())
            }
            // Moved earlier than its message: another one, for the new time.
            Some(_) => {
                if !self.enqueue(near, &timer, now).await? {
                    debug!(user_id = %req.user_id, "a newer request replaced the timer meanwhile");
                }
                Ok(())
            }
            // Marked by the set itself: the message must follow.
            None => {
                let marked = LiveTimer {
                    queued: Some(req.due),
                    ..timer
                };
                let sent = near
                    .queue
                    .send(&wakeup_of(&marked), delay_seconds(req.due, now))
                    .await;
                if let Err(e) = sent {
                    // Unmarked, the timer is the sweeper's to queue or fire, and the
                    // request's retry may queue it again.
                    self.store.mark_queued(&marked, None).await?;
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    async fn cancel(&self, req: &DelayCancel) -> Result<(), StoreError> {
        // A message on its way finds the tombstone and does nothing.
        self.store.cancel(req).await
    }

    async fn restore(&self, req: &DelayRequest) -> Result<(), StoreError> {
        self.store.restore(req).await
    }

    async fn claim_due(&self, now: Millis, limit: usize) -> Result<Vec<TimerFired>, StoreError> {
        self.store.claim_due(now, limit).await
    }

    async fn pending(&self, user_id: &str) -> Result<Option<Timer>, StoreError> {
        self.store.pending(user_id).await
    }
}

impl ExpiredTimerClaim for TieredTimers {
    async fn claim_expired(&self, timer: &TimerFired) -> Result<bool, StoreError> {
        self.store.claim_expired(timer).await
    }
}
