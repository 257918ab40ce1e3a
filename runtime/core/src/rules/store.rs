//! Rule stores behind one trait: a DynamoDB table (`RULES_TABLE`) and a local file or
//! directory (`RULES_FILE`).
//!
//! The DynamoDB store is lenient on read: an item that fails validation is logged with its id
//! and skipped, so one bad edit does not stop every other rule. It reads the rules from the
//! compiled snapshot when one is configured (`RULES_SNAPSHOT_URI`: one request, decoded lazily,
//! see [`super::snapshot`]) and otherwise, or when the snapshot cannot be read, scans the table
//! in parallel segments ([`super::scan`]). It caches the rule set in-process for
//! `RULES_CACHE_SECONDS` (default 60), which keeps a warm Lambda at zero reads per event; then
//! one conditional GET (a `304` while nothing changed) or one scan refreshes it. If that
//! fails, the last good set keeps routing, with a warning, for `RULES_MAX_STALE_SECONDS`.
//! The file store is strict: a bad file is an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;

use super::scan;
use super::snapshot_store::{Fetched, SnapshotStore};
use super::{Rule, RuleError, RuleSet, parse_rules_document};

/// Where the router gets its rules.
#[async_trait::async_trait]
pub trait RuleSource: Send + Sync {
    async fn rule_set(&self) -> Result<Arc<RuleSet>, RuleError>;
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

    pub(crate) fn files(&self) -> Result<Vec<(PathBuf, SystemTime)>, RuleError> {
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
        let set = Arc::new(super::load::strict(std::slice::from_ref(&self.path))?);
        *cache = Some((files, Arc::clone(&set)));
        Ok(set)
    }
}

/// Rules in a DynamoDB table (partition key `id`, one item per rule).
pub struct DynamoRuleStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    cache_ttl: Duration,
    max_stale: Duration,
    page_size: Option<i32>,
    segments: Option<u32>,
    snapshot: Option<SnapshotStore>,
    decoded_max: usize,
    cache: Mutex<Cache>,
}

/// The rule set in use and what is known about it.
#[derive(Default)]
struct Cache {
    set: Option<Arc<RuleSet>>,
    /// The ETag of the snapshot the set was read from.
    etag: Option<String>,
    /// When the set was last confirmed current (loaded, or the snapshot answered 304).
    confirmed: Option<Instant>,
    /// After a failed refresh: no new attempt before this.
    retry_at: Option<Instant>,
}

enum Refreshed {
    Unchanged,
    Loaded {
        set: Arc<RuleSet>,
        etag: Option<String>,
    },
}

/// How many BatchWriteItem requests `put_many` keeps in flight.
const WRITES_IN_FLIGHT: usize = 4;

impl DynamoRuleStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, cache_ttl: Duration) -> Self {
        Self {
            client,
            table,
            cache_ttl,
            max_stale: DEFAULT_MAX_STALE,
            page_size: None,
            segments: None,
            snapshot: None,
            decoded_max: super::DEFAULT_DECODED_MAX,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Items per Scan page (tests use a small value to exercise pagination).
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
        self
    }

    /// Scan in this many parallel segments instead of sizing them from the table.
    pub fn with_scan_segments(mut self, segments: u32) -> Self {
        self.segments = Some(segments);
        self
    }

    /// How long the last good rule set may be served when the rules cannot be read
    /// (`RULES_MAX_STALE_SECONDS`).
    pub fn with_max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Keep at most this many rules of a snapshot decoded (`RULES_DECODED_MAX`).
    pub fn with_decoded_max(mut self, rules: usize) -> Self {
        self.decoded_max = rules;
        self
    }

    /// Read the rules from this snapshot (`RULES_SNAPSHOT_URI`), scanning the table only when
    /// there is none or it does not read.
    pub fn with_snapshot(mut self, snapshot: SnapshotStore) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn snapshot(&self) -> Option<&SnapshotStore> {
        self.snapshot.as_ref()
    }

    /// Validate and store a rule (replacing one with the same id).
    pub async fn put(&self, rule: &Rule) -> Result<(), RuleError> {
        super::CompiledRule::compile(rule.clone())?;
        let item = to_item(rule)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .customize()
            .config_override(scan::retry_config())
            .send()
            .await
            .map_err(|e| scan::store_error(&self.table, "PutItem", e))?;
        *self.cache.lock().await = Cache::default();
        Ok(())
    }

    /// Validate every rule, then store them all (25 to a BatchWriteItem request, a few
    /// requests at a time; items DynamoDB leaves unprocessed are sent again with backoff).
    pub async fn put_many(&self, rules: &[Rule]) -> Result<(), RuleError> {
        let mut requests = Vec::with_capacity(rules.len());
        for rule in rules {
            super::CompiledRule::compile(rule.clone())?;
            let put = aws_sdk_dynamodb::types::PutRequest::builder()
                .set_item(Some(to_item(rule)?))
                .build()
                .map_err(|e| scan::store_error(&self.table, "BatchWriteItem", e))?;
            requests.push(
                aws_sdk_dynamodb::types::WriteRequest::builder()
                    .put_request(put)
                    .build(),
            );
        }
        let batches: Vec<Vec<_>> = requests.chunks(25).map(<[_]>::to_vec).collect();
        futures::stream::iter(batches.into_iter().map(|batch| self.write_batch(batch)))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        *self.cache.lock().await = Cache::default();
        Ok(())
    }

    async fn write_batch(
        &self,
        mut batch: Vec<aws_sdk_dynamodb::types::WriteRequest>,
    ) -> Result<(), RuleError> {
        let mut backoff = Duration::from_millis(50);
        for _ in 0..10 {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .customize()
                .config_override(scan::retry_config())
                .send()
                .await
                .map_err(|e| scan::store_error(&self.table, "BatchWriteItem", e))?;
            batch = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        Err(scan::store_error(
            &self.table,
            "BatchWriteItem",
            std::io::Error::other(format!(
                "{} item(s) still unprocessed after 10 attempts (throttled)",
                batch.len()
            )),
        ))
    }

    /// Delete a rule; false when there was none with that id.
    pub async fn delete(&self, id: &str) -> Result<bool, RuleError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .customize()
            .config_override(scan::retry_config())
            .send()
            .await
            .map_err(|e| scan::store_error(&self.table, "DeleteItem", e))?;
        *self.cache.lock().await = Cache::default();
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Every item as stored, each read and validated on its own (invalid ones included, for
    /// `rules list`), sorted by id.
    pub async fn list(&self) -> Result<Vec<(String, Result<Rule, RuleError>)>, RuleError> {
        let items =
            scan::scan_table(&self.client, &self.table, self.segments, self.page_size).await?;
        let mut out: Vec<_> = items.into_iter().map(scan::read_item).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The table's rules by a scan: invalid items are logged and left out.
    async fn scan_rules(&self) -> Result<Arc<RuleSet>, RuleError> {
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
        tracing::debug!(rules = set.len(), table = %self.table, "rules loaded by a scan");
        Ok(Arc::new(set))
    }

    /// The rules as they are now: from the snapshot when there is a readable one for this
    /// table (unchanged since `etag`, or new), else from a scan.
    async fn refresh(&self, etag: Option<&str>) -> Result<Refreshed, RuleError> {
        if let Some(snapshot) = &self.snapshot {
            let location = snapshot.location().to_string();
            match snapshot.fetch(etag).await {
                Ok(Fetched::NotModified) => return Ok(Refreshed::Unchanged),
                Ok(Fetched::Found { bytes, etag }) => {
                    match super::snapshot::decode_keeping(bytes, self.decoded_max) {
                        Ok((info, set)) if info.table == self.table => {
                            if !info.invalid.is_empty() {
                                let ids: Vec<&str> = info
                                    .invalid
                                    .iter()
                                    .take(10)
                                    .map(|i| i.id.as_str())
                                    .collect();
                                tracing::warn!(table = %self.table, invalid = info.invalid.len(), ?ids,
                                "invalid rules are skipped (`alteryx-router rules list --invalid`)");
                            }
                            tracing::debug!(rules = set.len(), %location, "rules loaded from the snapshot");
                            return Ok(Refreshed::Loaded {
                                set: Arc::new(set),
                                etag: Some(etag),
                            });
                        }
                        Ok((info, _)) => tracing::warn!(%location, snapshot_table = %info.table,
                        table = %self.table, "the rules snapshot is of another table; scanning"),
                        Err(e) => tracing::warn!(%location, error = %crate::error_chain(&e),
                        "the rules snapshot does not read; scanning the table"),
                    }
                }
                Ok(Fetched::Missing) => tracing::info!(%location,
                    "no rules snapshot yet (`alteryx-router rules snapshot` writes one); scanning the table"),
                Err(e) => tracing::warn!(%location, error = %crate::error_chain(&e),
                    "could not read the rules snapshot; scanning the table"),
            }
        }
        Ok(Refreshed::Loaded {
            set: self.scan_rules().await?,
            etag: None,
        })
    }
}

/// Default of `RULES_MAX_STALE_SECONDS`.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(600);

fn to_item(rule: &Rule) -> Result<scan::Item, RuleError> {
    serde_dynamo::to_item(rule).map_err(|source| RuleError::Item {
        id: rule.id.clone(),
        source,
    })
}

#[async_trait::async_trait]
impl RuleSource for DynamoRuleStore {
    /// The cached set while it is younger than `RULES_CACHE_SECONDS`; then the snapshot is
    /// asked whether it changed (or the table scanned). When that fails, the last good set is
    /// served, with a warning, until it is `RULES_MAX_STALE_SECONDS` past its last
    /// confirmation, and the next attempt waits a little so that an outage does not slow every
    /// event.
    async fn rule_set(&self) -> Result<Arc<RuleSet>, RuleError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let (Some(set), Some(confirmed)) = (&cache.set, cache.confirmed) {
            let age = now.duration_since(confirmed);
            let waiting = cache.retry_at.is_some_and(|t| now < t) && age <= self.max_stale;
            if age < self.cache_ttl || waiting {
                return Ok(Arc::clone(set));
            }
        }
        let from_snapshot = cache.etag.clone();
        match self.refresh(from_snapshot.as_deref()).await {
            Ok(Refreshed::Unchanged) if cache.set.is_some() => {
                cache.confirmed = Some(now);
                cache.retry_at = None;
            }
            Ok(Refreshed::Unchanged) => {
                // A 304 with nothing cached cannot happen (no ETag is sent then); reload.
                cache.etag = None;
                drop(cache);
                return Box::pin(self.rule_set()).await;
            }
            Ok(Refreshed::Loaded { set, etag }) => {
                *cache = Cache {
                    set: Some(set),
                    etag,
                    confirmed: Some(now),
                    retry_at: None,
                };
            }
            Err(e) => match (&cache.set, cache.confirmed) {
                (Some(_), Some(confirmed)) if now.duration_since(confirmed) <= self.max_stale => {
                    tracing::warn!(table = %self.table, error = %crate::error_chain(&e),
                        stale_seconds = now.duration_since(confirmed).as_secs(),
                        max_stale_seconds = self.max_stale.as_secs(),
                        "could not refresh the rules; routing with the last good rule set");
                    cache.retry_at = Some(now + retry_interval(self.cache_ttl));
                }
                _ => return Err(e),
            },
        }
        cache.set.clone().ok_or_else(|| {
            scan::store_error(
                &self.table,
                "load",
                std::io::Error::other("no rules loaded"),
            )
        })
    }
}

/// After a failed refresh, how long to keep serving the last good set before trying again.
fn retry_interval(cache_ttl: Duration) -> Duration {
    (cache_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str, age_secs: u64) {
        std::fs::write(path, text).unwrap();
        // Explicit modification times: file systems with coarse timestamps would otherwise
        // make two writes in one test look unchanged.
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn ids(set: &RuleSet) -> Vec<String> {
        set.rules().iter().map(|r| r.rule.id.clone()).collect()
    }

    #[tokio::test]
    async fn a_rules_directory_is_read_whole_and_reloaded_when_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("a.yaml"),
            "- {id: a, key: 'a/**', workflow: w}",
            100,
        );
        write(
            &dir.path().join("b.json"),
            r#"{"id": "b", "key": "b/**", "workflow": "w"}"#,
            100,
        );
        write(&dir.path().join("notes.txt"), "not rules", 100);
        let source = FileRuleSource::new(dir.path().to_path_buf());
        let first = source.rule_set().await.unwrap();
        assert_eq!(ids(&first), ["a", "b"]);
        assert!(
            Arc::ptr_eq(&first, &source.rule_set().await.unwrap()),
            "unchanged: cached"
        );
        write(
            &dir.path().join("a.yaml"),
            "- {id: a2, key: 'a/**', workflow: w}",
            50,
        );
        assert_eq!(ids(&source.rule_set().await.unwrap()), ["a2", "b"]);
        write(
            &dir.path().join("c.yml"),
            "id: c\npriority: 1\nkey: 'c/**'\nworkflow: w\n",
            50,
        );
        assert_eq!(ids(&source.rule_set().await.unwrap()), ["c", "a2", "b"]);
        // Strict: a bad file is an error naming it, and a fixed file is picked up again.
        write(
            &dir.path().join("c.yml"),
            "id: c\nkey: 'c/['\nworkflow: w\n",
            40,
        );
        let e = source.rule_set().await.unwrap_err().to_string();
        assert!(e.contains("rule `c`, field `key`"), "{e}");
        write(
            &dir.path().join("c.yml"),
            "id: c\nkey: 'c/**'\nworkflow: w\nextra: 1\n",
            30,
        );
        let e = source.rule_set().await.unwrap_err().to_string();
        assert!(e.contains("c.yml") && e.contains("extra"), "{e}");
        write(
            &dir.path().join("c.yml"),
            "id: a2\nkey: 'c/**'\nworkflow: w\n",
            20,
        );
        assert!(matches!(
            source.rule_set().await,
            Err(RuleError::Duplicate { id }) if id == "a2"
        ));
        write(&dir.path().join("c.yml"), "", 10);
        assert_eq!(ids(&source.rule_set().await.unwrap()), ["a2", "b"]);
        let missing = FileRuleSource::new(dir.path().join("nope.yaml"));
        let e = missing.rule_set().await.unwrap_err().to_string();
        assert!(e.contains("nope.yaml"), "{e}");
    }
}
