//! Rule stores behind one trait: a DynamoDB table (`RULES_TABLE`) and a local file or
//! directory (`RULES_FILE`).
//!
//! The DynamoDB store is lenient on read: an item that fails validation is logged with its id
//! and skipped, so one bad edit does not stop every other rule. It caches the compiled rule
//! set in-process for `RULES_CACHE_SECONDS` (default 60), which keeps a warm Lambda at zero
//! DynamoDB reads per event. The file store is strict: a bad file is an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::sync::Mutex;

use super::{Rule, RuleError, RuleSet, parse_rules_document};

/// Where the router gets its rules.
#[async_trait::async_trait]
pub trait RuleSource: Send + Sync {
    async fn rule_set(&self) -> Result<Arc<RuleSet>, RuleError>;
}

/// `RULES_CACHE_SECONDS`, default 60.
pub fn cache_ttl_from_env() -> Duration {
    std::env::var("RULES_CACHE_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}

/// The files read last time (with their modification times) and the rules they gave.
type FileCache = Option<(Vec<(PathBuf, SystemTime)>, Arc<RuleSet>)>;

/// Rules from a YAML/JSON file, or every `*.yaml`/`*.yml`/`*.json` in a directory.
/// Reloaded when a file's modification time changes.
pub struct FileRuleSource {
    path: PathBuf,
    cache: Mutex<FileCache>,
}

impl FileRuleSource {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cache: Mutex::new(None),
        }
    }

    fn files(&self) -> Result<Vec<(PathBuf, SystemTime)>, RuleError> {
        let io = |p: &Path, e: std::io::Error| RuleError::Parse {
            source_name: p.display().to_string(),
            detail: e.to_string(),
        };
        let mut paths = Vec::new();
        if self.path.is_dir() {
            for entry in std::fs::read_dir(&self.path).map_err(|e| io(&self.path, e))? {
                let p = entry.map_err(|e| io(&self.path, e))?.path();
                if matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                ) {
                    paths.push(p);
                }
            }
            paths.sort();
        } else {
            paths.push(self.path.clone());
        }
        paths
            .into_iter()
            .map(|p| {
                let modified = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .map_err(|e| io(&p, e))?;
                Ok((p, modified))
            })
            .collect()
    }

    /// Read and parse every file (no validation beyond parsing).
    pub fn read_rules(&self) -> Result<Vec<Rule>, RuleError> {
        let mut rules = Vec::new();
        for (p, _) in self.files()? {
            let text = std::fs::read_to_string(&p).map_err(|e| RuleError::Parse {
                source_name: p.display().to_string(),
                detail: e.to_string(),
            })?;
            rules.extend(parse_rules_document(&text, &p.display().to_string())?);
        }
        Ok(rules)
    }
}

#[async_trait::async_trait]
impl RuleSource for FileRuleSource {
    async fn rule_set(&self) -> Result<Arc<RuleSet>, RuleError> {
        let files = self.files()?;
        let mut cache = self.cache.lock().await;
        if let Some((seen, set)) = cache.as_ref()
            && *seen == files
        {
            return Ok(Arc::clone(set));
        }
        let set = Arc::new(RuleSet::new(self.read_rules()?)?);
        *cache = Some((files, Arc::clone(&set)));
        Ok(set)
    }
}

/// Rules in a DynamoDB table (partition key `id`, one item per rule).
pub struct DynamoRuleStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    cache_ttl: Duration,
    page_size: Option<i32>,
    cache: Mutex<Option<(Instant, Arc<RuleSet>)>>,
}

fn store_error(action: &str, table: &str, e: impl std::error::Error) -> RuleError {
    RuleError::Store {
        message: format!(
            "{action} on table {table}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        ),
    }
}

impl DynamoRuleStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, cache_ttl: Duration) -> Self {
        Self {
            client,
            table,
            cache_ttl,
            page_size: None,
            cache: Mutex::new(None),
        }
    }

    /// Items per Scan page (tests use a small value to exercise pagination).
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Validate and store a rule (replacing one with the same id).
    pub async fn put(&self, rule: &Rule) -> Result<(), RuleError> {
        super::CompiledRule::compile(rule.clone())?;
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(rule).map_err(|e| RuleError::Store {
                message: format!("rule `{}` cannot be stored: {e}", rule.id),
            })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error("PutItem", &self.table, e))?;
        self.cache.lock().await.take();
        Ok(())
    }

    /// Delete a rule; false when there was none with that id.
    pub async fn delete(&self, id: &str) -> Result<bool, RuleError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", &self.table, e))?;
        self.cache.lock().await.take();
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Every item as stored, each parsed on its own (invalid ones included, for `rules list`).
    pub async fn list(&self) -> Result<Vec<(String, Result<Rule, RuleError>)>, RuleError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_limit(self.page_size)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error("Scan", &self.table, e))?;
            for item in page.items.unwrap_or_default() {
                let id = match item.get("id") {
                    Some(AttributeValue::S(s)) => s.clone(),
                    _ => "(item without a string `id`)".to_string(),
                };
                let parsed = serde_dynamo::from_item::<_, Rule>(item)
                    .map_err(|e| RuleError::Invalid {
                        rule: id.clone(),
                        field: "(item)".into(),
                        message: e.to_string(),
                    })
                    .and_then(|rule| super::CompiledRule::compile(rule.clone()).map(|_| rule));
                out.push((id, parsed));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl RuleSource for DynamoRuleStore {
    async fn rule_set(&self) -> Result<Arc<RuleSet>, RuleError> {
        let mut cache = self.cache.lock().await;
        if let Some((loaded, set)) = cache.as_ref()
            && loaded.elapsed() < self.cache_ttl
        {
            return Ok(Arc::clone(set));
        }
        let mut rules = Vec::new();
        for (id, parsed) in self.list().await? {
            match parsed {
                Ok(rule) => rules.push(rule),
                Err(e) => tracing::warn!(rule = %id, table = %self.table, error = %e,
                    "invalid rule skipped; the other rules keep working"),
            }
        }
        let (set, errors) = RuleSet::lenient(rules);
        for e in errors {
            tracing::warn!(table = %self.table, error = %e, "rule skipped");
        }
        let set = Arc::new(set);
        tracing::debug!(rules = set.len(), table = %self.table, "rules loaded");
        *cache = Some((Instant::now(), Arc::clone(&set)));
        Ok(set)
    }
}
