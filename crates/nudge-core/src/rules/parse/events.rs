//! Event references (`Name`, `{event, where}`) and filter mappings (`{prop: test}`).

use crate::rules::model::{EventMatch, Filter, FilterOp, Sp};
use crate::rules::yaml::{scalar_value, to_json, Diagnostics, Reader};
use marked_yaml::Node;
use serde_json::Value;

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
