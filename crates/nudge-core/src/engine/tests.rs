//! Engine behaviours the example rule sets do not exercise.

use super::*;
use serde_json::json;

use crate::test_support::{compile as rules, t};

fn track(id: &str, name: &str, props: serde_json::Value, at: &str) -> (Message, Millis) {
    let v = json!({"type": "track", "userId": "u1", "event": name, "properties": props, "timestamp": at, "messageId": id});
    (Message::from_json(&v, None).expect("valid message"), t(at))
}

fn identify(id: &str, traits: serde_json::Value, at: &str) -> (Message, Millis) {
    let v = json!({"type": "identify", "userId": "u1", "traits": traits, "timestamp": at, "messageId": id});
    (Message::from_json(&v, None).expect("valid message"), t(at))
}

fn sends(out: &Outcome) -> Vec<(String, Option<Reason>)> {
    out.sends()
        .map(|s| (s.trigger.to_string(), s.reason))
        .collect()
}

const MESSAGES: &str = r#"
messages:
  note:
    channel: in_app
    in_app: {title: "Hi {{ traits.first_name | default: 'there' }}", body: "b"}
  mail:
    channel: email
    email: {subject: "s", text: "t"}
  hook:
    channel: webhook
    webhook:
      url: "https://hooks.example.com/{{ user_id }}"
      body: {user: "{{ user_id }}", step: "{{ properties.step }}", fixed: 3}
"#;

#[test]
fn segment_entered_trigger_fires_when_time_passes() {
    // Given a segment entered by 30 minutes of idleness and a trigger on entering it
    let r = rules(&format!(
        "{MESSAGES}
segments:
  idle: {{idle: {{at_least: 30m}}}}
triggers:
  come-back:
    on: {{segment_entered: idle}}
    send: {{channel: in_app, message: note}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = track("m1", "Anything", json!({}), "2026-03-02T10:00:00Z");
    // When an event arrives, the engine asks to be woken when the segment may change
    let out = e.handle(&mut s, "u1", &m, at);
    assert_eq!(out.next_wake, Some(t("2026-03-02T10:30:00Z")));
    assert!(sends(&out).is_empty());
    // Then waking it at that instant fires the trigger once
    let out = e.advance(&mut s, "u1", t("2026-03-02T10:30:00Z"));
    assert_eq!(sends(&out), vec![("come-back".to_string(), None)]);
    let again = e.advance(&mut s, "u1", t("2026-03-02T10:30:00Z"));
    assert!(
        sends(&again).is_empty(),
        "a second wake at the same instant sends nothing"
    );
}

#[test]
fn exit_condition_is_recorded_at_fire_time() {
    let r = rules(&format!(
        "{MESSAGES}
triggers:
  remind:
    on: Viewed
    wait: 1h
    exit: {{traits: {{plan: pro}}}}
    send: {{channel: in_app, message: note}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = track("m1", "Viewed", json!({}), "2026-03-02T10:00:00Z");
    e.handle(&mut s, "u1", &m, at);
    let (m, at) = identify("m2", json!({"plan": "pro"}), "2026-03-02T10:10:00Z");
    e.handle(&mut s, "u1", &m, at);
    let out = e.advance(&mut s, "u1", t("2026-03-02T11:00:00Z"));
    assert_eq!(
        sends(&out),
        vec![("remind".to_string(), Some(Reason::ExitCondition))]
    );
}

#[test]
fn min_gap_suppresses_the_lower_priority_with_reason_priority() {
    let r = rules(&format!(
        "{MESSAGES}
policies:
  min_gap: 10m
triggers:
  important:
    priority: high
    on: Clicked
    send: {{channel: in_app, message: note}}
  minor:
    priority: low
    on: Clicked
    send: {{channel: in_app, message: note}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = track("m1", "Clicked", json!({}), "2026-03-02T10:00:00Z");
    let out = e.handle(&mut s, "u1", &m, at);
    assert_eq!(
        sends(&out),
        vec![
            ("important".to_string(), None),
            ("minor".to_string(), Some(Reason::Priority))
        ]
    );
}

#[test]
fn quiet_hours_can_suppress_instead_of_defer() {
    let r = rules(&format!(
        "{MESSAGES}
policies:
  quiet_hours:
    - {{channels: [email], from: \"22:00\", to: \"07:00\", action: suppress}}
triggers:
  mailer:
    on: Clicked
    send: {{channel: email, message: mail}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = identify(
        "m0",
        json!({"timezone": "Asia/Tokyo"}),
        "2026-03-02T13:00:00Z",
    );
    e.handle(&mut s, "u1", &m, at);
    // 13:30 UTC is 22:30 in Tokyo: quiet.
    let (m, at) = track("m1", "Clicked", json!({}), "2026-03-02T13:30:00Z");
    let out = e.handle(&mut s, "u1", &m, at);
    assert_eq!(
        sends(&out),
        vec![("mailer".to_string(), Some(Reason::QuietHours))]
    );
    // 23:00 UTC is 08:00 in Tokyo: not quiet.
    let (m, at) = track("m2", "Clicked", json!({}), "2026-03-02T23:00:00Z");
    let out = e.handle(&mut s, "u1", &m, at);
    assert_eq!(sends(&out), vec![("mailer".to_string(), None)]);
}

#[test]
fn deferral_lands_on_local_morning_across_a_dst_change() {
    let r = rules(&format!(
        "{MESSAGES}
policies:
  quiet_hours:
    - {{channels: [email], from: \"21:00\", to: \"08:00\"}}
triggers:
  mailer:
    on: Clicked
    send: {{channel: email, message: mail}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = identify(
        "m0",
        json!({"timezone": "Europe/Berlin"}),
        "2026-03-28T12:00:00Z",
    );
    e.handle(&mut s, "u1", &m, at);
    // 22:00 CET on Saturday 28 March; clocks go forward that night.
    let (m, at) = track("m1", "Clicked", json!({}), "2026-03-28T21:00:00Z");
    let out = e.handle(&mut s, "u1", &m, at);
    assert!(sends(&out).is_empty());
    // 08:00 CEST on Sunday is 06:00 UTC (the day before it would have been 07:00 UTC).
    assert_eq!(out.next_wake, Some(t("2026-03-29T06:00:00Z")));
    let out = e.advance(&mut s, "u1", t("2026-03-29T06:00:00Z"));
    let sent: Vec<_> = out.sends().map(|s| (&*s.trigger, s.at, s.reason)).collect();
    assert_eq!(sent, vec![("mailer", t("2026-03-29T06:00:00Z"), None)]);
}

#[test]
fn unsubscribed_users_get_no_email_but_still_in_app() {
    let r = rules(&format!(
        "{MESSAGES}
triggers:
  mailer:
    on: Clicked
    once: user
    send: {{channel: email, message: mail}}
  popup:
    on: Clicked
    send: {{channel: in_app, message: note}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = track("m0", EMAIL_UNSUBSCRIBED, json!({}), "2026-03-02T10:00:00Z");
    e.handle(&mut s, "u1", &m, at);
    let (m, at) = track("m1", "Clicked", json!({}), "2026-03-02T11:00:00Z");
    let out = e.handle(&mut s, "u1", &m, at);
    assert_eq!(
        sends(&out),
        vec![
            ("mailer".to_string(), Some(Reason::Unsubscribed)),
            ("popup".to_string(), None)
        ]
    );
    // The suppressed send spent `once: user`.
    let (m, at) = track("m2", "Clicked", json!({}), "2026-03-02T12:00:00Z");
    let out = e.handle(&mut s, "u1", &m, at);
    assert_eq!(sends(&out), vec![("popup".to_string(), None)]);
}

#[test]
fn webhook_content_renders_json_with_captured_properties() {
    let r = rules(&format!(
        "{MESSAGES}
triggers:
  hook:
    on: Viewed
    send: {{channel: webhook, message: hook}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = track(
        "m1",
        "Viewed",
        json!({"step": "team"}),
        "2026-03-02T10:00:00Z",
    );
    let out = e.handle(&mut s, "u1", &m, at);
    let send = out.sends().next().expect("a send");
    let rendered = crate::render::render(&r, send).expect("renders");
    assert_eq!(
        rendered.url.as_deref(),
        Some("https://hooks.example.com/u1")
    );
    assert_eq!(
        rendered.webhook_body,
        Some(json!({"user": "u1", "step": "team", "fixed": 3}))
    );
}

#[test]
fn duplicate_message_ids_change_nothing() {
    let r = rules(&format!(
        "{MESSAGES}
triggers:
  popup:
    on: Clicked
    send: {{channel: in_app, message: note}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = track("m1", "Clicked", json!({}), "2026-03-02T10:00:00Z");
    assert_eq!(e.handle(&mut s, "u1", &m, at).sends().count(), 1);
    let before = s.clone();
    let out = e.handle(&mut s, "u1", &m, at);
    assert!(out.duplicate);
    assert_eq!(s, before);
}

#[test]
fn state_survives_encoding_and_rule_edits() {
    let base = format!(
        "{MESSAGES}
triggers:
  popup:
    on: Clicked
    if: {{count: Clicked, at_least: 2}}
    once: user
    send: {{channel: in_app, message: note}}
"
    );
    let r = rules(&base);
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = track("m1", "Clicked", json!({}), "2026-03-02T10:00:00Z");
    e.handle(&mut s, "u1", &m, at);
    let bytes = s.encode(&r);
    assert_eq!(UserState::decode(&bytes, &r).expect("decodes"), s);
    // A rule set with an extra trigger keeps the count of the unchanged one.
    let edited = rules(&format!(
        "{base}
  other:
    on: Opened
    send: {{channel: in_app, message: note}}
"
    ));
    let mut s2 = UserState::decode(&bytes, &edited).expect("decodes under edited rules");
    let e2 = Engine::new(&edited);
    let (m, at) = track("m2", "Clicked", json!({}), "2026-03-02T10:01:00Z");
    assert_eq!(
        sends(&e2.handle(&mut s2, "u1", &m, at)),
        vec![("popup".to_string(), None)]
    );
}

#[test]
fn a_trigger_holds_at_most_two_sends_through_quiet_hours() {
    let r = rules(&format!(
        "{MESSAGES}
policies:
  quiet_hours:
    - {{channels: [email], from: \"21:00\", to: \"08:00\"}}
triggers:
  mailer:
    on: Clicked
    send: {{channel: email, message: mail}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let mut reasons = Vec::new();
    for (i, at) in [
        "2026-03-02T22:00:00Z",
        "2026-03-02T22:10:00Z",
        "2026-03-02T22:20:00Z",
    ]
    .iter()
    .enumerate()
    {
        let (m, at) = track(&format!("m{i}"), "Clicked", json!({}), at);
        reasons.extend(sends(&e.handle(&mut s, "u1", &m, at)));
    }
    // The third cannot be deferred: it is suppressed with reason quiet_hours.
    assert_eq!(
        reasons,
        vec![("mailer".to_string(), Some(Reason::QuietHours))]
    );
    let out = e.advance(&mut s, "u1", t("2026-03-03T08:00:00Z"));
    assert_eq!(
        sends(&out),
        vec![("mailer".to_string(), None), ("mailer".to_string(), None)]
    );
}

#[test]
fn collected_rows_are_listed_once_newest_last() {
    let r = rules(&format!(
        "{MESSAGES}
triggers:
  popup:
    on: Added
    data:
      items: {{collect: Added, fields: [name], max: 3}}
    send: {{channel: in_app, message: note}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let mut last = None;
    for (i, name) in ["a", "b", "a", "c", "d"].iter().enumerate() {
        let (m, at) = track(
            &format!("m{i}"),
            "Added",
            json!({"name": name}),
            &format!("2026-03-02T10:0{i}:00Z"),
        );
        last = e
            .handle(&mut s, "u1", &m, at)
            .sends()
            .next()
            .map(|s| s.context.globals(s)["data"]["items"].clone());
    }
    assert_eq!(
        last,
        Some(json!([{"name": "a"}, {"name": "c"}, {"name": "d"}]))
    );
}

/// The membership the engine keeps for tracked segments always equals evaluating their
/// definitions from scratch, after every event and every wake, over a long random journey.
#[test]
fn tracked_segment_membership_matches_live_evaluation() {
    let r = rules(&format!(
        "{MESSAGES}
segments:
  clicker: {{count: Clicked, within: 1h, at_least: 2}}
  quiet: {{idle: {{at_least: 20m}}}}
  regular: {{sessions: {{within: 1d, at_least: 2}}}}
  pro: {{traits: {{plan: pro}}}}
  pro_clicker: {{all: [{{in_segment: pro}}, {{in_segment: clicker}}]}}
  lapsed: {{all: [{{in_segment: pro_clicker}}, {{in_segment: quiet}}]}}
  never_opened: {{never: Opened}}
triggers:
  t-clicker: {{on: {{segment_entered: clicker}}, send: {{channel: in_app, message: note}}}}
  t-quiet: {{on: {{segment_entered: quiet}}, send: {{channel: in_app, message: note}}}}
  t-regular: {{on: {{segment_exited: regular}}, send: {{channel: in_app, message: note}}}}
  t-lapsed: {{on: {{segment_entered: lapsed}}, send: {{channel: in_app, message: note}}}}
  t-never: {{on: {{segment_exited: never_opened}}, send: {{channel: in_app, message: note}}}}
  t-pro-click:
    on: Clicked
    if: {{in_segment: pro_clicker}}
    send: {{channel: in_app, message: note}}
"
    ));
    assert!(r.tracked_segments.len() >= 5);
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let mut seed: u64 = 7;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut at = t("2026-03-02T08:00:00Z");
    let check = |s: &UserState, now: Millis, when: &str| {
        for &si in &r.tracked_segments {
            let seg = &r.segments[si];
            let ctx = conditions::Ctx {
                rules: &r,
                state: s,
                now,
                props: conditions::Props::None,
            };
            let live = ctx.holds_uncached(&seg.cond);
            let kept = s.segments.contains(&seg.stable_id);
            assert_eq!(kept, live, "segment {} {when} at {now}", seg.id);
        }
    };
    for i in 0..600 {
        at += [5_000, 60_000, 600_000, 1_800_000, 7_200_000, 86_400_000][next(6) as usize] as i64;
        // Wake the engine when it asked to be woken, as a scheduler would.
        while let Some(w) = e.next_wake(&s).filter(|w| *w < at) {
            e.advance(&mut s, "u1", w);
            check(&s, w, "after a wake");
        }
        let v = match next(5) {
            0 => {
                json!({"type": "identify", "userId": "u1", "traits": {"plan": if next(2) == 0 { "pro" } else { "free" }}})
            }
            1 => json!({"type": "track", "userId": "u1", "event": "Opened"}),
            _ => json!({"type": "track", "userId": "u1", "event": "Clicked"}),
        };
        let mut v = v;
        v["messageId"] = json!(format!("m{i}"));
        let m = Message::from_json(&v, None).expect("valid message");
        e.handle(&mut s, "u1", &m, at);
        check(&s, at, "after an event");
    }
}

#[test]
fn engagement_events_are_not_activity_and_reach_only_rules_that_name_them() {
    // Given a nudge after 2 minutes idle (re-armed by every event), a trigger on any event,
    // and one on following an in-app link
    let r = rules(&format!(
        "{MESSAGES}
triggers:
  pause:
    on: \"*\"
    rearm: true
    wait: 2m
    send: {{channel: in_app, message: note}}
  clicked:
    on: In-App Message Clicked
    send: {{channel: in_app, message: note}}
"
    ));
    let e = Engine::new(&r);
    let mut s = UserState::new(&r);
    let (m, at) = track("m1", "Signed Up", json!({}), "2026-03-02T10:00:00Z");
    let out = e.handle(&mut s, "u1", &m, at);
    assert_eq!(out.next_wake, Some(t("2026-03-02T10:02:00Z")));
    let sessions = s.sessions;

    // When the user reads a message a minute later: nothing moves, no session, no re-arm
    let (m, at) = track(
        "m2",
        "In-App Message Viewed",
        json!({"decision_id": "1"}),
        "2026-03-02T10:01:00Z",
    );
    let out = e.handle(&mut s, "u1", &m, at);
    assert!(out.decisions.is_empty(), "{:?}", out.decisions);
    assert_eq!(out.next_wake, Some(t("2026-03-02T10:02:00Z")));
    assert_eq!(s.sessions, sessions);
    assert_eq!(s.last_activity, Some(t("2026-03-02T10:00:00Z")));

    // When the user follows a link: the rule naming the click starts, `*` does not re-arm
    let (m, at) = track(
        "m3",
        "In-App Message Clicked",
        json!({"decision_id": "1"}),
        "2026-03-02T10:01:30Z",
    );
    let out = e.handle(&mut s, "u1", &m, at);
    assert_eq!(sends(&out), [("clicked".to_string(), None)]);
    assert_eq!(out.next_wake, Some(t("2026-03-02T10:02:00Z")));

    // And the pause nudge still goes out 2 minutes after the last real activity
    let out = e.advance(&mut s, "u1", t("2026-03-02T10:02:00Z"));
    assert_eq!(sends(&out), [("pause".to_string(), None)]);
}

#[test]
fn engagement_events_need_no_tracking_plan_entry() {
    // A plan that allows no unknown events still lets rules name nudge's own events.
    let r = rules(&format!(
        "{MESSAGES}
tracking_plan:
  allow_unknown_events: false
  events:
    Signed Up: {{}}
triggers:
  clicked:
    on: Email Link Clicked
    send: {{channel: in_app, message: note}}
"
    ));
    assert_eq!(r.triggers.len(), 1);
}
