//! The explanation as text, as `nudge explain` prints it.

use super::{
    Block, CondNode, Explanation, PolicyState, PropsSource, Step, TriggerExplanation, Verdict,
};
use crate::engine::CancelReason;
use crate::time::{format_instant, Duration};
use serde_json::Value;
use std::fmt;

fn mark(holds: bool) -> &'static str {
    if holds {
        "✓"
    } else {
        "✗"
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = &self.user;
        writeln!(f, "user {} at {}", self.user_id, format_instant(self.at))?;
        let last = match u.last_activity {
            Some(t) if t >= self.at => format!("{} (just now)", format_instant(t)),
            Some(t) => format!("{} ({} before)", format_instant(t), Duration(self.at - t)),
            None => "none".into(),
        };
        writeln!(f, "  sessions: {}; last activity: {last}", u.sessions)?;
        let traits: Vec<String> = u.traits.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        writeln!(
            f,
            "  traits kept: {}",
            if traits.is_empty() {
                "none".into()
            } else {
                traits.join(", ")
            }
        )?;
        let segments = if u.segments.is_empty() {
            "none".into()
        } else {
            u.segments.join(", ")
        };
        writeln!(f, "  live segments: {segments}")?;
        writeln!(f, "  time zone: {}", u.timezone)?;
        writeln!(f, "  state: {} bytes encoded", u.state_bytes)?;
        writeln!(
            f,
            "  (conditions and policies below are read at {})",
            format_instant(self.at)
        )?;
        for t in &self.triggers {
            writeln!(f)?;
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TriggerExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "trigger {} ({}) — {}", self.id, self.setup, self.verdict)?;
        if !self.cancel_on.is_empty() {
            writeln!(f, "  cancel on: {}", self.cancel_on.join(", "))?;
        }
        if !self.decisions.is_empty() {
            writeln!(f, "  decisions:")?;
            write_steps(f, &self.decisions)?;
        }
        for p in self.pending.iter().skip(1) {
            writeln!(
                f,
                "  also waiting: due at {} (armed at {} by {})",
                format_instant(p.due),
                format_instant(p.armed_at),
                p.by
            )?;
        }
        let blocked_is_verdict = matches!(self.verdict, Verdict::Blocked { .. });
        if let (Some(b), false) = (&self.blocked, blocked_is_verdict) {
            writeln!(f, "  now: blocked: {b}")?;
        }
        if let Some(m) = &self.last_match {
            let props = if m.properties.is_empty() {
                String::new()
            } else {
                format!(" {}", Value::Object(m.properties.clone()))
            };
            writeln!(
                f,
                "  last matching event: `{}` at {}{props}",
                m.event,
                format_instant(m.at)
            )?;
        }
        let reads_props = self.conditions.iter().any(|c| reads_properties(&c.tree));
        if reads_props {
            let from = match &self.properties_from {
                PropsSource::PendingWait { armed_at } => {
                    format!(
                        "those kept with the wait armed at {}",
                        format_instant(*armed_at)
                    )
                }
                PropsSource::LastMatch { at } => {
                    format!("the last matching event ({})", format_instant(*at))
                }
                PropsSource::NoEvent => "no event".into(),
            };
            writeln!(f, "  properties: {from}")?;
        }
        if self.conditions.is_empty() {
            writeln!(f, "  conditions: none")?;
        }
        for c in &self.conditions {
            writeln!(f, "  {}: {} {}", c.role, mark(c.tree.holds), c.tree.text)?;
            for child in &c.tree.children {
                write_node(f, child, 4)?;
            }
        }
        write!(f, "{}", self.policy)
    }
}

/// Writes the decisions; a run of re-arms (a `rearm` trigger on every event) reads as one line.
fn write_steps(f: &mut fmt::Formatter<'_>, steps: &[Step]) -> fmt::Result {
    let rearm_at = |i: usize| match (steps.get(i), steps.get(i + 1)) {
        (
            Some(Step::Cancelled {
                at,
                reason: CancelReason::Rearm,
                ..
            }),
            Some(Step::Wait { .. }),
        ) => Some(*at),
        _ => None,
    };
    let mut i = 0;
    while let Some(s) = steps.get(i) {
        let mut end = i;
        let mut last = None;
        while let Some(at) = rearm_at(end) {
            last = Some(at);
            end += 2;
        }
        match last {
            Some(last) if end - i >= 4 => {
                let n = (end - i) / 2;
                let first = rearm_at(i).unwrap_or(last);
                writeln!(
                    f,
                    "    {}  re-armed {n} times by new events, the last at {}",
                    format_instant(first),
                    format_instant(last)
                )?;
                if let Some(wait) = steps.get(end - 1) {
                    writeln!(f, "    {wait}")?;
                }
                i = end;
            }
            _ => {
                writeln!(f, "    {s}")?;
                i += 1;
            }
        }
    }
    Ok(())
}

fn reads_properties(n: &CondNode) -> bool {
    n.text.starts_with("property ")
        || n.text == "properties"
        || n.children.iter().any(reads_properties)
}

fn write_node(f: &mut fmt::Formatter<'_>, n: &CondNode, indent: usize) -> fmt::Result {
    writeln!(f, "{:indent$}{} {}", "", mark(n.holds), n.text)?;
    for c in &n.children {
        write_node(f, c, indent + 2)?;
    }
    Ok(())
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Sent { at } => write!(f, "sent at {}", format_instant(*at)),
            Verdict::Suppressed { at, reason } => {
                write!(f, "suppressed at {}: {}", format_instant(*at), reason.as_str())
            }
            Verdict::Cancelled { at, reason, by } => {
                write!(f, "cancelled at {}{}", format_instant(*at), cancel_text(*reason, by.as_deref()))
            }
            Verdict::Waiting { due, armed_at, by, deferred } => {
                write!(f, "waiting: due at {} (armed at {} by {by}", format_instant(*due), format_instant(*armed_at))?;
                if *deferred {
                    write!(f, "; deferred by quiet hours")?;
                }
                write!(f, ")")
            }
            Verdict::Blocked { block } => write!(f, "blocked: {block}"),
            Verdict::NeverStarted => write!(f, "never started: no matching event"),
            Verdict::NotStarted { last_match } => write!(
                f,
                "not started: `if` was false at the last matching event ({}); it is shown below as it reads now",
                format_instant(*last_match)
            ),
            Verdict::NoDecision { last_match } => write!(
                f,
                "no decision recorded for the last matching event ({})",
                format_instant(*last_match)
            ),
            Verdict::NoSegmentChange { segment, entered, member_now } => match (entered, member_now) {
                (true, false) => write!(f, "never started: not in segment {segment}"),
                (true, true) => write!(f, "no decision: in segment {segment}, but entering it started nothing"),
                (false, true) => write!(f, "never started: still in segment {segment}"),
                (false, false) => write!(f, "no decision: not in segment {segment}, and no exit from it started anything"),
            },
        }
    }
}

fn cancel_text(reason: CancelReason, by: Option<&str>) -> String {
    match (reason, by) {
        (CancelReason::Event, Some(by)) => format!(" by {by}"),
        (CancelReason::Event, None) => " by a `cancel_on` event".into(),
        (CancelReason::Rearm, Some(by)) => format!(": re-armed by a new {by}"),
        (CancelReason::Rearm, None) => ": re-armed".into(),
        (CancelReason::Condition, _) => {
            ": at fire time `check` was false or once was already spent".into()
        }
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Block::OnceUser { at } => {
                write!(f, "once per user already spent at {}", format_instant(*at))
            }
            Block::OnceSession { session } => write!(f, "once this session (session {session})"),
            Block::OncePerValue { property, value } => {
                write!(
                    f,
                    "once per {property} already spent for {property} = {value}"
                )
            }
            Block::Cooldown { until } => write!(f, "cooldown until {}", format_instant(*until)),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Sent {
                at,
                message,
                variant,
                experiment,
            } => {
                write!(
                    f,
                    "{}  sent {message} (variant {variant}",
                    format_instant(*at)
                )?;
                if let Some(x) = experiment {
                    write!(f, ", experiment {x}")?;
                }
                write!(f, ")")
            }
            Step::Suppressed { at, reason } => {
                write!(
                    f,
                    "{}  suppressed: {}",
                    format_instant(*at),
                    reason.as_str()
                )
            }
            Step::Wait { at, due, deferred } => {
                let what = if *deferred {
                    "deferred by quiet hours to"
                } else {
                    "waiting until"
                };
                write!(
                    f,
                    "{}  {what} {}",
                    format_instant(*at),
                    format_instant(*due)
                )
            }
            Step::Cancelled { at, reason, by } => {
                write!(
                    f,
                    "{}  cancelled{}",
                    format_instant(*at),
                    cancel_text(*reason, by.as_deref())
                )
            }
        }
    }
}

impl fmt::Display for PolicyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  policy ({}):", self.channel.as_str())?;
        let exempt = if self.exempt {
            " (this priority is exempt)"
        } else {
            ""
        };
        if self.caps.is_empty() {
            writeln!(f, "    frequency caps: none")?;
        }
        for c in &self.caps {
            let per = if c.per == "session" {
                "this session".to_string()
            } else {
                format!("in {}", c.per)
            };
            let full = if c.full { ", full" } else { "" };
            writeln!(
                f,
                "    frequency cap: {}/{} {per}{full}{exempt}",
                c.used, c.max
            )?;
        }
        match &self.quiet_hours {
            None => writeln!(f, "    quiet hours: none")?,
            Some(q) => {
                let state = match (q.quiet_now, q.deferred_to) {
                    (false, _) => "not now".to_string(),
                    (true, Some(to)) => {
                        format!("quiet now, a send would wait until {}", format_instant(to))
                    }
                    (true, None) => "quiet now, a send would be suppressed".to_string(),
                };
                writeln!(
                    f,
                    "    quiet hours {}–{} ({}): {state}; local time {} {}{exempt}",
                    q.from, q.to, q.action, q.local_time, q.timezone
                )?;
            }
        }
        if let Some(u) = self.unsubscribed {
            writeln!(f, "    unsubscribed: {}", if u { "yes" } else { "no" })?;
        }
        if let Some(g) = &self.min_gap {
            let now = if g.blocks_now {
                "a recent send blocks this one now"
            } else {
                "clear"
            };
            writeln!(f, "    min gap {}: {now}", g.gap)?;
        }
        if let Some(x) = &self.experiment {
            let v = x.variant.as_deref().unwrap_or("not assigned yet");
            writeln!(f, "    experiment {}: {v}", x.id)?;
        }
        Ok(())
    }
}
