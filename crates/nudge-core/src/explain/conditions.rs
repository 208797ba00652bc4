//! `if`, `check` and `exit` as trees, each part with its value and whether it holds now.

use super::CondNode;
use crate::engine::conditions::{filter_holds, Ctx, Props};
use crate::rules::compile::op_text;
use crate::rules::compiled::{CCond, CFilter};
use crate::rules::model::Cmp;
use crate::time::Duration;
use serde_json::Value;

/// A condition tree with values read at the context's clock.
pub(super) fn node(ctx: &Ctx<'_>, c: &CCond, has_props: bool) -> CondNode {
    let holds = ctx.holds(c);
    let leaf = |text: String| CondNode {
        holds,
        text,
        children: vec![],
    };
    let rules = ctx.rules;
    match c {
        CCond::All(v) | CCond::Any(v) => CondNode {
            holds,
            text: if matches!(c, CCond::All(_)) {
                "all"
            } else {
                "any"
            }
            .to_string(),
            children: v.iter().map(|c| node(ctx, c, has_props)).collect(),
        },
        CCond::Not(inner) => CondNode {
            holds,
            text: "not".into(),
            children: vec![node(ctx, inner, has_props)],
        },
        CCond::Count { slot, cmp, per } => {
            let n = ctx.count(*slot, per.as_deref());
            let mut text = format!(
                "{} = {} ({})",
                rules.slots[*slot].label,
                number(n),
                cmps(cmp, false)
            );
            if let (Some(p), false) = (per, has_props) {
                text.push_str(&format!("; no event to read `{}` from", p.join(".")));
            }
            leaf(text)
        }
        CCond::TimeSince { slot, cmp } => {
            // A time slot may be shared with an `after:` anchor, labelled `first ...`.
            let label = &rules.slots[*slot].label;
            let label = match label.strip_prefix("time since ") {
                Some(_) => label.clone(),
                None => format!("time since the {label}"),
            };
            leaf(match ctx.since(*slot) {
                Some(ms) => format!("{label} = {} ({})", Duration(ms.max(0)), cmps(cmp, true)),
                None => format!("{label}: never happened ({})", cmps(cmp, true)),
            })
        }
        CCond::Idle { cmp } => leaf(match ctx.state.last_activity {
            Some(t) => format!(
                "idle for {} ({})",
                Duration((ctx.now - t).max(0)),
                cmps(cmp, true)
            ),
            None => format!("idle: no activity yet ({})", cmps(cmp, true)),
        }),
        CCond::Sessions { window, cmp } => {
            let label = match window {
                None => "sessions",
                Some((slot, _)) => rules.slots[*slot].label.as_str(),
            };
            leaf(format!(
                "{label} = {} ({})",
                number(ctx.sessions(*window)),
                cmps(cmp, false)
            ))
        }
        CCond::InSegment(i) => {
            let seg = &rules.segments[*i];
            let inner = node(
                &Ctx {
                    props: Props::None,
                    ..*ctx
                },
                &seg.cond,
                false,
            );
            // An `all`/`any` at the segment's root reads as part of the membership line.
            match &seg.cond {
                CCond::All(_) | CCond::Any(_) => CondNode {
                    holds,
                    text: format!("in segment {}: {} of", seg.id, inner.text),
                    children: inner.children,
                },
                _ => CondNode {
                    holds,
                    text: format!("in segment {}", seg.id),
                    children: vec![inner],
                },
            }
        }
        CCond::Traits(fs) => filters(holds, "traits", fs, |f| {
            let v = ctx.trait_json(&f.path);
            let holds = filter_holds(&f.op, v.as_ref());
            (holds, filter_text("trait", f, v.as_ref(), true))
        }),
        CCond::Props(fs) => filters(holds, "properties", fs, |f| {
            let v = ctx.props.get(&f.path);
            let holds = filter_holds(&f.op, v.as_deref());
            (holds, filter_text("property", f, v.as_deref(), has_props))
        }),
    }
}

/// One filter as a leaf, several under a heading.
fn filters(
    holds: bool,
    heading: &str,
    fs: &[CFilter],
    one: impl Fn(&CFilter) -> (bool, String),
) -> CondNode {
    let mut children: Vec<CondNode> = fs
        .iter()
        .map(|f| {
            let (holds, text) = one(f);
            CondNode {
                holds,
                text,
                children: vec![],
            }
        })
        .collect();
    if children.len() == 1 {
        if let Some(only) = children.pop() {
            return only;
        }
    }
    CondNode {
        holds,
        text: heading.to_string(),
        children,
    }
}

fn filter_text(what: &str, f: &CFilter, v: Option<&Value>, has_source: bool) -> String {
    let path = f.path.join(".");
    let needs = op_text(&f.op);
    match v.filter(|v| !v.is_null()) {
        Some(v) => format!("{what} `{path}` = {v} (needs {needs})"),
        None if !has_source => format!("{what} `{path}`: no event (needs {needs})"),
        None if what == "trait" => format!("{what} `{path}` is not set (needs {needs})"),
        None => format!("{what} `{path}` is absent (needs {needs})"),
    }
}

fn cmps(cmp: &[Cmp], duration: bool) -> String {
    cmp.iter()
        .map(|c| {
            if duration {
                format!("{} {}", c.keyword(), Duration(c.bound() as i64))
            } else {
                format!("{} {}", c.keyword(), number(c.bound()))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}
