//! Signed webhook delivery: the retry loop around a [`WebhookTransport`] (the HTTP one is
//! nudge-http's), signing each try with the time it is made.

use std::time::Duration;

use nudge_core::engine::decision::DecisionId;
use tracing::{instrument, warn};

use crate::ports::{SendError, WebhookTransport};
use crate::signing::{webhook_signature, SIGNATURE_HEADER};

/// The `User-Agent` of every webhook request.
pub const USER_AGENT: &str = concat!("nudge/", env!("CARGO_PKG_VERSION"));

/// The header receivers dedupe on: the decision id, the same on every retry.
pub const WEBHOOK_ID_HEADER: &str = "Nudge-Webhook-Id";

/// How often and how patiently a webhook is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (0 counts as 1).
    pub attempts: u32,
    /// Wait before the second try; doubles after each try.
    pub first_backoff_ms: u64,
    /// Upper bound of any wait.
    pub max_backoff_ms: u64,
    /// Per-try limit for connecting, sending and receiving the status.
    pub timeout_ms: u64,
}

impl Default for RetryPolicy {
    /// 5 tries waiting about 0.5, 1, 2 and 4 s, 10 s per try: a receiver's short restart is
    /// ridden out within a minute without holding the deliver worker for long.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff_ms: 500,
            max_backoff_ms: 30_000,
            timeout_ms: 10_000,
        }
    }
}

/// Why a webhook was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookFailure {
    /// The receiver refused it for good (a 4xx other than 408/429, or a redirect).
    #[error("webhook rejected with HTTP {status}")]
    Rejected { status: u16 },
    /// The request cannot be made (bad URL or header); retrying would fail the same way.
    #[error("webhook cannot be sent: {0}")]
    Unsendable(#[source] SendError),
    /// Every try failed with a retryable error; `last` is the last one.
    #[error("webhook failed after the last retry: {last}")]
    Exhausted { last: String },
}

/// What [`post_signed`] did.
#[derive(Debug)]
pub struct WebhookOutcome {
    /// Tries made (requests sent or attempted).
    pub attempts: u32,
    /// The success status, or why it failed.
    pub result: Result<u16, WebhookFailure>,
}

/// Whether a status may be worth another try: timeouts, throttling and server errors.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The wait after try `attempt` (1-based): exponential, capped, plus up to 25 % jitter so that
/// webhooks failing together do not retry in lockstep. The jitter is a hash of the decision
/// and the attempt: spread across decisions, yet reproducible in tests.
fn backoff(policy: &RetryPolicy, id: DecisionId, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(63);
    let base = policy
        .first_backoff_ms
        .saturating_mul(1u64 << doublings)
        .min(policy.max_backoff_ms);
    let spread = xxhash_rust::xxh3::xxh3_64_with_seed(&id.0.to_le_bytes(), u64::from(attempt));
    let jitter = spread % (base / 4 + 1);
    Duration::from_millis(base.saturating_add(jitter).min(policy.max_backoff_ms))
}

/// POSTs `body` as JSON to `url`, signed, retrying per `policy`.
///
/// 2xx is success; 408, 429, 5xx and transport errors (refused, timed out) are retried with
/// backoff; any other status is final. Every try is signed afresh with `now_secs()` so a
/// late retry is not refused by the receiver's timestamp tolerance. Headers: `Content-Type`,
/// [`SIGNATURE_HEADER`], [`WEBHOOK_ID_HEADER`] (the decision id, for receivers to dedupe
/// retries) and [`USER_AGENT`].
#[instrument(skip_all, fields(decision_id = %id))]
pub async fn post_signed<T: WebhookTransport>(
    transport: &T,
    policy: &RetryPolicy,
    secret: &[u8],
    url: &str,
    id: DecisionId,
    body: &serde_json::Value,
    now_secs: impl Fn() -> i64,
) -> WebhookOutcome {
    let bytes = body.to_string().into_bytes();
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        let headers = [
            ("Content-Type".to_string(), "application/json".to_string()),
            (
                SIGNATURE_HEADER.to_string(),
                webhook_signature(secret, now_secs(), &bytes),
            ),
            (WEBHOOK_ID_HEADER.to_string(), id.to_string()),
            ("User-Agent".to_string(), USER_AGENT.to_string()),
        ];
        let done = |result| WebhookOutcome {
            attempts: attempt,
            result,
        };
        match transport
            .post(url, &headers, &bytes, policy.timeout_ms)
            .await
        {
            Ok(status) if (200..300).contains(&status) => return done(Ok(status)),
            Ok(status) if retryable_status(status) => last = format!("HTTP {status}"),
            Ok(status) => return done(Err(WebhookFailure::Rejected { status })),
            Err(e) if e.retryable => last = e.to_string(),
            Err(e) => return done(Err(WebhookFailure::Unsendable(e))),
        }
        if attempt < attempts {
            let wait = backoff(policy, id, attempt);
            warn!(attempt, error = %last, wait_ms = wait.as_millis() as u64, "webhook failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
    WebhookOutcome {
        attempts,
        result: Err(WebhookFailure::Exhausted { last }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: DecisionId = DecisionId(0xfeed_beef_0000_0001);

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        // Given the default policy
        let policy = RetryPolicy::default();
        // When the waits after each try are computed
        let waits: Vec<u64> = (1..=8)
            .map(|n| backoff(&policy, ID, n).as_millis() as u64)
            .collect();
        // Then each is its doubled base plus at most 25 %, never above the cap
        for (n, wait) in waits.iter().enumerate() {
            let base = (500u64 << n).min(30_000);
            assert!(
                *wait >= base && *wait <= (base + base / 4).min(30_000),
                "{waits:?}"
            );
        }
        assert_eq!(waits[7], 30_000);
    }
}
