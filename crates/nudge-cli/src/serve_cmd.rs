//! `nudge serve`: the engine as one local process (see `nudge_local::node`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use nudge_local::node::{serve, ServeConfig, ServeError};
use nudge_service::webhook::RetryPolicy;

/// Flags of `nudge serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The rule set directory (every *.yaml file in it).
    #[arg(long, env = "NUDGE_RULES")]
    pub rules: PathBuf,
    /// Where state, the event queue, generated secrets and the email outbox live.
    #[arg(long, env = "NUDGE_DATA", default_value = "nudge-data")]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "NUDGE_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// A write key SDKs may send with (repeat, or comma-separate in the variable). Without
    /// one, a development key is generated, kept in the data folder and printed at start.
    #[arg(long = "write-key", env = "NUDGE_WRITE_KEY", value_delimiter = ',')]
    pub write_keys: Vec<String>,
    /// Key of the admin endpoints (`Authorization: Bearer KEY`); generated when absent.
    #[arg(long, env = "NUDGE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Secret of the per-user inbox hash (`X-User-Hash: hex HMAC-SHA256(secret, userId)`).
    #[arg(long, env = "NUDGE_INBOX_SECRET", hide_env_values = true)]
    pub inbox_secret: Option<String>,
    /// Secret that signs webhooks and unsubscribe links; generated when absent.
    #[arg(long, env = "NUDGE_SIGNING_SECRET", hide_env_values = true)]
    pub signing_secret: Option<String>,
    /// Base URL recipients reach this server at (for unsubscribe links).
    #[arg(long, env = "NUDGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// `From` address of emails.
    #[arg(long, env = "NUDGE_SENDER", default_value = "nudge@localhost")]
    pub sender: String,
    /// Send email over SMTP (`smtp://user:pass@host:587`, `smtps://...`) instead of writing
    /// `<data>/outbox/*.eml`.
    #[arg(long, env = "NUDGE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Log format.
    #[arg(long, env = "NUDGE_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// Evaluate workers (users are spread over them, each user's events in order). A worker
    /// is a task, not a thread; it takes the users of its share of a journal read together,
    /// with one load and one save for all of them (BENCHMARKS.md, "Serve load test").
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Accepted events waiting for evaluate, at most. A burst faster than evaluate queues in
    /// `<data>/journal` (about 0.5 KB an event) up to this; beyond it a request waits up to
    /// 2 s for room, then gets 429 with Retry-After.
    #[arg(long, env = "NUDGE_MAX_BACKLOG", default_value_t = 5_000_000)]
    pub max_backlog: u64,
    /// Start even if journal segments are damaged: keep every intact record, drop the
    /// damaged bytes (originals are moved to `<data>/journal/damaged/`), read them again.
    /// Without it a damaged journal stops the start, naming the files.
    #[arg(long, env = "NUDGE_SALVAGE_JOURNAL")]
    pub salvage_journal: bool,
    /// Do not serve the demo page (`/demo`: a mock onboarding that sends events with
    /// analytics.js and shows the nudges in the inbox widget).
    #[arg(long, env = "NUDGE_NO_DEMO")]
    pub no_demo: bool,
    /// Webhook attempts before a send counts as failed.
    #[arg(long, default_value_t = 5)]
    pub webhook_attempts: u32,
    /// Pause before the first webhook retry, in milliseconds (doubles each time).
    #[arg(long, default_value_t = 500)]
    pub webhook_backoff_ms: u64,
    /// Webhook request timeout, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
}

/// How logs are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Runs the server until ctrl-c / SIGTERM.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logs(args.log_format);
    let config = ServeConfig {
        rules_dir: args.rules,
        data_dir: args.data,
        listen: args.listen,
        write_keys: args.write_keys,
        admin_key: args.admin_key,
        inbox_secret: args.inbox_secret,
        signing_secret: args.signing_secret,
        public_url: args.public_url,
        sender: args.sender,
        smtp_url: args.smtp_url,
        evaluate_workers: args.workers,
        max_backlog: args.max_backlog,
        salvage_journal: args.salvage_journal,
        demo: !args.no_demo,
        webhook: RetryPolicy {
            attempts: args.webhook_attempts.max(1),
            first_backoff_ms: args.webhook_backoff_ms,
            max_backoff_ms: 30_000,
            timeout_ms: args.webhook_timeout_ms,
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ServeError::Rules(e)) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("nudge serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
