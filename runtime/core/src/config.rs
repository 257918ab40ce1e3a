//! The environment contract, read and validated in one place.
//!
//! [`Settings::from_env`] parses every variable the Lambda and the CLI share, so a malformed
//! value is the same error, naming the variable, wherever it is read; nothing falls back to a
//! default silently. The builders below then assemble the pipeline from the settings, so the
//! Lambda and every CLI command build the same [`Router`] and [`Tracker`] the same way. The
//! table of variables is in the README ("Configuration"); `docs/architecture.md` explains the contract.
//!
//! Three process-wide concerns read their own variables once, before any settings exist:
//! logging (`RUST_LOG`, `LOG_FORMAT`, in [`crate::logging`]), trusted roots (`SSL_CERT_FILE`,
//! `SSL_CERT_DIR`, `ALTERYX_CA_BUNDLE`, in [`crate::tls`]) and the AWS SDK (`AWS_*`, in
//! [`crate::aws`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::alteryx::{ClientOptions, ServerConfig};
use crate::executions::reconcile::ReconcileSettings;
use crate::executions::{DynamoExecutionStore, ExecutionError, ExecutionStore};
use crate::metrics::{Metrics, MetricsMode, MetricsSettings};
use crate::plugin::{
    ChainPluginStore, DirObjectReader, DirPluginStore, ObjectReader, PluginError, PluginHost,
    PluginLimits, PluginStore, S3ObjectReader, S3PluginStore,
};
use crate::render::{DirObjectDetails, ObjectDetails, S3ObjectDetails};
use crate::router::{Router, RouterSettings};
use crate::rules::problems::{LogProblemNotifier, ProblemNotifier, SnsProblemNotifier};
use crate::rules::publish::SnapshotPublisher;
use crate::rules::snapshot_store::{SnapshotLocation, SnapshotStore};
use crate::rules::{DynamoRuleStore, FileRuleSource, RuleSource};
use crate::secrets::{
    ClientPool, CredentialSource, SecretString, SecretsError, SecretsManagerSource,
};
use crate::tracker::{Tracker, TrackerSettings};

/// Variables that no longer exist, and what replaced them: refused rather than ignored, so a
/// deployment that still sets one learns what to set instead.
const RETIRED: &[(&str, &str)] = &[(
    "CLAIM_LEASE_SECONDS",
    "leases now end with the invocation's deadline; set CLAIM_LEASE_MARGIN_SECONDS (default 60) for the margin after it",
)];

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
    #[error("RULES_TABLE is not set: the rules snapshot is built from the DynamoDB rules table")]
    NoRulesTable,
    #[error("RULES_SNAPSHOT_URI is not set (s3://BUCKET/KEY of the rules snapshot)")]
    NoSnapshotUri,
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
    /// Publishes the rules snapshot after rules-table changes and notifies invalid rules
    /// (`ROUTER_MODE=rules`, fed by the table's DynamoDB stream).
    Rules,
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
    /// `RULES_MAX_STALE_SECONDS` (default 600): how long the last good rule set keeps routing
    /// when the rules cannot be read.
    pub rules_max_stale: Duration,
    /// `RULES_SNAPSHOT_URI` (`s3://bucket/key`): the compiled rules snapshot of `RULES_TABLE`.
    pub rules_snapshot: Option<SnapshotLocation>,
    /// `RULES_DECODED_MAX` (default 10000): the most rules of a snapshot kept decoded at once.
    pub rules_decoded_max: usize,
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
    /// `CLAIM_LEASE_MARGIN_SECONDS` (default 60): a claim's lease ends this long after the
    /// invocation's deadline.
    pub claim_lease_margin: Duration,
    /// `INVOCATION_TIMEOUT_SECONDS` (default 300): the deadline of CLI commands that route or
    /// retry (Lambda invocations have their own).
    pub invocation_timeout: Duration,
    /// `OUTCOME_WRITE_RESERVE_SECONDS` (default 5): time kept back before the deadline to record
    /// an outcome.
    pub outcome_write_reserve: Duration,
    /// `ALTERYX_REQUEST_TIMEOUT_SECONDS` (default 30): one Alteryx request's timeout.
    pub alteryx_request_timeout: Duration,
    /// `RECONCILE_GRACE_SECONDS` (default 30): wait this long after a job request surely ended
    /// before reconciling it.
    pub reconcile_grace: Duration,
    /// `RECONCILE_CLOCK_SKEW_SECONDS` (default 120): how far Alteryx's clock may be from ours.
    pub reconcile_clock_skew: Duration,
    /// `SECRETS_CACHE_SECONDS` (default 300): how long a secret (and its Alteryx client) is used.
    pub secrets_cache: Duration,
    /// `DYNAMODB_ATTEMPT_TIMEOUT_SECONDS` (default 5): one request of the execution store to
    /// DynamoDB is abandoned (and retried by the SDK) after this.
    pub dynamodb_attempt_timeout: Duration,
    /// `EXECUTION_TTL_DAYS` (default 90).
    pub execution_ttl: Duration,
    /// `FAILURE_TOPIC_ARN`: where the tracker publishes failures.
    pub failure_topic_arn: Option<String>,
    /// `TRACK_STUCK_AFTER_MINUTES` (default 60).
    pub track_stuck_after: Duration,
    /// `TRACK_BUDGET_SECONDS` (default 45): a tracker pass stops starting work after this.
    pub track_budget: Duration,
    /// `TRACK_REPEAT_SECONDS` (default 0: one pass per invocation): the scheduled tracker
    /// function runs another pass this long after one that left executions in the waiting
    /// line, ...
    pub track_repeat: Duration,
    /// ... while it has run less than `TRACK_REPEAT_FOR_SECONDS` (default 50).
    pub track_repeat_for: Duration,
    /// `TRACK_MAX_EXECUTIONS` (default 500): `SUBMITTED` executions polled per pass.
    pub track_max_executions: usize,
    /// `TRACK_STALE_AFTER_SECONDS` (default 300): a claim this long past its lease is stale.
    pub track_stale_after: Duration,
    /// `TRACK_MAX_DISPATCH` (default 100): `WAITING` executions a tracker pass submits.
    pub track_max_dispatch: usize,
    /// `WAITING_GIVE_UP_SECONDS` (default 86400): an execution waiting for Alteryx (an outage)
    /// this long ends `ERROR` with a notice.
    pub waiting_give_up: Duration,
    /// `WAITING_CAP_GIVE_UP_SECONDS` (default 604800, 7 days): an execution waiting for a
    /// free slot of its concurrency group this long ends `ERROR` with a notice.
    pub waiting_cap_give_up: Duration,
    /// Running inside AWS Lambda (`AWS_LAMBDA_RUNTIME_API` or `AWS_LAMBDA_FUNCTION_NAME`).
    pub in_lambda: bool,
    /// `METRICS` (`emf` by default inside Lambda, `off` elsewhere so the CLI's stdout stays
    /// clean), `METRICS_DEPLOYMENT` (default `alteryx-router`), `METRICS_BY_RULE` (default true).
    pub metrics: MetricsSettings,
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

    /// A number that must not be zero.
    fn positive(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.number(name, default)? {
            0 => Err(ConfigError::Invalid {
                name,
                value: "0".into(),
                message: "must be at least 1".into(),
            }),
            n => Ok(n),
        }
    }

    fn positive_seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(name, default).map(Duration::from_secs)
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
        for (name, instead) in RETIRED {
            if let Some(value) = env.text(name) {
                return Err(ConfigError::Invalid {
                    name,
                    value,
                    message: format!("no longer used: {instead}"),
                });
            }
        }
        let mode = match env.text("ROUTER_MODE") {
            None => Mode::Router,
            Some(m) if m.trim().eq_ignore_ascii_case("router") => Mode::Router,
            Some(m) if m.trim().eq_ignore_ascii_case("tracker") => Mode::Tracker,
            Some(m) if m.trim().eq_ignore_ascii_case("rules") => Mode::Rules,
            Some(value) => {
                return Err(ConfigError::Invalid {
                    name: "ROUTER_MODE",
                    value,
                    message: "expected `router` (default), `tracker` or `rules`".into(),
                });
            }
        };
        let rules_snapshot = match env.text("RULES_SNAPSHOT_URI") {
            None => None,
            Some(value) => Some(SnapshotLocation::parse(value.trim()).map_err(|message| {
                ConfigError::Invalid {
                    name: "RULES_SNAPSHOT_URI",
                    value,
                    message,
                }
            })?),
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
        let metrics = MetricsSettings {
            mode: match env.text("METRICS") {
                None if in_lambda => MetricsMode::Emf,
                None => MetricsMode::Off,
                Some(m) if m.trim().eq_ignore_ascii_case("emf") => MetricsMode::Emf,
                Some(m) if m.trim().eq_ignore_ascii_case("off") => MetricsMode::Off,
                Some(value) => {
                    return Err(ConfigError::Invalid {
                        name: "METRICS",
                        value,
                        message:
                            "expected `emf` (CloudWatch embedded metric format on stdout) or `off`"
                                .into(),
                    });
                }
            },
            deployment: env
                .text("METRICS_DEPLOYMENT")
                .map(|d| d.trim().to_string())
                .unwrap_or_else(|| crate::metrics::DEFAULT_DEPLOYMENT.into()),
            by_rule: env.flag("METRICS_BY_RULE", true)?,
        };
        Ok(Settings {
            mode,
            rules,
            rules_cache: env.seconds("RULES_CACHE_SECONDS", 60)?,
            rules_max_stale: env.seconds(
                "RULES_MAX_STALE_SECONDS",
                crate::rules::store::DEFAULT_MAX_STALE.as_secs(),
            )?,
            rules_snapshot,
            rules_decoded_max: env.positive(
                "RULES_DECODED_MAX",
                crate::rules::DEFAULT_DECODED_MAX as u64,
            )? as usize,
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
            claim_lease_margin: env.seconds("CLAIM_LEASE_MARGIN_SECONDS", 60)?,
            invocation_timeout: env.positive_seconds("INVOCATION_TIMEOUT_SECONDS", 300)?,
            outcome_write_reserve: env.seconds("OUTCOME_WRITE_RESERVE_SECONDS", 5)?,
            alteryx_request_timeout: env.positive_seconds("ALTERYX_REQUEST_TIMEOUT_SECONDS", 30)?,
            reconcile_grace: env.seconds("RECONCILE_GRACE_SECONDS", 30)?,
            reconcile_clock_skew: env.seconds("RECONCILE_CLOCK_SKEW_SECONDS", 120)?,
            secrets_cache: env.seconds("SECRETS_CACHE_SECONDS", 300)?,
            dynamodb_attempt_timeout: env
                .positive_seconds("DYNAMODB_ATTEMPT_TIMEOUT_SECONDS", 5)?,
            execution_ttl: Duration::from_secs(env.number("EXECUTION_TTL_DAYS", 90)? * 24 * 3600),
            failure_topic_arn: env.text("FAILURE_TOPIC_ARN"),
            track_stuck_after: Duration::from_secs(
                env.number("TRACK_STUCK_AFTER_MINUTES", 60)? * 60,
            ),
            track_budget: env.seconds("TRACK_BUDGET_SECONDS", 45)?,
            track_repeat: env.seconds("TRACK_REPEAT_SECONDS", 0)?,
            track_repeat_for: env.seconds("TRACK_REPEAT_FOR_SECONDS", 50)?,
            track_max_executions: env.positive("TRACK_MAX_EXECUTIONS", 500)? as usize,
            track_stale_after: env.seconds("TRACK_STALE_AFTER_SECONDS", 300)?,
            track_max_dispatch: env.number("TRACK_MAX_DISPATCH", 100)? as usize,
            waiting_give_up: env.positive_seconds("WAITING_GIVE_UP_SECONDS", 24 * 3600)?,
            waiting_cap_give_up: env
                .positive_seconds("WAITING_CAP_GIVE_UP_SECONDS", 7 * 24 * 3600)?,
            in_lambda,
            metrics,
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

    /// The DynamoDB rule store for `table` (reading the snapshot when `RULES_SNAPSHOT_URI`
    /// is set).
    pub async fn dynamo_rules(&self, table: &str) -> DynamoRuleStore {
        let sdk = crate::aws::sdk_config().await;
        let store = DynamoRuleStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table.to_string(),
            self.rules_cache,
        )
        .with_max_stale(self.rules_max_stale)
        .with_decoded_max(self.rules_decoded_max);
        match self.snapshot_store().await {
            Some(snapshot) => store.with_snapshot(snapshot),
            None => store,
        }
    }

    /// The rules snapshot named by `RULES_SNAPSHOT_URI`.
    pub async fn snapshot_store(&self) -> Option<SnapshotStore> {
        let location = self.rules_snapshot.clone()?;
        let sdk = crate::aws::sdk_config().await;
        Some(SnapshotStore::new(aws_sdk_s3::Client::new(&sdk), location))
    }

    /// What publishes the snapshot of `RULES_TABLE` to `RULES_SNAPSHOT_URI`; with `notify`,
    /// new invalid rules are also published to `FAILURE_TOPIC_ARN` (logged without it).
    pub async fn snapshot_publisher(&self, notify: bool) -> Result<SnapshotPublisher, ConfigError> {
        let table = match &self.rules {
            Some(RulesLocation::Table(table)) => table.clone(),
            _ => return Err(ConfigError::NoRulesTable),
        };
        let store = self
            .snapshot_store()
            .await
            .ok_or(ConfigError::NoSnapshotUri)?;
        let sdk = crate::aws::sdk_config().await;
        let publisher = SnapshotPublisher::new(aws_sdk_dynamodb::Client::new(&sdk), table, store);
        if !notify {
            return Ok(publisher);
        }
        let notifier: Arc<dyn ProblemNotifier> = match &self.failure_topic_arn {
            Some(arn) => Arc::new(SnsProblemNotifier::new(
                aws_sdk_sns::Client::new(&sdk),
                arn.clone(),
            )),
            None => Arc::new(LogProblemNotifier),
        };
        Ok(publisher.with_notifier(notifier))
    }

    /// The execution store named by `EXECUTIONS_TABLE`, else (outside Lambda, with the `sqlite`
    /// feature) the local SQLite store under `ALTERYX_ROUTER_HOME`.
    pub async fn execution_store(&self) -> Result<Arc<dyn ExecutionStore>, ConfigError> {
        if let Some(table) = &self.executions_table {
            let sdk = crate::aws::sdk_config().await;
            // A request that hangs (an overloaded endpoint, a lost answer) is abandoned and
            // tried again by the SDK well before the invocation's deadline.
            let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(self.dynamodb_attempt_timeout)
                .build();
            let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
                .timeout_config(timeouts)
                .interceptor(crate::aws::CountDynamoRequests)
                .build();
            let client = aws_sdk_dynamodb::Client::from_conf(config);
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
        Arc::new(
            SecretsManagerSource::new(
                client,
                self.default_secret_id.clone(),
                self.env_credentials.clone(),
            )
            .with_cache_ttl(self.secrets_cache),
        )
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
            claim_lease_margin: self.claim_lease_margin,
            execution_ttl: self.execution_ttl,
            invocation_timeout: self.invocation_timeout,
            write_reserve: self.outcome_write_reserve,
            reconcile_grace: self.reconcile_grace,
            reconcile: self.reconcile_settings(),
        }
    }

    fn reconcile_settings(&self) -> ReconcileSettings {
        ReconcileSettings {
            clock_skew: self.reconcile_clock_skew,
            ..ReconcileSettings::default()
        }
    }

    /// Alteryx client options: the defaults with `ALTERYX_REQUEST_TIMEOUT_SECONDS`.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            request_timeout: self.alteryx_request_timeout,
            ..ClientOptions::default()
        }
    }

    /// The pool of Alteryx clients, one per secret, kept as long as the secrets are.
    pub async fn client_pool(&self) -> Arc<ClientPool> {
        Arc::new(
            ClientPool::new(self.credential_source().await, self.client_options())
                .with_max_age(self.secrets_cache),
        )
    }

    /// The whole pipeline as the settings describe it.
    pub async fn router(&self) -> Result<Router, ConfigError> {
        let rules = self.rule_source().await?;
        let executions = self.execution_store().await?;
        let pool = self.client_pool().await;
        let notifier =
            crate::notify::notifier(self.failure_topic_arn.clone(), self.cli_environment().await)
                .await;
        let mut router = Router::new(rules, executions, pool)
            .with_settings(self.router_settings())
            .with_notifier(notifier)
            .with_object_details(self.object_details().await);
        if let Some(store) = self.plugin_store().await? {
            let host = PluginHost::new(store, PluginLimits::default())
                .map_err(ConfigError::Plugins)?
                .with_cache_ttl(self.plugin_cache);
            router = router.with_plugins(Arc::new(host), self.object_reader().await);
        }
        Ok(router)
    }

    /// Where metrics go (`METRICS`): the Lambda records each invocation with it.
    pub fn metrics(&self) -> Metrics {
        Metrics::new(self.metrics.clone())
    }

    /// How the CLI reaches this deployment (`RULES_TABLE`, `EXECUTIONS_TABLE`,
    /// `ALTERYX_SECRET_ID`, `AWS_REGION`): failure notices print it under the retry command.
    pub async fn cli_environment(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(RulesLocation::Table(table)) = &self.rules {
            env.push(("RULES_TABLE".to_string(), table.clone()));
        }
        if let Some(table) = &self.executions_table {
            env.push(("EXECUTIONS_TABLE".to_string(), table.clone()));
        }
        if let Some(secret) = &self.default_secret_id {
            env.push(("ALTERYX_SECRET_ID".to_string(), secret.clone()));
        }
        if let Some(region) = crate::aws::sdk_config().await.region() {
            env.push(("AWS_REGION".to_string(), region.to_string()));
        }
        env
    }

    /// The tracker as the settings describe it.
    pub async fn tracker(&self) -> Result<Tracker, ConfigError> {
        let executions = self.execution_store().await?;
        let pool = self.client_pool().await;
        let notifier =
            crate::notify::notifier(self.failure_topic_arn.clone(), self.cli_environment().await)
                .await;
        let settings = TrackerSettings {
            stuck_after: self.track_stuck_after,
            budget: self.track_budget,
            max_executions: self.track_max_executions,
            stale_after: self.track_stale_after,
            claim_lease_margin: self.claim_lease_margin,
            reconcile: self.reconcile_settings(),
            max_dispatch: self.track_max_dispatch,
            waiting_give_up: self.waiting_give_up,
            cap_give_up: self.waiting_cap_give_up,
            repeat: self.track_repeat,
            repeat_for: self.track_repeat_for,
            ..Default::default()
        };
        let tracker = Tracker::new(executions, pool, notifier, settings);
        if self.rules.is_none() {
            tracing::warn!(
                "no rules configured (RULES_TABLE, RULES_SNAPSHOT_URI or RULES_FILE): the tracker leaves the waiting line alone"
            );
            return Ok(tracker);
        }
        Ok(tracker.with_dispatch(Arc::new(self.router().await?)))
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
        assert_eq!(s.rules_max_stale, Duration::from_secs(600));
        assert_eq!(s.rules_snapshot, None);
        assert_eq!(s.claim_lease_margin, Duration::from_secs(60));
        assert_eq!(s.invocation_timeout, Duration::from_secs(300));
        assert_eq!(s.alteryx_request_timeout, Duration::from_secs(30));
        assert_eq!(s.track_stale_after, Duration::from_secs(300));
        assert_eq!(s.track_max_executions, 500);
        assert_eq!(s.track_max_dispatch, 100);
        assert_eq!(s.waiting_give_up, Duration::from_secs(86400));
        assert_eq!(s.waiting_cap_give_up, Duration::from_secs(7 * 86400));
        assert_eq!(s.execution_ttl, Duration::from_secs(90 * 86400));
        assert_eq!(s.track_stuck_after, Duration::from_secs(3600));
        assert_eq!(s.home, PathBuf::from("/home/u/.alteryx-router"));
        assert!(s.rules.is_none() && !s.in_lambda);
        assert!(
            s.plugin_require_pin,
            "plugins from S3 must be pinned unless turned off"
        );
        assert_eq!(
            s.metrics.mode,
            MetricsMode::Off,
            "no metrics on a CLI's stdout"
        );
        assert_eq!(s.metrics.deployment, "alteryx-router");
        assert!(s.metrics.by_rule);
    }

    #[test]
    fn metrics_are_on_inside_lambda_unless_turned_off_and_bad_values_are_named() {
        let lambda = settings(&[("AWS_LAMBDA_FUNCTION_NAME", "fn")]).unwrap();
        assert_eq!(lambda.metrics.mode, MetricsMode::Emf);
        let off = settings(&[("AWS_LAMBDA_FUNCTION_NAME", "fn"), ("METRICS", "OFF")]).unwrap();
        assert_eq!(off.metrics.mode, MetricsMode::Off);
        let cli = settings(&[
            ("METRICS", "emf"),
            ("METRICS_DEPLOYMENT", " prod "),
            ("METRICS_BY_RULE", "false"),
        ])
        .unwrap();
        assert_eq!(cli.metrics.mode, MetricsMode::Emf);
        assert_eq!(cli.metrics.deployment, "prod");
        assert!(!cli.metrics.by_rule);
        let e = settings(&[("METRICS", "statsd")]).unwrap_err();
        assert!(e.to_string().starts_with("METRICS=\"statsd\""), "{e}");
        let e = settings(&[("METRICS_BY_RULE", "maybe")]).unwrap_err();
        assert!(
            e.to_string().starts_with("METRICS_BY_RULE=\"maybe\""),
            "{e}"
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
            "RULES_MAX_STALE_SECONDS",
            "PLUGIN_CACHE_SECONDS",
            "CLAIM_LEASE_MARGIN_SECONDS",
            "INVOCATION_TIMEOUT_SECONDS",
            "OUTCOME_WRITE_RESERVE_SECONDS",
            "ALTERYX_REQUEST_TIMEOUT_SECONDS",
            "RECONCILE_GRACE_SECONDS",
            "RECONCILE_CLOCK_SKEW_SECONDS",
            "SECRETS_CACHE_SECONDS",
            "DYNAMODB_ATTEMPT_TIMEOUT_SECONDS",
            "TRACK_MAX_EXECUTIONS",
            "TRACK_STALE_AFTER_SECONDS",
            "EXECUTION_TTL_DAYS",
            "TRACK_STUCK_AFTER_MINUTES",
            "TRACK_BUDGET_SECONDS",
            "TRACK_REPEAT_SECONDS",
            "TRACK_REPEAT_FOR_SECONDS",
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
        let e = settings(&[("ALTERYX_REQUEST_TIMEOUT_SECONDS", "0")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ALTERYX_REQUEST_TIMEOUT_SECONDS=\"0\": must be at least 1"
        );
        let e = settings(&[("CLAIM_LEASE_SECONDS", "300")]).unwrap_err();
        assert!(
            e.to_string().contains("CLAIM_LEASE_MARGIN_SECONDS"),
            "a retired variable says what replaced it: {e}"
        );
        let e = settings(&[("ROUTER_MODE", "batch")]).unwrap_err();
        assert!(e.to_string().starts_with("ROUTER_MODE=\"batch\""), "{e}");
        let e = settings(&[("RULES_SNAPSHOT_URI", "bucket/key")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("RULES_SNAPSHOT_URI=\"bucket/key\": expected s3://"),
            "{e}"
        );
        let s = settings(&[
            ("RULES_SNAPSHOT_URI", "s3://b/rules.snapshot"),
            ("ROUTER_MODE", "rules"),
            ("RULES_MAX_STALE_SECONDS", "30"),
        ])
        .unwrap();
        assert_eq!(s.mode, Mode::Rules);
        assert_eq!(s.rules_max_stale, Duration::from_secs(30));
        assert_eq!(
            s.rules_snapshot.map(|l| l.to_string()).as_deref(),
            Some("s3://b/rules.snapshot")
        );
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
