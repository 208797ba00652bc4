//! Timers: one item per user whose TTL is its due time, in the sparse `due` index while
//! live, so a sweeper finds due timers with one Query per shard and claims each with a
//! conditional write.
//!
//! A timer item without `due` is a tombstone: a cancelled timer (`cancelled`) or a claimed
//! one (`claimed`). Tombstones keep the version so that an older request arriving late does
//! not bring the timer back; they leave the index and expire after [`TOMBSTONE_TTL_MS`].
//! The TTL-stream backstop must fire only items that still have `due`. A live timer may
//! carry the precise tier's `queued` mark (`queued_timers.rs`); a claim removes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use nudge_core::time::Millis;
use nudge_service::bus::{DelayCancel, DelayRequest, TimerFired};
use nudge_service::ports::{ExpiredTimerClaim, StoreError, Timer, TimerStore};
use tracing::{instrument, warn};
use xxhash_rust::xxh3::xxh3_64;

use super::item::{get_n, get_opt_n, get_s, n, s, Item};
use super::{backend, ttl_secs, user_of_pk, user_pk, written, DynamoDbStore, DUE_INDEX};

/// Sort key of the timer item.
const TIMER_SK: &str = "timer";

/// How long a tombstone remembers a cancelled or claimed timer's version.
pub const TOMBSTONE_TTL_MS: Millis = 7 * 24 * 3600 * 1000;

/// The condition of writes that replace older versions and the same one (`restore`,
/// `cancel`); `set` replaces only older ones (`queued_timers.rs`).
const NOT_NEWER: &str = "attribute_not_exists(#pk) OR #version <= :v";

/// A timer the due index listed, to be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) user_id: String,
    pub(super) due: Millis,
    pub(super) version: u64,
}

/// The key of a user's timer item.
pub(super) fn timer_key(user_id: &str) -> [(&'static str, AttributeValue); 2] {
    [("pk", s(user_pk(user_id))), ("sk", s(TIMER_SK))]
}

impl DynamoDbStore {
    /// The index partition of a user's timer.
    pub(super) fn shard_of(&self, user_id: &str) -> u32 {
        (xxh3_64(user_id.as_bytes()) % u64::from(self.shards)) as u32
    }

    /// Writes a live timer (without a queue mark) unless the stored one is newer.
    async fn put_timer(&self, req: &DelayRequest) -> Result<(), StoreError> {
        let [pk, sk] = timer_key(&req.user_id);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(pk.0, pk.1)
            .item(sk.0, sk.1)
            .item("due", n(req.due))
            .item("version", n(req.version))
            .item("ttl", n(ttl_secs(req.due)))
            .item(
                "gsi1pk",
                s(format!("timers#{}", self.shard_of(&req.user_id))),
            )
            .item("gsi1sk", n(req.due))
            .condition_expression(NOT_NEWER)
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":v", n(req.version))
            .send()
            .await;
        // A newer request or cancel was applied already: nothing to do.
        written(result, "dynamodb put timer").map(|_| ())
    }

    /// Up to `limit` timers of one shard due at or before `now`, earliest first.
    async fn due_in_shard(
        &self,
        shard: u32,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Candidate>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        while found.len() < limit {
            let page = i32::try_from(limit - found.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("#gsi1pk = :shard AND #gsi1sk <= :now")
                .projection_expression("#pk, #due, #version")
                .expression_attribute_names("#gsi1pk", "gsi1pk")
                .expression_attribute_names("#gsi1sk", "gsi1sk")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#due", "due")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":shard", s(format!("timers#{shard}")))
                .expression_attribute_values(":now", n(now))
                .scan_index_forward(true)
                .limit(page)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend("dynamodb query due timers"))?;
            for item in out.items.unwrap_or_default() {
                found.push(candidate(&item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(found)
    }

    /// Turns a live timer into a claimed tombstone if it is still the one the index listed;
    /// `false` if another sweeper (or a newer request or cancel) got there first.
    pub(super) async fn claim(&self, c: &Candidate) -> Result<bool, StoreError> {
        let [pk, sk] = timer_key(&c.user_id);
        let claim_id = new_claim_id();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression(
                "SET #claimed = :true, #claim = :claim, #ttl = :ttl REMOVE #due, #gsi1pk, #gsi1sk, #queued",
            )
            .condition_expression("#version = :v AND #due = :due")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#claimed", "claimed")
            .expression_attribute_names("#claim", "claim")
            .expression_attribute_values(":claim", s(claim_id.clone()))
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#due", "due")
            .expression_attribute_names("#gsi1pk", "gsi1pk")
            .expression_attribute_names("#gsi1sk", "gsi1sk")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#queued", "queued")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(
                ":ttl",
                n(ttl_secs(self.now().saturating_add(TOMBSTONE_TTL_MS))),
            )
            .expression_attribute_values(":v", n(c.version))
            .expression_attribute_values(":due", n(c.due))
            .send()
            .await;
        claimed(
            result,
            &claim_id,
            c.version,
            "dynamodb claim timer",
            |e| match e {
                UpdateItemError::ConditionalCheckFailedException(e) => Some(e.item()),
                _ => None,
            },
        )
    }
}

/// An id naming one claim. The claiming write carries it: when a try of that write
/// succeeded but its answer was lost, the SDK's next try fails its condition on the claim's
/// own tombstone, and the id tells that tombstone from another claimer's (the timer would
/// otherwise never fire).
fn new_claim_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{nanos:x}-{n:x}", std::process::id())
}

/// Whether a claiming write claimed the timer: it went through, or its condition failed on a
/// tombstone of this version carrying this claim's id (`item` is what the failed
/// condition saw, as `ReturnValuesOnConditionCheckFailure` gives it).
fn claimed<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    claim_id: &str,
    version: u64,
    context: &'static str,
    item: impl Fn(&E) -> Option<Option<&HashMap<String, AttributeValue>>>,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let err = match result {
        Ok(_) => return Ok(true),
        Err(e) => e,
    };
    if let Some(seen) = err.as_service_error().and_then(&item) {
        return Ok(seen.is_some_and(|i| is_own_claim(i, claim_id, version)));
    }
    written(Err::<T, _>(err), context)
}

fn is_own_claim(item: &HashMap<String, AttributeValue>, claim_id: &str, version: u64) -> bool {
    item.get("claim")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(claim_id)
        && item.get("claimed").and_then(|v| v.as_bool().ok()) == Some(&true)
        && get_opt_n::<u64>(item, "version").ok().flatten() == Some(version)
}

/// A due-index entry as a claim candidate.
fn candidate(item: &Item) -> Result<Candidate, StoreError> {
    let pk = get_s(item, "pk")?;
    let user_id = user_of_pk(pk)
        .ok_or_else(|| StoreError::Corrupt(format!("timer with partition key `{pk}`")))?;
    Ok(Candidate {
        user_id: user_id.to_string(),
        due: get_n(item, "due")?,
        version: get_n(item, "version")?,
    })
}

impl ExpiredTimerClaim for DynamoDbStore {
    /// Writes a claimed tombstone at the timer's version if the item is gone (TTL deleted
    /// it), holds an older version, or is that same live timer (put back after a failed
    /// publish); not over a tombstone of that version (claimed already, by the sweeper or an
    /// earlier delivery of the record) nor over anything newer.
    #[instrument(skip(self))]
    async fn claim_expired(&self, timer: &TimerFired) -> Result<bool, StoreError> {
        let [pk, sk] = timer_key(&timer.user_id);
        let claim_id = new_claim_id();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(pk.0, pk.1)
            .item(sk.0, sk.1)
            .item("version", n(timer.version))
            .item("claimed", AttributeValue::Bool(true))
            .item("claim", s(claim_id.clone()))
            .item(
                "ttl",
                n(ttl_secs(self.now().saturating_add(TOMBSTONE_TTL_MS))),
            )
            .condition_expression(
                "attribute_not_exists(#pk) OR #version < :v OR (#version = :v AND #due = :due)",
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#due", "due")
            .expression_attribute_values(":v", n(timer.version))
            .expression_attribute_values(":due", n(timer.due))
            .send()
            .await;
        claimed(
            result,
            &claim_id,
            timer.version,
            "dynamodb claim expired timer",
            |e| match e {
                PutItemError::ConditionalCheckFailedException(e) => Some(e.item()),
                _ => None,
            },
        )
    }
}

impl TimerStore for DynamoDbStore {
    /// An update rather than a put: a live timer moved keeps its queue mark.
    #[instrument(skip(self))]
    async fn set(&self, req: &DelayRequest) -> Result<(), StoreError> {
        self.set_timer(req, None).await.map(|_| ())
    }

    #[instrument(skip(self))]
    async fn cancel(&self, req: &DelayCancel) -> Result<(), StoreError> {
        let [pk, sk] = timer_key(&req.user_id);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(pk.0, pk.1)
            .item(sk.0, sk.1)
            .item("version", n(req.version))
            .item("cancelled", AttributeValue::Bool(true))
            .item(
                "ttl",
                n(ttl_secs(self.now().saturating_add(TOMBSTONE_TTL_MS))),
            )
            .condition_expression(NOT_NEWER)
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":v", n(req.version))
            .send()
            .await;
        // A newer request set the timer: it stays.
        written(result, "dynamodb cancel timer").map(|_| ())
    }

    #[instrument(skip(self))]
    async fn restore(&self, req: &DelayRequest) -> Result<(), StoreError> {
        self.put_timer(req).await
    }

    /// The due index is eventually consistent, so it may list a timer that was just
    /// replaced or claimed; the claim's condition (`version` and `due` unchanged) decides.
    /// A backend failure after some claims returns those (they are tombstones now and would
    /// otherwise be lost) and leaves the rest for the next sweep.
    #[instrument(skip(self))]
    async fn claim_due(&self, now: Millis, limit: usize) -> Result<Vec<TimerFired>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut candidates = Vec::new();
        for shard in 0..self.shards {
            candidates.extend(self.due_in_shard(shard, now, limit).await?);
        }
        candidates.sort_by(|a, b| (a.due, &a.user_id).cmp(&(b.due, &b.user_id)));
        candidates.truncate(limit);

        let mut fired = Vec::with_capacity(candidates.len());
        for c in candidates {
            match self.claim(&c).await {
                Ok(true) => fired.push(TimerFired {
                    user_id: c.user_id,
                    due: c.due,
                    version: c.version,
                }),
                Ok(false) => {}
                Err(e) if !fired.is_empty() => {
                    warn!(error = %e, claimed = fired.len(), "claiming timers stopped early");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(fired)
    }

    #[instrument(skip(self))]
    async fn pending(&self, user_id: &str) -> Result<Option<Timer>, StoreError> {
        let [pk, sk] = timer_key(user_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .consistent_read(true)
            .send()
            .await
            .map_err(backend("dynamodb get timer"))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        // Tombstones have no `due`; an expired but unclaimed timer is still pending.
        Ok(match get_opt_n(&item, "due")? {
            None => None,
            Some(due) => Some(Timer {
                user_id: user_id.to_string(),
                due,
                version: get_n(&item, "version")?,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tombstone(claim: &str, version: u64, claimed: bool) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("claim".to_string(), s(claim.to_string())),
            ("version".to_string(), n(version)),
            ("claimed".to_string(), AttributeValue::Bool(claimed)),
        ])
    }

    #[test]
    fn a_claim_knows_its_own_tombstone_from_anothers() {
        let mine = new_claim_id();
        let theirs = new_claim_id();
        assert_ne!(mine, theirs);
        assert!(is_own_claim(&tombstone(&mine, 3, true), &mine, 3));
        assert!(!is_own_claim(&tombstone(&theirs, 3, true), &mine, 3));
        // A later version set over it, or the timer live again: not this claim's.
        assert!(!is_own_claim(&tombstone(&mine, 4, true), &mine, 3));
        assert!(!is_own_claim(&tombstone(&mine, 3, false), &mine, 3));
        assert!(!is_own_claim(&HashMap::new(), &mine, 3));
    }
}
