//! `kill -9` in a loop under load: 20 kills, some at random moments, the others by the crash
//! points while a journal record is half written, while SQLite commits a group of writes and
//! while a checkpoint copies the WAL. Clients resend what was not acknowledged, as SDKs do.
//! Every acknowledged event must yield its decisions exactly once: each user ends with one
//! welcome email, one tip per ping and one reminder, no more, no fewer.
//!
//! `NUDGE_KILL_SEED=<n>` replays a run; `-- --nocapture` prints its figures.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{eventually, Server};
use crate::{shuffle, Rng};

const LANES: usize = 4;
const PINGS: usize = 3;
/// Kills, by how they come.
const RANDOM_KILLS: usize = 8;
const POINT_KILLS: [(&str, usize); 3] = [
    ("journal-append", 4),
    ("group-commit", 4),
    ("wal-checkpoint", 4),
];

/// Tasks checking the users at the end.
const CHECKERS: usize = 8;

/// One user's events: an address, pings (an inbox item each), a mail, a 3 s reminder.
fn batch_of(u: usize) -> Value {
    let user = format!("k{u}");
    let mut batch = vec![json!({"type": "identify", "userId": user,
        "traits": {"email": format!("{user}@example.com")}, "messageId": format!("{user}-id")})];
    batch.extend((0..PINGS).map(|i| {
        json!({"type": "track", "userId": user, "event": "Ping", "messageId": format!("{user}-p{i}")})
    }));
    batch.push(json!({"type": "track", "userId": user, "event": "Mail Again", "messageId": format!("{user}-mail")}));
    batch.push(json!({"type": "track", "userId": user, "event": "Remind Me", "messageId": format!("{user}-remind")}));
    json!({ "batch": batch })
}

/// What the clients saw.
#[derive(Default)]
struct Load {
    acknowledged: AtomicUsize,
    failed_tries: AtomicUsize,
    stop: AtomicBool,
}

/// A client: sends one user's batch after another until told to stop, resending each until it
/// is acknowledged (connection refused or reset, 5xx, 429), with a growing pause as SDKs do.
async fn client(lane: usize, url: String, http: reqwest::Client, load: Arc<Load>) -> Vec<usize> {
    let mut sent = Vec::new();
    let mut u = lane;
    while !load.stop.load(Ordering::SeqCst) {
        let body = batch_of(u);
        let mut pause = Duration::from_millis(20);
        loop {
            let r = http
                .post(&url)
                .basic_auth(super::WRITE_KEY, Some(""))
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {}
                Ok(r) => panic!("refused for good: {} {:?}", r.status(), r.text().await),
                Err(_) => {}
            }
            load.failed_tries.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
        load.acknowledged.fetch_add(1, Ordering::SeqCst);
        sent.push(u);
        u += LANES;
        // A steady load rather than a flood: the point is the kills, not the throughput.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    sent
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_kills_under_load_lose_nothing_acknowledged_and_duplicate_nothing() {
    let seed = std::env::var("NUDGE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("kill loop: NUDGE_KILL_SEED={seed}");
    let mut dice = Rng(seed);
    // The kills in a random order: None is a kill at a random moment from outside.
    let mut plan: Vec<Option<&str>> = vec![None; RANDOM_KILLS];
    for (point, n) in POINT_KILLS {
        plan.extend(std::iter::repeat_n(Some(point), n));
    }
    shuffle(&mut plan, &mut dice);
    assert_eq!(plan.len(), 20);

    let mut s = Server::start("kill-loop", "http://127.0.0.1:9/none", &[]);
    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..LANES)
        .map(|lane| {
            tokio::spawn(client(
                lane,
                s.url("/v1/batch"),
                s.http.clone(),
                load.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    let mut landed: HashMap<&str, usize> = HashMap::new();
    for kill in &plan {
        match kill {
            None => {
                // Load first, then a kill at a moment nothing in the server chose.
                tokio::time::sleep(Duration::from_millis(100 + dice.below(500))).await;
                s.kill9();
                *landed.entry("random").or_default() += 1;
                s.restart();
            }
            Some(point) => {
                // Restarted with the point armed a few hits ahead; the process kills itself.
                let hits = match *point {
                    "wal-checkpoint" => dice.below(3),
                    _ => 5 + dice.below(60),
                };
                let armed = format!("{point}:{hits}");
                let listening = s.restart_with(&[("NUDGE_CRASH_POINT", &armed)]);
                if listening {
                    let ended = s.ended_within(Duration::from_secs(60));
                    let status = ended.unwrap_or_else(|| panic!("{armed} never fired"));
                    assert_eq!(status.signal(), Some(9), "{armed}: ended by {status:?}");
                }
                *landed.entry(point).or_default() += 1;
                s.restart();
            }
        }
    }
    let killing = started.elapsed();
    // The last server stays up: the clients finish what they were sending.
    load.stop.store(true, Ordering::SeqCst);
    let mut users = Vec::new();
    for c in clients {
        users.extend(c.await.unwrap());
    }
    users.sort_unstable();
    let acknowledged = load.acknowledged.load(Ordering::SeqCst);
    assert_eq!(users.len(), acknowledged);
    assert!(acknowledged > 200, "too little load: {acknowledged} users");

    // Every acknowledged user ends with exactly its messages, decided once each; checked
    // by a few tasks at once, so a slow machine (more users sent while it restarts) is not
    // a slower test by as much.
    let s = Arc::new(s);
    let mut checks = tokio::task::JoinSet::new();
    for part in users.chunks(users.len().div_ceil(CHECKERS)) {
        let (s, part) = (s.clone(), part.to_vec());
        checks.spawn(async move {
            let mut decided = 0;
            for u in part {
                decided += check_user(&s, u).await;
            }
            decided
        });
    }
    let mut decisions = 0;
    while let Some(decided) = checks.join_next().await {
        decisions += decided.unwrap();
    }
    // One mail a user in the outbox, to that user.
    let mails = eventually(Duration::from_secs(30), || async {
        let m = s.outbox();
        (m.len() >= users.len()).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("{} mails for {} users", s.outbox().len(), users.len()));
    assert_eq!(mails.len(), users.len());
    let mut to: Vec<String> = mails
        .iter()
        .map(|p| {
            let eml = std::fs::read_to_string(p).unwrap();
            let to = eml.lines().find(|l| l.starts_with("To:"));
            to.unwrap_or_else(|| panic!("no To: in {eml}")).to_string()
        })
        .collect();
    to.sort_unstable();
    to.dedup();
    assert_eq!(to.len(), users.len(), "a user got two mails");

    eprintln!(
        "kill loop: {} kills ({landed:?}) in {:.1} s; {} events acknowledged ({acknowledged} \
         batches, {} tries refused or cut); {decisions} decisions; 0 lost, 0 duplicated",
        plan.len(),
        killing.as_secs_f64(),
        acknowledged * (PINGS + 3),
        load.failed_tries.load(Ordering::SeqCst),
    );
}

/// Checks that user `k{u}` has exactly its decisions (one welcome, one tip per ping, one
/// reminder) and inbox items; returns how many decisions it has.
async fn check_user(s: &Server, u: usize) -> usize {
    let user = format!("k{u}");
    let list = s
        .decisions_until(&user, Duration::from_secs(60), |d| d.len() >= PINGS + 2)
        .await;
    // Give a duplicate the chance to show up.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let (_, v) = s.admin(&format!("/v1/admin/users/{user}/decisions")).await;
    let list = v["decisions"].as_array().cloned().unwrap_or(list);
    let messages = |m: &str| list.iter().filter(|d| d["message"] == m).count();
    assert_eq!(
        (messages("tip"), messages("reminder"), messages("welcome")),
        (PINGS, 1, 1),
        "user {user}: {list:?}"
    );
    assert_eq!(list.len(), PINGS + 2, "user {user}: {list:?}");
    let items = eventually(Duration::from_secs(30), || async {
        let (_, v) = s.inbox(&user, &user).await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        (items.len() > PINGS).then_some(items)
    })
    .await
    .unwrap_or_else(|| panic!("user {user} is missing inbox items"));
    assert_eq!(items.len(), PINGS + 1, "user {user}: {items:?}");
    list.len()
}
