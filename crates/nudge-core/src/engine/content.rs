//! Which content a send carries: the message (an experiment variant's, or the trigger's), the
//! content variant whose `when` holds and whose required data is present, and the data its
//! templates see (traits, the triggering event's properties, computed data).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::conditions::{lookup, Ctx, Props};
use super::decision::{decision_id, Outcome, Send, SendContext};
use super::{Candidate, Engine};
use crate::rules::compiled::{CData, CMessage, CTrigger, CompiledRules};
use crate::state::{Scalar, SlotValue, UserState};
use crate::time::Millis;

impl Engine<'_> {
    pub(super) fn make_send(
        &self,
        state: &mut UserState,
        user_id: &str,
        c: &Candidate,
        at: Millis,
        out: &mut Outcome,
    ) -> Send {
        let t = &self.rules.triggers[c.trigger];
        let mut message = t.message;
        let mut experiment = None;
        let mut exp_variant: Option<(Arc<str>, Option<Arc<str>>)> = None;
        if let Some(ei) = t.experiment {
            let exp = &self.rules.experiments[ei];
            let v = self.assign_arm(state, user_id, ei, at, out);
            experiment = Some(exp.id.clone());
            match exp.variants.get(usize::from(v)) {
                Some(var) => {
                    if let Some(m) = var.message {
                        message = m;
                    }
                    exp_variant = Some((var.name.clone(), var.content.clone()));
                }
                None => exp_variant = Some((exp.holdout_name.clone(), None)),
            }
        }
        let msg = &self.rules.messages[message];
        let variant_of = |content: &Arc<str>| match &exp_variant {
            Some((name, _)) => name.clone(),
            None => content.clone(),
        };
        let mut send = Send {
            id: decision_id(user_id, &t.id, c.occurrence),
            at,
            user_id: user_id.to_string(),
            trigger: t.id.clone(),
            priority: t.priority,
            channel: t.channel,
            message: msg.id.clone(),
            variant: msg.default_name.clone(),
            content: msg.default_name.clone(),
            experiment,
            reason: None,
            context: SendContext::default(),
        };
        send.content = match &exp_variant {
            Some((_, Some(content))) => content.clone(),
            // Template globals are built only when a content variant's `requires` reads them;
            // sends that go out get their context in `with_context`.
            _ if msg.variants.iter().any(|v| !v.requires.is_empty()) => {
                send.context = template_context(self.rules, state, t, &c.props, c.origin, at);
                let globals = send.context.globals(&send);
                send.context = SendContext::default();
                choose_content(self.rules, state, msg, &c.props, &globals, at)
            }
            _ => choose_content(self.rules, state, msg, &c.props, &Map::new(), at),
        };
        send.variant = variant_of(&send.content);
        send
    }

    /// Adds the template context to a send that goes out.
    pub(super) fn with_context(&self, state: &UserState, c: &Candidate, mut send: Send) -> Send {
        let t = &self.rules.triggers[c.trigger];
        send.context = template_context(self.rules, state, t, &c.props, c.origin, send.at);
        send
    }
}

/// The data templates see: traits, the triggering event's properties, computed data.
pub fn template_context(
    rules: &CompiledRules,
    state: &UserState,
    t: &CTrigger,
    props: &[(String, Scalar)],
    origin: Millis,
    at: Millis,
) -> SendContext {
    let eval = Ctx {
        rules,
        state,
        now: at,
        props: Props::Captured(props),
    };
    let data = t
        .data
        .iter()
        .map(|(name, spec)| {
            let v = match spec {
                CData::Collect { slot, fields } => match &state.slots[*slot] {
                    SlotValue::Items(items) => Value::Array(
                        items
                            .iter()
                            .map(|row| {
                                Value::Object(
                                    fields
                                        .iter()
                                        .cloned()
                                        .zip(row.iter().map(Scalar::to_json))
                                        .collect(),
                                )
                            })
                            .collect(),
                    ),
                    _ => Value::Array(vec![]),
                },
                CData::Count { slot, per } => Value::from(eval.count(*slot, per.as_deref())),
            };
            (name.clone(), v)
        })
        .collect();
    SendContext {
        traits: state.traits.clone(),
        properties: props.to_vec(),
        data,
        origin,
    }
}

/// The first content variant whose `when` holds and whose required data is present.
pub fn choose_content(
    rules: &CompiledRules,
    state: &UserState,
    msg: &CMessage,
    props: &[(String, Scalar)],
    context: &Map<String, Value>,
    at: Millis,
) -> Arc<str> {
    let ctx = Ctx {
        rules,
        state,
        now: at,
        props: Props::Captured(props),
    };
    for v in &msg.variants {
        let when_ok = v.when.as_ref().is_none_or(|c| ctx.holds(c));
        let data_ok = v.requires.iter().all(|p| present(lookup(context, p)));
        if when_ok && data_ok {
            return v.name.clone();
        }
    }
    msg.default_name.clone()
}

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}
