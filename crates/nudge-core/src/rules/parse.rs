//! Turns the YAML files of a rule set into the [`RuleSet`] model, collecting every error.

use super::model::*;
use super::yaml::{closest, scalar_value, to_json, Diagnostics, Reader};
use crate::plan::{EventSpec, PropertySpec, PropertyType};
use crate::time::time_zone;
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{LoaderOptions, Node};
use serde_json::Value;

const TOP_KEYS: &[&str] = &[
    "name",
    "settings",
    "tracking_plan",
    "segments",
    "triggers",
    "policies",
    "experiments",
    "messages",
];

/// Parses one file's text into `set`, appending errors to `d`.
pub fn parse_file(file: usize, text: &str, set: &mut RuleSet, d: &mut Diagnostics) {
    if text.trim().is_empty() {
        return;
    }
    let opts = LoaderOptions::default().error_on_duplicate_keys(true);
    let root = match marked_yaml::parse_yaml_with_options(file, text, opts) {
        Ok(n) => n,
        Err(e) => {
            d.errors.push(load_error(
                file,
                &e,
                "a rule file must be a mapping of sections",
            ));
            return;
        }
    };
    let r = Reader { file };
    let Some(top) = r.map(&root, "a rule file", d) else {
        return;
    };
    r.check_keys(top, TOP_KEYS, "a rule file", d);
    if let Some(n) = top.get_node("name") {
        set.name = r.string(n, "name", d).map(|s| s.value);
    }
    if let Some(n) = top.get_node("settings") {
        parse_settings(r, n, set, d);
    }
    if let Some(n) = top.get_node("tracking_plan") {
        parse_plan(r, n, set, d);
    }
    if let Some(n) = top.get_node("segments") {
        if let Some(m) = r.map(n, "segments", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(seg) = parse_segment(r, id, v, d) {
                    set.segments.push(seg);
                }
            }
        }
    }
    if let Some(n) = top.get_node("triggers") {
        if let Some(m) = r.map(n, "triggers", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(t) = parse_trigger(r, id, v, d) {
                    set.triggers.push(t);
                }
            }
        }
    }
    if let Some(n) = top.get_node("policies") {
        parse_policies(r, n, set, d);
    }
    if let Some(n) = top.get_node("experiments") {
        if let Some(m) = r.map(n, "experiments", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(e) = parse_experiment(r, id, v, d) {
                    set.experiments.push(e);
                }
            }
        }
    }
    if let Some(n) = top.get_node("messages") {
        if let Some(m) = r.map(n, "messages", d) {
            for (k, v) in m.iter() {
                let id = Sp::new(k.as_str().to_string(), r.key_pos(k));
                if let Some(msg) = parse_message(r, id, v, d) {
                    set.messages.push(msg);
                }
            }
        }
    }
}

/// Where and why a YAML text could not be loaded; `top` says what the top level must be.
pub fn load_error(file: usize, e: &marked_yaml::LoadError, top: &str) -> (Pos, String) {
    use marked_yaml::LoadError::*;
    let at = |m: &marked_yaml::Marker| Pos {
        file,
        line: m.line(),
        col: m.column(),
    };
    match e {
        TopLevelMustBeMapping(m) => (at(m), top.to_string()),
        TopLevelMustBeSequence(m) => (at(m), "expected a list".into()),
        UnexpectedAnchor(m) => (at(m), "YAML anchors and aliases are not supported".into()),
        MappingKeyMustBeScalar(m) => (at(m), "mapping keys must be plain strings".into()),
        UnexpectedTag(m) => (at(m), "YAML tags are not supported".into()),
        ScanError(m, se) => (at(m), format!("YAML syntax error: {}", se.info())),
        DuplicateKey(inner) => {
            let p = inner.key.span().start().map(at).unwrap_or(Pos {
                file,
                line: 1,
                col: 1,
            });
            let first = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            (
                p,
                format!(
                    "duplicate key `{}` (first defined on line {first})",
                    inner.key.as_str()
                ),
            )
        }
    }
}

fn parse_settings(r: Reader, n: &Node, set: &mut RuleSet, d: &mut Diagnostics) {
    let Some(m) = r.map(n, "settings", d) else {
        return;
    };
    r.check_keys(
        m,
        &["default_timezone", "timezone_trait", "session_gap"],
        "settings",
        d,
    );
    if let Some(v) = m.get_node("default_timezone") {
        if let Some(tz) = r.string(v, "default_timezone", d) {
            if time_zone(&tz.value).is_none() {
                d.error(
                    tz.pos,
                    format!(
                        "unknown time zone `{}` (use an IANA name like Europe/Berlin)",
                        tz.value
                    ),
                );
            }
            set.settings.default_timezone = tz;
        }
    }
    if let Some(v) = m.get_node("timezone_trait") {
        if let Some(s) = r.string(v, "timezone_trait", d) {
            set.settings.timezone_trait = s.value;
        }
    }
    if let Some(v) = m.get_node("session_gap") {
        if let Some(g) = r.duration(v, "session_gap", d) {
            set.settings.session_gap = g.value;
        }
    }
}

fn parse_plan(r: Reader, n: &Node, set: &mut RuleSet, d: &mut Diagnostics) {
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

fn parse_segment(r: Reader, id: Sp<String>, n: &Node, d: &mut Diagnostics) -> Option<SegmentDef> {
    let what = format!("segment `{}`", id.value);
    let m = r.map(n, &what, d)?;
    let mut description = None;
    if let Some(v) = m.get_node("description") {
        description = r.text(v, "description", d).map(|s| s.value);
    }
    let condition = parse_cond_map(r, m, &what, &["description"], d)?;
    Some(SegmentDef {
        id,
        description,
        condition,
    })
}

const COND_KEYS: &[&str] = &[
    "all",
    "any",
    "not",
    "count",
    "ever",
    "never",
    "time_since",
    "idle",
    "sessions",
    "in_segment",
    "traits",
    "properties",
];
const OCC_KEYS: &[&str] = &["where", "within", "since", "after", "per", "in_session"];
const CMP_KEYS: &[&str] = &["at_least", "at_most", "exactly", "more_than", "less_than"];

/// Parses a condition: a mapping with one kind key, or a list (all of them).
pub fn parse_cond(r: Reader, n: &Node, what: &str, d: &mut Diagnostics) -> Option<Cond> {
    match n {
        Node::Sequence(seq) => {
            let items: Vec<Cond> = seq
                .iter()
                .filter_map(|c| parse_cond(r, c, what, d))
                .collect();
            Some(Cond::All(items))
        }
        Node::Mapping(m) => parse_cond_map(r, m, what, &[], d),
        other => {
            d.error(
                r.pos(other),
                format!("{what}: a condition must be a mapping such as `count: Feature Used` or a list of conditions"),
            );
            None
        }
    }
}

fn parse_cond_map(
    r: Reader,
    m: &MarkedMappingNode,
    what: &str,
    extra: &[&str],
    d: &mut Diagnostics,
) -> Option<Cond> {
    let kinds: Vec<_> = m
        .keys()
        .filter(|k| COND_KEYS.contains(&k.as_str()))
        .collect();
    let mpos = super::yaml::span_pos(r.file, m.span());
    let kind = match kinds.as_slice() {
        [] => {
            let unknown = m.keys().find(|k| !extra.contains(&k.as_str()));
            match unknown {
                Some(k) => {
                    let hint = closest(k.as_str(), COND_KEYS)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    d.error(
                        r.key_pos(k),
                        format!(
                            "unknown condition `{}` in {what}{hint}; conditions are: {}",
                            k.as_str(),
                            COND_KEYS.join(", ")
                        ),
                    );
                }
                None => d.error(
                    mpos,
                    format!(
                        "{what} needs a condition (one of: {})",
                        COND_KEYS.join(", ")
                    ),
                ),
            }
            return None;
        }
        [k] => *k,
        [_, second, ..] => {
            d.error(
                r.key_pos(second),
                format!("{what}: one condition per mapping; combine `{}` with others using `all:` or `any:`", second.as_str()),
            );
            return None;
        }
    };
    let body = m.get_node(kind.as_str())?;
    let kpos = r.key_pos(kind);
    let kind_str: &str = kind.as_str();
    fn allowed_keys<'k>(kind: &'k str, own: &[&'k str], extra: &[&'k str]) -> Vec<&'k str> {
        let mut v: Vec<&str> = vec![kind];
        v.extend_from_slice(own);
        v.extend_from_slice(extra);
        v
    }
    let allowed = |own: &[&'static str]| allowed_keys(kind_str, own, extra);
    match kind.as_str() {
        "all" | "any" => {
            r.check_keys(m, &allowed(&[]), what, d);
            let items = r.list(body, kind.as_str(), d)?;
            let conds: Vec<Cond> = items
                .into_iter()
                .filter_map(|c| parse_cond(r, c, what, d))
                .collect();
            Some(if kind.as_str() == "all" {
                Cond::All(conds)
            } else {
                Cond::Any(conds)
            })
        }
        "not" => {
            r.check_keys(m, &allowed(&[]), what, d);
            Some(Cond::Not(Box::new(parse_cond(r, body, what, d)?)))
        }
        "count" | "ever" | "never" => {
            let mut own: Vec<&str> = OCC_KEYS.to_vec();
            if kind.as_str() == "count" {
                own.extend_from_slice(CMP_KEYS);
            }
            r.check_keys(m, &allowed(&own), what, d);
            let occ = parse_occurrences(r, body, m, what, d)?;
            let cmp = match kind.as_str() {
                "ever" => vec![Cmp::AtLeast(1.0)],
                "never" => vec![Cmp::Exactly(0.0)],
                _ => {
                    let c = parse_cmps(r, m, false, what, d);
                    if c.is_empty() {
                        d.error(
                            kpos,
                            format!(
                                "{what}: `count` needs a comparison ({})",
                                CMP_KEYS.join(", ")
                            ),
                        );
                        return None;
                    }
                    c
                }
            };
            Some(Cond::Count {
                occ,
                cmp,
                pos: kpos,
            })
        }
        "time_since" => {
            let mut own: Vec<&str> = vec!["where", "since", "first"];
            own.extend_from_slice(CMP_KEYS);
            r.check_keys(m, &allowed(&own), what, d);
            let occ = parse_occurrences(r, body, m, what, d)?;
            let first = m
                .get_node("first")
                .and_then(|v| r.boolean(v, "first", d))
                .unwrap_or(false);
            let cmp = parse_cmps(r, m, true, what, d);
            if cmp.is_empty() {
                d.error(
                    kpos,
                    format!("{what}: `time_since` needs a comparison such as `at_least: 24h`"),
                );
                return None;
            }
            Some(Cond::TimeSince {
                occ,
                first,
                cmp,
                pos: kpos,
            })
        }
        "idle" => {
            r.check_keys(m, &allowed(&[]), what, d);
            let im = r.map(body, "idle", d)?;
            r.check_keys(im, CMP_KEYS, "idle", d);
            let cmp = parse_cmps(r, im, true, what, d);
            if cmp.is_empty() {
                d.error(
                    kpos,
                    format!("{what}: `idle` needs a comparison such as `at_least: 30m`"),
                );
                return None;
            }
            Some(Cond::Idle { cmp, pos: kpos })
        }
        "sessions" => {
            r.check_keys(m, &allowed(&[]), what, d);
            let sm = r.map(body, "sessions", d)?;
            let mut keys = CMP_KEYS.to_vec();
            keys.push("within");
            r.check_keys(sm, &keys, "sessions", d);
            let within = sm
                .get_node("within")
                .and_then(|v| r.duration(v, "within", d))
                .map(|s| s.value);
            let cmp = parse_cmps(r, sm, false, what, d);
            if cmp.is_empty() {
                d.error(
                    kpos,
                    format!("{what}: `sessions` needs a comparison such as `at_least: 3`"),
                );
                return None;
            }
            Some(Cond::Sessions {
                within,
                cmp,
                pos: kpos,
            })
        }
        "in_segment" => {
            r.check_keys(m, &allowed(&[]), what, d);
            Some(Cond::InSegment(r.string(body, "in_segment", d)?))
        }
        "traits" | "properties" => {
            r.check_keys(m, &allowed(&[]), what, d);
            let filters = parse_filters(r, body, kind.as_str(), d)?;
            Some(if kind.as_str() == "traits" {
                Cond::Traits(filters)
            } else {
                Cond::Properties(filters)
            })
        }
        _ => None,
    }
}

fn parse_cmps(
    r: Reader,
    m: &MarkedMappingNode,
    durations: bool,
    what: &str,
    d: &mut Diagnostics,
) -> Vec<Cmp> {
    let mut out = Vec::new();
    for key in CMP_KEYS {
        let Some(v) = m.get_node(key) else { continue };
        let x = if durations {
            r.duration(v, key, d).map(|s| s.value.0 as f64)
        } else {
            let n = r.number(v, key, d);
            if let Some(n) = n {
                if n < 0.0 {
                    d.error(r.pos(v), format!("{what}: `{key}` cannot be negative"));
                }
            }
            n
        };
        if let Some(x) = x {
            out.push(match *key {
                "at_least" => Cmp::AtLeast(x),
                "at_most" => Cmp::AtMost(x),
                "exactly" => Cmp::Exactly(x),
                "more_than" => Cmp::MoreThan(x),
                _ => Cmp::LessThan(x),
            });
        }
    }
    out
}

/// An event reference: `Name`, or `{event: Name, where: {...}}`.
pub fn parse_event_match(
    r: Reader,
    n: &Node,
    what: &str,
    d: &mut Diagnostics,
) -> Option<EventMatch> {
    match n {
        Node::Scalar(_) => Some(EventMatch {
            name: r.string(n, what, d)?,
            filters: vec![],
        }),
        Node::Mapping(m) => {
            r.check_keys(m, &["event", "where"], what, d);
            let name = r.string(r.required(m, "event", what, d)?, "event", d)?;
            let filters = match m.get_node("where") {
                Some(w) => parse_filters(r, w, "where", d)?,
                None => vec![],
            };
            Some(EventMatch { name, filters })
        }
        other => {
            d.error(
                r.pos(other),
                format!("{what} must be an event name or `{{event: NAME, where: ...}}`"),
            );
            None
        }
    }
}

fn parse_occurrences(
    r: Reader,
    body: &Node,
    m: &MarkedMappingNode,
    what: &str,
    d: &mut Diagnostics,
) -> Option<Occurrences> {
    let mut event = parse_event_match(r, body, what, d)?;
    if let Some(w) = m.get_node("where") {
        event.filters.extend(parse_filters(r, w, "where", d)?);
    }
    let within = m
        .get_node("within")
        .and_then(|v| r.duration(v, "within", d))
        .map(|s| s.value);
    let since = match m.get_node("since") {
        Some(v) => Some(parse_event_match(r, v, "since", d)?),
        None => None,
    };
    let after = match m.get_node("after") {
        Some(v) => Some(parse_event_match(r, v, "after", d)?),
        None => None,
    };
    if after.is_some() && within.is_none() {
        if let Some(k) = m.keys().find(|k| k.as_str() == "after") {
            d.error(r.key_pos(k), format!("{what}: `after` needs `within` (the window's length from the first occurrence)"));
        }
    }
    let per = m.get_node("per").and_then(|v| r.string(v, "per", d));
    let in_session = m
        .get_node("in_session")
        .and_then(|v| r.boolean(v, "in_session", d))
        .unwrap_or(false);
    Some(Occurrences {
        event,
        within,
        since,
        after,
        per,
        in_session,
    })
}

const FILTER_OPS: &[&str] = &[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "contains",
];

/// `{prop: value}` (equality), `{prop: [a, b]}` (membership) or `{prop: {gte: 3}}`.
pub fn parse_filters(r: Reader, n: &Node, what: &str, d: &mut Diagnostics) -> Option<Vec<Filter>> {
    let m = r.map(n, what, d)?;
    let mut out = Vec::new();
    for (k, v) in m.iter() {
        let path = Sp::new(k.as_str().to_string(), r.key_pos(k));
        match v {
            Node::Scalar(s) => out.push(Filter {
                path,
                op: FilterOp::Eq(scalar_value(s)),
            }),
            Node::Sequence(_) => {
                if let Value::Array(items) = to_json(v) {
                    out.push(Filter {
                        path,
                        op: FilterOp::In(items),
                    });
                }
            }
            Node::Mapping(ops) => {
                r.check_keys(ops, FILTER_OPS, &format!("filter on `{}`", k.as_str()), d);
                for (op, arg) in ops.iter() {
                    let num = |d: &mut Diagnostics| r.number(arg, op.as_str(), d);
                    let parsed = match op.as_str() {
                        "eq" => Some(FilterOp::Eq(to_json(arg))),
                        "ne" => Some(FilterOp::Ne(to_json(arg))),
                        "gt" => num(d).map(FilterOp::Gt),
                        "gte" => num(d).map(FilterOp::Gte),
                        "lt" => num(d).map(FilterOp::Lt),
                        "lte" => num(d).map(FilterOp::Lte),
                        "in" | "not_in" => match to_json(arg) {
                            Value::Array(items) => Some(if op.as_str() == "in" {
                                FilterOp::In(items)
                            } else {
                                FilterOp::NotIn(items)
                            }),
                            _ => {
                                d.error(r.pos(arg), format!("`{}` takes a list", op.as_str()));
                                None
                            }
                        },
                        "exists" => r.boolean(arg, "exists", d).map(FilterOp::Exists),
                        "contains" => r
                            .string(arg, "contains", d)
                            .map(|s| FilterOp::Contains(s.value)),
                        _ => None,
                    };
                    if let Some(op) = parsed {
                        out.push(Filter {
                            path: path.clone(),
                            op,
                        });
                    }
                }
            }
        }
    }
    Some(out)
}

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
    "send",
    "data",
];

fn parse_trigger(r: Reader, id: Sp<String>, n: &Node, d: &mut Diagnostics) -> Option<TriggerDef> {
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

fn parse_policies(r: Reader, n: &Node, set: &mut RuleSet, d: &mut Diagnostics) {
    let Some(m) = r.map(n, "policies", d) else {
        return;
    };
    r.check_keys(
        m,
        &[
            "frequency_caps",
            "quiet_hours",
            "exempt_priorities",
            "min_gap",
        ],
        "policies",
        d,
    );
    if let Some(v) = m.get_node("frequency_caps") {
        for item in r.list(v, "frequency_caps", d).unwrap_or_default() {
            let Some(cm) = r.map(item, "a frequency cap", d) else {
                continue;
            };
            r.check_keys(cm, &["channel", "max", "per"], "a frequency cap", d);
            let channel = r
                .required(cm, "channel", "a frequency cap", d)
                .and_then(|c| channel_of(r, c, d));
            let max = r
                .required(cm, "max", "a frequency cap", d)
                .and_then(|v| r.whole(v, "max", d));
            let per = r
                .required(cm, "per", "a frequency cap", d)
                .and_then(|v| match v {
                    Node::Scalar(s) if s.as_str() == "session" => Some(CapWindow::Session),
                    _ => r
                        .duration(v, "per (a duration or `session`)", d)
                        .map(|s| CapWindow::Rolling(s.value)),
                });
            if let (Some(channel), Some(max), Some(per)) = (channel, max, per) {
                if max > 1000 {
                    d.error(
                        r.pos(item),
                        "frequency cap `max` above 1000 is not supported",
                    );
                    continue;
                }
                set.policies.caps.push(CapDef {
                    channel,
                    max: max as u32,
                    per,
                });
            }
        }
    }
    if let Some(v) = m.get_node("quiet_hours") {
        for item in r.list(v, "quiet_hours", d).unwrap_or_default() {
            let Some(qm) = r.map(item, "quiet hours", d) else {
                continue;
            };
            r.check_keys(qm, &["channels", "from", "to", "action"], "quiet hours", d);
            let channels: Vec<Channel> = match qm.get_node("channels") {
                Some(c) => r
                    .one_or_many(c)
                    .into_iter()
                    .filter_map(|c| channel_of(r, c, d))
                    .collect(),
                None => Channel::ALL.to_vec(),
            };
            let from = r
                .required(qm, "from", "quiet hours", d)
                .and_then(|v| clock_time(r, v, d));
            let to = r
                .required(qm, "to", "quiet hours", d)
                .and_then(|v| clock_time(r, v, d));
            let action = match qm.get_node("action") {
                None => QuietAction::Defer,
                Some(a) => match r.string(a, "action", d).map(|s| s.value).as_deref() {
                    Some("defer") => QuietAction::Defer,
                    Some("suppress") => QuietAction::Suppress,
                    _ => {
                        d.error(r.pos(a), "quiet hours `action` is `defer` or `suppress`");
                        QuietAction::Defer
                    }
                },
            };
            if let (Some(from), Some(to)) = (from, to) {
                if from == to {
                    d.error(r.pos(item), "quiet hours `from` and `to` must differ");
                    continue;
                }
                set.policies.quiet_hours.push(QuietHoursDef {
                    channels,
                    from,
                    to,
                    action,
                });
            }
        }
    }
    if let Some(v) = m.get_node("exempt_priorities") {
        set.policies.exempt = r
            .strings(v, "exempt_priorities", d)
            .into_iter()
            .filter_map(|s| match s.value.as_str() {
                "urgent" => Some(Priority::Urgent),
                "high" => Some(Priority::High),
                "low" => Some(Priority::Low),
                other => {
                    d.error(s.pos, format!("unknown priority `{other}`"));
                    None
                }
            })
            .collect();
    }
    if let Some(v) = m.get_node("min_gap") {
        set.policies.min_gap = r.duration(v, "min_gap", d).map(|s| s.value);
    }
}

fn channel_of(r: Reader, n: &Node, d: &mut Diagnostics) -> Option<Channel> {
    let s = r.string(n, "channel", d)?;
    let c = Channel::parse(&s.value);
    if c.is_none() {
        d.error(
            s.pos,
            format!(
                "unknown channel `{}` (use email, in_app or webhook)",
                s.value
            ),
        );
    }
    c
}

fn clock_time(r: Reader, n: &Node, d: &mut Diagnostics) -> Option<u32> {
    let s = r.string(n, "time", d)?;
    let parsed = s.value.split_once(':').and_then(|(h, m)| {
        let digits = |x: &str, max_len: usize| {
            !x.is_empty() && x.len() <= max_len && x.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
            return None;
        }
        let h: u32 = h.parse().ok()?;
        let m: u32 = m.parse().ok()?;
        (h < 24 && m < 60).then_some(h * 60 + m)
    });
    if parsed.is_none() {
        d.error(
            s.pos,
            format!("`{}` is not a time of day (write \"21:00\")", s.value),
        );
    }
    parsed
}

fn parse_experiment(
    r: Reader,
    id: Sp<String>,
    n: &Node,
    d: &mut Diagnostics,
) -> Option<ExperimentDef> {
    let what = format!("experiment `{}`", id.value);
    let m = r.map(n, &what, d)?;
    r.check_keys(m, &["description", "holdout", "variants"], &what, d);
    let holdout = match m.get_node("holdout") {
        None => 0.0,
        Some(v) => share(r, v, "holdout", d)?,
    };
    let vm = r.map(r.required(m, "variants", &what, d)?, "variants", d)?;
    let mut variants = Vec::new();
    for (k, v) in vm.iter() {
        let name = Sp::new(k.as_str().to_string(), r.key_pos(k));
        if name.value == "holdout" {
            d.error(
                name.pos,
                "`holdout` is reserved for the holdout group; name the variant differently",
            );
        }
        let Some(spec) = r.map(v, "a variant", d) else {
            continue;
        };
        r.check_keys(
            spec,
            &["weight", "wait", "message", "content"],
            "a variant",
            d,
        );
        let weight = match spec.get_node("weight") {
            Some(w) => r.number(w, "weight", d).unwrap_or(0.0),
            None => 1.0,
        };
        if weight <= 0.0 {
            d.error(name.pos, "variant weight must be above zero");
        }
        variants.push(ExperimentVariant {
            name,
            weight,
            wait: spec
                .get_node("wait")
                .and_then(|w| r.duration(w, "wait", d))
                .map(|s| s.value),
            message: spec
                .get_node("message")
                .and_then(|w| r.string(w, "message", d)),
            content: spec
                .get_node("content")
                .and_then(|w| r.string(w, "content", d)),
        });
    }
    if variants.is_empty() {
        d.error(id.pos, format!("{what} needs at least one variant"));
        return None;
    }
    Some(ExperimentDef {
        id,
        holdout,
        variants,
    })
}

/// `10%` or `0.1`.
fn share(r: Reader, n: &Node, what: &str, d: &mut Diagnostics) -> Option<f64> {
    let s = r.string(n, what, d)?;
    let v = match s.value.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok().map(|x| x / 100.0),
        None => s.value.parse::<f64>().ok(),
    };
    match v {
        Some(x) if (0.0..1.0).contains(&x) => Some(x),
        _ => {
            d.error(
                s.pos,
                format!("{what} must be a share like `10%` or `0.1`, below 100%"),
            );
            None
        }
    }
}

fn parse_message(r: Reader, id: Sp<String>, n: &Node, d: &mut Diagnostics) -> Option<MessageDef> {
    let what = format!("message `{}`", id.value);
    let m = r.map(n, &what, d)?;
    r.check_keys(
        m,
        &[
            "description",
            "channel",
            "email",
            "in_app",
            "webhook",
            "variants",
        ],
        &what,
        d,
    );
    let ch_node = r.required(m, "channel", &what, d)?;
    let channel = channel_of(r, ch_node, d)?;
    let content = parse_content(r, m, channel, &what, d)?;
    let mut variants = Vec::new();
    if let Some(v) = m.get_node("variants") {
        for item in r.list(v, "variants", d).unwrap_or_default() {
            let Some(vm) = r.map(item, "a content variant", d) else {
                continue;
            };
            r.check_keys(
                vm,
                &["name", "when", "requires", "email", "in_app", "webhook"],
                "a content variant",
                d,
            );
            let Some(name) = r
                .required(vm, "name", "a content variant", d)
                .and_then(|x| r.string(x, "name", d))
            else {
                continue;
            };
            let vwhat = format!("variant `{}` of {what}", name.value);
            if name.value == "default"
                || variants
                    .iter()
                    .any(|v: &ContentVariant| v.name.value == name.value)
            {
                d.error(
                    name.pos,
                    format!("{what} already has a variant named `{}`", name.value),
                );
            }
            let when = match vm.get_node("when") {
                Some(w) => parse_cond(r, w, &vwhat, d),
                None => None,
            };
            let requires = vm
                .get_node("requires")
                .map(|x| r.strings(x, "requires", d))
                .unwrap_or_default();
            if let Some(content) = parse_content(r, vm, channel, &vwhat, d) {
                variants.push(ContentVariant {
                    name,
                    when,
                    requires,
                    content,
                });
            }
        }
    }
    Some(MessageDef {
        id,
        channel,
        content,
        variants,
    })
}

fn parse_content(
    r: Reader,
    m: &MarkedMappingNode,
    channel: Channel,
    what: &str,
    d: &mut Diagnostics,
) -> Option<Content> {
    let key = channel.as_str();
    for other in Channel::ALL {
        if other != channel {
            if let Some(k) = m.keys().find(|k| k.as_str() == other.as_str()) {
                d.error(
                    r.key_pos(k),
                    format!(
                        "{what} is on channel {key}; `{}` content does not apply",
                        other.as_str()
                    ),
                );
            }
        }
    }
    let body = r.required(m, key, what, d)?;
    let cm = r.map(body, key, d)?;
    match channel {
        Channel::Email => {
            r.check_keys(cm, &["subject", "html", "text"], "email content", d);
            let subject = r.text(r.required(cm, "subject", "email content", d)?, "subject", d)?;
            let html = cm.get_node("html").and_then(|v| r.text(v, "html", d));
            let text = cm.get_node("text").and_then(|v| r.text(v, "text", d));
            if html.is_none() && text.is_none() {
                d.error(r.pos(body), "email content needs `text`, `html` or both");
            }
            Some(Content::Email {
                subject,
                html,
                text,
            })
        }
        Channel::InApp => {
            r.check_keys(cm, &["title", "body", "url"], "in-app content", d);
            let title = r.text(r.required(cm, "title", "in-app content", d)?, "title", d)?;
            let body = r.text(r.required(cm, "body", "in-app content", d)?, "body", d)?;
            let url = cm.get_node("url").and_then(|v| r.text(v, "url", d));
            Some(Content::InApp { title, body, url })
        }
        Channel::Webhook => {
            r.check_keys(cm, &["url", "body"], "webhook content", d);
            let url = r.text(r.required(cm, "url", "webhook content", d)?, "url", d)?;
            let bnode = r.required(cm, "body", "webhook content", d)?;
            Some(Content::Webhook {
                url,
                body: Sp::new(to_json(bnode), r.pos(bnode)),
            })
        }
    }
}
