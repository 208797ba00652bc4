//! Segments: their conditions, read without an event, and no segment reading itself.

use super::{Compiler, Ctx};
use crate::rules::compiled::{stable_id, CSegment};
use crate::rules::model::{Cond, SegmentDef};
use std::collections::{HashMap, HashSet};

impl Compiler<'_> {
    /// A segment: its condition, with no triggering event at hand.
    pub(super) fn segment(&mut self, s: &SegmentDef) -> CSegment {
        let cond = self.cond(&s.condition, Ctx::Segment);
        CSegment {
            id: s.id.value.clone(),
            stable_id: stable_id(&s.id.value),
            cond,
        }
    }

    /// Reports every segment that reaches itself through `in_segment`.
    pub(super) fn check_segment_cycles(&mut self) {
        fn refs(c: &Cond, out: &mut Vec<String>) {
            match c {
                Cond::All(v) | Cond::Any(v) => v.iter().for_each(|c| refs(c, out)),
                Cond::Not(c) => refs(c, out),
                Cond::InSegment(s) => out.push(s.value.clone()),
                _ => {}
            }
        }
        let graph: HashMap<&str, Vec<String>> = self
            .set
            .segments
            .iter()
            .map(|s| {
                let mut out = vec![];
                refs(&s.condition, &mut out);
                (s.id.value.as_str(), out)
            })
            .collect();
        for s in &self.set.segments {
            // Depth-first search for a path back to `s`.
            let mut stack: Vec<&str> = graph
                .get(s.id.value.as_str())
                .map(|v| v.iter().map(|x| x.as_str()).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            while let Some(n) = stack.pop() {
                if n == s.id.value {
                    self.d.error(
                        s.id.pos,
                        format!(
                            "segment `{}` refers to itself through `in_segment`",
                            s.id.value
                        ),
                    );
                    break;
                }
                if seen.insert(n) {
                    if let Some(next) = graph.get(n) {
                        stack.extend(next.iter().map(|x| x.as_str()));
                    }
                }
            }
        }
    }
}
