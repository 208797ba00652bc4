//! What a function builds once per cold start from its environment: the rule set, the SDK
//! configuration and clients, the secrets, and the handler over them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use nudge_core::rules::CompiledRules;
use nudge_http::HttpWebhookTransport;
use nudge_service::api::{Api, ApiKeys};
use nudge_service::deliver::{Deliver, DeliverConfig};
use nudge_service::evaluate::Evaluate;
use nudge_service::ingest::WriteKeys;
use nudge_service::metrics::Metrics;
use nudge_service::ports::SystemClock;
use nudge_service::rules_dir::{self, LoadError};
use nudge_service::schedule::Schedule;
use nudge_service::webhook::RetryPolicy;
use tracing::{error, info};

use crate::config::{sdk_config, AwsConfig, ConfigError, TlsRoots};
use crate::dynamodb::DynamoDbStore;
use crate::emf::EmfMetrics;
use crate::eventbridge::EventBridgeBus;
use crate::ses::SesMailer;
use crate::sqs::SqsTimerQueue;
use crate::timers::{NearTier, TieredTimers};

/// Where the rule set is when `NUDGE_RULES` is not set (the rules layer's root).
pub const DEFAULT_RULES_DIR: &str = "/opt/rules";

/// The ingest function's handler: the whole HTTP API.
pub type AwsApi = Api<DynamoDbStore, EventBridgeBus, SystemClock>;
/// The evaluate function's handler.
pub type AwsEvaluate = Evaluate<DynamoDbStore, EventBridgeBus, SystemClock>;
/// The schedule-delay function's handler.
pub type AwsSchedule = Schedule<TieredTimers, EventBridgeBus, SystemClock>;
/// The deliver function's handler.
pub type AwsDeliver =
    Deliver<DynamoDbStore, SesMailer, HttpWebhookTransport, EventBridgeBus, SystemClock>;

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The rule set is missing or invalid (each `file:line:col` error is logged before).
    #[error("rule set {dir}: {source}")]
    Rules {
        dir: PathBuf,
        #[source]
        source: LoadError,
    },
}

/// What every function shares: settings, SDK configuration and metrics.
pub struct Deps {
    pub config: AwsConfig,
    pub sdk: SdkConfig,
    pub metrics: Arc<dyn Metrics>,
}

impl Deps {
    /// Reads the adapters' settings and the SDK configuration from the environment.
    pub async fn from_env() -> Result<Self, InitError> {
        let config = AwsConfig::from_env()?;
        let sdk = sdk_config(TlsRoots::from_env()?).await?;
        Ok(Deps {
            config,
            sdk,
            metrics: Arc::new(EmfMetrics::new()),
        })
    }

    /// The store on the table.
    pub fn store(&self) -> DynamoDbStore {
        DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &self.config.table,
            self.config.timer_shards,
        )
    }

    /// The store on the table, its client built on first use (see
    /// [`DynamoDbStore::on_first_use`]).
    pub fn store_on_first_use(&self) -> DynamoDbStore {
        DynamoDbStore::on_first_use(&self.sdk, &self.config.table, self.config.timer_shards)
    }

    /// The bus.
    pub fn bus(&self) -> EventBridgeBus {
        EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&self.sdk),
            &self.config.bus,
        )
    }

    /// The ingest handler: rules, store, bus and the API's secrets (`NUDGE_WRITE_KEYS`,
    /// comma-separated; `NUDGE_ADMIN_KEY`; `NUDGE_INBOX_SECRET`; `NUDGE_SIGNING_SECRET`).
    /// Tracking only publishes, so the table's client is built on the first inbox or admin
    /// request.
    pub fn api(&self, rules: RulesLoad) -> Result<AwsApi, InitError> {
        let keys = api_keys(env)?;
        Ok(Api {
            rules: rules.wait()?,
            store: self.store_on_first_use(),
            bus: self.bus(),
            clock: SystemClock,
            metrics: self.metrics.clone(),
            keys,
        })
    }

    /// The evaluate handler.
    pub fn evaluate(&self, rules: RulesLoad) -> Result<AwsEvaluate, InitError> {
        Ok(Evaluate {
            rules: rules.wait()?,
            store: self.store(),
            bus: self.bus(),
            clock: SystemClock,
            metrics: self.metrics.clone(),
        })
    }

    /// The schedule-delay handler (needs no rules: timers are opaque to it), with the delay
    /// queue of near timers if `NUDGE_TIMER_QUEUE` names one.
    pub fn schedule(&self) -> AwsSchedule {
        let timers = match &self.config.timer_queue {
            Some(url) => TieredTimers::new(
                self.store(),
                NearTier {
                    queue: SqsTimerQueue::new(aws_sdk_sqs::Client::new(&self.sdk), url),
                    horizon_ms: i64::from(self.config.timer_horizon_secs) * 1000,
                },
                Arc::new(SystemClock),
            ),
            None => TieredTimers::sweeper_only(self.store(), Arc::new(SystemClock)),
        };
        Schedule {
            timers,
            bus: self.bus(),
            clock: SystemClock,
            metrics: self.metrics.clone(),
        }
    }

    /// The deliver handler: rules, store, SES, webhooks, bus and `NUDGE_SENDER`,
    /// `NUDGE_PUBLIC_URL`, `NUDGE_SIGNING_SECRET`. The webhook client is built on the first
    /// webhook (most rule sets send none; building it parses TLS roots).
    pub fn deliver(&self, rules: RulesLoad) -> Result<AwsDeliver, InitError> {
        let config = deliver_config(env, self.config.sender.as_deref())?;
        Ok(Deliver {
            rules: rules.wait()?,
            store: self.store(),
            mailer: SesMailer::new(
                crate::ses::client(&self.sdk),
                self.config.ses_configuration_set.clone(),
            ),
            webhooks: HttpWebhookTransport::lazy(),
            bus: self.bus(),
            clock: SystemClock,
            metrics: self.metrics.clone(),
            config,
        })
    }
}

/// A variable of the process environment.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A variable that must be set and not blank.
fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    lookup(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// The API's secrets. Write keys and the signing secret are required (an ingest without them
/// could accept nothing or verify no unsubscribe link); admin key and inbox secret are
/// optional (those endpoints answer that they are off).
pub fn api_keys(lookup: impl Fn(&str) -> Option<String>) -> Result<ApiKeys, ConfigError> {
    let write: Vec<String> = required(&lookup, "NUDGE_WRITE_KEYS")?
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    if write.is_empty() {
        return Err(ConfigError::Missing("NUDGE_WRITE_KEYS"));
    }
    Ok(ApiKeys {
        write: WriteKeys::new(write),
        admin: lookup("NUDGE_ADMIN_KEY").filter(|k| !k.trim().is_empty()),
        inbox_secret: lookup("NUDGE_INBOX_SECRET")
            .unwrap_or_default()
            .into_bytes(),
        signing_secret: required(&lookup, "NUDGE_SIGNING_SECRET")?.into_bytes(),
    })
}

/// Webhook tries on Lambda: 4 tries of at most 8 s with 0.5, 1 and 2 s between them stay
/// well inside deliver's 60 s timeout; after that the send is recorded as failed.
pub fn lambda_webhook_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        first_backoff_ms: 500,
        max_backoff_ms: 4_000,
        timeout_ms: 8_000,
    }
}

/// Deliver's settings; `sender` is `NUDGE_SENDER` as [`AwsConfig`] read it.
pub fn deliver_config(
    lookup: impl Fn(&str) -> Option<String>,
    sender: Option<&str>,
) -> Result<DeliverConfig, ConfigError> {
    Ok(DeliverConfig {
        sender: sender
            .map(str::to_string)
            .ok_or(ConfigError::Missing("NUDGE_SENDER"))?,
        public_url: required(&lookup, "NUDGE_PUBLIC_URL")?,
        signing_secret: required(&lookup, "NUDGE_SIGNING_SECRET")?.into_bytes(),
        webhook: lambda_webhook_policy(),
        // SES throttling is usually brief; after the last try the send is `failed`. A try
        // whose answer was lost is never repeated (`SendError::maybe_taken`).
        mail_attempts: 3,
        mail_backoff: Duration::from_millis(200),
        // deliver's timeout (template.yaml: 60 s) and a margin: past it, the invocation
        // that began a send is gone.
        lease: Duration::from_secs(65),
        abandoned_before: 0,
    })
}

/// The rule set loading on a thread of its own, started before the SDK configuration loads
/// so that a cold start does both at once ([`RulesLoad::start`], then [`RulesLoad::wait`]).
pub struct RulesLoad(Loading);

enum Loading {
    Thread(std::thread::JoinHandle<Result<Arc<CompiledRules>, InitError>>),
    /// No thread could be started: the rules load when waited for.
    Inline(PathBuf),
}

impl RulesLoad {
    /// Starts loading the rule set in `NUDGE_RULES` (default [`DEFAULT_RULES_DIR`]).
    pub fn start() -> RulesLoad {
        RulesLoad::start_from(rules_dir())
    }

    /// Starts loading the rule set in `dir`.
    pub fn start_from(dir: PathBuf) -> RulesLoad {
        let inline = dir.clone();
        match std::thread::Builder::new()
            .name("nudge-rules".into())
            .spawn(move || load_rules_from(&dir))
        {
            Ok(handle) => RulesLoad(Loading::Thread(handle)),
            Err(_) => RulesLoad(Loading::Inline(inline)),
        }
    }

    /// The loaded rule set, or why it could not be loaded (each error logged already).
    pub fn wait(self) -> Result<Arc<CompiledRules>, InitError> {
        match self.0 {
            Loading::Thread(handle) => match handle.join() {
                Ok(loaded) => loaded,
                // A panic while loading is a bug; it ends the cold start as it would inline.
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Loading::Inline(dir) => load_rules_from(&dir),
        }
    }
}

/// The rule set in `NUDGE_RULES` (default [`DEFAULT_RULES_DIR`]).
pub fn load_rules() -> Result<Arc<CompiledRules>, InitError> {
    load_rules_from(&rules_dir())
}

/// `NUDGE_RULES`, or [`DEFAULT_RULES_DIR`] when it is not set.
fn rules_dir() -> PathBuf {
    env("NUDGE_RULES")
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_RULES_DIR.to_string())
        .into()
}

/// Loads and compiles the rule set in `dir`; every error is logged (as `file:line:col:
/// message`) before the function gives up.
pub fn load_rules_from(dir: &Path) -> Result<Arc<CompiledRules>, InitError> {
    match rules_dir::load(dir) {
        Ok(rules) => {
            info!(rules = %dir.display(), "rule set loaded");
            Ok(Arc::new(rules))
        }
        Err(source) => {
            match &source {
                LoadError::Rules(errors) => {
                    for e in errors {
                        error!(rules = %dir.display(), error = %e, "invalid rule");
                    }
                }
                other => error!(rules = %dir.display(), error = %other, "cannot load the rule set"),
            }
            Err(InitError::Rules {
                dir: dir.to_path_buf(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn rules_load_on_their_own_thread_and_report_what_is_wrong() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let rules = RulesLoad::start_from(examples.join("saas-onboarding"))
            .wait()
            .unwrap();
        assert_eq!(rules.name, "saas-onboarding");

        let missing = examples.join("no-such-rule-set");
        match RulesLoad::start_from(missing.clone()).wait() {
            Err(InitError::Rules { dir, .. }) => assert_eq!(dir, missing),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a missing rule set loaded"),
        }
    }

    #[test]
    fn api_keys_split_write_keys_and_require_the_signing_secret() {
        let keys = api_keys(lookup(&[
            ("NUDGE_WRITE_KEYS", " wk_one, ,wk_two "),
            ("NUDGE_SIGNING_SECRET", "s3cret"),
        ]))
        .unwrap();
        assert!(keys.write.accepts("wk_one"));
        assert!(keys.write.accepts("wk_two"));
        assert!(!keys.write.accepts(""));
        assert_eq!(keys.admin, None);
        assert!(keys.inbox_secret.is_empty());
        assert_eq!(keys.signing_secret, b"s3cret");

        let err = api_keys(lookup(&[("NUDGE_WRITE_KEYS", " , ")]))
            .err()
            .unwrap();
        assert_eq!(err, ConfigError::Missing("NUDGE_WRITE_KEYS"));
        let err = api_keys(lookup(&[("NUDGE_WRITE_KEYS", "k")]))
            .err()
            .unwrap();
        assert_eq!(err, ConfigError::Missing("NUDGE_SIGNING_SECRET"));
    }

    #[test]
    fn deliver_needs_sender_public_url_and_signing_secret() {
        let vars = [
            ("NUDGE_PUBLIC_URL", "https://api.example.com"),
            ("NUDGE_SIGNING_SECRET", "s"),
        ];
        let config = deliver_config(lookup(&vars), Some("hello@example.com")).unwrap();
        assert_eq!(config.sender, "hello@example.com");
        assert_eq!(config.public_url, "https://api.example.com");
        let err = deliver_config(lookup(&vars), None).err().unwrap();
        assert_eq!(err, ConfigError::Missing("NUDGE_SENDER"));
        let err = deliver_config(lookup(&vars[1..]), Some("a@b.c"))
            .err()
            .unwrap();
        assert_eq!(err, ConfigError::Missing("NUDGE_PUBLIC_URL"));
    }

    #[test]
    fn an_invalid_rule_set_fails_with_its_positions() {
        let dir = std::env::temp_dir().join(format!("nudge-aws-bad-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("triggers.yaml"), "triggers:\n  - id: [unclosed\n").unwrap();
        let err = load_rules_from(&dir).err().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let InitError::Rules {
            source: LoadError::Rules(errors),
            ..
        } = &err
        else {
            panic!("expected rule errors, got {err}");
        };
        assert!(!errors.is_empty());
        let text = err.to_string();
        assert!(text.contains("triggers.yaml:"), "{text}");
    }

    #[test]
    fn the_example_rule_set_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saas-onboarding");
        load_rules_from(&dir).unwrap();
    }

    #[test]
    fn lambda_webhook_tries_fit_the_function_timeout() {
        let p = lambda_webhook_policy();
        let mut waits = 0;
        let mut backoff = p.first_backoff_ms;
        for _ in 1..p.attempts {
            waits += backoff.min(p.max_backoff_ms);
            backoff *= 2;
        }
        let worst = u64::from(p.attempts) * p.timeout_ms + waits;
        assert!(worst < 50_000, "{worst} ms");
    }
}
