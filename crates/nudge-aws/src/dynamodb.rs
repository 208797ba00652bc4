//! The DynamoDB store: user state, timers, delivery log and inbox in one table.
//!
//! Single-table layout (keys `pk` S and `sk` S; TTL attribute `ttl` in epoch seconds):
//!
//! | item          | `pk`         | `sk`                    | notes                                  |
//! |---------------|--------------|-------------------------|----------------------------------------|
//! | user state    | `u#<userId>` | `state`                 | `state` B, `version` N, `outbox` S, `ids` B, `counts` B |
//! | timer         | `u#<userId>` | `timer`                 | `due` N, `version` N, `ttl`, `gsi1pk`/`gsi1sk`, `queued` N |
//! | delivery log  | `u#<userId>` | `dlv#<decision hex>`    | `Delivery` fields, `ttl` = updated_at + 90 days |
//! | inbox item    | `u#<userId>` | `inbox#<decision hex>`  | `InboxItem` fields, `dismissed`, `ttl` |
//!
//! The sparse global secondary index [`DUE_INDEX`] (`gsi1pk` S = `timers#<shard>`,
//! `gsi1sk` N = due ms, projection ALL) holds only live timers, so the sweeper reads nothing
//! else. Every item of a user shares the partition key, so erasing a user is one Query.
//! Report counters have items of their own (`reports.rs`).

mod applied_ids;
mod deliveries;
mod inbox;
mod item;
mod queued_timers;
mod reports;
mod schema;
mod timers;
mod user;
mod user_batches;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::Client;
use nudge_core::time::Millis;
use nudge_service::ports::{Clock, StoreError, SystemClock};

use crate::sdk_error::{error_code, is_retryable, SdkFailure};

pub use queued_timers::{LiveTimer, TimerSet};
pub use schema::create_table;

use applied_ids::AppliedIds;

/// Name of the sparse global secondary index over live timers.
pub const DUE_INDEX: &str = "due";

/// The nudge ports ([`UserStore`](nudge_service::ports::UserStore),
/// [`TimerStore`](nudge_service::ports::TimerStore),
/// [`DeliveryStore`](nudge_service::ports::DeliveryStore),
/// [`InboxStore`](nudge_service::ports::InboxStore)) on one DynamoDB table.
pub struct DynamoDbStore {
    // `client` and `shards` are crate-visible for the tests' `test_access`.
    pub(crate) client: LazyLock<Client, Box<dyn FnOnce() -> Client + Send>>,
    table: String,
    pub(crate) shards: u32,
    /// The applied-messageId lists `load` read, by user, with the version they belong to,
    /// so that `save` can merge into them without reading the item again.
    read_ids: Mutex<HashMap<String, (u64, AppliedIds)>>,
    /// What expiry checks and tombstone lifetimes are measured against when the caller
    /// gives no instant: the wall clock (DynamoDB's TTL runs on it), or a test's clock.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.table)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl DynamoDbStore {
    /// A store on `table`, spreading timers over `shards` index partitions (at least 1).
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Self {
        Self::with_client(
            LazyLock::new(Box::new(move || client)),
            table.into(),
            shards,
        )
    }

    /// Like [`DynamoDbStore::new`], with the client built from `sdk` when the store is first
    /// used. For a function that needs the table only for some requests (ingest: inbox and
    /// admin, not tracking), so that its cold starts do not pay for a client (the SDK's
    /// endpoint partitions, parsed per service) that most of them never use.
    pub fn on_first_use(sdk: &SdkConfig, table: impl Into<String>, shards: u32) -> Self {
        let sdk = sdk.clone();
        Self::with_client(
            LazyLock::new(Box::new(move || Client::new(&sdk))),
            table.into(),
            shards,
        )
    }

    fn with_client(
        client: LazyLock<Client, Box<dyn FnOnce() -> Client + Send>>,
        table: String,
        shards: u32,
    ) -> Self {
        DynamoDbStore {
            client,
            table,
            shards: shards.max(1),
            read_ids: Mutex::new(HashMap::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same store measuring expiry against `clock` instead of the wall clock, for runs
    /// on a virtual clock (the handlers' clock), where a wall-clock check would call a
    /// record from the virtual past expired.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The table this store reads and writes.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// The partition key of everything stored for a user.
pub(crate) fn user_pk(user_id: &str) -> String {
    format!("u#{user_id}")
}

/// The user id of a partition key written by [`user_pk`].
fn user_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix("u#")
}

/// Maps an SDK failure to a [`StoreError`], saying whether a retry may help.
fn backend<E>(context: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |err| {
        let retryable = is_retryable(&err);
        StoreError::backend(context, retryable, SdkFailure::new(err))
    }
}

/// Whether a conditional write failed because its condition did not hold.
fn is_condition_failed<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    error_code(err) == Some("ConditionalCheckFailedException")
}

/// A conditional write's outcome: `true` written, `false` when its condition did not hold (a
/// newer write got there first, or this one was made before: idempotent writes read that as
/// done), the failure of `context` otherwise.
fn written<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    context: &'static str,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failed(&e) => Ok(false),
        Err(e) => Err(backend(context)(e)),
    }
}

/// Every item a query finds, page after page (the SDK's paginator follows
/// `LastEvaluatedKey`).
async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    context: &'static str,
) -> Result<Vec<item::Item>, StoreError> {
    query
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(backend(context))
}

impl DynamoDbStore {
    /// Now in ms by the store's clock (the wall clock unless [`DynamoDbStore::with_clock`]).
    fn now(&self) -> Millis {
        self.clock.now()
    }
}

/// Epoch seconds of a TTL attribute for an instant in ms, rounded up (an item never expires
/// before its instant).
fn ttl_secs(at_ms: Millis) -> i64 {
    at_ms.div_euclid(1000) + i64::from(at_ms.rem_euclid(1000) != 0)
}
