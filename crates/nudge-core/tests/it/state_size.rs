//! State size of a heavy user: a month of 200 events a day through the engine must keep the
//! stored state under 1 KB (DESIGN.md: one strongly consistent read is 4 KB, each KB written
//! is a write unit). Prints the peaks so they can be recorded in BENCHMARKS.md:
//! `cargo test -p nudge-core --test it state_size -- --nocapture`.

use nudge_core::engine::{Engine, Outcome};
use nudge_core::event::Message;
use nudge_core::rules::{self, CompiledRules};
use nudge_core::state::UserState;
use nudge_core::time::{parse_instant, Millis};
use serde_json::{json, Value};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

const DAYS: i64 = 30;
const EVENTS_PER_DAY: usize = 200;
/// The budget asserted at every day's end and after every event and timer.
const LIMIT: usize = 1024;
const USER: &str = "user_5d1f0c7e2a9b";
const TIMEZONE: &str = "Europe/Berlin";

/// A small deterministic generator: the month is the same on every run.
struct Rng(u64);

impl Rng {
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
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn load_example(name: &str) -> CompiledRules {
    let files = crate::example_files(name);
    rules::load(&files).unwrap_or_else(|errors| panic!("{name} does not load: {errors:?}"))
}

/// What the month of a user produces, as a list of (instant, Segment message JSON).
struct Month {
    events: Vec<(Millis, Value)>,
    /// Index of the first event of each day.
    day_starts: Vec<usize>,
}

fn rfc3339(at: Millis) -> String {
    jiff::Timestamp::from_millisecond(at)
        .expect("instant in range")
        .to_string()
}

fn context() -> Value {
    json!({
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "locale": "de-DE",
        "timezone": TIMEZONE,
        "ip": "198.51.100.23",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
    })
}

fn track(at: Millis, n: usize, event: &str, properties: Value) -> (Millis, Value) {
    let v = json!({
        "type": "track",
        "event": event,
        "userId": USER,
        "messageId": format!("ajs-next-{at}-{n:06}"),
        "timestamp": rfc3339(at),
        "properties": properties,
        "context": context(),
    });
    (at, v)
}

fn identify(at: Millis, n: usize) -> (Millis, Value) {
    let v = json!({
        "type": "identify",
        "userId": USER,
        "messageId": format!("ajs-next-{at}-{n:06}"),
        "timestamp": rfc3339(at),
        "traits": {
            "first_name": "Katharina",
            "email": "katharina.hoffmann@example.com",
            "timezone": TIMEZONE,
            "plan": "business",
        },
        "context": context(),
    });
    (at, v)
}

/// Instants of one day's events: 200 spread over 6-9 sessions between 07:00 and 23:00 local
/// (UTC+1 in November), with 5-120 s between events of a session and the sessions apart by
/// more than the 30-minute session gap.
fn day_instants(rng: &mut Rng, day_start: Millis) -> Vec<Millis> {
    let sessions = 6 + rng.below(4) as usize;
    let mut sizes = vec![EVENTS_PER_DAY / sessions; sessions];
    for size in sizes.iter_mut().take(EVENTS_PER_DAY % sessions) {
        *size += 1;
    }
    // 07:00 local is 06:00 UTC; sessions start in successive slots of the waking day.
    let slot = 16 * HOUR / sessions as i64;
    let mut out = Vec::with_capacity(EVENTS_PER_DAY);
    for (s, size) in sizes.iter().enumerate() {
        let mut at = day_start + 6 * HOUR + s as i64 * slot + rng.below(20 * MINUTE as u64) as i64;
        for _ in 0..*size {
            out.push(at);
            at += 5 * SECOND + rng.below(115 * SECOND as u64) as i64;
        }
    }
    out
}

/// A heavy SaaS user: signs up, works through onboarding over the first days, then uses the
/// product all day; revisits setup steps, reads help, now and then fails to log in.
fn saas_month(start: Millis) -> Month {
    const STEPS: [&str; 5] = ["account", "profile", "team", "integrations", "payment"];
    const FEATURES: [&str; 12] = [
        "dashboards",
        "reports",
        "automations",
        "api_keys",
        "csv_export",
        "alerts",
        "search",
        "sharing",
        "comments",
        "calendar_sync",
        "saved_views",
        "webhooks",
    ];
    const LABELS: [&str; 8] = [
        "Invite Teammate",
        "Connect Payment Method",
        "Create Report",
        "Open Settings",
        "Upgrade Plan",
        "Download Invoice",
        "Start Trial",
        "Contact Sales",
    ];
    let mut rng = Rng(0x5aa5);
    let mut events = Vec::new();
    let mut day_starts = Vec::new();
    let mut n = 0;
    let mut completed = false;
    for day in 0..DAYS {
        day_starts.push(events.len());
        let instants = day_instants(&mut rng, start + day * DAY);
        for (k, &at) in instants.iter().enumerate() {
            n += 1;
            let s = rng.below(5) as usize;
            let step = json!({"step": STEPS[s], "step_index": s + 1});
            let e = if k == 0 {
                identify(at, n)
            } else if day == 0 && k == 1 {
                track(at, n, "Signed Up", json!({}))
            } else if !completed && day == 2 && k == 150 {
                completed = true;
                track(at, n, "Onboarding Completed", json!({}))
            } else {
                // Onboarding steps dominate the first days, product use the rest.
                let onboarding = if completed { 6 } else { 35 };
                match rng.below(100) {
                    r if r < onboarding / 2 => track(at, n, "Onboarding Step Viewed", step),
                    r if r < onboarding * 3 / 4 => track(at, n, "Onboarding Step Completed", step),
                    r if r < onboarding => track(at, n, "Onboarding Step Skipped", step),
                    r if r < onboarding + 2 => track(
                        at,
                        n,
                        "Profile Completed",
                        json!({"completion_percentage": 50 + rng.below(51)}),
                    ),
                    r if r < onboarding + 8 => {
                        let article = format!("how-to-{}-{}", rng.pick(&FEATURES), rng.below(40));
                        track(at, n, "Help Article Viewed", json!({"article": article}))
                    }
                    r if r < onboarding + 20 => {
                        track(at, n, "Button Clicked", json!({"label": rng.pick(&LABELS)}))
                    }
                    r if r < onboarding + 22 => track(at, n, "Login Failed", json!({})),
                    _ => track(
                        at,
                        n,
                        "Feature Used",
                        json!({"feature": rng.pick(&FEATURES)}),
                    ),
                }
            };
            events.push(e);
        }
    }
    Month { events, day_starts }
}

/// A catalogue of 600 products with names of 20-40 characters and shop prices.
fn catalogue(rng: &mut Rng) -> Vec<(String, String, f64)> {
    const ADJECTIVES: [&str; 10] = [
        "Classic",
        "Organic",
        "Lightweight",
        "Handmade",
        "Vintage",
        "Waterproof",
        "Slim-Fit",
        "Recycled",
        "Premium",
        "Everyday",
    ];
    const MATERIALS: [&str; 10] = [
        "Merino Wool",
        "Cotton",
        "Linen",
        "Leather",
        "Bamboo",
        "Ceramic",
        "Stainless Steel",
        "Walnut",
        "Canvas",
        "Cashmere",
    ];
    const NOUNS: [&str; 12] = [
        "Crew Sweater",
        "Travel Backpack",
        "Pour-Over Coffee Set",
        "Desk Lamp",
        "Rain Jacket",
        "Chef's Knife",
        "Throw Blanket",
        "Running Shorts",
        "Water Bottle",
        "Card Holder",
        "Table Runner",
        "Ankle Boots",
    ];
    (0..600)
        .map(|i| {
            let name = format!(
                "{} {} {}",
                rng.pick(&ADJECTIVES),
                rng.pick(&MATERIALS),
                rng.pick(&NOUNS)
            );
            let name = if name.len() < 20 {
                format!("{name} (Set of 2)")
            } else {
                name
            };
            let name: String = name.chars().take(40).collect();
            let cents = 499 + rng.below(30_000);
            (
                format!("prod_{:05}", 10_000 + i * 7),
                name,
                cents as f64 / 100.0,
            )
        })
        .collect()
}

/// A heavy shopper: browses many products (favourites come back often), adds to the cart,
/// looks at the cart, starts checkouts and orders every few days.
fn ecommerce_month(start: Millis) -> Month {
    let mut rng = Rng(0xeca1);
    let products = catalogue(&mut rng);
    let mut events = Vec::new();
    let mut day_starts = Vec::new();
    let mut n = 0;
    let mut orders = 0;
    for day in 0..DAYS {
        day_starts.push(events.len());
        let instants = day_instants(&mut rng, start + day * DAY);
        // A handful of favourites a day get viewed again and again; the rest is browsing.
        let favourites: Vec<usize> = (0..8)
            .map(|_| rng.below(products.len() as u64) as usize)
            .collect();
        for (k, &at) in instants.iter().enumerate() {
            n += 1;
            let p = if rng.chance(40) {
                *rng.pick(&favourites)
            } else {
                rng.below(products.len() as u64) as usize
            };
            let (id, name, price) = &products[p];
            let product = json!({"product_id": id, "name": name, "price": price});
            let e = if k == 0 {
                identify(at, n)
            } else if day == 0 && k == 1 {
                track(at, n, "Signed Up", json!({}))
            } else {
                match rng.below(100) {
                    0..=64 => track(at, n, "Product Viewed", product),
                    65..=81 => track(at, n, "Product Added", product),
                    82..=91 => track(at, n, "Cart Viewed", json!({})),
                    92..=97 => track(at, n, "Checkout Started", json!({})),
                    // About one order every other day.
                    _ if rng.chance(25) => {
                        orders += 1;
                        let total = (2_000 + rng.below(40_000)) as f64 / 100.0;
                        track(
                            at,
                            n,
                            "Order Completed",
                            json!({"order_id": format!("ord_{:08}", 4_200_000 + orders), "total": total}),
                        )
                    }
                    _ => track(at, n, "Cart Viewed", json!({})),
                }
            };
            events.push(e);
        }
    }
    Month { events, day_starts }
}

/// Sizes seen over the month.
#[derive(Debug, Default)]
struct Sizes {
    /// Encoded state at each day's end.
    day_ends: Vec<usize>,
    /// Largest encoded state after any event or timer.
    peak_any: usize,
    /// Where the bytes of the largest day's-end state go.
    breakdown: Vec<(String, usize)>,
    sends: usize,
    suppressed: usize,
    timers_fired: usize,
}

impl Sizes {
    /// The largest day's-end size and its day (1-based).
    fn peak_day_end(&self) -> (usize, usize) {
        self.day_ends
            .iter()
            .enumerate()
            .map(|(d, b)| (*b, d + 1))
            .max_by_key(|(b, d)| (*b, std::cmp::Reverse(*d)))
            .unwrap_or((0, 0))
    }
}

fn count(outcome: &Outcome, sizes: &mut Sizes) {
    for s in outcome.sends() {
        if s.reason.is_none() {
            sizes.sends += 1;
        } else {
            sizes.suppressed += 1;
        }
    }
}

/// What each part of the state adds to the encoding: the size drop when it alone is emptied.
fn breakdown(rules: &CompiledRules, state: &UserState) -> Vec<(String, usize)> {
    let total = state.encode(rules).len();
    let without = |f: &dyn Fn(&mut UserState)| {
        let mut s = state.clone();
        f(&mut s);
        total - s.encode(rules).len()
    };
    let mut parts = vec![
        ("seen message ids".to_string(), without(&|s| s.seen.clear())),
        ("traits".to_string(), without(&|s| s.traits.clear())),
        ("pending waits".to_string(), without(&|s| s.waits.clear())),
        (
            "caps, sends, segments, assignments".to_string(),
            without(&|s| {
                s.caps.iter_mut().for_each(|c| *c = Default::default());
                s.last_sends.clear();
                s.segments.clear();
                s.assignments.clear();
            }),
        ),
        (
            "open goal windows of sends".to_string(),
            without(&|s| s.attributions.clear()),
        ),
        (
            "open goal windows of experiment arms".to_string(),
            without(&|s| s.enrollments.clear()),
        ),
        (
            "funnel progress".to_string(),
            without(&|s| s.funnels.clear()),
        ),
    ];
    for (i, spec) in rules.slots.iter().enumerate() {
        parts.push((
            format!("slot: {}", spec.label),
            without(&|s| s.slots[i] = Default::default()),
        ));
    }
    for (i, t) in rules.triggers.iter().enumerate() {
        parts.push((
            format!("trigger memo: {}", t.id),
            without(&|s| s.triggers[i] = Default::default()),
        ));
    }
    parts.retain(|(_, b)| *b > 0);
    parts.sort_by_key(|p| std::cmp::Reverse(p.1));
    parts
}

/// Runs the month through the engine as the evaluate handler and the timer loop would: due
/// timers fire before each event, and at each day's end the state is encoded and checked.
fn run_month(example: &str, rules: &CompiledRules, month: &Month, start: Millis) -> Sizes {
    let engine = Engine::new(rules);
    let mut state = UserState::new(rules);
    let mut wake: Option<Millis> = None;
    let mut sizes = Sizes::default();
    // Fires every timer due strictly before `limit`, as the timer loop does before an event.
    let fire_before =
        |state: &mut UserState, wake: &mut Option<Millis>, sizes: &mut Sizes, limit: Millis| {
            let mut rounds = 0;
            while let Some(due) = wake.filter(|w| *w < limit) {
                let out = engine.advance(state, USER, due);
                count(&out, sizes);
                sizes.timers_fired += 1;
                sizes.peak_any = sizes.peak_any.max(state.encode(rules).len());
                assert!(
                    out.next_wake.is_none_or(|next| next > due),
                    "{example}: next wake {:?} not after {due}",
                    out.next_wake
                );
                *wake = out.next_wake;
                rounds += 1;
                assert!(rounds < 10_000, "{example}: timers keep firing at {due}");
            }
        };
    for day in 0..DAYS {
        let from = month.day_starts[day as usize];
        let to = month
            .day_starts
            .get(day as usize + 1)
            .copied()
            .unwrap_or(month.events.len());
        for (at, json) in &month.events[from..to] {
            fire_before(&mut state, &mut wake, &mut sizes, *at);
            let msg = Message::from_json(json, None)
                .unwrap_or_else(|e| panic!("{example}: bad event {json}: {e}"));
            let out = engine.handle(&mut state, USER, &msg, *at);
            assert!(!out.duplicate, "{example}: message ids are unique");
            count(&out, &mut sizes);
            wake = out.next_wake;
            sizes.peak_any = sizes.peak_any.max(state.encode(rules).len());
        }
        // Overnight: whatever falls due before midnight UTC fires, then the day is stored.
        fire_before(&mut state, &mut wake, &mut sizes, start + (day + 1) * DAY);
        let bytes = state.encode(rules);
        let decoded = UserState::decode(&bytes, rules)
            .unwrap_or_else(|e| panic!("{example} day {}: {e}", day + 1));
        assert_eq!(
            decoded,
            state,
            "{example} day {}: decode(encode(state)) differs",
            day + 1
        );
        if bytes.len() > sizes.peak_day_end().0 {
            sizes.breakdown = breakdown(rules, &state);
        }
        sizes.day_ends.push(bytes.len());
    }
    sizes
}

/// Prints the figures, then checks the budget at every day's end.
fn report_and_check(example: &str, events: usize, s: &Sizes) {
    let (peak, peak_day) = s.peak_day_end();
    println!(
        "state_size {example}: {events} events over {DAYS} days; peak at a day's end {peak} bytes (day {peak_day}), \
         peak after any event or timer {} bytes, last day {} bytes; {} sent, {} suppressed, {} timer wake-ups",
        s.peak_any,
        s.day_ends.last().copied().unwrap_or(0),
        s.sends,
        s.suppressed,
        s.timers_fired
    );
    println!("state_size {example}: day-end sizes {:?}", s.day_ends);
    println!("state_size {example}: where the bytes of the peak go (size drop when emptied):");
    for (part, bytes) in &s.breakdown {
        println!("  {bytes:5}  {part}");
    }
    let over: Vec<String> = s
        .day_ends
        .iter()
        .enumerate()
        .filter(|(_, b)| **b >= LIMIT)
        .map(|(d, b)| format!("day {}: {b}", d + 1))
        .collect();
    assert!(
        over.is_empty(),
        "{example}: encoded state reaches the {LIMIT}-byte budget on {} of {DAYS} days ({})",
        over.len(),
        over.join(", ")
    );
    assert!(
        s.peak_any < LIMIT,
        "{example}: encoded state reached {} bytes after some event or timer (budget {LIMIT})",
        s.peak_any
    );
}

fn month_start() -> Millis {
    parse_instant("2026-11-01T00:00:00Z").expect("valid instant")
}

#[test]
fn saas_onboarding_heavy_user_month_stays_under_1kb() {
    let rules = load_example("saas-onboarding");
    let start = month_start();
    let month = saas_month(start);
    assert_eq!(month.events.len(), DAYS as usize * EVENTS_PER_DAY);
    let sizes = run_month("saas-onboarding", &rules, &month, start);
    report_and_check("saas-onboarding", month.events.len(), &sizes);
    assert!(sizes.sends > 0, "the month sends something");
}

#[test]
fn ecommerce_heavy_user_month_stays_under_1kb() {
    let rules = load_example("ecommerce");
    let start = month_start();
    let month = ecommerce_month(start);
    assert_eq!(month.events.len(), DAYS as usize * EVENTS_PER_DAY);
    let sizes = run_month("ecommerce", &rules, &month, start);
    report_and_check("ecommerce", month.events.len(), &sizes);
    assert!(sizes.sends > 0, "the month sends something");
}
