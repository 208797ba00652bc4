//! A whole nudge deployment on moto for handler tests: the table, the bus with the routing
//! rules of `template.yaml` (each targeting an SQS queue that stands in for its function,
//! since moto cannot invoke Lambda), a verified SES sender, and the four handlers over them
//! on one clock the test moves. [`Stack::run_bus`] plays the part of EventBridge invoking the
//! functions: it takes what the rules queued and hands each envelope to its handler, as the
//! Lambda runtime would, until nothing is left.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Context, LambdaEvent};
use nudge_core::rules::CompiledRules;
use nudge_core::time::Millis;
use nudge_http::HttpWebhookTransport;
use nudge_service::api::{Api, ApiKeys};
use nudge_service::bus::BusEvent;
use nudge_service::deliver::{Deliver, DeliverConfig};
use nudge_service::evaluate::Evaluate;
use nudge_service::ingest::WriteKeys;
use nudge_service::metrics::NoMetrics;
use nudge_service::ports::Clock;
use nudge_service::schedule::Schedule;
use nudge_service::webhook::RetryPolicy;
use serde_json::{json, Value};

use nudge_aws::dynamodb::DynamoDbStore;
use nudge_aws::eventbridge::EventBridgeBus;
use nudge_aws::lambda;
use nudge_aws::lambda::deps::load_rules_from;
use nudge_aws::lambda::schedule::ScheduleInput;
use nudge_aws::ses::SesMailer;
use nudge_aws::timers::TieredTimers;

use crate::support::{self, Queue};

/// The write key the sample requests in `events/ingest` authenticate with.
const WRITE_KEY: &str = "wk_example";
/// `Authorization` of requests sent with [`WRITE_KEY`] (HTTP Basic, empty password).
pub(crate) const WRITE_KEY_AUTH: &str = "Basic d2tfZXhhbXBsZTo=";
/// The admin key of the sample admin requests.
pub(crate) const ADMIN_KEY: &str = "ak_example";
/// The inbox secret the samples' `X-User-Hash` values are computed with.
const INBOX_SECRET: &str = "inbox-secret-example";
/// The signing secret of the samples' unsubscribe tokens.
const SIGNING_SECRET: &str = "signing-secret-example";
/// The base URL of unsubscribe links.
const PUBLIC_URL: &str = "https://nudge.example.com";

/// The rule set the template deploys by default and the samples are written for.
pub(crate) fn example_rules() -> Arc<CompiledRules> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saas-onboarding");
    load_rules_from(&dir).expect("the example rule set loads")
}

/// A clock the test sets; every handler and the store of a [`Stack`] share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub(crate) fn set(&self, at: Millis) {
        self.0.store(at, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// The event patterns of `template.yaml`'s routing rules (EvaluateRule, ScheduleDelayRule,
/// DeliverRule), by the function they target.
const ROUTES: [(Function, &[&str]); 3] = [
    (
        Function::Evaluate,
        &["Events Accepted", "Timer Fired", "Timers Fired"],
    ),
    (
        Function::ScheduleDelay,
        &["Delay Requested", "Delay Cancelled", "Timers Changed"],
    ),
    (Function::Deliver, &["Message Requested"]),
];

/// The outcomes deliver publishes for anyone; the stack routes them to a queue of its own
/// so tests can read them.
const OUTCOMES: [&str; 3] = ["Message Sent", "Message Suppressed", "Message Failed"];

/// A function a bus rule invokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Evaluate,
    ScheduleDelay,
    Deliver,
}

/// The deployment.
pub(crate) struct Stack {
    pub(crate) clock: TestClock,
    pub(crate) rules: Arc<CompiledRules>,
    /// A store on the table for the test's own reads.
    pub(crate) store: DynamoDbStore,
    api: Api<DynamoDbStore, EventBridgeBus, TestClock>,
    evaluate: Evaluate<DynamoDbStore, EventBridgeBus, TestClock>,
    schedule: Schedule<TieredTimers, EventBridgeBus, TestClock>,
    deliver: Deliver<DynamoDbStore, SesMailer, HttpWebhookTransport, EventBridgeBus, TestClock>,
    /// The verified SES identity emails are sent from (unique to this stack).
    pub(crate) sender: String,
    routes: Vec<(Function, Queue)>,
    outcomes: Queue,
    /// Every bus event handed to a function or published as an outcome, in order.
    seen: Mutex<Vec<(Option<Function>, BusEvent)>>,
    /// Whether [`Stack::run_bus`] hands every event over twice, as EventBridge and Lambda's
    /// async retries may.
    twice: AtomicBool,
}

impl Stack {
    /// A fresh deployment on moto with the example rule set, its clock at `now`.
    pub(crate) async fn new(now: Millis) -> Stack {
        let sdk = support::sdk_config();
        let clock = TestClock::default();
        clock.set(now);
        let rules = example_rules();
        let (dynamodb, table) = support::table().await;
        let store =
            || DynamoDbStore::new(dynamodb.clone(), &table, 4).with_clock(Arc::new(clock.clone()));

        let events = aws_sdk_eventbridge::Client::new(&sdk);
        let bus_name = support::unique("nudge-bus");
        events
            .create_event_bus()
            .name(&bus_name)
            .send()
            .await
            .expect("create bus");
        let mut routes = Vec::new();
        for (function, detail_types) in ROUTES {
            routes.push((function, support::route(&bus_name, detail_types).await));
        }
        let outcomes = support::route(&bus_name, &OUTCOMES).await;
        let bus = || EventBridgeBus::new(events.clone(), &bus_name);

        let ses = aws_sdk_sesv2::Client::new(&sdk);
        let sender = format!("{}@example.com", support::unique("nudge"));
        ses.create_email_identity()
            .email_identity(&sender)
            .send()
            .await
            .expect("verify the sender");

        let metrics = Arc::new(NoMetrics);
        Stack {
            api: Api {
                rules: rules.clone(),
                store: store(),
                bus: bus(),
                clock: clock.clone(),
                metrics: metrics.clone(),
                keys: ApiKeys {
                    write: WriteKeys::new([WRITE_KEY.to_string()]),
                    admin: Some(ADMIN_KEY.to_string()),
                    inbox_secret: INBOX_SECRET.as_bytes().to_vec(),
                    signing_secret: SIGNING_SECRET.as_bytes().to_vec(),
                },
            },
            evaluate: Evaluate {
                rules: rules.clone(),
                store: store(),
                bus: bus(),
                clock: clock.clone(),
                metrics: metrics.clone(),
            },
            schedule: Schedule {
                // The test's clock steps from due time to due time, as the replay's does: the
                // sweeper alone fires timers here (the delay queue runs on the wall clock;
                // lambda/schedule/on_moto.rs and timer_queue.rs test it).
                timers: TieredTimers::sweeper_only(store(), Arc::new(clock.clone())),
                bus: bus(),
                clock: clock.clone(),
                metrics: metrics.clone(),
            },
            deliver: Deliver {
                rules: rules.clone(),
                store: store(),
                mailer: SesMailer::new(ses, None),
                webhooks: HttpWebhookTransport::new().expect("webhook client"),
                bus: bus(),
                clock: clock.clone(),
                metrics,
                config: DeliverConfig {
                    sender: sender.clone(),
                    public_url: PUBLIC_URL.to_string(),
                    signing_secret: SIGNING_SECRET.as_bytes().to_vec(),
                    webhook: RetryPolicy {
                        attempts: 1,
                        first_backoff_ms: 10,
                        max_backoff_ms: 10,
                        timeout_ms: 1_000,
                    },
                    mail_attempts: 1,
                    mail_backoff: std::time::Duration::from_millis(10),
                    lease: std::time::Duration::from_secs(65),
                    abandoned_before: 0,
                },
            },
            store: store(),
            clock,
            rules,
            sender,
            routes,
            outcomes,
            seen: Mutex::new(Vec::new()),
            twice: AtomicBool::new(false),
        }
    }

    /// From now on, [`Stack::run_bus`] hands every event to its function twice.
    pub(crate) fn deliver_everything_twice(&self) {
        self.twice.store(true, Ordering::SeqCst);
    }

    /// Answers one API Gateway (payload 2.0) request with the ingest handler, as the
    /// runtime would: the JSON is read by `lambda_http` exactly as it arrives from Lambda.
    pub(crate) async fn http(&self, api_gateway_request: &str) -> (u16, Value) {
        let req = lambda_http::request::from_str(api_gateway_request)
            .unwrap_or_else(|e| panic!("not an API Gateway request: {e}\n{api_gateway_request}"));
        let reply = lambda::ingest::handler(&self.api, req)
            .await
            .expect("ingest answers every request");
        let status = reply.status().as_u16();
        let body = match reply.body() {
            lambda_http::Body::Text(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
            }
            lambda_http::Body::Empty => Value::Null,
            other => panic!("unexpected binary answer {other:?}"),
        };
        (status, body)
    }

    /// Invokes `function` with `payload` (what Lambda hands it: an EventBridge envelope, a
    /// scheduled event, a stream batch), parsed as the runtime parses it; fails the test if
    /// the handler fails or reports failed stream records.
    pub(crate) async fn invoke(&self, function: Function, payload: Value) {
        let bus_event = |payload: &Value| -> EventBridgeEvent<BusEvent> {
            serde_json::from_value(payload.clone())
                .unwrap_or_else(|e| panic!("not a nudge bus event: {e}\n{payload}"))
        };
        let result = match function {
            Function::Evaluate => {
                let event = bus_event(&payload);
                self.record(Some(function), &event);
                lambda::evaluate::handler(&self.evaluate, lambda_event(event)).await
            }
            Function::Deliver => {
                let event = bus_event(&payload);
                self.record(Some(function), &event);
                lambda::deliver::handler(&self.deliver, lambda_event(event)).await
            }
            Function::ScheduleDelay => {
                let input = ScheduleInput::from_value(payload.clone())
                    .unwrap_or_else(|e| panic!("not a schedule-delay input: {e}\n{payload}"));
                if let ScheduleInput::Bus(event) = &input {
                    self.record(Some(function), event);
                }
                lambda::schedule::handler(&self.schedule, lambda_event(input))
                    .await
                    .map(|response| {
                        assert!(response.failed_ids().is_empty(), "{response:?}");
                    })
            }
        };
        if let Err(e) = result {
            panic!("{function:?} failed on {payload}: {e}");
        }
    }

    /// One run of the sweeper at the clock's time, with the scheduled event of the
    /// template's SweepRule.
    pub(crate) async fn sweep(&self) {
        let event = json!({
            "version": "0",
            "id": support::unique("sweep"),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": nudge_core::time::format_instant(self.clock.now()),
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/nudge-dev-sweep"],
            "detail": {}
        });
        self.invoke(Function::ScheduleDelay, event).await;
    }

    /// Delivers everything the bus rules queued to the functions, and what those publish in
    /// turn, until the bus is quiet (moto hands an event to its rules' targets within the
    /// PutEvents call, so an empty queue means nothing is in flight).
    pub(crate) async fn run_bus(&self) {
        loop {
            let mut handled = 0;
            for (function, queue) in &self.routes {
                for envelope in queue.drain().await {
                    handled += 1;
                    if self.twice.load(Ordering::SeqCst) {
                        self.invoke(*function, envelope.clone()).await;
                    }
                    self.invoke(*function, envelope).await;
                }
            }
            for envelope in self.outcomes.drain().await {
                handled += 1;
                let event: EventBridgeEvent<BusEvent> =
                    serde_json::from_value(envelope).expect("an outcome event");
                self.record(None, &event);
            }
            if handled == 0 {
                return;
            }
        }
    }

    /// Every bus event handed to a function (with the function) or published as an outcome
    /// (with `None`) so far.
    pub(crate) fn seen(&self) -> Vec<(Option<Function>, BusEvent)> {
        self.seen.lock().expect("seen").clone()
    }

    fn record(&self, function: Option<Function>, event: &EventBridgeEvent<BusEvent>) {
        assert_eq!(event.source, nudge_service::bus::SOURCE);
        assert_eq!(event.detail_type, event.detail.detail_type());
        self.seen
            .lock()
            .expect("seen")
            .push((function, event.detail.clone()));
    }
}

/// An API Gateway HTTP API request (payload format 2.0, `$default` stage) as Lambda hands
/// it to ingest, with `headers` (lower-case names) and a text body.
pub(crate) fn api_gateway_request(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let mut request = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "nudge-tests"
            },
            "requestId": support::unique("req"),
            "routeKey": "$default",
            "stage": "$default",
            "time": "02/Mar/2026:08:00:00 +0000",
            "timeEpoch": 1_772_438_400_000_i64
        },
        "isBase64Encoded": false
    });
    if let Some(body) = body {
        request["body"] = Value::String(body.to_string());
    }
    request.to_string()
}

/// The invocation as the runtime hands it to a handler.
pub(crate) fn lambda_event<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent::new(payload, Context::default())
}
