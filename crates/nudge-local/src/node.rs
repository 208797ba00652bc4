//! One `nudge serve` process: the store, the four handlers wired to the in-process bus, the
//! timer loop standing in for the sweeper, and the HTTP server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nudge_core::rules::CompiledRules;
use nudge_service::api::{Api, ApiKeys};
use nudge_service::deliver::{Deliver, DeliverConfig};
use nudge_service::evaluate::Evaluate;
use nudge_service::ingest::WriteKeys;
use nudge_service::metrics::Metrics;

use crate::prometheus::PromMetrics;
use nudge_http::HttpWebhookTransport;
use nudge_service::ports::{Clock, SystemClock};
use nudge_service::schedule::Schedule;
use nudge_service::webhook::RetryPolicy;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::bus::LocalBus;
use crate::evaluate_store::EvaluateStore;
use crate::handlers::Handlers;
use crate::journal::{Damage, Journal, Limits};
use crate::mail::LocalMailer;
use crate::secrets::Secrets;
use crate::store::SqliteStore;
use crate::workers::{start_workers, timer_loop};

/// How `nudge serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub rules_dir: PathBuf,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Write keys; a generated development key (kept in the data folder) when empty.
    pub write_keys: Vec<String>,
    pub admin_key: Option<String>,
    pub inbox_secret: Option<String>,
    pub signing_secret: Option<String>,
    /// Base URL of this server as mail recipients reach it (unsubscribe links).
    pub public_url: Option<String>,
    /// `From` address of emails.
    pub sender: String,
    /// Send mail over SMTP instead of writing `<data>/outbox/*.eml`.
    pub smtp_url: Option<String>,
    /// Evaluate workers (users are spread over them).
    pub evaluate_workers: usize,
    /// Accepted events not yet evaluated, at most: beyond it ingest waits for evaluate, then
    /// refuses (429).
    pub max_backlog: u64,
    /// Keep the intact records of damaged journal segments instead of refusing to start.
    pub salvage_journal: bool,
    /// Serve the demo page at `/demo`.
    pub demo: bool,
    /// Webhook retry policy.
    pub webhook: RetryPolicy,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Rules(#[from] nudge_service::rules_dir::LoadError),
    #[error("data folder {path}: {source}")]
    Data {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] nudge_service::ports::StoreError),
    /// The SQLite file cannot be opened or is damaged.
    #[error("database {path}: {source}. If it is damaged, restore it from a backup (events not yet evaluated stay in the journal), or keep what is readable with `sqlite3 {path} .recover`")]
    Database {
        path: PathBuf,
        #[source]
        source: nudge_service::ports::StoreError,
    },
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailConfigError),
    #[error(transparent)]
    Webhooks(#[from] nudge_http::WebhookClientError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// Starts everything and serves until ctrl-c / SIGTERM.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let rules = Arc::new(nudge_service::rules_dir::load(&config.rules_dir)?);
    let data = |source| ServeError::Data {
        path: config.data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(data)?;
    let secrets = Secrets::load_or_create(&config.data_dir.join("secrets.json")).map_err(data)?;
    let db = config.data_dir.join("nudge.db");
    let store = SqliteStore::open(&db).map_err(|source| ServeError::Database {
        path: db.clone(),
        source,
    })?;
    let journal = Journal::open_with(
        &config.data_dir.join("journal"),
        Limits::with_backlog(config.max_backlog),
        if config.salvage_journal {
            Damage::Salvage
        } else {
            Damage::Refuse
        },
    )?;
    let mailer = match &config.smtp_url {
        Some(url) => LocalMailer::smtp(url)?,
        None => LocalMailer::outbox(&config.data_dir.join("outbox")).map_err(data)?,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;

    let write_keys = if config.write_keys.is_empty() {
        vec![secrets.write_key.clone()]
    } else {
        config.write_keys.clone()
    };
    let admin_key = config
        .admin_key
        .clone()
        .unwrap_or_else(|| secrets.admin_key.clone());
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let signing_secret = config
        .signing_secret
        .clone()
        .unwrap_or_else(|| secrets.signing_secret.clone())
        .into_bytes();
    let inbox_secret = config
        .inbox_secret
        .clone()
        .unwrap_or_else(|| secrets.inbox_secret.clone())
        .into_bytes();

    let (bus, rx) = LocalBus::new(store.clone(), journal.clone());
    let metrics = Arc::new(PromMetrics::new());
    let dyn_metrics: Arc<dyn Metrics> = metrics.clone();
    let handlers = Arc::new(Handlers {
        api: Api {
            rules: rules.clone(),
            store: store.clone(),
            bus: bus.clone(),
            clock: SystemClock,
            metrics: dyn_metrics.clone(),
            keys: ApiKeys {
                write: WriteKeys::new(write_keys.clone()),
                admin: Some(admin_key.clone()),
                inbox_secret,
                signing_secret: signing_secret.clone(),
            },
        },
        evaluate: Evaluate {
            rules: rules.clone(),
            store: EvaluateStore {
                store: store.clone(),
                bus: bus.clone(),
            },
            bus: bus.clone(),
            clock: SystemClock,
            metrics: dyn_metrics.clone(),
        },
        schedule: Schedule {
            timers: store.clone(),
            bus: bus.clone(),
            clock: SystemClock,
            metrics: dyn_metrics.clone(),
        },
        deliver: Deliver {
            rules: rules.clone(),
            store: store.clone(),
            mailer,
            webhooks: HttpWebhookTransport::new()?,
            bus: bus.clone(),
            clock: SystemClock,
            metrics: dyn_metrics.clone(),
            config: DeliverConfig {
                sender: config.sender.clone(),
                public_url: public_url.clone(),
                signing_secret,
                webhook: config.webhook.clone(),
                mail_attempts: 4,
                mail_backoff: Duration::from_millis(500),
                // Two runs of one send in this process (an event published again by a retry)
                // must not both send; what a dead earlier run left is taken at once. Shorter
                // than the job runner's patience with a contended send (12 tries, ~26 s), so
                // a send whose own earlier try failed (a full disk) is taken over, not set
                // aside until the next start.
                lease: Duration::from_secs(20),
                abandoned_before: SystemClock.now(),
            },
        },
        metrics: metrics.clone(),
        bus: bus.clone(),
        store: store.clone(),
        demo_write_key: write_keys.first().cloned().unwrap_or_default(),
    });

    // Everything behind the bus runs on a runtime of its own whose threads yield to the HTTP
    // API's when both want the CPU: an answer to a client waits on ingest alone, while
    // evaluating is asynchronous anyway (as on AWS) and catches up from the journal.
    let background = crate::priority::background_runtime().map_err(ServeError::Serve)?;
    let timers_changed = Arc::new(Notify::new());
    {
        let _on_background = background.enter();
        start_workers(
            &handlers,
            rx,
            &journal,
            config.evaluate_workers,
            timers_changed.clone(),
        );
        tokio::spawn(timer_loop(handlers.clone(), timers_changed));
        let bus = bus.clone();
        tokio::spawn(async move {
            match bus.redeliver_unacked().await {
                Ok(0) => {}
                Ok(n) => info!(
                    events = n,
                    "redelivered events a previous run left unhandled"
                ),
                Err(e) => {
                    warn!(error = %e, "could not redeliver the queue; it is read again at the next start")
                }
            }
        });
    }

    print_banner(&config, &rules, addr, &write_keys, &admin_key, &public_url);
    let served = crate::server::run(listener, handlers, config.demo).await;
    background.shutdown_background();
    // Save how far evaluate got, so the next start reads less again.
    if let Err(e) = journal.maintain() {
        warn!(error = %e, "could not save the journal's progress");
    }
    served.map_err(ServeError::Serve)
}

fn print_banner(
    config: &ServeConfig,
    rules: &CompiledRules,
    addr: SocketAddr,
    write_keys: &[String],
    admin_key: &str,
    public_url: &str,
) {
    let mail = match &config.smtp_url {
        Some(_) => "SMTP (--smtp-url)".to_string(),
        None => display(&config.data_dir.join("outbox")),
    };
    let key = write_keys.first().map(String::as_str).unwrap_or("");
    eprintln!(
        "nudge serve: rule set `{name}` ({triggers} triggers) from {rules_dir}\n  \
         listening on http://{addr}   (public URL {public_url})\n  \
         data in {data}   emails to {mail}\n  \
         write key:  {key}\n  \
         admin key:  {admin_key}\n  \
         try: curl -u {key}: http://{addr}/v1/track -H 'content-type: application/json' \\\n    \
         -d '{{\"userId\":\"u1\",\"event\":\"Signed Up\",\"traits\":{{\"email\":\"u1@example.com\"}}}}'",
        name = rules.name,
        triggers = rules.triggers.len(),
        rules_dir = display(&config.rules_dir),
        data = display(&config.data_dir),
    );
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
