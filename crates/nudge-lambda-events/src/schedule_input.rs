//! schedule-delay's input: one function, four kinds of input, told apart by their marks (a
//! bus event from nudge, the sweeper's scheduled event, a delay-queue batch, a table-stream
//! batch).

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use nudge_service::bus::{BusEvent, SOURCE};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The `source` of scheduled events.
pub const SCHEDULED_SOURCE: &str = "aws.events";
/// The detail-type of scheduled events.
pub const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A stream record of a timer item's removal.
    fn stream_record() -> Value {
        json!({
            "eventID": "e1",
            "eventName": "REMOVE",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1772438400.0,
                "Keys": {"pk": {"S": "u#alice"}, "sk": {"S": "timer"}},
                "OldImage": {"pk": {"S": "u#alice"}, "sk": {"S": "timer"}, "due": {"N": "1772442000000"}, "version": {"N": "3"}},
                "SequenceNumber": "100",
                "SizeBytes": 100,
                "StreamViewType": "OLD_IMAGE"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026"
        })
    }

    #[test]
    fn inputs_are_told_apart_and_unknown_ones_named() {
        let stream = json!({"Records": [stream_record()]});
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
        let stream = json!({"Records": [stream_record()]});
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
}
