#![no_main]
//! HTTP intake: any request to the HTTP API of `nudge serve` and the ingest function, answered
//! by the real API (`Api::handle`: routing, CORS, write keys, gzip bodies, size limits, single
//! and batch tracking, inbox, click and unsubscribe links, admin) over the real SQLite store
//! and the local bus's journal, in a scratch folder. The input is a request as it comes over
//! the wire (`nudge_fuzz::request`). Every answer must be a client error or success (never a
//! server error: the store does not fail here), and a JSON answer must be JSON.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nudge_fuzz::clock::FixedClock;
use nudge_fuzz::{request, rule_sets, scratch};
use nudge_local::bus::{Delivery, LocalBus};
use nudge_local::journal::{Appended, Journal, JournalReader, Limits};
use nudge_local::store::SqliteStore;
use nudge_service::api::{Api, ApiKeys};
use nudge_service::ingest::WriteKeys;
use nudge_service::metrics::NoMetrics;
use tokio::sync::mpsc::UnboundedReceiver;

/// Accepted events the journal holds before the target reads them off (as evaluate would).
const DRAIN_AT: u64 = 4096;

struct Node {
    api: Api<SqliteStore, LocalBus, FixedClock>,
    journal: Journal,
    reader: Mutex<JournalReader>,
    /// Queued bus events (the API publishes none; kept so that the bus has its receiver).
    _queued: Mutex<UnboundedReceiver<Delivery>>,
    runtime: tokio::runtime::Runtime,
}

/// One node per process, with the secrets of the sample events (`events/README.md`), so that
/// their requests authenticate.
fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let dir = scratch::dir();
        let store = SqliteStore::open(&dir.join("nudge.db")).expect("the SQLite store");
        let limits = Limits {
            max_backlog: u64::MAX,
            max_in_flight: u64::MAX,
            segment_bytes: 1 << 20,
            full_wait: Duration::from_secs(1),
        };
        let journal = Journal::open(&dir.join("journal"), limits).expect("the journal");
        let (bus, queued) = LocalBus::new(store.clone(), journal.clone());
        let api = Api {
            rules: Arc::new(rule_sets::saas().clone()),
            store,
            bus,
            clock: FixedClock,
            metrics: Arc::new(NoMetrics),
            keys: ApiKeys {
                write: WriteKeys::new(["wk_example".to_string()]),
                admin: Some("ak_example".to_string()),
                inbox_secret: b"inbox-secret-example".to_vec(),
                signing_secret: b"signing-secret-example".to_vec(),
            },
        };
        Node {
            reader: Mutex::new(journal.reader()),
            journal,
            api,
            _queued: Mutex::new(queued),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = request::parse(data) else {
        return;
    };
    let node = node();
    let reply = node.runtime.block_on(node.api.handle(req));
    let status = reply.status();
    // 501: the inbox stream, which only `nudge serve`'s own route answers.
    assert!(
        !status.is_server_error() || status == http::StatusCode::NOT_IMPLEMENTED,
        "answered {status}: {:?}",
        String::from_utf8_lossy(reply.body())
    );
    let json = reply
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json {
        let body = serde_json::from_slice::<serde_json::Value>(reply.body());
        assert!(body.is_ok(), "a JSON answer is not JSON: {body:?}");
    }
    if node.journal.backlog() >= DRAIN_AT {
        drain(node);
    }
});

/// Reads the accepted events off the journal and lets them go, as evaluate does (so the
/// journal's files stay small however long the run).
fn drain(node: &Node) {
    let mut reader = node.reader.lock().unwrap_or_else(|e| e.into_inner());
    while let Appended::Batch(records, _) = reader.read_appended(DRAIN_AT as usize) {
        let seqs: Vec<u64> = records.iter().map(|(seq, _)| *seq).collect();
        node.journal.complete(&seqs);
    }
    node.journal.maintain().expect("journal maintenance");
}
