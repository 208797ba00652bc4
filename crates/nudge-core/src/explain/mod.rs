//! Why a trigger did or did not fire for one user: read from the user's state, the decisions
//! the engine took and the user's activities, at one instant. Pure: `nudge explain` replays
//! the events and hands the results here.
//!
//! - `evidence`: what an explanation is read from ([`Evidence`], [`Activity`]).
//! - `model`: the explanation's types ([`Explanation`], [`TriggerExplanation`], [`Verdict`]...).
//! - `user`: the user's summary; `trigger`: one trigger's explanation, put together from
//!   `history` (decisions and pending waits), `block` (once, cooldown), `verdict`,
//!   `conditions` (`if`, `check`, `exit`), `policies` (caps, quiet hours...) and `setup`
//!   (the trigger in words).
//! - `text`: the explanation as printed.

mod block;
mod conditions;
mod evidence;
mod history;
mod model;
mod policies;
mod setup;
mod text;
mod trigger;
mod user;
mod verdict;

pub use evidence::{Activity, Evidence};
pub use model::{
    Block, CapState, CondNode, Condition, ExperimentState, Explanation, GapState, Match, Pending,
    PolicyState, PropsSource, QuietState, Step, TriggerExplanation, UserSummary, Verdict,
};

use crate::rules::yaml::closest;

/// Why an explanation could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown trigger `{id}`{hint}; the rule set has: {}", .known.join(", "))]
    UnknownTrigger {
        id: String,
        hint: String,
        known: Vec<String>,
    },
}

/// Explains every trigger (or only `trigger`) for the user, in decision order.
pub fn explain(e: &Evidence<'_>, trigger: Option<&str>) -> Result<Explanation, ExplainError> {
    let triggers: Vec<usize> = match trigger {
        None => (0..e.rules.triggers.len()).collect(),
        Some(id) => match e.rules.trigger_index(id) {
            Some(i) => vec![i],
            None => {
                let known: Vec<&str> = e.rules.triggers.iter().map(|t| &*t.id).collect();
                let hint = closest(id, &known)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(ExplainError::UnknownTrigger {
                    id: id.to_string(),
                    hint,
                    known: known.into_iter().map(str::to_string).collect(),
                });
            }
        },
    };
    Ok(Explanation {
        user_id: e.user_id.to_string(),
        at: e.at,
        user: user::summary(e),
        triggers: triggers
            .into_iter()
            .map(|ti| trigger::explain_trigger(e, ti))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CancelReason, Reason};
    use crate::event::Message;
    use crate::replay::Replay;
    use crate::rules::compiled::CompiledRules;
    use crate::state::UserState;
    use crate::time::Millis;
    use serde_json::{json, Value};

    const RULES: &str = r#"
segments:
  onboarding:
    all:
      - ever: Signed Up
      - never: Onboarding Completed
triggers:
  login-help:
    priority: urgent
    on: Login Failed
    if: {count: Login Failed, within: 10m, at_least: 3}
    cooldown: 1h
    send: {channel: in_app, message: note}
  reminder:
    priority: high
    on: {event: Step Viewed, where: {step: profile}}
    wait: 24h
    cancel_on: [Profile Completed]
    once: user
    send: {channel: email, message: mail}
  congrats:
    on: Onboarding Completed
    if:
      all:
        - time_since: Signed Up
          first: true
          at_most: 3d
        - in_segment: onboarding
    send: {channel: email, message: mail}
  tip:
    on: {event: Button Clicked, where: {label: Billing}}
    once: user
    send: {channel: in_app, message: note}
messages:
  note:
    channel: in_app
    in_app: {title: "t", body: "b"}
  mail:
    channel: email
    email: {subject: "s", text: "t"}
policies:
  frequency_caps:
    - {channel: email, max: 2, per: 7d}
"#;

    use crate::test_support::t;

    fn rules() -> CompiledRules {
        crate::test_support::compile(RULES)
    }

    fn track(id: &str, name: &str, props: Value, at: &str) -> (Message, Millis) {
        let v = json!({"type": "track", "userId": "u1", "event": name, "properties": props,
            "timestamp": at, "messageId": id});
        (Message::from_json(&v, None).expect("valid message"), t(at))
    }

    /// Replays `events` to `at` as `nudge explain` does and explains one trigger.
    fn explain_at(
        r: &CompiledRules,
        events: &[(Message, Millis)],
        trigger: &str,
        at: &str,
    ) -> Explanation {
        let at = t(at);
        let mut replay = Replay::new(r);
        replay.record_decisions_of("u1");
        for (m, when) in events.iter().filter(|(_, when)| *when <= at) {
            replay.event(m, *when);
        }
        replay.advance_to(at);
        let state = replay.state("u1").expect("u1 has state");
        let activities = Activity::of_user(events, "u1", at);
        let e = Evidence {
            rules: r,
            user_id: "u1",
            state,
            decisions: replay.decisions_of("u1"),
            activities: &activities,
            at,
        };
        explain(&e, Some(trigger)).expect("known trigger")
    }

    fn only(x: &Explanation) -> &TriggerExplanation {
        assert_eq!(x.triggers.len(), 1);
        &x.triggers[0]
    }

    #[test]
    fn a_sent_trigger_says_when_and_that_once_is_spent() {
        // Given a once-per-user trigger that fired
        let r = rules();
        let events = [track(
            "m1",
            "Button Clicked",
            json!({"label": "Billing"}),
            "2026-03-02T10:00:00Z",
        )];
        // When explained an hour later
        let x = explain_at(&r, &events, "tip", "2026-03-02T11:00:00Z");
        let tip = only(&x);
        // Then the verdict is the send, and once is spent from then on
        assert_eq!(
            tip.verdict,
            Verdict::Sent {
                at: t("2026-03-02T10:00:00Z")
            }
        );
        assert_eq!(
            tip.blocked,
            Some(Block::OnceUser {
                at: t("2026-03-02T10:00:00Z")
            })
        );
        assert!(x.to_string().contains("trigger tip (low, on `Button Clicked` where label = \"Billing\", once: user) — sent at 2026-03-02T10:00:00Z"));
        assert!(x
            .to_string()
            .contains("now: blocked: once per user already spent at 2026-03-02T10:00:00Z"));
    }

    #[test]
    fn a_later_match_on_a_spent_once_is_blocked() {
        // Given the trigger fired, and the same event came again
        let r = rules();
        let events = [
            track(
                "m1",
                "Button Clicked",
                json!({"label": "Billing"}),
                "2026-03-02T10:00:00Z",
            ),
            track(
                "m2",
                "Button Clicked",
                json!({"label": "Billing"}),
                "2026-03-02T10:30:00Z",
            ),
        ];
        let x = explain_at(&r, &events, "tip", "2026-03-02T11:00:00Z");
        let tip = only(&x);
        // Then the answer is the spent once, not the old send
        assert_eq!(
            tip.verdict,
            Verdict::Blocked {
                block: Block::OnceUser {
                    at: t("2026-03-02T10:00:00Z")
                }
            }
        );
        assert_eq!(tip.decisions.len(), 1, "the second event decided nothing");
        assert!(x
            .to_string()
            .contains("— blocked: once per user already spent at 2026-03-02T10:00:00Z"));
    }

    #[test]
    fn a_pending_wait_says_when_it_falls_due_and_what_armed_it() {
        let r = rules();
        let events = [track(
            "m1",
            "Step Viewed",
            json!({"step": "profile"}),
            "2026-03-02T10:00:00Z",
        )];
        let x = explain_at(&r, &events, "reminder", "2026-03-02T12:00:00Z");
        let rem = only(&x);
        assert_eq!(
            rem.verdict,
            Verdict::Waiting {
                due: t("2026-03-03T10:00:00Z"),
                armed_at: t("2026-03-02T10:00:00Z"),
                by: "`Step Viewed`".into(),
                deferred: false,
            }
        );
        let text = x.to_string();
        assert!(text.contains(
            "trigger reminder (high, on `Step Viewed` where step = \"profile\", wait 1d, once: user) — waiting: due at 2026-03-03T10:00:00Z (armed at 2026-03-02T10:00:00Z by `Step Viewed`)"
        ), "{text}");
        assert!(text.contains("frequency cap: 0/2 in 7d"), "{text}");
        assert!(text.contains("unsubscribed: no"), "{text}");
    }

    #[test]
    fn a_wait_that_fell_due_is_sent_and_a_cancelled_one_names_the_event() {
        let r = rules();
        let viewed = track(
            "m1",
            "Step Viewed",
            json!({"step": "profile"}),
            "2026-03-02T10:00:00Z",
        );
        let x = explain_at(
            &r,
            std::slice::from_ref(&viewed),
            "reminder",
            "2026-03-04T10:00:00Z",
        );
        assert_eq!(
            only(&x).verdict,
            Verdict::Sent {
                at: t("2026-03-03T10:00:00Z")
            }
        );
        assert!(x.to_string().contains("frequency cap: 1/2 in 7d"));

        let done = track("m2", "Profile Completed", json!({}), "2026-03-02T11:00:00Z");
        let x = explain_at(&r, &[viewed, done], "reminder", "2026-03-04T10:00:00Z");
        assert_eq!(
            only(&x).verdict,
            Verdict::Cancelled {
                at: t("2026-03-02T11:00:00Z"),
                reason: CancelReason::Event,
                by: Some("`Profile Completed`".into()),
            }
        );
        assert!(x
            .to_string()
            .contains("— cancelled at 2026-03-02T11:00:00Z by `Profile Completed`"));
    }

    #[test]
    fn a_false_if_marks_the_failing_part() {
        // Given a user who completed onboarding four days after signing up
        let r = rules();
        let events = [
            track("m1", "Signed Up", json!({}), "2026-03-01T10:00:00Z"),
            track(
                "m2",
                "Onboarding Completed",
                json!({}),
                "2026-03-05T10:00:00Z",
            ),
        ];
        let x = explain_at(&r, &events, "congrats", "2026-03-05T10:00:00Z");
        let c = only(&x);
        // Then the trigger did not start, and `if` shows which part failed
        assert_eq!(
            c.verdict,
            Verdict::NotStarted {
                last_match: t("2026-03-05T10:00:00Z")
            }
        );
        let cond = &c.conditions[0];
        assert_eq!(
            (cond.role, cond.tree.holds, cond.tree.text.as_str()),
            ("if", false, "all")
        );
        let since = &cond.tree.children[0];
        assert!(!since.holds);
        assert_eq!(
            since.text,
            "time since the first `Signed Up` = 4d (at_most 3d)"
        );
        let seg = &cond.tree.children[1];
        assert!(!seg.holds);
        assert_eq!(seg.text, "in segment onboarding: all of");
        assert_eq!(
            seg.children[0].text,
            "count of `Signed Up` = 1 (at_least 1)"
        );
        assert!(seg.children[0].holds);
        assert!(!seg.children[1].holds);
        let text = x.to_string();
        assert!(text.contains("  if: ✗ all\n    ✗ time since the first `Signed Up` = 4d (at_most 3d)\n    ✗ in segment onboarding: all of\n      ✓ count of `Signed Up` = 1 (at_least 1)\n"), "{text}");
        assert!(text.contains(
            "not started: `if` was false at the last matching event (2026-03-05T10:00:00Z)"
        ));
    }

    #[test]
    fn a_missing_time_reads_never_happened() {
        let r = rules();
        let events = [track(
            "m1",
            "Onboarding Completed",
            json!({}),
            "2026-03-05T10:00:00Z",
        )];
        let x = explain_at(&r, &events, "congrats", "2026-03-05T10:00:00Z");
        let since = &only(&x).conditions[0].tree.children[0];
        assert_eq!(
            since.text,
            "time since the first `Signed Up`: never happened (at_most 3d)"
        );
    }

    #[test]
    fn cooldown_suppresses_and_blocks_until_it_ends() {
        // Given three failed logins (sent) and a fourth within the hour
        let r = rules();
        let events = [
            track("m1", "Login Failed", json!({}), "2026-03-02T10:00:00Z"),
            track("m2", "Login Failed", json!({}), "2026-03-02T10:01:00Z"),
            track("m3", "Login Failed", json!({}), "2026-03-02T10:02:00Z"),
            track("m4", "Login Failed", json!({}), "2026-03-02T10:03:00Z"),
        ];
        let x = explain_at(&r, &events, "login-help", "2026-03-02T10:05:00Z");
        let l = only(&x);
        // Then the last decision is the cooldown suppression, and the cooldown runs on
        assert_eq!(
            l.verdict,
            Verdict::Suppressed {
                at: t("2026-03-02T10:03:00Z"),
                reason: Reason::Cooldown
            }
        );
        assert_eq!(
            l.blocked,
            Some(Block::Cooldown {
                until: t("2026-03-02T11:02:00Z")
            })
        );
        assert_eq!(l.decisions.len(), 2);
        assert_eq!(
            l.conditions[0].tree.text,
            "count of `Login Failed` in the last 10m = 4 (at_least 3)"
        );
        let text = x.to_string();
        assert!(
            text.contains("now: blocked: cooldown until 2026-03-02T11:02:00Z"),
            "{text}"
        );
        assert!(
            text.contains("2026-03-02T10:02:00Z  sent note (variant default)"),
            "{text}"
        );
        // And after the window closes the count reads lower
        let x = explain_at(&r, &events, "login-help", "2026-03-02T10:12:30Z");
        assert_eq!(
            only(&x).conditions[0].tree.text,
            "count of `Login Failed` in the last 10m = 1 (at_least 3)"
        );
    }

    #[test]
    fn an_untouched_trigger_never_started() {
        let r = rules();
        let events = [track("m1", "Signed Up", json!({}), "2026-03-02T10:00:00Z")];
        let x = explain_at(&r, &events, "tip", "2026-03-02T10:00:00Z");
        assert_eq!(only(&x).verdict, Verdict::NeverStarted);
        assert_eq!(x.user.segments, vec!["onboarding".to_string()]);
        assert_eq!(x.user.sessions, 1);
        assert!(x.user.state_bytes > 0);
    }

    #[test]
    fn an_unknown_trigger_names_the_known_ones() {
        let r = rules();
        let state = UserState::new(&r);
        let e = Evidence {
            rules: &r,
            user_id: "u1",
            state: &state,
            decisions: &[],
            activities: &[],
            at: 0,
        };
        let err = explain(&e, Some("remider")).expect_err("unknown trigger");
        assert_eq!(
            err.to_string(),
            "unknown trigger `remider` (did you mean `reminder`?); the rule set has: login-help, reminder, congrats, tip"
        );
    }

    #[test]
    fn json_names_kinds_and_writes_instants_as_text() {
        let r = rules();
        let events = [track(
            "m1",
            "Step Viewed",
            json!({"step": "profile"}),
            "2026-03-02T10:00:00Z",
        )];
        let x = explain_at(&r, &events, "reminder", "2026-03-02T12:00:00Z");
        let v = serde_json::to_value(&x).expect("serializes");
        assert_eq!(v["at"], "2026-03-02T12:00:00Z");
        assert_eq!(v["triggers"][0]["verdict"]["kind"], "waiting");
        assert_eq!(v["triggers"][0]["verdict"]["due"], "2026-03-03T10:00:00Z");
        assert_eq!(v["triggers"][0]["decisions"][0]["kind"], "wait");
        assert_eq!(v["triggers"][0]["policy"]["caps"][0]["max"], 2);
    }
}
