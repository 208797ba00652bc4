//! The metrics port as Prometheus text, for `nudge serve`'s `/metrics`.

use nudge_service::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: String,
    variant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngagementLabels {
    trigger: String,
    variant: String,
    engagement: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    channel: String,
    outcome: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabel {
    handler: &'static str,
}

/// Prometheus metrics (text exposition format).
pub struct PromMetrics {
    registry: Registry,
    accepted: Counter,
    evaluated: Counter,
    rejected: Family<ReasonLabel, Counter>,
    retries: Counter,
    fired: Family<TriggerLabel, Counter>,
    converted: Family<TriggerLabel, Counter>,
    engaged: Family<EngagementLabels, Counter>,
    sends: Family<SendLabels, Counter>,
    lateness: Histogram,
    latency: Family<HandlerLabel, Histogram>,
    queue: Gauge,
}

impl Default for PromMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PromMetrics {
    /// A registry with every nudge metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nudge");
        let accepted = Counter::default();
        registry.register(
            "events_accepted",
            "Messages accepted by ingest",
            accepted.clone(),
        );
        let evaluated = Counter::default();
        registry.register(
            "events_evaluated",
            "Accepted messages applied to user state by evaluate",
            evaluated.clone(),
        );
        let rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "events_rejected",
            "Messages or requests refused by ingest, by reason",
            rejected.clone(),
        );
        let retries = Counter::default();
        registry.register(
            "client_retries",
            "Tracking requests an SDK sent again after a failed attempt",
            retries.clone(),
        );
        let fired = Family::<TriggerLabel, Counter>::default();
        registry.register(
            "triggers_fired",
            "Send decisions (sent or suppressed) by trigger and variant",
            fired.clone(),
        );
        let converted = Family::<TriggerLabel, Counter>::default();
        registry.register(
            "conversions",
            "Sends converted to their trigger's goal, by trigger and variant",
            converted.clone(),
        );
        let engaged = Family::<EngagementLabels, Counter>::default();
        registry.register(
            "engagement",
            "What users did with sends (delivered, failed, opened, clicked, dismissed)",
            engaged.clone(),
        );
        let sends = Family::<SendLabels, Counter>::default();
        registry.register(
            "sends",
            "Finished deliveries by channel, outcome and reason",
            sends.clone(),
        );
        // 1 ms .. ~65 s
        let lateness = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "timer_lateness_seconds",
            "How long after its due time a timer fired",
            lateness.clone(),
        );
        let latency = Family::<HandlerLabel, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~3 s
            Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
        });
        registry.register(
            "handler_latency_seconds",
            "Time spent in each handler per bus event or request",
            latency.clone(),
        );
        let queue = Gauge::default();
        registry.register(
            "queue_depth",
            "Bus events waiting for their handler",
            queue.clone(),
        );
        PromMetrics {
            registry,
            accepted,
            evaluated,
            rejected,
            retries,
            fired,
            converted,
            engaged,
            sends,
            lateness,
            latency,
            queue,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Metrics for PromMetrics {
    fn events_accepted(&self, n: u64) {
        self.accepted.inc_by(n);
    }
    fn events_evaluated(&self, n: u64) {
        self.evaluated.inc_by(n);
    }
    fn events_rejected(&self, reason: &str, n: u64) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(n);
    }
    fn client_retries(&self, n: u64) {
        self.retries.inc_by(n);
    }
    fn trigger_fired(&self, trigger: &str, variant: &str) {
        self.fired
            .get_or_create(&TriggerLabel {
                trigger: trigger.to_string(),
                variant: variant.to_string(),
            })
            .inc();
    }
    fn trigger_converted(&self, trigger: &str, variant: &str) {
        self.converted
            .get_or_create(&TriggerLabel {
                trigger: trigger.to_string(),
                variant: variant.to_string(),
            })
            .inc();
    }
    fn message_engaged(&self, trigger: &str, variant: &str, engagement: &str) {
        self.engaged
            .get_or_create(&EngagementLabels {
                trigger: trigger.to_string(),
                variant: variant.to_string(),
                engagement: engagement.to_string(),
            })
            .inc();
    }
    fn delivery(&self, channel: &str, outcome: &str, reason: &str) {
        self.sends
            .get_or_create(&SendLabels {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }
    fn timer_lateness(&self, seconds: f64) {
        self.lateness.observe(seconds.max(0.0));
    }
    fn handler_latency(&self, handler: &'static str, seconds: f64) {
        self.latency
            .get_or_create(&HandlerLabel { handler })
            .observe(seconds);
    }
    fn queue_depth(&self, n: i64) {
        self.queue.set(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = PromMetrics::new();
        m.events_accepted(3);
        m.events_evaluated(2);
        m.events_rejected("unknown_write_key", 1);
        m.client_retries(2);
        m.trigger_fired("profile-reminder", "default");
        m.trigger_converted("profile-reminder", "default");
        m.message_engaged("profile-reminder", "default", "clicked");
        m.delivery("email", "sent", "");
        m.timer_lateness(0.02);
        m.handler_latency("evaluate", 0.001);
        let text = m.encode();
        for name in [
            "nudge_events_accepted_total 3",
            "nudge_events_evaluated_total 2",
            "nudge_events_rejected_total{reason=\"unknown_write_key\"} 1",
            "nudge_client_retries_total 2",
            "nudge_triggers_fired_total{trigger=\"profile-reminder\",variant=\"default\"} 1",
            "nudge_conversions_total{trigger=\"profile-reminder\",variant=\"default\"} 1",
            "nudge_engagement_total{trigger=\"profile-reminder\",variant=\"default\",engagement=\"clicked\"} 1",
            "nudge_sends_total{channel=\"email\",outcome=\"sent\",reason=\"\"} 1",
            "nudge_timer_lateness_seconds_count 1",
            "nudge_handler_latency_seconds_count{handler=\"evaluate\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
