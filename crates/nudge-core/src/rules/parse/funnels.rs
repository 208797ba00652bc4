//! The `funnels` section: ordered steps within a window from the first, and what to split
//! the users by.

use super::events::parse_event_match;
use crate::rules::model::{Breakdown, FunnelDef, FunnelStep, Sp};
use crate::rules::yaml::{Diagnostics, Reader};
use marked_yaml::Node;

/// Most steps a funnel has (a user's progress is one byte of state per funnel).
pub const MAX_FUNNEL_STEPS: usize = 20;

pub(super) fn parse_funnel(
    r: Reader,
    id: Sp<String>,
    n: &Node,
    d: &mut Diagnostics,
) -> Option<FunnelDef> {
    let what = format!("funnel `{}`", id.value);
    let m = r.map(n, &what, d)?;
    r.check_keys(
        m,
        &["description", "steps", "within", "breakdown"],
        &what,
        d,
    );
    let errors_before = d.errors.len();
    let description = m
        .get_node("description")
        .and_then(|v| r.text(v, "description", d))
        .map(|s| s.value);
    // Read on after a mistake, so one pass reports them all.
    let within = r
        .required(m, "within", &what, d)
        .and_then(|n| r.duration(n, "within", d));
    let steps_node = r.required(m, "steps", &what, d)?;
    let mut steps = Vec::new();
    for item in r.list(steps_node, "steps", d).unwrap_or_default() {
        // `{name, event, where}` names the step; otherwise the event reference names it.
        let (name, event) = match item {
            Node::Mapping(sm) if sm.get_node("name").is_some() => {
                r.check_keys(sm, &["name", "event", "where"], "a funnel step", d);
                let name = sm
                    .get_node("name")
                    .and_then(|n| r.string(n, "name", d))
                    .map(|s| s.value);
                let Some(ev) = r
                    .required(sm, "event", "a funnel step", d)
                    .and_then(|n| r.string(n, "event", d))
                else {
                    continue;
                };
                let filters = match sm.get_node("where") {
                    Some(w) => super::events::parse_filters(r, w, "where", d).unwrap_or_default(),
                    None => vec![],
                };
                (name, crate::rules::model::EventMatch { name: ev, filters })
            }
            other => match parse_event_match(r, other, "a funnel step", d) {
                Some(ev) => (None, ev),
                None => continue,
            },
        };
        steps.push(FunnelStep { name, event });
    }
    if steps.len() < 2 || steps.len() > MAX_FUNNEL_STEPS {
        d.error(
            r.pos(steps_node),
            format!(
                "{what} needs 2 to {MAX_FUNNEL_STEPS} steps, found {}",
                steps.len()
            ),
        );
    }
    let breakdown = match m.get_node("breakdown") {
        None => None,
        Some(b) => r.map(b, "breakdown", d).and_then(|bm| {
            r.check_keys(bm, &["segment", "trait", "experiment"], "breakdown", d);
            let mut found = Vec::new();
            type Make = fn(Sp<String>) -> Breakdown;
            let kinds: [(&str, Make); 3] = [
                ("segment", Breakdown::Segment),
                ("trait", Breakdown::Trait),
                ("experiment", Breakdown::Experiment),
            ];
            for (key, make) in kinds {
                if let Some(v) = bm.get_node(key) {
                    found.extend(r.string(v, key, d).map(make));
                }
            }
            if found.len() != 1 {
                d.error(
                    r.map_pos(bm),
                    "`breakdown` takes one of `segment`, `trait` or `experiment`",
                );
            }
            found.into_iter().next()
        }),
    };
    match within {
        Some(within) if d.errors.len() == errors_before => Some(FunnelDef {
            id,
            description,
            steps,
            within: within.value,
            breakdown,
        }),
        _ => None,
    }
}
