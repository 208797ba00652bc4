//! A journey's `report` expectations: counts of the report of the run (from its start to
//! `until`, as `nudge report` computes it: sends count as delivered), so goals, conversions,
//! funnels, engagement and experiments are tested in CI like the sends.
//!
//! ```yaml
//!     report:
//!       - {trigger: profile-reminder, sent: 1, converted: 1}
//!       - {trigger: article-followup, variant: b, clicked: 1}
//!       - {funnel: onboarding, step: profile, users: 1}
//!       - {experiment: followup-delay, variant: a, users: 1, converted: 1}
//! ```

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;
use serde_json::Value;

use super::parse::{check_ref, start_of, string_at};
use super::{Failure, Loc};
use crate::insights::Report;
use crate::rules::compiled::CompiledRules;
use crate::rules::yaml::{Diagnostics, Reader};

/// The counts a trigger row has (of the trigger, or of one of its variants).
const TRIGGER_FIELDS: &[&str] = &[
    "started",
    "cancelled",
    "waiting",
    "sent",
    "failed",
    "delivered",
    "opened",
    "clicked",
    "dismissed",
    "converted",
    "value",
];
const FUNNEL_FIELDS: &[&str] = &["users"];
const EXPERIMENT_FIELDS: &[&str] = &["users", "converted", "value"];

/// Which row of the report an expectation reads.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    Trigger { id: String, variant: Option<String> },
    Funnel { id: String, step: String },
    Experiment { id: String, variant: String },
}

/// Counts one row of the run's report must have.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MeasureExpect {
    loc: Loc,
    row: Row,
    counts: Vec<(String, f64)>,
}

/// Parses one `report` item, reporting every mistake with its position.
pub(super) fn parse_measure(
    r: Reader,
    node: &Node,
    rules: &CompiledRules,
    d: &mut Diagnostics,
) -> Option<MeasureExpect> {
    let m = r.map(node, "a report item", d)?;
    let loc = Loc::from(start_of(r, node));
    let kinds: Vec<&str> = ["trigger", "funnel", "experiment"]
        .into_iter()
        .filter(|k| m.get_node(k).is_some())
        .collect();
    let [kind] = kinds[..] else {
        d.error(
            start_of(r, node),
            "a report item names one of `trigger`, `funnel` or `experiment`",
        );
        return None;
    };
    let (fields, extra): (&[&str], &[&str]) = match kind {
        "trigger" => (TRIGGER_FIELDS, &["trigger", "variant"]),
        "funnel" => (FUNNEL_FIELDS, &["funnel", "step"]),
        _ => (EXPERIMENT_FIELDS, &["experiment", "variant"]),
    };
    let keys: Vec<&str> = extra.iter().chain(fields).copied().collect();
    r.check_keys(m, &keys, &format!("a {kind} report item"), d);
    let row = row(r, m, kind, rules, d);
    let mut counts = Vec::new();
    for (k, v) in m.iter() {
        let key = k.as_str();
        if fields.contains(&key) {
            if let Some(n) = r.number(v, key, d) {
                counts.push((key.to_string(), n));
            }
        }
    }
    if counts.is_empty() {
        d.error(
            start_of(r, node),
            format!("a {kind} report item needs a count: {}", fields.join(", ")),
        );
        return None;
    }
    Some(MeasureExpect {
        loc,
        row: row?,
        counts,
    })
}

/// The row an item names, with its ids checked against the rule set.
fn row(
    r: Reader,
    m: &MarkedMappingNode,
    kind: &str,
    rules: &CompiledRules,
    d: &mut Diagnostics,
) -> Option<Row> {
    let (id, pos) = string_at(r, m, kind, d)?;
    let variant = string_at(r, m, "variant", d);
    match kind {
        "trigger" => {
            let t = rules.triggers.iter().find(|t| *t.id == id);
            let ids: Vec<&str> = rules.triggers.iter().map(|t| &*t.id).collect();
            if !check_ref(&id, &ids, "trigger", pos, d) {
                return None;
            }
            if let (Some(t), Some((v, vpos))) = (t, &variant) {
                let names: Vec<&str> = t.variant_names.iter().map(|v| &**v).collect();
                if !check_ref(v, &names, "variant of this trigger", *vpos, d) {
                    return None;
                }
            }
            Some(Row::Trigger {
                id,
                variant: variant.map(|(v, _)| v),
            })
        }
        "funnel" => {
            let f = rules.funnels.iter().find(|f| *f.id == id);
            let ids: Vec<&str> = rules.funnels.iter().map(|f| &*f.id).collect();
            if !check_ref(&id, &ids, "funnel", pos, d) {
                return None;
            }
            let Some((step, spos)) = string_at(r, m, "step", d) else {
                d.error(pos, "a funnel report item needs `step` (a step's name)");
                return None;
            };
            let names: Vec<&str> =
                f.map_or(vec![], |f| f.steps.iter().map(|s| &*s.label).collect());
            check_ref(&step, &names, "step of this funnel", spos, d)
                .then_some(Row::Funnel { id, step })
        }
        _ => {
            let e = rules.experiments.iter().find(|e| *e.id == id);
            let ids: Vec<&str> = rules.experiments.iter().map(|e| &*e.id).collect();
            if !check_ref(&id, &ids, "experiment", pos, d) {
                return None;
            }
            let Some((v, vpos)) = variant else {
                d.error(pos, "an experiment report item needs `variant`");
                return None;
            };
            let mut names: Vec<&str> = e.map_or(vec![], |e| {
                e.variants.iter().map(|v| &*v.name).collect::<Vec<_>>()
            });
            if let Some(e) = e.filter(|e| e.holdout_upto > 0) {
                names.push(&e.holdout_name);
            }
            check_ref(&v, &names, "variant of this experiment", vpos, d)
                .then_some(Row::Experiment { id, variant: v })
        }
    }
}

impl MeasureExpect {
    /// The row's JSON in the report (`Value::Null` when the report has no such row).
    fn find(&self, report: &Value) -> Value {
        let pick = |list: &Value, key: &str, value: &str| {
            list.as_array()
                .and_then(|items| items.iter().find(|i| i[key] == value))
                .cloned()
                .unwrap_or(Value::Null)
        };
        match &self.row {
            Row::Trigger { id, variant } => {
                let t = pick(&report["triggers"], "trigger", id);
                match variant {
                    Some(v) => pick(&t["variants"], "variant", v),
                    None => t,
                }
            }
            Row::Funnel { id, step } => pick(
                &pick(&report["funnels"], "funnel", id)["steps"],
                "step",
                step,
            ),
            Row::Experiment { id, variant } => pick(
                &pick(&report["experiments"], "experiment", id)["variants"],
                "variant",
                variant,
            ),
        }
    }

    fn describe(&self) -> String {
        match &self.row {
            Row::Trigger { id, variant: None } => format!("trigger {id}"),
            Row::Trigger {
                id,
                variant: Some(v),
            } => format!("trigger {id}, variant {v}"),
            Row::Funnel { id, step } => format!("funnel {id}, step {step}"),
            Row::Experiment { id, variant } => format!("experiment {id}, variant {variant}"),
        }
    }

    /// A failure for each count that differs from the report's.
    pub(super) fn check(&self, report: &Report, failures: &mut Vec<Failure>) {
        let json = serde_json::to_value(report).unwrap_or(Value::Null);
        let row = self.find(&json);
        for (field, expected) in &self.counts {
            let actual = row[field.as_str()].as_f64().unwrap_or(0.0);
            if (actual - expected).abs() > 1e-9 {
                failures.push(Failure::Measure {
                    loc: self.loc,
                    row: self.describe(),
                    field: field.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::journey::test_support::{assert_errors, errors, run_one};
    use crate::journey::Failure;

    #[test]
    fn report_items_are_checked_against_the_rule_set() {
        let errs = errors(
            r#"tests:
  - name: typos
    events:
      - {at: +0s, event: Signed Up}
    report:
      - {trigger: welcom, sent: 1}
      - {sent: 1}
      - {trigger: welcome, sendt: 1}
      - {trigger: welcome}
      - {funnel: onboarding, step: a, users: 1}
      - {trigger: welcome, variant: b, sent: 1}
"#,
        );
        let expected = [
            "t.yaml:6:19: unknown trigger `welcom` (did you mean `welcome`?)",
            "t.yaml:7:9: a report item names one of `trigger`, `funnel` or `experiment`",
            "t.yaml:8:28: unknown key `sendt` in a trigger report item (did you mean `sent`?)",
            "t.yaml:8:9: a trigger report item needs a count",
            "t.yaml:9:9: a trigger report item needs a count",
            "t.yaml:10:18: unknown funnel `onboarding` (the rule set defines none)",
            "t.yaml:11:37: unknown variant of this trigger `b`",
        ];
        assert_errors(&errs, &expected);
    }

    #[test]
    fn a_count_that_differs_fails_the_test_naming_row_and_values() {
        let passing = run_one(
            r#"  - name: counted
    events:
      - {at: +0s, event: Step Viewed, properties: {step: profile}}
      - {at: +1h, event: Profile Completed}
    report:
      - {trigger: reminder, started: 1, cancelled: 1, sent: 0}
"#,
        );
        assert!(passing.failures.is_empty(), "{:?}", passing.failures);
        let failing = run_one(
            r#"  - name: miscounted
    events:
      - {at: +0s, event: Step Viewed, properties: {step: profile}}
    report:
      - {trigger: reminder, sent: 2, delivered: 1}
"#,
        );
        assert_eq!(
            failing.failures,
            [Failure::Measure {
                loc: failing_loc(&failing.failures),
                row: "trigger reminder".into(),
                field: "sent".into(),
                expected: 2.0,
                actual: 1.0,
            }]
        );
    }

    fn failing_loc(f: &[Failure]) -> crate::journey::Loc {
        match f.first() {
            Some(Failure::Measure { loc, .. }) => *loc,
            _ => panic!("no report failure: {f:?}"),
        }
    }
}
