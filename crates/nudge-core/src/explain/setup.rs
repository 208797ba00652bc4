//! A trigger's set-up and its event references in words.

use crate::rules::compile::op_text;
use crate::rules::compiled::{COn, COnce, CTrigger, CompiledRules, Matcher, NameMatch};

/// An event reference: `` `Name` where path op value, ...``, or `any event`.
pub(super) fn matcher_text(m: &Matcher) -> String {
    let name = match &m.name {
        NameMatch::Any => "any event".to_string(),
        NameMatch::Name(n) => format!("`{n}`"),
    };
    if m.filters.is_empty() {
        return name;
    }
    let fs: Vec<String> = m
        .filters
        .iter()
        .map(|f| format!("{} {}", f.path.join("."), op_text(&f.op)))
        .collect();
    format!("{name} where {}", fs.join(", "))
}

/// The trigger's set-up in words, for the header.
pub(super) fn setup(rules: &CompiledRules, t: &CTrigger) -> String {
    let mut parts = vec![t.priority.as_str().to_string()];
    parts.push(match &t.on {
        COn::Event(m) => format!("on {}", matcher_text(m)),
        COn::SegmentEntered(s) => format!("on entering segment {}", rules.segments[*s].id),
        COn::SegmentExited(s) => format!("on leaving segment {}", rules.segments[*s].id),
    });
    if let Some(w) = t.wait {
        parts.push(format!("wait {w}"));
    }
    if t.rearm {
        parts.push("rearm".into());
    }
    match &t.once {
        COnce::Never => {}
        COnce::User => parts.push("once: user".into()),
        COnce::Session => parts.push("once: session".into()),
        COnce::PerProperty(p) => parts.push(format!("once per {}", p.join("."))),
    }
    if let Some(cd) = t.cooldown {
        parts.push(format!("cooldown {cd}"));
    }
    if let Some(ei) = t.experiment {
        parts.push(format!("experiment {}", rules.experiments[ei].id));
    }
    parts.join(", ")
}
