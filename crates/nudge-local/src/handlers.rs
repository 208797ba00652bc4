//! The handlers of one `nudge serve` node, wired over the SQLite store, the local bus and the
//! system clock: what the HTTP server, the bus workers and the timer loop call.

use std::sync::Arc;

use nudge_http::HttpWebhookTransport;
use nudge_service::api::Api;
use nudge_service::deliver::Deliver;
use nudge_service::evaluate::Evaluate;
use nudge_service::ports::SystemClock;
use nudge_service::schedule::Schedule;

use crate::bus::LocalBus;
use crate::evaluate_store::EvaluateStore;
use crate::mail::LocalMailer;
use crate::prometheus::PromMetrics;
use crate::store::SqliteStore;

pub type Store = SqliteStore;
pub type Clk = SystemClock;
/// The handlers of one node.
pub struct Handlers {
    pub api: Api<Store, LocalBus, Clk>,
    pub evaluate: Evaluate<EvaluateStore, LocalBus, Clk>,
    pub schedule: Schedule<Store, LocalBus, Clk>,
    pub deliver: Deliver<Store, LocalMailer, HttpWebhookTransport, LocalBus, Clk>,
    pub metrics: Arc<PromMetrics>,
    pub bus: LocalBus,
    pub store: Store,
    /// The write key the demo page sends its events with.
    pub demo_write_key: String,
}
