//! Experiments: holdout and variants as bucket ranges.

use super::Compiler;
use crate::rules::compiled::{stable_id, CExperiment, CVariant};
use crate::rules::model::ExperimentDef;

impl Compiler<'_> {
    /// Splits the 10,000 buckets: the holdout first, then the variants by weight, in order.
    pub(super) fn experiment(&mut self, e: &ExperimentDef) -> CExperiment {
        let holdout_upto = (e.holdout * 10_000.0).round() as u32;
        let total: f64 = e.variants.iter().map(|v| v.weight.max(0.0)).sum();
        let rest = 10_000 - holdout_upto;
        let mut acc = 0.0;
        let n = e.variants.len();
        let variants = e
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                acc += v.weight.max(0.0);
                let upto = if i + 1 == n || total <= 0.0 {
                    10_000
                } else {
                    holdout_upto + (f64::from(rest) * acc / total).round() as u32
                };
                let message = v.message.as_ref().and_then(|m| self.message_ref(m));
                CVariant {
                    name: v.name.value.as_str().into(),
                    upto,
                    wait: v.wait,
                    message,
                    content: v.content.as_ref().map(|c| c.value.as_str().into()),
                }
            })
            .collect();
        CExperiment {
            id: e.id.value.as_str().into(),
            holdout_name: crate::rules::model::HOLDOUT.into(),
            stable_id: stable_id(&e.id.value),
            holdout_upto,
            variants,
            goal: e.goal.as_ref().and_then(|g| self.goal_ref(g)),
            control: e.variants.iter().position(|v| v.control).unwrap_or(0),
            min_detectable_effect: e.min_detectable_effect,
        }
    }
}
