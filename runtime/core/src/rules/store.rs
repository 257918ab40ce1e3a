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
                let parsed = serde_dynamo::from_item::<_, Rule>(item.clone())
                    .map_err(|e| item_error(&id, &item, e.to_string()))
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

/// Say which attribute of an item does not fit the rule model. serde names it for unknown
/// and missing fields; for a wrong type (serde_dynamo says only "Expected num") the culprit is
/// the attribute whose removal makes the item read, or read as missing that very field.
fn item_error(id: &str, item: &HashMap<String, AttributeValue>, message: String) -> RuleError {
    let invalid = |field: &str, message: String| RuleError::Invalid {
        rule: id.to_string(),
        field: field.to_string(),
        message,
    };
    if let Some(field) = field_named_in(&message).map(str::to_string) {
        return invalid(&field, message);
    }
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    for name in names {
        let mut trial = item.clone();
        trial.remove(name);
        let culprit = match serde_dynamo::from_item::<_, Rule>(trial) {
            Ok(_) => true,
            Err(e) => field_named_in(&e.to_string()) == Some(name.as_str()),
        };
        if culprit {
            return invalid(name, format!("wrong type ({message})"));
        }
    }
    invalid("(item)", message)
}

/// The attribute a serde error is about, when its message names one (``unknown field `x` ``,
/// ``missing field `x` ``).
fn field_named_in(message: &str) -> Option<&str> {
    ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_named_in("unknown field `prority`, expected one of `id`"),
            Some("prority")
        );
        assert_eq!(field_named_in("missing field `workflow`"), Some("workflow"));
        assert_eq!(
            field_named_in("invalid type: string \"x\", expected i64"),
            None
        );
    }

    #[test]
    fn a_wrongly_typed_attribute_is_found() {
        let s = |v: &str| AttributeValue::S(v.into());
        let item: HashMap<String, AttributeValue> = [
            ("id".to_string(), s("r")),
            ("key".to_string(), s("**")),
            ("workflow".to_string(), s("w")),
            ("final".to_string(), s("yes")),
        ]
        .into();
        let message = serde_dynamo::from_item::<_, Rule>(item.clone())
            .unwrap_err()
            .to_string();
        match item_error("r", &item, message) {
            RuleError::Invalid {
                rule,
                field,
                message,
            } => {
                assert_eq!((rule.as_str(), field.as_str()), ("r", "final"));
                assert!(message.starts_with("wrong type"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

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
