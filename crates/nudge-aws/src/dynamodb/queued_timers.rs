//! What the precise tier (`crate::timers`) reads and writes on timer items: the `queued`
//! mark (N, ms), the due time of the delay-queue message in flight for the timer. A timer
//! enters the queue once (the mark says a message is on its way); a timer set again keeps
//! its mark, so the message re-queues itself on arrival instead of a new one per move.
//! Tombstones never carry a mark (a claim removes it; a cancel replaces the item).

use aws_sdk_dynamodb::types::ReturnValue;
use nudge_core::time::Millis;
use nudge_service::bus::DelayRequest;
use nudge_service::ports::StoreError;
use tracing::instrument;

use super::item::{get_n, get_opt_n, get_s, n, s, Item};
use super::timers::{timer_key, Candidate};
use super::{backend, ttl_secs, user_of_pk, written, DynamoDbStore, DUE_INDEX};

/// A live timer as the table holds it, with its queue mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTimer {
    pub user_id: String,
    pub due: Millis,
    pub version: u64,
    /// The due time a queued message was sent for, if one is on its way.
    pub queued: Option<Millis>,
}

/// What setting a timer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerSet {
    /// A newer request or cancel was applied already: nothing changed.
    Stale,
    /// The timer is set; `queued` is the mark it kept from the live timer it replaced.
    Set { queued: Option<Millis> },
}

impl DynamoDbStore {
    /// Sets a timer unless a newer request or cancel was applied, keeping the mark of the
    /// live timer it replaces; with `mark`, a timer that had none gets that one in the same
    /// write (the caller then sends its message). The same request again is applied again
    /// while its timer has no mark, so that a retry after a failed send can still queue it.
    #[instrument(skip(self))]
    pub async fn set_timer(
        &self,
        req: &DelayRequest,
        mark: Option<Millis>,
    ) -> Result<TimerSet, StoreError> {
        let [pk, sk] = timer_key(&req.user_id);
        let set = "SET #due = :due, #version = :v, #ttl = :ttl, #gsi1pk = :shard, #gsi1sk = :due";
        let mut update = self.client.update_item();
        update = match mark {
            Some(at) => update
                .update_expression(format!(
                    "{set}, #queued = if_not_exists(#queued, :mark) REMOVE #cancelled, #claimed"
                ))
                .expression_attribute_values(":mark", n(at)),
            None => update.update_expression(format!("{set} REMOVE #cancelled, #claimed")),
        };
        let result = update
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .condition_expression(
                "attribute_not_exists(#pk) OR #version < :v \
                 OR (#version = :v AND #due = :due AND attribute_not_exists(#queued))",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#due", "due")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#gsi1pk", "gsi1pk")
            .expression_attribute_names("#gsi1sk", "gsi1sk")
            .expression_attribute_names("#cancelled", "cancelled")
            .expression_attribute_names("#claimed", "claimed")
            .expression_attribute_names("#queued", "queued")
            .expression_attribute_values(":due", n(req.due))
            .expression_attribute_values(":v", n(req.version))
            .expression_attribute_values(":ttl", n(ttl_secs(req.due)))
            .expression_attribute_values(
                ":shard",
                s(format!("timers#{}", self.shard_of(&req.user_id))),
            )
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                // Only a live timer's mark counts (tombstones carry none; be sure).
                let queued = match get_opt_n::<Millis>(&old, "due")? {
                    Some(_) => get_opt_n(&old, "queued")?,
                    None => None,
                };
                Ok(TimerSet::Set { queued })
            }
            // A failed condition: a newer request or cancel was applied; anything else fails.
            Err(e) => written::<(), _>(Err(e), "dynamodb set timer").map(|_| TimerSet::Stale),
        }
    }

    /// The user's live timer with its mark (strongly consistent), `None` if there is none
    /// (never set, cancelled, claimed, or removed by TTL).
    #[instrument(skip(self))]
    pub async fn live_timer(&self, user_id: &str) -> Result<Option<LiveTimer>, StoreError> {
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
        let Some(due) = get_opt_n(&item, "due")? else {
            return Ok(None);
        };
        Ok(Some(LiveTimer {
            user_id: user_id.to_string(),
            due,
            version: get_n(&item, "version")?,
            queued: get_opt_n(&item, "queued")?,
        }))
    }

    /// Replaces the mark of `timer` with `queued` (or removes it) if the timer is still
    /// exactly as read; `false` if it changed meanwhile.
    #[instrument(skip(self))]
    pub async fn mark_queued(
        &self,
        timer: &LiveTimer,
        queued: Option<Millis>,
    ) -> Result<bool, StoreError> {
        let [pk, sk] = timer_key(&timer.user_id);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .expression_attribute_names("#due", "due")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#queued", "queued")
            .expression_attribute_values(":due", n(timer.due))
            .expression_attribute_values(":v", n(timer.version));
        update = match queued {
            Some(at) => update
                .update_expression("SET #queued = :queued")
                .expression_attribute_values(":queued", n(at)),
            None => update.update_expression("REMOVE #queued"),
        };
        update = match timer.queued {
            Some(was) => update
                .condition_expression("#version = :v AND #due = :due AND #queued = :was")
                .expression_attribute_values(":was", n(was)),
            None => update.condition_expression(
                "#version = :v AND #due = :due AND attribute_not_exists(#queued)",
            ),
        };
        written(update.send().await, "dynamodb mark timer queued")
    }

    /// Claims a live timer as read (its version and due time unchanged), as the sweeper
    /// claims one; `false` if it changed or was claimed meanwhile.
    pub async fn claim_live(&self, timer: &LiveTimer) -> Result<bool, StoreError> {
        self.claim(&Candidate {
            user_id: timer.user_id.clone(),
            due: timer.due,
            version: timer.version,
        })
        .await
    }

    /// Up to `limit` live timers due after `after` and at or before `until`, earliest first
    /// per shard, without a mark or with one older than `stale` (its message was lost: it
    /// would have claimed, re-queued or unmarked the timer long ago): those entering the
    /// queue's horizon.
    #[instrument(skip(self))]
    pub async fn unqueued_due_between(
        &self,
        after: Millis,
        until: Millis,
        stale: Millis,
        limit: usize,
    ) -> Result<Vec<LiveTimer>, StoreError> {
        let mut found = Vec::new();
        for shard in 0..self.shards {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(DUE_INDEX)
                    .key_condition_expression(
                        "#gsi1pk = :shard AND #gsi1sk BETWEEN :from AND :until",
                    )
                    .filter_expression("attribute_not_exists(#queued) OR #queued < :stale")
                    .projection_expression("#pk, #due, #version, #queued")
                    .expression_attribute_names("#gsi1pk", "gsi1pk")
                    .expression_attribute_names("#gsi1sk", "gsi1sk")
                    .expression_attribute_names("#pk", "pk")
                    .expression_attribute_names("#due", "due")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_names("#queued", "queued")
                    .expression_attribute_values(":shard", s(format!("timers#{shard}")))
                    .expression_attribute_values(":from", n(after.saturating_add(1)))
                    .expression_attribute_values(":until", n(until))
                    .expression_attribute_values(":stale", n(stale))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(backend("dynamodb query timers entering the horizon"))?;
                for item in out.items.unwrap_or_default() {
                    found.push(unqueued(&item)?);
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }
}

/// A due-index entry without a (live) mark.
fn unqueued(item: &Item) -> Result<LiveTimer, StoreError> {
    let pk = get_s(item, "pk")?;
    let user_id = user_of_pk(pk)
        .ok_or_else(|| StoreError::Corrupt(format!("timer with partition key `{pk}`")))?;
    Ok(LiveTimer {
        user_id: user_id.to_string(),
        due: get_n(item, "due")?,
        version: get_n(item, "version")?,
        queued: get_opt_n(item, "queued")?,
    })
}
