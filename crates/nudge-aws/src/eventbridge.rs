//! The bus on EventBridge: PutEvents in calls of at most 10 entries and 256 KB, resending
//! only the entries EventBridge did not take.

use std::ops::Range;
use std::time::Duration;

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, PutEventsResultEntry};
use aws_sdk_eventbridge::Client;
use nudge_service::bus::{BusEvent, SOURCE};
use nudge_service::ports::{Bus, StoreError};
use tracing::{instrument, warn};

use crate::sdk_error::{is_retryable, SdkFailure};

mod packing;

pub use packing::{pack, MAX_DETAIL_BYTES};

/// Most entries one PutEvents call takes.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// Most bytes (by [`entry_size`]) one PutEvents call takes.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Rounds of PutEvents for one batch: the first send and up to four resends.
pub const MAX_ROUNDS: u32 = 5;

/// Backoff before the first resend; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Per-entry error codes that no resend can fix.
const PERMANENT_ENTRY_CODES: &[&str] = &[
    "MalformedDetail",
    "InvalidArgument",
    "AccessDeniedException",
    "NotAuthorizedForSourceException",
    "NotAuthorizedForDetailTypeException",
    "ValidationException",
];

/// [`Bus`] on an EventBridge event bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    // Crate-visible, as `entry` and `send_entries`, for the tests' `test_access`.
    pub(crate) bus_name: String,
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// An event too large for any PutEvents call.
    #[error("a `{detail_type}` event is {size} bytes; one PutEvents call takes at most {MAX_REQUEST_BYTES}")]
    EntryTooLarge { detail_type: String, size: usize },
    /// Entries EventBridge kept refusing (or refused for good).
    #[error("{count} event(s) not accepted by EventBridge after {rounds} round(s): {}", .codes.join(", "))]
    Rejected {
        count: usize,
        rounds: u32,
        /// The distinct error codes of the refused entries.
        codes: Vec<String>,
    },
}

impl PublishError {
    /// Whether publishing again later may work.
    pub fn is_retryable(&self) -> bool {
        match self {
            PublishError::EntryTooLarge { .. } => false,
            PublishError::Rejected { codes, .. } => !codes.iter().any(|c| is_permanent(c)),
        }
    }
}

/// The size AWS counts for an entry against the 256 KB of a call: source, detail-type,
/// detail and resources in UTF-8 bytes, plus 14 for the time (counted whether set or not).
pub fn entry_size(entry: &PutEventsRequestEntry) -> usize {
    14 + entry.source().map_or(0, str::len)
        + entry.detail_type().map_or(0, str::len)
        + entry.detail().map_or(0, str::len)
        + entry.resources().iter().map(String::len).sum::<usize>()
}

/// Splits entries of the given sizes, in order, into calls of at most
/// [`MAX_ENTRIES_PER_CALL`] entries and [`MAX_REQUEST_BYTES`] bytes. Every size must be at
/// most [`MAX_REQUEST_BYTES`].
pub fn plan_calls(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut calls = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_ENTRIES_PER_CALL || bytes + size > MAX_REQUEST_BYTES) {
            calls.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        calls.push(start..sizes.len());
    }
    calls
}

/// The entries of a call that EventBridge did not take, each with its error code, from the
/// answer's `FailedEntryCount` and per-entry results (which are in request order). If the
/// answer says entries failed but does not say which, all count as failed.
pub fn failed_entries(
    sent: Vec<PutEventsRequestEntry>,
    failed_entry_count: i32,
    results: &[PutEventsResultEntry],
) -> Vec<(PutEventsRequestEntry, String)> {
    if results.len() != sent.len() {
        if failed_entry_count == 0 {
            return Vec::new();
        }
        return sent
            .into_iter()
            .map(|entry| (entry, "UnknownFailure".to_string()))
            .collect();
    }
    sent.into_iter()
        .zip(results)
        .filter_map(|(entry, result)| result.error_code().map(|code| (entry, code.to_string())))
        .collect()
}

impl EventBridgeBus {
    /// A bus publishing to the event bus `bus_name`.
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            bus_name: bus_name.into(),
        }
    }

    /// The PutEvents entry of an event.
    pub(crate) fn entry(&self, event: &BusEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(event.detail_type())
            .detail(event.to_detail())
            .event_bus_name(&self.bus_name)
            .build()
    }

    /// Sends entries in as few calls as the limits allow, in order.
    pub(crate) async fn send_entries(
        &self,
        entries: Vec<PutEventsRequestEntry>,
    ) -> Result<(), StoreError> {
        let sizes: Vec<usize> = entries.iter().map(entry_size).collect();
        if let Some((i, &size)) = sizes
            .iter()
            .enumerate()
            .find(|(_, &size)| size > MAX_REQUEST_BYTES)
        {
            let detail_type = entries[i].detail_type().unwrap_or_default().to_string();
            return Err(publish_error(PublishError::EntryTooLarge {
                detail_type,
                size,
            }));
        }
        for call in plan_calls(&sizes) {
            self.send_call(entries[call].to_vec()).await?;
        }
        Ok(())
    }

    /// One call's entries: sent, then the failed ones resent with backoff (entries refused
    /// for good are not resent).
    async fn send_call(&self, mut pending: Vec<PutEventsRequestEntry>) -> Result<(), StoreError> {
        let mut pending_codes: Vec<String> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let mut rounds = 0;
        while !pending.is_empty() && rounds < MAX_ROUNDS {
            if rounds > 0 {
                tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(rounds - 1)).await;
            }
            rounds += 1;
            let out = self
                .client
                .put_events()
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| {
                    let retryable = is_retryable(&e);
                    StoreError::backend("eventbridge put events", retryable, SdkFailure::new(e))
                })?;
            let failed = failed_entries(pending, out.failed_entry_count, out.entries());
            if !failed.is_empty() {
                let codes: Vec<&str> = failed.iter().map(|(_, c)| c.as_str()).collect();
                warn!(
                    failed = failed.len(),
                    ?codes,
                    round = rounds,
                    "PutEvents refused entries"
                );
            }
            pending = Vec::new();
            pending_codes = Vec::new();
            for (entry, code) in failed {
                if is_permanent(&code) {
                    refused.push(code);
                } else {
                    pending.push(entry);
                    pending_codes.push(code);
                }
            }
        }
        if pending.is_empty() && refused.is_empty() {
            return Ok(());
        }
        let count = pending.len() + refused.len();
        let mut codes = refused;
        codes.extend(pending_codes);
        codes.sort();
        codes.dedup();
        Err(publish_error(PublishError::Rejected {
            count,
            rounds,
            codes,
        }))
    }
}

/// Whether a per-entry error code is one no resend can fix.
fn is_permanent(code: &str) -> bool {
    PERMANENT_ENTRY_CODES.contains(&code)
}

fn publish_error(err: PublishError) -> StoreError {
    let retryable = err.is_retryable();
    StoreError::backend("eventbridge put events", retryable, err)
}

impl Bus for EventBridgeBus {
    #[instrument(skip(self, events), fields(bus = %self.bus_name, events = events.len()))]
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        // Timers fired or changed together go as one entry each kind (billed per entry).
        let entries = pack(events).iter().map(|e| self.entry(e)).collect();
        self.send_entries(entries).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail: &str) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source("nudge")
            .detail_type("Timer Fired")
            .detail(detail)
            .build()
    }

    fn ok() -> PutEventsResultEntry {
        PutEventsResultEntry::builder().event_id("e").build()
    }

    fn failed(code: &str) -> PutEventsResultEntry {
        PutEventsResultEntry::builder()
            .error_code(code)
            .error_message("no")
            .build()
    }

    #[test]
    fn entry_size_follows_the_aws_formula() {
        let e = PutEventsRequestEntry::builder()
            .source("nudge")
            .detail_type("Timer Fired")
            .detail("{\"a\":\"é\"}")
            .resources("arn:x")
            .build();
        assert_eq!(entry_size(&e), 14 + 5 + 11 + 10 + 5);
    }

    #[test]
    fn calls_hold_at_most_ten_entries() {
        let calls = plan_calls(&[100; 23]);
        assert_eq!(calls, vec![0..10, 10..20, 20..23]);
        assert!(plan_calls(&[]).is_empty());
    }

    #[test]
    fn calls_hold_at_most_256_kb() {
        let big = 100 * 1024;
        let calls = plan_calls(&[big, big, big, 10, MAX_REQUEST_BYTES, 1]);
        assert_eq!(calls, vec![0..2, 2..4, 4..5, 5..6]);
        for call in &calls {
            let sizes = [big, big, big, 10, MAX_REQUEST_BYTES, 1];
            assert!(sizes[call.clone()].iter().sum::<usize>() <= MAX_REQUEST_BYTES);
        }
    }

    #[test]
    fn only_failed_entries_are_resent() {
        let sent = vec![entry("{\"n\":0}"), entry("{\"n\":1}"), entry("{\"n\":2}")];
        let results = [ok(), failed("ThrottlingException"), ok()];
        let left = failed_entries(sent.clone(), 1, &results);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, sent[1]);
        assert_eq!(left[0].1, "ThrottlingException");

        assert!(failed_entries(sent.clone(), 0, &[ok(), ok(), ok()]).is_empty());
    }

    #[test]
    fn an_answer_that_does_not_say_which_failed_fails_all() {
        let sent = vec![entry("{}"), entry("{}")];
        assert_eq!(failed_entries(sent.clone(), 1, &[]).len(), 2);
        assert!(failed_entries(sent, 0, &[]).is_empty());
    }

    #[test]
    fn permanent_codes_are_not_retryable() {
        let transient = PublishError::Rejected {
            count: 1,
            rounds: MAX_ROUNDS,
            codes: vec!["ThrottlingException".into()],
        };
        assert!(transient.is_retryable());
        let permanent = PublishError::Rejected {
            count: 2,
            rounds: 1,
            codes: vec!["InternalFailure".into(), "MalformedDetail".into()],
        };
        assert!(!permanent.is_retryable());
        assert!(permanent.to_string().contains("MalformedDetail"));
    }
}
