//! Reports of short histories replayed through the engine: conversions of sends and of
//! experiment arms, funnels, engagement, distinct users, periods and redelivery.

use serde_json::{json, Value};

use super::{Period, Report};
use crate::event::Message;
use crate::replay::Replay;
use crate::rules::CompiledRules;
use crate::test_support::{compile, t};
use crate::time::Millis;

const RULES: &str = r#"
goals:
  ordered:
    event: Order Completed
    value: total
  activated: {event: Feature Used, where: {feature: boards}}
triggers:
  cart:
    on: Product Added
    wait: 1h
    cancel_on: [Order Completed]
    goal: {id: ordered, within: 1d}
    send: {channel: email, message: mail}
  welcome:
    on: Signed Up
    goal: {id: ordered, within: 2d}
    send: {channel: in_app, message: note}
  tip:
    on: Help Viewed
    wait: 10m
    cancel_on: [Feature Used]
    experiment: tip-delay
    send: {channel: in_app, message: note}
experiments:
  tip-delay:
    holdout: 20%
    variants:
      short: {wait: 5m}
      long: {wait: 1h}
    goal: {id: activated, within: 3d}
funnels:
  checkout:
    within: 1d
    steps: [Product Viewed, Product Added, Order Completed]
    breakdown: {trait: plan}
messages:
  mail: {channel: email, email: {subject: s, text: t}}
  note: {channel: in_app, in_app: {title: t, body: b}}
"#;

/// One message: (user, event or `identify`, properties or traits, instant).
type Line<'a> = (&'a str, &'a str, Value, &'a str);

fn messages(lines: &[Line]) -> Vec<(Message, Millis)> {
    lines
        .iter()
        .enumerate()
        .map(|(i, (user, event, props, at))| {
            let v = if *event == "identify" {
                json!({"type": "identify", "userId": user, "traits": props, "timestamp": at, "messageId": format!("m{i}")})
            } else {
                json!({"type": "track", "userId": user, "event": event, "properties": props, "timestamp": at, "messageId": format!("m{i}")})
            };
            (Message::from_json(&v, None).expect("valid message"), t(at))
        })
        .collect()
}

/// The report of `msgs` replayed until `until`, over `[from, to)`.
fn report(
    rules: &CompiledRules,
    msgs: &[(Message, Millis)],
    until: &str,
    from: &str,
    to: &str,
) -> Report {
    let mut r = Replay::new(rules);
    r.measure(Period::covering(t(from), t(to)));
    for (m, at) in msgs {
        r.event(m, *at);
    }
    r.finish(t(until));
    r.report().expect("measuring")
}

fn whole(rules: &CompiledRules, lines: &[Line], until: &str) -> Report {
    report(
        rules,
        &messages(lines),
        until,
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    )
}

fn trigger<'r>(r: &'r Report, id: &str) -> &'r super::report::TriggerReport {
    r.triggers
        .iter()
        .find(|x| x.trigger == id)
        .expect("trigger listed")
}

#[test]
fn a_send_converts_once_within_its_window_and_every_goal_in_it_adds_value() {
    let rules = compile(RULES);
    let r = whole(
        &rules,
        &[
            // Sent at 10:00; two orders in the window, one after it.
            ("u1", "Signed Up", json!({}), "2026-03-02T10:00:00Z"),
            (
                "u1",
                "Order Completed",
                json!({"total": 12.5}),
                "2026-03-02T11:00:00Z",
            ),
            (
                "u1",
                "Order Completed",
                json!({"total": "7.25"}),
                "2026-03-03T09:00:00Z",
            ),
            (
                "u1",
                "Order Completed",
                json!({"total": 100}),
                "2026-03-05T10:00:01Z",
            ),
            // An order before the send does not convert it.
            (
                "u2",
                "Order Completed",
                json!({"total": 1}),
                "2026-03-02T09:00:00Z",
            ),
            ("u2", "Signed Up", json!({}), "2026-03-02T10:00:00Z"),
        ],
        "2026-03-10T00:00:00Z",
    );
    let w = trigger(&r, "welcome");
    assert_eq!(w.counts.sent, 2);
    assert_eq!(w.counts.delivered, 2, "a replay counts its sends delivered");
    assert_eq!(w.counts.converted, 1);
    assert_eq!(w.counts.conversion_rate, Some(0.5));
    assert_eq!(w.counts.value, 19.75);
    assert_eq!(w.goal.as_deref(), Some("ordered"));
    assert_eq!(
        w.latency_s.p50,
        Some(0.5),
        "sent at once: the under-a-second bucket"
    );
}

#[test]
fn overlapping_sends_each_convert_and_starts_add_up() {
    let rules = compile(RULES);
    let r = whole(
        &rules,
        &[
            // Two carts sent an hour apart; one order converts both.
            ("u1", "Product Added", json!({}), "2026-03-02T10:00:00Z"),
            ("u1", "Product Viewed", json!({}), "2026-03-02T11:30:00Z"),
            ("u1", "Product Added", json!({}), "2026-03-02T11:30:00Z"),
            (
                "u1",
                "Order Completed",
                json!({"total": 10}),
                "2026-03-02T14:00:00Z",
            ),
            // A third cart is cancelled by the order before its hour is up.
            ("u1", "Product Added", json!({}), "2026-03-02T15:00:00Z"),
            (
                "u1",
                "Order Completed",
                json!({"total": 5}),
                "2026-03-02T15:30:00Z",
            ),
            // And a fourth is still waiting when the replay stops.
            ("u2", "Product Added", json!({}), "2026-03-09T23:30:00Z"),
        ],
        "2026-03-10T00:00:00Z",
    );
    let c = trigger(&r, "cart");
    assert_eq!(
        (
            c.counts.started,
            c.counts.sent,
            c.counts.cancelled,
            c.waiting
        ),
        (4, 2, 1, 1)
    );
    assert_eq!(c.counts.converted, 2);
    assert_eq!(c.counts.value, 30.0, "both orders in both windows");
    let p50 = c.latency_s.p50.expect("latency");
    assert!((p50 - 3600.0).abs() / 3600.0 < 0.05, "{p50}");
}

#[test]
fn experiments_count_each_assigned_user_once_from_assignment_even_when_the_goal_cancelled_the_wait()
{
    let rules = compile(RULES);
    // Enough users that every arm and the holdout get some.
    let mut lines: Vec<(String, &str, Value, &str)> = Vec::new();
    for i in 0..60 {
        let u = format!("user-{i}");
        lines.push((u.clone(), "Help Viewed", json!({}), "2026-03-02T10:00:00Z"));
        if i % 2 == 0 {
            // Activated at once: every wait is cancelled, nothing is sent.
            lines.push((
                u.clone(),
                "Feature Used",
                json!({"feature": "boards"}),
                "2026-03-02T10:01:00Z",
            ));
            lines.push((
                u,
                "Feature Used",
                json!({"feature": "boards"}),
                "2026-03-02T10:02:00Z",
            ));
        }
    }
    let borrowed: Vec<Line> = lines
        .iter()
        .map(|(u, e, p, at)| (u.as_str(), *e, p.clone(), *at))
        .collect();
    let r = whole(&rules, &borrowed, "2026-03-10T00:00:00Z");
    let e = &r.experiments[0];
    assert_eq!(e.goal.as_deref(), Some("activated"));
    let names: Vec<&str> = e.variants.iter().map(|v| v.variant.as_str()).collect();
    assert_eq!(names, ["short", "long", "holdout"]);
    assert_eq!(e.variants.iter().map(|v| v.users).sum::<i64>(), 60);
    assert_eq!(e.variants.iter().map(|v| v.converted).sum::<i64>(), 30);
    assert!(e.variants.iter().all(|v| v.users > 0), "{:?}", e.variants);
    let tip = trigger(&r, "tip");
    // The activated half's waits were cancelled; of the rest, the holdout is suppressed.
    assert_eq!(tip.counts.cancelled, 30);
    let holdout = tip.counts.suppressed.get("holdout").copied().unwrap_or(0);
    assert!(holdout > 0);
    assert_eq!(tip.counts.sent + holdout, 30);
    // Started and cancelled are counted per arm.
    let arms: i64 = tip.variants.iter().map(|v| v.counts.started).sum();
    assert_eq!(arms, 60);
}

#[test]
fn funnels_count_each_user_once_per_step_in_order_within_the_window() {
    let rules = compile(RULES);
    let r = whole(
        &rules,
        &[
            (
                "a",
                "identify",
                json!({"plan": "pro"}),
                "2026-03-02T09:00:00Z",
            ),
            ("a", "Product Viewed", json!({}), "2026-03-02T10:00:00Z"),
            ("a", "Product Viewed", json!({}), "2026-03-02T10:05:00Z"),
            ("a", "Product Added", json!({}), "2026-03-02T10:10:00Z"),
            ("a", "Order Completed", json!({}), "2026-03-02T12:10:00Z"),
            // Done: a second round counts nothing more.
            ("a", "Product Viewed", json!({}), "2026-03-05T10:00:00Z"),
            ("a", "Product Added", json!({}), "2026-03-05T10:00:01Z"),
            // Out of order: the order before the add does not count.
            ("b", "Product Viewed", json!({}), "2026-03-02T10:00:00Z"),
            ("b", "Order Completed", json!({}), "2026-03-02T10:30:00Z"),
            ("b", "Product Added", json!({}), "2026-03-02T11:00:00Z"),
            // Too late for the window; a new attempt two days on finishes the funnel.
            ("c", "Product Viewed", json!({}), "2026-03-02T10:00:00Z"),
            ("c", "Product Added", json!({}), "2026-03-03T11:00:00Z"),
            ("c", "Product Viewed", json!({}), "2026-03-04T10:00:00Z"),
            ("c", "Product Added", json!({}), "2026-03-04T10:30:00Z"),
            ("c", "Order Completed", json!({}), "2026-03-04T11:00:00Z"),
        ],
        "2026-03-10T00:00:00Z",
    );
    let f = &r.funnels[0];
    let users: Vec<i64> = f.steps.iter().map(|s| s.users).collect();
    assert_eq!(users, [3, 3, 2]);
    assert_eq!(f.steps[2].rate_from_previous, Some(0.6667));
    assert_eq!(f.steps[2].rate_from_start, Some(0.6667));
    assert!(f.steps[1].median_s_from_previous.is_some());
    let b = f.breakdown.as_ref().expect("breakdown");
    assert_eq!(b.by, "trait:plan");
    let pro = b.values.iter().find(|v| v.value == "pro").expect("pro");
    assert_eq!(
        pro.steps.iter().map(|s| s.users).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    let none = b
        .values
        .iter()
        .find(|v| v.value == "(none)")
        .expect("no plan");
    assert_eq!(
        none.steps.iter().map(|s| s.users).collect::<Vec<_>>(),
        [2, 2, 1]
    );
}

#[test]
fn engagement_events_count_for_the_send_they_name_and_are_not_product_events() {
    let rules = compile(RULES);
    let about = json!({"decision_id": "00000000000000aa", "trigger": "welcome", "variant": "default", "channel": "in_app"});
    let r = whole(
        &rules,
        &[
            ("u1", "Signed Up", json!({}), "2026-03-02T10:00:00Z"),
            (
                "u1",
                "In-App Message Viewed",
                about.clone(),
                "2026-03-02T10:01:00Z",
            ),
            (
                "u1",
                "In-App Message Clicked",
                about.clone(),
                "2026-03-02T10:02:00Z",
            ),
            (
                "u1",
                "In-App Message Dismissed",
                about.clone(),
                "2026-03-02T10:03:00Z",
            ),
            // Without the trigger it names, an engagement event is not counted.
            (
                "u1",
                "Email Link Clicked",
                json!({"decision_id": "1"}),
                "2026-03-02T10:04:00Z",
            ),
        ],
        "2026-03-10T00:00:00Z",
    );
    let w = trigger(&r, "welcome");
    assert_eq!(
        (w.counts.opened, w.counts.clicked, w.counts.dismissed),
        (1, 1, 1)
    );
    assert_eq!(w.counts.click_rate, Some(1.0));
    assert_eq!(r.events, 1, "only the product's own events are events");
    let v = &w.variants[0];
    assert_eq!((v.variant.as_str(), v.counts.clicked), ("default", 1));
}

#[test]
fn periods_keep_what_happened_in_them_and_users_are_distinct_across_days() {
    let rules = compile(RULES);
    let mut lines = Vec::new();
    // The same 50 users on each of three days, and 10 more on the last.
    let days = [
        "2026-03-02T10:00:00Z",
        "2026-03-03T10:00:00Z",
        "2026-03-04T10:00:00Z",
    ];
    let ids: Vec<String> = (0..60).map(|i| format!("user-{i}")).collect();
    for (d, day) in days.iter().enumerate() {
        for (i, u) in ids.iter().enumerate() {
            if i < 50 || d == 2 {
                lines.push((u.as_str(), "Page Seen", json!({}), *day));
            }
        }
    }
    let msgs = messages(&lines);
    let all = report(
        &rules,
        &msgs,
        "2026-03-05T00:00:00Z",
        "2026-03-02T00:00:00Z",
        "2026-03-05T00:00:00Z",
    );
    assert_eq!(all.events, 160);
    assert!(
        (59..=61).contains(&all.users),
        "{} users, not 160",
        all.users
    );
    let first_day = report(
        &rules,
        &msgs,
        "2026-03-05T00:00:00Z",
        "2026-03-02T00:00:00Z",
        "2026-03-02T23:30:00Z",
    );
    assert_eq!(first_day.events, 50);
    assert_eq!(
        first_day.period.to, "2026-03-03T00:00:00Z",
        "rounded up to the hour"
    );
}

#[test]
fn conversions_count_in_the_hour_of_the_send_they_convert() {
    let rules = compile(RULES);
    let msgs = messages(&[
        ("u1", "Signed Up", json!({}), "2026-03-02T23:00:00Z"),
        (
            "u1",
            "Order Completed",
            json!({"total": 3}),
            "2026-03-03T01:00:00Z",
        ),
    ]);
    let day1 = report(
        &rules,
        &msgs,
        "2026-03-04T00:00:00Z",
        "2026-03-02T00:00:00Z",
        "2026-03-03T00:00:00Z",
    );
    let w = trigger(&day1, "welcome");
    assert_eq!(
        (w.counts.sent, w.counts.converted, w.counts.value),
        (1, 1, 3.0)
    );
    let day2 = report(
        &rules,
        &msgs,
        "2026-03-04T00:00:00Z",
        "2026-03-03T00:00:00Z",
        "2026-03-04T00:00:00Z",
    );
    assert_eq!(trigger(&day2, "welcome").counts.converted, 0);
}

#[test]
fn redelivered_messages_move_no_count() {
    let rules = compile(RULES);
    let once = messages(&[
        ("u1", "Signed Up", json!({}), "2026-03-02T10:00:00Z"),
        ("u1", "Product Viewed", json!({}), "2026-03-02T10:01:00Z"),
        (
            "u1",
            "Order Completed",
            json!({"total": 3}),
            "2026-03-02T11:00:00Z",
        ),
    ]);
    // Each message delivered twice, the second time later (as a retried bus event).
    let mut twice = once.clone();
    twice.extend(once.iter().map(|(m, at)| (m.clone(), at + 1)));
    twice.sort_by_key(|(_, at)| *at);
    let a = report(
        &rules,
        &once,
        "2026-03-03T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "2026-03-04T00:00:00Z",
    );
    let b = report(
        &rules,
        &twice,
        "2026-03-03T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "2026-03-04T00:00:00Z",
    );
    assert_eq!(a, b);
}
