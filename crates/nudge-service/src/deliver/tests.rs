//! deliver against fakes of its ports: what it does when a mail provider's answer is lost,
//! when two copies of one request arrive together, and when recording an outcome fails for
//! a moment (what the AWS fault runs, scripts/fault_run.py, found).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nudge_core::engine::decision::{decision_id, DecisionId};
use nudge_core::engine::{Send, SendContext};
use nudge_core::rules::model::{Channel, Priority};
use nudge_core::rules::{load, RuleFile};
use nudge_core::state::Scalar;

use super::{Deliver, DeliverConfig, MAIL_MAY_BE_OUT};
use crate::bus::{BusEvent, MessageRequest};
use crate::error::HandlerError;
use crate::metrics::NoMetrics;
use crate::ports::{
    Bus, Clock, Delivery, DeliveryStatus, DeliveryStore, InboxItem, InboxStore, Mailer,
    OutgoingEmail, SendError, StoreError, WebhookTransport,
};
use crate::webhook::RetryPolicy;

const RULES: &str = r#"
name: t
settings: {default_timezone: UTC}
tracking_plan: {allow_unknown_events: true}
triggers:
  welcome: {on: Signed Up, send: {channel: email, message: welcome}}
  hook: {on: Plan Chosen, send: {channel: webhook, message: hook}}
messages:
  welcome:
    channel: email
    email: {subject: Welcome, text: Hello}
  hook:
    channel: webhook
    webhook: {url: "https://hooks.example.com/n", body: {user: "{{ user_id }}"}}
"#;

/// The delivery log in memory; `fail_finishes` makes the next writes fail (retryably);
/// `race_take_over` has another invocation take over an entry just after `begin` read it.
#[derive(Default)]
struct Log {
    entries: Mutex<HashMap<String, Delivery>>,
    fail_finishes: Arc<AtomicU32>,
    race_take_over: std::sync::atomic::AtomicBool,
}

impl DeliveryStore for Log {
    async fn begin(&self, d: &Delivery) -> Result<Option<Delivery>, StoreError> {
        let mut entries = self.entries.lock().unwrap();
        if let Some(existing) = entries.get_mut(&d.id.to_string()) {
            let seen = existing.clone();
            if self.race_take_over.load(Ordering::SeqCst) {
                existing.updated_at += 1;
            }
            return Ok(Some(seen));
        }
        entries.insert(d.id.to_string(), d.clone());
        Ok(None)
    }

    async fn finish(&self, d: &Delivery) -> Result<(), StoreError> {
        if self
            .fail_finishes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::backend("fake put delivery", true, "throttled"));
        }
        self.entries
            .lock()
            .unwrap()
            .insert(d.id.to_string(), d.clone());
        Ok(())
    }

    async fn take_over(&self, d: &Delivery, seen: &Delivery) -> Result<bool, StoreError> {
        let mut entries = self.entries.lock().unwrap();
        let key = d.id.to_string();
        let still = entries.get(&key).is_some_and(|e| {
            e.status == DeliveryStatus::Sending && e.updated_at == seen.updated_at
        });
        if still {
            entries.insert(key, d.clone());
        }
        Ok(still)
    }

    async fn recent(&self, _: &str, _: usize) -> Result<Vec<Delivery>, StoreError> {
        Ok(Vec::new())
    }
}

impl InboxStore for Log {
    async fn put(&self, _: &InboxItem) -> Result<(), StoreError> {
        Ok(())
    }
    async fn list(&self, _: &str, _: i64) -> Result<Vec<InboxItem>, StoreError> {
        Ok(Vec::new())
    }
    async fn mark_read(
        &self,
        _: &str,
        _: DecisionId,
        _: i64,
    ) -> Result<Option<InboxItem>, StoreError> {
        Ok(None)
    }
    async fn dismiss(&self, _: &str, _: DecisionId) -> Result<Option<InboxItem>, StoreError> {
        Ok(None)
    }
}

/// A mail provider that takes every mail; `lose_answers` makes it take the next ones and
/// fail as if the answer was lost; `then_fail_log` makes the delivery log fail from then on.
#[derive(Default)]
struct Provider {
    taken: AtomicU32,
    lose_answers: AtomicU32,
    then_fail_log: Mutex<Option<Arc<AtomicU32>>>,
    /// Keeps one mail per decision id (as the outbox folder does).
    keyed: std::sync::atomic::AtomicBool,
}

impl Mailer for Provider {
    fn keyed_by_decision(&self) -> bool {
        self.keyed.load(Ordering::SeqCst)
    }

    async fn send(&self, _: &OutgoingEmail) -> Result<String, SendError> {
        self.taken.fetch_add(1, Ordering::SeqCst);
        if let Some(log) = self.then_fail_log.lock().unwrap().take() {
            log.store(u32::MAX, Ordering::SeqCst);
        }
        if self
            .lose_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SendError::new("fake SES", "connection reset", true).maybe_taken());
        }
        Ok("m-1".into())
    }
}

#[derive(Default)]
struct Hooks(AtomicU32);

impl WebhookTransport for Hooks {
    async fn post(
        &self,
        _: &str,
        _: &[(String, String)],
        _: &[u8],
        _: u64,
    ) -> Result<u16, SendError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(200)
    }
}

#[derive(Default)]
struct Published(Mutex<Vec<BusEvent>>);

impl Bus for Published {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

struct At(AtomicI64);

impl Clock for At {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

type Fixture = Deliver<Log, Arc<Provider>, Hooks, Published, At>;

impl Mailer for Arc<Provider> {
    fn keyed_by_decision(&self) -> bool {
        self.as_ref().keyed_by_decision()
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        self.as_ref().send(email).await
    }
}

fn fixture(lease: Duration) -> (Fixture, Arc<Provider>) {
    fixture_started(lease, 0)
}

/// A deliver whose process started at `abandoned_before` (`nudge serve`'s setting).
fn fixture_started(lease: Duration, abandoned_before: i64) -> (Fixture, Arc<Provider>) {
    let rules = load(&[RuleFile {
        name: "nudge.yaml".into(),
        text: RULES.into(),
    }])
    .unwrap();
    let provider = Arc::new(Provider::default());
    let deliver = Deliver {
        rules: Arc::new(rules),
        store: Log::default(),
        mailer: provider.clone(),
        webhooks: Hooks::default(),
        bus: Published::default(),
        clock: At(AtomicI64::new(1_000_000)),
        metrics: Arc::new(NoMetrics),
        config: DeliverConfig {
            sender: "n@example.com".into(),
            public_url: "https://n.example.com".into(),
            signing_secret: b"s".to_vec(),
            webhook: RetryPolicy {
                attempts: 1,
                first_backoff_ms: 1,
                max_backoff_ms: 1,
                timeout_ms: 100,
            },
            mail_attempts: 3,
            mail_backoff: Duration::from_millis(1),
            lease,
            abandoned_before,
        },
    };
    (deliver, provider)
}

fn request(trigger: &str, channel: Channel, message: &str) -> BusEvent {
    BusEvent::MessageRequested(MessageRequest {
        send: Send {
            id: decision_id("ada", trigger, 1),
            at: 999_000,
            user_id: "ada".into(),
            trigger: trigger.into(),
            priority: Priority::High,
            channel,
            message: message.into(),
            variant: "default".into(),
            content: "default".into(),
            experiment: None,
            reason: None,
            context: SendContext {
                traits: vec![("email".into(), Scalar::Str("ada@example.com".into()))],
                ..Default::default()
            },
        },
    })
}

fn entry(d: &Fixture, trigger: &str) -> Delivery {
    let id = decision_id("ada", trigger, 1).to_string();
    d.store.entries.lock().unwrap()[&id].clone()
}

fn later(d: &Fixture, ms: i64) {
    d.clock.0.fetch_add(ms, Ordering::SeqCst);
}

#[tokio::test]
async fn a_mail_whose_answer_was_lost_is_not_sent_again_on_any_redelivery() {
    // Given a provider that takes the mail but whose answer is lost
    let (d, provider) = fixture(Duration::from_secs(65));
    provider.lose_answers.store(1, Ordering::SeqCst);
    let event = request("welcome", Channel::Email, "welcome");

    // When it is delivered, then redelivered after the lease
    d.handle(&event).await.unwrap();
    later(&d, 70_000);
    d.handle(&event).await.unwrap();

    // Then the provider was asked once, and the log says why it was not asked again
    assert_eq!(provider.taken.load(Ordering::SeqCst), 1);
    let e = entry(&d, "welcome");
    assert_eq!(e.status, DeliveryStatus::Failed);
    assert!(e.error.unwrap().ends_with(MAIL_MAY_BE_OUT));
}

#[tokio::test]
async fn a_second_copy_during_a_send_is_contended_and_after_the_lease_takes_it_over() {
    // Given a mail begun and marked by an invocation that then died (left `Sending`)
    let (d, provider) = fixture(Duration::from_secs(65));
    let event = request("welcome", Channel::Email, "welcome");
    d.store.fail_finishes.store(u32::MAX, Ordering::SeqCst);
    assert!(
        d.handle(&event).await.is_err(),
        "the mark cannot be written"
    );
    assert_eq!(
        provider.taken.load(Ordering::SeqCst),
        0,
        "nothing sent unmarked"
    );
    d.store.fail_finishes.store(0, Ordering::SeqCst);

    // When a copy arrives within the lease, it neither sends nor finishes
    later(&d, 1_000);
    let contended = d.handle(&event).await.unwrap_err();
    assert!(
        matches!(contended, HandlerError::Contended(_)),
        "{contended}"
    );
    assert!(contended.is_retryable());
    assert_eq!(provider.taken.load(Ordering::SeqCst), 0);

    // And after the lease, an unmarked send is taken over and sent once
    later(&d, 65_000);
    d.handle(&event).await.unwrap();
    assert_eq!(provider.taken.load(Ordering::SeqCst), 1);
    assert_eq!(entry(&d, "welcome").status, DeliveryStatus::Sent);
}

#[tokio::test]
async fn a_marked_mail_taken_over_after_the_lease_is_not_sent_again() {
    // Given a mail sent whose outcome could not be recorded (every write failing after the mark)
    let (d, provider) = fixture(Duration::from_secs(65));
    let event = request("welcome", Channel::Email, "welcome");
    *provider.then_fail_log.lock().unwrap() = Some(d.store.fail_finishes.clone());
    assert!(
        d.handle(&event).await.is_err(),
        "the outcome cannot be recorded"
    );
    d.store.fail_finishes.store(0, Ordering::SeqCst);
    assert_eq!(provider.taken.load(Ordering::SeqCst), 1);

    // When redelivered after the lease
    later(&d, 70_000);
    d.handle(&event).await.unwrap();

    // Then it is recorded as possibly sent, not sent again
    assert_eq!(provider.taken.load(Ordering::SeqCst), 1);
    let e = entry(&d, "welcome");
    assert_eq!(e.status, DeliveryStatus::Failed);
    assert_eq!(e.error.as_deref(), Some(MAIL_MAY_BE_OUT));
}

#[tokio::test]
async fn recording_an_outcome_is_tried_again_through_brief_store_failures() {
    // Given a store failing the next 3 writes (fewer than the tries)
    let (d, _) = fixture(Duration::from_secs(65));
    let event = request("hook", Channel::Webhook, "hook");
    d.store.fail_finishes.store(3, Ordering::SeqCst);

    // When the webhook is delivered
    d.handle(&event).await.unwrap();

    // Then it was posted once and recorded sent, no redelivery needed
    assert_eq!(d.webhooks.0.load(Ordering::SeqCst), 1);
    assert_eq!(entry(&d, "hook").status, DeliveryStatus::Sent);
    let published = d.bus.0.lock().unwrap();
    assert!(matches!(published[0], BusEvent::MessageSent(_)));
}

#[tokio::test]
async fn one_process_takes_over_what_its_dead_earlier_run_left_at_once() {
    // Given a mail begun by an earlier run of `nudge serve` that died before marking it
    let (d, provider) = fixture(Duration::from_secs(60));
    let event = request("welcome", Channel::Email, "welcome");
    d.store.fail_finishes.store(u32::MAX, Ordering::SeqCst);
    assert!(d.handle(&event).await.is_err());
    let left = d.store.entries.lock().unwrap().clone();

    // When this run (started 1 ms later) redelivers it at once, the send is taken over
    let (restarted, provider_now) = fixture_started(Duration::from_secs(60), 1_000_001);
    *restarted.store.entries.lock().unwrap() = left;
    later(&restarted, 1);
    restarted.handle(&event).await.unwrap();
    assert_eq!(provider_now.taken.load(Ordering::SeqCst), 1);
    assert_eq!(provider.taken.load(Ordering::SeqCst), 0);
    assert_eq!(entry(&restarted, "welcome").status, DeliveryStatus::Sent);
}

#[tokio::test]
async fn a_copy_that_read_its_clock_before_the_others_mark_is_contended() {
    // Given a mail begun by an invocation whose clock read came 5 ms after this one's
    let (d, provider) = fixture(Duration::from_secs(65));
    let event = request("welcome", Channel::Email, "welcome");
    d.store.fail_finishes.store(u32::MAX, Ordering::SeqCst);
    assert!(d.handle(&event).await.is_err());
    d.store.fail_finishes.store(0, Ordering::SeqCst);
    later(&d, -5);

    // When this copy arrives, the other's mark is in its future: still within the lease
    let err = d.handle(&event).await.unwrap_err();
    assert!(matches!(err, HandlerError::Contended(_)), "{err}");
    assert_eq!(provider.taken.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn of_two_redeliveries_of_an_abandoned_send_one_takes_it_over() {
    // Given a webhook begun by an invocation that died before sending
    let (d, _) = fixture(Duration::from_secs(65));
    let event = request("hook", Channel::Webhook, "hook");
    let id = decision_id("ada", "hook", 1).to_string();
    let mut abandoned = Delivery {
        id: decision_id("ada", "hook", 1),
        user_id: "ada".into(),
        trigger: "hook".into(),
        channel: Channel::Webhook,
        message: "hook".into(),
        variant: "default".into(),
        experiment: None,
        status: DeliveryStatus::Sending,
        reason: None,
        error: None,
        at: 999_000,
        updated_at: 1_000_000,
        attempts: 0,
        subject: None,
    };
    d.store
        .entries
        .lock()
        .unwrap()
        .insert(id.clone(), abandoned.clone());
    later(&d, 70_000);

    // When another redelivery takes it over between this one's read and its own take-over
    d.store.race_take_over.store(true, Ordering::SeqCst);
    let err = d.handle(&event).await.unwrap_err();

    // Then this one is contended and posts nothing
    assert!(matches!(err, HandlerError::Contended(_)), "{err}");
    assert_eq!(d.webhooks.0.load(Ordering::SeqCst), 0);

    // And without the race, the stale send is taken over and posted once
    d.store.race_take_over.store(false, Ordering::SeqCst);
    abandoned.updated_at = 1_000_000;
    d.store.entries.lock().unwrap().insert(id, abandoned);
    d.handle(&event).await.unwrap();
    assert_eq!(d.webhooks.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_mailer_keyed_by_decision_gets_the_mail_again_after_a_crash() {
    // Given `nudge serve`'s outbox (one file per decision) and a send whose outcome could
    // not be recorded after the mail was written (a kill between the two)
    let (d, provider) = fixture(Duration::ZERO);
    provider.keyed.store(true, Ordering::SeqCst);
    let event = request("welcome", Channel::Email, "welcome");
    *provider.then_fail_log.lock().unwrap() = Some(d.store.fail_finishes.clone());
    assert!(d.handle(&event).await.is_err());
    d.store.fail_finishes.store(0, Ordering::SeqCst);

    // When redelivered after the restart, the mail is handed over again (the same file) and
    // recorded sent, not given up as "may have been sent"
    d.handle(&event).await.unwrap();
    assert_eq!(provider.taken.load(Ordering::SeqCst), 2);
    assert_eq!(entry(&d, "welcome").status, DeliveryStatus::Sent);
}
