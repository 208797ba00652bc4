//! Conditions: checked for their context (segment or triggering event) and compiled onto slots.

use super::events::describe;
use super::{split_path, Compiler, Ctx};
use crate::rules::compiled::{CCond, CFilter, Matcher, NameMatch, SlotKind};
use crate::rules::model::Cond;
use std::collections::BTreeSet;

impl Compiler<'_> {
    /// A condition, read in `ctx`: segments have no event to read properties from.
    pub(super) fn cond(&mut self, c: &Cond, ctx: Ctx) -> CCond {
        match c {
            Cond::All(v) => CCond::All(v.iter().map(|c| self.cond(c, ctx)).collect()),
            Cond::Any(v) => CCond::Any(v.iter().map(|c| self.cond(c, ctx)).collect()),
            Cond::Not(c) => CCond::Not(Box::new(self.cond(c, ctx))),
            Cond::Count { occ, cmp, pos } => {
                let bound = cmp.iter().map(|c| c.bound()).fold(0.0, f64::max);
                if occ.within.is_some() && occ.after.is_none() && bound > 999.0 {
                    self.d
                        .error(*pos, "a sliding-window count compares against at most 999");
                }
                let (slot, per) = self.count_slot(occ, bound, ctx);
                CCond::Count {
                    slot,
                    cmp: cmp.clone(),
                    per,
                }
            }
            Cond::TimeSince {
                occ,
                first,
                cmp,
                pos,
            } => {
                if occ.within.is_some()
                    || occ.after.is_some()
                    || occ.per.is_some()
                    || occ.in_session
                {
                    self.d
                        .error(*pos, "`time_since` takes `where`, `since` and `first` only");
                }
                let event = self.matcher(&occ.event);
                let reset = occ.since.as_ref().map(|s| self.matcher(s));
                let (kind, word) = if *first {
                    (SlotKind::First, "first")
                } else {
                    (SlotKind::Last, "last")
                };
                let mut label = format!("time since the {word} {}", describe(&occ.event));
                if let Some(s) = &occ.since {
                    label.push_str(&format!(" since the last {}", describe(s)));
                }
                let slot = self.slot(kind, event, reset, false, label);
                CCond::TimeSince {
                    slot,
                    cmp: cmp.clone(),
                }
            }
            Cond::Idle { cmp, .. } => CCond::Idle { cmp: cmp.clone() },
            Cond::Sessions { within, cmp, pos } => {
                let window = within.map(|w| {
                    let bound = cmp.iter().map(|c| c.bound()).fold(0.0, f64::max);
                    if bound > 999.0 {
                        self.d.error(
                            *pos,
                            "a session count over a window compares against at most 999",
                        );
                    }
                    let cap = (bound.ceil() as usize).saturating_add(1).clamp(1, 1000);
                    let matcher = Matcher {
                        name: NameMatch::Any,
                        filters: vec![],
                        event_id: None,
                    };
                    let slot = self.slot(
                        SlotKind::SessionStarts { cap },
                        matcher,
                        None,
                        false,
                        format!("sessions started in the last {w}"),
                    );
                    (slot, w)
                });
                CCond::Sessions {
                    window,
                    cmp: cmp.clone(),
                }
            }
            Cond::InSegment(s) => match self.segment_ids.get(s.value.as_str()) {
                Some(&i) => CCond::InSegment(i),
                None => {
                    super::ids::unknown(self.d, "segment", s, self.segment_ids.keys().copied());
                    CCond::All(vec![])
                }
            },
            Cond::Traits(filters) => CCond::Traits(
                filters
                    .iter()
                    .map(|f| {
                        let path = split_path(&f.path.value);
                        if let Some(first) = path.first() {
                            self.traits.insert(first.clone());
                        }
                        CFilter {
                            path,
                            op: f.op.clone(),
                        }
                    })
                    .collect(),
            ),
            Cond::Properties(filters) => {
                if ctx == Ctx::Segment {
                    if let Some(f) = filters.first() {
                        self.d.error(f.path.pos, "`properties` reads the triggering event; segments have none (use `count` with `where`)");
                    }
                }
                CCond::Props(
                    filters
                        .iter()
                        .map(|f| CFilter {
                            path: split_path(&f.path.value),
                            op: f.op.clone(),
                        })
                        .collect(),
                )
            }
        }
    }
}

/// The triggering event's properties a condition reads (kept with a pending wait).
pub(super) fn collect_props(c: &Cond, out: &mut BTreeSet<String>) {
    match c {
        Cond::All(v) | Cond::Any(v) => v.iter().for_each(|c| collect_props(c, out)),
        Cond::Not(c) => collect_props(c, out),
        Cond::Properties(fs) => out.extend(
            fs.iter()
                .filter_map(|f| split_path(&f.path.value).into_iter().next()),
        ),
        Cond::Count { occ, .. } => {
            if let Some(p) = &occ.per {
                out.extend(split_path(&p.value).into_iter().next());
            }
        }
        _ => {}
    }
}
