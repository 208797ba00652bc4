//! The `policies` section: frequency caps, quiet hours, exempt priorities and `min_gap`.

use super::values::{channel_of, clock_time};
use crate::rules::model::{
    CapDef, CapWindow, Channel, Priority, QuietAction, QuietHoursDef, RuleSet,
};
use crate::rules::yaml::{Diagnostics, Reader};
use marked_yaml::Node;

pub(super) fn parse_policies(r: Reader, n: &Node, set: &mut RuleSet, d: &mut Diagnostics) {
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
