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
    r.check_keys(
        m,
        &[
            "description",
            "holdout",
            "variants",
            "goal",
            "min_detectable_effect",
        ],
        &what,
        d,
    );
    // A mistake here is reported and the experiment kept, so its triggers still resolve.
    let min_detectable_effect = m
        .get_node("min_detectable_effect")
        .and_then(|v| Some((v, share(r, v, "min_detectable_effect", d)?)))
        .and_then(|(v, x)| {
            if x <= 0.0 {
                d.error(
                    r.pos(v),
                    "min_detectable_effect must be above zero (a difference of rates like `2%`)",
                );
            }
            (x > 0.0).then_some(x)
        });
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
            &["weight", "wait", "message", "content", "control"],
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
        let control = spec
            .get_node("control")
            .and_then(|c| r.boolean(c, "control", d))
            .unwrap_or(false);
        if control && variants.iter().any(|v: &ExperimentVariant| v.control) {
            d.error(
                name.pos,
                format!("{what} has two `control: true` variants; mark one"),
            );
        }
        variants.push(ExperimentVariant {
            control,
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
        min_detectable_effect,
    })
}
