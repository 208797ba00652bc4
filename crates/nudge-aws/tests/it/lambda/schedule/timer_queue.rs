//! The precise tier against a real moto server on the wall clock: near timers ride a real SQS
//! queue whose `DelaySeconds` moto honours, a poller plays the event source mapping (receive,
//! invoke schedule-delay with the batch, delete what it did not report failed), and "Timer
//! Fired" is counted on a real bus routed to a queue. The horizon is short (10 s) so that a
//! 30-second timer enters it at a sweep; scripts/timer_lateness.py runs the long cases.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nudge_core::time::Millis;
use nudge_service::bus::{BusEvent, DelayCancel, DelayRequest, TimerFired};
use nudge_service::metrics::Metrics;
use nudge_service::ports::{Clock, SystemClock, TimerStore};
use nudge_service::schedule::Schedule;
use serde_json::{json, Value};

use nudge_aws::dynamodb::DynamoDbStore;
use nudge_aws::eventbridge::EventBridgeBus;
use nudge_aws::lambda::schedule::{handler, ScheduleInput};
use nudge_aws::sqs::SqsTimerQueue;
use nudge_aws::timers::{NearTier, TieredTimers};

use crate::support::stack::lambda_event;
use crate::support::{self, Queue};

type TestSchedule = Schedule<TieredTimers, EventBridgeBus, SystemClock>;

/// The test horizon.
const HORIZON_MS: Millis = 10_000;

/// How late a queued timer may fire here: the tier's second (a delay rounds up to whole
/// seconds, SQS's own jitter) plus the poller's (a receive waits up to 1 s, then the handler
/// runs on a busy 2-core machine).
const LATE_MS: f64 = 2_000.0;

/// The metrics schedule-delay reports: how late each timer fired, by which path.
#[derive(Default)]
struct Lateness(Mutex<Vec<(&'static str, f64)>>);

impl Metrics for Lateness {
    fn events_accepted(&self, _: u64) {}
    fn events_rejected(&self, _: &str, _: u64) {}
    fn client_retries(&self, _: u64) {}
    fn trigger_fired(&self, _: &str, _: &str) {}
    fn delivery(&self, _: &str, _: &str, _: &str) {}
    fn timer_lateness(&self, _: f64) {}
    fn handler_latency(&self, _: &'static str, _: f64) {}
    fn timer_fired(&self, path: &'static str, lateness_ms: f64) {
        self.0.lock().expect("lateness").push((path, lateness_ms));
    }
}

/// schedule-delay with both tiers, its delay queue and where "Timer Fired" lands.
struct Tiers {
    schedule: Arc<TestSchedule>,
    lateness: Arc<Lateness>,
    timer_queue: Queue,
    fired: Queue,
    sqs: aws_sdk_sqs::Client,
    /// Whether the poller hands every batch over twice (redelivery).
    twice: Arc<AtomicBool>,
}

async fn tiers() -> Tiers {
    let config = support::sdk_config();
    let (dynamodb, table) = support::table().await;
    let (bus, fired) = support::bus_to_queue().await;
    let timer_queue = support::queue().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let lateness = Arc::new(Lateness::default());
    let schedule = Schedule {
        timers: TieredTimers::new(
            DynamoDbStore::new(dynamodb, &table, 4),
            NearTier {
                queue: SqsTimerQueue::new(sqs.clone(), &timer_queue.url),
                horizon_ms: HORIZON_MS,
            },
            Arc::new(SystemClock),
        ),
        bus: EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&config), &bus),
        clock: SystemClock,
        metrics: lateness.clone(),
    };
    Tiers {
        schedule: Arc::new(schedule),
        lateness,
        timer_queue,
        fired,
        sqs,
        twice: Arc::new(AtomicBool::new(false)),
    }
}

impl Tiers {
    /// Plays the event source mapping until `for_ms` passed: receives up to 10 messages
    /// (waiting up to 1 s), invokes schedule-delay with them as Lambda's SQS batch, and
    /// deletes those it did not report as failed.
    fn poll(&self, for_ms: u64) -> tokio::task::JoinHandle<()> {
        let (schedule, sqs, url, twice) = (
            self.schedule.clone(),
            self.sqs.clone(),
            self.timer_queue.url.clone(),
            self.twice.clone(),
        );
        tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_millis(for_ms);
            while std::time::Instant::now() < deadline {
                let got = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .visibility_timeout(30)
                    .send()
                    .await
                    .expect("receive");
                let messages = got.messages.unwrap_or_default();
                if messages.is_empty() {
                    continue;
                }
                let records: Vec<Value> = messages
                    .iter()
                    .map(|m| {
                        json!({
                            "messageId": m.message_id,
                            "receiptHandle": m.receipt_handle,
                            "body": m.body,
                            "attributes": {},
                            "messageAttributes": {},
                            "eventSource": "aws:sqs",
                            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:nudge-timers",
                            "awsRegion": "us-east-1"
                        })
                    })
                    .collect();
                let batch = json!({ "Records": records });
                let times = if twice.load(Ordering::SeqCst) { 2 } else { 1 };
                let mut failed = Vec::new();
                for _ in 0..times {
                    let input = ScheduleInput::from_value(batch.clone()).expect("an SQS batch");
                    assert!(matches!(input, ScheduleInput::Queue(_)));
                    let response = handler(&schedule, lambda_event(input))
                        .await
                        .expect("a batch never fails whole");
                    failed = response
                        .failed_ids()
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                }
                for m in &messages {
                    if !failed
                        .iter()
                        .any(|id| Some(id.as_str()) == m.message_id.as_deref())
                    {
                        sqs.delete_message()
                            .queue_url(&url)
                            .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                            .send()
                            .await
                            .expect("delete");
                    }
                }
            }
        })
    }

    /// Every timer fired so far (waiting `wait` for stragglers and duplicates), by user.
    async fn fired(&self, wait: Duration) -> Vec<TimerFired> {
        let mut fired: Vec<TimerFired> = self
            .fired
            .receive(usize::MAX, wait)
            .await
            .into_iter()
            .flat_map(|envelope| {
                let event: BusEvent =
                    serde_json::from_value(envelope["detail"].clone()).expect("a bus event");
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

    fn lateness(&self) -> Vec<(&'static str, f64)> {
        self.lateness.0.lock().expect("lateness").clone()
    }
}

fn delay(user: &str, due: Millis, version: u64) -> DelayRequest {
    DelayRequest {
        user_id: user.into(),
        due,
        version,
    }
}

fn fired(user: &str, due: Millis, version: u64) -> TimerFired {
    TimerFired {
        user_id: user.into(),
        due,
        version,
    }
}

/// The sweeper's scheduled event, as the template's rule sends it.
async fn sweep(schedule: &TestSchedule) {
    let event = json!({
        "version": "0", "id": support::unique("sweep"), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-03-02T08:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}
    });
    let input = ScheduleInput::from_value(event).expect("a sweep");
    handler(schedule, lambda_event(input))
        .await
        .expect("the sweep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_set_near_and_one_entering_the_horizon_fire_at_their_due_second() {
    let t = tiers().await;
    let now = SystemClock.now();
    let (soon, later) = (now + 5_000, now + 30_000);
    // 5 s ahead: queued as it is set. 30 s ahead: beyond the horizon, left in the table.
    t.schedule
        .timers
        .set(&delay("five", soon, 1))
        .await
        .unwrap();
    t.schedule
        .timers
        .set(&delay("thirty", later, 1))
        .await
        .unwrap();
    let poller = t.poll(36_000);

    // Sweeps as the minute sweeper would find it: 22 s in, the 30-second timer has entered
    // the 10-second horizon and is queued; the next sweep queues nothing twice.
    tokio::time::sleep(Duration::from_millis(
        (now + 22_000 - SystemClock.now()) as u64,
    ))
    .await;
    sweep(&t.schedule).await;
    sweep(&t.schedule).await;
    assert_eq!(t.schedule.timers.queue_entering().await.unwrap(), 0);
    poller.await.unwrap();

    assert_eq!(
        t.fired(Duration::from_secs(1)).await,
        vec![fired("five", soon, 1), fired("thirty", later, 1)]
    );
    let lateness = t.lateness();
    eprintln!("lateness (path, ms): {lateness:?}");
    assert_eq!(lateness.len(), 2, "{lateness:?}");
    for (path, ms) in lateness {
        assert_eq!(path, "queue");
        assert!(ms <= LATE_MS, "fired {ms} ms late");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_cancelled_and_redelivered_timers_fire_at_most_once_at_the_newest_due_time() {
    let t = tiers().await;
    t.twice.store(true, Ordering::SeqCst);
    let now = SystemClock.now();
    let timers = &t.schedule.timers;
    // later: moved from 3 s to 6 s ahead; its message re-queues itself on arrival.
    timers.set(&delay("later", now + 3_000, 1)).await.unwrap();
    timers.set(&delay("later", now + 6_000, 2)).await.unwrap();
    // earlier: moved from 8 s to 4 s ahead; a new message, the old one finds nothing.
    timers.set(&delay("earlier", now + 8_000, 1)).await.unwrap();
    timers.set(&delay("earlier", now + 4_000, 2)).await.unwrap();
    // cancelled: its message arrives to a tombstone.
    timers
        .set(&delay("cancelled", now + 3_000, 1))
        .await
        .unwrap();
    timers
        .cancel(&DelayCancel {
            user_id: "cancelled".into(),
            version: 2,
        })
        .await
        .unwrap();
    // parked: moved beyond the horizon; its message leaves it to the sweeper.
    timers.set(&delay("parked", now + 3_000, 1)).await.unwrap();
    timers.set(&delay("parked", now + 60_000, 2)).await.unwrap();
    // again: the same request delivered twice queues one message.
    timers.set(&delay("again", now + 5_000, 1)).await.unwrap();
    timers.set(&delay("again", now + 5_000, 1)).await.unwrap();

    t.poll(11_000).await.unwrap();

    assert_eq!(
        t.fired(Duration::from_secs(1)).await,
        vec![
            fired("again", now + 5_000, 1),
            fired("earlier", now + 4_000, 2),
            fired("later", now + 6_000, 2),
        ],
        "each once (batches were handed over twice), at the newest due time"
    );
    for (path, ms) in t.lateness() {
        assert_eq!(path, "queue");
        assert!(ms <= LATE_MS, "fired {ms} ms late");
    }
    // The parked timer waits in the table, without a message, for a sweep to queue it.
    let parked = timers.store.live_timer("parked").await.unwrap().unwrap();
    assert_eq!(
        (parked.due, parked.version, parked.queued),
        (now + 60_000, 2, None)
    );
    // A late older request brings none of them back.
    timers
        .set(&delay("cancelled", now + 3_000, 1))
        .await
        .unwrap();
    assert_eq!(timers.pending("cancelled").await.unwrap(), None);
    assert_eq!(timers.pending("later").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_queues_again_a_timer_whose_message_was_lost_and_no_other() {
    let t = tiers().await;
    let now = SystemClock.now();
    let store = &t.schedule.timers.store;
    // Beyond the horizon when set; then marks as if messages were sent: one 11 minutes ago
    // (lost: it never came back to claim, re-queue or unmark the timer), one for the future.
    for (user, mark) in [("lost", now - 11 * 60_000), ("coming", now + 12_000)] {
        t.schedule
            .timers
            .set(&delay(user, now + 12_000, 1))
            .await
            .unwrap();
        let live = store.live_timer(user).await.unwrap().unwrap();
        assert_eq!(live.queued, None, "beyond the horizon: no message");
        assert!(store.mark_queued(&live, Some(mark)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(
        (now + 3_000 - SystemClock.now()).max(0) as u64,
    ))
    .await;
    assert_eq!(t.schedule.timers.queue_entering().await.unwrap(), 1);
    let lost = store.live_timer("lost").await.unwrap().unwrap();
    assert_eq!(lost.queued, Some(now + 12_000));
    t.poll(11_000).await.unwrap();
    assert_eq!(
        t.fired(Duration::from_secs(1)).await,
        vec![fired("lost", now + 12_000, 1)],
        "the timer marked for a message still coming waits for it"
    );
}
