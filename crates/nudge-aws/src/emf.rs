//! Metrics on Lambda: CloudWatch embedded metric format (EMF). Each observation is one JSON
//! line on stdout; CloudWatch Logs turns it into a metric in the `nudge` namespace, so no
//! PutMetricData call (and no latency, no IAM permission) is needed.
//!
//! | metric           | unit    | dimension sets                    |
//! |------------------|---------|-----------------------------------|
//! | `EventsAccepted` | Count   | none                              |
//! | `EventsRejected` | Count   | `Reason`                          |
//! | `TriggersFired`  | Count   | `Trigger`; `Trigger, Variant`     |
//! | `Conversions`    | Count   | none; `Trigger`; `Trigger, Variant` |
//! | `Clicks`, `Opens`, `Deliveries`, `DeliveryFailures`, `Dismissals` | Count | none; `Trigger`; `Trigger, Variant` |
//! | `Sends`          | Count   | `Channel, Outcome` and `Outcome`  |
//! | `TimerLateness`  | Seconds | none                              |
//! | `TimerFiredLateness` | Milliseconds | none; `Path`             |
//! | `HandlerLatency` | Seconds | `Handler`                         |

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use nudge_service::metrics::Metrics;
use serde_json::{json, Map, Value};

/// The CloudWatch namespace of every nudge metric.
pub const NAMESPACE: &str = "nudge";

/// [`Metrics`] as CloudWatch embedded metric format lines on stdout.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmfMetrics;

impl EmfMetrics {
    /// Metrics written to the function's stdout.
    pub fn new() -> Self {
        EmfMetrics
    }
}

/// One EMF record: a metric with its value, unit, dimension sets and the dimension (and
/// extra property) values, stamped with the wall clock.
pub fn record(
    metric: &str,
    unit: &str,
    value: f64,
    dimension_sets: &[&[&str]],
    fields: &[(&str, &str)],
) -> Value {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": [{"Name": metric, "Unit": unit}],
            }],
        }),
    );
    for (name, value) in fields {
        // CloudWatch drops a record whose dimension value is empty.
        let value = if value.is_empty() { "none" } else { value };
        root.insert((*name).into(), Value::from(value));
    }
    root.insert(metric.into(), json!(value));
    Value::Object(root)
}

/// Writes one record as one line (a single write, so it never interleaves with log lines).
fn emit(record: &Value) {
    let mut line = record.to_string();
    line.push('\n');
    // A metric that cannot be written must not fail the handler.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

impl Metrics for EmfMetrics {
    fn events_accepted(&self, n: u64) {
        emit(&record("EventsAccepted", "Count", n as f64, &[&[]], &[]));
    }

    fn events_rejected(&self, reason: &str, n: u64) {
        emit(&record(
            "EventsRejected",
            "Count",
            n as f64,
            &[&["Reason"]],
            &[("Reason", reason)],
        ));
    }

    fn client_retries(&self, n: u64) {
        emit(&record("ClientRetries", "Count", n as f64, &[&[]], &[]));
    }

    fn trigger_fired(&self, trigger: &str, variant: &str) {
        emit(&record(
            "TriggersFired",
            "Count",
            1.0,
            &[&["Trigger"], &["Trigger", "Variant"]],
            &[("Trigger", trigger), ("Variant", variant)],
        ));
    }

    fn trigger_converted(&self, trigger: &str, variant: &str) {
        emit(&record(
            "Conversions",
            "Count",
            1.0,
            &[&[], &["Trigger"], &["Trigger", "Variant"]],
            &[("Trigger", trigger), ("Variant", variant)],
        ));
    }

    fn message_engaged(&self, trigger: &str, variant: &str, engagement: &str) {
        // One metric per kind, so the dashboard graphs clicks without a dimension filter.
        let metric = match engagement {
            "clicked" => "Clicks",
            "opened" => "Opens",
            "delivered" => "Deliveries",
            "failed" => "DeliveryFailures",
            _ => "Dismissals",
        };
        emit(&record(
            metric,
            "Count",
            1.0,
            &[&[], &["Trigger"], &["Trigger", "Variant"]],
            &[("Trigger", trigger), ("Variant", variant)],
        ));
    }

    fn delivery(&self, channel: &str, outcome: &str, reason: &str) {
        // `Reason` rides along as a property (searchable in Logs Insights) rather than as a
        // dimension: every dimension combination is a billed custom metric.
        emit(&record(
            "Sends",
            "Count",
            1.0,
            &[&["Channel", "Outcome"], &["Outcome"]],
            &[
                ("Channel", channel),
                ("Outcome", outcome),
                ("Reason", reason),
            ],
        ));
    }

    fn timer_lateness(&self, seconds: f64) {
        emit(&record(
            "TimerLateness",
            "Seconds",
            seconds.max(0.0),
            &[&[]],
            &[],
        ));
    }

    // Fired time minus due time as schedule-delay sees it (evaluate's `TimerLateness` adds
    // the bus hop): what the template's lateness alarm watches.
    fn timer_fired(&self, path: &'static str, lateness_ms: f64) {
        emit(&timer_fired_record(path, lateness_ms));
    }

    fn handler_latency(&self, handler: &'static str, seconds: f64) {
        emit(&record(
            "HandlerLatency",
            "Seconds",
            seconds,
            &[&["Handler"]],
            &[("Handler", handler)],
        ));
    }
}

/// The record of one timer fired `lateness_ms` late by `path` (`queue`, `sweep`, `expiry`).
pub fn timer_fired_record(path: &str, lateness_ms: f64) -> Value {
    record(
        TIMER_FIRED_LATENESS,
        "Milliseconds",
        lateness_ms.max(0.0),
        &[&[], &["Path"]],
        &[("Path", path)],
    )
}

/// The metric of [`timer_fired_record`] (the template's `TimerLatenessAlarm` names it).
pub const TIMER_FIRED_LATENESS: &str = "TimerFiredLateness";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_is_a_valid_emf_record_with_both_dimension_sets() {
        let r = record(
            "Sends",
            "Count",
            1.0,
            &[&["Channel", "Outcome"], &["Outcome"]],
            &[("Channel", "email"), ("Outcome", "sent"), ("Reason", "")],
        );
        let directive = &r["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "nudge");
        assert_eq!(
            directive["Dimensions"],
            json!([["Channel", "Outcome"], ["Outcome"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Sends", "Unit": "Count"}])
        );
        assert!(r["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(r["Channel"], "email");
        assert_eq!(r["Outcome"], "sent");
        assert_eq!(r["Reason"], "none");
        assert_eq!(r["Sends"], 1.0);
        // Every dimension named in a set has a value at the root, as CloudWatch requires.
        for set in directive["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                assert!(r[name.as_str().unwrap()].is_string(), "{name} has no value");
            }
        }
    }

    #[test]
    fn a_metric_without_dimensions_has_one_empty_set() {
        let r = record("TimerLateness", "Seconds", 0.25, &[&[]], &[]);
        assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(r["TimerLateness"], 0.25);
        // One line: the record serializes without newlines.
        assert!(!r.to_string().contains('\n'));
    }

    #[test]
    fn a_fired_timer_reports_its_lateness_in_ms_overall_and_by_path() {
        let r = timer_fired_record("queue", 412.0);
        let directive = &r["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([[], ["Path"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "TimerFiredLateness", "Unit": "Milliseconds"}])
        );
        assert_eq!(r["Path"], "queue");
        assert_eq!(r["TimerFiredLateness"], 412.0);
        // A message that arrived a moment early is not negative lateness.
        assert_eq!(timer_fired_record("queue", -3.0)["TimerFiredLateness"], 0.0);
    }
}
