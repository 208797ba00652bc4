//! The report: what the rules did and what it achieved over a period, built from counter sums
//! (one JSON shape on `nudge serve`, on AWS and from `nudge report`). Every trigger, funnel
//! and experiment of the rules is listed, with zeros when nothing happened.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::histogram::quantile;
use super::key::{Field, Key, Scope};
use super::period::Period;
use super::stats::{self, Comparison, Sample};
use crate::rules::compiled::{CBreakdown, CompiledRules};
use crate::time::format_instant;

/// Counter sums over a period, as a store reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    pub counts: HashMap<Key, i64>,
    /// Pending waits per trigger, now.
    pub waiting: HashMap<Arc<str>, i64>,
    /// Distinct users seen in the period (estimated).
    pub users: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub period: PeriodJson,
    pub events: i64,
    pub users: u64,
    pub triggers: Vec<TriggerReport>,
    pub funnels: Vec<FunnelReport>,
    pub experiments: Vec<ExperimentReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodJson {
    pub from: String,
    pub to: String,
}

/// Counts of one trigger, or of one of its variants.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub started: i64,
    pub cancelled: i64,
    pub sent: i64,
    pub suppressed: BTreeMap<String, i64>,
    pub failed: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub dismissed: i64,
    pub converted: i64,
    /// Converted sends per send.
    pub conversion_rate: Option<f64>,
    /// Clicks per send.
    pub click_rate: Option<f64>,
    /// Sum of the goal's value over converting events.
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerReport {
    pub trigger: String,
    pub channel: String,
    pub goal: Option<String>,
    /// Waits pending now (not bounded by the period).
    pub waiting: i64,
    #[serde(flatten)]
    pub counts: Counts,
    /// Triggering event to send, in seconds.
    pub latency_s: Latency,
    pub variants: Vec<VariantReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantReport {
    pub variant: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    pub step: String,
    pub users: i64,
    pub rate_from_previous: Option<f64>,
    pub rate_from_start: Option<f64>,
    pub median_s_from_previous: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakdownValue {
    pub value: String,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakdownReport {
    /// `segment:<id>`, `trait:<name>` or `experiment:<id>`.
    pub by: String,
    pub values: Vec<BreakdownValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelReport {
    pub funnel: String,
    pub within_s: i64,
    pub steps: Vec<StepReport>,
    pub breakdown: Option<BreakdownReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    pub variant: String,
    pub users: i64,
    pub converted: i64,
    pub rate: Option<f64>,
    /// 95% Wilson interval of the rate.
    pub ci95: Option<[f64; 2]>,
    pub value: f64,
    /// Goal value per assigned user.
    pub value_per_user: Option<f64>,
    /// Its 95% interval (normal), when the goal has a value.
    pub value_per_user_ci95: Option<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentReport {
    pub experiment: String,
    pub goal: Option<String>,
    /// The variant the others are compared with.
    pub control: String,
    /// The difference of rates the anytime-valid test is tuned to (and sample sizes are
    /// estimated for).
    pub min_detectable_effect: f64,
    pub variants: Vec<ArmReport>,
    /// Each other variant against the control, and each variant against the holdout.
    pub comparisons: Vec<Comparison>,
}

/// One experiment arm's counters: users, converted users, the goal value and the sum of
/// each user's value squared (both in thousandths).
#[derive(Debug, Default, Clone, Copy)]
struct Arm {
    users: i64,
    converted: i64,
    value: i64,
    squares: i64,
}

/// Each variant against the control, then each variant (the control too) against the holdout.
fn comparisons(arms: &[ArmReport], control: &str, holdout: &str, tau: f64) -> Vec<Comparison> {
    let sample = |a: &ArmReport| Sample {
        converted: a.converted,
        users: a.users,
    };
    let find = |name: &str| arms.iter().find(|a| a.variant == name);
    let mut out = Vec::new();
    for (against, skip) in [
        (control, &[control, holdout][..]),
        (holdout, &[holdout][..]),
    ] {
        let Some(base) = find(against) else {
            continue;
        };
        for a in arms.iter().filter(|a| !skip.contains(&a.variant.as_str())) {
            let mut c = stats::compare(&a.variant, sample(a), against, sample(base), tau);
            round_comparison(&mut c);
            out.push(c);
        }
    }
    out
}

/// Six decimals: far below any figure's error, and stable in JSON.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn round_comparison(c: &mut Comparison) {
    c.difference = c.difference.map(round6);
    c.ci95 = c.ci95.map(|ci| ci.map(round6));
    c.anytime.ci95 = c.anytime.ci95.map(|ci| ci.map(round6));
}

/// A ratio rounded to four decimals; `None` over zero.
fn rate(n: i64, of: i64) -> Option<f64> {
    (of > 0).then(|| (n as f64 / of as f64 * 10_000.0).round() / 10_000.0)
}

fn value_of(thousandths: i64) -> f64 {
    thousandths as f64 / 1000.0
}

impl Counts {
    fn add(&mut self, field: &Field, n: i64) {
        match field {
            Field::Started => self.started += n,
            Field::Cancelled => self.cancelled += n,
            Field::Sent => self.sent += n,
            Field::Suppressed(r) => *self.suppressed.entry(r.to_string()).or_default() += n,
            Field::Failed => self.failed += n,
            Field::Delivered => self.delivered += n,
            Field::Opened => self.opened += n,
            Field::Clicked => self.clicked += n,
            Field::Dismissed => self.dismissed += n,
            Field::Converted => self.converted += n,
            Field::Value => self.value += value_of(n),
            _ => {}
        }
    }

    fn finish(mut self) -> Counts {
        self.conversion_rate = rate(self.converted, self.sent);
        self.click_rate = rate(self.clicked, self.sent);
        self.suppressed.retain(|_, n| *n != 0);
        self.value = (self.value * 1000.0).round() / 1000.0;
        self
    }
}

impl Report {
    /// The report of `rules` over `period` from counter sums.
    pub fn build(rules: &CompiledRules, period: Period, sums: &Sums) -> Report {
        type Rows<'k> = Vec<(&'k Key, i64)>;
        let mut by_scope: HashMap<(Scope, Arc<str>), Rows> = HashMap::default();
        let mut events = 0;
        for (k, &n) in &sums.counts {
            if k.scope == Scope::Totals {
                if k.field == Field::Events {
                    events += n;
                }
                continue;
            }
            by_scope
                .entry((k.scope, k.name.clone()))
                .or_default()
                .push((k, n));
        }
        let none: Rows = Vec::new();
        let rows = |scope, name: &Arc<str>| by_scope.get(&(scope, name.clone())).unwrap_or(&none);
        let triggers = rules
            .triggers
            .iter()
            .map(|t| {
                let mut total = Counts::default();
                let mut variants: BTreeMap<&str, Counts> = BTreeMap::new();
                let mut latency = Vec::new();
                for (k, n) in rows(Scope::Trigger, &t.id) {
                    total.add(&k.field, *n);
                    if let Field::Latency(b) = k.field {
                        latency.push((b, *n));
                    }
                    if !k.variant.is_empty() {
                        variants.entry(&k.variant).or_default().add(&k.field, *n);
                    }
                }
                // Variants in the rules' order, then any others counted (since renamed).
                let mut ordered: Vec<VariantReport> = Vec::new();
                for name in &t.variant_names {
                    if let Some(c) = variants.remove(&**name) {
                        ordered.push(VariantReport {
                            variant: name.to_string(),
                            counts: c.finish(),
                        });
                    }
                }
                ordered.extend(variants.into_iter().map(|(v, c)| VariantReport {
                    variant: v.to_string(),
                    counts: c.finish(),
                }));
                TriggerReport {
                    trigger: t.id.to_string(),
                    channel: t.channel.as_str().to_string(),
                    goal: t.goal.map(|g| rules.goals[g.goal].id.to_string()),
                    waiting: sums.waiting.get(&t.id).copied().unwrap_or(0),
                    counts: total.finish(),
                    latency_s: Latency {
                        p50: quantile(&latency, 0.5),
                        p99: quantile(&latency, 0.99),
                    },
                    variants: ordered,
                }
            })
            .collect();
        let funnels = rules
            .funnels
            .iter()
            .map(|f| {
                let labels: Vec<&str> = f.steps.iter().map(|s| &*s.label).collect();
                let mut all = StepSums::new(labels.len());
                let mut split: BTreeMap<&str, StepSums> = BTreeMap::new();
                for (k, n) in rows(Scope::Funnel, &f.id) {
                    let Ok(step) = k.part.parse::<usize>() else {
                        continue;
                    };
                    all.add(step, &k.field, *n);
                    if f.breakdown.is_some() {
                        split
                            .entry(&k.variant)
                            .or_insert_with(|| StepSums::new(labels.len()))
                            .add(step, &k.field, *n);
                    }
                }
                let breakdown = f.breakdown.as_ref().map(|b| BreakdownReport {
                    by: match b {
                        CBreakdown::Segment(s) => format!("segment:{}", rules.segments[*s].id),
                        CBreakdown::Trait(t) => format!("trait:{t}"),
                        CBreakdown::Experiment(e) => {
                            format!("experiment:{}", rules.experiments[*e].id)
                        }
                    },
                    values: split
                        .into_iter()
                        .map(|(v, s)| BreakdownValue {
                            value: v.to_string(),
                            steps: s.report(&labels),
                        })
                        .collect(),
                });
                FunnelReport {
                    funnel: f.id.to_string(),
                    within_s: f.within.0 / 1000,
                    steps: all.report(&labels),
                    breakdown,
                }
            })
            .collect();
        let experiments = rules
            .experiments
            .iter()
            .map(|e| {
                let mut arms: BTreeMap<&str, Arm> = BTreeMap::new();
                for (k, n) in rows(Scope::Experiment, &e.id) {
                    let a = arms.entry(&k.variant).or_default();
                    match k.field {
                        Field::Assigned => a.users += n,
                        Field::Converted => a.converted += n,
                        Field::Value => a.value += n,
                        Field::ValueSquares => a.squares += n,
                        _ => {}
                    }
                }
                let valued = e.goal.is_some_and(|g| rules.goals[g.goal].value.is_some());
                let mut names: Vec<&str> = e.variants.iter().map(|v| &*v.name).collect();
                if e.holdout_upto > 0 {
                    names.push(&e.holdout_name);
                }
                let mut ordered: Vec<ArmReport> = Vec::new();
                let arm = |name: &str, a: Arm| ArmReport {
                    variant: name.to_string(),
                    users: a.users,
                    converted: a.converted,
                    rate: rate(a.converted, a.users),
                    ci95: stats::wilson(Sample {
                        converted: a.converted,
                        users: a.users,
                    })
                    .map(|ci| ci.map(round6)),
                    value: value_of(a.value),
                    value_per_user: (a.users > 0).then(|| value_of(a.value) / a.users as f64),
                    value_per_user_ci95: valued
                        .then(|| {
                            stats::mean_interval(value_of(a.value), value_of(a.squares), a.users)
                        })
                        .flatten()
                        .map(|ci| ci.map(round6)),
                };
                for name in names {
                    ordered.push(arm(name, arms.remove(name).unwrap_or_default()));
                }
                ordered.extend(arms.into_iter().map(|(name, a)| arm(name, a)));
                let control = e
                    .variants
                    .get(e.control)
                    .map_or_else(String::new, |v| v.name.to_string());
                let tau = e.min_detectable_effect.unwrap_or(stats::DEFAULT_TAU);
                ExperimentReport {
                    experiment: e.id.to_string(),
                    goal: e.goal.map(|g| rules.goals[g.goal].id.to_string()),
                    comparisons: comparisons(&ordered, &control, &e.holdout_name, tau),
                    control,
                    min_detectable_effect: tau,
                    variants: ordered,
                }
            })
            .collect();
        Report {
            period: PeriodJson {
                from: format_instant(period.from_instant()),
                to: format_instant(period.to_instant()),
            },
            events,
            users: sums.users,
            triggers,
            funnels,
            experiments,
        }
    }
}

/// Per-step users and time-from-previous histograms of a funnel (or one breakdown value).
struct StepSums {
    users: Vec<i64>,
    from_previous: Vec<Vec<(u16, i64)>>,
}

impl StepSums {
    fn new(steps: usize) -> StepSums {
        StepSums {
            users: vec![0; steps],
            from_previous: vec![Vec::new(); steps],
        }
    }

    fn add(&mut self, step: usize, field: &Field, n: i64) {
        if step >= self.users.len() {
            return;
        }
        match field {
            Field::Users => self.users[step] += n,
            Field::FromPrevious(b) => self.from_previous[step].push((*b, n)),
            _ => {}
        }
    }

    fn report(&self, labels: &[&str]) -> Vec<StepReport> {
        let first = self.users.first().copied().unwrap_or(0);
        labels
            .iter()
            .enumerate()
            .map(|(i, label)| StepReport {
                step: label.to_string(),
                users: self.users[i],
                rate_from_previous: if i == 0 {
                    None
                } else {
                    rate(self.users[i], self.users[i - 1])
                },
                rate_from_start: rate(self.users[i], first),
                median_s_from_previous: if i == 0 {
                    None
                } else {
                    quantile(&self.from_previous[i], 0.5)
                },
            })
            .collect()
    }
}
