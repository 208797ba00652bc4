//! What the handlers count and time: the port. `nudge serve` exposes it as Prometheus text on
//! `/metrics` (nudge-local's `prometheus.rs`); on Lambda the same observations go out as
//! CloudWatch embedded metrics (nudge-aws's `emf.rs`).

/// Observations the handlers report.
pub trait Metrics: Send + Sync {
    /// Messages accepted by ingest.
    fn events_accepted(&self, n: u64);
    /// Accepted messages evaluate applied to their user's state (duplicates not counted).
    fn events_evaluated(&self, _n: u64) {}
    /// Messages (or whole requests) refused, by reason code.
    fn events_rejected(&self, reason: &str, n: u64);
    /// Tracking requests an SDK sent again after a failed attempt (`X-Retry-Count`,
    /// RudderStack's `Rsa-Retry-Attempt`): a rise means clients struggle to reach nudge.
    fn client_retries(&self, n: u64);
    /// A trigger decided a send (sent or suppressed), of this variant.
    fn trigger_fired(&self, trigger: &str, variant: &str);
    /// A send converted to its trigger's goal (counted once per send).
    fn trigger_converted(&self, _trigger: &str, _variant: &str) {}
    /// What a user did with a send (`delivered`, `failed`, `opened`, `clicked`,
    /// `dismissed`), from nudge's engagement events.
    fn message_engaged(&self, _trigger: &str, _variant: &str, _engagement: &str) {}
    /// A delivery finished: channel, outcome (`sent`, `suppressed`, `failed`) and reason.
    fn delivery(&self, channel: &str, outcome: &str, reason: &str);
    /// How late a timer fired, in seconds.
    fn timer_lateness(&self, seconds: f64);
    /// schedule-delay fired a timer `lateness_ms` after its due time, by `path` (`queue`,
    /// `sweep` or `expiry`): the timer tiers' own lateness, before the bus and evaluate.
    fn timer_fired(&self, _path: &'static str, _lateness_ms: f64) {}
    /// How long a handler took, in seconds.
    fn handler_latency(&self, handler: &'static str, seconds: f64);
    /// Events waiting on the bus (local queue depth).
    fn queue_depth(&self, _n: i64) {}
}

/// Discards everything (tests, tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn events_accepted(&self, _: u64) {}
    fn events_rejected(&self, _: &str, _: u64) {}
    fn client_retries(&self, _: u64) {}
    fn trigger_fired(&self, _: &str, _: &str) {}
    fn delivery(&self, _: &str, _: &str, _: &str) {}
    fn timer_lateness(&self, _: f64) {}
    fn handler_latency(&self, _: &'static str, _: f64) {}
}
