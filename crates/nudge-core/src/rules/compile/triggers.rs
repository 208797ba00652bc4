//! Triggers: their start, gates, wait, cancels, experiment, message and `data` checked and
//! compiled, and the properties to keep from the triggering event.

use super::conditions::collect_props;
use super::events::describe;
use super::ids::unknown;
use super::messages::message_paths;
use super::{split_path, Compiler, Ctx};
use crate::rules::compiled::{
    stable_id, CCancel, CData, COn, COnce, CTrigger, NameMatch, SlotKind,
};
use crate::rules::model::{DataSpec, On, Once, Sp, TriggerDef};
use std::collections::BTreeSet;

impl Compiler<'_> {
    /// A trigger, or `None` when the segment or message it names is unknown (reported).
    pub(super) fn trigger(&mut self, t: &TriggerDef) -> Option<CTrigger> {
        let on = match &t.on {
            On::Event(m) => COn::Event(self.matcher(m)),
            On::SegmentEntered(s) | On::SegmentExited(s) => {
                let Some(&i) = self.segment_ids.get(s.value.as_str()) else {
                    unknown(self.d, "segment", s, self.segment_ids.keys().copied());
                    return None;
                };
                if matches!(t.on, On::SegmentEntered(_)) {
                    COn::SegmentEntered(i)
                } else {
                    COn::SegmentExited(i)
                }
            }
        };
        let on_name = match &on {
            COn::Event(m) => m.name.clone(),
            _ => NameMatch::Any,
        };
        let ctx = if matches!(on, COn::Event(_)) {
            Ctx::Event
        } else {
            Ctx::Segment
        };
        let when = t.when.as_ref().map(|c| self.cond(c, ctx));
        let check = t.check.as_ref().map(|c| self.cond(c, ctx));
        let exit = t.exit.as_ref().map(|c| self.cond(c, ctx));
        if t.wait.is_none() {
            let needs_wait = [
                (t.rearm, "rearm"),
                (!t.cancel_on.is_empty(), "cancel_on"),
                (t.check.is_some(), "check"),
                (t.exit.is_some(), "exit"),
            ];
            for (used, key) in needs_wait {
                if used {
                    self.d.error(
                        t.id.pos,
                        format!("trigger `{}` uses `{key}` but has no `wait`", t.id.value),
                    );
                }
            }
        }
        let mut captured: BTreeSet<String> = BTreeSet::new();
        let cancel_on = t
            .cancel_on
            .iter()
            .map(|c| {
                let event = self.matcher(&c.event);
                let same = c
                    .same
                    .iter()
                    .map(|p| {
                        self.check_property(&on_name, p, None);
                        self.check_property(&event.name, p, None);
                        captured.insert(p.value.clone());
                        split_path(&p.value)
                    })
                    .collect();
                CCancel { event, same }
            })
            .collect();
        let once = match &t.once {
            Once::Never => COnce::Never,
            Once::User => COnce::User,
            Once::Session => COnce::Session,
            Once::PerProperty(p) => {
                self.check_property(&on_name, p, None);
                captured.insert(p.value.clone());
                COnce::PerProperty(split_path(&p.value))
            }
        };
        for c in [&t.when, &t.check, &t.exit].into_iter().flatten() {
            collect_props(c, &mut captured);
        }
        let experiment =
            t.experiment
                .as_ref()
                .and_then(|e| match self.experiment_ids.get(e.value.as_str()) {
                    Some(&i) => Some(i),
                    None => {
                        unknown(self.d, "experiment", e, self.experiment_ids.keys().copied());
                        None
                    }
                });
        if let Some(i) = experiment {
            let exp = &self.set.experiments[i];
            if t.wait.is_none() {
                if let Some(v) = exp.variants.iter().find(|v| v.wait.is_some()) {
                    self.d.error(
                        v.name.pos,
                        format!(
                            "variant `{}` sets `wait` but trigger `{}` has no `wait`",
                            v.name.value, t.id.value
                        ),
                    );
                }
            }
            let msg = self
                .message_ids
                .get(t.message.value.as_str())
                .map(|&m| &self.set.messages[m]);
            for v in &exp.variants {
                if let (Some(content), None, Some(msg)) = (&v.content, &v.message, msg) {
                    if !msg.variants.iter().any(|cv| cv.name.value == content.value) {
                        self.d.error(
                            content.pos,
                            format!(
                                "message `{}` has no content variant `{}`",
                                msg.id.value, content.value
                            ),
                        );
                    }
                }
            }
        }
        let message = self.message_ref(&t.message)?;
        let msg = &self.set.messages[message];
        if msg.channel != t.channel.value {
            self.d.error(
                t.channel.pos,
                format!(
                    "trigger sends on {} but message `{}` is for {}",
                    t.channel.value.as_str(),
                    msg.id.value,
                    msg.channel.as_str()
                ),
            );
        }
        // Properties the message's templates read from the triggering event.
        for path in message_paths(msg) {
            if path.first().map(String::as_str) == Some("properties") && path.len() > 1 {
                captured.insert(path[1].clone());
            }
            if path.first().map(String::as_str) == Some("traits") && path.len() > 1 {
                self.traits.insert(path[1].clone());
            }
        }
        let data = t
            .data
            .iter()
            .map(|(name, spec)| {
                let cd = match spec {
                    DataSpec::Collect { occ, fields, max } => {
                        let event = self.matcher(&occ.event);
                        for f in fields {
                            self.check_property(
                                &event.name,
                                &Sp::new(f.clone(), occ.event.name.pos),
                                None,
                            );
                        }
                        let reset = occ.since.as_ref().map(|s| self.matcher(s));
                        let slot = self.slot(
                            SlotKind::Collect {
                                fields: fields.clone(),
                                max: *max,
                            },
                            event,
                            reset,
                            occ.in_session,
                            format!("recent {}", describe(&occ.event)),
                        );
                        CData::Collect {
                            slot,
                            fields: fields.clone(),
                        }
                    }
                    // A window count rendered into a message saturates at this many.
                    DataSpec::Count(occ) => {
                        let (slot, per) = self.count_slot(occ, 49.0, ctx);
                        CData::Count { slot, per }
                    }
                };
                (name.clone(), cd)
            })
            .collect();
        Some(CTrigger {
            id: t.id.value.clone().into(),
            stable_id: stable_id(&t.id.value),
            priority: t.priority,
            on,
            when,
            wait: t.wait.as_ref().map(|w| w.value),
            rearm: t.rearm,
            cancel_on,
            check,
            exit,
            once,
            cooldown: t.cooldown,
            experiment,
            goal: t.goal.as_ref().and_then(|g| self.goal_ref(g)),
            // Filled in by `compile` once messages and experiments are compiled.
            variant_names: vec![],
            channel: t.channel.value,
            message,
            data,
            once_name: match &t.once {
                Once::PerProperty(p) => Some(p.value.clone()),
                _ => None,
            },
            once_path: match &t.once {
                Once::PerProperty(p) => Some(split_path(&p.value)),
                _ => None,
            },
            captured_paths: captured.iter().map(|p| split_path(p)).collect(),
            captured: captured.into_iter().collect(),
        })
    }
}
