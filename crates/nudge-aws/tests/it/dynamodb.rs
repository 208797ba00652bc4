//! The DynamoDB store against a real moto server: the port contracts, over HTTP.

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use nudge_core::engine::decision::DecisionId;
use nudge_core::insights::{observe, Deltas, Field, Key, Period, Scope};
use nudge_core::rules::model::Channel;
use nudge_core::time::Millis;
use nudge_service::bus::{BusEvent, DelayCancel, DelayRequest, TimerFired};
use nudge_service::ports::{
    Clock, Delivery, DeliveryStatus, DeliveryStore, InboxItem, InboxStore, ReportStore, StoreError,
    Timer, TimerStore, UserStore, UserWrite, DELIVERY_RETENTION_MS, INBOX_RETENTION_MS,
    MESSAGE_ID_RETENTION_MS,
};

use nudge_aws::dynamodb::DynamoDbStore;
use nudge_aws::test_access::{dynamodb_client, timer_shards, user_pk};

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

fn delay(user_id: &str, due: Millis, version: u64) -> DelayRequest {
    DelayRequest {
        user_id: user_id.into(),
        due,
        version,
    }
}

fn cancel(user_id: &str, version: u64) -> DelayCancel {
    DelayCancel {
        user_id: user_id.into(),
        version,
    }
}

fn delivery(user_id: &str, id: u64, at: Millis) -> Delivery {
    Delivery {
        id: DecisionId(id),
        user_id: user_id.into(),
        trigger: "welcome".into(),
        channel: Channel::Email,
        message: "welcome_email".into(),
        variant: "default".into(),
        experiment: None,
        status: DeliveryStatus::Sending,
        reason: None,
        error: None,
        at,
        updated_at: at,
        attempts: 0,
        subject: Some("Welcome".into()),
    }
}

fn inbox_item(user_id: &str, id: u64, created_at: Millis) -> InboxItem {
    InboxItem {
        id: DecisionId(id),
        user_id: user_id.into(),
        trigger: "tip".into(),
        variant: "short".into(),
        message: "tip_in_app".into(),
        title: Some(format!("Tip {id}")),
        body: "Try the thing".into(),
        url: None,
        created_at,
        read_at: None,
        expires_at: created_at + INBOX_RETENTION_MS,
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
async fn save_is_conditional_on_the_version() {
    let store = store(4).await;
    let now = wall_clock_ms();
    assert_eq!(store.load("u1", &[]).await.unwrap(), None);

    assert_eq!(
        store
            .save("u1", None, write(b"s1", &[], &[], now))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .save("u1", Some(1), write(b"s2", &[], &[], now))
            .await
            .unwrap(),
        2
    );

    // A writer that read version 1 (or nothing) loses, and writes nothing.
    let stale = store
        .save("u1", Some(1), write(b"stale", &[], &["m9"], now))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(ref u)) if u == "u1"),
        "{stale:?}"
    );
    let fresh = store.save("u1", None, write(b"stale", &[], &[], now)).await;
    assert!(matches!(fresh, Err(StoreError::Conflict(_))), "{fresh:?}");
    let ahead = twin(&store)
        .save("u1", Some(7), write(b"stale", &[], &[], now))
        .await;
    assert!(matches!(ahead, Err(StoreError::Conflict(_))), "{ahead:?}");

    let loaded = store.load("u1", &["m9"]).await.unwrap().unwrap();
    assert_eq!(loaded.state, b"s2");
    assert_eq!(loaded.version, 2);
    assert!(
        loaded.applied.is_empty(),
        "the refused write's messageId was not recorded"
    );
    assert!(store.load("u2", &[]).await.unwrap().is_none());
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

#[tokio::test]
async fn a_write_with_an_applied_message_id_conflicts() {
    let store = store(4).await;
    let now = wall_clock_ms();
    store
        .save("u1", None, write(b"s1", &[], &["m1", "m2"], now))
        .await
        .unwrap();

    let loaded = store.load("u1", &["m2", "m3"]).await.unwrap().unwrap();
    assert_eq!(loaded.applied, vec!["m2".to_string()]);

    // Through the list `load` read...
    let dup = store
        .save("u1", Some(1), write(b"s2", &[], &["m3", "m2"], now))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // ...and through a store that did not load it (reads the list again).
    let dup = twin(&store)
        .save("u1", Some(1), write(b"s2", &[], &["m1"], now))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let loaded = store
        .load("u1", &["m1", "m2", "m3"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((loaded.version, loaded.state.as_slice()), (1, &b"s1"[..]));
    assert_eq!(loaded.applied, vec!["m1".to_string(), "m2".to_string()]);

    // New ids merge into the list.
    assert_eq!(
        store
            .save("u1", Some(1), write(b"s2", &[], &["m3"], now))
            .await
            .unwrap(),
        2
    );
    let loaded = twin(&store)
        .load("u1", &["m1", "m2", "m3", "m4"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.applied, vec!["m1", "m2", "m3"]);
}

#[tokio::test]
async fn applied_message_ids_expire_after_the_retention() {
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

    let loaded = store.load("u1", &["old", "recent"]).await.unwrap().unwrap();
    assert_eq!(loaded.applied, vec!["recent".to_string()]);
    // A retry after the retention counts again, and the expired entry is pruned.
    store
        .save("u1", Some(2), write(b"s3", &[], &["old"], now))
        .await
        .unwrap();
    let raw = raw_items(&store, "u1").await;
    let ids = raw[0].1["ids"].as_b().expect("ids").as_ref().len();
    assert_eq!(ids, 2 * 16, "entries: recent, old (again)");
}

#[tokio::test]
async fn clear_outbox_only_clears_the_version_it_was_given() {
    let store = store(4).await;
    let now = wall_clock_ms();
    let first = [BusEvent::DelayRequested(delay("u1", now + 1000, 1))];
    let second = [BusEvent::DelayCancelled(cancel("u1", 2))];
    store
        .save("u1", None, write(b"s1", &first, &[], now))
        .await
        .unwrap();
    assert_eq!(store.load("u1", &[]).await.unwrap().unwrap().outbox, first);
    store
        .save("u1", Some(1), write(b"s2", &second, &[], now))
        .await
        .unwrap();

    // Version 1 was published late: version 2's outbox stays.
    store.clear_outbox("u1", 1).await.unwrap();
    assert_eq!(store.load("u1", &[]).await.unwrap().unwrap().outbox, second);

    store.clear_outbox("u1", 2).await.unwrap();
    let loaded = store.load("u1", &[]).await.unwrap().unwrap();
    assert!(loaded.outbox.is_empty());
    assert_eq!((loaded.version, loaded.state.as_slice()), (2, &b"s2"[..]));

    // Nobody stored: nothing to clear, nothing created.
    store.clear_outbox("nobody", 1).await.unwrap();
    assert!(raw_items(&store, "nobody").await.is_empty());
}

#[tokio::test]
async fn timers_apply_only_newer_versions() {
    let store = store(4).await;
    let t = wall_clock_ms() + 3_600_000;
    let timer = |due, version| {
        Some(Timer {
            user_id: "u1".into(),
            due,
            version,
        })
    };

    store.set(&delay("u1", t + 2, 2)).await.unwrap();
    assert_eq!(store.pending("u1").await.unwrap(), timer(t + 2, 2));
    store.set(&delay("u1", t + 1, 1)).await.unwrap();
    store.set(&delay("u1", t + 3, 2)).await.unwrap();
    assert_eq!(
        store.pending("u1").await.unwrap(),
        timer(t + 2, 2),
        "older/equal ignored"
    );

    store.cancel(&cancel("u1", 1)).await.unwrap();
    assert_eq!(
        store.pending("u1").await.unwrap(),
        timer(t + 2, 2),
        "older cancel ignored"
    );
    store.cancel(&cancel("u1", 3)).await.unwrap();
    assert_eq!(store.pending("u1").await.unwrap(), None);
    store.cancel(&cancel("u1", 3)).await.unwrap();

    // The cancel remembers its version: late requests do not bring the timer back.
    store.set(&delay("u1", t + 2, 2)).await.unwrap();
    store.set(&delay("u1", t + 3, 3)).await.unwrap();
    store.restore(&delay("u1", t + 2, 2)).await.unwrap();
    assert_eq!(store.pending("u1").await.unwrap(), None);
    let raw = raw_items(&store, "u1").await;
    assert!(
        !raw[0].1.contains_key("gsi1pk"),
        "a tombstone is not in the due index"
    );

    store.set(&delay("u1", t + 4, 4)).await.unwrap();
    assert_eq!(store.pending("u1").await.unwrap(), timer(t + 4, 4));
    assert_eq!(store.pending("u2").await.unwrap(), None);
}

#[tokio::test]
async fn claimed_timers_are_gone_until_restored() {
    let store = store(4).await;
    let now = wall_clock_ms();
    store.set(&delay("u1", now - 10, 5)).await.unwrap();
    store.set(&delay("u2", now + 3_600_000, 1)).await.unwrap();

    let fired = store.claim_due(now, 10).await.unwrap();
    assert_eq!(
        fired,
        vec![TimerFired {
            user_id: "u1".into(),
            due: now - 10,
            version: 5
        }]
    );
    assert_eq!(store.pending("u1").await.unwrap(), None);
    assert!(store.claim_due(now, 10).await.unwrap().is_empty());

    // An older request arriving after the claim does not re-arm the timer...
    store.set(&delay("u1", now - 20, 4)).await.unwrap();
    assert_eq!(store.pending("u1").await.unwrap(), None);
    // ...but restoring the claimed version does, and it can be claimed again.
    store.restore(&delay("u1", now - 10, 5)).await.unwrap();
    assert!(store.pending("u1").await.unwrap().is_some());
    assert_eq!(store.claim_due(now, 10).await.unwrap().len(), 1);
    assert!(store.pending("u2").await.unwrap().is_some(), "not due yet");
}

#[tokio::test]
async fn claim_due_takes_the_earliest_up_to_the_limit() {
    let store = store(8).await;
    let now = wall_clock_ms();
    for i in 0..12 {
        store
            .set(&delay(&format!("user-{i}"), now - 1000 * (i + 1), 1))
            .await
            .unwrap();
    }
    let fired = store.claim_due(now, 5).await.unwrap();
    let dues: Vec<Millis> = fired.iter().map(|f| f.due).collect();
    assert_eq!(
        dues,
        (8..=12).rev().map(|i| now - 1000 * i).collect::<Vec<_>>()
    );
    assert_eq!(store.claim_due(now, 100).await.unwrap().len(), 7);
    assert!(store.claim_due(now, 0).await.unwrap().is_empty());
}

/// moto applies racing conditional writes to one item non-atomically (both can win), so
/// the sweepers reach it through a proxy passing one request at a time, as DynamoDB
/// applies each write whole; the sweepers' requests still interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sweepers_claim_each_timer_exactly_once() {
    let (_, table) = support::table().await;
    let sweeper = || {
        let client = aws_sdk_dynamodb::Client::new(&support::one_at_a_time_sdk_config());
        Arc::new(DynamoDbStore::new(client, table.clone(), 16))
    };
    let (first, second) = (sweeper(), sweeper());
    let now = wall_clock_ms();
    let mut expected = HashSet::new();
    for i in 0..50u64 {
        let user = format!("user-{i}");
        let due = now - 60_000 + i as Millis * 1000;
        first.set(&delay(&user, due, i + 1)).await.unwrap();
        expected.insert((user, due, i + 1));
    }
    for i in 0..5 {
        first
            .set(&delay(&format!("later-{i}"), now + 60_000, 1))
            .await
            .unwrap();
    }

    let sweep =
        |store: Arc<DynamoDbStore>| tokio::spawn(async move { store.claim_due(now, 1000).await });
    let (a, b) = (sweep(first.clone()), sweep(second.clone()));
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());

    for fired in [&a, &b] {
        assert!(
            fired.windows(2).all(|w| w[0].due <= w[1].due),
            "earliest first"
        );
    }
    let claimed: Vec<(String, Millis, u64)> = a
        .iter()
        .chain(&b)
        .map(|f| (f.user_id.clone(), f.due, f.version))
        .collect();
    assert_eq!(claimed.len(), 50, "claimed: {} + {}", a.len(), b.len());
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), expected);
    assert!(first.claim_due(now, 1000).await.unwrap().is_empty());
    assert!(first.pending("later-0").await.unwrap().is_some());
}

#[tokio::test]
async fn deliveries_begin_once_and_list_newest_first() {
    let store = store(4).await;
    let now = wall_clock_ms();
    let d = delivery("u1", 0xabc, now - 5000);
    assert_eq!(store.begin(&d).await.unwrap(), None);
    let again = Delivery {
        attempts: 9,
        ..d.clone()
    };
    assert_eq!(store.begin(&again).await.unwrap(), Some(d.clone()));

    let done = Delivery {
        status: DeliveryStatus::Sent,
        attempts: 1,
        updated_at: now,
        ..d.clone()
    };
    store.finish(&done).await.unwrap();
    for (id, at) in [(1u64, now - 9000), (2, now - 1000), (3, now - 7000)] {
        store.begin(&delivery("u1", id, at)).await.unwrap();
    }
    store.begin(&delivery("u2", 4, now)).await.unwrap();

    let recent = store.recent("u1", 3).await.unwrap();
    let ids: Vec<u64> = recent.iter().map(|d| d.id.0).collect();
    assert_eq!(ids, vec![2, 0xabc, 3]);
    assert_eq!(recent[1], done);
    assert_eq!(store.recent("u1", 10).await.unwrap().len(), 4);
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
async fn inboxes_are_per_user_and_dismissed_items_stay_gone() {
    let store = store(4).await;
    let now = wall_clock_ms();
    let a1 = inbox_item("alice", 1, now - 2000);
    let a2 = inbox_item("alice", 2, now - 1000);
    let b1 = inbox_item("bob", 3, now - 1500);
    for item in [&a1, &a2, &b1] {
        store.put(item).await.unwrap();
    }
    store.put(&a1).await.unwrap();

    assert_eq!(
        store.list("alice", now).await.unwrap(),
        vec![a2.clone(), a1.clone()]
    );
    assert_eq!(store.list("bob", now).await.unwrap(), vec![b1.clone()]);
    assert!(store.list("carol", now).await.unwrap().is_empty());

    // Nobody reaches another user's item.
    assert!(store
        .mark_read("bob", DecisionId(1), now)
        .await
        .unwrap()
        .is_none());
    assert!(store.dismiss("bob", DecisionId(1)).await.unwrap().is_none());
    assert_eq!(store.list("alice", now).await.unwrap().len(), 2);

    let read = store.mark_read("alice", DecisionId(1), now).await.unwrap();
    assert_eq!(
        read,
        Some(InboxItem {
            read_at: Some(now),
            ..a1.clone()
        }),
        "mark_read returns the item, variant and all"
    );
    let again = store
        .mark_read("alice", DecisionId(1), now + 50)
        .await
        .unwrap();
    assert_eq!(again.and_then(|i| i.read_at), Some(now));
    let listed = store.list("alice", now).await.unwrap();
    assert_eq!(listed[1].read_at, Some(now), "the first read time is kept");

    assert!(store
        .dismiss("alice", DecisionId(2))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .dismiss("alice", DecisionId(2))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .mark_read("alice", DecisionId(2), now)
        .await
        .unwrap()
        .is_none());
    store.put(&a2).await.unwrap();
    let ids: Vec<u64> = store
        .list("alice", now)
        .await
        .unwrap()
        .iter()
        .map(|i| i.id.0)
        .collect();
    assert_eq!(
        ids,
        vec![1],
        "a redelivered put does not bring a dismissed item back"
    );
    assert!(store
        .dismiss("alice", DecisionId(99))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn erase_user_removes_everything_of_that_user_only() {
    let store = store(4).await;
    let now = wall_clock_ms();
    for user in ["alice", "alice2"] {
        store
            .save(user, None, write(b"state", &[], &["m1"], now))
            .await
            .unwrap();
        store.set(&delay(user, now - 1, 1)).await.unwrap();
        for i in 0..30 {
            store
                .begin(&delivery(user, i, now - i as Millis))
                .await
                .unwrap();
        }
        for i in 0..3 {
            store.put(&inbox_item(user, 100 + i, now)).await.unwrap();
        }
    }
    assert_eq!(raw_items(&store, "alice").await.len(), 1 + 1 + 30 + 3);

    store.erase_user("alice").await.unwrap();
    assert!(raw_items(&store, "alice").await.is_empty());
    assert!(store.load("alice", &["m1"]).await.unwrap().is_none());
    assert!(store.pending("alice").await.unwrap().is_none());
    // A new life starts from scratch, without the old applied messageIds.
    store
        .save("alice", None, write(b"new", &[], &["m1"], now))
        .await
        .unwrap();

    assert_eq!(raw_items(&store, "alice2").await.len(), 35);
    let fired = store.claim_due(now, 10).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].user_id, "alice2");
    store.erase_user("nobody").await.unwrap();
}

#[tokio::test]
async fn report_counts_ride_in_the_state_write_and_count_once_however_often_applied() {
    let store = store(4).await;
    let now = wall_clock_ms();
    let hour = now / 3_600_000;
    let mut counts = Deltas::default();
    let sent = Key::new(Scope::Trigger, "t", "default", "email", Field::Sent);
    counts.counts.insert((sent.clone(), hour), 2);
    counts.counts.insert((sent.clone(), hour - 30), 1);
    counts.waiting.insert(("t".into(), "email".into()), 1);
    counts.users.push((hour, observe("alice")));
    let mut w = write(b"state", &[], &["m1"], now);
    w.counts = &counts;
    let v = store.save("alice", None, w).await.unwrap();
    // Kept with the state until applied, as the outbox is.
    let loaded = store.load("alice", &[]).await.unwrap().unwrap();
    assert_eq!(loaded.counts, counts);
    // Applied twice (a crash before forgetting them, a redelivered event): counted once.
    store.apply_counts("alice", v, &counts).await.unwrap();
    store.apply_counts("alice", v, &counts).await.unwrap();
    assert!(store
        .load("alice", &[])
        .await
        .unwrap()
        .unwrap()
        .counts
        .is_empty());
    let sums = store
        .report_sums(Period::covering(now - 2 * DAY, now + 1))
        .await
        .unwrap();
    assert_eq!(sums.counts.get(&sent), Some(&3));
    assert_eq!(sums.waiting.get("t"), Some(&1));
    assert_eq!(sums.users, 1);
    let last_hour = store
        .report_sums(Period::covering(now - 3_600_000, now + 1))
        .await
        .unwrap();
    assert_eq!(last_hour.counts.get(&sent), Some(&2));
    // The markers belong to the user: erasing the user erases them.
    store.erase_user("alice").await.unwrap();
    assert!(raw_items(&store, "alice").await.is_empty());
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
    let pending = store.pending("u1").await;
    assert!(
        matches!(pending, Err(StoreError::Corrupt(_))),
        "{pending:?}"
    );
    let recent = store.recent("u1", 10).await;
    assert!(matches!(recent, Err(StoreError::Corrupt(_))), "{recent:?}");
}
