//! The stream backstop against a real moto server: timers on a real table, deleted the way
//! TTL deletes them (moto keeps expired items, so the test deletes the item itself and hands
//! the handler the stream record DynamoDB would write for it, with the TTL service's
//! `userIdentity`), and "Timer Fired" counted on a real bus routed to a queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use nudge_core::time::Millis;
use nudge_service::bus::{BusEvent, DelayRequest, TimerFired};
use nudge_service::metrics::NoMetrics;
use nudge_service::ports::{Clock, SystemClock, TimerStore};
use nudge_service::schedule::Schedule;
use serde_json::{json, Value};

use nudge_aws::dynamodb::DynamoDbStore;
use nudge_aws::eventbridge::EventBridgeBus;
use nudge_aws::lambda::schedule::{handler, ScheduleInput, TTL_PRINCIPAL};
use nudge_aws::timers::TieredTimers;

use crate::support::stack::lambda_event;
use crate::support::{self, Queue};

type TestSchedule = Schedule<TieredTimers, EventBridgeBus, SystemClock>;

/// schedule-delay over a fresh table and a bus routed to a queue; `config` reaches moto
/// directly or through the one-request-at-a-time proxy.
fn schedule_on(config: &aws_config::SdkConfig, table: &str, bus: &str) -> TestSchedule {
    Schedule {
        timers: TieredTimers::sweeper_only(
            DynamoDbStore::new(aws_sdk_dynamodb::Client::new(config), table, 4),
            Arc::new(SystemClock),
        ),
        bus: EventBridgeBus::new(aws_sdk_eventbridge::Client::new(config), bus),
        clock: SystemClock,
        metrics: Arc::new(NoMetrics),
    }
}

async fn schedule() -> (TestSchedule, aws_sdk_dynamodb::Client, String, Queue) {
    let (client, table) = support::table().await;
    let (bus, queue) = support::bus_to_queue().await;
    let schedule = schedule_on(&support::sdk_config(), &table, &bus);
    (schedule, client, table, queue)
}

/// Deletes a user's timer item as TTL (or a user) would, returning the deleted image.
async fn delete_timer(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    user: &str,
) -> HashMap<String, AttributeValue> {
    client
        .delete_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("u#{user}")))
        .key("sk", AttributeValue::S("timer".into()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .expect("delete the timer")
        .attributes
        .expect("the timer existed")
}

/// The stream record of a removal (stream view OLD_IMAGE), by the TTL service or not.
fn removal(sequence: u64, old: &HashMap<String, AttributeValue>, by_ttl: bool) -> Value {
    let image = serde_json::to_value(serde_dynamo::Item::from(old.clone())).expect("image");
    let mut record = json!({
        "eventID": format!("event-{sequence}"),
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_772_438_400.0,
            "Keys": {"pk": image["pk"], "sk": image["sk"]},
            "OldImage": image,
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 120,
            "StreamViewType": "OLD_IMAGE"
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/nudge/stream/2026-03-02T00:00:00.000"
    });
    if by_ttl {
        record["userIdentity"] = json!({"type": "Service", "principalId": TTL_PRINCIPAL});
    }
    record
}

/// Invokes the handler with a stream batch as Lambda would; the sequence numbers of the
/// records it reports as failed.
async fn invoke(schedule: &TestSchedule, records: &[Value]) -> Vec<String> {
    let input: ScheduleInput =
        serde_json::from_value(json!({ "Records": records })).expect("a stream batch");
    let response = handler(schedule, lambda_event(input))
        .await
        .expect("a stream batch never fails whole");
    response
        .failed_ids()
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Every timer fired ("Timer Fired", or several packed in "Timers Fired") that reached the
/// queue within `wait` (waiting the whole time, so that a duplicate would be seen).
async fn fired(queue: &Queue, wait: Duration) -> Vec<TimerFired> {
    let mut fired: Vec<TimerFired> = queue
        .receive(usize::MAX, wait)
        .await
        .into_iter()
        .flat_map(|envelope| {
            let event: BusEvent =
                serde_json::from_value(envelope["detail"].clone()).expect("a bus event");
            assert_eq!(envelope["detail-type"], event.detail_type());
            event.unpack()
        })
        .map(|event| match event {
            BusEvent::TimerFired(t) => t,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    fired.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    fired
}

fn delay(user: &str, due: Millis, version: u64) -> DelayRequest {
    DelayRequest {
        user_id: user.into(),
        due,
        version,
    }
}

#[tokio::test]
async fn a_ttl_removal_fires_once_however_often_it_comes_and_user_removals_are_ignored() {
    let (schedule, client, table, queue) = schedule().await;
    let due = SystemClock.now() - 60_000;
    schedule.timers.set(&delay("alice", due, 3)).await.unwrap();
    schedule.timers.set(&delay("bob", due, 5)).await.unwrap();
    schedule.timers.set(&delay("carol", due, 2)).await.unwrap();

    // TTL deletes alice's timer; a GDPR erase (a user) deletes bob's; carol's timer is
    // deleted by TTL, but its image lacks the version (a record that cannot be handled).
    let alice = removal(1, &delete_timer(&client, &table, "alice").await, true);
    let bob = removal(2, &delete_timer(&client, &table, "bob").await, false);
    let mut carol_image = delete_timer(&client, &table, "carol").await;
    carol_image.remove("version");
    let carol = removal(3, &carol_image, true);
    let batch = [alice, bob, carol];

    assert_eq!(invoke(&schedule, &batch).await, vec!["3".to_string()]);
    // Lambda delivers the batch again (the failed record and those around it).
    assert_eq!(invoke(&schedule, &batch).await, vec!["3".to_string()]);
    // The sweeper finds nothing left to fire.
    schedule.sweep().await.unwrap();

    assert_eq!(
        fired(&queue, Duration::from_secs(2)).await,
        vec![TimerFired {
            user_id: "alice".into(),
            due,
            version: 3
        }]
    );
    // The claim remembers alice's version: a late older request does not bring it back,
    // and bob's erased timer stays gone.
    schedule.timers.set(&delay("alice", due, 2)).await.unwrap();
    assert_eq!(schedule.timers.pending("alice").await.unwrap(), None);
    assert_eq!(schedule.timers.pending("bob").await.unwrap(), None);
}

#[tokio::test]
async fn a_record_for_a_timer_the_sweeper_claimed_or_a_newer_request_replaced_fires_nothing() {
    let (schedule, client, table, queue) = schedule().await;
    let due = SystemClock.now() - 60_000;
    // dave's timer as it was before the sweeper claimed it.
    schedule.timers.set(&delay("dave", due, 4)).await.unwrap();
    let dave = removal(1, &item(&client, &table, "dave").await, true);
    assert_eq!(schedule.sweep().await.unwrap(), 1);
    // erin's timer expired, then a newer request set her next one before the record came.
    schedule.timers.set(&delay("erin", due, 1)).await.unwrap();
    let erin = removal(2, &delete_timer(&client, &table, "erin").await, true);
    let later = SystemClock.now() + 3_600_000;
    schedule.timers.set(&delay("erin", later, 2)).await.unwrap();

    assert!(invoke(&schedule, &[dave, erin]).await.is_empty());
    assert_eq!(
        fired(&queue, Duration::from_secs(2)).await,
        vec![TimerFired {
            user_id: "dave".into(),
            due,
            version: 4
        }],
        "only the sweeper's fire"
    );
    let pending = schedule.timers.pending("erin").await.unwrap().unwrap();
    assert_eq!((pending.due, pending.version), (later, 2));
}

/// The stored timer item.
async fn item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    user: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("u#{user}")))
        .key("sk", AttributeValue::S("timer".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get the timer")
        .item
        .expect("the timer exists")
}

#[tokio::test]
async fn a_failed_publish_puts_the_timer_back_and_the_retried_record_fires_it_once() {
    let (client, table) = support::table().await;
    let (bus, queue) = support::bus_to_queue().await;
    let broken = schedule_on(&support::sdk_config(), &table, "no-such-bus");
    let working = schedule_on(&support::sdk_config(), &table, &bus);
    let due = SystemClock.now() - 60_000;
    working.timers.set(&delay("frank", due, 7)).await.unwrap();
    let frank = [removal(
        9,
        &delete_timer(&client, &table, "frank").await,
        true,
    )];

    assert_eq!(invoke(&broken, &frank).await, vec!["9".to_string()]);
    let back = working.timers.pending("frank").await.unwrap().unwrap();
    assert_eq!((back.due, back.version), (due, 7), "handed back");

    assert!(invoke(&working, &frank).await.is_empty());
    assert!(invoke(&working, &frank).await.is_empty());
    assert_eq!(working.sweep().await.unwrap(), 0);
    assert_eq!(
        fired(&queue, Duration::from_secs(2)).await,
        vec![TimerFired {
            user_id: "frank".into(),
            due,
            version: 7
        }]
    );
}

/// Timers handed back after failed publishes are live and due: the sweeper and the retried
/// stream records race for them. Through the proxy that applies one request at a time (as
/// DynamoDB applies each conditional write whole), each fires exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_and_retried_records_racing_fire_each_timer_once() {
    let (client, table) = support::table().await;
    let (bus, queue) = support::bus_to_queue().await;
    let proxied = support::one_at_a_time_sdk_config();
    let sweeper = Arc::new(schedule_on(&proxied, &table, &bus));
    let stream = Arc::new(schedule_on(&proxied, &table, &bus));
    let due = SystemClock.now() - 60_000;
    let mut records = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20u64 {
        let user = format!("user-{i:02}");
        stream.timers.set(&delay(&user, due, i + 1)).await.unwrap();
        // The record of the timer's TTL deletion, whose first handling failed to publish.
        records.push(removal(i + 1, &item(&client, &table, &user).await, true));
        expected.push(TimerFired {
            user_id: user,
            due,
            version: i + 1,
        });
    }

    let sweep = {
        let sweeper = sweeper.clone();
        tokio::spawn(async move { sweeper.sweep().await })
    };
    let retry = {
        let stream = stream.clone();
        tokio::spawn(async move { invoke(&stream, &records).await })
    };
    let swept = sweep.await.unwrap().unwrap();
    assert!(retry.await.unwrap().is_empty());

    let fired = fired(&queue, Duration::from_secs(3)).await;
    assert_eq!(fired, expected, "{swept} fired by the sweeper");
}
