//! Helpers shared by the journey module's unit tests: a small rule set and ways to run or
//! parse one test file against it.

use super::{parse, run_all, JourneyFile, JourneyResult};
use crate::rules::CompiledRules;

pub(super) const RULES: &str = r#"
name: journey-test
tracking_plan:
  allow_unknown_events: true
  events:
    Signed Up: {}
    Step Viewed:
      properties:
        step: {type: string, required: true}
    Profile Completed: {}
segments:
  signed_up: {ever: Signed Up}
  idle: {idle: {at_least: 10m}}
triggers:
  welcome:
    on: Signed Up
    send: {channel: in_app, message: hello}
  reminder:
    on: {event: Step Viewed, where: {step: profile}}
    wait: 24h
    cancel_on: [Profile Completed]
    send: {channel: email, message: remind}
policies:
  frequency_caps:
    - {channel: in_app, max: 1, per: 1d}
messages:
  hello:
    channel: in_app
    in_app: {title: "Hi {{ traits.first_name | default: 'there' }}", body: Welcome aboard}
  remind:
    channel: email
    email: {subject: Finish your profile, text: "Line one\nLine two"}
"#;

pub(super) fn rules() -> CompiledRules {
    crate::test_support::compile(RULES)
}

/// One test file holding `body` (the YAML of one test, indented as a list item).
pub(super) fn run_one(body: &str) -> JourneyResult {
    let r = rules();
    let text = format!("tests:\n{body}");
    let files = [JourneyFile {
        name: "t.yaml".into(),
        text,
    }];
    let results = match run_all(&files, &r, None) {
        Ok(results) => results,
        Err(e) => panic!(
            "test file does not parse: {}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    assert_eq!(results.len(), 1);
    results.into_iter().next().expect("one result")
}

pub(super) fn errors(text: &str) -> Vec<String> {
    let files = [JourneyFile {
        name: "t.yaml".into(),
        text: text.into(),
    }];
    match parse(&files, &rules()) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// Every expected error starts one of `errs`, and there are no others.
pub(super) fn assert_errors(errs: &[String], expected: &[&str]) {
    for e in expected {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in:\n{}",
            errs.join("\n")
        );
    }
    assert_eq!(errs.len(), expected.len(), "{}", errs.join("\n"));
}

pub(super) fn plain_diff(expected: &str, actual: &str) -> String {
    format!("-{expected}\n+{actual}\n")
}

pub(super) const PROFILE_EVENTS: &str = r#"
    traits: {first_name: Alice}
    events:
      - at: +0s
        event: Signed Up
      - at: +1m
        event: Step Viewed
        properties: {step: profile}
"#;
