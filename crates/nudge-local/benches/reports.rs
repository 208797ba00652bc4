//! How long a report takes to read from `nudge serve`'s SQLite store: 30 days of counters for
//! 100 triggers (two variants each, every field and latency bucket a real trigger fills), 5
//! funnels of 5 steps with a breakdown, 3 experiments, and the users' sketches, every hour.
//! The counters go in through the store's own write path (`save_many` with counter changes),
//! one merged write per hour.
//!
//! Users: the sketches are dense once a few tens of thousands of users are seen (every one
//! of the 4,096 registers set), and a report reads them whole; 50,000 distinct users an hour
//! make them as dense as a million would, so the read costs what it would with a million.
//!
//! `cargo bench -p nudge-local --bench reports`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use nudge_core::insights::{observe, Deltas, Field, Key, Period, Report, Scope};
use nudge_core::rules::{load, CompiledRules, RuleFile};
use nudge_local::store::SqliteStore;
use nudge_service::ports::{ReportStore, SaveRequest, UserStore, UserWrite};

const TRIGGERS: usize = 100;
const FUNNELS: usize = 5;
const EXPERIMENTS: usize = 3;
const DAYS: i64 = 30;
const HOUR_MS: i64 = 3_600_000;
/// 2026-11-01T00:00:00Z in hours since the epoch.
const FIRST_HOUR: i64 = 493_272;

fn rules() -> CompiledRules {
    let mut y = String::from("goals:\n  done: Done\nexperiments:\n");
    for e in 0..EXPERIMENTS {
        y += &format!("  exp-{e}:\n    holdout: 10%\n    variants: {{a: {{}}, b: {{}}}}\n    goal: {{id: done, within: 3d}}\n");
    }
    y += "triggers:\n";
    for t in 0..TRIGGERS {
        let exp = match t % 10 {
            0..=2 => format!("\n    experiment: exp-{}", t % 10),
            _ => String::new(),
        };
        y += &format!(
            "  trigger-{t}:\n    on: Event {t}\n    wait: 1h\n    goal: {{id: done, within: 1d}}{exp}\n    send: {{channel: email, message: m}}\n"
        );
    }
    y += "funnels:\n";
    for f in 0..FUNNELS {
        y += &format!("  funnel-{f}:\n    within: 7d\n    breakdown: {{trait: plan}}\n    steps: [Step 1, Step 2, Step 3, Step 4, Step 5]\n");
    }
    y += "messages:\n  m:\n    channel: email\n    email: {subject: s, text: t}\n    variants:\n      - {name: b, email: {subject: s2, text: t}}\n";
    load(&[RuleFile {
        name: "rules.yaml".into(),
        text: y,
    }])
    .expect("generated rules compile")
}

/// One hour of counters: every field of every trigger and variant, the funnels' steps and
/// the experiments' arms, and 50,000 users.
fn hour(h: i64) -> Deltas {
    let mut d = Deltas::default();
    let mut add = |k: Key, n: i64| {
        d.counts.insert((k, h), n);
    };
    add(Key::new(Scope::Totals, "", "", "", Field::Events), 40_000);
    for t in 0..TRIGGERS {
        let name = format!("trigger-{t}");
        for variant in ["default", "b"] {
            let key = |field| Key::new(Scope::Trigger, name.as_str(), variant, "email", field);
            for field in [
                Field::Started,
                Field::Cancelled,
                Field::Sent,
                Field::Delivered,
                Field::Failed,
                Field::Opened,
                Field::Clicked,
                Field::Dismissed,
                Field::Converted,
                Field::Value,
                Field::Suppressed("frequency_cap".into()),
                Field::Suppressed("quiet_hours".into()),
                Field::Suppressed("cooldown".into()),
            ] {
                add(key(field), 7);
            }
            // A wait of an hour and some spread: a dozen latency buckets in use.
            for b in 0..12 {
                add(key(Field::Latency(90 + b)), 3);
            }
        }
    }
    for f in 0..FUNNELS {
        for plan in ["free", "team", "pro"] {
            for step in 0..5 {
                let key = |field| {
                    Key::new(
                        Scope::Funnel,
                        format!("funnel-{f}"),
                        plan,
                        step.to_string(),
                        field,
                    )
                };
                add(key(Field::Users), 50);
                for b in 0..8 {
                    add(key(Field::FromPrevious(60 + b)), 5);
                }
            }
        }
    }
    for e in 0..EXPERIMENTS {
        for arm in ["a", "b", "holdout"] {
            for field in [Field::Assigned, Field::Converted, Field::Value] {
                add(
                    Key::new(Scope::Experiment, format!("exp-{e}"), arm, "", field),
                    11,
                );
            }
        }
    }
    d.users = (0..50_000)
        .map(|u| (h, observe(&format!("user-{}", (h * 7919 + u) % 1_000_000))))
        .collect();
    d
}

fn reports(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = std::env::temp_dir().join(format!("nudge-bench-reports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteStore::open(&dir.join("nudge.db")).expect("store");
    let rules = rules();
    let hours = DAYS * 24;
    let started = std::time::Instant::now();
    rt.block_on(async {
        for h in FIRST_HOUR..FIRST_HOUR + hours {
            let counts = hour(h);
            let user = format!("writer-{h}");
            let write = UserWrite {
                state: b"s",
                outbox: &[],
                message_ids: &[],
                now: h * HOUR_MS,
                counts: &counts,
            };
            store
                .save_many(&[SaveRequest {
                    user_id: &user,
                    expected: None,
                    write,
                }])
                .await
                .expect("write counters");
        }
    });
    let size = std::fs::metadata(dir.join("nudge.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "reports: {hours} hours of counters written in {:.1} s; database {} MB",
        started.elapsed().as_secs_f64(),
        size / 1_000_000
    );
    // 30 days that do not start at midnight: 29 whole days read from daily rows, 48 hours
    // from hourly ones.
    let period = Period {
        from: FIRST_HOUR + 5,
        to: FIRST_HOUR + 5 + hours - 5,
    };
    let sums = rt.block_on(store.report_sums(period)).expect("read");
    let report = Report::build(&rules, period, &sums);
    eprintln!(
        "reports: {} counters summed, {} users estimated, {} bytes of JSON",
        sums.counts.len(),
        report.users,
        serde_json::to_vec(&report).map(|v| v.len()).unwrap_or(0)
    );
    assert_eq!(report.triggers.len(), TRIGGERS);
    assert!(report.triggers[0].counts.sent > 0);
    c.bench_function("report_30_days_100_triggers", |b| {
        b.iter(|| {
            let sums = rt
                .block_on(store.report_sums(black_box(period)))
                .expect("read");
            let report = Report::build(&rules, period, &sums);
            serde_json::to_vec(&report).expect("json")
        })
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = reports
}
criterion_main!(benches);
