//! The delay queue of near timers (SQS): one message per wake-up, held back by
//! `DelaySeconds` (at most 15 minutes) so that it arrives at the timer's due second. The body
//! names the user and the due time the message was sent for; what the message does on
//! arrival is the timer tiers' (`crate::timers`).

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use nudge_core::time::Millis;
use nudge_service::ports::StoreError;
use tracing::{instrument, warn};

use crate::sdk_error::{is_retryable, is_transient_code, SdkFailure};

/// The longest delay SQS holds a message back (15 minutes).
pub const MAX_DELAY_SECS: i32 = 900;

/// Most entries of one SendMessageBatch call.
const BATCH_LIMIT: usize = 10;

// The body is read with the other Lambda inputs, without the SDK (and by the fuzz targets).
pub use nudge_lambda_events::wakeup::Wakeup;

/// Whole seconds from `now` until `due`, rounded up so that the message never arrives before
/// its timer is due, within what SQS accepts (0 to [`MAX_DELAY_SECS`]).
pub fn delay_seconds(due: Millis, now: Millis) -> i32 {
    let ms = due.saturating_sub(now).max(0);
    let secs = ms / 1000 + i64::from(ms % 1000 != 0);
    i32::try_from(secs)
        .unwrap_or(MAX_DELAY_SECS)
        .min(MAX_DELAY_SECS)
}

/// The delay queue.
#[derive(Debug, Clone)]
pub struct SqsTimerQueue {
    client: Client,
    url: String,
}

impl SqsTimerQueue {
    /// The queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsTimerQueue {
            client,
            url: url.into(),
        }
    }

    /// Sends one wake-up, delivered after `delay_secs`.
    #[instrument(skip(self), fields(user_id = %wakeup.user_id))]
    pub async fn send(&self, wakeup: &Wakeup, delay_secs: i32) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(wakeup.body())
            .delay_seconds(delay_secs.clamp(0, MAX_DELAY_SECS))
            .send()
            .await
            .map_err(|e| {
                StoreError::backend(
                    "sqs send timer wake-up",
                    is_retryable(&e),
                    SdkFailure::new(e),
                )
            })?;
        Ok(())
    }

    /// Sends wake-ups ten to a call; returns which of them (by index) were taken. A failed
    /// call or entry leaves its wake-ups out (the next sweep offers them again).
    #[instrument(skip_all, fields(wakeups = wakeups.len()))]
    pub async fn send_all(&self, wakeups: &[(Wakeup, i32)]) -> Result<Vec<usize>, StoreError> {
        let mut sent = Vec::with_capacity(wakeups.len());
        for (chunk_no, chunk) in wakeups.chunks(BATCH_LIMIT).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (wakeup, delay))| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(wakeup.body())
                        .delay_seconds((*delay).clamp(0, MAX_DELAY_SECS))
                        .build()
                        .map_err(|e| StoreError::backend("sqs batch entry", false, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                // What was taken before stays taken; report it rather than fail the sweep.
                Err(e) if !sent.is_empty() => {
                    warn!(error = %SdkFailure::new(e), "sending wake-ups stopped early");
                    break;
                }
                Err(e) => {
                    return Err(StoreError::backend(
                        "sqs send timer wake-ups",
                        is_retryable(&e),
                        SdkFailure::new(e),
                    ))
                }
            };
            for failed in &out.failed {
                warn!(
                    code = failed.code.as_str(),
                    transient = is_transient_code(&failed.code),
                    "a wake-up was not queued"
                );
            }
            for ok in &out.successful {
                if let Ok(i) = ok.id.parse::<usize>() {
                    sent.push(chunk_no * BATCH_LIMIT + i);
                }
            }
        }
        sent.sort_unstable();
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_whole_seconds_within_what_sqs_takes() {
        let now = 1_772_438_400_000;
        assert_eq!(delay_seconds(now, now), 0);
        assert_eq!(delay_seconds(now - 5_000, now), 0, "overdue: at once");
        assert_eq!(delay_seconds(now + 1, now), 1);
        assert_eq!(delay_seconds(now + 1_000, now), 1);
        assert_eq!(delay_seconds(now + 1_001, now), 2);
        assert_eq!(delay_seconds(now + 899_999, now), 900);
        assert_eq!(delay_seconds(now + 3_600_000, now), MAX_DELAY_SECS);
    }
}
