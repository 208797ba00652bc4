//! Running a journey: its events through a replay on a virtual clock, segment membership read
//! at its checkpoints, and the sends that happened matched against its `expect` and `never`
//! items.

use super::{
    offset, ActualSend, Checkpoint, Expect, Failure, Journey, JourneyResult, Mismatch, Never,
};
use crate::engine::Send;
use crate::event::Message;
use crate::insights::Period;
use crate::replay::{Replay, ReplayLine};
use crate::rules::CompiledRules;
use crate::time::{Duration, Millis};

impl Expect {
    /// The fields of `s` that disagree with this expectation (none: it matches).
    fn mismatches(&self, s: &ActualSend, start: Millis) -> Vec<Mismatch> {
        let mut out = Vec::new();
        let l = &s.line;
        let mut check = |field: &'static str, ok: bool, expected: String, actual: String| {
            if !ok {
                out.push(Mismatch {
                    field,
                    expected,
                    actual,
                });
            }
        };
        check(
            "trigger",
            l.trigger == self.trigger,
            self.trigger.clone(),
            l.trigger.clone(),
        );
        check(
            "user",
            l.user_id == self.user,
            self.user.clone(),
            l.user_id.clone(),
        );
        if let Some(at) = self.at {
            let tol = if self.tolerance > 0 {
                format!(" (±{})", Duration(self.tolerance))
            } else {
                String::new()
            };
            check(
                "at",
                (s.at - at).abs() <= self.tolerance,
                format!("{}{tol}", offset(at - start)),
                offset(s.at - start),
            );
        }
        check(
            "outcome",
            l.outcome == self.outcome.as_str(),
            self.outcome.as_str().into(),
            l.outcome.into(),
        );
        if let Some(reason) = &self.reason {
            check(
                "reason",
                l.reason == Some(reason.as_str()),
                reason.clone(),
                l.reason.unwrap_or("none").into(),
            );
        }
        if let Some(channel) = &self.channel {
            check(
                "channel",
                l.channel == channel,
                channel.clone(),
                l.channel.into(),
            );
        }
        if let Some(message) = &self.message {
            check(
                "message",
                &l.message == message,
                message.clone(),
                l.message.clone(),
            );
        }
        if let Some(variant) = &self.variant {
            check(
                "variant",
                &l.variant == variant,
                variant.clone(),
                l.variant.clone(),
            );
        }
        if let Some(experiment) = &self.experiment {
            let show = |e: &Option<String>| e.clone().unwrap_or_else(|| "null".into());
            check(
                "experiment",
                &l.experiment == experiment,
                show(experiment),
                show(&l.experiment),
            );
        }
        let quoted = |v: &Option<String>| {
            v.as_ref()
                .map(|t| format!("{t:?}"))
                .unwrap_or_else(|| "none".into())
        };
        if let Some(subject) = &self.subject {
            check(
                "subject",
                l.subject.as_ref() == Some(subject),
                format!("{subject:?}"),
                quoted(&l.subject),
            );
        }
        if let Some(body) = &self.body {
            let multi = body.contains('\n') || l.body.as_ref().is_some_and(|b| b.contains('\n'));
            let (e, a) = if multi {
                (body.clone(), l.body.clone().unwrap_or_default())
            } else {
                (format!("{body:?}"), quoted(&l.body))
            };
            check("body", l.body.as_ref() == Some(body), e, a);
        }
        if let Some(part) = &self.body_contains {
            let ok = l.body.as_ref().is_some_and(|b| b.contains(part.as_str()));
            check(
                "body_contains",
                ok,
                format!("a body containing {part:?}"),
                quoted(&l.body),
            );
        }
        out
    }

    /// The expectation as written, compactly: `{trigger: x, at: +1h, user: u1, outcome: sent}`.
    fn describe(&self, start: Millis) -> String {
        let mut parts = vec![format!("trigger: {}", self.trigger)];
        if let Some(at) = self.at {
            parts.push(format!("at: {}", offset(at - start)));
            if self.tolerance > 0 {
                parts.push(format!("tolerance: {}", Duration(self.tolerance)));
            }
        }
        parts.push(format!("user: {}", self.user));
        parts.push(format!("outcome: {}", self.outcome.as_str()));
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}: {v}"));
            }
        };
        opt("reason", &self.reason);
        opt("channel", &self.channel);
        opt("message", &self.message);
        opt("variant", &self.variant);
        if let Some(e) = &self.experiment {
            parts.push(format!("experiment: {}", e.as_deref().unwrap_or("null")));
        }
        if let Some(s) = &self.subject {
            parts.push(format!("subject: {s:?}"));
        }
        if let Some(b) = &self.body {
            parts.push(format!("body: {b:?}"));
        }
        if let Some(b) = &self.body_contains {
            parts.push(format!("body_contains: {b:?}"));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

impl Never {
    fn matches(&self, s: &ActualSend) -> bool {
        let l = &s.line;
        l.trigger == self.trigger
            && self.user.as_ref().is_none_or(|u| *u == l.user_id)
            && self.outcome.is_none_or(|o| o.as_str() == l.outcome)
            && self
                .reason
                .as_ref()
                .is_none_or(|r| l.reason == Some(r.as_str()))
            && self.from.is_none_or(|f| s.at >= f)
            && self.to.is_none_or(|t| s.at <= t)
    }

    fn describe(&self, start: Millis) -> String {
        let mut parts = vec![format!("trigger: {}", self.trigger)];
        if let Some(u) = &self.user {
            parts.push(format!("user: {u}"));
        }
        if let Some(o) = self.outcome {
            parts.push(format!("outcome: {}", o.as_str()));
        }
        if let Some(r) = &self.reason {
            parts.push(format!("reason: {r}"));
        }
        if let Some(f) = self.from {
            parts.push(format!("from: {}", offset(f - start)));
        }
        if let Some(t) = self.to {
            parts.push(format!("to: {}", offset(t - start)));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

impl Journey {
    /// Runs the journey on a virtual clock and checks its expectations.
    pub fn run(&self, rules: &CompiledRules) -> JourneyResult {
        let mut result = JourneyResult {
            file: self.file.clone(),
            name: self.name.clone(),
            start: self.start,
            sends: Vec::new(),
            failures: Vec::new(),
            notes: Vec::new(),
        };
        let mut messages = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let label = match step.index {
                Some(i) => format!("events[{i}]"),
                None => "traits".to_string(),
            };
            let rejected = |message: String| Failure::Rejected {
                loc: step.loc,
                index: step.index,
                message,
            };
            let msg = match Message::from_json(&step.json, None) {
                Ok(m) => m,
                Err(e) => {
                    result.failures.push(rejected(e.to_string()));
                    continue;
                }
            };
            match rules.plan.check(&msg) {
                Ok(flags) => {
                    result.notes.extend(
                        flags
                            .iter()
                            .map(|f| format!("{label} ({}:{}): {f}", self.file, step.loc)),
                    );
                }
                Err(violations) => {
                    let text: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
                    result.failures.push(rejected(text.join("; ")));
                    continue;
                }
            }
            messages.push((msg, step.at));
        }
        if !result.failures.is_empty() {
            return result;
        }

        let mut replay = Replay::new(rules);
        if !self.measures.is_empty() {
            replay.measure(Period::covering(self.start, self.until));
        }
        let mut sends: Vec<Send> = Vec::new();
        let mut segment_failures = Vec::new();
        let mut checkpoints = self.checkpoints.iter().peekable();
        let mut check = |replay: &mut Replay, c: &Checkpoint, sends: &mut Vec<Send>| {
            sends.extend(replay.advance_to(c.at));
            let actual = replay.segments_of(&c.user, c.at);
            let missing: Vec<String> = c
                .member_of
                .iter()
                .filter(|s| !actual.contains(s))
                .cloned()
                .collect();
            let unexpected: Vec<String> = c
                .not_member_of
                .iter()
                .filter(|s| actual.contains(s))
                .cloned()
                .collect();
            if !missing.is_empty() || !unexpected.is_empty() {
                segment_failures.push(Failure::Segments {
                    loc: c.loc,
                    at: c.at,
                    user: c.user.clone(),
                    missing,
                    unexpected,
                    actual,
                });
            }
        };
        for (msg, at) in &messages {
            while let Some(c) = checkpoints.next_if(|c| c.at < *at) {
                check(&mut replay, c, &mut sends);
            }
            sends.extend(replay.event(msg, *at));
        }
        for c in checkpoints {
            check(&mut replay, c, &mut sends);
        }
        sends.extend(replay.finish(self.until));
        if let Some(report) = replay.report() {
            for m in &self.measures {
                m.check(&report, &mut result.failures);
            }
        }
        sends.sort_by_key(|s| s.at);
        result.sends = sends
            .iter()
            .map(|s| ActualSend {
                at: s.at,
                line: ReplayLine::from_send(rules, s),
            })
            .collect();

        let mut matched = vec![false; result.sends.len()];
        for e in &self.expect {
            let found = (0..result.sends.len())
                .find(|&i| !matched[i] && e.mismatches(&result.sends[i], self.start).is_empty());
            match found {
                Some(i) => matched[i] = true,
                None => {
                    let closest = (0..result.sends.len())
                        .filter(|&i| !matched[i] && result.sends[i].line.trigger == e.trigger)
                        .map(|i| (i, e.mismatches(&result.sends[i], self.start)))
                        .min_by_key(|(_, m)| m.len());
                    result.failures.push(Failure::Missing {
                        loc: e.loc,
                        expected: e.describe(self.start),
                        closest,
                    });
                }
            }
        }
        for n in &self.never {
            let hits: Vec<usize> = (0..result.sends.len())
                .filter(|&i| n.matches(&result.sends[i]))
                .collect();
            if !hits.is_empty() {
                result.failures.push(Failure::Forbidden {
                    loc: n.loc,
                    rule: n.describe(self.start),
                    sends: hits,
                });
            }
        }
        if self.exhaustive {
            let extra: Vec<usize> = (0..result.sends.len()).filter(|&i| !matched[i]).collect();
            if !extra.is_empty() {
                result.failures.push(Failure::Unexpected { sends: extra });
            }
        }
        result.failures.extend(segment_failures);
        result
    }
}

#[cfg(test)]
mod tests {
    use crate::journey::test_support::{plain_diff, run_one, PROFILE_EVENTS};
    use crate::journey::Failure;

    #[test]
    fn a_passing_journey_matches_every_expectation() {
        // Given a sign-up and a profile step view, with exhaustive expectations and checkpoints
        let res = run_one(&format!(
            r#"  - name: welcome then reminder
{PROFILE_EVENTS}
    until: +3d
    expect:
      - {{trigger: welcome, at: +0s, channel: in_app, message: hello, variant: default, experiment: null, subject: Hi Alice, body: Welcome aboard}}
      - trigger: reminder
        at: +24h1m
        subject: Finish your profile
        body: "Line one\nLine two"
        body_contains: two
    never:
      - trigger: reminder
        to: +24h
    exhaustive: true
    segments:
      - {{at: +5m, in: [signed_up], not_in: idle}}
      - {{at: +11m, in: [signed_up, idle]}}
"#
        ));
        // Then it passes, with both sends recorded in time order
        assert!(res.passed(), "{}", res.report(&plain_diff));
        let lines: Vec<String> = res.sends.iter().map(|s| s.compact(res.start)).collect();
        assert_eq!(
            lines,
            vec![
                r#"+0s u1 welcome sent in_app/hello variant=default "Hi Alice""#,
                r#"+1d1m u1 reminder sent email/remind variant=default "Finish your profile""#,
            ]
        );
        assert_eq!(res.title(), "t.yaml: welcome then reminder");
    }

    #[test]
    fn a_violated_never_fails_and_shows_the_send() {
        let res = run_one(&format!(
            "  - name: never\n{PROFILE_EVENTS}\n    never:\n      - trigger: reminder\n      - {{trigger: welcome, outcome: suppressed}}\n"
        ));
        assert_eq!(res.failures.len(), 1, "{}", res.report(&plain_diff));
        let report = res.report(&plain_diff);
        assert!(report.contains("forbidden send happened (t.yaml:13:9): never {trigger: reminder}\n    +1d1m u1 reminder sent"), "{report}");
    }

    #[test]
    fn an_exhaustive_test_reports_extra_sends() {
        let res = run_one(&format!(
            "  - name: exhaustive\n{PROFILE_EVENTS}\n    expect: [{{trigger: welcome}}]\n    exhaustive: true\n"
        ));
        assert_eq!(res.failures, vec![Failure::Unexpected { sends: vec![1] }]);
        assert!(res.report(&plain_diff).contains(
            "unexpected sends (exhaustive: no `expect` item matches them):\n    +1d1m u1 reminder"
        ));
    }

    #[test]
    fn segment_checkpoints_see_time_pass() {
        // Given checkpoints before and after the 10-minute idle mark
        let res = run_one(&format!(
            "  - name: idle\n{PROFILE_EVENTS}\n    segments:\n      - {{at: +10m, not_in: [idle]}}\n      - {{at: +11m, in: idle}}\n      - {{at: +12m, not_in: idle, in: signed_up}}\n"
        ));
        // Then only the last one fails, and says what the user was in
        assert_eq!(res.failures.len(), 1);
        let Failure::Segments {
            missing,
            unexpected,
            actual,
            ..
        } = &res.failures[0]
        else {
            panic!("not a segment failure: {:?}", res.failures)
        };
        assert!(missing.is_empty());
        assert_eq!(unexpected, &vec!["idle".to_string()]);
        assert_eq!(actual, &vec!["signed_up".to_string(), "idle".to_string()]);
        assert!(res
            .report(&plain_diff)
            .contains("segments at +12m for u1 (t.yaml:15:9):\n    expected not in: idle\n"));
    }

    #[test]
    fn tolerance_widens_the_expected_time() {
        let within = run_one(&format!("  - name: tol\n{PROFILE_EVENTS}\n    expect: [{{trigger: reminder, at: +24h, tolerance: 1m}}]\n"));
        assert!(within.passed(), "{}", within.report(&plain_diff));
        let outside = run_one(&format!("  - name: tol\n{PROFILE_EVENTS}\n    expect: [{{trigger: reminder, at: +24h, tolerance: 59s}}]\n"));
        assert!(!outside.passed());
        assert!(outside
            .report(&plain_diff)
            .contains("at: expected +1d (±59s), got +1d1m"));
    }

    #[test]
    fn suppressed_sends_match_on_reason_and_duplicates_count_once() {
        let res = run_one(
            r#"  - name: capped
    events:
      - {at: +0s, event: Signed Up}
      - {at: +1m, event: Signed Up}
      - {at: +2m, event: Signed Up, message_id: same}
      - {at: +3m, event: Signed Up, message_id: same}
    expect:
      - {trigger: welcome, at: +0s}
      - {trigger: welcome, at: +1m, reason: frequency_cap}
      - {trigger: welcome, at: +2m, outcome: suppressed, reason: frequency_cap}
    exhaustive: true
"#,
        );
        assert!(res.passed(), "{}", res.report(&plain_diff));
        assert!(res.sends[1]
            .compact(res.start)
            .starts_with("+1m u1 welcome suppressed(frequency_cap) in_app/hello"));
    }

    #[test]
    fn rejected_events_fail_the_test_naming_the_event() {
        let res = run_one("  - name: bad\n    events:\n      - {at: +0s, event: Signed Up}\n      - {at: +1m, event: Step Viewed}\n");
        assert_eq!(res.failures.len(), 1);
        let report = res.report(&plain_diff);
        assert!(
            report.contains("events[1] (t.yaml:5:9) was rejected: properties.step:"),
            "{report}"
        );
        assert!(report.contains("(the journey did not run)"));
    }
}
