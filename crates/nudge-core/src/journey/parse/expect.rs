//! The sends a test expects (`expect`) and forbids (`never`): triggers, outcomes, reasons,
//! times and the fields a send must agree with, checked against the rule set.

use super::{check_ref, instant, is_null, reference, span, start_of, string, Refs};
use crate::engine::Reason;
use crate::journey::{Expect, Loc, Never, Outcome};
use crate::rules::model::Channel;
use crate::rules::yaml::{Diagnostics, Reader};
use crate::time::Millis;
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

const EXPECT_KEYS: &[&str] = &[
    "trigger",
    "at",
    "tolerance",
    "user",
    "outcome",
    "reason",
    "channel",
    "message",
    "variant",
    "experiment",
    "subject",
    "body",
    "body_contains",
];
const NEVER_KEYS: &[&str] = &["trigger", "user", "outcome", "reason", "from", "to"];
const OUTCOMES: &[&str] = &["sent", "suppressed"];

/// Every suppression reason, as tests write them.
pub(super) fn reasons() -> Vec<&'static str> {
    // The match makes a new Reason variant a compile error here, so this list stays complete.
    let listed = |r: Reason| match r {
        Reason::FrequencyCap
        | Reason::QuietHours
        | Reason::Cooldown
        | Reason::Holdout
        | Reason::Unsubscribed
        | Reason::Priority
        | Reason::ExitCondition => r.as_str(),
    };
    [
        Reason::FrequencyCap,
        Reason::QuietHours,
        Reason::Cooldown,
        Reason::Holdout,
        Reason::Unsubscribed,
        Reason::Priority,
        Reason::ExitCondition,
    ]
    .into_iter()
    .map(listed)
    .collect()
}

fn outcome(r: Reader, m: &MarkedMappingNode, d: &mut Diagnostics) -> Option<Option<Outcome>> {
    let Some(n) = m.get_node("outcome") else {
        return Some(None);
    };
    let s = r.string(n, "outcome", d)?;
    match s.value.as_str() {
        "sent" => Some(Some(Outcome::Sent)),
        "suppressed" => Some(Some(Outcome::Suppressed)),
        other => {
            check_ref(other, OUTCOMES, "outcome", s.pos, d);
            None
        }
    }
}

pub(super) fn parse_expect(
    r: Reader,
    node: &Node,
    start: Millis,
    user: &str,
    refs: &Refs<'_>,
    d: &mut Diagnostics,
) -> Option<Expect> {
    let m = r.map(node, "an expect item", d)?;
    r.check_keys(m, EXPECT_KEYS, "an expect item", d);
    let trigger = r
        .required(m, "trigger", "an expect item", d)
        .and_then(|n| r.string(n, "trigger", d));
    let trigger_ok = trigger
        .as_ref()
        .is_some_and(|t| check_ref(&t.value, &refs.triggers, "trigger", t.pos, d));
    let at = m.get_node("at").map(|n| instant(r, n, start, "at", d));
    let tolerance = match m.get_node("tolerance") {
        Some(n) if at.is_none() => {
            d.error(r.pos(n), "tolerance needs `at`");
            None
        }
        Some(n) => span(r, n, "tolerance", d),
        None => Some(0),
    };
    let outcome = outcome(r, m, d);
    let reason = reference(r, m, "reason", &refs.reasons, "reason", d);
    let outcome = match (outcome, &reason) {
        (Some(Some(o)), _) => Some(o),
        (Some(None), Some(_)) => Some(Outcome::Suppressed),
        (Some(None), None) if m.get_node("reason").is_none() => Some(Outcome::Sent),
        _ => None,
    };
    if outcome == Some(Outcome::Suppressed) && m.get_node("reason").is_none() {
        d.error(
            start_of(r, node),
            "an expected suppressed send needs `reason` (one of: ".to_string()
                + &refs.reasons.join(", ")
                + ")",
        );
    }
    if let (Some(Outcome::Sent), Some(n)) = (outcome, m.get_node("reason")) {
        d.error(r.pos(n), "a send with outcome `sent` has no reason");
    }
    let channel = match m.get_node("channel") {
        Some(n) => {
            let s = r.string(n, "channel", d)?;
            let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
            check_ref(&s.value, &names, "channel", s.pos, d).then_some(Some(s.value))?
        }
        None => None,
    };
    let message = reference(r, m, "message", &refs.messages, "message", d);
    let variant = reference(r, m, "variant", &refs.variants, "variant", d);
    let experiment = match m.get_node("experiment") {
        Some(n) if is_null(n) => Some(None),
        Some(n) => {
            let s = r.string(n, "experiment", d)?;
            check_ref(&s.value, &refs.experiments, "experiment", s.pos, d)
                .then_some(Some(Some(s.value)))?
        }
        None => None,
    };
    let text = |key: &str, d: &mut Diagnostics| {
        m.get_node(key)
            .and_then(|n| r.text(n, key, d))
            .map(|s| s.value)
    };
    let subject = text("subject", d);
    let body = text("body", d);
    let body_contains = text("body_contains", d);
    let user = string(r, m, "user", d).unwrap_or_else(|| user.to_string());
    if !trigger_ok {
        return None;
    }
    if m.get_node("message").is_some_and(|_| message.is_none())
        || m.get_node("variant").is_some_and(|_| variant.is_none())
    {
        return None;
    }
    Some(Expect {
        loc: Loc::from(start_of(r, node)),
        trigger: trigger?.value,
        at: at.map(|a| a.ok_or(())).transpose().ok()?,
        tolerance: tolerance?,
        user,
        outcome: outcome?,
        reason,
        channel,
        message,
        variant,
        experiment,
        subject,
        body,
        body_contains,
    })
}

pub(super) fn parse_never(
    r: Reader,
    node: &Node,
    start: Millis,
    refs: &Refs<'_>,
    d: &mut Diagnostics,
) -> Option<Never> {
    let m = r.map(node, "a never item", d)?;
    r.check_keys(m, NEVER_KEYS, "a never item", d);
    let trigger = r
        .required(m, "trigger", "a never item", d)
        .and_then(|n| r.string(n, "trigger", d));
    let trigger_ok = trigger
        .as_ref()
        .is_some_and(|t| check_ref(&t.value, &refs.triggers, "trigger", t.pos, d));
    let user = string(r, m, "user", d);
    let outcome = outcome(r, m, d);
    let reason = reference(r, m, "reason", &refs.reasons, "reason", d);
    let from = m.get_node("from").map(|n| instant(r, n, start, "from", d));
    let to = m.get_node("to").map(|n| instant(r, n, start, "to", d));
    if let (Some(Some(f)), Some(Some(t)), Some(n)) = (from, to, m.get_node("to")) {
        if t < f {
            d.error(r.pos(n), "`to` is before `from`");
        }
    }
    if !trigger_ok || (m.get_node("reason").is_some() && reason.is_none()) {
        return None;
    }
    Some(Never {
        loc: Loc::from(start_of(r, node)),
        trigger: trigger?.value,
        user,
        outcome: outcome?,
        reason,
        from: from.map(|a| a.ok_or(())).transpose().ok()?,
        to: to.map(|a| a.ok_or(())).transpose().ok()?,
    })
}
