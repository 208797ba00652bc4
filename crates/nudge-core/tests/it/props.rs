//! Property tests over the whole engine: idempotent and deterministic replay on generated
//! journeys of the example rule sets, and no panics on hostile events, stored state or rule
//! files.

use nudge_core::engine::{Decision, Engine, Send};
use nudge_core::event::Message;
use nudge_core::replay::{replay_all, ReplayLine};
use nudge_core::rules::{self, CompiledRules, RuleFile};
use nudge_core::state::{UserState, SEEN_IDS};
use nudge_core::time::Millis;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::LazyLock;

const SAAS: usize = 0;
const EXAMPLES: [&str; 2] = ["saas-onboarding", "ecommerce"];

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Time zones users report, DST zones included.
const TIMEZONES: [&str; 5] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
];

/// Journey starts near DST changes (2026: US 8 Mar, EU 29 Mar, Sydney 5 Apr, EU 25 Oct,
/// US 1 Nov) and on an ordinary day.
const STARTS: [&str; 6] = [
    "2026-03-07T18:30:00Z",
    "2026-03-28T20:15:00Z",
    "2026-04-04T10:00:00Z",
    "2026-10-24T22:45:00Z",
    "2026-10-31T23:59:30Z",
    "2026-06-15T07:00:00Z",
];

fn example_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// The rule files of an example, sorted by name as `nudge` reads them.
fn example_files(name: &str) -> Vec<RuleFile> {
    let dir = example_dir(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| RuleFile {
            name: p.file_name().unwrap().to_string_lossy().into_owned(),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect()
}

static FILES: LazyLock<Vec<Vec<RuleFile>>> =
    LazyLock::new(|| EXAMPLES.iter().map(|n| example_files(n)).collect());

static RULES: LazyLock<Vec<CompiledRules>> = LazyLock::new(|| {
    FILES
        .iter()
        .zip(EXAMPLES)
        .map(|(files, name)| {
            rules::load(files)
                .unwrap_or_else(|errors| panic!("example {name} does not load: {errors:?}"))
        })
        .collect()
});

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES=N runs a longer search.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(64),
        // Counterexamples are reported by the failing test itself; no files are written.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Journeys
// ---------------------------------------------------------------------------------------------

/// One generated step of a user's journey: the gap since their previous step, what they did
/// (an index into the example's event table) and choices for property values.
#[derive(Debug, Clone)]
struct Step {
    gap: Millis,
    kind: usize,
    a: usize,
    b: usize,
    /// The same action again this many times, seconds apart (bursts fill windows and caps).
    repeat: usize,
}

#[derive(Debug, Clone)]
struct Journeys {
    example: usize,
    /// Part of the user ids (experiment assignment hashes them).
    salt: u16,
    start: usize,
    users: Vec<(Millis, Vec<Step>)>,
}

/// Gaps from nothing (same instant) through seconds and minutes to days.
fn gap() -> impl Strategy<Value = Millis> {
    prop_oneof![
        1 => Just(0i64),
        3 => (1..120i64).prop_map(|s| s * SECOND),
        3 => (1..60i64).prop_map(|m| m * MINUTE + 7),
        2 => (1..36i64).prop_map(|h| h * HOUR + 13 * SECOND),
        1 => (1..6i64).prop_map(|d| d * DAY + 3 * MINUTE),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let repeat = prop_oneof![6 => Just(0usize), 1 => 1..4usize];
    (gap(), 0..16usize, 0..64usize, 0..64usize, repeat).prop_map(|(gap, kind, a, b, repeat)| Step {
        gap,
        kind,
        a,
        b,
        repeat,
    })
}

fn journeys() -> impl Strategy<Value = Journeys> {
    (
        0..EXAMPLES.len(),
        any::<u16>(),
        0..STARTS.len(),
        prop::collection::vec((0..3 * DAY, prop::collection::vec(step(), 1..24)), 1..5),
    )
        .prop_map(|(example, salt, start, users)| Journeys {
            example,
            salt,
            start,
            users,
        })
}

fn rfc3339(at: Millis) -> String {
    jiff::Timestamp::from_millisecond(at).unwrap().to_string()
}

/// The Segment message for one step (valid against the example's tracking plan).
fn step_json(example: usize, salt: u16, user: usize, n: usize, at: Millis, s: &Step) -> Value {
    const STEPS: [&str; 5] = ["account", "profile", "team", "integrations", "payment"];
    const FEATURES: [&str; 4] = ["dashboards", "reports", "automations", "api"];
    const LABELS: [&str; 3] = ["Connect Payment Method", "Invite Team", "Upgrade"];
    const PRODUCTS: [(&str, &str, f64); 3] = [
        ("p1", "Blue Mug", 12.5),
        ("p2", "Tea Pot", 30.0),
        ("p3", "Spoon", 2.0),
    ];
    let user_id = format!("u{salt}-{user}");
    let message_id = format!("{}-{user_id}-{n}", EXAMPLES[example]);
    let track = |event: &str, properties: Value| {
        json!({
            "type": "track", "userId": user_id, "event": event, "properties": properties,
            "timestamp": rfc3339(at), "messageId": message_id,
        })
    };
    let identify = |traits: Value| {
        json!({
            "type": "identify", "userId": user_id, "traits": traits,
            "timestamp": rfc3339(at), "messageId": message_id,
        })
    };
    let tz = TIMEZONES[s.a % TIMEZONES.len()];
    if example == SAAS {
        let i = s.a % STEPS.len();
        let step = json!({"step": STEPS[i], "step_index": i + 1});
        // Common events appear more than once so that counts and windows fill up.
        match s.kind {
            0 => identify(json!({"first_name": format!("Ann{}", s.b), "timezone": tz})),
            1 => json!({
                "type": "identify", "userId": user_id, "traits": {"first_name": "Bo"},
                "context": {"timezone": tz}, "timestamp": rfc3339(at), "messageId": message_id,
            }),
            2 => track("Signed Up", json!({})),
            3 | 4 => track("Onboarding Step Viewed", step),
            5 => track("Onboarding Step Completed", step),
            6 => track("Onboarding Step Skipped", step),
            7 => track(
                "Profile Completed",
                json!({"completion_percentage": (s.b % 101) as f64 - 0.5 * (s.b % 2) as f64}),
            ),
            8 => track("Onboarding Completed", json!({})),
            9 | 10 => track("Feature Used", json!({"feature": FEATURES[s.b % 4]})),
            11 => track("Button Clicked", json!({"label": LABELS[s.b % 3]})),
            12 | 13 => track("Login Failed", json!({})),
            14 => track(
                "Help Article Viewed",
                json!({"article": format!("a{}", s.b % 5)}),
            ),
            _ => match s.b % 4 {
                0 => track("Email Unsubscribed", json!({})),
                1 => identify(json!({"unsubscribed": s.b % 8 == 1})),
                _ => json!({
                    "type": "page", "userId": user_id, "name": "Pricing",
                    "timestamp": rfc3339(at), "messageId": message_id,
                }),
            },
        }
    } else {
        let (id, name, price) = PRODUCTS[s.a % PRODUCTS.len()];
        let product = json!({"product_id": id, "name": name, "price": price});
        match s.kind {
            0 => identify(json!({"first_name": format!("Cy{}", s.b), "timezone": tz})),
            1 => track("Signed Up", json!({})),
            2..=5 => track("Product Viewed", product),
            6 | 7 => track("Product Added", product),
            8 => track("Cart Viewed", json!({})),
            9 => track("Checkout Started", json!({})),
            10..=12 => track(
                "Order Completed",
                json!({"order_id": format!("o{user}-{n}"), "total": price * (1 + s.b % 3) as f64}),
            ),
            13 => identify(json!({"unsubscribed": s.b % 8 == 1})),
            _ => json!({
                "type": "screen", "userId": user_id, "name": "Home",
                "timestamp": rfc3339(at), "messageId": message_id,
            }),
        }
    }
}

/// Every user's messages, stably sorted by time (users in order at one instant).
fn build(j: &Journeys) -> Result<Vec<(Message, Millis)>, TestCaseError> {
    let rules = &RULES[j.example];
    let start = instant(STARTS[j.start]);
    let mut events = Vec::new();
    for (u, (offset, steps)) in j.users.iter().enumerate() {
        let mut at = start + offset;
        let mut n = 0;
        for (i, s) in steps.iter().enumerate() {
            for r in 0..=s.repeat {
                at += if r == 0 {
                    s.gap
                } else {
                    (7 + 13 * (i + r) as i64 % 50) * SECOND
                };
                n += 1;
                let body = step_json(j.example, j.salt, u, n, at, s);
                let msg = Message::from_json(&body, None)
                    .map_err(|e| TestCaseError::fail(format!("generator made {body}: {e}")))?;
                if let Err(v) = rules.plan.check(&msg) {
                    return Err(TestCaseError::fail(format!(
                        "generator broke the plan with {body}: {v:?}"
                    )));
                }
                prop_assert_eq!(msg.timestamp, Some(at));
                events.push((msg, at));
            }
        }
    }
    events.sort_by_key(|(_, at)| *at);
    Ok(events)
}

fn instant(text: &str) -> Millis {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// The clock runs on 30 days after the last event, as `nudge replay` does by default.
fn until(events: &[(Message, Millis)]) -> Millis {
    events.last().map_or(0, |(_, at)| *at) + 30 * DAY
}

/// The report of the whole replay.
fn measured(example: usize, events: &[(Message, Millis)]) -> nudge_core::insights::Report {
    let mut r = nudge_core::replay::Replay::new(&RULES[example]);
    r.measure(nudge_core::insights::Period::all());
    for (m, at) in events {
        r.event(m, *at);
    }
    r.finish(until(events));
    r.report().expect("measuring")
}

fn sends(example: usize, events: &[(Message, Millis)]) -> Vec<Send> {
    replay_all(&RULES[example], events, until(events)).0
}

/// Drops every later occurrence of a messageId.
fn first_occurrences(events: &[(Message, Millis)]) -> Vec<(Message, Millis)> {
    let mut seen = HashSet::new();
    events
        .iter()
        .filter(|(m, _)| seen.insert(m.message_id.clone()))
        .cloned()
        .collect()
}

fn lines(example: usize, sends: &[Send]) -> Vec<String> {
    sends
        .iter()
        .map(|s| serde_json::to_string(&ReplayLine::from_send(&RULES[example], s)).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn replaying_every_event_twice_gives_the_sends_of_replaying_once(j in journeys()) {
        // given generated journeys, and the same list concatenated with itself
        let once = build(&j)?;
        let mut twice: Vec<_> = once.iter().chain(once.iter()).cloned().collect();
        twice.sort_by_key(|(_, at)| *at);
        // when both are replayed
        let (expected, stats_once) = replay_all(&RULES[j.example], &once, until(&once));
        let (got, stats_twice) = replay_all(&RULES[j.example], &twice, until(&twice));
        // then the sends are the same and every copy counts as a duplicate
        prop_assert_eq!(got, expected);
        prop_assert_eq!(stats_twice.duplicates, stats_once.duplicates + once.len());
    }

    #[test]
    fn duplicates_inserted_anywhere_change_nothing(
        j in journeys(),
        copies in prop::collection::vec((any::<Index>(), any::<Index>()), 1..12),
    ) {
        // given journeys with copies of random events (same messageId and timestamp)
        // inserted anywhere, then sorted stably by time as `nudge replay` sorts its input
        let events = build(&j)?;
        let mut with_copies = events.clone();
        for (which, whereto) in &copies {
            let copy = events[which.index(events.len())].clone();
            let pos = whereto.index(with_copies.len() + 1);
            with_copies.insert(pos, copy);
        }
        with_copies.sort_by_key(|(_, at)| *at);
        // when replayed
        let got = sends(j.example, &with_copies);
        // then the sends are those of the list without the later copies
        // (a copy placed before its original at one instant simply comes first)
        let expected = sends(j.example, &first_occurrences(&with_copies));
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn replay_is_deterministic(j in journeys()) {
        // given journeys, when replayed twice
        let events = build(&j)?;
        let first = lines(j.example, &sends(j.example, &events));
        let second = lines(j.example, &sends(j.example, &events));
        // then the output lines are identical
        prop_assert_eq!(first, second);
    }

    #[test]
    fn every_start_ends_cancelled_sent_suppressed_or_still_waiting(j in journeys()) {
        // given journeys replayed with their report measured
        let events = build(&j)?;
        let report = measured(j.example, &events);
        // then for every trigger the starts add up
        for t in &report.triggers {
            let c = &t.counts;
            let ended = c.cancelled + c.sent + c.suppressed.values().sum::<i64>() + t.waiting;
            prop_assert_eq!(c.started, ended, "trigger {}: {:?}", t.trigger, t);
            prop_assert!(c.converted <= c.sent, "trigger {}: more conversions than sends", t.trigger);
        }
        for f in &report.funnels {
            for pair in f.steps.windows(2) {
                prop_assert!(pair[1].users <= pair[0].users, "funnel {}: {:?}", f.funnel, f.steps);
            }
        }
    }

    #[test]
    fn reports_are_the_same_when_every_event_comes_twice(j in journeys()) {
        let once = build(&j)?;
        let mut twice: Vec<_> = once.iter().chain(once.iter()).cloned().collect();
        twice.sort_by_key(|(_, at)| *at);
        prop_assert_eq!(measured(j.example, &twice), measured(j.example, &once));
    }

    #[test]
    fn sends_come_in_time_order(j in journeys()) {
        // given journeys, when replayed, then send times never go back
        let events = build(&j)?;
        let out = sends(j.example, &events);
        for pair in out.windows(2) {
            prop_assert!(
                pair[0].at <= pair[1].at,
                "{} at {} came before {} at {}",
                pair[0].trigger, pair[0].at, pair[1].trigger, pair[1].at
            );
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_engine_ignores_redelivery_of_a_recent_message(
        j in journeys(),
        back in prop::collection::vec(0..SEEN_IDS, 1..64),
    ) {
        // given one user's messages handed to the engine one by one, each followed by a
        // redelivery of that message or one of the few before it (what the bus does)
        let events = build(&j)?;
        let rules = &RULES[j.example];
        let engine = Engine::new(rules);
        let user = events[0].0.user_key().to_string();
        let mine: Vec<_> = events.iter().filter(|(m, _)| m.user_key() == user).collect();
        let mut state = UserState::new(rules);
        for (i, (m, at)) in mine.iter().enumerate() {
            engine.handle(&mut state, &user, m, *at);
            let k = back[i % back.len()].min(i);
            let (again, again_at) = mine[i - k];
            let before = state.clone();
            // when the earlier message arrives again
            let out = engine.handle(&mut state, &user, again, *again_at);
            // then it is a duplicate that decides nothing and changes nothing
            prop_assert!(out.duplicate, "{} not seen as a duplicate", again.message_id);
            prop_assert!(out.decisions.is_empty(), "{:?}", out.decisions);
            prop_assert_eq!(&state, &before);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile events and stored state
// ---------------------------------------------------------------------------------------------

const MESSAGE_KEYS: [&str; 14] = [
    "type",
    "userId",
    "anonymousId",
    "event",
    "name",
    "properties",
    "traits",
    "context",
    "timestamp",
    "originalTimestamp",
    "previousId",
    "groupId",
    "messageId",
    "sentAt",
];

/// Property and trait names the example rules read, and a few more.
const FIELD_KEYS: [&str; 18] = [
    "step",
    "step_index",
    "completion_percentage",
    "feature",
    "label",
    "article",
    "product_id",
    "name",
    "price",
    "order_id",
    "total",
    "first_name",
    "timezone",
    "unsubscribed",
    "email",
    "items",
    "traits",
    "",
];

const EVENT_NAMES: [&str; 20] = [
    "Signed Up",
    "Onboarding Step Viewed",
    "Onboarding Step Completed",
    "Onboarding Step Skipped",
    "Profile Completed",
    "Onboarding Completed",
    "Feature Used",
    "Button Clicked",
    "Login Failed",
    "Help Article Viewed",
    "Email Unsubscribed",
    "Product Viewed",
    "Product Added",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
    "*",
    "page:",
    "",
    "Signed Up ",
];

fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
        prop::sample::select(EVENT_NAMES.to_vec()).prop_map(str::to_string),
        prop::sample::select(TIMEZONES.to_vec()).prop_map(str::to_string),
        prop::sample::select(vec![
            "Europe/Nowhere",
            "+05:30",
            "Connect Payment Method",
            "profile",
            "true",
            "{{ traits.first_name }}",
            "{% for x in y %}",
            "2026-03-03T09:01:00Z",
            "9999-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
            "-009999-01-01T00:00:00Z",
            "+009999-12-31T23:59:59Z",
            "1970-01-01T00:00:00+14:00",
            "2026-03-29T02:30:00+01:00",
            "2026-13-40T25:61:61Z",
        ])
        .prop_map(str::to_string),
        Just("é".repeat(300)),
        Just("x".repeat(257)),
    ]
}

fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            json!(0),
            json!(-1),
            json!(3),
            json!(5),
            json!(6),
            json!(2.5),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1e308),
            json!(-1e308),
            json!(f64::MIN_POSITIVE),
        ]),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        odd_number(),
        odd_string().prop_map(Value::String),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(FIELD_KEYS.to_vec()).prop_map(str::to_string),
            prop::sample::select(MESSAGE_KEYS.to_vec()).prop_map(str::to_string),
            "\\PC{0,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|e| Value::Object(e.into_iter().collect())),
        ]
    })
}

fn deep(depth: usize, leaf: Value) -> Value {
    (0..depth).fold(leaf, |v, i| {
        if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "step": v })
        }
    })
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => leaf(),
        2 => any_json(),
        1 => (1..120usize, leaf()).prop_map(|(d, l)| deep(d, l)),
    ]
}

fn fields() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(
        (
            prop::sample::select(FIELD_KEYS.to_vec()).prop_map(str::to_string),
            field_value(),
        ),
        0..6,
    )
    .prop_map(|e| e.into_iter().collect())
}

/// A JSON object that is often a nearly valid Segment message with odd parts, sometimes
/// anything at all.
fn hostile_message() -> impl Strategy<Value = Value> {
    let base = prop_oneof![
        Just("track"),
        Just("identify"),
        Just("page"),
        Just("screen"),
        Just("group"),
        Just("alias"),
        Just("Track"),
    ];
    let valid_ish = (
        base,
        prop::sample::select(vec!["u1", "u2", "u1", "u2", "u3", "", "  "]),
        prop::sample::select(EVENT_NAMES.to_vec()),
        fields(),
        fields(),
        fields(),
        0..40 * DAY,
        prop_oneof![
            3 => Just(vec![]),
            1 => prop::collection::vec(
                (
                    prop::sample::select(MESSAGE_KEYS.to_vec()).prop_map(str::to_string),
                    field_value(),
                ),
                1..3,
            ),
        ],
    )
        .prop_map(|(kind, user, event, props, traits, ctx, offset, overlay)| {
            let at = instant("2026-03-28T00:00:00Z") + offset;
            let mut body = json!({
                "type": kind, "userId": user, "event": event, "name": event,
                "previousId": "p", "groupId": "g",
                "properties": props, "traits": traits.clone(),
                "context": {"timezone": TIMEZONES[(offset as usize) % TIMEZONES.len()], "traits": traits},
                "timestamp": rfc3339(at),
            });
            let map = body.as_object_mut().unwrap();
            if !ctx.is_empty() {
                map.insert("context".into(), Value::Object(ctx));
            }
            for (k, v) in overlay {
                map.insert(k, v);
            }
            body
        });
    prop_oneof![
        6 => valid_ish,
        1 => any_json(),
        1 => prop::collection::vec(
            (prop::sample::select(MESSAGE_KEYS.to_vec()).prop_map(str::to_string), field_value()),
            0..10,
        )
        .prop_map(|e| Value::Object(e.into_iter().collect())),
    ]
}

fn roundtrips(rules: &CompiledRules, state: &UserState) -> Result<(), TestCaseError> {
    let bytes = state.encode(rules);
    match UserState::decode(&bytes, rules) {
        Ok(back) => {
            prop_assert_eq!(&back, state, "state changed through encode/decode");
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!(
            "encoded state does not decode: {e}; state {state:?}"
        ))),
    }
}

/// Hands the decisions' sends to the renderer (what delivery and replay do with them).
fn render_all(rules: &CompiledRules, decisions: &[Decision]) {
    for d in decisions {
        if let Decision::Send(s) = d {
            let _ = ReplayLine::from_send(rules, s);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_messages_never_crash_the_engine(
        example in 0..EXAMPLES.len(),
        inputs in prop::collection::vec((hostile_message(), 0..10 * DAY), 1..16),
    ) {
        // given arbitrary JSON objects, when parsed and (if accepted with a timestamp)
        // handed to the engine in the order given, then nothing panics and the state
        // survives an encode/decode roundtrip after every step
        let rules = &RULES[example];
        let engine = Engine::new(rules);
        let mut states: HashMap<String, UserState> = HashMap::new();
        for (body, later) in &inputs {
            let Ok(msg) = Message::from_json(body, None) else { continue };
            let Some(at) = msg.timestamp else { continue };
            let user = msg.user_key().to_string();
            let state = states.entry(user.clone()).or_insert_with(|| UserState::new(rules));
            let out = engine.handle(state, &user, &msg, at);
            render_all(rules, &out.decisions);
            roundtrips(rules, state)?;
            let out = engine.advance(state, &user, at.saturating_add(*later));
            render_all(rules, &out.decisions);
            roundtrips(rules, state)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_crash_state_decoding(
        example in 0..EXAMPLES.len(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = UserState::decode(&bytes, &RULES[example]);
        let mut versioned = vec![1u8];
        versioned.extend_from_slice(&bytes);
        let _ = UserState::decode(&versioned, &RULES[example]);
    }

    #[test]
    fn mutated_stored_state_never_crashes_decoding(
        j in journeys(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        // given a real user's stored state with a few bytes changed, dropped or added
        let events = build(&j)?;
        let rules = &RULES[j.example];
        let engine = Engine::new(rules);
        let mut state = UserState::new(rules);
        let user = events[0].0.user_key().to_string();
        for (m, at) in events.iter().filter(|(m, _)| m.user_key() == user) {
            engine.handle(&mut state, &user, m, *at);
        }
        let mut bytes = state.encode(rules);
        for (i, b, op) in &edits {
            match op {
                0 if !bytes.is_empty() => {
                    let i = i.index(bytes.len());
                    bytes[i] = *b;
                }
                1 if !bytes.is_empty() => {
                    bytes.remove(i.index(bytes.len()));
                }
                _ => bytes.insert(i.index(bytes.len() + 1), *b),
            }
        }
        // when decoded, then it is an error or a state, never a panic
        let _ = UserState::decode(&bytes, rules);
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile rule files
// ---------------------------------------------------------------------------------------------

const YAML_TOKENS: [&str; 48] = [
    "\n",
    "\n",
    "\n",
    "  ",
    "  ",
    "    ",
    "\t",
    "- ",
    ": ",
    ":",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "|",
    ">",
    "%",
    "@",
    "`",
    "?",
    "---\n",
    "...\n",
    "triggers:",
    "segments:",
    "messages:",
    "experiments:",
    "tracking_plan:",
    "policies:",
    "on: ",
    "wait: ",
    "send: ",
    "channel: email",
    "message: ",
    "in_segment: ",
    "count: ",
    "where: ",
    "24h",
    "10 minutes",
    "é",
    "🙂",
    "x",
];

fn yamlish() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(YAML_TOKENS.to_vec()), 0..80)
            .prop_map(|t| t.concat()),
        "\\PC{0,200}",
        any::<String>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapChars(Index),
    DeleteChar(Index),
    InsertChar(Index, char),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let ch = prop_oneof![
        prop::sample::select(vec![
            ':', '-', ' ', '\t', '\n', '{', '}', '[', ']', '"', '\'', '#', '&', '*', '!', '|', '>',
            '%', 'x', '1', 'é', '🙂', '\r', '\u{feff}',
        ]),
        any::<char>(),
    ];
    prop_oneof![
        3 => any::<Index>().prop_map(Mutation::DeleteLine),
        1 => any::<Index>().prop_map(Mutation::DuplicateLine),
        3 => any::<Index>().prop_map(Mutation::SwapChars),
        2 => any::<Index>().prop_map(Mutation::DeleteChar),
        3 => (any::<Index>(), ch).prop_map(|(i, c)| Mutation::InsertChar(i, c)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(text: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    match m {
        Mutation::DeleteLine(i) | Mutation::DuplicateLine(i) => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let i = i.index(lines.len());
            if matches!(m, Mutation::DeleteLine(_)) {
                lines.remove(i);
            } else {
                lines.insert(i, lines[i]);
            }
            return lines.join("\n");
        }
        Mutation::SwapChars(i) if chars.len() >= 2 => {
            let i = i.index(chars.len() - 1);
            chars.swap(i, i + 1);
        }
        Mutation::DeleteChar(i) if !chars.is_empty() => {
            chars.remove(i.index(chars.len()));
        }
        Mutation::InsertChar(i, c) => chars.insert(i.index(chars.len() + 1), *c),
        Mutation::Truncate(i) => chars.truncate(i.index(chars.len() + 1)),
        _ => {}
    }
    chars.into_iter().collect()
}

fn check_errors(files: &[RuleFile]) -> Result<(), TestCaseError> {
    if let Err(errors) = rules::load(files) {
        prop_assert!(!errors.is_empty(), "load failed without reporting an error");
        for e in &errors {
            prop_assert!(e.line >= 1 && e.col >= 1, "error without a position: {e:?}");
            prop_assert!(
                files.iter().any(|f| f.name == e.file),
                "error names no input file: {e:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn yamlish_rule_text_never_crashes_and_errors_have_positions(
        text in yamlish(),
        example in 0..EXAMPLES.len(),
        alone in any::<bool>(),
        which in any::<Index>(),
    ) {
        // given random YAML-ish text, alone or in place of one file of an example
        let mut files = if alone { vec![] } else { FILES[example].clone() };
        let file = RuleFile { name: "random.yaml".into(), text };
        if files.is_empty() {
            files.push(file);
        } else {
            let i = which.index(files.len());
            files[i] = file;
        }
        // when loaded, then it compiles or every error has a place
        check_errors(&files)?;
    }

    #[test]
    fn mutated_example_rules_never_crash_and_errors_have_positions(
        example in 0..EXAMPLES.len(),
        which in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        // given an example with one file mutated (lines deleted, characters swapped, ...)
        let mut files = FILES[example].clone();
        let i = which.index(files.len());
        for m in &mutations {
            files[i].text = mutate(&files[i].text, m);
        }
        // when loaded, then it compiles or every error has a place
        check_errors(&files)?;
    }
}
