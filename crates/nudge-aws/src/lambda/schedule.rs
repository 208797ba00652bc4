//! The schedule-delay function. One function, four kinds of input:
//! - "Delay Requested" / "Delay Cancelled" from the bus: set or cancel the user's timer (a
//!   near one also goes on the delay queue);
//! - the scheduled sweeper (`aws.events` "Scheduled Event", every minute): claim due timers
//!   and publish "Timer Fired", then queue the timers entering the horizon;
//! - delay-queue batches (SQS): each message claims its timer at the due second, or
//!   re-queues itself for a timer moved later (`schedule/delayed.rs`);
//! - DynamoDB stream batches: timers that TTL deleted before the sweeper claimed them (the
//!   backstop) are claimed and published as "Timer Fired"; each record that fails is
//!   reported by its sequence number so that only it is retried.

mod delayed;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Error, LambdaEvent};
use nudge_service::error::HandlerError;
use nudge_service::ports::{Bus, Clock, ExpiredTimerClaim};
use nudge_service::schedule::{FiredBy, Schedule};
use serde::Serialize;
use tracing::{debug, error, field, info, info_span, Instrument};

use super::{bus_span, on_bus_event, settle};
use crate::timers::TieredTimers;

pub use delayed::{delayed_timers, DelayedTimerError};
// Reading the inputs needs no SDK: it lives with the other Lambda inputs (and the fuzz targets).
pub use nudge_lambda_events::schedule_input::{
    ScheduleInput, SCHEDULED_DETAIL_TYPE, SCHEDULED_SOURCE, SQS_EVENT_SOURCE, STREAM_EVENT_SOURCE,
};
pub use nudge_lambda_events::stream::{expired_timer, StreamRecordError, TTL_PRINCIPAL};

/// What schedule-delay answers: batches the items that failed (by sequence number or
/// messageId, so that only they are retried), bus events and sweeps nothing (their failures
/// fail the invocation when a retry may help).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ScheduleResponse {
    /// A bus event or a sweep was handled.
    Done,
    /// A stream batch's failed records.
    Stream(DynamoDbEventResponse),
    /// A delay-queue batch's failed messages.
    Queue(SqsBatchResponse),
}

impl ScheduleResponse {
    /// The ids of the items reported as failed.
    pub fn failed_ids(&self) -> Vec<&str> {
        match self {
            ScheduleResponse::Done => Vec::new(),
            ScheduleResponse::Stream(r) => r
                .batch_item_failures
                .iter()
                .filter_map(|f| f.item_identifier.as_deref())
                .collect(),
            ScheduleResponse::Queue(r) => r
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect(),
        }
    }
}

/// Handles one invocation. Each kind's work is boxed (as `on_bus_event`'s is): the store's
/// and SDK's futures nest too deep for rustc's layout query in the binary otherwise.
pub async fn handler<B: Bus, C: Clock>(
    schedule: &Schedule<TieredTimers, B, C>,
    event: LambdaEvent<ScheduleInput>,
) -> Result<ScheduleResponse, Error> {
    match event.payload {
        ScheduleInput::Bus(event) => {
            let handling = Box::pin(schedule.handle(&event.detail));
            on_bus_event(bus_span!("schedule"), &event, handling).await?;
            Ok(ScheduleResponse::Done)
        }
        ScheduleInput::Sweep(event) => {
            let span = info_span!("sweep", event_id = event.id.as_deref());
            let result = Box::pin(sweep(schedule)).instrument(span.clone()).await;
            span.in_scope(|| settle(result))?;
            Ok(ScheduleResponse::Done)
        }
        ScheduleInput::Stream(batch) => Ok(ScheduleResponse::Stream(
            Box::pin(expired_timers(schedule, &batch)).await,
        )),
        ScheduleInput::Queue(batch) => Ok(ScheduleResponse::Queue(
            Box::pin(delayed_timers(schedule, &batch)).await,
        )),
    }
}

/// One sweep: fire the due timers (what the queue missed), then queue those entering the
/// horizon. Both are tried; the first failure is reported.
async fn sweep<B: Bus, C: Clock>(
    schedule: &Schedule<TieredTimers, B, C>,
) -> Result<(), HandlerError> {
    let fired = schedule.sweep().await;
    if let Ok(fired) = &fired {
        if *fired > 0 {
            info!(fired, "due timers fired");
        }
    }
    let queued = schedule.timers.queue_entering().await;
    fired?;
    queued?;
    Ok(())
}

/// Claims and fires the timers TTL deleted in a stream batch; ignores every other record
/// (deletions by users such as a GDPR erase, tombstones, other items) and timers claimed
/// before. A record that fails is reported and the rest go on.
pub async fn expired_timers<
    T: ExpiredTimerClaim + nudge_service::ports::TimerStore,
    B: Bus,
    C: Clock,
>(
    schedule: &Schedule<T, B, C>,
    batch: &DynamoDbEvent,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &batch.records {
        let id = record
            .change
            .sequence_number
            .clone()
            .unwrap_or_else(|| record.event_id.clone());
        let span = info_span!(
            "timer_expired",
            sequence_number = %id,
            user_id = field::Empty,
        );
        let outcome = async {
            match expired_timer(record)? {
                None => Ok(()),
                Some(timer) => {
                    tracing::Span::current().record("user_id", timer.user_id.as_str());
                    let claimed = schedule
                        .timers
                        .claim_expired(&timer)
                        .await
                        .map_err(StreamRecordError::Claim)?;
                    if !claimed {
                        debug!(
                            due = timer.due,
                            version = timer.version,
                            "expired timer claimed before: not fired again"
                        );
                        return Ok(());
                    }
                    info!(
                        due = timer.due,
                        version = timer.version,
                        "TTL removed a due timer"
                    );
                    schedule
                        .fire(vec![timer], FiredBy::Expiry)
                        .await
                        .map_err(StreamRecordError::Fire)
                }
            }
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = outcome {
            span.in_scope(|| error!(error = %e, "stream record failed; it will be retried"));
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(id);
            response.batch_item_failures.push(failure);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_queue_batch_answers_its_failed_message_ids() {
        let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
        failure.item_identifier = "m2".into();
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures.push(failure);
        let response = ScheduleResponse::Queue(response);
        assert_eq!(response.failed_ids(), vec!["m2"]);
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "m2"}]})
        );
        assert!(ScheduleResponse::Done.failed_ids().is_empty());
    }
}
