//! User state: one item per user, written with optimistic concurrency on `version`, carrying
//! the outbox, the applied messageIds and the report counter changes (`reports.rs` applies
//! them) so that one conditional PutItem stores a whole evaluation atomically.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use nudge_core::insights::Deltas;
use nudge_service::bus::BusEvent;
use nudge_service::ports::{LoadRequest, StoreError, StoredUser, UserStore, UserWrite};
use tracing::instrument;

use super::applied_ids::AppliedIds;
use super::item::{get_n, get_opt_b, get_opt_s, n, s, Item};
use super::{backend, query_all, user_pk, written, DynamoDbStore};

/// Sort key of the user-state item.
pub(super) const STATE_SK: &str = "state";

/// Most items one BatchWriteItem call takes.
const BATCH_WRITE_MAX: usize = 25;

/// Rounds of resending unprocessed deletes before giving up.
const BATCH_WRITE_ROUNDS: u32 = 8;

/// Entries kept in the load → save cache before it is emptied (it only bridges the two
/// calls of one evaluation).
const READ_IDS_CACHE_MAX: usize = 1024;

impl DynamoDbStore {
    pub(super) fn state_key(&self, user_id: &str) -> [(&'static str, AttributeValue); 2] {
        [("pk", s(user_pk(user_id))), ("sk", s(STATE_SK))]
    }

    /// Remembers the applied-id list of `version` for the next `save`.
    fn remember_ids(&self, user_id: &str, version: u64, ids: AppliedIds) {
        if let Ok(mut cache) = self.read_ids.lock() {
            if cache.len() >= READ_IDS_CACHE_MAX {
                cache.clear();
            }
            cache.insert(user_id.to_string(), (version, ids));
        }
    }

    /// Takes the applied-id list `load` read at `version`, if it did.
    fn take_ids(&self, user_id: &str, version: u64) -> Option<AppliedIds> {
        let mut cache = self.read_ids.lock().ok()?;
        match cache.remove(user_id) {
            Some((v, ids)) if v == version => Some(ids),
            _ => None,
        }
    }

    /// The applied-id list stored at `version`, read again (when `load` did not run in this
    /// process); `None` if the stored version is another.
    async fn read_ids(
        &self,
        user_id: &str,
        version: u64,
    ) -> Result<Option<AppliedIds>, StoreError> {
        let [pk, sk] = self.state_key(user_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .consistent_read(true)
            .projection_expression("#version, #ids")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#ids", "ids")
            .send()
            .await
            .map_err(backend("dynamodb get applied messageIds"))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        if get_n::<u64>(&item, "version")? != version {
            return Ok(None);
        }
        AppliedIds::decode(get_opt_b(&item, "ids")?).map(Some)
    }
}

impl DynamoDbStore {
    /// A user's state item as loaded, with which of `message_ids` it applied; remembers its
    /// applied-id list for the next `save`.
    pub(super) fn stored_user(
        &self,
        user_id: &str,
        item: &Item,
        message_ids: &[&str],
    ) -> Result<StoredUser, StoreError> {
        let (state, version, outbox, ids, counts) = parse_state(item)?;
        let now = self.now();
        let applied = message_ids
            .iter()
            .filter(|id| ids.contains(id, now))
            .map(|id| id.to_string())
            .collect();
        self.remember_ids(user_id, version, ids);
        Ok(StoredUser {
            state,
            version,
            outbox,
            applied,
            counts,
        })
    }
}

/// A user-state item's parts.
type StateItem = (Vec<u8>, u64, Vec<BusEvent>, AppliedIds, Deltas);

/// Reads a user-state item.
fn parse_state(item: &Item) -> Result<StateItem, StoreError> {
    let state = get_opt_b(item, "state")?
        .ok_or_else(|| StoreError::Corrupt("user state item without `state`".into()))?
        .to_vec();
    let version = get_n(item, "version")?;
    let outbox = match get_opt_s(item, "outbox")? {
        None => Vec::new(),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| StoreError::Corrupt(format!("outbox of version {version}: {e}")))?,
    };
    let ids = AppliedIds::decode(get_opt_b(item, "ids")?)?;
    let counts = match get_opt_b(item, "counts")? {
        None => Deltas::default(),
        Some(b) => Deltas::decode(b)
            .map_err(|e| StoreError::Corrupt(format!("report counts of version {version}: {e}")))?,
    };
    Ok((state, version, outbox, ids, counts))
}

impl UserStore for DynamoDbStore {
    #[instrument(skip(self))]
    async fn load(
        &self,
        user_id: &str,
        message_ids: &[&str],
    ) -> Result<Option<StoredUser>, StoreError> {
        let [pk, sk] = self.state_key(user_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .consistent_read(true)
            .send()
            .await
            .map_err(backend("dynamodb get user state"))?;
        out.item
            .map(|item| self.stored_user(user_id, &item, message_ids))
            .transpose()
    }

    /// One BatchGetItem per 100 users (`user_batches.rs`) instead of a GetItem each.
    #[instrument(skip(self, users), fields(users = users.len()))]
    async fn load_many(
        &self,
        users: &[LoadRequest<'_>],
    ) -> Result<Vec<Option<StoredUser>>, StoreError> {
        match users {
            // One GetItem costs what a BatchGetItem of one key does.
            [one] => Ok(vec![self.load(one.user_id, one.message_ids).await?]),
            _ => self.load_users(users).await,
        }
    }

    /// The applied-messageId check happens against the list `load` read at `expected`
    /// (read again if this process did not load it): the PutItem's condition
    /// `version = :expected` guarantees nobody changed the list since, so refusing a known
    /// id and merging the new ones into that list is as safe as a check on the server.
    #[instrument(skip(self, write), fields(version = ?expected, ids = write.message_ids.len()))]
    async fn save(
        &self,
        user_id: &str,
        expected: Option<u64>,
        write: UserWrite<'_>,
    ) -> Result<u64, StoreError> {
        let conflict = || StoreError::Conflict(user_id.to_string());
        let mut ids = match expected {
            None => AppliedIds::default(),
            Some(version) => match self.take_ids(user_id, version) {
                Some(ids) => ids,
                None => self
                    .read_ids(user_id, version)
                    .await?
                    .ok_or_else(conflict)?,
            },
        };
        ids.record(write.message_ids, write.now)
            .map_err(|_| conflict())?;
        let version = expected.map_or(1, |v| v + 1);

        let [pk, sk] = self.state_key(user_id);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(pk.0, pk.1)
            .item(sk.0, sk.1)
            .item("state", AttributeValue::B(Blob::new(write.state)))
            .item("version", n(version));
        if !write.outbox.is_empty() {
            let json = serde_json::to_string(write.outbox)
                .map_err(|e| StoreError::Corrupt(format!("outbox not storable: {e}")))?;
            put = put.item("outbox", s(json));
        }
        if !ids.is_empty() {
            put = put.item("ids", AttributeValue::B(Blob::new(ids.encode())));
        }
        if !write.counts.is_empty() {
            put = put.item(
                "counts",
                AttributeValue::B(Blob::new(write.counts.encode())),
            );
        }
        put = match expected {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk"),
            Some(v) => put
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(v)),
        };
        match written(put.send().await, "dynamodb put user state")? {
            true => Ok(version),
            false => Err(conflict()),
        }
    }

    #[instrument(skip(self, counts))]
    async fn apply_counts(
        &self,
        user_id: &str,
        version: u64,
        counts: &Deltas,
    ) -> Result<(), StoreError> {
        self.apply_user_counts(user_id, version, counts).await
    }

    #[instrument(skip(self))]
    async fn clear_outbox(&self, user_id: &str, version: u64) -> Result<(), StoreError> {
        let [pk, sk] = self.state_key(user_id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression("REMOVE #outbox")
            .condition_expression("#version = :v")
            .expression_attribute_names("#outbox", "outbox")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        // A failed condition means a newer write, which has its own outbox.
        written(result, "dynamodb clear outbox").map(|_| ())
    }

    #[instrument(skip(self))]
    async fn erase_user(&self, user_id: &str) -> Result<(), StoreError> {
        if let Ok(mut cache) = self.read_ids.lock() {
            cache.remove(user_id);
        }
        let mut keys = Vec::new();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(user_pk(user_id)))
            .consistent_read(true);
        for key in query_all(query, "dynamodb query user items").await? {
            keys.push(key);
        }
        for chunk in keys.chunks(BATCH_WRITE_MAX) {
            let mut requests = Vec::with_capacity(chunk.len());
            for key in chunk {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key.clone()))
                    .build()
                    .map_err(|e| StoreError::backend("dynamodb delete request", false, e))?;
                requests.push(WriteRequest::builder().delete_request(delete).build());
            }
            self.batch_write(requests).await?;
        }
        Ok(())
    }
}

impl DynamoDbStore {
    /// One BatchWriteItem, resending unprocessed requests with backoff.
    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for round in 0..BATCH_WRITE_ROUNDS {
            if round > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 << round.min(6))).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(backend("dynamodb batch delete"))?;
            requests = out
                .unprocessed_items
                .and_then(|mut items| items.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::backend(
            "dynamodb batch delete",
            true,
            UnprocessedItems(requests.len()),
        ))
    }
}

/// BatchWriteItem kept leaving requests unprocessed (throttling).
#[derive(Debug, thiserror::Error)]
#[error("{0} deletes still unprocessed after {BATCH_WRITE_ROUNDS} rounds")]
struct UnprocessedItems(usize);
