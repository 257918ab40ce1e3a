//! The environment contract, read and validated in one place.
//!
//! [`Settings::from_env`] parses every variable the Lambda and the CLI share, so a malformed
//! value is the same error, naming the variable, wherever it is read; nothing falls back to a
//! default silently. The builders below then assemble the pipeline from the settings, so the
//! Lambda and every CLI command build the same [`Router`] and [`Tracker`] the same way. The
//! table of variables is in `docs/architecture.md` ("Configuration").
//!
//! Three process-wide concerns read their own variables once, before any settings exist:
//! logging (`RUST_LOG`, `LOG_FORMAT`, in [`crate::logging`]), trusted roots (`SSL_CERT_FILE`,
//! `SSL_CERT_DIR`, `ALTERYX_CA_BUNDLE`, in [`crate::tls`]) and the AWS SDK (`AWS_*`, in
//! [`crate::aws`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::alteryx::{ClientOptions, ServerConfig};
use crate::executions::{DynamoExecutionStore, ExecutionError, ExecutionStore};
use crate::plugin::{
    ChainPluginStore, DirObjectReader, DirPluginStore, ObjectReader, PluginError, PluginHost,
    PluginLimits, PluginStore, S3ObjectReader, S3PluginStore,
};
use crate::render::{DirObjectDetails, ObjectDetails, S3ObjectDetails};
use crate::router::{Router, RouterSettings};
use crate::rules::{DynamoRuleStore, FileRuleSource, RuleSource};
use crate::secrets::{
    ClientPool, CredentialSource, SecretString, SecretsError, SecretsManagerSource,
};
use crate::tracker::{Tracker, TrackerSettings};

/// What a malformed or missing setting is, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not a whole number")]
    NotANumber {
        name: &'static str,
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("{name}={value:?}: {message}")]
    Invalid {
        name: &'static str,
        value: String,
        message: String,
    },
    #[error(
        "no rules configured: set RULES_TABLE (DynamoDB table) or RULES_FILE (YAML/JSON file or directory)"
    )]
    NoRules,
    #[error(
        "EXECUTIONS_TABLE is not set; inside Lambda a local execution store would be lost with the sandbox"
    )]
    NoExecutionsTable,
    #[error(
        "EXECUTIONS_TABLE is not set and this build has no local execution store (feature `sqlite`)"
    )]
    NoLocalStore,
    #[error("reading ALTERYX_URL/ALTERYX_KEY/ALTERYX_SECRET")]
    Credentials(#[source] SecretsError),
    #[error("configuring plugins")]
    Plugins(#[source] PluginError),
    #[error("opening the execution store")]
    Executions(#[source] ExecutionError),
}

/// Which function the `bootstrap` binary is (`ROUTER_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Routes S3 events (the default).
    Router,
    /// Records job outcomes on a schedule (`ROUTER_MODE=tracker`).
    Tracker,
}

/// Where the rules are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesLocation {
    /// `RULES_TABLE`: a DynamoDB table, one item per rule.
    Table(String),
    /// `RULES_FILE`: a YAML/JSON file or a directory of them.
    File(PathBuf),
}

/// Every setting of the environment contract, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub rules: Option<RulesLocation>,
    /// `RULES_CACHE_SECONDS` (default 60): how long a loaded rule set is used.
    pub rules_cache: Duration,
    /// `EXECUTIONS_TABLE`.
    pub executions_table: Option<String>,
    /// `ALTERYX_ROUTER_HOME` (default `~/.alteryx-router`): the CLI's local execution store.
    pub home: PathBuf,
    /// `ALTERYX_SECRET_ID`: the default Secrets Manager secret.
    pub default_secret_id: Option<String>,
    /// `ALTERYX_SECRET_PREFIX`: the name prefix of the secrets rules may name (the deployed
    /// functions may read only those); `rules validate|put` warn about others. Unset: the
    /// template's default, `alteryx/`.
    pub secret_prefix: Option<String>,
    /// `ALTERYX_URL`, `ALTERYX_KEY`, `ALTERYX_SECRET` (+ `ALTERYX_API_VERSION`, `ALTERYX_AUTH`).
    pub env_credentials: Option<ServerConfig>,
    pub plugin_dir: Option<PathBuf>,
    pub plugin_s3_uri: Option<String>,
    /// `PLUGIN_CACHE_SECONDS` (default 60).
    pub plugin_cache: Duration,
    /// `PLUGIN_REQUIRE_PIN` (default true): plugins from `PLUGIN_S3_URI` run only when their
    /// rule pins their sha256. `false` is for local development only.
    pub plugin_require_pin: bool,
    /// `LOCAL_OBJECTS_DIR`: read objects from `DIR/<bucket>/<key>` instead of S3.
    pub local_objects_dir: Option<PathBuf>,
    /// `CLAIM_LEASE_SECONDS` (default 300).
    pub claim_lease: Duration,
    /// `EXECUTION_TTL_DAYS` (default 90).
    pub execution_ttl: Duration,
    /// `FAILURE_TOPIC_ARN`: where the tracker publishes failures.
    pub failure_topic_arn: Option<String>,
    /// `TRACK_STUCK_AFTER_MINUTES` (default 60).
    pub track_stuck_after: Duration,
    /// `TRACK_BUDGET_SECONDS` (default 45): a tracker pass stops starting work after this.
    pub track_budget: Duration,
    /// Running inside AWS Lambda (`AWS_LAMBDA_RUNTIME_API` or `AWS_LAMBDA_FUNCTION_NAME`).
    pub in_lambda: bool,
}

/// Reads one variable; blank counts as unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.text(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|source| ConfigError::NotANumber {
                    name,
                    value,
                    source,
                }),
        }
    }

    fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.number(name, default).map(Duration::from_secs)
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(name) {
            None => Ok(default),
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    name,
                    value,
                    message: "expected true or false".into(),
                }),
            },
        }
    }
}

impl Settings {
    /// The settings of this process's environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings of any environment (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let mode = match env.text("ROUTER_MODE") {
            None => Mode::Router,
            Some(m) if m.trim().eq_ignore_ascii_case("router") => Mode::Router,
            Some(m) if m.trim().eq_ignore_ascii_case("tracker") => Mode::Tracker,
            Some(value) => {
                return Err(ConfigError::Invalid {
                    name: "ROUTER_MODE",
                    value,
                    message: "expected `router` (default) or `tracker`".into(),
                });
            }
        };
        let rules = match (env.text("RULES_TABLE"), env.text("RULES_FILE")) {
            (Some(table), _) => Some(RulesLocation::Table(table)),
            (None, Some(file)) => Some(RulesLocation::File(PathBuf::from(file))),
            (None, None) => None,
        };
        let env_credentials = match env.text("ALTERYX_URL") {
            None => None,
            Some(url) => {
                let required = |name: &'static str| {
                    env.text(name)
                        .ok_or(SecretsError::MissingEnv { var: name })
                        .map_err(ConfigError::Credentials)
                };
                let key = required("ALTERYX_KEY")?;
                let secret = SecretString::new(required("ALTERYX_SECRET")?);
                Some(
                    ServerConfig::from_parts(
                        &url,
                        &key,
                        secret,
                        env.text("ALTERYX_API_VERSION").as_deref(),
                        env.text("ALTERYX_AUTH").as_deref(),
                    )
                    .map_err(|e| {
                        ConfigError::Credentials(SecretsError::Config {
                            secret_id: "(environment)".into(),
                            source: e,
                        })
                    })?,
                )
            }
        };
        let home = env
            .text("ALTERYX_ROUTER_HOME")
            .map(PathBuf::from)
            .or_else(|| {
                env.text("HOME")
                    .map(|h| PathBuf::from(h).join(".alteryx-router"))
            })
            .unwrap_or_else(|| PathBuf::from(".alteryx-router"));
        let in_lambda = env.text("AWS_LAMBDA_RUNTIME_API").is_some()
            || env.text("AWS_LAMBDA_FUNCTION_NAME").is_some();
        Ok(Settings {
            mode,
            rules,
            rules_cache: env.seconds("RULES_CACHE_SECONDS", 60)?,
            executions_table: env.text("EXECUTIONS_TABLE"),
            home,
            default_secret_id: env.text("ALTERYX_SECRET_ID"),
            secret_prefix: env.text("ALTERYX_SECRET_PREFIX"),
            env_credentials,
            plugin_dir: env.text("PLUGIN_DIR").map(PathBuf::from),
            plugin_s3_uri: env.text("PLUGIN_S3_URI"),
            plugin_cache: env.seconds("PLUGIN_CACHE_SECONDS", 60)?,
            plugin_require_pin: env.flag("PLUGIN_REQUIRE_PIN", true)?,
            local_objects_dir: env.text("LOCAL_OBJECTS_DIR").map(PathBuf::from),
            claim_lease: env.seconds("CLAIM_LEASE_SECONDS", 300)?,
            execution_ttl: Duration::from_secs(env.number("EXECUTION_TTL_DAYS", 90)? * 24 * 3600),
            failure_topic_arn: env.text("FAILURE_TOPIC_ARN"),
            track_stuck_after: Duration::from_secs(
                env.number("TRACK_STUCK_AFTER_MINUTES", 60)? * 60,
            ),
            track_budget: env.seconds("TRACK_BUDGET_SECONDS", 45)?,
            in_lambda,
        })
    }

    /// The rule source named by `RULES_TABLE` or `RULES_FILE`.
    pub async fn rule_source(&self) -> Result<Arc<dyn RuleSource>, ConfigError> {
        match &self.rules {
            Some(RulesLocation::Table(table)) => Ok(Arc::new(self.dynamo_rules(table).await)),
            Some(RulesLocation::File(path)) => Ok(Arc::new(FileRuleSource::new(path.clone()))),
            None => Err(ConfigError::NoRules),
        }
    }

    /// The DynamoDB rule store for `table`.
    pub async fn dynamo_rules(&self, table: &str) -> DynamoRuleStore {
        let sdk = crate::aws::sdk_config().await;
        DynamoRuleStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table.to_string(),
            self.rules_cache,
        )
    }

    /// The execution store named by `EXECUTIONS_TABLE`, else (outside Lambda, with the `sqlite`
    /// feature) the local SQLite store under `ALTERYX_ROUTER_HOME`.
    pub async fn execution_store(&self) -> Result<Arc<dyn ExecutionStore>, ConfigError> {
        if let Some(table) = &self.executions_table {
            let sdk = crate::aws::sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            return Ok(Arc::new(DynamoExecutionStore::new(client, table.clone())));
        }
        if self.in_lambda {
            return Err(ConfigError::NoExecutionsTable);
        }
        self.local_execution_store()
    }

    /// Where the local execution store lives.
    pub fn local_store_path(&self) -> PathBuf {
        self.home.join("executions.sqlite3")
    }

    #[cfg(feature = "sqlite")]
    fn local_execution_store(&self) -> Result<Arc<dyn ExecutionStore>, ConfigError> {
        let store = crate::executions::SqliteExecutionStore::open(&self.local_store_path())
            .map_err(ConfigError::Executions)?;
        Ok(Arc::new(store))
    }

    #[cfg(not(feature = "sqlite"))]
    fn local_execution_store(&self) -> Result<Arc<dyn ExecutionStore>, ConfigError> {
        Err(ConfigError::NoLocalStore)
    }

    /// Credentials: Secrets Manager (`ALTERYX_SECRET_ID` or a rule's `secret_id`), falling
    /// back to `ALTERYX_URL`/`ALTERYX_KEY`/`ALTERYX_SECRET` when they are set.
    pub async fn credential_source(&self) -> Arc<dyn CredentialSource> {
        let sdk = crate::aws::sdk_config().await;
        let client = aws_sdk_secretsmanager::Client::new(&sdk);
        Arc::new(SecretsManagerSource::new(
            client,
            self.default_secret_id.clone(),
            self.env_credentials.clone(),
        ))
    }

    /// The plugin store named by `PLUGIN_DIR` and/or `PLUGIN_S3_URI` (looked in, in that order).
    pub async fn plugin_store(&self) -> Result<Option<Arc<dyn PluginStore>>, ConfigError> {
        let mut stores: Vec<Arc<dyn PluginStore>> = Vec::new();
        if let Some(dir) = &self.plugin_dir {
            stores.push(Arc::new(DirPluginStore::new(dir.clone())));
        }
        if let Some(uri) = &self.plugin_s3_uri {
            let sdk = crate::aws::sdk_config().await;
            stores.push(Arc::new(
                S3PluginStore::new(aws_sdk_s3::Client::new(&sdk), uri)
                    .map_err(ConfigError::Plugins)?
                    .require_pin(self.plugin_require_pin),
            ));
        }
        Ok(match stores.len() {
            0 => None,
            1 => stores.pop(),
            _ => Some(Arc::new(ChainPluginStore(stores))),
        })
    }

    /// Where plugins read objects from: `LOCAL_OBJECTS_DIR`, else S3.
    pub async fn object_reader(&self) -> Arc<dyn ObjectReader> {
        match &self.local_objects_dir {
            Some(dir) => Arc::new(DirObjectReader::new(dir.clone())),
            None => {
                let sdk = crate::aws::sdk_config().await;
                Arc::new(S3ObjectReader::new(aws_sdk_s3::Client::new(&sdk)))
            }
        }
    }

    /// Where templates' `{meta.NAME}` and `{presigned_url}` come from: `LOCAL_OBJECTS_DIR`,
    /// else S3 (with the process's credentials, which sign the URLs).
    pub async fn object_details(&self) -> Arc<dyn ObjectDetails> {
        match &self.local_objects_dir {
            Some(dir) => Arc::new(DirObjectDetails::new(dir.clone())),
            None => {
                let sdk = crate::aws::sdk_config().await;
                Arc::new(S3ObjectDetails::new(aws_sdk_s3::Client::new(&sdk)))
            }
        }
    }

    pub fn router_settings(&self) -> RouterSettings {
        RouterSettings {
            claim_lease: self.claim_lease,
            execution_ttl: self.execution_ttl,
        }
    }

    /// The whole pipeline as the settings describe it.
    pub async fn router(&self) -> Result<Router, ConfigError> {
        let rules = self.rule_source().await?;
        let executions = self.execution_store().await?;
        let pool = Arc::new(ClientPool::new(
            self.credential_source().await,
            ClientOptions::default(),
        ));
        let mut router = Router::new(rules, executions, pool)
            .with_settings(self.router_settings())
            .with_object_details(self.object_details().await);
        if let Some(store) = self.plugin_store().await? {
            let host = PluginHost::new(store, PluginLimits::default())
                .map_err(ConfigError::Plugins)?
                .with_cache_ttl(self.plugin_cache);
            router = router.with_plugins(Arc::new(host), self.object_reader().await);
        }
        Ok(router)
    }

    /// The tracker as the settings describe it.
    pub async fn tracker(&self) -> Result<Tracker, ConfigError> {
        let executions = self.execution_store().await?;
        let pool = Arc::new(ClientPool::new(
            self.credential_source().await,
            ClientOptions::default(),
        ));
        let notifier = crate::tracker::notifier(self.failure_topic_arn.clone()).await;
        let settings = TrackerSettings {
            stuck_after: self.track_stuck_after,
            budget: self.track_budget,
            ..Default::default()
        };
        Ok(Tracker::new(executions, pool, notifier, settings))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_unset_or_blank() {
        let s = settings(&[("RULES_CACHE_SECONDS", " "), ("HOME", "/home/u")]).unwrap();
        assert_eq!(s.mode, Mode::Router);
        assert_eq!(s.rules_cache, Duration::from_secs(60));
        assert_eq!(s.claim_lease, Duration::from_secs(300));
        assert_eq!(s.execution_ttl, Duration::from_secs(90 * 86400));
        assert_eq!(s.track_stuck_after, Duration::from_secs(3600));
        assert_eq!(s.home, PathBuf::from("/home/u/.alteryx-router"));
        assert!(s.rules.is_none() && !s.in_lambda);
        assert!(
            s.plugin_require_pin,
            "plugins from S3 must be pinned unless turned off"
        );
    }

    #[test]
    fn the_plugin_pin_requirement_is_a_clear_boolean() {
        assert!(
            !settings(&[("PLUGIN_REQUIRE_PIN", "false")])
                .unwrap()
                .plugin_require_pin
        );
        assert!(
            settings(&[("PLUGIN_REQUIRE_PIN", "TRUE")])
                .unwrap()
                .plugin_require_pin
        );
        let e = settings(&[("PLUGIN_REQUIRE_PIN", "sometimes")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("PLUGIN_REQUIRE_PIN=\"sometimes\""),
            "{e}"
        );
    }

    #[test]
    fn malformed_numbers_name_the_variable_for_lambda_and_cli_alike() {
        for name in [
            "RULES_CACHE_SECONDS",
            "PLUGIN_CACHE_SECONDS",
            "CLAIM_LEASE_SECONDS",
            "EXECUTION_TTL_DAYS",
            "TRACK_STUCK_AFTER_MINUTES",
            "TRACK_BUDGET_SECONDS",
        ] {
            let e = settings(&[(name, "ten")]).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{name}=\"ten\" is not a whole number")
            );
            assert!(
                std::error::Error::source(&e).is_some(),
                "{name} keeps its cause"
            );
        }
        let e = settings(&[("ROUTER_MODE", "batch")]).unwrap_err();
        assert!(e.to_string().starts_with("ROUTER_MODE=\"batch\""), "{e}");
    }

    #[test]
    fn rules_table_wins_over_a_file_and_modes_parse() {
        let s = settings(&[
            ("RULES_TABLE", "t"),
            ("RULES_FILE", "f.yaml"),
            ("ROUTER_MODE", "Tracker"),
            ("AWS_LAMBDA_FUNCTION_NAME", "fn"),
        ])
        .unwrap();
        assert_eq!(s.rules, Some(RulesLocation::Table("t".into())));
        assert_eq!(s.mode, Mode::Tracker);
        assert!(s.in_lambda);
    }

    #[test]
    fn environment_credentials_are_all_or_nothing_and_never_printed() {
        let e = settings(&[("ALTERYX_URL", "http://h/gallery/api/")]).unwrap_err();
        assert!(format!("{e:#}").contains("reading ALTERYX_URL"), "{e}");
        let s = settings(&[
            ("ALTERYX_URL", "http://h/gallery/api/"),
            ("ALTERYX_KEY", "k"),
            ("ALTERYX_SECRET", "hunter2"),
        ])
        .unwrap();
        assert!(s.env_credentials.is_some());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn lambda_without_an_executions_table_is_refused() {
        let s = settings(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]).unwrap();
        assert!(matches!(
            s.execution_store().await,
            Err(ConfigError::NoExecutionsTable)
        ));
    }
}
