//! Delay-queue batches: each message wakes its timer (`crate::timers`, `wake.rs`); the timers
//! the batch found due are published together ("Timer Fired", or one "Timers Fired"). A
//! message that fails is reported by its messageId, so SQS delivers only it again (after the
//! queue's visibility timeout; the sweeper fires a handed-back timer sooner).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use nudge_service::error::HandlerError;
use nudge_service::ports::{Bus, Clock, StoreError};
use nudge_service::schedule::{FiredBy, Schedule};
use tracing::{debug, error, field, info_span, Instrument};

use crate::sqs::Wakeup;
use crate::timers::{TieredTimers, Woken};

/// Why a delay-queue message could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum DelayedTimerError {
    /// The body is not a wake-up.
    #[error("message {message_id}: not a timer wake-up: {source}")]
    BadMessage {
        message_id: String,
        #[source]
        source: serde_json::Error,
    },
    /// Reading, claiming or re-queueing the timer failed.
    #[error("waking the timer: {0}")]
    Wake(#[source] StoreError),
    /// Publishing "Timer Fired" (or handing the timer back) failed.
    #[error(transparent)]
    Fire(HandlerError),
}

/// Handles a batch of delay-queue messages; answers the messageIds that failed.
pub async fn delayed_timers<B: Bus, C: Clock>(
    schedule: &Schedule<TieredTimers, B, C>,
    batch: &SqsEvent,
) -> SqsBatchResponse {
    let mut failed = Vec::new();
    let mut due = Vec::new();
    for record in &batch.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = info_span!("timer_wakeup", message_id = %id, user_id = field::Empty);
        let outcome = async {
            let body = record.body.as_deref().unwrap_or_default();
            let wakeup =
                Wakeup::from_body(body).map_err(|source| DelayedTimerError::BadMessage {
                    message_id: id.clone(),
                    source,
                })?;
            tracing::Span::current().record("user_id", wakeup.user_id.as_str());
            schedule
                .timers
                .wake(&wakeup)
                .await
                .map_err(DelayedTimerError::Wake)
        }
        .instrument(span.clone())
        .await;
        match outcome {
            Ok(Woken::Fire(timer)) => due.push((id, timer)),
            Ok(other) => span.in_scope(|| debug!(outcome = ?other, "timer woken")),
            Err(e) => {
                span.in_scope(|| error!(error = %e, "timer message failed; it will be retried"));
                failed.push(id);
            }
        }
    }
    if !due.is_empty() {
        let (ids, timers): (Vec<String>, Vec<_>) = due.into_iter().unzip();
        if let Err(e) = schedule.fire(timers, FiredBy::Queue).await {
            let e = DelayedTimerError::Fire(e);
            error!(error = %e, timers = ids.len(), "publishing fired timers failed; their messages will be retried");
            failed.extend(ids);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}
