//! The `triggers` section: what starts a trigger, its wait, gates and send, and its `data`.

use super::conditions::{parse_cond, parse_occurrences, OCC_KEYS};
use super::events::{parse_event_match, parse_filters};
use super::goals::parse_goal_ref;
use crate::rules::model::{
    CancelOn, Channel, DataSpec, EventMatch, On, Once, Priority, Sp, TriggerDef,
};
use crate::rules::yaml::{Diagnostics, Reader};
use marked_yaml::Node;

const TRIGGER_KEYS: &[&str] = &[
    "description",
    "priority",
    "on",
    "if",
    "wait",
    "rearm",
    "cancel_on",
    "check",
    "exit",
    "once",
    "cooldown",
    "experiment",
    "goal",
    "send",
    "data",
];

pub(super) fn parse_trigger(
    r: Reader,
    id: Sp<String>,
    n: &Node,
    d: &mut Diagnostics,
) -> Option<TriggerDef> {
    let what = format!("trigger `{}`", id.value);
    let m = r.map(n, &what, d)?;
    r.check_keys(m, TRIGGER_KEYS, &what, d);
    let errors_before = d.errors.len();
    let description = m
        .get_node("description")
        .and_then(|v| r.text(v, "description", d))
        .map(|s| s.value);
    let priority = match m.get_node("priority") {
        None => Priority::Low,
        Some(v) => match r.string(v, "priority", d)?.value.as_str() {
            "urgent" => Priority::Urgent,
            "high" => Priority::High,
            "low" => Priority::Low,
            other => {
                d.error(
                    r.pos(v),
                    format!("unknown priority `{other}` (use urgent, high or low)"),
                );
                Priority::Low
            }
        },
    };
    let on_node = r.required(m, "on", &what, d)?;
    let on = match on_node {
        Node::Mapping(om)
            if om.get_node("segment_entered").is_some()
                || om.get_node("segment_exited").is_some() =>
        {
            r.check_keys(om, &["segment_entered", "segment_exited"], "on", d);
            if om.get_node("segment_entered").is_some() && om.get_node("segment_exited").is_some() {
                d.error(
                    r.pos(on_node),
                    "`on` takes one of `segment_entered` or `segment_exited`; write two triggers",
                );
            }
            if let Some(v) = om.get_node("segment_entered") {
                On::SegmentEntered(r.string(v, "segment_entered", d)?)
            } else {
                On::SegmentExited(r.string(om.get_node("segment_exited")?, "segment_exited", d)?)
            }
        }
        _ => On::Event(parse_event_match(r, on_node, "on", d)?),
    };
    let when = match m.get_node("if") {
        Some(v) => Some(parse_cond(r, v, &format!("{what} `if`"), d)?),
        None => None,
    };
    let wait = m.get_node("wait").and_then(|v| r.duration(v, "wait", d));
    let rearm = m
        .get_node("rearm")
        .and_then(|v| r.boolean(v, "rearm", d))
        .unwrap_or(false);
    let mut cancel_on = Vec::new();
    if let Some(v) = m.get_node("cancel_on") {
        for item in r.one_or_many(v) {
            let (ev_node, same) = match item {
                Node::Mapping(cm) if cm.get_node("same").is_some() => {
                    r.check_keys(cm, &["event", "where", "same"], "cancel_on", d);
                    let same = cm
                        .get_node("same")
                        .map(|s| r.strings(s, "same", d))
                        .unwrap_or_default();
                    (item, same)
                }
                _ => (item, vec![]),
            };
            let event = match ev_node {
                Node::Mapping(cm) => {
                    let name = r.string(r.required(cm, "event", "cancel_on", d)?, "event", d)?;
                    let filters = match cm.get_node("where") {
                        Some(w) => parse_filters(r, w, "where", d)?,
                        None => vec![],
                    };
                    if cm.get_node("same").is_none() {
                        r.check_keys(cm, &["event", "where", "same"], "cancel_on", d);
                    }
                    EventMatch { name, filters }
                }
                other => parse_event_match(r, other, "cancel_on", d)?,
            };
            cancel_on.push(CancelOn { event, same });
        }
    }
    let check = match m.get_node("check") {
        Some(v) => Some(parse_cond(r, v, &format!("{what} `check`"), d)?),
        None => None,
    };
    let exit = match m.get_node("exit") {
        Some(v) => Some(parse_cond(r, v, &format!("{what} `exit`"), d)?),
        None => None,
    };
    let once = match m.get_node("once") {
        None => Once::Never,
        Some(Node::Mapping(om)) => {
            r.check_keys(om, &["per"], "once", d);
            Once::PerProperty(r.string(r.required(om, "per", "once", d)?, "per", d)?)
        }
        Some(v) => match r.string(v, "once", d)?.value.as_str() {
            "user" => Once::User,
            "session" => Once::Session,
            "never" | "false" => Once::Never,
            other => {
                d.error(r.pos(v), format!("unknown `once` value `{other}` (use user, session, or `{{per: PROPERTY}}`)"));
                Once::Never
            }
        },
    };
    let cooldown = m
        .get_node("cooldown")
        .and_then(|v| r.duration(v, "cooldown", d))
        .map(|s| s.value);
    let experiment = m
        .get_node("experiment")
        .and_then(|v| r.string(v, "experiment", d));
    let goal = m.get_node("goal").and_then(|v| parse_goal_ref(r, v, d));
    let send = r.required(m, "send", &what, d)?;
    let sm = r.map(send, "send", d)?;
    r.check_keys(sm, &["channel", "message"], "send", d);
    let ch_node = r.required(sm, "channel", "send", d)?;
    let ch = r.string(ch_node, "channel", d)?;
    let channel = match Channel::parse(&ch.value) {
        Some(c) => Sp::new(c, ch.pos),
        None => {
            d.error(
                ch.pos,
                format!(
                    "unknown channel `{}` (use email, in_app or webhook)",
                    ch.value
                ),
            );
            return None;
        }
    };
    let message = r.string(r.required(sm, "message", "send", d)?, "message", d)?;
    let mut data = Vec::new();
    if let Some(v) = m.get_node("data") {
        if let Some(dm) = r.map(v, "data", d) {
            for (k, spec) in dm.iter() {
                if let Some(ds) = parse_data(r, spec, d) {
                    data.push((k.as_str().to_string(), ds));
                }
            }
        }
    }
    if d.errors.len() > errors_before {
        return None;
    }
    Some(TriggerDef {
        id,
        description,
        priority,
        on,
        when,
        wait,
        rearm,
        cancel_on,
        check,
        exit,
        once,
        cooldown,
        experiment,
        goal,
        channel,
        message,
        data,
    })
}

fn parse_data(r: Reader, n: &Node, d: &mut Diagnostics) -> Option<DataSpec> {
    let m = r.map(n, "data item", d)?;
    if let Some(body) = m.get_node("collect") {
        r.check_keys(
            m,
            &["collect", "where", "since", "fields", "max"],
            "a `collect` data item",
            d,
        );
        let occ = parse_occurrences(r, body, m, "collect", d)?;
        let fields: Vec<String> = r
            .strings(r.required(m, "fields", "collect", d)?, "fields", d)
            .into_iter()
            .map(|s| s.value)
            .collect();
        let max = m
            .get_node("max")
            .and_then(|v| r.whole(v, "max", d))
            .unwrap_or(10);
        if max == 0 || max > 50 {
            d.error(
                r.pos(n),
                "collect `max` must be between 1 and 50 (state stays small)",
            );
        }
        Some(DataSpec::Collect {
            occ,
            fields,
            max: max.clamp(1, 50) as usize,
        })
    } else if let Some(body) = m.get_node("count") {
        let mut keys = OCC_KEYS.to_vec();
        keys.push("count");
        r.check_keys(m, &keys, "data item", d);
        Some(DataSpec::Count(parse_occurrences(r, body, m, "count", d)?))
    } else {
        d.error(
            r.pos(n),
            "a data item is `collect: EVENT` (with `fields`) or `count: EVENT`",
        );
        None
    }
}
