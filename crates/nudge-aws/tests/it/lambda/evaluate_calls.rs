//! DynamoDB calls per event on evaluate's batched path: one "Events Accepted" of many users
//! through the evaluate handler, on moto, with every request the store's client sends
//! counted by operation (BENCHMARKS.md, "DynamoDB calls per event"). Run with
//! `cargo test -p nudge-aws --test it evaluate_calls -- --nocapture` to see the figures.

use std::collections::BTreeMap;
use std::sync::Arc;

use nudge_service::bus::BusEvent;
use nudge_service::evaluate::Evaluate;
use nudge_service::metrics::NoMetrics;
use nudge_service::ports::{Clock, SystemClock};
use serde_json::{json, Value};

use nudge_aws::dynamodb::DynamoDbStore;
use nudge_aws::eventbridge::EventBridgeBus;

use crate::support;
use crate::support::stack::example_rules;

/// Users in the batch: a full `/v1/batch` of two events each.
const USERS: usize = 100;

/// An "Events Accepted" with two events of each user, as ingest publishes a batch.
fn batch(round: &str, events: [(&str, Value); 2], now: i64) -> BusEvent {
    let mut accepted = Vec::new();
    for user in 0..USERS {
        let user_id = format!("user-{user}");
        for (i, (kind, fields)) in events.iter().enumerate() {
            let message_id = format!("{round}-{user}-{i}");
            let mut message = json!({
                "type": kind,
                "userId": user_id,
                "messageId": message_id,
                "timestamp": nudge_core::time::format_instant(now),
            });
            for (name, value) in fields.as_object().into_iter().flatten() {
                message[name] = value.clone();
            }
            accepted.push(json!({
                "user_id": user_id,
                "message_id": message_id,
                "at": now,
                "received_at": now,
                "message": message,
            }));
        }
    }
    let event = json!({ "type": "Events Accepted", "events": accepted });
    serde_json::from_value(event).expect("an Events Accepted")
}

/// Prints the calls of one batch, in all and per event.
fn report(name: &str, calls: &BTreeMap<String, u64>) {
    let events = 2 * USERS as u64;
    let total: u64 = calls.values().sum();
    println!(
        "{name} ({USERS} users, {events} events): {total} DynamoDB calls, {:.3} per event: {calls:?}",
        total as f64 / events as f64
    );
}

#[tokio::test]
async fn evaluate_dynamodb_calls_per_event() {
    let (_, table) = support::table().await;
    let (client, counter) = support::calls::counted_client();
    let store = DynamoDbStore::new(client, table, 4);
    let (bus_name, _queue) = support::bus_to_queue().await;
    let events = aws_sdk_eventbridge::Client::new(&support::sdk_config());
    let evaluate = Evaluate {
        rules: example_rules(),
        store,
        bus: EventBridgeBus::new(events, bus_name),
        clock: SystemClock,
        metrics: Arc::new(NoMetrics),
    };
    let now = SystemClock.now();

    let signed_up = batch(
        "new",
        [
            (
                "identify",
                json!({ "traits": { "email": "someone@example.com", "plan": "team" } }),
            ),
            ("track", json!({ "event": "Signed Up" })),
        ],
        now,
    );
    evaluate.handle(&signed_up).await.expect("first batch");
    let first = counter.take();
    let feature = |name: &str| {
        (
            "track",
            json!({ "event": "Feature Used", "properties": { "feature": name } }),
        )
    };
    let using = batch(
        "known",
        [feature("boards"), feature("search")],
        now + 60_000,
    );
    evaluate.handle(&using).await.expect("second batch");
    let second = counter.take();

    for (name, calls) in [("new users", &first), ("known users", &second)] {
        report(name, calls);
        // One read for the batch's users, one conditional write each: no GetItem per user,
        // no transaction around the saves.
        assert_eq!(calls.get("GetItem"), None, "{name}: {calls:?}");
        assert_eq!(
            calls.get("BatchGetItem"),
            Some(&USERS.div_ceil(100).try_into().unwrap())
        );
        assert_eq!(
            calls.get("PutItem"),
            Some(&(USERS as u64)),
            "{name}: {calls:?}"
        );
    }
}
