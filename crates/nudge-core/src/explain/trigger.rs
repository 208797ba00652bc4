//! One trigger's explanation for one user, put together from its parts.

use super::block::block;
use super::conditions::node;
use super::history::{pending, steps};
use super::policies::policy_state;
use super::setup::{matcher_text, setup};
use super::verdict::verdict;
use super::{Condition, Evidence, Match, Pending, PropsSource, TriggerExplanation};
use crate::engine::conditions::{matches, Ctx, Props};
use crate::rules::compiled::COn;
use crate::state::Wait;

/// One trigger, for one user: its history, verdict, conditions and policies.
pub(super) fn explain_trigger(e: &Evidence<'_>, ti: usize) -> TriggerExplanation {
    let t = &e.rules.triggers[ti];
    let decisions = steps(e, t);
    let mut waits: Vec<&Wait> = e
        .state
        .waits
        .iter()
        .filter(|w| w.trigger == t.stable_id)
        .collect();
    waits.sort_by_key(|w| (w.due, w.origin));
    let pending: Vec<Pending> = waits.iter().map(|w| pending(e, t, w)).collect();
    let last_match = match &t.on {
        COn::Event(m) => e
            .activities
            .iter()
            .rev()
            .find(|a| matches(m, &a.name, &a.properties))
            .map(|a| Match {
                at: a.at,
                event: a.name.clone(),
                properties: a.properties.clone(),
            }),
        COn::SegmentEntered(_) | COn::SegmentExited(_) => None,
    };
    let blocked = block(e, t, ti, last_match.as_ref().map(|m| &m.properties));
    let verdict = verdict(
        e,
        t,
        &decisions,
        &pending,
        blocked.as_ref(),
        last_match.as_ref(),
    );

    let (props, properties_from) = match (waits.first(), &last_match) {
        (Some(w), _) => (
            Props::Captured(&w.props),
            PropsSource::PendingWait { armed_at: w.origin },
        ),
        (None, Some(m)) => (
            Props::Event(&m.properties),
            PropsSource::LastMatch { at: m.at },
        ),
        (None, None) => (Props::None, PropsSource::NoEvent),
    };
    let ctx = Ctx {
        rules: e.rules,
        state: e.state,
        now: e.at,
        props,
    };
    let has_props = properties_from != PropsSource::NoEvent;
    let conditions = [("if", &t.when), ("check", &t.check), ("exit", &t.exit)]
        .into_iter()
        .filter_map(|(role, c)| {
            c.as_ref().map(|c| Condition {
                role,
                tree: node(&ctx, c, has_props),
            })
        })
        .collect();

    TriggerExplanation {
        id: t.id.to_string(),
        priority: t.priority,
        channel: t.channel,
        setup: setup(e.rules, t),
        cancel_on: t.cancel_on.iter().map(|c| matcher_text(&c.event)).collect(),
        verdict,
        decisions,
        pending,
        blocked,
        last_match,
        properties_from,
        conditions,
        policy: policy_state(e, t),
    }
}
