//! Assembles the pipeline from the environment (the contracts in DESIGN.md), so the Lambda and
//! every CLI command build the same [`Router`] the same way.
//!
//! | variable | effect |
//! |---|---|
//! | `RULES_TABLE` / `RULES_FILE` | DynamoDB rules table, or a local YAML/JSON file or directory |
//! | `EXECUTIONS_TABLE` | DynamoDB executions table; else an SQLite file under `ALTERYX_ROUTER_HOME` (CLI only) |
//! | `ALTERYX_SECRET_ID` | default Secrets Manager secret; `ALTERYX_URL`/`_KEY`/`_SECRET` for local use |
//! | `PLUGIN_DIR` / `PLUGIN_S3_URI` | where plugins are found |
//! | `PLUGIN_CACHE_SECONDS` | how long a loaded plugin is used before its store is asked whether it changed (default 60) |
//! | `LOCAL_OBJECTS_DIR` | read objects' heads from `DIR/<bucket>/<key>` instead of S3 (local runs) |
//! | `CLAIM_LEASE_SECONDS`, `EXECUTION_TTL_DAYS` | claim lease (default 300) and record lifetime (default 90) |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::alteryx::{ClientOptions, ClientPool};
use crate::executions::{DynamoExecutionStore, ExecutionStore, SqliteExecutionStore};
use crate::plugin::{DirObjectReader, ObjectReader, PluginHost, PluginLimits, S3ObjectReader};
use crate::router::{Router, RouterSettings};
use crate::rules::{DynamoRuleStore, FileRuleSource, RuleSource, cache_ttl_from_env};
use crate::secrets::{CredentialSource, EnvSource, SecretsManagerSource};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
    }
}

/// The rule source named by `RULES_TABLE` or `RULES_FILE`.
pub async fn rule_source() -> anyhow::Result<Arc<dyn RuleSource>> {
    if let Some(table) = env("RULES_TABLE") {
        let sdk = crate::aws::sdk_config().await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        return Ok(Arc::new(DynamoRuleStore::new(
            client,
            table,
            cache_ttl_from_env(),
        )));
    }
    if let Some(path) = env("RULES_FILE") {
        return Ok(Arc::new(FileRuleSource::new(PathBuf::from(path))));
    }
    bail!(
        "no rules configured: set RULES_TABLE (DynamoDB table) or RULES_FILE (YAML/JSON file or directory)"
    )
}

/// The execution store named by `EXECUTIONS_TABLE`, else the local SQLite store.
pub async fn execution_store() -> anyhow::Result<Arc<dyn ExecutionStore>> {
    if let Some(table) = env("EXECUTIONS_TABLE") {
        let sdk = crate::aws::sdk_config().await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        return Ok(Arc::new(DynamoExecutionStore::new(client, table)));
    }
    if crate::aws::in_lambda() {
        bail!(
            "EXECUTIONS_TABLE is not set; inside Lambda the local store would be lost with the sandbox"
        )
    }
    Ok(Arc::new(
        SqliteExecutionStore::open_default().context("opening the local execution store")?,
    ))
}

/// Credentials: Secrets Manager (`ALTERYX_SECRET_ID` or a rule's `secret_id`), falling back
/// to `ALTERYX_URL`/`ALTERYX_KEY`/`ALTERYX_SECRET` when they are set.
pub async fn credential_source() -> anyhow::Result<Arc<dyn CredentialSource>> {
    let env_fallback = if env("ALTERYX_URL").is_some() {
        Some(
            EnvSource::from_env()
                .context("reading ALTERYX_URL/ALTERYX_KEY/ALTERYX_SECRET")?
                .config()
                .clone(),
        )
    } else {
        None
    };
    let sdk = crate::aws::sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    Ok(Arc::new(SecretsManagerSource::new(
        client,
        env("ALTERYX_SECRET_ID"),
        env_fallback,
    )))
}

pub fn router_settings() -> anyhow::Result<RouterSettings> {
    Ok(RouterSettings {
        claim_lease: Duration::from_secs(env_number("CLAIM_LEASE_SECONDS", 300)?),
        execution_ttl: Duration::from_secs(env_number("EXECUTION_TTL_DAYS", 90)? * 24 * 3600),
    })
}

/// The whole pipeline as the environment describes it.
pub async fn router_from_env() -> anyhow::Result<Router> {
    let rules = rule_source().await?;
    let executions = execution_store().await?;
    let credentials = credential_source().await?;
    let pool = Arc::new(ClientPool::new(credentials, ClientOptions::default()));
    let mut router = Router::new(rules, executions, pool).with_settings(router_settings()?);
    let sdk = crate::aws::sdk_config().await;
    if let Some(store) =
        crate::plugin::plugin_store_from_env(Some(&sdk)).context("configuring the plugin store")?
    {
        let host = PluginHost::new(store, PluginLimits::default())
            .context("starting the plugin host")?
            .with_cache_ttl(Duration::from_secs(env_number("PLUGIN_CACHE_SECONDS", 60)?));
        let objects: Arc<dyn ObjectReader> = match env("LOCAL_OBJECTS_DIR") {
            Some(dir) => Arc::new(DirObjectReader::new(PathBuf::from(dir))),
            None => Arc::new(S3ObjectReader::new(aws_sdk_s3::Client::new(&sdk))),
        };
        router = router.with_plugins(Arc::new(host), objects);
    }
    Ok(router)
}

/// The tracker as the environment describes it (`FAILURE_TOPIC_ARN`, `TRACK_STUCK_AFTER_MINUTES`).
pub async fn tracker_from_env(
    topic_arn: Option<String>,
    stuck_after_minutes: u64,
) -> anyhow::Result<crate::tracker::Tracker> {
    let executions = execution_store().await?;
    let credentials = credential_source().await?;
    let pool = Arc::new(ClientPool::new(credentials, ClientOptions::default()));
    let notifier = crate::cli::track::notifier(topic_arn).await;
    let settings = crate::tracker::TrackerSettings {
        stuck_after: Duration::from_secs(stuck_after_minutes * 60),
        budget: Duration::from_secs(env_number("TRACK_BUDGET_SECONDS", 45)?),
        ..Default::default()
    };
    Ok(crate::tracker::Tracker::new(
        executions, pool, notifier, settings,
    ))
}
