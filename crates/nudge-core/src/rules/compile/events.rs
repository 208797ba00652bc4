//! Event references checked against the tracking plan and turned into matchers; event
//! references and filters in words.

use super::{split_path, Compiler};
use crate::plan::{PropertyType, TrackingPlan};
use crate::rules::compiled::{CFilter, Matcher, NameMatch};
use crate::rules::model::{EventMatch, FilterOp, Sp};
use crate::rules::yaml::closest;

impl Compiler<'_> {
    fn plan(&self) -> &TrackingPlan {
        &self.set.plan
    }

    /// Checks an event name against the tracking plan.
    fn event_name(&mut self, name: &Sp<String>) -> NameMatch {
        if name.value == "*" {
            return NameMatch::Any;
        }
        let is_page = name.value.starts_with("page:") || name.value.starts_with("screen:");
        // nudge's own engagement events are no product's: no plan lists them.
        let is_engagement = crate::event::engagement::is_engagement(&name.value);
        if !is_page
            && !is_engagement
            && !self.plan().events.is_empty()
            && !self.plan().events.contains_key(&name.value)
        {
            let names: Vec<&str> = self.plan().events.keys().map(|s| s.as_str()).collect();
            let hint = closest(&name.value, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.d.error(
                name.pos,
                format!("event `{}` is not in the tracking plan{hint}", name.value),
            );
        }
        NameMatch::Name(name.value.clone())
    }

    fn property_type(&self, event: &str, path: &str) -> Option<Option<PropertyType>> {
        let spec = self.plan().events.get(event)?;
        match spec.properties.get(path) {
            Some(p) => Some(Some(p.ty)),
            None if spec.allow_unknown_properties && spec.properties.is_empty() => None,
            None => Some(None),
        }
    }

    /// Checks that a property exists on an event and that a filter's literal fits its type.
    pub(super) fn check_property(
        &mut self,
        event: &NameMatch,
        path: &Sp<String>,
        op: Option<&FilterOp>,
    ) {
        let NameMatch::Name(ev) = event else { return };
        let Some(found) = self.property_type(ev, &path.value) else {
            return;
        };
        let Some(ty) = found else {
            let spec = &self.set.plan.events[ev.as_str()];
            let names: Vec<&str> = spec.properties.keys().map(|s| s.as_str()).collect();
            let hint = closest(&path.value, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.d.error(
                path.pos,
                format!(
                    "event `{ev}` has no property `{}` in the tracking plan{hint}",
                    path.value
                ),
            );
            return;
        };
        let Some(op) = op else { return };
        let numeric = matches!(ty, PropertyType::Integer | PropertyType::Number);
        let fits = |v: &serde_json::Value| match ty {
            PropertyType::String => v.is_string(),
            PropertyType::Integer => v.as_f64().is_some_and(|x| x.fract() == 0.0),
            PropertyType::Number => v.is_number(),
            PropertyType::Boolean => v.is_boolean(),
            PropertyType::Object => v.is_object(),
            PropertyType::Array => v.is_array(),
            PropertyType::Any => true,
        } || v.is_null();
        let bad = match op {
            FilterOp::Eq(v) | FilterOp::Ne(v) => (!fits(v)).then(|| v.to_string()),
            FilterOp::In(vs) | FilterOp::NotIn(vs) => {
                vs.iter().find(|v| !fits(v)).map(|v| v.to_string())
            }
            FilterOp::Gt(_) | FilterOp::Gte(_) | FilterOp::Lt(_) | FilterOp::Lte(_) => {
                (!numeric && ty != PropertyType::Any).then(|| "a numeric comparison".to_string())
            }
            FilterOp::Contains(_) => (!matches!(
                ty,
                PropertyType::String | PropertyType::Array | PropertyType::Any
            ))
            .then(|| "`contains`".to_string()),
            FilterOp::Exists(_) => None,
        };
        if let Some(bad) = bad {
            self.d.error(
                path.pos,
                format!(
                    "property `{}` of `{ev}` is {} in the tracking plan; {bad} cannot match it",
                    path.value,
                    type_name(ty)
                ),
            );
        }
    }

    pub(super) fn matcher(&mut self, m: &EventMatch) -> Matcher {
        let name = self.event_name(&m.name);
        let filters = m
            .filters
            .iter()
            .map(|f| {
                self.check_property(&name, &f.path, Some(&f.op));
                CFilter {
                    path: split_path(&f.path.value),
                    op: f.op.clone(),
                }
            })
            .collect();
        Matcher {
            name,
            filters,
            event_id: None,
        }
    }
}

/// An event reference in words, for slot labels.
pub(super) fn describe(m: &EventMatch) -> String {
    if m.filters.is_empty() {
        format!("`{}`", m.name.value)
    } else {
        let fs: Vec<String> = m
            .filters
            .iter()
            .map(|f| format!("{} {}", f.path.value, op_text(&f.op)))
            .collect();
        format!("`{}` where {}", m.name.value, fs.join(", "))
    }
}

/// A filter operation in words, for labels and `explain`.
pub fn op_text(op: &FilterOp) -> String {
    match op {
        FilterOp::Eq(v) => format!("= {v}"),
        FilterOp::Ne(v) => format!("!= {v}"),
        FilterOp::Gt(v) => format!("> {v}"),
        FilterOp::Gte(v) => format!(">= {v}"),
        FilterOp::Lt(v) => format!("< {v}"),
        FilterOp::Lte(v) => format!("<= {v}"),
        FilterOp::In(v) => format!("in {}", serde_json::Value::Array(v.clone())),
        FilterOp::NotIn(v) => format!("not in {}", serde_json::Value::Array(v.clone())),
        FilterOp::Exists(b) => {
            if *b {
                "exists".into()
            } else {
                "is absent".into()
            }
        }
        FilterOp::Contains(s) => format!("contains {s:?}"),
    }
}

fn type_name(t: PropertyType) -> &'static str {
    match t {
        PropertyType::String => "a string",
        PropertyType::Integer => "an integer",
        PropertyType::Number => "a number",
        PropertyType::Boolean => "a boolean",
        PropertyType::Object => "an object",
        PropertyType::Array => "an array",
        PropertyType::Any => "any value",
    }
}
