//! The journey-test parser's tests: positions and hints of mistakes, messages built.

use crate::journey::test_support::{assert_errors, errors, plain_diff, run_one};

#[test]
fn other_users_and_call_kinds_build_valid_messages() {
    let res = run_one(
        r#"  - name: kinds
    user: alice
    events:
      - {at: +0s, event: Signed Up}
      - {at: +1m, identify: {first_name: Al}}
      - {at: +2m, page: Pricing, properties: {path: /pricing}}
      - {at: +3m, screen: Home}
      - {at: 2026-03-02T09:04:00Z, user: bob, event: Signed Up, context: {timezone: Europe/Berlin}}
    expect:
      - {trigger: welcome, at: +0s, subject: Hi there}
      - {trigger: welcome, at: +4m, user: bob}
    never:
      - {trigger: welcome, user: alice, from: +1m}
"#,
    );
    assert!(res.passed(), "{}", res.report(&plain_diff));
}

#[test]
fn parse_errors_have_positions_and_hints() {
    let errs = errors(
        r#"tests:
  - name: typos
    evnets: []
    events:
      - {at: soon, event: Signed Up}
      - {at: +1m}
    expect:
      - {trigger: welcom}
      - {trigger: welcome, outcome: suppresed}
      - {trigger: welcome, reason: frequency}
      - {trigger: welcome, outcome: suppressed}
      - {trigger: welcome, tolerance: 1s}
    never:
      - user: u1
    segments:
      - {at: +1m, in: [idel]}
      - {at: +99d}
"#,
    );
    let expected = [
            "t.yaml:3:5: unknown key `evnets` in a test (did you mean `events`?)",
            "t.yaml:5:14: at: `soon` is neither +DURATION (after start, e.g. `+24h`) nor an RFC 3339 time",
            "t.yaml:6:9: events[1] needs one of `event`, `identify`, `page`, `screen`",
            "t.yaml:8:19: unknown trigger `welcom` (did you mean `welcome`?)",
            "t.yaml:9:37: unknown outcome `suppresed` (did you mean `suppressed`?)",
            "t.yaml:10:36: unknown reason `frequency`",
            "t.yaml:11:9: an expected suppressed send needs `reason`",
            "t.yaml:12:39: tolerance needs `at`",
            "t.yaml:14:9: a never item needs `trigger`",
            "t.yaml:16:24: unknown segment `idel` (did you mean `idle`?)",
            "t.yaml:17:9: a segments checkpoint needs `in` or `not_in`",
            "t.yaml:17:14: the checkpoint (+99d) is after `until` (+30d)",
        ];
    assert_errors(&errs, &expected);
}

#[test]
fn yaml_and_structure_errors_have_positions() {
    assert_eq!(
        errors("tests:\n  - name: a\n    name: b\n"),
        vec!["t.yaml:3:5: duplicate key `name` (first defined on line 2)"]
    );
    assert_eq!(
        errors("test: []\n")[0],
        "t.yaml:1:1: unknown key `test` in a journey test file (did you mean `tests`?)"
    );
    assert_eq!(
        errors("tests:\n  - name: same\n  - name: same\n"),
        vec!["t.yaml:3:5: duplicate test name `same` (first on line 2)"]
    );
    assert_eq!(
        errors("tests:\n  - name: x\n    events: [{at: +1h, event: A}]\n    until: +1m\n"),
        vec!["t.yaml:4:12: until (+1m) is before the last event (+1h)"]
    );
    assert!(errors("tests: [\n")[0].starts_with("t.yaml:"));
}
