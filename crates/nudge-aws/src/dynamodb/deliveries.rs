//! The delivery log: one item per (user, decision), kept for [`DELIVERY_RETENTION_MS`] after
//! its last change (not its decision: an entry of an old decision, imported events', must
//! outlive its redeliveries). An entry whose TTL has passed counts as absent even before
//! DynamoDB deletes it.

use aws_sdk_dynamodb::types::AttributeValue;
use nudge_service::ports::{Delivery, DeliveryStore, StoreError, DELIVERY_RETENTION_MS};
use tracing::instrument;

use super::item::{from_item, get_opt_n, n, s, to_item, Item};
use super::{backend, query_all, ttl_secs, user_pk, written, DynamoDbStore};

/// Sort-key prefix of delivery log entries.
const DELIVERY_PREFIX: &str = "dlv#";

/// Attempts of `begin` when an entry expires or disappears between its write and its read.
const BEGIN_ATTEMPTS: u32 = 3;

fn delivery_key(d: &Delivery) -> [(&'static str, AttributeValue); 2] {
    [
        ("pk", s(user_pk(&d.user_id))),
        ("sk", s(format!("{DELIVERY_PREFIX}{}", d.id))),
    ]
}

/// The item of a log entry.
fn delivery_item(d: &Delivery) -> Result<Item, StoreError> {
    let mut item = to_item(d)?;
    let [pk, sk] = delivery_key(d);
    item.insert(pk.0.into(), pk.1);
    item.insert(sk.0.into(), sk.1);
    item.insert(
        "ttl".into(),
        n(ttl_secs(d.updated_at.saturating_add(DELIVERY_RETENTION_MS))),
    );
    Ok(item)
}

/// Whether an item's TTL has not passed at `now_secs`.
fn is_live(item: &Item, now_secs: i64) -> Result<bool, StoreError> {
    Ok(get_opt_n::<i64>(item, "ttl")?.is_none_or(|ttl| ttl > now_secs))
}

impl DeliveryStore for DynamoDbStore {
    #[instrument(skip(self, d), fields(decision = %d.id, user_id = %d.user_id))]
    async fn begin(&self, d: &Delivery) -> Result<Option<Delivery>, StoreError> {
        let item = delivery_item(d)?;
        for _ in 0..BEGIN_ATTEMPTS {
            let now_secs = self.now().div_euclid(1000);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                // An expired entry not yet deleted by TTL counts as absent.
                .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", n(now_secs))
                .send()
                .await;
            if written(result, "dynamodb put delivery")? {
                return Ok(None);
            }
            let [pk, sk] = delivery_key(d);
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(pk.0, pk.1)
                .key(sk.0, sk.1)
                .consistent_read(true)
                .send()
                .await
                .map_err(backend("dynamodb get delivery"))?;
            match out.item {
                Some(existing) if is_live(&existing, self.now().div_euclid(1000))? => {
                    return from_item(existing).map(Some);
                }
                // Expired or deleted since the write was refused: try the write again.
                _ => {}
            }
        }
        Err(StoreError::Conflict(d.user_id.clone()))
    }

    #[instrument(skip(self, d), fields(decision = %d.id, user_id = %d.user_id, status = ?d.status))]
    async fn finish(&self, d: &Delivery) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(delivery_item(d)?))
            .send()
            .await
            .map_err(backend("dynamodb put delivery"))?;
        Ok(())
    }

    /// A conditional put on the entry's last change; a try whose answer was lost fails its own
    /// condition on the retry and reads as taken by another, which only delays the send to a
    /// later redelivery.
    #[instrument(skip(self, d, seen), fields(decision = %d.id, user_id = %d.user_id))]
    async fn take_over(&self, d: &Delivery, seen: &Delivery) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(delivery_item(d)?))
            .condition_expression("#updated_at = :seen AND #status = :sending")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":seen", n(seen.updated_at))
            .expression_attribute_values(":sending", s("sending".to_string()))
            .send()
            .await;
        written(result, "dynamodb take over delivery")
    }

    /// Decision ids do not sort by time, so this reads the user's whole (unexpired) log and
    /// sorts it; caps and retention keep it short.
    #[instrument(skip(self))]
    async fn recent(&self, user_id: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let now_secs = self.now().div_euclid(1000);
        let mut entries: Vec<Delivery> = Vec::new();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .filter_expression("#ttl > :now")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":pk", s(user_pk(user_id)))
            .expression_attribute_values(":prefix", s(DELIVERY_PREFIX))
            .expression_attribute_values(":now", n(now_secs));
        for item in query_all(query, "dynamodb query deliveries").await? {
            entries.push(from_item(item)?);
        }
        entries.sort_by_key(|d| std::cmp::Reverse((d.at, d.id.0)));
        entries.truncate(limit);
        Ok(entries)
    }
}
