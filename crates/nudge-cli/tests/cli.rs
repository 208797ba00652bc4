//! The `nudge` binary end to end: `validate` error reports and the `replay` output contract
//! (shared/DESIGN.md, "Contracts").

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn saas() -> PathBuf {
    example("saas-onboarding")
}

fn ecommerce() -> PathBuf {
    example("ecommerce")
}

fn nudge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nudge"))
        .args(args)
        .output()
        .expect("the nudge binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "nudge-cli-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.file(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A temp copy of an example rule set.
fn copy_of(example: &Path, tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    for entry in std::fs::read_dir(example).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.file(p.file_name().unwrap().to_str().unwrap())).unwrap();
        }
    }
    dir
}

/// Replaces the one line of `file` that reads exactly `line` and returns its line number.
fn replace_line(dir: &TempDir, file: &str, line: &str, with: &str) -> usize {
    let p = dir.file(file);
    let text = std::fs::read_to_string(&p).unwrap();
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == line)
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(hits.len(), 1, "`{line}` should be one line of {file}");
    let new: Vec<&str> = text
        .lines()
        .map(|l| if l == line { with } else { l })
        .collect();
    std::fs::write(&p, new.join("\n") + "\n").unwrap();
    hits[0]
}

/// The 1-based line of `file` that reads exactly `line`.
fn line_of(dir: &TempDir, file: &str, line: &str) -> usize {
    let text = std::fs::read_to_string(dir.file(file)).unwrap();
    text.lines()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("`{line}` is not in {file}"))
        + 1
}

/// The 1-based column of `needle` in `line` (counted in characters).
fn col_of(line: &str, needle: &str) -> usize {
    line[..line.find(needle).expect("needle in line")]
        .chars()
        .count()
        + 1
}

/// Runs `nudge validate` on `dir`, expects a failure, and returns stderr's lines.
fn validate_fails(dir: &TempDir) -> Vec<String> {
    let out = nudge(&["validate", "--rules", s(dir.path())]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "validate should fail; stderr:\n{err}"
    );
    assert_ne!(out.status.code(), Some(0));
    err.lines().map(str::to_string).collect()
}

/// Asserts an error line starting with `FILE:LINE:COL: ` whose message contains every part.
fn assert_reported(errors: &[String], file: &Path, line: usize, col: usize, parts: &[&str]) {
    let prefix = format!("{}:{line}:{col}: ", file.display());
    let hit = errors.iter().find(|e| e.starts_with(&prefix));
    let Some(hit) = hit else {
        panic!("no error at `{prefix}`; got:\n{}", errors.join("\n"));
    };
    for part in parts {
        assert!(hit.contains(part), "`{hit}` should mention `{part}`");
    }
}

// ---------------------------------------------------------------------------------------------
// nudge validate
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_passes_on_both_examples() {
    for dir in [saas(), ecommerce()] {
        let out = nudge(&["validate", "--rules", s(&dir)]);
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains(": ok ("));
    }
}

#[test]
fn validate_reports_a_yaml_syntax_error_where_it_is() {
    let dir = copy_of(&saas(), "syntax");
    let bad = "    cooldown: 1h: x";
    let line = replace_line(&dir, "triggers.yaml", "    cooldown: 1h", bad);
    let errors = validate_fails(&dir);
    // the second `:` on the line is the mistake
    assert_reported(
        &errors,
        &dir.file("triggers.yaml"),
        line,
        col_of(bad, ": x"),
        &["YAML syntax error", "mapping values are not allowed"],
    );
}

#[test]
fn validate_reports_an_unknown_trigger_key_with_a_suggestion() {
    let dir = copy_of(&saas(), "key");
    let line = replace_line(&dir, "triggers.yaml", "    rearm: true", "    rearn: true");
    let errors = validate_fails(&dir);
    assert_reported(
        &errors,
        &dir.file("triggers.yaml"),
        line,
        5,
        &["unknown key `rearn`", "pause-nudge", "did you mean `rearm`"],
    );
}

#[test]
fn validate_reports_an_event_missing_from_the_tracking_plan() {
    let dir = copy_of(&saas(), "event");
    let bad = "    on: Login Faild";
    let line = replace_line(&dir, "triggers.yaml", "    on: Login Failed", bad);
    let errors = validate_fails(&dir);
    assert_reported(
        &errors,
        &dir.file("triggers.yaml"),
        line,
        col_of(bad, "Login Faild"),
        &[
            "`Login Faild`",
            "not in the tracking plan",
            "`Login Failed`",
        ],
    );
}

#[test]
fn validate_reports_an_unknown_segment_in_in_segment() {
    let dir = copy_of(&saas(), "segment");
    let bad = "    if: {in_segment: in_onboardin}";
    let line = replace_line(
        &dir,
        "triggers.yaml",
        "    if: {in_segment: in_onboarding}",
        bad,
    );
    let errors = validate_fails(&dir);
    assert_reported(
        &errors,
        &dir.file("triggers.yaml"),
        line,
        col_of(bad, "in_onboardin}"),
        &[
            "unknown segment `in_onboardin`",
            "did you mean `in_onboarding`",
        ],
    );
}

#[test]
fn validate_reports_an_unknown_goal_with_the_closest_one() {
    let dir = copy_of(&saas(), "goal");
    let good = "    goal: {id: profile_completed, within: 3d}";
    let bad = "    goal: {id: profile_complete, within: 3d}";
    let line = replace_line(&dir, "triggers.yaml", good, bad);
    let errors = validate_fails(&dir);
    assert_reported(
        &errors,
        &dir.file("triggers.yaml"),
        line,
        col_of(bad, "profile_complete,"),
        &[
            "unknown goal `profile_complete`",
            "did you mean `profile_completed`",
        ],
    );
}

#[test]
fn validate_reports_a_goal_without_its_window_and_a_misspelt_key() {
    let dir = copy_of(&saas(), "goal-window");
    let good =
        "    goal: {id: onboarding_completed, within: 7d}   # each assigned user counted once";
    let bad = "    goal: {id: onboarding_completed, witin: 7d}";
    let line = replace_line(&dir, "triggers.yaml", good, bad);
    let errors = validate_fails(&dir);
    let file = dir.file("triggers.yaml");
    assert_reported(
        &errors,
        &file,
        line,
        col_of(bad, "{id"),
        &["goal needs `within`"],
    );
    assert_reported(
        &errors,
        &file,
        line,
        col_of(bad, "witin"),
        &["unknown key `witin`", "did you mean `within`"],
    );
}

#[test]
fn validate_reports_two_controls_and_a_bad_minimum_effect() {
    let dir = copy_of(&saas(), "control");
    let file = dir.file("triggers.yaml");
    replace_line(
        &dir,
        "triggers.yaml",
        "      a: {weight: 50, wait: 10m}",
        "      a: {weight: 50, wait: 10m, control: true}",
    );
    let bad_b = "      b: {weight: 50, wait: 20m, control: true}";
    let b_line = replace_line(
        &dir,
        "triggers.yaml",
        "      b: {weight: 50, wait: 20m}",
        bad_b,
    );
    let bad_mde = "    min_detectable_effect: 120%";
    let mde_line = replace_line(
        &dir,
        "triggers.yaml",
        "    holdout: 10%",
        &format!("    holdout: 10%\n{bad_mde}"),
    ) + 1;
    let errors = validate_fails(&dir);
    assert_reported(
        &errors,
        &file,
        b_line + 1, // below the inserted min_detectable_effect line
        col_of(bad_b, "b:"),
        &["two `control: true` variants"],
    );
    assert_reported(
        &errors,
        &file,
        mde_line,
        col_of(bad_mde, "120%"),
        &["min_detectable_effect must be a share"],
    );
}

#[test]
fn validate_reports_funnel_mistakes_in_one_pass() {
    let dir = copy_of(&ecommerce(), "funnel");
    let file = dir.file("goals.yaml");
    let bad_value = "    value: totl";
    let value_line = replace_line(&dir, "goals.yaml", "    value: total", bad_value);
    let bad_step = "      - Product Addd";
    let step_line = replace_line(&dir, "goals.yaml", "      - Product Added", bad_step);
    let bad_breakdown = "    breakdown: {segment: nw}";
    let breakdown_line = replace_line(
        &dir,
        "goals.yaml",
        "    breakdown: {segment: new}",
        bad_breakdown,
    );
    let errors = validate_fails(&dir);
    assert_reported(
        &errors,
        &file,
        value_line,
        col_of(bad_value, "totl"),
        &["no property `totl`", "did you mean `total`"],
    );
    assert_reported(
        &errors,
        &file,
        step_line,
        col_of(bad_step, "Product Addd"),
        &[
            "`Product Addd`",
            "not in the tracking plan",
            "`Product Added`",
        ],
    );
    assert_reported(
        &errors,
        &file,
        breakdown_line,
        col_of(bad_breakdown, "nw}"),
        &["unknown segment `nw`", "did you mean `new`"],
    );
}

#[test]
fn validate_reports_a_filter_value_of_the_wrong_type() {
    let dir = copy_of(&saas(), "type");
    let bad = "    where: {step_index: \"three\"}";
    let line = replace_line(
        &dir,
        "segments.yaml",
        "    where: {step_index: {gte: 2}}",
        bad,
    );
    let errors = validate_fails(&dir);
    // reported at the property the filter names
    assert_reported(
        &errors,
        &dir.file("segments.yaml"),
        line,
        col_of(bad, "step_index"),
        &["step_index", "integer", "\"three\""],
    );
}

#[test]
fn validate_reports_a_bad_duration() {
    let dir = copy_of(&saas(), "duration");
    let bad = "    wait: 10 minutes";
    let line = replace_line(&dir, "triggers.yaml", "    wait: 2m", bad);
    let errors = validate_fails(&dir);
    let file = dir.file("triggers.yaml");
    assert_reported(
        &errors,
        &file,
        line,
        col_of(bad, "10 minutes"),
        &["wait", "`10 minutes`"],
    );
    // the hint must be a duration one could write, not the input with a unit glued on
    let hit = errors
        .iter()
        .find(|e| e.starts_with(&format!("{}:{line}:", file.display())))
        .unwrap();
    assert!(
        !hit.contains("`10 minutess`") && !hit.contains("`10 minutesm`"),
        "nonsensical suggestion: {hit}"
    );
}

#[test]
fn validate_reports_an_unknown_message() {
    let dir = copy_of(&saas(), "message");
    let bad = "    send: {channel: email, message: profile_remindr}";
    let line = replace_line(
        &dir,
        "triggers.yaml",
        "    send: {channel: email, message: profile_reminder}",
        bad,
    );
    let errors = validate_fails(&dir);
    assert_reported(
        &errors,
        &dir.file("triggers.yaml"),
        line,
        col_of(bad, "profile_remindr"),
        &["unknown message `profile_remindr`", "`profile_reminder`"],
    );
}

#[test]
fn validate_reports_a_channel_mismatch_between_trigger_and_message() {
    let dir = copy_of(&saas(), "channel");
    let bad = "    send: {channel: in_app, message: profile_reminder}";
    let line = replace_line(
        &dir,
        "triggers.yaml",
        "    send: {channel: email, message: profile_reminder}",
        bad,
    );
    let errors = validate_fails(&dir);
    assert_reported(
        &errors,
        &dir.file("triggers.yaml"),
        line,
        col_of(bad, "in_app"),
        &["in_app", "`profile_reminder`", "email"],
    );
}

#[test]
fn validate_reports_a_trigger_id_defined_in_two_files() {
    let dir = copy_of(&saas(), "duplicate");
    let first = line_of(&dir, "triggers.yaml", "  billing-tip:");
    // sorts after triggers.yaml, so this is the second definition
    let extra = dir.write(
        "zz-extra.yaml",
        "triggers:\n  billing-tip:\n    on: Signed Up\n    send: {channel: in_app, message: billing_tip}\n",
    );
    let errors = validate_fails(&dir);
    assert_reported(&errors, &extra, 2, 3, &["`billing-tip`", "defined twice"]);
    // the first definition is in another file: the message must say which
    let hit = errors
        .iter()
        .find(|e| e.starts_with(&format!("{}:2:3:", extra.display())))
        .unwrap();
    assert!(
        hit.contains(&format!("triggers.yaml:{first}")),
        "`{hit}` should point at triggers.yaml:{first}, the first definition"
    );
}

#[test]
fn validate_reports_a_segment_cycle() {
    let dir = copy_of(&saas(), "cycle");
    // in_onboarding -> hesitant -> in_onboarding
    let never = "      - never: Onboarding Completed";
    let path = dir.file("segments.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        &format!("{never}\n\n  explorer:"),
        &format!("{never}\n      - in_segment: hesitant\n\n  explorer:"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let errors = validate_fails(&dir);
    for segment in ["in_onboarding", "hesitant"] {
        let line = line_of(&dir, "segments.yaml", &format!("  {segment}:"));
        assert_reported(
            &errors,
            &path,
            line,
            3,
            &[&format!("`{segment}`"), "refers to itself", "in_segment"],
        );
    }
}

#[test]
fn validate_reports_every_mistake_and_counts_them() {
    // given two independent mistakes in two files
    let dir = copy_of(&saas(), "several");
    let a = replace_line(&dir, "triggers.yaml", "    rearm: true", "    rearn: true");
    let b = replace_line(
        &dir,
        "segments.yaml",
        "    where: {step_index: {gte: 2}}",
        "    where: {step_index: \"three\"}",
    );
    let errors = validate_fails(&dir);
    assert_reported(&errors, &dir.file("triggers.yaml"), a, 5, &["rearn"]);
    assert_reported(&errors, &dir.file("segments.yaml"), b, 13, &["three"]);
    assert!(errors.last().unwrap().starts_with("2 errors"), "{errors:?}");
}

// ---------------------------------------------------------------------------------------------
// Event generation
// ---------------------------------------------------------------------------------------------

/// splitmix64: a small deterministic generator, so test inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const TIMEZONES: [&str; 5] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
];

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// One JSON line per event for `users` users (half SaaS, half e-commerce journeys), every
/// timestamp distinct; lines are in no particular order (users one after the other).
fn generate(seed: u64, users: usize) -> Vec<String> {
    const STEPS: [&str; 5] = ["account", "profile", "team", "integrations", "payment"];
    const PRODUCTS: [(&str, &str, f64); 3] = [
        ("p1", "Blue Mug", 12.5),
        ("p2", "Tea Pot", 30.0),
        ("p3", "Spoon", 2.0),
    ];
    let mut rng = Rng(seed);
    let mut taken = std::collections::HashSet::new();
    let mut lines = Vec::new();
    let base = ms("2026-03-20T00:00:00Z");
    for u in 0..users {
        let user = format!("user-{u}");
        let mut at = base + rng.below(14 * 86_400) as i64 * 1000;
        let count = 8 + rng.below(5) as usize;
        for n in 0..count {
            at += match rng.below(10) {
                0..=3 => 1 + rng.below(120),
                4..=6 => 60 * (1 + rng.below(60)),
                7..=8 => 3600 * (1 + rng.below(30)),
                _ => 86_400 * (1 + rng.below(4)),
            } as i64
                * 1000;
            let mut t = at + rng.below(1000) as i64;
            while !taken.insert(t) {
                t += 1;
            }
            let saas_user = u % 2 == 0;
            let (event, properties) = if n == 0 {
                ("", json!({}))
            } else if n == 1 {
                ("Signed Up", json!({}))
            } else if saas_user {
                let i = rng.below(5) as usize;
                match rng.below(12) {
                    0..=2 => (
                        "Onboarding Step Viewed",
                        json!({"step": STEPS[i], "step_index": i + 1}),
                    ),
                    3 => (
                        "Onboarding Step Completed",
                        json!({"step": STEPS[i], "step_index": i + 1}),
                    ),
                    4 => (
                        "Onboarding Step Skipped",
                        json!({"step": STEPS[i], "step_index": i + 1}),
                    ),
                    5 => (
                        "Profile Completed",
                        json!({"completion_percentage": rng.below(101)}),
                    ),
                    6 => ("Onboarding Completed", json!({})),
                    7 | 8 => (
                        "Feature Used",
                        json!({"feature": *rng.pick(&["reports", "api"])}),
                    ),
                    9 => (
                        "Button Clicked",
                        json!({"label": *rng.pick(&["Connect Payment Method", "Invite"])}),
                    ),
                    10 => ("Login Failed", json!({})),
                    _ => ("Help Article Viewed", json!({"article": "setup"})),
                }
            } else {
                let (id, name, price) = *rng.pick(&PRODUCTS);
                let product = json!({"product_id": id, "name": name, "price": price});
                match rng.below(9) {
                    0..=3 => ("Product Viewed", product),
                    4 | 5 => ("Product Added", product),
                    6 => ("Cart Viewed", json!({})),
                    7 => ("Checkout Started", json!({})),
                    _ => (
                        "Order Completed",
                        json!({"order_id": format!("o-{u}-{n}"), "total": price}),
                    ),
                }
            };
            let line = if event.is_empty() {
                json!({
                    "type": "identify", "userId": user, "messageId": format!("m-{u}-{n}"),
                    "traits": {"first_name": format!("Name{u}"), "timezone": *rng.pick(&TIMEZONES)},
                    "timestamp": rfc3339(t),
                })
            } else {
                json!({
                    "type": "track", "userId": user, "messageId": format!("m-{u}-{n}"),
                    "event": event, "properties": properties, "timestamp": rfc3339(t),
                })
            };
            lines.push(line.to_string());
        }
    }
    lines
}

fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

fn write_lines(dir: &TempDir, name: &str, lines: &[String]) -> PathBuf {
    dir.write(name, &(lines.join("\n") + "\n"))
}

fn replay(rules: &Path, extra: &[&str], events: &Path) -> Output {
    let mut args = vec!["replay", "--rules", s(rules)];
    args.extend_from_slice(extra);
    args.push(s(events));
    nudge(&args)
}

fn replay_ok(rules: &Path, extra: &[&str], events: &Path) -> Output {
    let out = replay(rules, extra, events);
    assert!(
        out.status.success(),
        "replay failed ({:?}): {}",
        out.status,
        text(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------------------------------------
// nudge replay
// ---------------------------------------------------------------------------------------------

const KEYS: [&str; 11] = [
    "at",
    "user_id",
    "trigger",
    "outcome",
    "channel",
    "message",
    "variant",
    "experiment",
    "reason",
    "subject",
    "body",
];

const REASONS: [&str; 7] = [
    "frequency_cap",
    "quiet_hours",
    "cooldown",
    "holdout",
    "unsubscribed",
    "priority",
    "exit_condition",
];

fn is_utc_second(at: &str) -> bool {
    let b = at.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && at.parse::<jiff::Timestamp>().is_ok()
}

/// The keys of a JSON object in the order written (serde_json's map sorts them).
fn keys_in_order(line: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    struct KeysVisitor;
    impl<'de> serde::de::Visitor<'de> for KeysVisitor {
        type Value = Keys;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                keys.push(k);
            }
            Ok(Keys(keys))
        }
    }
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(KeysVisitor)
        }
    }
    match serde_json::from_str::<Keys>(line) {
        Ok(k) => k.0,
        Err(e) => panic!("not one JSON object: {line}: {e}"),
    }
}

#[test]
fn replay_writes_one_contract_line_per_decision_in_time_order() {
    let dir = TempDir::new("contract");
    let events = write_lines(&dir, "events.jsonl", &generate(7, 300));
    for rules in [saas(), ecommerce()] {
        let out = replay_ok(&rules, &[], &events);
        let stdout = text(&out.stdout);
        assert!(stdout.ends_with('\n'));
        let mut last = String::new();
        let mut outcomes = std::collections::BTreeSet::new();
        let mut n = 0;
        for line in stdout.lines() {
            n += 1;
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object: {line}: {e}"));
            let obj = v.as_object().expect("a JSON object");
            assert_eq!(keys_in_order(line), KEYS, "{line}");
            let at = obj["at"].as_str().expect("at is a string");
            assert!(
                is_utc_second(at),
                "`at` is not YYYY-MM-DDTHH:MM:SSZ: {line}"
            );
            assert!(*at >= *last, "{at} came after {last}");
            last = at.to_string();
            for k in ["user_id", "trigger", "channel", "message", "variant"] {
                assert!(obj[k].is_string(), "{k}: {line}");
            }
            assert!(matches!(
                obj["channel"].as_str(),
                Some("email" | "in_app" | "webhook")
            ));
            assert!(obj["experiment"].is_null() || obj["experiment"].is_string());
            match obj["outcome"].as_str() {
                Some("sent") => {
                    assert!(obj["reason"].is_null(), "{line}");
                    let body = obj["body"].as_str().expect("a sent line has a body");
                    assert!(!body.contains("[render error"), "{line}");
                    assert!(obj["subject"].is_string(), "{line}");
                }
                Some("suppressed") => {
                    let reason = obj["reason"]
                        .as_str()
                        .expect("a suppressed line has a reason");
                    assert!(REASONS.contains(&reason), "{line}");
                }
                other => panic!("outcome {other:?}: {line}"),
            }
            outcomes.insert(format!("{}/{}", obj["trigger"], obj["outcome"]));
        }
        // the generated journeys reach several triggers of each example
        assert!(n > 100, "{}: only {n} lines", rules.display());
        assert!(outcomes.len() >= 4, "{outcomes:?}");
    }
}

#[test]
fn replay_at_scale_is_deterministic_and_independent_of_line_order() {
    // given ~3,000 users x ~10 events, every timestamp distinct
    let dir = TempDir::new("scale");
    let lines = generate(42, 3_000);
    assert!(lines.len() >= 29_000, "{}", lines.len());
    let events = write_lines(&dir, "events.jsonl", &lines);
    let mut shuffled = lines.clone();
    shuffle(&mut shuffled, &mut Rng(99));
    let shuffled = write_lines(&dir, "shuffled.jsonl", &shuffled);
    for rules in [saas(), ecommerce()] {
        // when replayed twice, and once from the shuffled file
        let first = replay_ok(&rules, &[], &events).stdout;
        let second = replay_ok(&rules, &[], &events).stdout;
        let from_shuffled = replay_ok(&rules, &[], &shuffled).stdout;
        // then the output is byte-identical
        assert!(first.len() > 10_000, "{}", rules.display());
        assert!(first == second, "{}: two runs differ", rules.display());
        assert!(
            first == from_shuffled,
            "{}: shuffling the input changed the output",
            rules.display()
        );
    }
}

#[test]
fn stdin_streams_like_a_file_and_an_unordered_stdin_is_sorted() {
    let dir = TempDir::new("stdin");
    let lines = generate(8, 300);
    let events = write_lines(&dir, "events.jsonl", &lines);
    let mut shuffled = lines.clone();
    shuffle(&mut shuffled, &mut Rng(7));
    let from_file = replay_ok(&saas(), &[], &events).stdout;
    for input in [lines, shuffled] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nudge"))
            .args(["replay", "--rules", s(&saas()), "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("nudge runs");
        let mut stdin = child.stdin.take().expect("stdin");
        let body = input.join("\n") + "\n";
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(body.as_bytes()).expect("written")
        });
        let out = child.wait_with_output().expect("nudge ends");
        writer.join().expect("writer");
        assert!(out.status.success());
        assert!(out.stdout == from_file, "stdin replayed differently");
    }
}

#[test]
fn a_report_trusts_the_order_and_starts_over_sorted_when_a_late_line_breaks_it() {
    // given a history in time order, and the same with one line moved late (the report
    // streams the file first and finds out only there), each with rejected lines before and
    // after the line moved
    let dir = TempDir::new("report-order");
    let mut lines = generate(5, 400);
    lines.insert(10, "not json".to_string());
    lines.push(r#"{"type":"track","event":"No User","timestamp":"2026-03-02T09:00:00Z"}"#.into());
    let ordered = write_lines(&dir, "ordered.jsonl", &lines);
    let mut moved = lines.clone();
    let early = moved.remove(200);
    let at = moved.len() - 2;
    moved.insert(at, early);
    let moved = write_lines(&dir, "moved.jsonl", &moved);
    let report = |events: &Path| {
        nudge(&[
            "report",
            "--rules",
            s(&saas()),
            "--format",
            "json",
            s(events),
        ])
    };
    let (a, b) = (report(&ordered), report(&moved));
    // then both report the same, and every rejected line is reported once
    assert_eq!(a.status.code(), Some(1), "rejected lines exit 1");
    assert_eq!(b.status.code(), Some(1));
    assert!(!a.stdout.is_empty());
    assert!(a.stdout == b.stdout, "the moved line changed the report");
    let stderr = String::from_utf8_lossy(&b.stderr);
    let rejected: Vec<&str> = stderr.lines().filter(|l| l.contains("rejected")).collect();
    assert_eq!(rejected.len(), 2, "{stderr}");
    assert!(
        rejected[0].contains(":11: rejected: malformed JSON"),
        "{stderr}"
    );
}

#[test]
fn a_line_that_is_not_utf8_is_rejected_by_number_and_the_rest_replayed() {
    // given a history with a line holding bytes that are not UTF-8 (a truncated character in
    // a user id), in time order and shuffled
    let dir = TempDir::new("not-utf8");
    let lines = generate(11, 200);
    let good = write_lines(&dir, "good.jsonl", &lines);
    let with_bad = |name: &str, lines: &[String]| {
        let mut body: Vec<u8> = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i == 30 {
                body.extend_from_slice(
                    b"{\"type\":\"track\",\"userId\":\"u\xc3\",\"event\":\"E\",\"messageId\":\"bad\",\"timestamp\":\"2026-03-02T09:00:00Z\"}\n",
                );
            }
            body.extend_from_slice(l.as_bytes());
            body.push(b'\n');
        }
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("written");
        path
    };
    // (in time order, a file streams as it is; shuffled, it is sorted; stdin is spooled)
    let mut in_order = lines.clone();
    in_order.sort_by_key(|l| {
        let v: serde_json::Value = serde_json::from_str(l).expect("generated JSON");
        v["timestamp"].as_str().map(str::to_owned)
    });
    let mut shuffled = lines.clone();
    shuffle(&mut shuffled, &mut Rng(3));
    let in_order = with_bad("in-order.jsonl", &in_order);
    let unordered = with_bad("shuffled.jsonl", &shuffled);
    let expected = replay_ok(&saas(), &[], &good).stdout;
    let rejected = ":31: rejected: not UTF-8 text (invalid bytes at column 28)";
    for events in [&in_order, &unordered] {
        // when replayed and reported
        let out = replay(&saas(), &[], events);
        let report = nudge(&["report", "--rules", s(&saas()), s(events)]);
        // then the line is rejected by its number, and everything else goes through
        for o in [&out, &report] {
            assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
            assert!(text(&o.stderr).contains(rejected), "{}", text(&o.stderr));
        }
        assert!(
            out.stdout == expected,
            "the other lines replayed differently"
        );
    }
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{}' | '{}' replay --rules '{}' -",
            s(&in_order),
            env!("CARGO_BIN_EXE_nudge"),
            s(&saas())
        ))
        .output()
        .expect("sh runs");
    assert!(
        text(&piped.stderr).contains(":31: rejected: not UTF-8"),
        "{}",
        text(&piped.stderr)
    );
    assert!(piped.stdout == expected, "stdin replayed differently");
}

#[test]
fn a_named_pipe_is_read_once_and_replayed_like_the_file() {
    let dir = TempDir::new("fifo");
    let lines = generate(9, 100);
    let events = write_lines(&dir, "events.jsonl", &lines);
    let from_file = replay_ok(&saas(), &[], &events).stdout;
    let fifo = dir.path().join("events.fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let body = lines.join("\n") + "\n";
    let target = fifo.clone();
    let writer = std::thread::spawn(move || std::fs::write(target, body).expect("written"));
    let out = replay_ok(&saas(), &[], &fifo);
    writer.join().expect("writer");
    assert!(out.stdout == from_file, "the pipe replayed differently");
}

#[test]
fn a_message_id_counts_once_within_seven_days_and_anew_after() {
    let dir = TempDir::new("dedup-window");
    let track = |user: &str, at: &str| {
        json!({"type": "track", "userId": user, "event": "Login Failed", "messageId": "same",
               "timestamp": at})
        .to_string()
    };
    // One messageId sent for two users: within 7 days the second is the same message, later
    // it is a new one (a user's own last messageIds are also kept in their state).
    for (name, second, duplicates) in [
        ("within.jsonl", "2026-03-08T09:00:00Z", "duplicates 1"),
        ("later.jsonl", "2026-03-09T09:00:01Z", "duplicates 0"),
    ] {
        let events = write_lines(
            &dir,
            name,
            &[track("a", "2026-03-02T09:00:00Z"), track("b", second)],
        );
        let out = replay_ok(&saas(), &["--stats"], &events);
        assert!(
            text(&out.stderr).contains(duplicates),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn duplicate_message_ids_count_once() {
    // given a file, and the same file with 50 repeated lines anywhere
    let dir = TempDir::new("dups");
    let lines = generate(5, 400);
    let plain = write_lines(&dir, "plain.jsonl", &lines);
    let mut rng = Rng(3);
    let mut with_dups = lines.clone();
    for _ in 0..50 {
        let copy = rng.pick(&lines).clone();
        let pos = rng.below(with_dups.len() as u64 + 1) as usize;
        with_dups.insert(pos, copy);
    }
    let dups = write_lines(&dir, "dups.jsonl", &with_dups);
    for rules in [saas(), ecommerce()] {
        // when both are replayed with --stats
        let a = replay_ok(&rules, &["--stats"], &plain);
        let b = replay_ok(&rules, &["--stats"], &dups);
        // then the output is the same and the copies are reported as duplicates
        assert!(
            a.stdout == b.stdout,
            "{}: duplicates changed the output",
            rules.display()
        );
        let stats_a = text(&a.stderr);
        let stats_b = text(&b.stderr);
        assert!(stats_a.contains("(duplicates 0,"), "{stats_a}");
        assert!(
            stats_b.contains(&format!("events {} (duplicates 50,", lines.len() + 50)),
            "{stats_b}"
        );
    }
}

#[test]
fn bad_lines_are_rejected_with_their_line_number_and_the_rest_is_replayed() {
    let dir = TempDir::new("bad");
    let good = generate(11, 40);
    let bad = [
        (
            "{\"type\": \"track\", \"userId\": \"x\",".to_string(),
            "malformed JSON",
        ),
        (
            json!({"type": "track", "event": "Signed Up", "timestamp": "2026-03-21T10:00:00Z"})
                .to_string(),
            "userId",
        ),
        (
            json!({"type": "track", "userId": "x", "event": "Onboarding Step Viewed",
                   "properties": {"step": "profile", "step_index": "two"},
                   "timestamp": "2026-03-21T10:00:00Z"})
            .to_string(),
            "properties.step_index",
        ),
        (
            json!({"type": "track", "userId": "x", "event": "Signed Up"}).to_string(),
            "timestamp",
        ),
    ];
    // bad lines at lines 1, 11, 21 and 31 of the file
    let mut mixed = good.clone();
    for (i, (line, _)) in bad.iter().enumerate() {
        mixed.insert(i * 10, line.clone());
    }
    let good_file = write_lines(&dir, "good.jsonl", &good);
    let mixed_file = write_lines(&dir, "mixed.jsonl", &mixed);
    let expected = replay_ok(&saas(), &[], &good_file);
    let out = replay(&saas(), &[], &mixed_file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for (i, (_, part)) in bad.iter().enumerate() {
        let prefix = format!("{}:{}: rejected: ", mixed_file.display(), i * 10 + 1);
        let hit = stderr
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{stderr}"));
        assert!(hit.contains(part), "`{hit}` should mention `{part}`");
    }
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains(": rejected: "))
            .count(),
        bad.len(),
        "{stderr}"
    );
    assert!(
        out.stdout == expected.stdout,
        "the good lines were not replayed as without the bad ones"
    );
}

#[test]
fn until_stops_the_clock() {
    let dir = TempDir::new("until");
    let events = write_lines(
        &dir,
        "events.jsonl",
        &[
            json!({"type": "identify", "userId": "u1", "messageId": "a",
                   "traits": {"first_name": "Alice", "timezone": "UTC"},
                   "timestamp": "2026-03-03T09:00:00Z"})
            .to_string(),
            json!({"type": "track", "userId": "u1", "messageId": "b", "event": "Signed Up",
                   "timestamp": "2026-03-03T09:00:00Z"})
            .to_string(),
            json!({"type": "track", "userId": "u1", "messageId": "c",
                   "event": "Onboarding Step Viewed",
                   "properties": {"step": "profile", "step_index": 2},
                   "timestamp": "2026-03-03T09:01:00Z"})
            .to_string(),
        ],
    );
    let lines = |extra: &[&str]| -> Vec<Value> {
        let out = replay_ok(&saas(), extra, &events);
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let reminders = |v: &[Value]| -> Vec<String> {
        v.iter()
            .filter(|l| l["trigger"] == "profile-reminder")
            .map(|l| l["at"].as_str().unwrap().to_string())
            .collect()
    };
    let latest = |v: &[Value]| {
        v.iter()
            .filter_map(|l| l["at"].as_str())
            .max()
            .map(str::to_string)
    };

    // by default the clock runs 30 days on: the 24h reminder is sent
    let all = lines(&[]);
    assert_eq!(reminders(&all), ["2026-03-04T09:01:00Z"]);
    // +1h after the last event: the 2-minute pause nudge, but no reminder
    let hour = lines(&["--until", "+1h"]);
    assert!(
        hour.iter().any(|l| l["trigger"] == "pause-nudge"),
        "{hour:?}"
    );
    assert!(reminders(&hour).is_empty(), "{hour:?}");
    assert!(latest(&hour).unwrap().as_str() <= "2026-03-03T10:01:00Z");
    // an absolute time before the reminder is due, and one after
    let early = lines(&["--until", "2026-03-04T09:00:59Z"]);
    assert!(reminders(&early).is_empty(), "{early:?}");
    assert!(latest(&early).unwrap().as_str() <= "2026-03-04T09:00:59Z");
    let later = lines(&["--until", "2026-03-04T09:01:00Z"]);
    assert_eq!(reminders(&later), ["2026-03-04T09:01:00Z"]);
    let offset = lines(&["--until", "2026-03-04T10:30:00+01:00"]);
    assert_eq!(reminders(&offset), ["2026-03-04T09:01:00Z"]);
    // +1d is still one minute short of it
    assert!(reminders(&lines(&["--until", "+1d"])).len() == 1);
    assert!(reminders(&lines(&["--until", "+23h59m"])).is_empty());
}

#[test]
fn a_bad_until_is_an_error() {
    let dir = TempDir::new("bad-until");
    let events = write_lines(&dir, "events.jsonl", &generate(1, 2));
    for spec in ["tomorrow", "+10 minutes", "+5y"] {
        let out = replay(&saas(), &["--until", spec], &events);
        assert!(!out.status.success(), "--until {spec} was accepted");
        assert!(
            text(&out.stderr).contains("--until"),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

mod serve;
