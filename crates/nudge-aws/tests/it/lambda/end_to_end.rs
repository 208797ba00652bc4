//! End to end on moto: the SaaS onboarding demo journey (`examples/saas-onboarding/
//! events.jsonl`) goes in through ingest as API Gateway requests; the template's bus rules
//! route what follows to evaluate, schedule-delay and deliver; the clock moves from event to
//! event, and the sweeper fires the timers that fall due in between. The decisions taken
//! must be exactly those `nudge replay` takes on the same events, and deliver's outcomes,
//! the delivery log behind the admin API and the mails handed to SES must follow them.

use std::collections::{BTreeMap, BTreeSet};

use nudge_core::engine::Send;
use nudge_core::event::{Message, MessageKind};
use nudge_core::insights::Period;
use nudge_core::replay::{replay_all, Replay, ReplayLine};
use nudge_core::time::{format_instant, Duration, Millis};
use nudge_service::bus::{BusEvent, DeliveryReport};
use nudge_service::email::message_id;
use nudge_service::ports::{Clock, TimerStore};
use serde_json::{json, Value};

use crate::support;
use crate::support::stack::{api_gateway_request, Function, Stack, ADMIN_KEY, WRITE_KEY_AUTH};

const EVENTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/saas-onboarding/events.jsonl"
));

/// The demo's messages with their instants, in time order (equal instants keep the file's
/// order), as `nudge replay` reads them.
fn demo_events() -> Vec<(Value, Message, Millis)> {
    let mut events: Vec<(Value, Message, Millis)> = EVENTS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("a JSON line");
            let msg = Message::from_json(&value, None).expect("a Segment message");
            let at = msg.timestamp.expect("a timestamp");
            (value, msg, at)
        })
        .collect();
    events.sort_by_key(|(_, _, at)| *at);
    events
}

/// What a decision's delivery must come to: a suppressed decision is reported suppressed; a
/// decided email to a user without an `email` trait fails at deliver (nothing to send to);
/// every other decided send goes out.
fn expected_delivery(line: &ReplayLine, users_with_email: &BTreeSet<String>) -> &'static str {
    match (line.outcome, line.channel) {
        ("suppressed", _) => "suppressed",
        ("sent", "email") if !users_with_email.contains(&line.user_id) => "failed",
        _ => "sent",
    }
}

/// The earliest pending timer of any of `users`.
async fn earliest_timer(stack: &Stack, users: &BTreeSet<String>) -> Option<Millis> {
    let mut earliest = None;
    for user in users {
        if let Some(timer) = stack.store.pending(user).await.expect("read timer") {
            earliest = Some(earliest.map_or(timer.due, |e: Millis| e.min(timer.due)));
        }
    }
    earliest
}

/// Moves the clock to each pending timer due while `due_ok` holds and runs the sweeper
/// there (the template's sweeper runs every minute; here it runs at the due instant, as the
/// replay's virtual clock fires timers). Returns how many sweeps ran.
async fn fire_timers(
    stack: &Stack,
    users: &BTreeSet<String>,
    due_ok: impl Fn(Millis) -> bool,
) -> usize {
    let mut sweeps = 0;
    while let Some(due) = earliest_timer(stack, users).await.filter(|d| due_ok(*d)) {
        assert!(
            due >= stack.clock.now(),
            "a timer due at {} is behind the clock",
            format_instant(due)
        );
        stack.clock.set(due);
        stack.sweep().await;
        stack.run_bus().await;
        sweeps += 1;
        assert!(sweeps < 1_000, "timers keep falling due");
    }
    sweeps
}

/// The tracking request for the messages of one instant: the message's own endpoint for
/// one, `/v1/batch` for several (one request, so evaluate decides them together, as the
/// replay does for one instant).
fn tracking_request(group: &[&Value]) -> String {
    let headers = [
        ("content-type", "application/json"),
        ("authorization", WRITE_KEY_AUTH),
    ];
    let (path, body) = match group {
        [one] => {
            let kind: MessageKind = one["type"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("a message type");
            (format!("/v1/{kind}"), one.to_string())
        }
        many => (
            "/v1/batch".to_string(),
            json!({ "batch": many }).to_string(),
        ),
    };
    api_gateway_request("POST", &path, &headers, Some(&body))
}

/// A decision as the comparison keys it.
fn key(line: &ReplayLine) -> (String, String, String) {
    (line.at.clone(), line.user_id.clone(), line.trigger.clone())
}

fn sorted_lines(sends: &[Send], stack: &Stack) -> Vec<ReplayLine> {
    let mut lines: Vec<ReplayLine> = sends
        .iter()
        .map(|s| ReplayLine::from_send(&stack.rules, s))
        .collect();
    lines.sort_by_key(key);
    lines
}

#[tokio::test]
async fn the_demo_journey_on_the_four_functions_decides_as_replay_does() {
    let events = demo_events();
    let first = events.first().expect("events").2;
    let last = events.last().expect("events").2;
    let until = last + Duration::parse("30d").expect("30d").0;
    let stack = Stack::new(first).await;
    // Every hop may deliver twice: each bus event reaches its function twice, and each
    // tracking request is sent again as an SDK retries it.
    stack.deliver_everything_twice();

    // What `nudge replay --rules examples/saas-onboarding events.jsonl` decides.
    let messages: Vec<(Message, Millis)> =
        events.iter().map(|(_, m, at)| (m.clone(), *at)).collect();
    let (replayed, _) = replay_all(&stack.rules, &messages, until);
    let expected = sorted_lines(&replayed, &stack);

    // The same events through ingest, an instant at a time, with the timers due before
    // each instant fired first.
    let users: BTreeSet<String> = events
        .iter()
        .map(|(_, m, _)| m.user_key().to_string())
        .collect();
    let mut sweeps = 0;
    let mut i = 0;
    while i < events.len() {
        let at = events[i].2;
        let group: Vec<&Value> = events[i..]
            .iter()
            .take_while(|(_, _, t)| *t == at)
            .map(|(v, _, _)| v)
            .collect();
        i += group.len();
        sweeps += fire_timers(&stack, &users, |due| due < at).await;
        stack.clock.set(at);
        let request = tracking_request(&group);
        for _ in 0..2 {
            let (status, answer) = stack.http(&request).await;
            assert_eq!(
                (status, &answer),
                (200, &json!({"success": true})),
                "{group:?}"
            );
            stack.run_bus().await;
        }
    }
    sweeps += fire_timers(&stack, &users, |due| due <= until).await;

    let seen = stack.seen();
    // Each decision once (deliver saw each Message Requested twice, the same).
    let mut decided: Vec<Send> = Vec::new();
    for (to, e) in &seen {
        if let (Some(Function::Deliver), BusEvent::MessageRequested(m)) = (to, e) {
            match decided.iter().find(|d| d.id == m.send.id) {
                Some(known) => assert_eq!(known, &m.send, "one decision id, two decisions"),
                None => decided.push(m.send.clone()),
            }
        }
    }
    let timers_fired = seen
        .iter()
        .filter(|(to, _)| *to == Some(Function::Evaluate))
        .flat_map(|(_, e)| e.clone().unpack())
        .filter(|e| matches!(e, BusEvent::TimerFired(_)))
        .count();

    // The journey is one where timers matter: some decisions fall between events.
    let instants: BTreeSet<String> = events
        .iter()
        .map(|(_, _, at)| format_instant(*at))
        .collect();
    let timed: Vec<&ReplayLine> = expected
        .iter()
        .filter(|l| !instants.contains(&l.at))
        .collect();
    assert!(
        timed.len() >= 5,
        "the demo should decide sends on timers: {expected:#?}"
    );
    assert!(
        sweeps >= timed.len() && timers_fired >= timed.len(),
        "{sweeps} sweeps, {timers_fired} timers fired"
    );

    // 1. The decisions: every field of the replay's output lines, rendered content included.
    let actual = sorted_lines(&decided, &stack);
    assert_eq!(actual, expected, "decisions differ from the replay's");
    // ... down to the decision ids (which key deliveries, inbox items and mails).
    let mut decided_ids: Vec<String> = decided.iter().map(|s| s.id.to_string()).collect();
    let mut replayed_ids: Vec<String> = replayed.iter().map(|s| s.id.to_string()).collect();
    decided_ids.sort();
    replayed_ids.sort();
    assert_eq!(decided_ids, replayed_ids);

    // 2. deliver's outcomes on the bus: one per decision (reported again, the same, for a
    // redelivered request), as the decision says.
    let users_with_email: BTreeSet<String> = events
        .iter()
        .filter(|(v, _, _)| v["traits"]["email"].is_string())
        .map(|(_, m, _)| m.user_key().to_string())
        .collect();
    let mut outcomes: BTreeMap<String, (&'static str, &DeliveryReport)> = BTreeMap::new();
    for (to, e) in &seen {
        let (outcome, report) = match (to, e) {
            (None, BusEvent::MessageSent(r)) => ("sent", r),
            (None, BusEvent::MessageSuppressed(r)) => ("suppressed", r),
            (None, BusEvent::MessageFailed(r)) => ("failed", r),
            _ => continue,
        };
        if let Some((before, first)) = outcomes.insert(report.id.to_string(), (outcome, report)) {
            assert_eq!(
                (before, first),
                (outcome, report),
                "two outcomes for {}",
                report.id
            );
        }
    }
    assert_eq!(outcomes.len(), decided.len());
    for send in &decided {
        let line = ReplayLine::from_send(&stack.rules, send);
        let (outcome, report) = outcomes[&send.id.to_string()];
        assert_eq!(
            (
                outcome,
                format_instant(report.at),
                report.trigger.as_str(),
                report.message.as_str(),
                report.variant.as_str(),
                report.reason.as_deref()
            ),
            (
                expected_delivery(&line, &users_with_email),
                line.at.clone(),
                line.trigger.as_str(),
                line.message.as_str(),
                line.variant.as_str(),
                line.reason
            ),
            "{line:?}"
        );
    }

    // 3. The delivery log, read through the admin API.
    for user in &users {
        let path = format!("/v1/admin/users/{user}/decisions");
        let auth = format!("Bearer {ADMIN_KEY}");
        let request = api_gateway_request("GET", &path, &[("authorization", &auth)], None);
        let (status, answer) = stack.http(&request).await;
        assert_eq!(status, 200, "{answer}");
        let mut logged: Vec<Value> = answer["decisions"]
            .as_array()
            .expect("decisions")
            .iter()
            .map(|d| {
                json!([
                    d["at"],
                    d["trigger"],
                    d["status"],
                    d["reason"],
                    d["subject"]
                ])
            })
            .collect();
        logged.sort_by_key(Value::to_string);
        let mut wanted: Vec<Value> = expected
            .iter()
            .filter(|l| &l.user_id == user)
            .map(|l| {
                // A failed send was rendered before its channel failed: its subject is kept.
                let subject = match l.outcome {
                    "sent" => l.subject.clone(),
                    _ => None,
                };
                json!([
                    l.at,
                    l.trigger,
                    expected_delivery(l, &users_with_email),
                    l.reason,
                    subject
                ])
            })
            .collect();
        wanted.sort_by_key(Value::to_string);
        assert_eq!(logged, wanted, "delivery log of {user}");
    }

    // 4. The mails SES took: one per email that went out (none twice), to the user's address.
    let mails: Vec<Value> = support::moto_models("ses", "RawMessage")
        .await
        .into_iter()
        .filter(|m| m["source"] == stack.sender.as_str())
        .collect();
    let emailed: Vec<&Send> = decided
        .iter()
        .filter(|s| {
            let line = ReplayLine::from_send(&stack.rules, s);
            line.channel == "email" && expected_delivery(&line, &users_with_email) == "sent"
        })
        .collect();
    assert!(!emailed.is_empty());
    assert_eq!(mails.len(), emailed.len(), "{mails:#?}");
    for send in emailed {
        let id = format!("Message-ID: {}", message_id(send.id));
        let mail = mails
            .iter()
            .find(|m| m["raw_data"].as_str().is_some_and(|raw| raw.contains(&id)))
            .unwrap_or_else(|| panic!("no mail with {id}"));
        let address = format!("{}@example.com", send.user_id);
        // moto lists the address once from the request and once from the `To` header.
        let to = mail["destinations"].as_array().expect("destinations");
        assert!(!to.is_empty() && to.iter().all(|d| *d == address), "{mail}");
    }

    // Nothing is left pending: every timer due by the end fell due and was fired.
    assert_eq!(
        earliest_timer(&stack, &users).await.filter(|d| *d <= until),
        None
    );

    // 5. The report through the admin API: the counters every evaluation applied (each bus
    // event was handled twice, each request sent twice) are those of the replay.
    let (from, to) = (format_instant(first), format_instant(until));
    let path = format!("/v1/admin/reports?from={from}&to={to}");
    let auth = format!("Bearer {ADMIN_KEY}");
    let request = api_gateway_request("GET", &path, &[("authorization", &auth)], None);
    let (status, mut live) = stack.http(&request).await;
    assert_eq!(status, 200, "{live}");
    let mut replay = Replay::new(&stack.rules);
    replay.measure(Period::covering(first, until));
    for (m, at) in &messages {
        replay.event(m, *at);
    }
    replay.finish(until);
    let mut wanted = serde_json::to_value(replay.report().expect("measured")).expect("json");
    // A replay counts every send delivered; deliver recorded each outcome as an event
    // (`Email Delivered`, or `Email Failed` for users without an address), each counted once
    // however often it came: together they are the replay's deliveries.
    let mut failed = 0;
    for (l, w) in live["triggers"]
        .as_array_mut()
        .expect("triggers")
        .iter_mut()
        .zip(wanted["triggers"].as_array_mut().expect("triggers"))
    {
        failed += fold_delivery(l, w);
        let variants = l["variants"].as_array_mut().expect("variants");
        for (lv, wv) in variants
            .iter_mut()
            .zip(w["variants"].as_array_mut().expect("variants"))
        {
            fold_delivery(lv, wv);
        }
    }
    let undeliverable = decided
        .iter()
        .filter(|s| {
            let line = ReplayLine::from_send(&stack.rules, s);
            expected_delivery(&line, &users_with_email) == "failed"
        })
        .count();
    assert_eq!(failed, undeliverable as i64);
    assert!(live["events"].as_i64() > Some(0));
    assert_eq!(live, wanted);
}

/// Checks that the live deliveries and failures of a trigger (or variant) add up to the
/// replay's deliveries, then folds them into the replay's form; returns the failures.
fn fold_delivery(live: &mut Value, replay: &mut Value) -> i64 {
    let n = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
    let (delivered, failed) = (n(live, "delivered"), n(live, "failed"));
    assert_eq!(
        delivered + failed,
        n(replay, "delivered") + n(replay, "failed"),
        "{live} vs {replay}"
    );
    live["delivered"] = json!(delivered + failed);
    live["failed"] = replay["failed"].clone();
    failed
}
