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

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Error, LambdaEvent};
use nudge_core::time::Millis;
use nudge_service::bus::{BusEvent, TimerFired, SOURCE};
use nudge_service::error::HandlerError;
use nudge_service::ports::{Bus, Clock, ExpiredTimerClaim, StoreError};
use nudge_service::schedule::{FiredBy, Schedule};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tracing::{debug, error, field, info, info_span, Instrument};

use super::{bus_span, on_bus_event, settle};
use crate::timers::TieredTimers;

pub use delayed::{delayed_timers, DelayedTimerError};

/// The `source` of scheduled events.
pub const SCHEDULED_SOURCE: &str = "aws.events";
/// The detail-type of scheduled events.
pub const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";
/// The `userIdentity` of deletions made by DynamoDB's TTL process.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";
/// The `eventSource` of the records of a delay-queue batch.
pub const SQS_EVENT_SOURCE: &str = "aws:sqs";
/// The `eventSource` of the records of a stream batch.
pub const STREAM_EVENT_SOURCE: &str = "aws:dynamodb";

/// What invoked schedule-delay.
#[derive(Debug, Clone)]
pub enum ScheduleInput {
    /// A bus event from nudge (a delay requested or cancelled).
    Bus(Box<EventBridgeEvent<BusEvent>>),
    /// The sweeper's scheduled event.
    Sweep(Box<EventBridgeEvent>),
    /// A batch of the table's stream records.
    Stream(DynamoDbEvent),
    /// A batch of delay-queue messages.
    Queue(SqsEvent),
}

impl ScheduleInput {
    /// Tells the shapes apart by their marks: a batch has `Records`, whose `eventSource`
    /// says whose (`aws:sqs`, `aws:dynamodb`); an EventBridge event has `source` (and
    /// `detail-type`). Anything else is an error naming what arrived.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        let Value::Object(map) = &value else {
            return Err(serde_json::Error::custom(format!(
                "schedule-delay takes a JSON object (a DynamoDB stream batch or an EventBridge \
                 event), not {}",
                kind_of(&value)
            )));
        };
        if let Some(records) = map.get("Records") {
            let source = records
                .get(0)
                .and_then(|r| r.get("eventSource"))
                .and_then(Value::as_str);
            return match source {
                Some(SQS_EVENT_SOURCE) => serde_json::from_value(value).map(ScheduleInput::Queue),
                // An empty batch has nothing to tell: handled as an empty stream batch.
                Some(STREAM_EVENT_SOURCE) | None => {
                    serde_json::from_value(value).map(ScheduleInput::Stream)
                }
                Some(other) => Err(serde_json::Error::custom(format!(
                    "schedule-delay does not handle batches from `{other}` (only `{SQS_EVENT_SOURCE}` \
                     and `{STREAM_EVENT_SOURCE}`)"
                ))),
            };
        }
        let source = map.get("source").and_then(Value::as_str);
        let detail_type = map.get("detail-type").and_then(Value::as_str);
        match (source, detail_type) {
            (Some(SOURCE), Some(_)) => {
                serde_json::from_value(value).map(|e| ScheduleInput::Bus(Box::new(e)))
            }
            (Some(SCHEDULED_SOURCE), Some(SCHEDULED_DETAIL_TYPE)) => {
                serde_json::from_value(value).map(|e| ScheduleInput::Sweep(Box::new(e)))
            }
            (Some(source), detail_type) => Err(serde_json::Error::custom(format!(
                "schedule-delay does not handle EventBridge events from `{source}` \
                 (detail-type `{}`)",
                detail_type.unwrap_or("none")
            ))),
            (None, _) => {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                Err(serde_json::Error::custom(format!(
                    "unknown schedule-delay input: neither a DynamoDB stream batch (`Records`) \
                     nor an EventBridge event (`source`); its keys are [{}]",
                    keys.join(", ")
                )))
            }
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'de> Deserialize<'de> for ScheduleInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        ScheduleInput::from_value(value).map_err(D::Error::custom)
    }
}

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

/// Why a stream record could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum StreamRecordError {
    /// A timer item's image does not read as one.
    #[error("timer record {event_id}: {reason}")]
    BadRecord { event_id: String, reason: String },
    /// Claiming the expired timer failed.
    #[error("claiming the expired timer: {0}")]
    Claim(#[source] StoreError),
    /// Publishing "Timer Fired" (or handing the timer back) failed.
    #[error(transparent)]
    Fire(HandlerError),
}

#[derive(Deserialize)]
struct Keys {
    pk: String,
    sk: String,
}

/// The attributes of a timer item that matter when it is deleted.
#[derive(Deserialize)]
struct TimerImage {
    due: Option<Millis>,
    version: Option<u64>,
    #[serde(default)]
    cancelled: bool,
    #[serde(default)]
    claimed: bool,
}

/// The timer a stream record shows DynamoDB's TTL deleted, or `None` if the record is
/// anything else: not a removal, a removal by someone else (the sweeper's claim, a GDPR
/// erase), not a timer item, or a tombstone (a cancelled or claimed timer).
pub fn expired_timer(record: &EventRecord) -> Result<Option<TimerFired>, StreamRecordError> {
    if record.event_name != "REMOVE" {
        return Ok(None);
    }
    let by_ttl = record
        .user_identity
        .as_ref()
        .is_some_and(|u| u.type_ == "Service" && u.principal_id == TTL_PRINCIPAL);
    if !by_ttl {
        debug!("removal by a user, not by TTL: ignored");
        return Ok(None);
    }
    let bad = |reason: String| StreamRecordError::BadRecord {
        event_id: record.event_id.clone(),
        reason,
    };
    let keys: Keys = serde_dynamo::from_item(record.change.keys.clone())
        .map_err(|e| bad(format!("keys: {e}")))?;
    if keys.sk != "timer" {
        return Ok(None);
    }
    if record.change.old_image.is_empty() {
        return Err(bad(
            "no old image: the stream must carry OLD_IMAGE (or NEW_AND_OLD_IMAGES)".into(),
        ));
    }
    let image: TimerImage = serde_dynamo::from_item(record.change.old_image.clone())
        .map_err(|e| bad(format!("old image: {e}")))?;
    let Some(due) = image.due else {
        return Ok(None);
    };
    if image.cancelled || image.claimed {
        return Ok(None);
    }
    let version = image
        .version
        .ok_or_else(|| bad("a timer without `version`".into()))?;
    let user_id = keys
        .pk
        .strip_prefix("u#")
        .ok_or_else(|| bad(format!("a timer under partition key `{}`", keys.pk)))?;
    Ok(Some(TimerFired {
        user_id: user_id.to_string(),
        due,
        version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(name: &str, identity: Option<(&str, &str)>, sk: &str, old: Value) -> Value {
        let mut r = json!({
            "eventID": "e1",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1772438400.0,
                "Keys": {"pk": {"S": "u#alice"}, "sk": {"S": sk}},
                "OldImage": old,
                "SequenceNumber": "100",
                "SizeBytes": 100,
                "StreamViewType": "OLD_IMAGE"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026"
        });
        if let Some((kind, principal)) = identity {
            r["userIdentity"] = json!({"type": kind, "principalId": principal});
        }
        r
    }

    fn parse(r: Value) -> EventRecord {
        serde_json::from_value(r).unwrap()
    }

    fn timer_image() -> Value {
        json!({
            "pk": {"S": "u#alice"}, "sk": {"S": "timer"},
            "due": {"N": "1772442000000"}, "version": {"N": "3"}, "ttl": {"N": "1772442000"},
            "gsi1pk": {"S": "timers#5"}, "gsi1sk": {"N": "1772442000000"}
        })
    }

    #[test]
    fn a_ttl_removal_of_a_live_timer_fires_it() {
        let r = parse(record(
            "REMOVE",
            Some(("Service", TTL_PRINCIPAL)),
            "timer",
            timer_image(),
        ));
        assert_eq!(
            expired_timer(&r).unwrap(),
            Some(TimerFired {
                user_id: "alice".into(),
                due: 1_772_442_000_000,
                version: 3
            })
        );
    }

    #[test]
    fn other_records_are_ignored() {
        let ignored = [
            record("REMOVE", None, "timer", timer_image()),
            record(
                "REMOVE",
                Some(("User", "AIDAEXAMPLE")),
                "timer",
                timer_image(),
            ),
            record(
                "MODIFY",
                Some(("Service", TTL_PRINCIPAL)),
                "timer",
                timer_image(),
            ),
            record(
                "REMOVE",
                Some(("Service", TTL_PRINCIPAL)),
                "state",
                json!({"pk": {"S": "u#alice"}, "sk": {"S": "state"}}),
            ),
            record(
                "REMOVE",
                Some(("Service", TTL_PRINCIPAL)),
                "timer",
                json!({"pk": {"S": "u#alice"}, "sk": {"S": "timer"}, "version": {"N": "4"}, "cancelled": {"BOOL": true}, "ttl": {"N": "1"}}),
            ),
            record(
                "REMOVE",
                Some(("Service", TTL_PRINCIPAL)),
                "timer",
                json!({"pk": {"S": "u#alice"}, "sk": {"S": "timer"}, "version": {"N": "4"}, "claimed": {"BOOL": true}, "ttl": {"N": "1"}}),
            ),
        ];
        for r in ignored {
            assert_eq!(expired_timer(&parse(r.clone())).unwrap(), None, "{r}");
        }
    }

    #[test]
    fn a_timer_without_its_old_image_is_an_error() {
        let r = parse(record(
            "REMOVE",
            Some(("Service", TTL_PRINCIPAL)),
            "timer",
            json!(null),
        ));
        let err = expired_timer(&r).unwrap_err();
        assert!(err.to_string().contains("OLD_IMAGE"), "{err}");
    }

    #[test]
    fn inputs_are_told_apart_and_unknown_ones_named() {
        let stream = json!({"Records": [record("REMOVE", None, "timer", timer_image())]});
        assert!(
            matches!(ScheduleInput::from_value(stream), Ok(ScheduleInput::Stream(b)) if b.records.len() == 1)
        );

        let sweep = json!({
            "version": "0", "id": "s1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-03-02T08:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/nudge-dev-sweep"], "detail": {}
        });
        assert!(matches!(
            ScheduleInput::from_value(sweep),
            Ok(ScheduleInput::Sweep(_))
        ));

        let delay = json!({
            "version": "0", "id": "b1", "detail-type": "Delay Requested", "source": "nudge",
            "account": "123456789012", "time": "2026-03-02T08:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {"type": "Delay Requested", "user_id": "alice", "due": 1, "version": 2}
        });
        assert!(
            matches!(ScheduleInput::from_value(delay), Ok(ScheduleInput::Bus(e)) if e.detail.user_id() == Some("alice"))
        );

        let foreign = json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}});
        let err = ScheduleInput::from_value(foreign).unwrap_err().to_string();
        assert!(
            err.contains("aws.s3") && err.contains("Object Created"),
            "{err}"
        );

        let unknown = json!({"Hello": 1});
        let err = ScheduleInput::from_value(unknown).unwrap_err().to_string();
        assert!(err.contains("Hello"), "{err}");

        let err = serde_json::from_str::<ScheduleInput>("[1]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("an array"), "{err}");
    }

    #[test]
    fn batches_are_told_apart_by_their_event_source() {
        let queue = json!({"Records": [{
            "messageId": "m1", "receiptHandle": "r1",
            "body": "{\"user_id\":\"alice\",\"due\":1,\"version\":2}",
            "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:nudge-dev-timers",
            "awsRegion": "us-east-1"
        }]});
        assert!(
            matches!(ScheduleInput::from_value(queue), Ok(ScheduleInput::Queue(b)) if b.records.len() == 1)
        );
        let stream = json!({"Records": [record("REMOVE", None, "timer", timer_image())]});
        assert!(matches!(
            ScheduleInput::from_value(stream),
            Ok(ScheduleInput::Stream(_))
        ));
        // An empty batch has no source to tell: nothing to do either way.
        assert!(matches!(
            ScheduleInput::from_value(json!({"Records": []})),
            Ok(ScheduleInput::Stream(b)) if b.records.is_empty()
        ));
        let kinesis = json!({"Records": [{"eventSource": "aws:kinesis"}]});
        let err = ScheduleInput::from_value(kinesis).unwrap_err().to_string();
        assert!(err.contains("aws:kinesis"), "{err}");
    }

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
