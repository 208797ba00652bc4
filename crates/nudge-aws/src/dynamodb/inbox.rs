//! In-app inboxes: one item per (user, decision) under the user's partition, so one user's
//! Query can never return another user's messages. Dismissed items stay (flagged) until
//! their TTL so that a redelivered put does not bring them back.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use nudge_core::engine::decision::DecisionId;
use nudge_core::time::Millis;
use nudge_service::ports::{InboxItem, InboxStore, StoreError};
use tracing::instrument;

use super::item::{from_item, n, s, to_item};
use super::{query_all, ttl_secs, user_pk, written, DynamoDbStore};

/// Sort-key prefix of inbox items.
const INBOX_PREFIX: &str = "inbox#";

fn inbox_key(user_id: &str, id: DecisionId) -> [(&'static str, AttributeValue); 2] {
    [
        ("pk", s(user_pk(user_id))),
        ("sk", s(format!("{INBOX_PREFIX}{id}"))),
    ]
}

impl InboxStore for DynamoDbStore {
    #[instrument(skip(self, item), fields(decision = %item.id, user_id = %item.user_id))]
    async fn put(&self, item: &InboxItem) -> Result<(), StoreError> {
        let mut attributes = to_item(item)?;
        let [pk, sk] = inbox_key(&item.user_id, item.id);
        attributes.insert(pk.0.into(), pk.1);
        attributes.insert(sk.0.into(), sk.1);
        attributes.insert("dismissed".into(), AttributeValue::Bool(false));
        attributes.insert("ttl".into(), n(ttl_secs(item.expires_at)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attributes))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        // Put already (a redelivery): leave it as it is, read or dismissed.
        written(result, "dynamodb put inbox item").map(|_| ())
    }

    #[instrument(skip(self))]
    async fn list(&self, user_id: &str, now: Millis) -> Result<Vec<InboxItem>, StoreError> {
        let mut items: Vec<InboxItem> = Vec::new();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .filter_expression("#dismissed = :false AND #ttl >= :now_secs")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#dismissed", "dismissed")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":pk", s(user_pk(user_id)))
            .expression_attribute_values(":prefix", s(INBOX_PREFIX))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now_secs", n(now.div_euclid(1000)));
        for attributes in query_all(query, "dynamodb query inbox").await? {
            let item: InboxItem = from_item(attributes)?;
            // The TTL filter works in seconds; the contract in ms: an item is listed up to
            // and including its `expires_at`.
            if item.expires_at >= now {
                items.push(item);
            }
        }
        items.sort_by_key(|i| std::cmp::Reverse((i.created_at, i.id.0)));
        Ok(items)
    }

    /// Keeps the first read time; an expired or dismissed item is no longer in the inbox.
    #[instrument(skip(self), fields(decision = %id))]
    async fn mark_read(
        &self,
        user_id: &str,
        id: DecisionId,
        now: Millis,
    ) -> Result<Option<InboxItem>, StoreError> {
        let [pk, sk] = inbox_key(user_id, id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression("SET #read_at = if_not_exists(#read_at, :now)")
            .condition_expression(
                "attribute_exists(#pk) AND #dismissed = :false AND #expires_at >= :now",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#read_at", "read_at")
            .expression_attribute_names("#dismissed", "dismissed")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        updated(result, "dynamodb mark inbox item read")
    }

    #[instrument(skip(self), fields(decision = %id))]
    async fn dismiss(
        &self,
        user_id: &str,
        id: DecisionId,
    ) -> Result<Option<InboxItem>, StoreError> {
        let [pk, sk] = inbox_key(user_id, id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression("SET #dismissed = :true")
            .condition_expression("attribute_exists(#pk) AND #dismissed = :false")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#dismissed", "dismissed")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        updated(result, "dynamodb dismiss inbox item")
    }
}

/// The item a conditional update changed, `None` when its condition did not hold (no such
/// item in the inbox).
fn updated(
    result: Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
    context: &'static str,
) -> Result<Option<InboxItem>, StoreError> {
    match result {
        Ok(out) => out.attributes.map(from_item).transpose(),
        Err(e) => written(Err::<(), _>(e), context).map(|_| None),
    }
}
