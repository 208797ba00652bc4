//! Report counters on DynamoDB. A user's counter changes ride in its conditional state write
//! (`counts` B, like the outbox), then [`DynamoDbStore::apply_counts`] adds them to sharded
//! counter items in transactions that also put a marker item for (user, version): a
//! redelivered or retried application finds its marker and adds nothing, so every count is
//! made once. The shard is a hash of the user, so no counter item is hot.
//!
//! | item             | `pk`                          | `sk`                 | attributes                        |
//! |------------------|-------------------------------|----------------------|-----------------------------------|
//! | counters         | `report#c#<grain>#<shard>`    | `<bucket, 12 digits>#<scope>#<name>` | one N per variant, part and field |
//! | users            | `report#u#<grain>#<shard>`    | bucket, 12 digits    | `r<register>` NS of ranks seen    |
//! | pending waits    | `report#w#<shard>`            | `now`                | one N per trigger and channel     |
//! | applied marker   | `u#<userId>`                  | `counted#<version>#<chunk>` | `ttl` (erased with the user) |
//!
//! Grain `h` rows are hours since the epoch, grain `d` rows days, so a month reads about
//! thirty rows per shard and trigger (funnel, experiment); an item holds one trigger's
//! counters, far from DynamoDB's 400 KB item limit however many triggers there are. A sketch register keeps every rank seen (`ADD` to a number set is
//! atomic and idempotent where `max` is not an update expression); the report reads the
//! highest.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use futures_util::future::try_join_all;
use nudge_core::insights::period::Span;
use nudge_core::insights::{Deltas, Key, Observation, Period, Sketch, Sums};
use nudge_service::ports::{ReportStore, StoreError};
use tracing::warn;

use super::item::{n, s, Item};
use super::{backend, query_all, ttl_secs, DynamoDbStore};

/// Counter shards per grain.
const SHARDS: u64 = 8;
/// Actions of one transaction: DynamoDB's limit, the marker included.
const MAX_ACTIONS: usize = 100;
/// Transactions retried this often when another one touched the same counter item.
const CONFLICT_RETRIES: u32 = 6;
/// How long an applied marker is kept: well beyond any redelivery or retry.
const MARKER_DAYS: i64 = 35;
/// What separates a counter key's parts in an attribute name.
const SEP: char = '\u{1f}';

/// One counter item's changes: attribute name -> N, or register -> rank.
#[derive(Default)]
struct Changes {
    numbers: BTreeMap<String, i64>,
    ranks: BTreeMap<String, u8>,
}

fn bucket_sk(bucket: i64) -> String {
    format!("{bucket:012}")
}

fn shard_of(user_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(user_id.as_bytes()) % SHARDS
}

/// Every item a user's changes touch, in a fixed order (so a retry cuts the same chunks).
fn items_of(user_id: &str, d: &Deltas) -> BTreeMap<(String, String), Changes> {
    let shard = shard_of(user_id);
    let mut items: BTreeMap<(String, String), Changes> = BTreeMap::new();
    for ((key, hour), delta) in &d.counts {
        let [scope, name, variant, part, field] = key.parts();
        let attr = [variant, part, field].join(&SEP.to_string());
        for (grain, bucket) in [("h", *hour), ("d", hour.div_euclid(24))] {
            let at = (
                format!("report#c#{grain}#{shard}"),
                format!("{}#{scope}#{name}", bucket_sk(bucket)),
            );
            *items
                .entry(at)
                .or_default()
                .numbers
                .entry(attr.clone())
                .or_default() += delta;
        }
    }
    for ((trigger, channel), delta) in &d.waiting {
        let at = (format!("report#w#{shard}"), "now".to_string());
        let attr = format!("{trigger}{SEP}{channel}");
        *items
            .entry(at)
            .or_default()
            .numbers
            .entry(attr)
            .or_default() += delta;
    }
    for (hour, o) in &d.users {
        for (grain, bucket) in [("h", *hour), ("d", hour.div_euclid(24))] {
            let at = (format!("report#u#{grain}#{shard}"), bucket_sk(bucket));
            let rank = items
                .entry(at)
                .or_default()
                .ranks
                .entry(format!("r{}", o.index))
                .or_default();
            *rank = (*rank).max(o.rank);
        }
    }
    items.retain(|_, c| c.numbers.values().any(|n| *n != 0) || !c.ranks.is_empty());
    items
}

impl DynamoDbStore {
    /// The update action adding one item's changes.
    fn update(&self, pk: &str, sk: &str, c: &Changes) -> Result<TransactWriteItem, StoreError> {
        let mut parts = Vec::new();
        let mut update = Update::builder()
            .table_name(self.table())
            .key("pk", s(pk))
            .key("sk", s(sk));
        for (i, (attr, delta)) in c.numbers.iter().filter(|(_, d)| **d != 0).enumerate() {
            parts.push(format!("#n{i} :n{i}"));
            update = update
                .expression_attribute_names(format!("#n{i}"), attr)
                .expression_attribute_values(format!(":n{i}"), n(delta));
        }
        for (i, (attr, rank)) in c.ranks.iter().enumerate() {
            parts.push(format!("#r{i} :r{i}"));
            update = update
                .expression_attribute_names(format!("#r{i}"), attr)
                .expression_attribute_values(
                    format!(":r{i}"),
                    AttributeValue::Ns(vec![rank.to_string()]),
                );
        }
        let update = update
            .update_expression(format!("ADD {}", parts.join(", ")))
            .build()
            .map_err(|e| StoreError::backend("dynamodb report update", false, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Applies one user's counter changes saved with `version`, once, then forgets them.
    pub(super) async fn apply_user_counts(
        &self,
        user_id: &str,
        version: u64,
        counts: &Deltas,
    ) -> Result<(), StoreError> {
        let items = items_of(user_id, counts);
        let updates = items
            .iter()
            .map(|((pk, sk), c)| self.update(pk, sk, c))
            .collect::<Result<Vec<_>, _>>()?;
        let expires = ttl_secs(self.now() + MARKER_DAYS * 86_400_000);
        for (chunk, actions) in updates.chunks(MAX_ACTIONS - 1).enumerate() {
            let marker = Put::builder()
                .table_name(self.table())
                .item("pk", s(super::user_pk(user_id)))
                .item("sk", s(format!("counted#{version}#{chunk}")))
                .item("ttl", n(expires))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk")
                .build()
                .map_err(|e| StoreError::backend("dynamodb report marker", false, e))?;
            let mut all = vec![TransactWriteItem::builder().put(marker).build()];
            all.extend(actions.iter().cloned());
            self.transact(all).await?;
        }
        self.forget_counts(user_id, version).await
    }

    /// Runs one transaction; `Ok` too when its marker shows it ran before.
    async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                err.as_service_error()
            {
                let codes: Vec<&str> = c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or(""))
                    .collect();
                // The marker is the first action: its condition failing means applied before.
                if codes.first() == Some(&"ConditionalCheckFailed") {
                    return Ok(());
                }
                if codes.contains(&"TransactionConflict") && attempt < CONFLICT_RETRIES {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                    continue;
                }
            }
            return Err(backend("dynamodb apply report counts")(err));
        }
    }

    /// Removes the applied changes from the user's item, unless a newer version replaced it.
    async fn forget_counts(&self, user_id: &str, version: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table())
            .key("pk", s(super::user_pk(user_id)))
            .key("sk", s(super::user::STATE_SK))
            .update_expression("REMOVE #counts")
            .condition_expression("#version = :v")
            .expression_attribute_names("#counts", "counts")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        if super::written(result, "dynamodb forget applied counts")? {
            return Ok(());
        }
        // A newer write carries its own changes; these were applied all the same.
        Ok(())
    }

    /// The counters of one shard over a range of one grain.
    async fn read_range(
        &self,
        kind: &str,
        grain: &str,
        shard: u64,
        (from, to): Span,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(format!("report#{kind}#{grain}#{shard}")))
            .expression_attribute_values(":from", s(bucket_sk(from)))
            // Every sort key of bucket `to - 1` (`<bucket>#...`) sorts below `<bucket>$`.
            .expression_attribute_values(":to", s(format!("{}$", bucket_sk(to - 1))))
            .consistent_read(true);
        query_all(query, "dynamodb read report counters").await
    }
}

impl ReportStore for DynamoDbStore {
    async fn report_sums(&self, period: Period) -> Result<Sums, StoreError> {
        let (days, edges) = period.split_days();
        let mut ranges: Vec<(&str, Span)> = edges.into_iter().map(|e| ("h", e)).collect();
        ranges.extend(days.map(|d| ("d", d)));
        let mut reads = Vec::new();
        for (grain, range) in &ranges {
            for shard in 0..SHARDS {
                reads.push(self.read_range("c", grain, shard, *range));
                reads.push(self.read_range("u", grain, shard, *range));
            }
        }
        let waits = (0..SHARDS).map(|shard| {
            let query = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_values(":pk", s(format!("report#w#{shard}")))
                .consistent_read(true);
            query_all(query, "dynamodb read pending waits")
        });
        let (found, waiting) =
            futures_util::future::try_join(try_join_all(reads), try_join_all(waits)).await?;
        let mut sums = Sums::default();
        let mut users = Sketch::default();
        for item in found.into_iter().flatten() {
            let is_users = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("report#u#"));
            // `<bucket>#<scope>#<name>`: the scope has no `#`, the name may.
            let scope_name = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.split_once('#'))
                .and_then(|(_, rest)| rest.split_once('#'));
            for (name, value) in &item {
                if name == "pk" || name == "sk" {
                    continue;
                }
                if is_users {
                    let (Some(index), Ok(ranks)) = (
                        name.strip_prefix('r').and_then(|i| i.parse().ok()),
                        value.as_ns(),
                    ) else {
                        continue;
                    };
                    let rank = ranks
                        .iter()
                        .filter_map(|r| r.parse::<u8>().ok())
                        .max()
                        .unwrap_or(0);
                    users.apply(Observation { index, rank });
                    continue;
                }
                let parts: Vec<&str> = name.split(SEP).collect();
                let count = value.as_n().map(|v| v.parse::<i64>());
                let key = match (scope_name, parts.as_slice()) {
                    (Some((scope, key_name)), [variant, part, field]) => {
                        Key::from_parts(scope, key_name, variant, part, field)
                    }
                    _ => None,
                };
                match (key, count) {
                    (Some(key), Ok(Ok(c))) => *sums.counts.entry(key).or_default() += c,
                    _ => warn!(attribute = %name, "report counter not understood; left out"),
                }
            }
        }
        for item in waiting.into_iter().flatten() {
            for (name, value) in &item {
                let Some((trigger, _channel)) = name.split_once(SEP) else {
                    continue;
                };
                if let Some(c) = value.as_n().ok().and_then(|v| v.parse::<i64>().ok()) {
                    *sums.waiting.entry(trigger.into()).or_default() += c;
                }
            }
        }
        sums.users = users.estimate();
        Ok(sums)
    }
}
