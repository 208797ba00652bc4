//! What the Lambda functions read from their environment, and the AWS SDK configuration.

use aws_smithy_http_client::tls;

/// Settings of the AWS adapters, from the functions' environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// The DynamoDB table (`NUDGE_TABLE`).
    pub table: String,
    /// The EventBridge bus name (`NUDGE_BUS`).
    pub bus: String,
    /// The default From address of email (`NUDGE_SENDER`).
    pub sender: Option<String>,
    /// The SES configuration set mails are sent with (`NUDGE_SES_CONFIGURATION_SET`).
    pub ses_configuration_set: Option<String>,
    /// How many GSI partitions timers are spread over (`NUDGE_TIMER_SHARDS`, default 16).
    /// Never lower it on a live table: timers in the dropped shards would only fire through
    /// the TTL backstop.
    pub timer_shards: u32,
    /// The delay queue of near timers (`NUDGE_TIMER_QUEUE`, a queue URL); unset: timers
    /// fire by the sweeper alone, up to a sweep period late.
    pub timer_queue: Option<String>,
    /// How far ahead timers ride the delay queue, in seconds (`NUDGE_TIMER_HORIZON`, 1 to
    /// 900, default 900: SQS's longest delay).
    pub timer_horizon_secs: u32,
}

/// The delay queue's horizon when `NUDGE_TIMER_HORIZON` is not set.
pub const DEFAULT_TIMER_HORIZON_SECS: u32 = 900;

/// Timer shards when `NUDGE_TIMER_SHARDS` is not set.
pub const DEFAULT_TIMER_SHARDS: u32 = 16;

/// Most timer shards allowed (every sweep queries each shard once).
pub const MAX_TIMER_SHARDS: u32 = 1024;

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("environment variable `{0}` is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable `{name}` is `{value}`: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl AwsConfig {
    /// Reads `NUDGE_TABLE`, `NUDGE_BUS`, `NUDGE_SENDER`, `NUDGE_SES_CONFIGURATION_SET`,
    /// `NUDGE_TIMER_SHARDS`, `NUDGE_TIMER_QUEUE` and `NUDGE_TIMER_HORIZON` from the process
    /// environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AwsConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // An empty value counts as unset: a template parameter left blank should not
        // configure an empty table name.
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let timer_shards = match get("NUDGE_TIMER_SHARDS") {
            None => DEFAULT_TIMER_SHARDS,
            Some(value) => match value.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_TIMER_SHARDS).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "NUDGE_TIMER_SHARDS",
                        value,
                        reason: "expected a whole number from 1 to 1024",
                    })
                }
            },
        };
        let timer_horizon_secs = match get("NUDGE_TIMER_HORIZON") {
            None => DEFAULT_TIMER_HORIZON_SECS,
            Some(value) => match value.trim().parse::<u32>() {
                Ok(n) if (1..=DEFAULT_TIMER_HORIZON_SECS).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "NUDGE_TIMER_HORIZON",
                        value,
                        reason: "expected whole seconds from 1 to 900",
                    })
                }
            },
        };
        Ok(AwsConfig {
            table: required("NUDGE_TABLE")?,
            bus: required("NUDGE_BUS")?,
            sender: get("NUDGE_SENDER"),
            ses_configuration_set: get("NUDGE_SES_CONFIGURATION_SET"),
            timer_shards,
            timer_queue: get("NUDGE_TIMER_QUEUE"),
            timer_horizon_secs,
        })
    }
}

/// Which root certificates the SDK's HTTPS client trusts (`NUDGE_TLS_ROOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// Amazon Trust Services' roots only (`amazon`, the default): what AWS endpoints chain
    /// to, built into the binary. Five roots parse in microseconds at a cold start, where the
    /// platform's bundle of ~150 takes milliseconds.
    #[default]
    Amazon,
    /// The platform's trust store (`system`): for a TLS-inspecting proxy or a private CA.
    System,
}

/// Amazon Trust Services' root certificates (see the file's header).
const AMAZON_ROOTS_PEM: &str = include_str!("../certs/amazon-trust-services.pem");

impl TlsRoots {
    /// Reads `NUDGE_TLS_ROOTS` (`amazon` or `system`; unset means `amazon`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_value(std::env::var("NUDGE_TLS_ROOTS").ok())
    }

    fn from_value(value: Option<String>) -> Result<Self, ConfigError> {
        match value.as_deref().map(str::trim) {
            None | Some("") | Some("amazon") => Ok(TlsRoots::Amazon),
            Some("system") => Ok(TlsRoots::System),
            Some(_) => Err(ConfigError::Invalid {
                name: "NUDGE_TLS_ROOTS",
                value: value.unwrap_or_default(),
                reason: "expected `amazon` or `system`",
            }),
        }
    }

    /// The trust store the SDK's HTTPS client gets.
    fn trust_store(self) -> tls::TrustStore {
        match self {
            TlsRoots::Amazon => tls::TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM),
            TlsRoots::System => tls::TrustStore::default(),
        }
    }
}

/// How long one try of an AWS call may take when `NUDGE_AWS_ATTEMPT_TIMEOUT_MS` is not set.
/// The calls take milliseconds; without a bound, a connection that stops answering holds the
/// function until Lambda's timeout (up to a minute) instead of letting the SDK try again.
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 5_000;

/// How long to wait for a connection to AWS.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3_100);

/// The attempt timeout from `NUDGE_AWS_ATTEMPT_TIMEOUT_MS` (100 to 60,000 ms).
pub fn attempt_timeout(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<std::time::Duration, ConfigError> {
    let name = "NUDGE_AWS_ATTEMPT_TIMEOUT_MS";
    let ms = match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => DEFAULT_ATTEMPT_TIMEOUT_MS,
        Some(value) => match value.trim().parse::<u64>() {
            Ok(ms) if (100..=60_000).contains(&ms) => ms,
            _ => {
                return Err(ConfigError::Invalid {
                    name,
                    value,
                    reason: "expected milliseconds from 100 to 60000",
                })
            }
        },
    };
    Ok(std::time::Duration::from_millis(ms))
}

/// The AWS SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL`, which points the clients at an emulator such as moto), with an HTTPS
/// client trusting `roots` and every try of a call bounded by [`attempt_timeout`].
pub async fn sdk_config(roots: TlsRoots) -> Result<aws_config::SdkConfig, ConfigError> {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt_timeout(|n| std::env::var(n).ok())?)
        .build();
    let context = tls::TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build()
        .map_err(|_| ConfigError::Invalid {
            name: "NUDGE_TLS_ROOTS",
            value: format!("{roots:?}"),
            reason: "the trust store cannot be built",
        })?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts);
    // The default chains look in the environment first, and on Lambda the function's
    // credentials and region are always there. Taking them straight from it gives the same
    // configuration without building the rest of the chains at every cold start (a web
    // identity provider with an STS client, whose endpoint partitions parse with eight
    // regular expressions, and an IMDS client). Anywhere else (no such variables), the
    // default chains.
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
        loader = loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new());
    }
    Ok(loader.load().await)
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
    fn the_attempt_timeout_defaults_and_refuses_nonsense() {
        let ms = |v: &str| attempt_timeout(lookup(&[("NUDGE_AWS_ATTEMPT_TIMEOUT_MS", v)]));
        assert_eq!(
            attempt_timeout(lookup(&[])).unwrap(),
            std::time::Duration::from_millis(DEFAULT_ATTEMPT_TIMEOUT_MS)
        );
        assert_eq!(ms(" 2000 ").unwrap(), std::time::Duration::from_secs(2));
        for bad in ["0", "99", "60001", "2s", "-5"] {
            assert!(matches!(ms(bad), Err(ConfigError::Invalid { .. })), "{bad}");
        }
    }

    #[test]
    fn reads_required_and_optional_variables_with_defaults() {
        let config =
            AwsConfig::from_lookup(lookup(&[("NUDGE_TABLE", "t"), ("NUDGE_BUS", "b")])).unwrap();
        assert_eq!(
            config,
            AwsConfig {
                table: "t".into(),
                bus: "b".into(),
                sender: None,
                ses_configuration_set: None,
                timer_shards: DEFAULT_TIMER_SHARDS,
                timer_queue: None,
                timer_horizon_secs: DEFAULT_TIMER_HORIZON_SECS,
            }
        );

        let config = AwsConfig::from_lookup(lookup(&[
            ("NUDGE_TABLE", "t"),
            ("NUDGE_BUS", "b"),
            ("NUDGE_SENDER", "hello@example.com"),
            ("NUDGE_SES_CONFIGURATION_SET", "nudge"),
            ("NUDGE_TIMER_SHARDS", "4"),
            (
                "NUDGE_TIMER_QUEUE",
                "https://sqs.us-east-1.amazonaws.com/1/nudge-dev-timers",
            ),
            ("NUDGE_TIMER_HORIZON", "30"),
        ]))
        .unwrap();
        assert_eq!(config.sender.as_deref(), Some("hello@example.com"));
        assert_eq!(config.ses_configuration_set.as_deref(), Some("nudge"));
        assert_eq!(config.timer_shards, 4);
        assert_eq!(
            config.timer_queue.as_deref(),
            Some("https://sqs.us-east-1.amazonaws.com/1/nudge-dev-timers")
        );
        assert_eq!(config.timer_horizon_secs, 30);
    }

    #[test]
    fn names_the_missing_variable() {
        let err = AwsConfig::from_lookup(lookup(&[("NUDGE_BUS", "b")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("NUDGE_TABLE"));
        assert!(err.to_string().contains("NUDGE_TABLE"));

        let err = AwsConfig::from_lookup(lookup(&[("NUDGE_TABLE", "t"), ("NUDGE_BUS", " ")]))
            .unwrap_err();
        assert_eq!(err, ConfigError::Missing("NUDGE_BUS"));
    }

    #[test]
    fn tls_roots_are_amazons_unless_the_system_store_is_asked_for() {
        assert_eq!(TlsRoots::from_value(None), Ok(TlsRoots::Amazon));
        assert_eq!(TlsRoots::from_value(Some("".into())), Ok(TlsRoots::Amazon));
        assert_eq!(
            TlsRoots::from_value(Some("system".into())),
            Ok(TlsRoots::System)
        );
        assert!(matches!(
            TlsRoots::from_value(Some("mozilla".into())),
            Err(ConfigError::Invalid {
                name: "NUDGE_TLS_ROOTS",
                ..
            })
        ));
    }

    #[test]
    fn the_built_in_roots_are_amazon_trust_services_five() {
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> =
            rustls_pki_types::CertificateDer::pem_slice_iter(AMAZON_ROOTS_PEM.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(certs.len(), 5);
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            // Each subject's common name appears in a certificate's DER.
            assert!(
                certs
                    .iter()
                    .any(|c| c.as_ref().windows(name.len()).any(|w| w == name.as_bytes())),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn an_sdk_configuration_builds_with_either_trust_store() {
        for roots in [TlsRoots::Amazon, TlsRoots::System] {
            let config = sdk_config(roots).await.unwrap();
            assert!(config.http_client().is_some());
        }
    }

    #[test]
    fn rejects_unusable_shard_counts() {
        for bad in ["0", "-1", "many", "5000"] {
            let err = AwsConfig::from_lookup(lookup(&[
                ("NUDGE_TABLE", "t"),
                ("NUDGE_BUS", "b"),
                ("NUDGE_TIMER_SHARDS", bad),
            ]))
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "NUDGE_TIMER_SHARDS",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn rejects_horizons_sqs_cannot_delay() {
        for bad in ["0", "901", "15m"] {
            let err = AwsConfig::from_lookup(lookup(&[
                ("NUDGE_TABLE", "t"),
                ("NUDGE_BUS", "b"),
                ("NUDGE_TIMER_HORIZON", bad),
            ]))
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "NUDGE_TIMER_HORIZON",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }
}
