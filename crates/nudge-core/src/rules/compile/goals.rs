//! Goals: their event checked against the tracking plan, their value a numeric property, and
//! the `goal:` references of triggers and experiments resolved.

use super::{split_path, Compiler};
use crate::plan::PropertyType;
use crate::rules::compiled::{stable_id, CGoal, CGoalRef, Matcher, NameMatch};
use crate::rules::model::{EventMatch, GoalDef, GoalRef};

impl Compiler<'_> {
    pub(super) fn goal(&mut self, g: &GoalDef) -> CGoal {
        let event = self.named_matcher(&g.event, &format!("goal `{}`", g.id.value));
        if let Some(v) = &g.value {
            self.check_property(&event.name, v, None);
            if let NameMatch::Name(ev) = &event.name {
                let ty = self
                    .set
                    .plan
                    .events
                    .get(ev)
                    .and_then(|spec| spec.properties.get(&v.value))
                    .map(|p| p.ty);
                if let Some(ty) = ty {
                    if !matches!(
                        ty,
                        PropertyType::Integer | PropertyType::Number | PropertyType::Any
                    ) {
                        self.d.error(
                            v.pos,
                            format!(
                                "a goal's `value` is a number, but `{}` of `{ev}` is not one in the tracking plan",
                                v.value
                            ),
                        );
                    }
                }
            }
        }
        CGoal {
            id: g.id.value.as_str().into(),
            stable_id: stable_id(&g.id.value),
            event,
            value: g.value.as_ref().map(|v| split_path(&v.value)),
        }
    }

    /// A matcher for an event that must be named (goals and funnel steps count one event, not
    /// any activity).
    pub(super) fn named_matcher(&mut self, m: &EventMatch, what: &str) -> Matcher {
        if m.name.value == "*" {
            self.d.error(
                m.name.pos,
                format!("{what} names an event; `*` (any activity) cannot be one"),
            );
        }
        self.matcher(m)
    }

    /// A trigger's or an experiment's `goal:`, or `None` (reported) when the goal is unknown.
    pub(super) fn goal_ref(&mut self, r: &GoalRef) -> Option<CGoalRef> {
        match self.goal_ids.get(r.id.value.as_str()) {
            Some(&goal) => Some(CGoalRef {
                goal,
                within: r.within,
            }),
            None => {
                super::ids::unknown(self.d, "goal", &r.id, self.goal_ids.keys().copied());
                None
            }
        }
    }
}
