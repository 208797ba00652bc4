//! The DynamoDB store against a real moto server: the storage contract (`contract`), and
//! what only this adapter has (its items as stored, TTL-style expiry on its clock, a client
//! built on first use, malformed items).

mod contract;

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use nudge_core::engine::decision::DecisionId;
use nudge_core::insights::{observe, Deltas, Field, Key, Period, Scope};
use nudge_core::time::Millis;
use nudge_service::bus::BusEvent;
use nudge_service::ports::{
    Clock, DeliveryStore, InboxItem, InboxStore, LoadRequest, ReportStore, SaveRequest, StoreError,
    TimerStore, UserStore, UserWrite, DELIVERY_RETENTION_MS, INBOX_RETENTION_MS,
    MESSAGE_ID_RETENTION_MS,
};

use nudge_aws::dynamodb::DynamoDbStore;
use nudge_aws::test_access::{dynamodb_client, timer_shards, user_pk};

use nudge_store_contract::samples::{cancel, delay, delivery, inbox_item};

use crate::support;
use crate::support::stack::TestClock;

/// The wall clock in ms (what the store measures expiry against by default).
fn wall_clock_ms() -> Millis {
    nudge_service::ports::SystemClock.now()
}

const DAY: Millis = 24 * 3600 * 1000;

/// A string attribute value.
fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

async fn store(shards: u32) -> DynamoDbStore {
    let (client, table) = support::table().await;
    DynamoDbStore::new(client, table, shards)
}

/// Another store on the same table (as another Lambda instance would be).
fn twin(store: &DynamoDbStore) -> DynamoDbStore {
    DynamoDbStore::new(
        dynamodb_client(store).clone(),
        store.table(),
        timer_shards(store),
    )
}

fn write<'a>(
    state: &'a [u8],
    outbox: &'a [BusEvent],
    message_ids: &'a [&'a str],
    now: Millis,
) -> UserWrite<'a> {
    UserWrite {
        state,
        outbox,
        message_ids,
        now,
        counts: nudge_core::insights::Deltas::none(),
    }
}

/// Every item stored under a user, as (sk, item), read past any filter.
async fn raw_items(
    store: &DynamoDbStore,
    user_id: &str,
) -> Vec<(String, std::collections::HashMap<String, AttributeValue>)> {
    let out = dynamodb_client(store)
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(user_pk(user_id)))
        .send()
        .await
        .expect("query");
    out.items
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            let sk = item["sk"].as_s().expect("sk").clone();
            (sk, item)
        })
        .collect()
}

#[tokio::test]
async fn a_store_whose_client_is_built_on_first_use_reads_and_writes_the_same_table() {
    let store = store(4).await;
    let lazy = DynamoDbStore::on_first_use(&support::sdk_config(), store.table(), 4);
    let now = wall_clock_ms();
    assert_eq!(lazy.load("u1", &[]).await.unwrap(), None);
    assert_eq!(
        lazy.save("u1", None, write(b"s1", &[], &["m1"], now))
            .await
            .unwrap(),
        1
    );
    let loaded = store.load("u1", &[]).await.unwrap().unwrap();
    assert_eq!((loaded.state.as_slice(), loaded.version), (&b"s1"[..], 1));
    store
        .save("u1", Some(1), write(b"s2", &[], &[], now))
        .await
        .unwrap();
    let stale = lazy.save("u1", Some(1), write(b"s3", &[], &[], now)).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
}

/// The applied-messageId list lives in the state item and sheds expired entries on every
/// write (the contract's `applied_message_ids_expire_after_the_retention` checks what
/// `load` and `save` answer).
#[tokio::test]
async fn expired_applied_message_ids_are_pruned_from_the_state_item() {
    let store = store(4).await;
    let now = wall_clock_ms();
    let long_ago = now - MESSAGE_ID_RETENTION_MS - 60_000;
    store
        .save("u1", None, write(b"s1", &[], &["old"], long_ago))
        .await
        .unwrap();
    store
        .save("u1", Some(1), write(b"s2", &[], &["recent"], now - 1000))
        .await
        .unwrap();
    store
        .save("u1", Some(2), write(b"s3", &[], &["old"], now))
        .await
        .unwrap();
    let raw = raw_items(&store, "u1").await;
    let ids = raw[0].1["ids"].as_b().expect("ids").as_ref().len();
    assert_eq!(ids, 2 * 16, "entries: recent, old (again)");
}

/// Tombstones (cancelled, claimed timers) leave the sparse due index, so sweepers never
/// read them.
#[tokio::test]
async fn timer_tombstones_are_not_in_the_due_index() {
    let store = store(4).await;
    let now = wall_clock_ms();
    store.set(&delay("u1", now + 3_600_000, 2)).await.unwrap();
    store.cancel(&cancel("u1", 3)).await.unwrap();
    store.set(&delay("u2", now - 10, 1)).await.unwrap();
    assert_eq!(store.claim_due(now, 10).await.unwrap().len(), 1);

    for user in ["u1", "u2"] {
        let raw = raw_items(&store, user).await;
        assert_eq!(raw.len(), 1, "{raw:?}");
        assert!(!raw[0].1.contains_key("due"), "{raw:?}");
        assert!(!raw[0].1.contains_key("gsi1pk"), "{raw:?}");
    }
}

/// evaluate's batched path reads its users in BatchGetItem calls of up to 100 keys, not a
/// GetItem each, and the saves that follow need no read of the applied messageIds.
#[tokio::test]
async fn load_many_reads_up_to_100_users_a_call_and_saves_need_no_read() {
    let (_, table) = support::table().await;
    let (client, calls) = support::calls::counted_client();
    let store = DynamoDbStore::new(client, table, 4);
    let now = wall_clock_ms();
    let users: Vec<String> = (0..230).map(|i| format!("user-{i}")).collect();
    for user in &users[..150] {
        store
            .save(user, None, write(b"s", &[], &["m1"], now))
            .await
            .unwrap();
    }
    calls.take();

    let asked: Vec<LoadRequest<'_>> = users
        .iter()
        .map(|user| LoadRequest {
            user_id: user,
            message_ids: &["m1", "m2"],
        })
        .collect();
    let loaded = store.load_many(&asked).await.unwrap();
    assert_eq!(loaded.iter().flatten().count(), 150);
    assert_eq!(calls.take(), [("BatchGetItem".to_string(), 3)].into());

    let saves: Vec<SaveRequest<'_>> = users
        .iter()
        .zip(&loaded)
        .map(|(user, stored)| SaveRequest {
            user_id: user,
            expected: stored.as_ref().map(|s| s.version),
            write: write(b"s2", &[], &["m2"], now),
        })
        .collect();
    let saved = store.save_many(&saves).await.unwrap();
    assert!(saved.iter().all(Result::is_ok), "{saved:?}");
    assert_eq!(calls.take(), [("PutItem".to_string(), 230)].into());

    // One user alone: a GetItem, which costs what a batch of one does.
    store
        .load_many(&[LoadRequest {
            user_id: "user-0",
            message_ids: &[],
        }])
        .await
        .unwrap();
    assert_eq!(calls.take(), [("GetItem".to_string(), 1)].into());
}

/// Erasing a user leaves no item under its partition key, the report counters' applied
/// markers included.
#[tokio::test]
async fn erase_user_leaves_no_item_of_the_user() {
    let store = store(4).await;
    let now = wall_clock_ms();
    let hour = now / 3_600_000;
    let mut counts = Deltas::default();
    let sent = Key::new(Scope::Trigger, "t", "default", "email", Field::Sent);
    counts.counts.insert((sent.clone(), hour), 2);
    counts.users.push((hour, observe("alice")));
    let mut w = write(b"state", &[], &["m1"], now);
    w.counts = &counts;
    let v = store.save("alice", None, w).await.unwrap();
    store.apply_counts("alice", v, &counts).await.unwrap();
    store.set(&delay("alice", now + 60_000, 1)).await.unwrap();
    store.begin(&delivery("alice", 1, now)).await.unwrap();
    store.put(&inbox_item("alice", 2, now)).await.unwrap();
    let kinds: HashSet<String> = raw_items(&store, "alice")
        .await
        .into_iter()
        .map(|(sk, _)| sk.split('#').next().unwrap_or_default().to_string())
        .collect();
    let expected = ["state", "counted", "timer", "dlv", "inbox"];
    assert_eq!(kinds, expected.into_iter().map(String::from).collect());

    store.erase_user("alice").await.unwrap();

    assert!(raw_items(&store, "alice").await.is_empty());
    let sums = store
        .report_sums(Period::covering(now - 3_600_000, now + 1))
        .await
        .unwrap();
    assert_eq!(sums.counts.get(&sent), Some(&2), "counted is counted");
}

#[tokio::test]
async fn expiry_is_measured_on_the_store_clock() {
    let wall = store(4).await;
    // A run on a virtual clock 200 days back (a replay of old events, a test).
    let then = wall_clock_ms() - 200 * DAY;
    let clock = TestClock::default();
    clock.set(then);
    let on_then = twin(&wall).with_clock(Arc::new(clock));

    let d = delivery("u1", 1, then);
    assert_eq!(on_then.begin(&d).await.unwrap(), None);
    assert_eq!(
        on_then.begin(&d).await.unwrap(),
        Some(d.clone()),
        "begun once"
    );
    assert_eq!(on_then.recent("u1", 10).await.unwrap(), vec![d]);
    on_then
        .save("u2", None, write(b"state", &[], &["m1"], then))
        .await
        .unwrap();
    let loaded = on_then.load("u2", &["m1"]).await.unwrap().unwrap();
    assert_eq!(loaded.applied, vec!["m1".to_string()]);

    // By the wall clock, the entry is past its 90 days and the messageId past its 7.
    assert!(wall.recent("u1", 10).await.unwrap().is_empty());
    let loaded = wall.load("u2", &["m1"]).await.unwrap().unwrap();
    assert!(loaded.applied.is_empty());
}

#[tokio::test]
async fn expired_deliveries_and_inbox_items_count_as_absent_though_stored() {
    let store = store(4).await;
    let now = wall_clock_ms();

    let old = delivery("u1", 1, now - DELIVERY_RETENTION_MS - 2 * DAY);
    store.finish(&old).await.unwrap();
    store.begin(&delivery("u1", 2, now)).await.unwrap();
    let old_item = InboxItem {
        expires_at: now - 1000,
        ..inbox_item("u1", 3, now - INBOX_RETENTION_MS)
    };
    store.put(&old_item).await.unwrap();
    let soon = InboxItem {
        expires_at: now + 1500,
        ..inbox_item("u1", 4, now - 1000)
    };
    store.put(&soon).await.unwrap();
    assert_eq!(raw_items(&store, "u1").await.len(), 4, "all still stored");

    let ids: Vec<u64> = store
        .recent("u1", 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.0)
        .collect();
    assert_eq!(ids, vec![2]);
    let listed: Vec<u64> = store
        .list("u1", now)
        .await
        .unwrap()
        .iter()
        .map(|i| i.id.0)
        .collect();
    assert_eq!(listed, vec![4]);
    assert!(store.list("u1", now + 2000).await.unwrap().is_empty());
    assert!(store
        .mark_read("u1", DecisionId(3), now)
        .await
        .unwrap()
        .is_none());

    // Beginning the expired entry's decision again records it anew.
    let renewed = delivery("u1", 1, now);
    assert_eq!(store.begin(&renewed).await.unwrap(), None);
    assert_eq!(store.recent("u1", 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn malformed_items_are_corrupt_not_panics() {
    let store = store(4).await;
    let put = |sk: &str, attribute: &str, value: AttributeValue| {
        dynamodb_client(&store)
            .put_item()
            .table_name(store.table())
            .item("pk", s(user_pk("u1")))
            .item("sk", s(sk))
            .item("version", n(1))
            .item("ttl", n(4_102_444_800i64))
            .item(attribute, value)
            .send()
    };
    put("state", "state", s("not bytes")).await.unwrap();
    put("timer", "due", s("soon")).await.unwrap();
    put(&format!("dlv#{}", DecisionId(7)), "status", s("exploded"))
        .await
        .unwrap();

    let load = store.load("u1", &[]).await;
    assert!(matches!(load, Err(StoreError::Corrupt(_))), "{load:?}");
    let users = [
        LoadRequest {
            user_id: "u1",
            message_ids: &[],
        },
        LoadRequest {
            user_id: "u2",
            message_ids: &[],
        },
    ];
    let batched = store.load_many(&users).await;
    assert!(
        matches!(batched, Err(StoreError::Corrupt(_))),
        "{batched:?}"
    );
    let pending = store.pending("u1").await;
    assert!(
        matches!(pending, Err(StoreError::Corrupt(_))),
        "{pending:?}"
    );
    let recent = store.recent("u1", 10).await;
    assert!(matches!(recent, Err(StoreError::Corrupt(_))), "{recent:?}");
}
