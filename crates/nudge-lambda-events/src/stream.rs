//! schedule-delay's table-stream records: which of them show DynamoDB's TTL deleting a timer
//! that is still due to fire (the backstop behind the sweeper and the delay queue).

use aws_lambda_events::event::dynamodb::EventRecord;
use nudge_core::time::Millis;
use nudge_service::bus::TimerFired;
use nudge_service::error::HandlerError;
use nudge_service::ports::StoreError;
use serde::Deserialize;
use tracing::debug;

/// The `userIdentity` of deletions made by DynamoDB's TTL process.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

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
    use serde_json::{json, Value};

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
}
