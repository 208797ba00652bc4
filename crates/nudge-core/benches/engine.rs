//! Engine benchmarks: what one event costs to parse and to evaluate, and what a user's state
//! costs to store. Run with `cargo bench -p nudge-core --bench engine`; figures and the
//! commands that produced them are recorded in BENCHMARKS.md.
//!
//! `cargo test --benches` runs each benchmark once (criterion's test mode).

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use nudge_core::engine::Engine;
use nudge_core::event::Message;
use nudge_core::insights::Deltas;
use nudge_core::rules::{load, CompiledRules, RuleFile};
use nudge_core::state::UserState;
use nudge_core::time::{parse_instant, Millis};
use serde_json::{json, Value};

/// A realistic Segment track event as analytics.js sends it (422 bytes).
const TRACK_EVENT: &str = r#"{"type":"track","event":"Product Viewed","userId":"user_8f3a2c91","anonymousId":"a1b2c3d4-e5f6-4711-9aab-0c1d2e3f4a5b","messageId":"ajs-next-1795337730123-7c2e9f51a0b4","timestamp":"2026-11-22T10:15:30.123Z","properties":{"product_id":"sku-10442","name":"Merino Wool Crew Sweater","price":89.5},"context":{"library":{"name":"analytics.js","version":"5.2.0"},"ip":"203.0.113.7","locale":"en-US","timezone":"Europe/Berlin"}}"#;

const USER: &str = "user_8f3a2c91";

/// A tiny deterministic generator (benchmarks must see the same inputs every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------------
// The generated rule set: 1,000 triggers, 20 segments, 5 experiments, 1,000 messages, over a
// tracking plan of 200 events (typical fan-out: about 5 triggers per event) or, for the dense
// case, of 50 events (20 triggers per event).

const NOUNS: [&str; 40] = [
    "Report",
    "Dashboard",
    "Invoice",
    "Project",
    "Task",
    "Comment",
    "File",
    "Team",
    "Integration",
    "Workflow",
    "Board",
    "Sprint",
    "Ticket",
    "Document",
    "Folder",
    "Calendar",
    "Meeting",
    "Note",
    "Goal",
    "Milestone",
    "Template",
    "Form",
    "Survey",
    "Campaign",
    "Contact",
    "Deal",
    "Pipeline",
    "Quote",
    "Order",
    "Product",
    "Coupon",
    "Webhook",
    "Token",
    "Role",
    "Workspace",
    "Channel",
    "Message",
    "Alert",
    "Export",
    "Import",
];
/// Events in the typical plan and in the dense one.
const EVENTS_TYPICAL: usize = 200;
const EVENTS_DENSE: usize = 50;
const VERBS: [&str; 5] = ["Created", "Viewed", "Updated", "Shared", "Deleted"];
const CATEGORIES: [&str; 4] = ["basic", "pro", "team", "enterprise"];
const TRIGGERS: usize = 1000;
const SEGMENTS: usize = 20;
const EXPERIMENTS: usize = 5;

fn event_names(count: usize) -> Vec<String> {
    NOUNS
        .iter()
        .flat_map(|n| VERBS.iter().map(move |v| format!("{n} {v}")))
        .take(count)
        .collect()
}

/// The YAML text of the generated rule set, in the shapes the examples use.
fn generated_rules(events: usize) -> String {
    let ev = event_names(events);
    let e = |i: usize| ev[i % ev.len()].as_str();
    let mut y = String::with_capacity(512 * 1024);
    y.push_str("name: generated-1000\nsettings:\n  default_timezone: UTC\n  session_gap: 30m\n");
    y.push_str("tracking_plan:\n  allow_unknown_events: false\n  events:\n");
    for (i, name) in ev.iter().enumerate() {
        let _ = writeln!(y, "    {name}:\n      properties:");
        y.push_str("        item_id: {type: string, required: true}\n");
        y.push_str("        category: {type: string, one_of: [basic, pro, team, enterprise]}\n");
        y.push_str("        amount: {type: number, min: 0}\n");
        if i % 2 == 0 {
            y.push_str("        position: {type: integer, min: 1, max: 10}\n");
            y.push_str("        is_trial: {type: boolean}\n");
        }
    }
    y.push_str("policies:\n  frequency_caps:\n");
    y.push_str("    - {channel: email, max: 3, per: 7d}\n");
    y.push_str("    - {channel: in_app, max: 5, per: session}\n");
    y.push_str("    - {channel: webhook, max: 50, per: 1d}\n");
    y.push_str("  quiet_hours:\n    - {channels: [email], from: \"21:00\", to: \"08:00\", action: defer}\n");
    y.push_str("  exempt_priorities: [urgent]\n  min_gap: 5m\n");

    y.push_str("segments:\n");
    for s in 0..SEGMENTS {
        let (a, b) = (e(s * 3), e(s * 3 + 11));
        let _ = writeln!(y, "  s{s:02}:");
        match s % 4 {
            0 => {
                let _ = writeln!(y, "    all:\n      - ever: {a}\n      - never: {b}");
            }
            1 => {
                let _ = writeln!(y, "    count: {a}\n    within: 7d\n    at_least: 3");
            }
            2 => {
                let _ = writeln!(y, "    any:\n      - time_since: {a}\n        at_least: 2d\n      - idle: {{at_least: 3d}}");
            }
            _ => {
                let _ = writeln!(
                    y,
                    "    all:\n      - traits: {{plan: pro}}\n      - sessions: {{within: 7d, at_least: 2}}\n      - in_segment: s{:02}",
                    s - 3
                );
            }
        }
    }

    y.push_str("experiments:\n");
    for x in 0..EXPERIMENTS {
        let _ = writeln!(
            y,
            "  e{x}:\n    holdout: 10%\n    variants:\n      a: {{weight: 50, wait: {}m}}\n      b: {{weight: 50, wait: {}m}}",
            10 + x,
            20 + x
        );
    }

    let mut channels = Vec::with_capacity(TRIGGERS);
    y.push_str("triggers:\n");
    for i in 0..TRIGGERS {
        let (on, f, g) = (e(i), e(i * 7 + 3), e(i * 13 + 5));
        let f = if f == on { e(i + 1) } else { f };
        let g = if g == on { e(i + 2) } else { g };
        let priority = match i % 10 {
            0 => "urgent",
            1..=3 => "high",
            _ => "low",
        };
        let _ = writeln!(y, "  t{i:04}:\n    priority: {priority}");
        let channel = if i % 250 == 249 {
            // A few `*` triggers, like pause-nudge: every event re-arms the wait.
            let _ = writeln!(
                y,
                "    on: \"*\"\n    if: {{in_segment: s{0:02}}}\n    wait: 5m\n    rearm: true\n    check: {{in_segment: s{0:02}}}\n    once: session",
                i % SEGMENTS
            );
            "in_app"
        } else {
            match i % 12 {
                0 => {
                    let cat = CATEGORIES[i % 4];
                    let _ = writeln!(y, "    on: {{event: {on}, where: {{category: {cat}, amount: {{gte: 20}}}}}}\n    once: user");
                    "in_app"
                }
                1 => {
                    let _ = writeln!(y, "    on: {on}\n    if: {{count: {on}, within: 10m, at_least: 3}}\n    cooldown: 1h");
                    "in_app"
                }
                2 => {
                    let _ = writeln!(y, "    on: {on}\n    if: {{count: {on}, since: {f}, at_least: 5}}\n    once: session");
                    "in_app"
                }
                3 => {
                    let _ = writeln!(
                        y,
                        "    on: {on}\n    if: {{count: {on}, per: item_id, since: {f}, at_least: 4}}\n    once: {{per: item_id}}"
                    );
                    "email"
                }
                4 => {
                    let _ = writeln!(
                        y,
                        "    on: {on}\n    wait: 1h\n    cancel_on:\n      - {{event: {f}, same: [item_id]}}\n      - {g}\n    once: user"
                    );
                    "email"
                }
                5 => {
                    let _ = writeln!(
                        y,
                        "    on: {on}\n    wait: 30m\n    rearm: true\n    cancel_on: [{f}]\n    check: {{never: {g}, within: 30m}}\n    cooldown: 24h"
                    );
                    "in_app"
                }
                6 => {
                    let _ = writeln!(
                        y,
                        "    on: {on}\n    if: {{in_segment: s{:02}}}\n    once: session",
                        i % SEGMENTS
                    );
                    "in_app"
                }
                7 => {
                    let _ = writeln!(
                        y,
                        "    on: {{segment_entered: s{:02}}}\n    once: user",
                        i % SEGMENTS
                    );
                    if i % 24 == 7 {
                        "webhook"
                    } else {
                        "email"
                    }
                }
                8 => {
                    let _ = writeln!(
                        y,
                        "    on: {on}\n    wait: 10m\n    cancel_on: [{f}]\n    experiment: e{}",
                        i % EXPERIMENTS
                    );
                    "in_app"
                }
                9 => {
                    let _ = writeln!(
                        y,
                        "    on: {on}\n    if:\n      all:\n        - time_since: {f}\n          first: true\n          at_most: 3d\n        - traits: {{plan: [pro, team]}}\n    once: user"
                    );
                    "email"
                }
                10 => {
                    let _ = writeln!(
                        y,
                        "    on: {on}\n    wait: 2h\n    check: {{sessions: {{within: 7d, at_least: 2}}}}\n    exit: {{count: {f}, within: 2h, at_least: 1}}\n    once: {{per: category}}"
                    );
                    "webhook"
                }
                _ => {
                    let _ = writeln!(y, "    on: {on}\n    if: {{count: {on}, in_session: true, exactly: 3}}\n    cooldown: 4h");
                    "in_app"
                }
            }
        };
        let _ = writeln!(y, "    send: {{channel: {channel}, message: m{i:04}}}");
        channels.push(channel);
    }

    y.push_str("messages:\n");
    for (i, channel) in channels.iter().enumerate() {
        let _ = writeln!(y, "  m{i:04}:\n    channel: {channel}");
        match *channel {
            "email" => {
                let _ = writeln!(
                    y,
                    "    email:\n      subject: \"{{{{ traits.first_name | default: 'there' }}}}, news about {{{{ properties.item_id | default: 'your work' }}}}\"\n      text: |-\n        Hi {{{{ traits.first_name | default: 'there' }}}},\n        message {i} has something for you."
                );
            }
            "webhook" => {
                let _ = writeln!(
                    y,
                    "    webhook:\n      url: \"https://hooks.example.com/nudge/{i}\"\n      body: {{user: \"{{{{ user_id }}}}\", trigger: \"{{{{ trigger }}}}\"}}"
                );
            }
            _ => {
                let _ = writeln!(y, "    in_app:\n      title: Tip {i}\n      body: \"{{{{ traits.first_name | default: 'Hi' }}}}, here is tip {i}.\"");
            }
        }
    }
    y
}

/// One event of the generated plan, as a full Segment message (context and all).
fn generated_event(rng: &mut Lcg, names: &[String]) -> Message {
    let i = rng.below(names.len() as u64) as usize;
    let mut props = json!({
        "item_id": format!("item-{:04}", rng.below(200)),
        "category": CATEGORIES[rng.below(4) as usize],
        "amount": (rng.below(20_000) as f64) / 100.0,
    });
    if i % 2 == 0 {
        props["position"] = json!(1 + rng.below(10));
        props["is_trial"] = json!(rng.below(3) == 0);
    }
    track(&names[i], props)
}

fn track(event: &str, properties: Value) -> Message {
    let v = json!({
        "type": "track",
        "event": event,
        "userId": USER,
        "messageId": "placeholder-0000000000000000",
        "timestamp": "2026-11-22T10:15:30.123Z",
        "properties": properties,
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.0"},
            "locale": "en-US",
            "timezone": "Europe/Berlin",
            "ip": "203.0.113.7"
        }
    });
    Message::from_json(&v, None).expect("valid track event")
}

fn identify() -> Message {
    let v = json!({
        "type": "identify",
        "userId": USER,
        "messageId": "identify-0001",
        "timestamp": "2026-11-01T08:00:00Z",
        "traits": {"first_name": "Alice", "email": "alice@example.com", "timezone": "Europe/Berlin", "plan": "pro"}
    });
    Message::from_json(&v, None).expect("valid identify")
}

/// Time between consecutive events: seconds within a session, hours between sessions.
fn gaps(rng: &mut Lcg, n: usize) -> Vec<Millis> {
    (0..n)
        .map(|k| {
            if k % 150 == 149 {
                10 * 3_600_000 + rng.below(3_600_000) as i64 // a night
            } else if k % 25 == 24 {
                2 * 3_600_000 + rng.below(3 * 3_600_000) as i64 // between sessions
            } else {
                15_000 + rng.below(75_000) as i64
            }
        })
        .collect()
}

/// A user's event stream replayed endlessly at ever later instants with fresh message ids, so
/// the state stays realistic and the dedupe ring never short-circuits.
struct Stream {
    messages: Vec<Message>,
    gaps: Vec<Millis>,
    next: usize,
    at: Millis,
    counter: u64,
}

impl Stream {
    fn new(messages: Vec<Message>, gaps: Vec<Millis>, start: Millis) -> Self {
        Stream {
            messages,
            gaps,
            next: 0,
            at: start,
            counter: 0,
        }
    }

    /// Hands the next message (with a new id) and its instant.
    fn step(&mut self) -> (&Message, Millis) {
        let i = self.next % self.messages.len();
        self.next += 1;
        self.counter += 1;
        self.at += self.gaps[i % self.gaps.len()];
        let msg = &mut self.messages[i];
        msg.message_id.clear();
        let _ = write!(msg.message_id, "bench-{:016x}", self.counter);
        (&self.messages[i], self.at)
    }

    /// Feeds `n` events to the engine (warm-up), returning how many sends it decided.
    fn feed(&mut self, engine: &Engine, state: &mut UserState, n: usize) -> usize {
        let mut sends = 0;
        for _ in 0..n {
            let (msg, at) = self.step();
            sends += engine.handle(state, USER, msg, at).sends().count();
        }
        sends
    }
}

fn load_generated(events: usize) -> CompiledRules {
    let text = generated_rules(events);
    load(&[RuleFile {
        name: "generated.yaml".into(),
        text,
    }])
    .unwrap_or_else(|errors| {
        let shown: Vec<String> = errors.iter().take(20).map(|e| e.to_string()).collect();
        panic!("generated rules do not compile:\n{}", shown.join("\n"))
    })
}

fn load_example(dir: &str) -> CompiledRules {
    load_example_files(dir, true)
}

/// An example as it was before goals and funnels: without `goals.yaml` and `goal:` lines.
fn load_example_without_goals(dir: &str) -> CompiledRules {
    let rules = load_example_files(dir, false);
    assert!(rules.goals.is_empty() && rules.funnels.is_empty());
    rules
}

fn load_example_files(dir: &str, goals: bool) -> CompiledRules {
    let root = format!("{}/../../examples/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<RuleFile> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{root}: {e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| goals || !p.ends_with("goals.yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable rule file");
            let text = match goals {
                true => text,
                false => text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("goal:"))
                    .map(|l| format!("{l}\n"))
                    .collect(),
            };
            RuleFile {
                name: p.display().to_string(),
                text,
            }
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    load(&files).unwrap_or_else(|errors| panic!("{dir}: {errors:?}"))
}

fn start() -> Millis {
    parse_instant("2026-11-01T08:00:00Z").expect("valid instant")
}

/// A generated-rules user who has already sent `warm` events.
fn generated_user(rules: &CompiledRules, warm: usize) -> (UserState, Stream) {
    let engine = Engine::new(rules);
    let names = event_names(rules.plan.events.len());
    let mut rng = Lcg(42);
    let messages: Vec<Message> = (0..2000)
        .map(|_| generated_event(&mut rng, &names))
        .collect();
    let gaps = gaps(&mut rng, 1999);
    let mut state = UserState::new(rules);
    engine.handle(&mut state, USER, &identify(), start());
    let mut stream = Stream::new(messages, gaps, start());
    stream.feed(&engine, &mut state, warm);
    (state, stream)
}

/// The saas-onboarding mix after sign-up: steps, features, buttons, help, the odd failed login.
fn saas_user(rules: &CompiledRules, warm: usize) -> (UserState, Stream) {
    let engine = Engine::new(rules);
    let mut rng = Lcg(7);
    let steps = ["account", "profile", "team", "integrations", "payment"];
    let features = [
        "dashboards",
        "reports",
        "automations",
        "api",
        "exports",
        "alerts",
        "search",
        "sharing",
    ];
    let labels = [
        "Invite Teammate",
        "Connect Payment Method",
        "Create Report",
        "Open Settings",
        "Upgrade",
    ];
    let messages: Vec<Message> = (0..2000)
        .map(|_| {
            let s = rng.below(5) as usize;
            match rng.below(20) {
                0..=3 => track(
                    "Feature Used",
                    json!({"feature": features[rng.below(8) as usize]}),
                ),
                4..=6 => track(
                    "Onboarding Step Viewed",
                    json!({"step": steps[s], "step_index": s + 1}),
                ),
                7..=8 => track(
                    "Onboarding Step Completed",
                    json!({"step": steps[s], "step_index": s + 1}),
                ),
                9 => track(
                    "Onboarding Step Skipped",
                    json!({"step": steps[s], "step_index": s + 1}),
                ),
                10..=12 => track(
                    "Button Clicked",
                    json!({"label": labels[rng.below(5) as usize]}),
                ),
                13..=14 => track(
                    "Help Article Viewed",
                    json!({"article": format!("getting-started-{}", rng.below(30))}),
                ),
                15 => track("Login Failed", json!({})),
                16 => track(
                    "Profile Completed",
                    json!({"completion_percentage": 40 + rng.below(61)}),
                ),
                _ => track(
                    "Feature Used",
                    json!({"feature": features[rng.below(8) as usize]}),
                ),
            }
        })
        .collect();
    let gaps = gaps(&mut rng, 1999);
    signed_up_user(&engine, messages, gaps, warm)
}

/// A user who identified and signed up, then sent `warm` of `messages` (with `gaps`); the
/// stream goes on with the rest.
fn signed_up_user(
    engine: &Engine,
    messages: Vec<Message>,
    gaps: Vec<Millis>,
    warm: usize,
) -> (UserState, Stream) {
    let mut state = UserState::new(engine.rules);
    engine.handle(&mut state, USER, &identify(), start());
    engine.handle(
        &mut state,
        USER,
        &track("Signed Up", json!({})),
        start() + 1000,
    );
    let mut stream = Stream::new(messages, gaps, start() + 2000);
    stream.feed(engine, &mut state, warm);
    (state, stream)
}

/// A shopper of the e-commerce example: browsing a catalogue of 600 products, adding to the
/// cart, checking out and ordering now and then.
fn ecommerce_user(rules: &CompiledRules, warm: usize) -> (UserState, Stream) {
    let engine = Engine::new(rules);
    let mut rng = Lcg(11);
    let messages: Vec<Message> = (0..2000)
        .map(|_| {
            let p = rng.below(600);
            let product = json!({
                "product_id": format!("sku-{p}"),
                "name": format!("Product number {p} in linen"),
                "price": 5.0 + (p % 90) as f64,
            });
            match rng.below(20) {
                0..=10 => track("Product Viewed", product),
                11..=14 => track("Product Added", product),
                15..=16 => track("Cart Viewed", json!({})),
                17..=18 => track("Checkout Started", json!({})),
                _ => track(
                    "Order Completed",
                    json!({"order_id": format!("o-{}", rng.below(1_000_000)), "total": 20.0 + rng.below(200) as f64}),
                ),
            }
        })
        .collect();
    let gaps = gaps(&mut rng, 1999);
    signed_up_user(&engine, messages, gaps, warm)
}

/// Prints what the measured rule set and state look like, and what 200 more events decide.
fn describe(
    name: &str,
    rules: &CompiledRules,
    engine: &Engine,
    state: &mut UserState,
    stream: &mut Stream,
) {
    let before = state.clone();
    let mut decisions = 0;
    let mut sends = 0;
    let mut suppressed = 0;
    let mut matched = 0;
    for _ in 0..200 {
        let (msg, at) = stream.step();
        if let Some(name) = msg.activity_name() {
            matched += rules.triggers_for(&name).count();
        }
        let out = engine.handle(state, USER, msg, at);
        decisions += out.decisions.len();
        for s in out.sends() {
            if s.reason.is_none() {
                sends += 1;
            } else {
                suppressed += 1;
            }
        }
    }
    eprintln!(
        "{name}: {} triggers, {} slots, {} segments (tracked: {}); state before: {} waits, {} bytes; \
         per event over 200 events: {:.1} triggers indexed, {:.2} decisions, {:.2} sent, {:.2} suppressed",
        rules.triggers.len(),
        rules.slots.len(),
        rules.segments.len(),
        rules.track_segments,
        before.waits.len(),
        before.encode(rules).len(),
        matched as f64 / 200.0,
        decisions as f64 / 200.0,
        sends as f64 / 200.0,
        suppressed as f64 / 200.0,
    );
}

// ---------------------------------------------------------------------------------------------

fn parse_event_json(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_event_json");
    g.bench_function("serde_json_value", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(TRACK_EVENT)).expect("valid JSON"))
    });
    let value: Value = serde_json::from_str(TRACK_EVENT).expect("valid JSON");
    assert_eq!(TRACK_EVENT.len(), 422);
    g.bench_function("message_from_json", |b| {
        b.iter(|| Message::from_json(black_box(&value), None).expect("valid message"))
    });
    g.finish();
}

fn evaluate_1000_triggers(c: &mut Criterion) {
    for (name, events) in [
        ("evaluate_1000_triggers", EVENTS_TYPICAL),
        ("evaluate_1000_triggers_dense", EVENTS_DENSE),
    ] {
        let rules = load_generated(events);
        assert_eq!(rules.triggers.len(), TRIGGERS);
        let engine = Engine::new(&rules);
        let (mut state, mut stream) = generated_user(&rules, 400);
        describe(name, &rules, &engine, &mut state, &mut stream);
        c.bench_function(name, |b| {
            b.iter(|| {
                let (msg, at) = stream.step();
                engine.handle(&mut state, USER, black_box(msg), at)
            })
        });
    }
}

fn evaluate_example_saas(c: &mut Criterion) {
    let rules = load_example("saas-onboarding");
    let engine = Engine::new(&rules);
    let (mut state, mut stream) = saas_user(&rules, 400);
    describe(
        "evaluate_example_saas",
        &rules,
        &engine,
        &mut state,
        &mut stream,
    );
    c.bench_function("evaluate_example_saas", |b| {
        b.iter(|| {
            let (msg, at) = stream.step();
            engine.handle(&mut state, USER, black_box(msg), at)
        })
    });
}

/// The examples with their goals and funnels against the same examples without them, the
/// engine alone and with the report counting evaluate adds (`Deltas::record`).
fn goals_and_funnels(c: &mut Criterion) {
    type User = fn(&CompiledRules, usize) -> (UserState, Stream);
    let examples: [(&str, &str, User); 2] = [
        ("saas", "saas-onboarding", saas_user),
        ("ecommerce", "ecommerce", ecommerce_user),
    ];
    let mut g = c.benchmark_group("goals_and_funnels");
    for (short, dir, user) in examples {
        for (variant, rules) in [
            ("without", load_example_without_goals(dir)),
            ("with", load_example(dir)),
        ] {
            let engine = Engine::new(&rules);
            let (mut state, mut stream) = user(&rules, 400);
            g.bench_function(format!("{short}/{variant}"), |b| {
                b.iter(|| {
                    let (msg, at) = stream.step();
                    engine.handle(&mut state, USER, black_box(msg), at)
                })
            });
            let (mut state, mut stream) = user(&rules, 400);
            g.bench_function(format!("{short}/{variant}/counted"), |b| {
                b.iter(|| {
                    let (msg, at) = stream.step();
                    let out = engine.handle(&mut state, USER, black_box(msg), at);
                    let mut counts = Deltas::default();
                    counts.record(USER, &out, at);
                    counts
                })
            });
        }
    }
    g.finish();
}

fn state_encode_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_encode_decode");
    let saas = load_example("saas-onboarding");
    let generated = load_generated(EVENTS_DENSE);
    let (saas_state, _) = saas_user(&saas, 6000);
    let (gen_state, _) = generated_user(&generated, 6000);
    for (name, rules, state) in [
        ("saas_heavy", &saas, &saas_state),
        ("generated_1000_heavy", &generated, &gen_state),
    ] {
        let bytes = state.encode(rules);
        assert_eq!(&UserState::decode(&bytes, rules).expect("decodes"), state);
        eprintln!("state_encode_decode/{name}: {} bytes encoded", bytes.len());
        g.bench_function(name, |b| {
            b.iter(|| {
                let bytes = black_box(state).encode(rules);
                UserState::decode(black_box(&bytes), rules).expect("decodes")
            })
        });
        // Decoding alone, as a load of user state does it.
        g.bench_function(format!("{name}/decode"), |b| {
            b.iter_batched_ref(
                || bytes.clone(),
                |bytes| UserState::decode(black_box(bytes), rules).expect("decodes"),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    parse_event_json,
    evaluate_1000_triggers,
    evaluate_example_saas,
    goals_and_funnels,
    state_encode_decode
);
criterion_main!(benches);
