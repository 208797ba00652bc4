//! What the Lambda functions read from their environment, and the AWS SDK configuration.

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
}

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
    /// Reads `NUDGE_TABLE`, `NUDGE_BUS`, `NUDGE_SENDER`, `NUDGE_SES_CONFIGURATION_SET` and
    /// `NUDGE_TIMER_SHARDS` from the process environment.
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
        Ok(AwsConfig {
            table: required("NUDGE_TABLE")?,
            bus: required("NUDGE_BUS")?,
            sender: get("NUDGE_SENDER"),
            ses_configuration_set: get("NUDGE_SES_CONFIGURATION_SET"),
            timer_shards,
        })
    }
}

/// The AWS SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL`, which points the clients at an emulator such as moto).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
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
            }
        );

        let config = AwsConfig::from_lookup(lookup(&[
            ("NUDGE_TABLE", "t"),
            ("NUDGE_BUS", "b"),
            ("NUDGE_SENDER", "hello@example.com"),
            ("NUDGE_SES_CONFIGURATION_SET", "nudge"),
            ("NUDGE_TIMER_SHARDS", "4"),
        ]))
        .unwrap();
        assert_eq!(config.sender.as_deref(), Some("hello@example.com"));
        assert_eq!(config.ses_configuration_set.as_deref(), Some("nudge"));
        assert_eq!(config.timer_shards, 4);
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
}
