//! Crash safety: `kill -9` in the middle of a load with pending timers loses nothing accepted,
//! applies each event once, and fires each timer once after the restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{eventually, Server};

const USERS: usize = 150;
const PINGS: usize = 3;

/// The batch of one user: pings (each makes one inbox item) and a 3 s reminder.
fn batch_of(u: usize) -> Value {
    let user = format!("r{u}");
    let mut batch: Vec<Value> = (0..PINGS)
        .map(|i| json!({"type": "track", "userId": user, "event": "Ping", "messageId": format!("{user}-p{i}")}))
        .collect();
    batch.push(json!({"type": "track", "userId": user, "event": "Remind Me", "messageId": format!("{user}-remind")}));
    json!({ "batch": batch })
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_load_loses_nothing_and_fires_each_timer_once() {
    let mut s = Server::start("restart", "http://127.0.0.1:9/none", &[]);
    // Four senders post one batch per user; the server is killed once a third is confirmed.
    let confirmed = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for lane in 0..4 {
        let http = s.http.clone();
        let url = s.url("/v1/batch");
        let confirmed = confirmed.clone();
        senders.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for u in (lane..USERS).step_by(4) {
                let r = http
                    .post(&url)
                    .basic_auth(super::WRITE_KEY, Some(""))
                    .json(&batch_of(u))
                    .send()
                    .await;
                if matches!(r, Ok(r) if r.status().is_success()) {
                    confirmed.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.push(u);
                }
            }
            failed
        }));
    }
    while confirmed.load(Ordering::SeqCst) < USERS / 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.kill9();
    let mut unconfirmed = Vec::new();
    for h in senders {
        unconfirmed.extend(h.await.unwrap());
    }
    // The kill landed mid-load, with timers pending.
    assert!(
        !unconfirmed.is_empty() && unconfirmed.len() < USERS,
        "{unconfirmed:?}"
    );

    s.restart();
    // Like an SDK, resend what was not confirmed (some of it may have been accepted already),
    // and resend one confirmed batch too: duplicates must change nothing.
    let mut resend = unconfirmed.clone();
    resend.push(USERS - 1);
    if resend.len() > 1 {
        resend.push(0);
    }
    for u in resend {
        let (status, body) = s.track("/v1/batch", &batch_of(u)).await;
        assert_eq!(status, 200, "{body}");
    }

    // Every user ends with exactly one item per ping and one reminder.
    for u in 0..USERS {
        let user = format!("r{u}");
        let items = eventually(Duration::from_secs(30), || async {
            let (_, v) = s.inbox(&user, &user).await;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            (items.len() > PINGS).then_some(items)
        })
        .await
        .unwrap_or_else(|| panic!("user {user} is missing messages"));
        // Give a duplicate the chance to show up.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, v) = s.inbox(&user, &user).await;
        let items = v["items"].as_array().cloned().unwrap_or(items);
        let reminders = items.iter().filter(|i| i["title"] == "Reminder").count();
        let tips = items.iter().filter(|i| i["title"] == "Tip").count();
        assert_eq!((tips, reminders), (PINGS, 1), "user {user}: {items:?}");
    }
    // Nothing left pending.
    for u in 0..USERS {
        let (_, t) = s.admin(&format!("/v1/admin/users/r{u}/timers")).await;
        assert_eq!(t["timer"], Value::Null, "r{u}");
    }
}
