//! The `goals` section (what counts as success, and what it is worth) and the `goal:` a
//! trigger or an experiment names with its attribution window.

use super::events::parse_event_match;
use crate::rules::model::{EventMatch, GoalDef, GoalRef, Sp};
use crate::rules::yaml::{Diagnostics, Reader};
use marked_yaml::Node;

/// A goal: `Event Name`, or `{event, where?, value?, description?}`.
pub(super) fn parse_goal(
    r: Reader,
    id: Sp<String>,
    n: &Node,
    d: &mut Diagnostics,
) -> Option<GoalDef> {
    let what = format!("goal `{}`", id.value);
    let Node::Mapping(m) = n else {
        let event = parse_event_match(r, n, &what, d)?;
        return Some(GoalDef {
            id,
            description: None,
            event,
            value: None,
        });
    };
    r.check_keys(m, &["description", "event", "where", "value"], &what, d);
    let description = m
        .get_node("description")
        .and_then(|v| r.text(v, "description", d))
        .map(|s| s.value);
    let name = r.string(r.required(m, "event", &what, d)?, "event", d)?;
    let filters = match m.get_node("where") {
        Some(w) => super::events::parse_filters(r, w, "where", d)?,
        None => vec![],
    };
    let event = EventMatch { name, filters };
    // `value: total`, or `value: Order Completed.total` naming the goal's event again.
    let value = m
        .get_node("value")
        .and_then(|v| r.string(v, "value", d))
        .map(|v| {
            let prefix = format!("{}.", event.name.value);
            match v.value.strip_prefix(&prefix) {
                Some(rest) if !rest.is_empty() => Sp::new(rest.to_string(), v.pos),
                _ => v,
            }
        });
    Some(GoalDef {
        id,
        description,
        event,
        value,
    })
}

/// `goal: {id: GOAL, within: 3d}` of a trigger or an experiment.
pub(super) fn parse_goal_ref(r: Reader, n: &Node, d: &mut Diagnostics) -> Option<GoalRef> {
    let m = r.map(n, "goal", d)?;
    r.check_keys(m, &["id", "within"], "goal", d);
    let id = r.string(r.required(m, "id", "goal", d)?, "goal id", d)?;
    let within = r.duration(r.required(m, "within", "goal", d)?, "within", d)?;
    if within.value.0 <= 0 {
        d.error(within.pos, "a goal's `within` must be longer than zero");
        return None;
    }
    Some(GoalRef {
        id,
        within: within.value,
    })
}
