//! The `tracking_plan` section: the events the product sends and their properties.

use crate::plan::{EventSpec, PropertySpec, PropertyType};
use crate::rules::model::RuleSet;
use crate::rules::yaml::{to_json, Diagnostics, Reader};
use marked_yaml::Node;

pub(super) fn parse_plan(r: Reader, n: &Node, set: &mut RuleSet, d: &mut Diagnostics) {
    let Some(m) = r.map(n, "tracking_plan", d) else {
        return;
    };
    r.check_keys(m, &["allow_unknown_events", "events"], "tracking_plan", d);
    if let Some(v) = m.get_node("allow_unknown_events") {
        if let Some(b) = r.boolean(v, "allow_unknown_events", d) {
            set.plan.allow_unknown_events = b;
        }
    }
    let Some(events) = m.get_node("events") else {
        return;
    };
    let Some(events) = r.map(events, "tracking_plan.events", d) else {
        return;
    };
    for (name, spec) in events.iter() {
        let what = format!("event `{}`", name.as_str());
        let mut ev = EventSpec {
            properties: Default::default(),
            allow_unknown_properties: true,
        };
        match spec {
            Node::Scalar(s)
                if s.as_str().is_empty() || s.as_str() == "null" || s.as_str() == "~" => {}
            _ => {
                if let Some(sm) = r.map(spec, &what, d) {
                    r.check_keys(
                        sm,
                        &["description", "properties", "allow_unknown_properties"],
                        &what,
                        d,
                    );
                    if let Some(v) = sm.get_node("allow_unknown_properties") {
                        if let Some(b) = r.boolean(v, "allow_unknown_properties", d) {
                            ev.allow_unknown_properties = b;
                        }
                    }
                    if let Some(props) = sm.get_node("properties") {
                        if let Some(pm) = r.map(props, "properties", d) {
                            for (pname, pspec) in pm.iter() {
                                if let Some(p) = parse_property(r, pname.as_str(), pspec, d) {
                                    ev.properties.insert(pname.as_str().to_string(), p);
                                }
                            }
                        }
                    }
                }
            }
        }
        set.plan_positions
            .insert(name.as_str().to_string(), r.key_pos(name));
        set.plan.events.insert(name.as_str().to_string(), ev);
    }
}

fn parse_property(r: Reader, name: &str, n: &Node, d: &mut Diagnostics) -> Option<PropertySpec> {
    let ty_of = |node: &Node, d: &mut Diagnostics| -> Option<PropertyType> {
        let s = r.string(node, "type", d)?;
        match s.value.parse::<PropertyType>() {
            Ok(t) => Some(t),
            Err(_) => {
                d.error(
                    s.pos,
                    format!("unknown property type `{}` (use string, integer, number, boolean, object, array or any)", s.value),
                );
                None
            }
        }
    };
    let mut spec = PropertySpec {
        ty: PropertyType::Any,
        required: false,
        min: None,
        max: None,
        one_of: None,
    };
    match n {
        Node::Scalar(_) => spec.ty = ty_of(n, d)?,
        _ => {
            let m = r.map(n, &format!("property `{name}`"), d)?;
            r.check_keys(
                m,
                &["type", "required", "min", "max", "one_of", "description"],
                &format!("property `{name}`"),
                d,
            );
            if let Some(t) = m.get_node("type") {
                spec.ty = ty_of(t, d)?;
            }
            if let Some(v) = m.get_node("required") {
                spec.required = r.boolean(v, "required", d).unwrap_or(false);
            }
            if let Some(v) = m.get_node("min") {
                spec.min = r.number(v, "min", d);
            }
            if let Some(v) = m.get_node("max") {
                spec.max = r.number(v, "max", d);
            }
            if let Some(v) = m.get_node("one_of") {
                if let Some(items) = r.list(v, "one_of", d) {
                    spec.one_of = Some(items.into_iter().map(to_json).collect());
                }
            }
        }
    }
    Some(spec)
}
