//! The `experiments` section: holdout share, weighted variants and the goal they are judged
//! on.

use super::values::share;
use crate::rules::model::{ExperimentDef, ExperimentVariant, Sp};
use crate::rules::yaml::{Diagnostics, Reader};
use marked_yaml::Node;

/// Most arms an experiment has (state keeps a user's arm in 7 bits).
pub const MAX_VARIANTS: usize = 100;

pub(super) fn parse_experiment(
    r: Reader,
    id: Sp<String>,
    n: &Node,
    d: &mut Diagnostics,
) -> Option<ExperimentDef> {
    let what = format!("experiment `{}`", id.value);
    let m = r.map(n, &what, d)?;
    r.check_keys(m, &["description", "holdout", "variants", "goal"], &what, d);
    let goal = m
        .get_node("goal")
        .and_then(|v| super::goals::parse_goal_ref(r, v, d));
    let holdout = match m.get_node("holdout") {
        None => 0.0,
        Some(v) => share(r, v, "holdout", d)?,
    };
    let vm = r.map(r.required(m, "variants", &what, d)?, "variants", d)?;
    let mut variants = Vec::new();
    for (k, v) in vm.iter() {
        let name = Sp::new(k.as_str().to_string(), r.key_pos(k));
        if name.value == "holdout" {
            d.error(
                name.pos,
                "`holdout` is reserved for the holdout group; name the variant differently",
            );
        }
        let Some(spec) = r.map(v, "a variant", d) else {
            continue;
        };
        r.check_keys(
            spec,
            &["weight", "wait", "message", "content"],
            "a variant",
            d,
        );
        let weight = match spec.get_node("weight") {
            Some(w) => r.number(w, "weight", d).unwrap_or(0.0),
            None => 1.0,
        };
        if weight <= 0.0 {
            d.error(name.pos, "variant weight must be above zero");
        }
        variants.push(ExperimentVariant {
            name,
            weight,
            wait: spec
                .get_node("wait")
                .and_then(|w| r.duration(w, "wait", d))
                .map(|s| s.value),
            message: spec
                .get_node("message")
                .and_then(|w| r.string(w, "message", d)),
            content: spec
                .get_node("content")
                .and_then(|w| r.string(w, "content", d)),
        });
    }
    if variants.is_empty() {
        d.error(id.pos, format!("{what} needs at least one variant"));
        return None;
    }
    if variants.len() > MAX_VARIANTS {
        d.error(
            id.pos,
            format!(
                "{what} has {} variants; at most {MAX_VARIANTS}",
                variants.len()
            ),
        );
    }
    Some(ExperimentDef {
        id,
        holdout,
        variants,
        goal,
    })
}
