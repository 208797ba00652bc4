//! Slots: the occurrence counts and times a user's state keeps, one per distinct question
//! (equal questions from several rules share a slot).

use super::events::describe;
use super::{split_path, Compiler, Ctx, PER_KEY_CAP};
use crate::rules::compiled::{stable_id, Matcher, SlotKind, SlotSpec};
use crate::rules::model::{EventMatch, Occurrences};

impl Compiler<'_> {
    /// The slot for a question, shared with an equal one asked before.
    pub(super) fn slot(
        &mut self,
        kind: SlotKind,
        event: Matcher,
        reset: Option<Matcher>,
        in_session: bool,
        label: String,
    ) -> usize {
        let key = format!("{kind:?}|{event:?}|{reset:?}|{in_session}");
        if let Some(&i) = self.slot_keys.get(&key) {
            return i;
        }
        let mut id = stable_id(&key);
        while self.slots.iter().any(|s| s.id == id) {
            id = id.wrapping_add(1);
        }
        self.slots.push(SlotSpec {
            id,
            kind,
            event,
            reset,
            in_session,
            label,
        });
        self.slot_keys.insert(key, self.slots.len() - 1);
        self.slots.len() - 1
    }

    fn first_slot(&mut self, m: &EventMatch) -> usize {
        let matcher = self.matcher(m);
        self.slot(
            SlotKind::First,
            matcher,
            None,
            false,
            format!("first {}", describe(m)),
        )
    }

    /// The slot answering a count over `occ`, given the largest bound compared.
    pub(super) fn count_slot(
        &mut self,
        occ: &Occurrences,
        bound: f64,
        ctx: Ctx,
    ) -> (usize, Option<Vec<String>>) {
        let event = self.matcher(&occ.event);
        let reset = occ.since.as_ref().map(|s| self.matcher(s));
        let mut label = format!("count of {}", describe(&occ.event));
        if let Some(s) = &occ.since {
            label.push_str(&format!(" since the last {}", describe(s)));
        }
        if occ.in_session {
            label.push_str(" in this session");
        }
        if let Some(per) = &occ.per {
            if ctx == Ctx::Segment {
                self.d.error(
                    per.pos,
                    "`per` needs an event to read the property from; segments have none",
                );
            }
            self.check_property(&event.name, per, None);
            if occ.in_session {
                self.d
                    .error(per.pos, "`per` and `in_session` cannot be combined");
            }
            let property = split_path(&per.value);
            label.push_str(&format!(" with the same `{}`", per.value));
            let slot = self.slot(
                SlotKind::PerKey {
                    property: property.clone(),
                    cap: PER_KEY_CAP,
                },
                event,
                reset,
                occ.in_session,
                label,
            );
            return (slot, Some(property));
        }
        let slot = match (&occ.after, occ.within) {
            (Some(anchor), Some(within)) => {
                let anchor_slot = self.first_slot(anchor);
                label.push_str(&format!(
                    " within {within} after the first {}",
                    describe(anchor)
                ));
                self.slot(
                    SlotKind::Anchored {
                        anchor: anchor_slot,
                        within,
                    },
                    event,
                    reset,
                    occ.in_session,
                    label,
                )
            }
            (None, Some(within)) => {
                let cap = (bound.ceil() as usize).saturating_add(1).clamp(1, 1000);
                label.push_str(&format!(" in the last {within}"));
                self.slot(
                    SlotKind::Window { within, cap },
                    event,
                    reset,
                    occ.in_session,
                    label,
                )
            }
            _ => self.slot(SlotKind::Count, event, reset, occ.in_session, label),
        };
        (slot, None)
    }
}
