//! Why a trigger did or did not fire for one user: read from the user's state, the decisions
//! the engine took and the user's activities, at one instant. Pure: `nudge explain` replays
//! the events and hands the results here.

use crate::engine::conditions::{filter_holds, lookup, matches, value_key, Ctx, Props};
use crate::engine::{guards, CancelReason, Decision, Reason};
use crate::event::Message;
use crate::rules::compile::op_text;
use crate::rules::compiled::{
    CCond, CFilter, COn, COnce, CTrigger, CompiledRules, Matcher, NameMatch,
};
use crate::rules::model::{CapWindow, Channel, Cmp, Priority, QuietAction};
use crate::rules::yaml::closest;
use crate::state::{CapMemo, UserState, Wait};
use crate::time::{format_instant, Duration, Millis};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;

/// One activity of the user (track, page, screen) as rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// The rule-facing name (`Signed Up`, `page:Pricing`).
    pub name: String,
    pub properties: Map<String, Value>,
    pub at: Millis,
}

impl Activity {
    /// The activities of `user_id` among time-ordered events up to `at`, each messageId once
    /// across all users (as the replay counts them).
    pub fn of_user(events: &[(Message, Millis)], user_id: &str, at: Millis) -> Vec<Activity> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (m, t) in events.iter().filter(|(_, t)| *t <= at) {
            if !seen.insert(m.message_id.as_str()) || m.user_key() != user_id {
                continue;
            }
            if let Some(name) = m.activity_name() {
                out.push(Activity {
                    name: name.into_owned(),
                    properties: m.properties.clone(),
                    at: *t,
                });
            }
        }
        out
    }
}

/// What an explanation is read from.
#[derive(Clone, Copy)]
pub struct Evidence<'a> {
    pub rules: &'a CompiledRules,
    pub user_id: &'a str,
    /// The user's state with every event and timer up to `at` applied.
    pub state: &'a UserState,
    /// The engine's decisions for the user up to `at`, each with the instant it was taken.
    pub decisions: &'a [(Millis, Decision)],
    /// The user's activities up to `at`, in time order.
    pub activities: &'a [Activity],
    /// The instant conditions and policies are read at.
    pub at: Millis,
}

/// Why an explanation could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown trigger `{id}`{hint}; the rule set has: {}", .known.join(", "))]
    UnknownTrigger {
        id: String,
        hint: String,
        known: Vec<String>,
    },
}

/// Everything `nudge explain` says about one user.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub user_id: String,
    /// The instant conditions and policies are read at.
    #[serde(serialize_with = "instant")]
    pub at: Millis,
    pub user: UserSummary,
    /// In decision order.
    pub triggers: Vec<TriggerExplanation>,
}

/// What nudge keeps about the user.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub sessions: u32,
    #[serde(serialize_with = "opt_instant")]
    pub last_activity: Option<Millis>,
    /// Traits kept in state (only those the rules and templates read).
    pub traits: Map<String, Value>,
    /// Live segments at `at`.
    pub segments: Vec<String>,
    /// The zone quiet hours are read in.
    pub timezone: String,
    pub unsubscribed: bool,
    /// Size of the encoded state item.
    pub state_bytes: usize,
}

/// One trigger, for one user.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerExplanation {
    pub id: String,
    pub priority: Priority,
    pub channel: Channel,
    /// The trigger's set-up in words (`on ..., wait 24h, once: user`).
    pub setup: String,
    /// Events that cancel a pending wait, in words.
    pub cancel_on: Vec<String>,
    pub verdict: Verdict,
    /// Every decision the user got from this trigger up to `at`.
    pub decisions: Vec<Step>,
    /// Pending waits in state, earliest due first.
    pub pending: Vec<Pending>,
    /// What stops the trigger from firing now, if anything.
    pub blocked: Option<Block>,
    /// The user's latest event that matched `on` (event triggers only).
    pub last_match: Option<Match>,
    /// Where `properties` conditions read from.
    pub properties_from: PropsSource,
    /// `if`, `check` and `exit`, evaluated at `at`.
    pub conditions: Vec<Condition>,
    pub policy: PolicyState,
}

/// The one-line answer for a trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    Sent {
        #[serde(serialize_with = "instant")]
        at: Millis,
    },
    Suppressed {
        #[serde(serialize_with = "instant")]
        at: Millis,
        reason: Reason,
    },
    Cancelled {
        #[serde(serialize_with = "instant")]
        at: Millis,
        reason: CancelReason,
        by: Option<String>,
    },
    Waiting {
        #[serde(serialize_with = "instant")]
        due: Millis,
        #[serde(serialize_with = "instant")]
        armed_at: Millis,
        by: String,
        deferred: bool,
    },
    Blocked {
        block: Block,
    },
    /// No event of the user matched `on`.
    NeverStarted,
    /// The last matching event started nothing and `if` exists: it was false then.
    NotStarted {
        #[serde(serialize_with = "instant")]
        last_match: Millis,
    },
    /// A matching event happened but no decision was recorded for it.
    NoDecision {
        #[serde(serialize_with = "instant")]
        last_match: Millis,
    },
    /// A segment trigger with no decision; membership history is not kept, only the present.
    NoSegmentChange {
        segment: String,
        entered: bool,
        member_now: bool,
    },
}

/// What keeps a trigger from firing now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// `once: user`, spent by the decision at `at`.
    OnceUser {
        #[serde(serialize_with = "instant")]
        at: Millis,
    },
    /// `once: session`, spent in the current session.
    OnceSession { session: u32 },
    /// `once: {per}`, spent for the value the last matching event carries.
    OncePerValue { property: String, value: Value },
    Cooldown {
        #[serde(serialize_with = "instant")]
        until: Millis,
    },
}

/// One decision of the trigger for the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    Sent {
        #[serde(serialize_with = "instant")]
        at: Millis,
        message: String,
        variant: String,
        experiment: Option<String>,
    },
    Suppressed {
        #[serde(serialize_with = "instant")]
        at: Millis,
        reason: Reason,
    },
    Wait {
        #[serde(serialize_with = "instant")]
        at: Millis,
        #[serde(serialize_with = "instant")]
        due: Millis,
        deferred: bool,
    },
    Cancelled {
        #[serde(serialize_with = "instant")]
        at: Millis,
        reason: CancelReason,
        by: Option<String>,
    },
}

impl Step {
    fn at(&self) -> Millis {
        match self {
            Step::Sent { at, .. }
            | Step::Suppressed { at, .. }
            | Step::Wait { at, .. }
            | Step::Cancelled { at, .. } => *at,
        }
    }
}

/// A wait in state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pending {
    #[serde(serialize_with = "instant")]
    pub due: Millis,
    #[serde(serialize_with = "instant")]
    pub armed_at: Millis,
    /// What armed it, in words.
    pub by: String,
    /// Quiet hours moved it to `due`.
    pub deferred: bool,
    /// Properties kept with it (read by `check`, `exit` and templates at fire time).
    pub properties: Map<String, Value>,
}

/// An event that matched a trigger's `on`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    #[serde(serialize_with = "instant")]
    pub at: Millis,
    pub event: String,
    pub properties: Map<String, Value>,
}

/// Where `properties` conditions read from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PropsSource {
    /// The properties kept with the earliest pending wait (what the engine reads at fire time).
    PendingWait {
        #[serde(serialize_with = "instant")]
        armed_at: Millis,
    },
    /// The last event that matched `on`.
    LastMatch {
        #[serde(serialize_with = "instant")]
        at: Millis,
    },
    NoEvent,
}

/// One of `if`, `check`, `exit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub role: &'static str,
    #[serde(flatten)]
    pub tree: CondNode,
}

/// A condition and its parts, with their values at `at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CondNode {
    pub holds: bool,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<CondNode>,
}

/// Delivery policies for the trigger's channel, at `at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyState {
    pub channel: Channel,
    /// The trigger's priority skips caps and quiet hours (its sends still count).
    pub exempt: bool,
    pub caps: Vec<CapState>,
    pub quiet_hours: Option<QuietState>,
    /// Email only: the user unsubscribed.
    pub unsubscribed: Option<bool>,
    pub min_gap: Option<GapState>,
    pub experiment: Option<ExperimentState>,
}

/// One frequency cap's use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapState {
    pub used: u32,
    pub max: u32,
    /// `7d`, or `session`.
    pub per: String,
    pub full: bool,
}

/// Quiet hours in the user's zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuietState {
    pub from: String,
    pub to: String,
    /// `defer` or `suppress`.
    pub action: &'static str,
    pub quiet_now: bool,
    /// Local date and time at `at`.
    pub local_time: String,
    pub timezone: String,
    /// Where a send now would be deferred to.
    #[serde(serialize_with = "opt_instant")]
    pub deferred_to: Option<Millis>,
}

/// The `min_gap` policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapState {
    pub gap: String,
    /// A send of at least this priority went out on the channel too recently.
    pub blocks_now: bool,
}

/// The user's arm of the trigger's experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentState {
    pub id: String,
    /// `None`: not assigned yet (assignment happens when the trigger first starts).
    pub variant: Option<String>,
}

/// Explains every trigger (or only `trigger`) for the user, in decision order.
pub fn explain(e: &Evidence<'_>, trigger: Option<&str>) -> Result<Explanation, ExplainError> {
    let triggers: Vec<usize> = match trigger {
        None => (0..e.rules.triggers.len()).collect(),
        Some(id) => match e.rules.trigger_index(id) {
            Some(i) => vec![i],
            None => {
                let known: Vec<&str> = e.rules.triggers.iter().map(|t| &*t.id).collect();
                let hint = closest(id, &known)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(ExplainError::UnknownTrigger {
                    id: id.to_string(),
                    hint,
                    known: known.into_iter().map(str::to_string).collect(),
                });
            }
        },
    };
    Ok(Explanation {
        user_id: e.user_id.to_string(),
        at: e.at,
        user: summary(e),
        triggers: triggers
            .into_iter()
            .map(|ti| explain_trigger(e, ti))
            .collect(),
    })
}

fn summary(e: &Evidence<'_>) -> UserSummary {
    let ctx = Ctx {
        rules: e.rules,
        state: e.state,
        now: e.at,
        props: Props::None,
    };
    UserSummary {
        sessions: e.state.sessions,
        last_activity: e.state.last_activity,
        traits: e
            .state
            .traits
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
        segments: e
            .rules
            .segments
            .iter()
            .filter(|s| ctx.holds(&s.cond))
            .map(|s| s.id.clone())
            .collect(),
        timezone: zone_name(e.rules, e.state),
        unsubscribed: e.state.unsubscribed,
        state_bytes: e.state.encode(e.rules).len(),
    }
}

fn zone_name(rules: &CompiledRules, state: &UserState) -> String {
    guards::user_timezone(rules, state)
        .iana_name()
        .unwrap_or("UTC")
        .to_string()
}

fn explain_trigger(e: &Evidence<'_>, ti: usize) -> TriggerExplanation {
    let t = &e.rules.triggers[ti];
    // A `Wait` whose timer is already pending moves that timer: the engine's re-arm. It
    // reads as the pending wait cancelled by the new event, then the new wait.
    let mut armed: Vec<crate::engine::decision::DecisionId> = Vec::new();
    let mut decisions: Vec<Step> = Vec::new();
    for (at, d) in e.decisions.iter() {
        match d {
            Decision::Wait { id, trigger, .. } if *trigger == t.id => {
                if armed.contains(id) {
                    let rearm = Decision::Cancel {
                        id: *id,
                        trigger: trigger.clone(),
                        reason: CancelReason::Rearm,
                    };
                    decisions.extend(step(e, t, *at, &rearm));
                } else {
                    armed.push(*id);
                }
            }
            Decision::Cancel { id, trigger, .. } if *trigger == t.id => armed.retain(|p| p != id),
            // A decided send means its wait fell due: later waits are new ones.
            Decision::Send(s) if s.trigger == t.id => armed.clear(),
            _ => {}
        }
        decisions.extend(step(e, t, *at, d));
    }
    let mut waits: Vec<&Wait> = e
        .state
        .waits
        .iter()
        .filter(|w| w.trigger == t.stable_id)
        .collect();
    waits.sort_by_key(|w| (w.due, w.origin));
    let pending: Vec<Pending> = waits.iter().map(|w| pending(e, t, w)).collect();
    let last_match = match &t.on {
        COn::Event(m) => e
            .activities
            .iter()
            .rev()
            .find(|a| matches(m, &a.name, &a.properties))
            .map(|a| Match {
                at: a.at,
                event: a.name.clone(),
                properties: a.properties.clone(),
            }),
        COn::SegmentEntered(_) | COn::SegmentExited(_) => None,
    };
    let blocked = block(e, t, ti, last_match.as_ref().map(|m| &m.properties));
    let verdict = verdict(
        e,
        t,
        &decisions,
        &pending,
        blocked.as_ref(),
        last_match.as_ref(),
    );

    let (props, properties_from) = match (waits.first(), &last_match) {
        (Some(w), _) => (
            Props::Captured(&w.props),
            PropsSource::PendingWait { armed_at: w.origin },
        ),
        (None, Some(m)) => (
            Props::Event(&m.properties),
            PropsSource::LastMatch { at: m.at },
        ),
        (None, None) => (Props::None, PropsSource::NoEvent),
    };
    let ctx = Ctx {
        rules: e.rules,
        state: e.state,
        now: e.at,
        props,
    };
    let has_props = properties_from != PropsSource::NoEvent;
    let conditions = [("if", &t.when), ("check", &t.check), ("exit", &t.exit)]
        .into_iter()
        .filter_map(|(role, c)| {
            c.as_ref().map(|c| Condition {
                role,
                tree: node(&ctx, c, has_props),
            })
        })
        .collect();

    TriggerExplanation {
        id: t.id.to_string(),
        priority: t.priority,
        channel: t.channel,
        setup: setup(e.rules, t),
        cancel_on: t.cancel_on.iter().map(|c| matcher_text(&c.event)).collect(),
        verdict,
        decisions,
        pending,
        blocked,
        last_match,
        properties_from,
        conditions,
        policy: policy_state(e, t),
    }
}

/// The decision as a step of this trigger, if it is one.
fn step(e: &Evidence<'_>, t: &CTrigger, at: Millis, d: &Decision) -> Option<Step> {
    match d {
        Decision::Send(s) if s.trigger == t.id => Some(match s.reason {
            None => Step::Sent {
                at: s.at,
                message: s.message.to_string(),
                variant: s.variant.to_string(),
                experiment: s.experiment.as_deref().map(str::to_string),
            },
            Some(reason) => Step::Suppressed { at: s.at, reason },
        }),
        Decision::Wait {
            trigger,
            due,
            deferred,
            ..
        } if *trigger == t.id => Some(Step::Wait {
            at,
            due: *due,
            deferred: *deferred,
        }),
        Decision::Cancel {
            trigger, reason, ..
        } if *trigger == t.id => {
            let by = match reason {
                CancelReason::Event => e
                    .activities
                    .iter()
                    .rev()
                    .filter(|a| a.at == at)
                    .find(|a| {
                        t.cancel_on
                            .iter()
                            .any(|c| matches(&c.event, &a.name, &a.properties))
                    })
                    .map(|a| format!("`{}`", a.name)),
                CancelReason::Rearm => match &t.on {
                    COn::Event(m) => e
                        .activities
                        .iter()
                        .rev()
                        .filter(|a| a.at == at)
                        .find(|a| matches(m, &a.name, &a.properties))
                        .map(|a| format!("`{}`", a.name)),
                    _ => None,
                },
                CancelReason::Condition => None,
            };
            Some(Step::Cancelled {
                at,
                reason: *reason,
                by,
            })
        }
        _ => None,
    }
}

fn pending(e: &Evidence<'_>, t: &CTrigger, w: &Wait) -> Pending {
    let by = match &t.on {
        COn::Event(m) => e
            .activities
            .iter()
            .rev()
            .filter(|a| a.at == w.origin)
            .find(|a| matches(m, &a.name, &a.properties))
            .map(|a| format!("`{}`", a.name))
            .unwrap_or_else(|| matcher_text(m)),
        COn::SegmentEntered(s) => format!("entering segment {}", e.rules.segments[*s].id),
        COn::SegmentExited(s) => format!("leaving segment {}", e.rules.segments[*s].id),
    };
    Pending {
        due: w.due,
        armed_at: w.origin,
        by,
        deferred: w.deferred,
        properties: w
            .props
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    }
}

/// What keeps the trigger from firing now (once before cooldown: once is for good).
fn block(
    e: &Evidence<'_>,
    t: &CTrigger,
    ti: usize,
    props: Option<&Map<String, Value>>,
) -> Option<Block> {
    let memo = e.state.triggers.get(ti)?;
    let once = match &t.once {
        COnce::Never => None,
        COnce::User => memo.last.map(|at| Block::OnceUser { at }),
        COnce::Session => (memo.session == Some(e.state.sessions)).then_some(Block::OnceSession {
            session: e.state.sessions,
        }),
        COnce::PerProperty(path) => {
            // The engine keys the value as kept in state; missing reads as null.
            let v = props
                .and_then(|p| lookup(p, path))
                .map(|v| crate::state::Scalar::from_json(v).to_json())
                .unwrap_or(Value::Null);
            memo.keys
                .contains(&value_key(&v))
                .then(|| Block::OncePerValue {
                    property: path.join("."),
                    value: v,
                })
        }
    };
    once.or_else(|| {
        let (cd, last) = (t.cooldown?, memo.last?);
        let until = last.saturating_add(cd.0);
        (e.at < until).then_some(Block::Cooldown { until })
    })
}

fn verdict(
    e: &Evidence<'_>,
    t: &CTrigger,
    decisions: &[Step],
    pending: &[Pending],
    blocked: Option<&Block>,
    last_match: Option<&Match>,
) -> Verdict {
    if let Some(p) = pending.first() {
        return Verdict::Waiting {
            due: p.due,
            armed_at: p.armed_at,
            by: p.by.clone(),
            deferred: p.deferred,
        };
    }
    // The latest outcome; a wait or a re-arm is only a step towards one.
    let last = decisions.iter().rev().find(|s| {
        !matches!(
            s,
            Step::Wait { .. }
                | Step::Cancelled {
                    reason: CancelReason::Rearm,
                    ..
                }
        )
    });
    // A matching event after the last outcome tells more than the outcome does.
    let superseded = matches!((last, last_match), (Some(s), Some(m)) if m.at > s.at());
    if let (Some(s), false) = (last, superseded) {
        return match s {
            Step::Sent { at, .. } => Verdict::Sent { at: *at },
            Step::Suppressed { at, reason } => Verdict::Suppressed {
                at: *at,
                reason: *reason,
            },
            Step::Cancelled { at, reason, by } => Verdict::Cancelled {
                at: *at,
                reason: *reason,
                by: by.clone(),
            },
            Step::Wait { .. } => Verdict::NeverStarted,
        };
    }
    if let Some(b) = blocked {
        return Verdict::Blocked { block: b.clone() };
    }
    match &t.on {
        COn::Event(_) => match last_match {
            None => Verdict::NeverStarted,
            Some(m) if t.when.is_some() => Verdict::NotStarted { last_match: m.at },
            Some(m) => Verdict::NoDecision { last_match: m.at },
        },
        COn::SegmentEntered(s) | COn::SegmentExited(s) => {
            let seg = &e.rules.segments[*s];
            Verdict::NoSegmentChange {
                segment: seg.id.clone(),
                entered: matches!(t.on, COn::SegmentEntered(_)),
                member_now: e.state.segments.contains(&seg.stable_id),
            }
        }
    }
}

/// A condition tree with values read at the context's clock.
fn node(ctx: &Ctx<'_>, c: &CCond, has_props: bool) -> CondNode {
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

fn matcher_text(m: &Matcher) -> String {
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
fn setup(rules: &CompiledRules, t: &CTrigger) -> String {
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

fn policy_state(e: &Evidence<'_>, t: &CTrigger) -> PolicyState {
    let (rules, state, at) = (e.rules, e.state, e.at);
    let caps = rules
        .policies
        .caps
        .iter()
        .zip(&state.caps)
        .filter(|(cap, _)| cap.channel == t.channel)
        .map(|(cap, memo)| {
            let (used, per) = match (cap.per, memo) {
                (CapWindow::Rolling(per), CapMemo::Times(times)) => (
                    times
                        .iter()
                        .filter(|s| **s > at - per.0 && **s <= at)
                        .count() as u32,
                    per.to_string(),
                ),
                (CapWindow::Rolling(per), _) => (0, per.to_string()),
                (CapWindow::Session, CapMemo::Session { session, count })
                    if *session == state.sessions =>
                {
                    (*count, "session".to_string())
                }
                (CapWindow::Session, _) => (0, "session".to_string()),
            };
            CapState {
                used,
                max: cap.max,
                per,
                full: used >= cap.max,
            }
        })
        .collect();
    let quiet_hours = rules
        .policies
        .quiet_hours
        .iter()
        .find(|q| q.channels.contains(&t.channel))
        .map(|q| {
            let tz = guards::user_timezone(rules, state);
            let local_time = jiff::Timestamp::from_millisecond(at)
                .map(|ts| ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|_| format_instant(at));
            let now = guards::quiet_hours(rules, state, t.channel, at);
            QuietState {
                from: clock(q.from),
                to: clock(q.to),
                action: match q.action {
                    QuietAction::Defer => "defer",
                    QuietAction::Suppress => "suppress",
                },
                quiet_now: now.is_some(),
                local_time,
                timezone: zone_name(rules, state),
                deferred_to: match now {
                    Some(guards::Quiet::Defer(until)) => Some(until),
                    _ => None,
                },
            }
        });
    PolicyState {
        channel: t.channel,
        exempt: rules.policies.exempt.contains(&t.priority),
        caps,
        quiet_hours,
        unsubscribed: (t.channel == Channel::Email).then_some(state.unsubscribed),
        min_gap: rules.policies.min_gap.map(|gap| GapState {
            gap: gap.to_string(),
            blocks_now: guards::too_close(rules, state, t.channel, t.priority, at),
        }),
        experiment: t.experiment.map(|ei| {
            let exp = &rules.experiments[ei];
            let variant = state
                .assignments
                .iter()
                .find(|(id, _)| *id == exp.stable_id)
                .map(|(_, v)| match exp.variants.get(usize::from(*v)) {
                    Some(var) => var.name.to_string(),
                    None => crate::rules::model::HOLDOUT.to_string(),
                });
            ExperimentState {
                id: exp.id.to_string(),
                variant,
            }
        }),
    }
}

fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn instant<S: Serializer>(at: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_instant(*at))
}

fn opt_instant<S: Serializer>(at: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(&format_instant(*at)),
        None => s.serialize_none(),
    }
}

// ---- text ----

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Replay;
    use serde_json::json;

    const RULES: &str = r#"
segments:
  onboarding:
    all:
      - ever: Signed Up
      - never: Onboarding Completed
triggers:
  login-help:
    priority: urgent
    on: Login Failed
    if: {count: Login Failed, within: 10m, at_least: 3}
    cooldown: 1h
    send: {channel: in_app, message: note}
  reminder:
    priority: high
    on: {event: Step Viewed, where: {step: profile}}
    wait: 24h
    cancel_on: [Profile Completed]
    once: user
    send: {channel: email, message: mail}
  congrats:
    on: Onboarding Completed
    if:
      all:
        - time_since: Signed Up
          first: true
          at_most: 3d
        - in_segment: onboarding
    send: {channel: email, message: mail}
  tip:
    on: {event: Button Clicked, where: {label: Billing}}
    once: user
    send: {channel: in_app, message: note}
messages:
  note:
    channel: in_app
    in_app: {title: "t", body: "b"}
  mail:
    channel: email
    email: {subject: "s", text: "t"}
policies:
  frequency_caps:
    - {channel: email, max: 2, per: 7d}
"#;

    use crate::test_support::t;

    fn rules() -> CompiledRules {
        crate::test_support::compile(RULES)
    }

    fn track(id: &str, name: &str, props: Value, at: &str) -> (Message, Millis) {
        let v = json!({"type": "track", "userId": "u1", "event": name, "properties": props,
            "timestamp": at, "messageId": id});
        (Message::from_json(&v, None).expect("valid message"), t(at))
    }

    /// Replays `events` to `at` as `nudge explain` does and explains one trigger.
    fn explain_at(
        r: &CompiledRules,
        events: &[(Message, Millis)],
        trigger: &str,
        at: &str,
    ) -> Explanation {
        let at = t(at);
        let mut replay = Replay::new(r);
        replay.record_decisions_of("u1");
        for (m, when) in events.iter().filter(|(_, when)| *when <= at) {
            replay.event(m, *when);
        }
        replay.advance_to(at);
        let state = replay.state("u1").expect("u1 has state");
        let activities = Activity::of_user(events, "u1", at);
        let e = Evidence {
            rules: r,
            user_id: "u1",
            state,
            decisions: replay.decisions_of("u1"),
            activities: &activities,
            at,
        };
        explain(&e, Some(trigger)).expect("known trigger")
    }

    fn only(x: &Explanation) -> &TriggerExplanation {
        assert_eq!(x.triggers.len(), 1);
        &x.triggers[0]
    }

    #[test]
    fn a_sent_trigger_says_when_and_that_once_is_spent() {
        // Given a once-per-user trigger that fired
        let r = rules();
        let events = [track(
            "m1",
            "Button Clicked",
            json!({"label": "Billing"}),
            "2026-03-02T10:00:00Z",
        )];
        // When explained an hour later
        let x = explain_at(&r, &events, "tip", "2026-03-02T11:00:00Z");
        let tip = only(&x);
        // Then the verdict is the send, and once is spent from then on
        assert_eq!(
            tip.verdict,
            Verdict::Sent {
                at: t("2026-03-02T10:00:00Z")
            }
        );
        assert_eq!(
            tip.blocked,
            Some(Block::OnceUser {
                at: t("2026-03-02T10:00:00Z")
            })
        );
        assert!(x.to_string().contains("trigger tip (low, on `Button Clicked` where label = \"Billing\", once: user) — sent at 2026-03-02T10:00:00Z"));
        assert!(x
            .to_string()
            .contains("now: blocked: once per user already spent at 2026-03-02T10:00:00Z"));
    }

    #[test]
    fn a_later_match_on_a_spent_once_is_blocked() {
        // Given the trigger fired, and the same event came again
        let r = rules();
        let events = [
            track(
                "m1",
                "Button Clicked",
                json!({"label": "Billing"}),
                "2026-03-02T10:00:00Z",
            ),
            track(
                "m2",
                "Button Clicked",
                json!({"label": "Billing"}),
                "2026-03-02T10:30:00Z",
            ),
        ];
        let x = explain_at(&r, &events, "tip", "2026-03-02T11:00:00Z");
        let tip = only(&x);
        // Then the answer is the spent once, not the old send
        assert_eq!(
            tip.verdict,
            Verdict::Blocked {
                block: Block::OnceUser {
                    at: t("2026-03-02T10:00:00Z")
                }
            }
        );
        assert_eq!(tip.decisions.len(), 1, "the second event decided nothing");
        assert!(x
            .to_string()
            .contains("— blocked: once per user already spent at 2026-03-02T10:00:00Z"));
    }

    #[test]
    fn a_pending_wait_says_when_it_falls_due_and_what_armed_it() {
        let r = rules();
        let events = [track(
            "m1",
            "Step Viewed",
            json!({"step": "profile"}),
            "2026-03-02T10:00:00Z",
        )];
        let x = explain_at(&r, &events, "reminder", "2026-03-02T12:00:00Z");
        let rem = only(&x);
        assert_eq!(
            rem.verdict,
            Verdict::Waiting {
                due: t("2026-03-03T10:00:00Z"),
                armed_at: t("2026-03-02T10:00:00Z"),
                by: "`Step Viewed`".into(),
                deferred: false,
            }
        );
        let text = x.to_string();
        assert!(text.contains(
            "trigger reminder (high, on `Step Viewed` where step = \"profile\", wait 1d, once: user) — waiting: due at 2026-03-03T10:00:00Z (armed at 2026-03-02T10:00:00Z by `Step Viewed`)"
        ), "{text}");
        assert!(text.contains("frequency cap: 0/2 in 7d"), "{text}");
        assert!(text.contains("unsubscribed: no"), "{text}");
    }

    #[test]
    fn a_wait_that_fell_due_is_sent_and_a_cancelled_one_names_the_event() {
        let r = rules();
        let viewed = track(
            "m1",
            "Step Viewed",
            json!({"step": "profile"}),
            "2026-03-02T10:00:00Z",
        );
        let x = explain_at(
            &r,
            std::slice::from_ref(&viewed),
            "reminder",
            "2026-03-04T10:00:00Z",
        );
        assert_eq!(
            only(&x).verdict,
            Verdict::Sent {
                at: t("2026-03-03T10:00:00Z")
            }
        );
        assert!(x.to_string().contains("frequency cap: 1/2 in 7d"));

        let done = track("m2", "Profile Completed", json!({}), "2026-03-02T11:00:00Z");
        let x = explain_at(&r, &[viewed, done], "reminder", "2026-03-04T10:00:00Z");
        assert_eq!(
            only(&x).verdict,
            Verdict::Cancelled {
                at: t("2026-03-02T11:00:00Z"),
                reason: CancelReason::Event,
                by: Some("`Profile Completed`".into()),
            }
        );
        assert!(x
            .to_string()
            .contains("— cancelled at 2026-03-02T11:00:00Z by `Profile Completed`"));
    }

    #[test]
    fn a_false_if_marks_the_failing_part() {
        // Given a user who completed onboarding four days after signing up
        let r = rules();
        let events = [
            track("m1", "Signed Up", json!({}), "2026-03-01T10:00:00Z"),
            track(
                "m2",
                "Onboarding Completed",
                json!({}),
                "2026-03-05T10:00:00Z",
            ),
        ];
        let x = explain_at(&r, &events, "congrats", "2026-03-05T10:00:00Z");
        let c = only(&x);
        // Then the trigger did not start, and `if` shows which part failed
        assert_eq!(
            c.verdict,
            Verdict::NotStarted {
                last_match: t("2026-03-05T10:00:00Z")
            }
        );
        let cond = &c.conditions[0];
        assert_eq!(
            (cond.role, cond.tree.holds, cond.tree.text.as_str()),
            ("if", false, "all")
        );
        let since = &cond.tree.children[0];
        assert!(!since.holds);
        assert_eq!(
            since.text,
            "time since the first `Signed Up` = 4d (at_most 3d)"
        );
        let seg = &cond.tree.children[1];
        assert!(!seg.holds);
        assert_eq!(seg.text, "in segment onboarding: all of");
        assert_eq!(
            seg.children[0].text,
            "count of `Signed Up` = 1 (at_least 1)"
        );
        assert!(seg.children[0].holds);
        assert!(!seg.children[1].holds);
        let text = x.to_string();
        assert!(text.contains("  if: ✗ all\n    ✗ time since the first `Signed Up` = 4d (at_most 3d)\n    ✗ in segment onboarding: all of\n      ✓ count of `Signed Up` = 1 (at_least 1)\n"), "{text}");
        assert!(text.contains(
            "not started: `if` was false at the last matching event (2026-03-05T10:00:00Z)"
        ));
    }

    #[test]
    fn a_missing_time_reads_never_happened() {
        let r = rules();
        let events = [track(
            "m1",
            "Onboarding Completed",
            json!({}),
            "2026-03-05T10:00:00Z",
        )];
        let x = explain_at(&r, &events, "congrats", "2026-03-05T10:00:00Z");
        let since = &only(&x).conditions[0].tree.children[0];
        assert_eq!(
            since.text,
            "time since the first `Signed Up`: never happened (at_most 3d)"
        );
    }

    #[test]
    fn cooldown_suppresses_and_blocks_until_it_ends() {
        // Given three failed logins (sent) and a fourth within the hour
        let r = rules();
        let events = [
            track("m1", "Login Failed", json!({}), "2026-03-02T10:00:00Z"),
            track("m2", "Login Failed", json!({}), "2026-03-02T10:01:00Z"),
            track("m3", "Login Failed", json!({}), "2026-03-02T10:02:00Z"),
            track("m4", "Login Failed", json!({}), "2026-03-02T10:03:00Z"),
        ];
        let x = explain_at(&r, &events, "login-help", "2026-03-02T10:05:00Z");
        let l = only(&x);
        // Then the last decision is the cooldown suppression, and the cooldown runs on
        assert_eq!(
            l.verdict,
            Verdict::Suppressed {
                at: t("2026-03-02T10:03:00Z"),
                reason: Reason::Cooldown
            }
        );
        assert_eq!(
            l.blocked,
            Some(Block::Cooldown {
                until: t("2026-03-02T11:02:00Z")
            })
        );
        assert_eq!(l.decisions.len(), 2);
        assert_eq!(
            l.conditions[0].tree.text,
            "count of `Login Failed` in the last 10m = 4 (at_least 3)"
        );
        let text = x.to_string();
        assert!(
            text.contains("now: blocked: cooldown until 2026-03-02T11:02:00Z"),
            "{text}"
        );
        assert!(
            text.contains("2026-03-02T10:02:00Z  sent note (variant default)"),
            "{text}"
        );
        // And after the window closes the count reads lower
        let x = explain_at(&r, &events, "login-help", "2026-03-02T10:12:30Z");
        assert_eq!(
            only(&x).conditions[0].tree.text,
            "count of `Login Failed` in the last 10m = 1 (at_least 3)"
        );
    }

    #[test]
    fn an_untouched_trigger_never_started() {
        let r = rules();
        let events = [track("m1", "Signed Up", json!({}), "2026-03-02T10:00:00Z")];
        let x = explain_at(&r, &events, "tip", "2026-03-02T10:00:00Z");
        assert_eq!(only(&x).verdict, Verdict::NeverStarted);
        assert_eq!(x.user.segments, vec!["onboarding".to_string()]);
        assert_eq!(x.user.sessions, 1);
        assert!(x.user.state_bytes > 0);
    }

    #[test]
    fn an_unknown_trigger_names_the_known_ones() {
        let r = rules();
        let state = UserState::new(&r);
        let e = Evidence {
            rules: &r,
            user_id: "u1",
            state: &state,
            decisions: &[],
            activities: &[],
            at: 0,
        };
        let err = explain(&e, Some("remider")).expect_err("unknown trigger");
        assert_eq!(
            err.to_string(),
            "unknown trigger `remider` (did you mean `reminder`?); the rule set has: login-help, reminder, congrats, tip"
        );
    }

    #[test]
    fn json_names_kinds_and_writes_instants_as_text() {
        let r = rules();
        let events = [track(
            "m1",
            "Step Viewed",
            json!({"step": "profile"}),
            "2026-03-02T10:00:00Z",
        )];
        let x = explain_at(&r, &events, "reminder", "2026-03-02T12:00:00Z");
        let v = serde_json::to_value(&x).expect("serializes");
        assert_eq!(v["at"], "2026-03-02T12:00:00Z");
        assert_eq!(v["triggers"][0]["verdict"]["kind"], "waiting");
        assert_eq!(v["triggers"][0]["verdict"]["due"], "2026-03-03T10:00:00Z");
        assert_eq!(v["triggers"][0]["decisions"][0]["kind"], "wait");
        assert_eq!(v["triggers"][0]["policy"]["caps"][0]["max"], 2);
    }
}
