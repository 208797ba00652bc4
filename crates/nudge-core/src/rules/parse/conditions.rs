//! Conditions (`count`, `ever`, `time_since`, `all`...) with their comparisons, and the
//! occurrence modifiers (`where`, `within`, `since`...) that triggers' `data` items share.

use super::events::{parse_event_match, parse_filters};
use crate::rules::model::{Cmp, Cond, Occurrences};
use crate::rules::yaml::{closest, span_pos, Diagnostics, Reader};
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

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
pub(super) const OCC_KEYS: &[&str] = &["where", "within", "since", "after", "per", "in_session"];
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

pub(super) fn parse_cond_map(
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
    let mpos = span_pos(r.file, m.span());
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

pub(super) fn parse_occurrences(
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
