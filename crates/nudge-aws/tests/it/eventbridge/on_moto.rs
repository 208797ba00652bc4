//! The EventBridge bus against a real moto server: events routed by a rule on the bus to an
//! SQS queue, and the PutEvents calls counted by an SDK interceptor.

use nudge_core::event::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_eventbridge::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_eventbridge::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_eventbridge::error::BoxError;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use nudge_service::bus::{AcceptedEvent, AcceptedEvents, BusEvent, TimerFired};
use nudge_service::ports::{Bus, StoreError};
use serde_json::{json, Value};

use nudge_aws::eventbridge::{entry_size, EventBridgeBus, MAX_REQUEST_BYTES};
use nudge_aws::test_access::{bus_name, entry, send_entries};

use crate::support;

/// Records how many entries each PutEvents request carried.
#[derive(Debug, Clone, Default)]
struct PutEventsCalls(Arc<Mutex<Vec<usize>>>);

impl PutEventsCalls {
    fn entries_per_call(&self) -> Vec<usize> {
        self.0.lock().unwrap().clone()
    }
}

impl Intercept for PutEventsCalls {
    fn name(&self) -> &'static str {
        "PutEventsCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        let request: Value = serde_json::from_slice(body)?;
        if let Some(entries) = request["Entries"].as_array() {
            self.0.lock().unwrap().push(entries.len());
        }
        Ok(())
    }
}

/// A bus on a fresh EventBridge bus routed to a fresh queue, with its calls recorded.
async fn bus() -> (EventBridgeBus, PutEventsCalls, support::Queue) {
    let (bus_name, queue) = support::bus_to_queue().await;
    let calls = PutEventsCalls::default();
    let config = aws_sdk_eventbridge::config::Builder::from(&support::sdk_config())
        .interceptor(calls.clone())
        .build();
    let client = aws_sdk_eventbridge::Client::from_conf(config);
    (EventBridgeBus::new(client, bus_name), calls, queue)
}

/// The bus events in queued EventBridge envelopes, checking the envelope on the way.
fn events_of(envelopes: &[Value]) -> Vec<BusEvent> {
    let mut events: Vec<BusEvent> = envelopes
        .iter()
        .map(|envelope| {
            assert_eq!(envelope["source"], "nudge");
            let event: BusEvent =
                serde_json::from_value(envelope["detail"].clone()).expect("a bus event");
            assert_eq!(envelope["detail-type"], event.detail_type());
            event
        })
        .collect();
    events.sort_by_key(|e| e.to_detail());
    events
}

fn sorted(events: &[BusEvent]) -> Vec<BusEvent> {
    let mut events = events.to_vec();
    events.sort_by_key(|e| e.to_detail());
    events
}

fn timer_fired(i: i64) -> BusEvent {
    BusEvent::TimerFired(TimerFired {
        user_id: format!("user-{i}"),
        due: 1_700_000_000_000 + i,
        version: 1,
    })
}

/// An "Events Accepted" entry of about `bytes` bytes.
fn accepted(i: usize, bytes: usize) -> BusEvent {
    BusEvent::EventsAccepted(AcceptedEvents {
        events: vec![AcceptedEvent::new(
            Message::track(
                &format!("user-{i}"),
                &format!("m-{i}"),
                "Big",
                json!({ "blob": "x".repeat(bytes) })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                1_700_000_000_000,
            ),
            1_700_000_000_000,
            1_700_000_000_000,
        )],
    })
}

#[tokio::test]
async fn publishes_23_events_in_three_calls_and_all_are_routed() {
    let (bus, calls, queue) = bus().await;
    let events: Vec<BusEvent> = (0..23).map(|i| accepted(i, 100)).collect();
    bus.publish(&events).await.unwrap();
    assert_eq!(calls.entries_per_call(), vec![10, 10, 3]);

    let received = queue.receive(23, Duration::from_secs(20)).await;
    assert_eq!(events_of(&received), sorted(&events));
}

#[tokio::test]
async fn timers_fired_together_go_as_one_packed_entry() {
    let (bus, calls, queue) = bus().await;
    let events: Vec<BusEvent> = (0..23).map(timer_fired).collect();
    bus.publish(&events).await.unwrap();
    assert_eq!(calls.entries_per_call(), vec![1]);

    let received = queue.receive(23, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["detail-type"], "Timers Fired");
    let unpacked: Vec<BusEvent> = events_of(&received)
        .into_iter()
        .flat_map(BusEvent::unpack)
        .collect();
    assert_eq!(sorted(&unpacked), sorted(&events));
}

#[tokio::test]
async fn large_events_are_split_by_the_256_kb_rule() {
    let (bus, calls, queue) = bus().await;
    let events: Vec<BusEvent> = (0..8).map(|i| accepted(i, 70_000)).collect();
    let size = entry_size(&entry(&bus, &events[0]));
    assert!(3 * size <= MAX_REQUEST_BYTES && 4 * size > MAX_REQUEST_BYTES);

    bus.publish(&events).await.unwrap();
    assert_eq!(calls.entries_per_call(), vec![3, 3, 2]);
    let received = queue.receive(8, Duration::from_secs(20)).await;
    assert_eq!(events_of(&received), sorted(&events));
}

#[tokio::test]
async fn an_event_too_large_for_any_call_is_refused_before_sending() {
    let (bus, calls, _queue) = bus().await;
    let err = bus
        .publish(&[timer_fired(1), accepted(2, 300_000)])
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("Events Accepted"), "{err}");
    assert!(calls.entries_per_call().is_empty());
}

#[tokio::test]
async fn entries_refused_for_good_fail_the_publish_and_the_rest_arrive_once() {
    let (bus, calls, queue) = bus().await;
    let good = [timer_fired(1), timer_fired(2)];
    let malformed = PutEventsRequestEntry::builder()
        .source("nudge")
        .detail_type("Timer Fired")
        .detail("this is not JSON")
        .event_bus_name(bus_name(&bus))
        .build();
    let entries = vec![entry(&bus, &good[0]), malformed, entry(&bus, &good[1])];

    let err = send_entries(&bus, entries).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Backend {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("MalformedDetail"), "{err}");
    assert_eq!(
        calls.entries_per_call(),
        vec![3],
        "no resend of a malformed entry"
    );

    let received = queue.receive(3, Duration::from_secs(3)).await;
    assert_eq!(events_of(&received), sorted(&good));
}
