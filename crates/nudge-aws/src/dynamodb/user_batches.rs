//! Several users' state in few calls: evaluate loads a batch's users with BatchGetItem (up
//! to [`BATCH_GET_MAX`] keys a call, strongly consistent as `load`), resending the keys
//! DynamoDB leaves unprocessed. Saves stay one conditional PutItem per user: a transaction
//! over the batch would fail every write for one conflict and costs twice the write units.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use nudge_service::ports::{LoadRequest, StoreError, StoredUser};

use super::item::{get_s, Item};
use super::{backend, user_of_pk, DynamoDbStore};

/// Most keys one BatchGetItem call takes.
pub(super) const BATCH_GET_MAX: usize = 100;

/// Rounds of asking again for unprocessed keys before giving up.
const BATCH_GET_ROUNDS: u32 = 8;

impl DynamoDbStore {
    /// [`nudge_service::ports::UserStore::load_many`]: each distinct user read once, in
    /// calls of up to [`BATCH_GET_MAX`] keys.
    pub(super) async fn load_users(
        &self,
        users: &[LoadRequest<'_>],
    ) -> Result<Vec<Option<StoredUser>>, StoreError> {
        let mut distinct: Vec<&str> = Vec::with_capacity(users.len());
        for u in users {
            // BatchGetItem refuses a key twice in one call.
            if !distinct.contains(&u.user_id) {
                distinct.push(u.user_id);
            }
        }
        let mut found: HashMap<String, Item> = HashMap::with_capacity(distinct.len());
        for chunk in distinct.chunks(BATCH_GET_MAX) {
            self.batch_get_states(chunk, &mut found).await?;
        }
        users
            .iter()
            .map(|u| match found.get(u.user_id) {
                None => Ok(None),
                Some(item) => self.stored_user(u.user_id, item, u.message_ids).map(Some),
            })
            .collect()
    }

    /// Reads the state items of `user_ids` (at most [`BATCH_GET_MAX`]) into `found`, by
    /// user; users never written are left out.
    async fn batch_get_states(
        &self,
        user_ids: &[&str],
        found: &mut HashMap<String, Item>,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "dynamodb batch get user states";
        let keys: Vec<Item> = user_ids
            .iter()
            .map(|user| key_item(self.state_key(user)))
            .collect();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::backend(CONTEXT, false, e))?;
        for round in 0..BATCH_GET_ROUNDS {
            if round > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 << round.min(6))).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(backend(CONTEXT))?;
            let items = out
                .responses
                .and_then(|mut tables| tables.remove(&self.table))
                .unwrap_or_default();
            for item in items {
                let pk = get_s(&item, "pk")?;
                let user = user_of_pk(pk).ok_or_else(|| {
                    StoreError::Corrupt(format!("user state with partition key `{pk}`"))
                })?;
                found.insert(user.to_string(), item);
            }
            // Throttling, or the 16 MB a call answers at most: the rest comes next round.
            match out
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table))
            {
                Some(rest) if !rest.keys().is_empty() => request = rest,
                _ => return Ok(()),
            }
        }
        Err(StoreError::backend(
            CONTEXT,
            true,
            UnprocessedKeys(request.keys().len()),
        ))
    }
}

/// BatchGetItem kept leaving keys unprocessed (throttling).
#[derive(Debug, thiserror::Error)]
#[error("{0} keys still unprocessed after {BATCH_GET_ROUNDS} rounds")]
struct UnprocessedKeys(usize);

/// A key as BatchGetItem takes it.
fn key_item(key: [(&'static str, AttributeValue); 2]) -> Item {
    key.into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}
