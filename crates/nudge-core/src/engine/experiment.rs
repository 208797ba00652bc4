//! Experiment assignment: a user's arm is drawn once by hashing the experiment and user ids
//! into 10,000 buckets (holdout first, then the variants by weight) and kept in their state,
//! so later weight changes never move a user.

use crate::rules::compiled::{CExperiment, CompiledRules};
use crate::state::UserState;
use std::sync::Arc;

/// Variant index stored for holdout users.
const HOLDOUT_INDEX: u8 = u8::MAX;

/// The user's arm of an experiment: assigned once by hashing the user id, then kept in state
/// so that later weight changes never move a user. Also says whether it was assigned now.
pub fn assign(
    rules: &CompiledRules,
    state: &mut UserState,
    user_id: &str,
    experiment: usize,
) -> (u8, bool) {
    let exp = &rules.experiments[experiment];
    if let Some((_, v)) = state
        .assignments
        .iter()
        .find(|(id, _)| *id == exp.stable_id)
    {
        if *v == HOLDOUT_INDEX || usize::from(*v) < exp.variants.len() {
            return (*v, false);
        }
    }
    let v = bucket_variant(exp, user_id);
    state.assignments.retain(|(id, _)| *id != exp.stable_id);
    state.assignments.push((exp.stable_id, v));
    (v, true)
}

/// An arm's name (the holdout's for the holdout index).
pub fn arm_name(exp: &CExperiment, v: u8) -> Arc<str> {
    match exp.variants.get(usize::from(v)) {
        Some(var) => var.name.clone(),
        None => exp.holdout_name.clone(),
    }
}

/// Deterministic bucket 0..10000 of a user in an experiment.
pub fn bucket(experiment_id: &str, user_id: &str) -> u32 {
    let mut buf = Vec::with_capacity(experiment_id.len() + user_id.len() + 1);
    buf.extend_from_slice(experiment_id.as_bytes());
    buf.push(0);
    buf.extend_from_slice(user_id.as_bytes());
    (xxhash_rust::xxh3::xxh3_64(&buf) % 10_000) as u32
}

fn bucket_variant(exp: &CExperiment, user_id: &str) -> u8 {
    let b = bucket(&exp.id, user_id);
    if b < exp.holdout_upto {
        return HOLDOUT_INDEX;
    }
    exp.variants
        .iter()
        .position(|v| b < v.upto)
        .unwrap_or(exp.variants.len().saturating_sub(1)) as u8
}
