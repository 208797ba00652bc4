//! Funnels: their steps as matchers with names for reports, and the breakdown resolved.

use super::events::describe;
use super::ids::unknown;
use super::Compiler;
use crate::rules::compiled::{stable_id, CBreakdown, CFunnel, CFunnelStep};
use crate::rules::model::{Breakdown, FunnelDef};

impl Compiler<'_> {
    pub(super) fn funnel(&mut self, f: &FunnelDef) -> CFunnel {
        let what = format!("a step of funnel `{}`", f.id.value);
        let steps = f
            .steps
            .iter()
            .map(|s| CFunnelStep {
                label: match &s.name {
                    Some(n) => n.as_str().into(),
                    None => describe(&s.event).replace('`', "").into(),
                },
                event: self.named_matcher(&s.event, &what),
            })
            .collect();
        let breakdown = match &f.breakdown {
            None => None,
            Some(Breakdown::Segment(s)) => match self.segment_ids.get(s.value.as_str()) {
                Some(&i) => Some(CBreakdown::Segment(i)),
                None => {
                    unknown(self.d, "segment", s, self.segment_ids.keys().copied());
                    None
                }
            },
            Some(Breakdown::Experiment(e)) => match self.experiment_ids.get(e.value.as_str()) {
                Some(&i) => Some(CBreakdown::Experiment(i)),
                None => {
                    unknown(self.d, "experiment", e, self.experiment_ids.keys().copied());
                    None
                }
            },
            Some(Breakdown::Trait(t)) => {
                self.traits.insert(t.value.clone());
                Some(CBreakdown::Trait(t.value.clone()))
            }
        };
        CFunnel {
            id: f.id.value.as_str().into(),
            stable_id: stable_id(&f.id.value),
            steps,
            within: f.within,
            breakdown,
        }
    }
}
