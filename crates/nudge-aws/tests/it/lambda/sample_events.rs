//! Every sample event in `events/<function>/` is accepted by that function's handler, on a
//! deployment on moto, and does what its name says: good API requests get their success
//! answer, bad ones their 4xx JSON error; bus events, the sweep and the stream batch are
//! handled without failure and have their effect. The samples are the exact payloads Lambda
//! hands the functions, so `cargo lambda invoke --data-file` runs the same ones.

use std::collections::BTreeSet;
use std::path::Path;

use nudge_core::time::parse_instant;
use nudge_service::bus::{BusEvent, TimerFired};
use nudge_service::ports::{Clock, InboxStore, TimerStore};
use serde_json::{json, Value};

use crate::support::moto_models;
use crate::support::stack::{Function, Stack};

/// A sample: its file name and content.
type Sample = (&'static str, &'static str);

macro_rules! sample {
    ($function:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../events/",
                $function,
                "/",
                $name
            )),
        )
    };
}

/// What an ingest sample must be answered with.
enum Answer {
    /// 200 and exactly this JSON.
    Ok(&'static str),
    /// 200 and a body this check accepts.
    OkWith(fn(&Value) -> bool),
    /// This 4xx status with `{"success": false, "error": CODE, "message": ...}`.
    Refused(u16, &'static str),
    /// Refused so, and the body passes this check too.
    RefusedWith(u16, &'static str, fn(&Value) -> bool),
}

/// Tracking requests, good and bad, in the order the test sends them.
const TRACKING: [(Sample, Answer); 19] = [
    (sample!("ingest", "identify.json"), Answer::OkWith(success)),
    (sample!("ingest", "alias.json"), Answer::OkWith(success)),
    (sample!("ingest", "page.json"), Answer::OkWith(success)),
    (sample!("ingest", "track.json"), Answer::OkWith(success)),
    (
        sample!("ingest", "track-write-key-in-body.json"),
        Answer::OkWith(success),
    ),
    (sample!("ingest", "screen.json"), Answer::OkWith(success)),
    (sample!("ingest", "group.json"), Answer::OkWith(success)),
    (sample!("ingest", "batch.json"), Answer::OkWith(success)),
    (sample!("ingest", "import.json"), Answer::OkWith(success)),
    (
        sample!("ingest", "batch-gzip.json"),
        Answer::OkWith(success),
    ),
    (
        sample!("ingest", "track-missing-write-key.json"),
        Answer::Refused(401, "missing_write_key"),
    ),
    (
        sample!("ingest", "track-unknown-write-key.json"),
        Answer::Refused(401, "unknown_write_key"),
    ),
    (
        sample!("ingest", "track-malformed-json.json"),
        Answer::Refused(400, "malformed_json"),
    ),
    (
        sample!("ingest", "track-not-an-object.json"),
        Answer::Refused(400, "not_an_object"),
    ),
    (
        sample!("ingest", "track-invalid-event.json"),
        Answer::RefusedWith(400, "invalid_event", names_step_index),
    ),
    (
        sample!("ingest", "track-no-user.json"),
        Answer::Refused(400, "invalid_event"),
    ),
    (
        sample!("ingest", "track-too-large.json"),
        Answer::Refused(413, "payload_too_large"),
    ),
    (
        sample!("ingest", "batch-malformed-gzip.json"),
        Answer::Refused(400, "malformed_gzip"),
    ),
    (
        sample!("ingest", "batch-not-an-array.json"),
        Answer::Refused(400, "invalid_batch"),
    ),
];

/// The other endpoints, sent after the tracking requests were evaluated and the in-app
/// sample of deliver put an item in alice's inbox.
const ACCOUNT: [(Sample, Answer); 16] = [
    (
        sample!("ingest", "batch-partly-invalid.json"),
        Answer::RefusedWith(400, "invalid_events", kept_one_rejected_two),
    ),
    (
        sample!("ingest", "inbox.json"),
        Answer::OkWith(lists_the_inbox_item),
    ),
    (
        sample!("ingest", "inbox-read.json"),
        Answer::OkWith(success),
    ),
    (
        sample!("ingest", "inbox-dismiss.json"),
        Answer::OkWith(success),
    ),
    (
        sample!("ingest", "inbox-missing-hash.json"),
        Answer::Refused(401, "missing_user_hash"),
    ),
    (
        sample!("ingest", "inbox-wrong-user.json"),
        Answer::Refused(403, "invalid_user_hash"),
    ),
    (
        sample!("ingest", "unsubscribe-confirm.json"),
        Answer::OkWith(is_a_confirmation_page),
    ),
    (
        sample!("ingest", "unsubscribe.json"),
        Answer::Ok(r#"{"success": true, "unsubscribed": true}"#),
    ),
    (
        sample!("ingest", "unsubscribe-invalid-token.json"),
        Answer::Refused(403, "invalid_token"),
    ),
    (
        sample!("ingest", "admin-user.json"),
        Answer::OkWith(is_alice),
    ),
    (
        sample!("ingest", "admin-timers.json"),
        Answer::OkWith(is_alice),
    ),
    (
        sample!("ingest", "admin-decisions.json"),
        Answer::OkWith(logs_the_inbox_item),
    ),
    (
        sample!("ingest", "admin-explain.json"),
        Answer::OkWith(explains_profile_reminder),
    ),
    (
        sample!("ingest", "admin-missing-key.json"),
        Answer::Refused(401, "invalid_admin_key"),
    ),
    (
        sample!("ingest", "admin-wrong-key.json"),
        Answer::Refused(401, "invalid_admin_key"),
    ),
    (
        sample!("ingest", "healthz.json"),
        Answer::Ok(r#"{"status": "ok"}"#),
    ),
];

/// Last: alice's GDPR erase.
const ERASE: (Sample, Answer) = (
    sample!("ingest", "admin-erase.json"),
    Answer::Ok(r#"{"success": true, "erased": "alice"}"#),
);

const EVENTS_ACCEPTED: Sample = sample!("evaluate", "events-accepted.json");
const TIMER_FIRED: Sample = sample!("evaluate", "timer-fired.json");
const DELAY_REQUESTED: Sample = sample!("schedule-delay", "delay-requested.json");
const DELAY_CANCELLED: Sample = sample!("schedule-delay", "delay-cancelled.json");
const TIMERS_FIRED: Sample = sample!("evaluate", "timers-fired.json");
const TIMERS_CHANGED: Sample = sample!("schedule-delay", "timers-changed.json");
const SWEEP: Sample = sample!("schedule-delay", "sweep.json");
const STREAM: Sample = sample!("schedule-delay", "stream-ttl-and-user-removal.json");
const TIMER_QUEUE: Sample = sample!("schedule-delay", "timer-queue.json");
const EMAIL: Sample = sample!("deliver", "message-requested-email.json");
const IN_APP: Sample = sample!("deliver", "message-requested-in-app.json");
const SUPPRESSED: Sample = sample!("deliver", "message-requested-suppressed.json");

/// The in-app sample's decision id (the inbox samples read and dismiss that item).
const INBOX_ITEM: &str = "2c6ecce790f95ca7";

fn success(body: &Value) -> bool {
    *body == json!({"success": true})
}

fn names_step_index(body: &Value) -> bool {
    body["errors"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["field"] == "properties.step_index"))
}

fn kept_one_rejected_two(body: &Value) -> bool {
    let indices: Vec<&Value> = body["rejected"]
        .as_array()
        .map(|r| r.iter().map(|r| &r["index"]).collect())
        .unwrap_or_default();
    body["accepted"] == 1 && indices == [&json!(1), &json!(2)]
}

fn lists_the_inbox_item(body: &Value) -> bool {
    body["user_id"] == "alice"
        && body["unread"] == 1
        && body["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["id"] == INBOX_ITEM))
}

fn is_a_confirmation_page(body: &Value) -> bool {
    body.as_str()
        .is_some_and(|html| html.contains("<form method=\"post\""))
}

fn is_alice(body: &Value) -> bool {
    body["user_id"] == "alice"
}

fn logs_the_inbox_item(body: &Value) -> bool {
    body["decisions"].as_array().is_some_and(|log| {
        log.iter()
            .any(|d| d["id"] == INBOX_ITEM && d["status"] == "sent")
    })
}

fn explains_profile_reminder(body: &Value) -> bool {
    body.to_string().contains("profile-reminder")
}

fn parse(sample: Sample) -> Value {
    serde_json::from_str(sample.1).unwrap_or_else(|e| panic!("{}: {e}", sample.0))
}

fn instant(s: &str) -> i64 {
    parse_instant(s).expect("an instant")
}

/// Sends an ingest sample and checks its answer.
async fn check(stack: &Stack, (sample, answer): &(Sample, Answer)) {
    let (name, request) = sample;
    let (status, body) = stack.http(request).await;
    match answer {
        Answer::Ok(expected) => {
            let expected: Value = serde_json::from_str(expected).expect("expected JSON");
            assert_eq!((status, &body), (200, &expected), "{name}");
        }
        Answer::OkWith(check) => {
            assert_eq!(status, 200, "{name}: {body}");
            assert!(check(&body), "{name}: {body}");
        }
        Answer::Refused(code, error) => refused(name, status, &body, *code, error),
        Answer::RefusedWith(code, error, check) => {
            refused(name, status, &body, *code, error);
            assert!(check(&body), "{name}: {body}");
        }
    }
}

/// A 4xx JSON error that says what is wrong.
fn refused(name: &str, status: u16, body: &Value, code: u16, error: &str) {
    assert_eq!(status, code, "{name}: {body}");
    assert_eq!(body["success"], false, "{name}: {body}");
    assert_eq!(body["error"], error, "{name}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{name} says what is wrong: {body}"
    );
}

fn bus_events(stack: &Stack, function: Option<Function>) -> Vec<BusEvent> {
    stack
        .seen()
        .into_iter()
        .filter(|(f, _)| *f == function)
        .map(|(_, e)| e)
        .collect()
}

#[tokio::test]
async fn ingest_answers_every_sample_request_as_it_should() {
    let stack = Stack::new(instant("2026-03-02T09:00:00Z")).await;
    for entry in &TRACKING {
        check(&stack, entry).await;
    }
    // What was accepted reached evaluate: 3 messages of alice's, 1 anonymous page, 7 of bob's;
    // beside them, deliver's record of the in-app message one of them sent.
    stack.run_bus().await;
    let (engagement, accepted): (Vec<_>, Vec<_>) = bus_events(&stack, Some(Function::Evaluate))
        .into_iter()
        .flat_map(|e| match e {
            BusEvent::EventsAccepted(batch) => batch.events,
            _ => vec![],
        })
        .partition(|e| e.message.is_engagement());
    assert_eq!(accepted.len(), 6 + 1 + 7);
    let outcomes: Vec<_> = engagement
        .iter()
        .map(|e| e.message.event.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, ["In-App Message Delivered"]);

    stack.invoke(Function::Deliver, parse(IN_APP)).await;
    stack.run_bus().await;
    for entry in &ACCOUNT {
        check(&stack, entry).await;
    }
    // The partly invalid batch kept its good message; the unsubscribe became alice's event.
    stack.run_bus().await;
    let unsubscribed = bus_events(&stack, Some(Function::Evaluate))
        .iter()
        .any(|e| matches!(e, BusEvent::EventsAccepted(b) if b.events.iter().any(|a| a.user_id == "alice" && a.message.event.as_deref() == Some("Email Unsubscribed"))));
    assert!(unsubscribed);

    check(&stack, &ERASE).await;
    let (admin_user, _) = &ACCOUNT[9];
    let (status, body) = stack.http(admin_user.1).await;
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("unknown_user")),
        "erased"
    );
}

#[tokio::test]
async fn evaluate_takes_the_accepted_events_and_the_timer_they_set() {
    let stack = Stack::new(instant("2026-03-02T08:04:00Z")).await;
    stack
        .invoke(Function::Evaluate, parse(EVENTS_ACCEPTED))
        .await;
    stack.run_bus().await;
    let sent = |trigger: &str| {
        bus_events(&stack, None).iter().any(
            |e| matches!(e, BusEvent::MessageSent(r) if r.user_id == "alice" && r.trigger == trigger),
        )
    };
    // The 2-minute pause between sign-up and the profile step.
    assert!(sent("pause-nudge"));

    // The samples agree: the events set the timer the Timer Fired and Delay Requested
    // samples name.
    let BusEvent::TimerFired(timer) =
        serde_json::from_value(parse(TIMER_FIRED)["detail"].clone()).expect("a bus event")
    else {
        panic!("timer-fired.json is not a Timer Fired");
    };
    let pending = stack
        .store
        .pending("alice")
        .await
        .unwrap()
        .expect("a timer");
    assert_eq!((pending.due, pending.version), (timer.due, timer.version));
    let request = parse(DELAY_REQUESTED);
    assert_eq!(
        (&request["detail"]["due"], &request["detail"]["version"]),
        (&json!(timer.due), &json!(timer.version))
    );

    assert!(!sent("profile-reminder"));
    stack.clock.set(timer.due);
    stack.invoke(Function::Evaluate, parse(TIMER_FIRED)).await;
    stack.run_bus().await;
    assert!(sent("profile-reminder"), "{:?}", bus_events(&stack, None));
}

#[tokio::test]
async fn evaluate_takes_timers_fired_packed_in_one_entry() {
    let stack = Stack::new(instant("2026-03-02T08:04:00Z")).await;
    stack
        .invoke(Function::Evaluate, parse(EVENTS_ACCEPTED))
        .await;
    stack.run_bus().await;
    let timers = parse(TIMERS_FIRED);
    stack.clock.set(
        timers["detail"]["timers"][0]["due"]
            .as_i64()
            .unwrap_or_default(),
    );

    stack.invoke(Function::Evaluate, timers).await;
    stack.run_bus().await;

    let sent: Vec<(String, String)> = bus_events(&stack, None)
        .into_iter()
        .filter_map(|e| match e {
            BusEvent::MessageSent(r) => Some((r.user_id, r.trigger)),
            _ => None,
        })
        .collect();
    assert!(
        sent.contains(&("alice".into(), "profile-reminder".into())),
        "{sent:?}"
    );
    assert!(sent.iter().all(|(user, _)| user == "alice"), "{sent:?}");
}

#[tokio::test]
async fn schedule_delay_takes_timer_changes_packed_in_one_entry() {
    let stack = Stack::new(instant("2026-03-02T08:04:00Z")).await;
    let changes = parse(TIMERS_CHANGED);

    // Twice: a redelivered entry changes nothing more.
    stack.invoke(Function::ScheduleDelay, changes.clone()).await;
    stack.invoke(Function::ScheduleDelay, changes.clone()).await;

    let alice = stack.store.pending("alice").await.unwrap().expect("set");
    assert_eq!(json!(alice.due), changes["detail"]["set"][0]["due"]);
    assert_eq!(
        stack.store.pending("erin").await.unwrap(),
        None,
        "cancelled"
    );
}

#[tokio::test]
async fn schedule_delay_takes_requests_cancels_the_sweep_and_the_stream() {
    let stack = Stack::new(instant("2026-03-02T08:04:00Z")).await;
    let request = parse(DELAY_REQUESTED);
    stack.invoke(Function::ScheduleDelay, request.clone()).await;
    let pending = stack.store.pending("alice").await.unwrap().expect("set");
    assert_eq!(json!(pending.due), request["detail"]["due"]);

    stack.clock.set(instant("2026-03-03T08:05:00Z"));
    stack.invoke(Function::ScheduleDelay, parse(SWEEP)).await;
    assert_eq!(stack.store.pending("alice").await.unwrap(), None, "fired");
    stack
        .invoke(Function::ScheduleDelay, parse(DELAY_CANCELLED))
        .await;
    // An older request arriving after the cancel does not bring the timer back.
    stack.invoke(Function::ScheduleDelay, request).await;
    assert_eq!(stack.store.pending("alice").await.unwrap(), None);

    // bob's timer was removed by TTL, carol's by a user: only bob's fires, once.
    let stream = parse(STREAM);
    stack.invoke(Function::ScheduleDelay, stream.clone()).await;
    stack.invoke(Function::ScheduleDelay, stream).await;
    stack.run_bus().await;
    let fired: Vec<TimerFired> = bus_events(&stack, Some(Function::Evaluate))
        .into_iter()
        .filter_map(|e| match e {
            BusEvent::TimerFired(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(
        fired,
        vec![
            TimerFired {
                user_id: "alice".into(),
                due: pending.due,
                version: pending.version
            },
            TimerFired {
                user_id: "bob".into(),
                due: instant("2026-03-02T08:35:00Z"),
                version: 4
            }
        ]
    );
}

#[tokio::test]
async fn schedule_delay_fires_a_timer_its_queue_message_finds_due_once() {
    let stack = Stack::new(instant("2026-03-02T08:04:00Z")).await;
    let request = parse(DELAY_REQUESTED);
    stack.invoke(Function::ScheduleDelay, request.clone()).await;
    let pending = stack.store.pending("alice").await.unwrap().expect("set");

    // The message arrives at the due second, and once more (SQS delivers at least once).
    stack.clock.set(pending.due + 12);
    stack
        .invoke(Function::ScheduleDelay, parse(TIMER_QUEUE))
        .await;
    stack
        .invoke(Function::ScheduleDelay, parse(TIMER_QUEUE))
        .await;
    assert_eq!(stack.store.pending("alice").await.unwrap(), None, "fired");
    // An older request arriving after the fire does not bring the timer back.
    stack.invoke(Function::ScheduleDelay, request).await;
    stack.run_bus().await;
    let fired: Vec<TimerFired> = bus_events(&stack, Some(Function::Evaluate))
        .into_iter()
        .filter_map(|e| match e {
            BusEvent::TimerFired(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(
        fired,
        vec![TimerFired {
            user_id: "alice".into(),
            due: pending.due,
            version: pending.version
        }]
    );
}

#[tokio::test]
async fn deliver_sends_the_email_fills_the_inbox_and_reports_the_suppressed_send() {
    let stack = Stack::new(instant("2026-03-03T08:04:01Z")).await;
    for sample in [EMAIL, IN_APP, SUPPRESSED, EMAIL] {
        stack.invoke(Function::Deliver, parse(sample)).await;
    }
    stack.run_bus().await;
    let outcomes: Vec<(String, &'static str, Option<String>)> = bus_events(&stack, None)
        .into_iter()
        .map(|e| match e {
            BusEvent::MessageSent(r) => (r.id.to_string(), "sent", r.reason),
            BusEvent::MessageSuppressed(r) => (r.id.to_string(), "suppressed", r.reason),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let email = "6110df02586322bc".to_string();
    assert_eq!(
        outcomes,
        vec![
            (email.clone(), "sent", None),
            (INBOX_ITEM.to_string(), "sent", None),
            (
                "ecaee9a574c1c15d".to_string(),
                "suppressed",
                Some("frequency_cap".to_string())
            ),
            // The email delivered again is reported again, not sent again.
            (email.clone(), "sent", None),
        ]
    );
    let mails: Vec<Value> = moto_models("ses", "RawMessage")
        .await
        .into_iter()
        .filter(|m| m["source"] == stack.sender.as_str())
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let raw = mails[0]["raw_data"].as_str().unwrap_or_default();
    assert!(
        raw.contains(&format!("Message-ID: <{email}@nudge>")),
        "{raw}"
    );
    assert!(raw.contains("Subject: Alice, finish your profile"), "{raw}");
    let inbox = stack
        .store
        .list("alice", stack.clock.now())
        .await
        .expect("inbox");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].id.to_string(), INBOX_ITEM);
}

#[test]
fn every_sample_is_tested_and_listed_in_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("events/README.md");
    let tested: BTreeSet<String> = TRACKING
        .iter()
        .chain(&ACCOUNT)
        .chain([&ERASE])
        .map(|((name, _), _)| format!("ingest/{name}"))
        .chain(
            [
                ("evaluate", EVENTS_ACCEPTED),
                ("evaluate", TIMER_FIRED),
                ("evaluate", TIMERS_FIRED),
                ("schedule-delay", TIMERS_CHANGED),
                ("schedule-delay", DELAY_REQUESTED),
                ("schedule-delay", DELAY_CANCELLED),
                ("schedule-delay", SWEEP),
                ("schedule-delay", STREAM),
                ("schedule-delay", TIMER_QUEUE),
                ("deliver", EMAIL),
                ("deliver", IN_APP),
                ("deliver", SUPPRESSED),
            ]
            .map(|(function, (name, _))| format!("{function}/{name}")),
        )
        .collect();
    let mut present = BTreeSet::new();
    for function in std::fs::read_dir(&root).expect("events/") {
        let function = function.expect("entry").path();
        if !function.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&function).expect("a function's samples") {
            let file = file.expect("entry").path();
            let name = format!(
                "{}/{}",
                function.file_name().unwrap_or_default().to_string_lossy(),
                file.file_name().unwrap_or_default().to_string_lossy()
            );
            let text = std::fs::read_to_string(&file).expect("a sample");
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            present.insert(name);
        }
    }
    assert_eq!(
        present, tested,
        "samples in events/ without a test, or tests without a file"
    );
    for name in &present {
        assert!(
            readme.contains(&format!("`{name}`")),
            "events/README.md does not list `{name}`"
        );
    }
}
