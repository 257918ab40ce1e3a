//! Routing rules: the model users write, its validation, and parsing of rule documents.
//!
//! A rule is one DynamoDB item or one entry of a rules file, with the same fields (`docs/rules.md`).
//! Validation is strict and happens when a rule is saved or loaded ([`CompiledRule::compile`]):
//! unknown fields, bad globs, unknown template variables, an empty workflow or a bad id are
//! errors naming the rule and the field. The matcher lives in [`matcher`] (globs in [`glob`],
//! the rule index in [`index`]), the stores in [`store`]; the key's path captures in
//! [`captures`]; rendering a matched rule's question values in [`questions`]; the job fields
//! (worker tag, credential) and the job request in [`job`].

pub mod batch;
pub mod captures;
pub mod glob;
mod index;
pub mod job;
pub mod matcher;
pub mod problems;
pub mod publish;
pub mod questions;
pub mod scan;
pub mod snapshot;
pub mod snapshot_store;
pub mod store;
mod yaml_items;

use std::collections::BTreeMap;

use glob::PathGlob;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::alteryx::Priority;
use crate::template::{Scope, Template};
use captures::KeyPattern;

pub use matcher::{MatchVerdict, RuleSet};
pub use store::{DynamoRuleStore, FileRuleSource, RuleSource};

fn yes() -> bool {
    true
}
fn default_priority() -> i64 {
    100
}
fn default_read_bytes() -> u64 {
    65536
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique id, `[A-Za-z0-9._-]+`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Disabled rules never match.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Lower runs first; ties by id.
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// Glob over the bucket name; any bucket when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Glob over the object key: `*` stays inside one path segment, `**` crosses them;
    /// `<name>` captures what `*` would match there, for templates as `{name}`.
    pub key: String,
    /// Key globs that exclude an object even when `key` matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Smallest object size in bytes that matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// Largest object size in bytes that matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Alteryx appId (v1) or workflow id (v3).
    pub workflow: String,
    /// Secrets Manager secret with the Alteryx credentials; else `ALTERYX_SECRET_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    /// Question name → template (`{bucket}`, `{key}`, `{key.name}`, a capture `{region}`,
    /// `{meta.NAME}`, `{presigned_url}`, `{event_time:%Y/%m/%d}`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub questions: BTreeMap<String, String>,
    /// A WebAssembly plugin that computes more question values from the object's head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginSpec>,
    /// Stop evaluating lower-priority rules after this one matches.
    #[serde(default, rename = "final")]
    pub is_final: bool,
    /// Alteryx job priority: low, medium, high or critical (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_priority: Option<Priority>,
    /// How long a `{presigned_url}` stays valid, in seconds: 1 – 604800 (7 days, S3's
    /// limit); default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presign_expiry_seconds: Option<u64>,
    /// Alteryx worker tag: the job runs only on workers with this tag (API v3 `workerTag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_tag: Option<String>,
    /// Alteryx credential id the job runs as (API v3 `credentialId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// At most this many of the rule's (or its `concurrency_group`'s) jobs are queued or
    /// running at Alteryx at once, 1 – 10000; more executions wait in line (`WAITING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_jobs: Option<u32>,
    /// Rules naming the same group share one cap (`max_concurrent_jobs`, the same on every
    /// member), `[A-Za-z0-9._-]+`. A rule capped without a group is the group named by its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_group: Option<String>,
    /// Collect matching objects into batches that start one job each when they close
    /// (all `require`d files arrived, quiet for `quiet_seconds`, or `max_files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<batch::BatchSpec>,
}

/// The most `max_concurrent_jobs` may say.
pub const MAX_CONCURRENT_JOBS: u32 = 10_000;

/// A rule's share of the Alteryx Server: the group whose slots its jobs take and the group's cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cap {
    pub group: String,
    pub max_concurrent_jobs: u32,
}

impl Rule {
    /// The cap the rule's jobs count against, if it has one.
    pub fn cap(&self) -> Option<Cap> {
        self.max_concurrent_jobs.map(|max| Cap {
            group: self
                .concurrency_group
                .clone()
                .unwrap_or_else(|| self.id.clone()),
            max_concurrent_jobs: max,
        })
    }
}

/// The plugin a rule runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// File `<name>.cwasm` or `<name>.wasm` in the plugin store.
    pub name: String,
    /// How many bytes from the start of the object the plugin is handed up front (0: none;
    /// a plugin of interface 0.2.0 can read what it needs with ranged reads instead).
    #[serde(default = "default_read_bytes")]
    pub read_bytes: u64,
    /// JSON handed to the plugin.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub config: serde_json::Value,
    /// Hex SHA-256 of the plugin file; a different file is refused. Required for plugins
    /// from S3 (`alteryx-router plugin publish` sets it) unless `PLUGIN_REQUIRE_PIN=false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Wall-clock limit per call in milliseconds, waiting for ranged reads excluded
    /// (default 100, at most 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Memory limit in MiB (default 64, at most 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Bytes the plugin may read with ranged reads in one call, the head not counted
    /// (default 1048576, at most 67108864).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_budget_bytes: Option<u64>,
    /// Workflows the plugin may choose to run instead of the rule's `workflow` (which it may
    /// always choose); a choice outside this list is an error naming it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<String>,
}

impl PluginSpec {
    /// The byte budget of a call's ranged reads.
    pub fn read_budget(&self) -> u64 {
        self.read_budget_bytes.unwrap_or(DEFAULT_READ_BUDGET_BYTES)
    }
}

/// Ranged reads a plugin may make per call unless its rule says otherwise: enough for an
/// Excel workbook's directory or a Parquet footer many times over.
pub const DEFAULT_READ_BUDGET_BYTES: u64 = 1 << 20;
/// The most a rule may give: reads are held in the function's memory (and copied into the
/// plugin's) and fetched inside the function's 60 s.
pub const MAX_READ_BUDGET_BYTES: u64 = 64 << 20;
/// The longest call a rule may ask for: the function has 60 s for every rule of an object,
/// and a submit may need 30 s of it.
pub const MAX_PLUGIN_TIMEOUT_MS: u64 = 10_000;
/// The most memory a rule may give its plugin: half the function's 256 MB, the rest being for
/// the router, the plugin's code (a componentize-py plugin maps 35 MB) and the bytes read.
pub const MAX_PLUGIN_MEMORY_MB: u64 = 128;
/// Most workflows one rule's plugin may choose from.
pub const MAX_PLUGIN_WORKFLOWS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule `{rule}`, field `{field}`: {message}")]
    Invalid {
        rule: String,
        field: String,
        message: String,
    },
    #[error("rule id `{id}` is used more than once")]
    Duplicate { id: String },
    #[error("{source_name}: {detail}")]
    Parse { source_name: String, detail: String },
    #[error("rules table {table}: {action} failed")]
    Store {
        table: String,
        action: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("rule `{id}` cannot be stored as a DynamoDB item")]
    Item {
        id: String,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error("publishing to {topic} failed")]
    Notify {
        topic: String,
        #[source]
        source: BoxError,
    },
    #[error("rules snapshot {location}: {action} failed")]
    Snapshot {
        location: String,
        action: &'static str,
        #[source]
        source: BoxError,
    },
}

/// The cause a store error keeps (an AWS SDK error, a snapshot that does not read).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A validated rule with its globs and templates compiled.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: Rule,
    pub(crate) bucket: Option<PathGlob>,
    pub(crate) key_glob: PathGlob,
    pub(crate) exclude: Vec<(String, PathGlob)>,
    questions: Vec<(String, Template)>,
    /// The key's captures; its glob (captures as `*`) is `key_glob`.
    key_pattern: KeyPattern,
    batch: Option<batch::CompiledBatch>,
}

/// Path-aware globs: `*` and `?` never cross `/`, `**` does (`globset`'s syntax with
/// `literal_separator` and `backslash_escape`, matched by [`glob`]).
pub(crate) fn path_glob(pattern: &str) -> Result<PathGlob, globset::ErrorKind> {
    PathGlob::new(pattern)
}

const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;

impl CompiledRule {
    /// Validate every field and compile globs and templates.
    pub fn compile(rule: Rule) -> Result<Self, RuleError> {
        let invalid = |field: &str, message: String| RuleError::Invalid {
            rule: rule.id.clone(),
            field: field.to_string(),
            message,
        };
        if rule.id.is_empty()
            || !rule
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(
                "id",
                "must be non-empty and use only A-Z a-z 0-9 . _ -".into(),
            ));
        }
        if rule.workflow.trim().is_empty() {
            return Err(invalid(
                "workflow",
                "must name the Alteryx workflow (appId or workflow id)".into(),
            ));
        }
        if rule.key.is_empty() {
            return Err(invalid(
                "key",
                "must be a glob, e.g. \"incoming/**/*.csv\"".into(),
            ));
        }
        let key_pattern =
            KeyPattern::parse(&rule.key).map_err(|e| invalid("key", e.to_string()))?;
        questions::check_capture_names(key_pattern.names()).map_err(|m| invalid("key", m))?;
        // The matcher sees captures as `*`: they cannot change what matches.
        let key_glob = path_glob(key_pattern.glob()).map_err(|e| invalid("key", e.to_string()))?;
        let bucket = match &rule.bucket {
            None => None,
            Some(b) => Some(
                questions::no_capture(b)
                    .map_err(|m| invalid("bucket", m))
                    .and_then(|()| path_glob(b).map_err(|e| invalid("bucket", e.to_string())))?,
            ),
        };
        let mut exclude = Vec::with_capacity(rule.exclude.len());
        for (i, pattern) in rule.exclude.iter().enumerate() {
            let field = format!("exclude[{i}]");
            questions::no_capture(pattern).map_err(|m| invalid(&field, m))?;
            let glob = path_glob(pattern).map_err(|e| invalid(&field, e.to_string()))?;
            exclude.push((pattern.clone(), glob));
        }
        if let (Some(min), Some(max)) = (rule.min_size, rule.max_size)
            && min > max
        {
            return Err(invalid(
                "min_size",
                format!("{min} is larger than max_size {max}"),
            ));
        }
        let mut questions = Vec::with_capacity(rule.questions.len());
        for (name, text) in &rule.questions {
            if name.trim().is_empty() {
                return Err(invalid("questions", "a question name is empty".into()));
            }
            let scope = Scope {
                captures: key_pattern.names(),
                batch: rule.batch.is_some(),
            };
            let template = Template::parse_in(text, &scope)
                .map_err(|e| invalid(&format!("questions.{name}"), e.to_string()))?;
            questions.push((name.clone(), template));
        }
        questions::check_presign_expiry(&rule, &questions)
            .map_err(|m| invalid("presign_expiry_seconds", m))?;
        job::check_job_fields(&rule).map_err(|(field, m)| invalid(field, m))?;
        if let Some(max) = rule.max_concurrent_jobs
            && !(1..=MAX_CONCURRENT_JOBS).contains(&max)
        {
            return Err(invalid(
                "max_concurrent_jobs",
                format!("must be between 1 and {MAX_CONCURRENT_JOBS}, not {max}"),
            ));
        }
        if let Some(group) = &rule.concurrency_group {
            if group.is_empty()
                || !group
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(invalid(
                    "concurrency_group",
                    "must be non-empty and use only A-Z a-z 0-9 . _ -".into(),
                ));
            }
            if rule.max_concurrent_jobs.is_none() {
                return Err(invalid(
                    "concurrency_group",
                    format!(
                        "needs max_concurrent_jobs: the cap of group `{group}`, the same on every rule of the group"
                    ),
                ));
            }
        }
        if let Some(plugin) = &rule.plugin {
            validate_plugin(plugin)
                .map_err(|(field, message)| invalid(&format!("plugin.{field}"), message))?;
        }
        let batch = match &rule.batch {
            None => None,
            Some(spec) => Some(
                batch::CompiledBatch::compile(spec, key_pattern.names())
                    .map_err(|(field, message)| invalid(&field, message))?,
            ),
        };
        Ok(CompiledRule {
            bucket,
            key_glob,
            exclude,
            questions,
            key_pattern,
            batch,
            rule,
        })
    }

    /// The rule's validated `batch` block, when it batches.
    pub fn batch(&self) -> Option<&batch::CompiledBatch> {
        self.batch.as_ref()
    }
}

fn validate_plugin(p: &PluginSpec) -> Result<(), (&'static str, String)> {
    if p.name.is_empty()
        || !p
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || p.name.starts_with('.')
    {
        return Err((
            "name",
            "must be a file name stem: A-Z a-z 0-9 . _ - (no path)".into(),
        ));
    }
    if p.read_bytes > MAX_READ_BYTES {
        return Err((
            "read_bytes",
            format!("must be between 0 and {MAX_READ_BYTES}"),
        ));
    }
    if let Some(h) = &p.sha256
        && (h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(("sha256", "must be 64 hex digits".into()));
    }
    if let Some(ms) = p.timeout_ms
        && !(1..=MAX_PLUGIN_TIMEOUT_MS).contains(&ms)
    {
        return Err((
            "timeout_ms",
            format!(
                "must be between 1 and {MAX_PLUGIN_TIMEOUT_MS} (the function has 60 s for every rule of an object and its submit)"
            ),
        ));
    }
    if let Some(mb) = p.memory_mb
        && !(1..=MAX_PLUGIN_MEMORY_MB).contains(&mb)
    {
        return Err((
            "memory_mb",
            format!("must be between 1 and {MAX_PLUGIN_MEMORY_MB} (half of the function's 256 MB)"),
        ));
    }
    if let Some(budget) = p.read_budget_bytes
        && budget > MAX_READ_BUDGET_BYTES
    {
        return Err((
            "read_budget_bytes",
            format!("must be between 0 and {MAX_READ_BUDGET_BYTES}"),
        ));
    }
    if p.workflows.len() > MAX_PLUGIN_WORKFLOWS {
        return Err((
            "workflows",
            format!(
                "lists {} workflows; at most {MAX_PLUGIN_WORKFLOWS}",
                p.workflows.len()
            ),
        ));
    }
    for (i, w) in p.workflows.iter().enumerate() {
        if w.trim().is_empty() || w.trim() != w {
            return Err((
                "workflows",
                format!("entry {i} ({w:?}) must be a workflow id without surrounding spaces"),
            ));
        }
        if p.workflows[..i].contains(w) {
            return Err(("workflows", format!("`{w}` is listed twice")));
        }
    }
    if !(p.config.is_null() || p.config.is_object()) {
        return Err(("config", "must be a JSON/YAML object".into()));
    }
    Ok(())
}

/// Parse a rules document: YAML or JSON, a list of rules or one rule.
///
/// Errors name the source, the rule (its position in a list and its id when it has one) and,
/// as serde reports them, the field and the line and column: ``rules/sales.yaml: rule #2
/// (`sales-csv`): unknown field `prority`, expected one of ... at line 7 column 3``.
pub fn parse_rules_document(text: &str, source_name: &str) -> Result<Vec<Rule>, RuleError> {
    let parse_err = |detail: String| RuleError::Parse {
        source_name: source_name.to_string(),
        detail,
    };
    // YAML is a superset of JSON, but serde_json gives better messages for JSON files.
    // A `.json` file is JSON. Elsewhere a document opening with `[`/`{` is JSON or YAML flow
    // style: try JSON first and keep its error if YAML cannot read it either.
    let trimmed = text.trim_start();
    let json_file = source_name.to_ascii_lowercase().ends_with(".json");
    if json_file || trimmed.starts_with('[') || trimmed.starts_with('{') {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => return json_rules(text, value).map_err(parse_err),
            Err(json_error)
                if json_file || serde_yaml::from_str::<serde_yaml::Value>(text).is_err() =>
            {
                return Err(parse_err(json_error.to_string()));
            }
            Err(_) => {}
        }
    }
    // A long block list of valid rules reads one item at a time, so the YAML events of only
    // one item are in memory at once (see `yaml_items`).
    if let Some(rules) = yaml_items::split(text).and_then(|items| {
        let mut rules = Vec::with_capacity(items.len());
        for item in items {
            rules.append(&mut serde_yaml::from_str::<Vec<Rule>>(item).ok()?);
        }
        Some(rules)
    }) {
        return Ok(rules);
    }
    // A list of valid rules reads in one typed pass (a third of the time and memory of an
    // untyped tree at 100,000 rules). Otherwise the untyped pass tells a list from a single
    // rule and gives ids for messages; the typed pass then reads the text itself, so its
    // errors keep their line and column.
    if let Ok(rules) = serde_yaml::from_str::<Vec<Rule>>(text) {
        return Ok(rules);
    }
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
    match value {
        serde_yaml::Value::Null => Ok(Vec::new()),
        serde_yaml::Value::Sequence(items) => {
            serde_yaml::from_str::<Vec<Rule>>(text).map_err(|e| {
                let ids: Vec<Option<&str>> = items
                    .iter()
                    .map(|item| item.get("id").and_then(serde_yaml::Value::as_str))
                    .collect();
                parse_err(yaml_list_error(&e.to_string(), &ids))
            })
        }
        single => serde_yaml::from_str::<Rule>(text)
            .map(|r| vec![r])
            .map_err(|e| {
                parse_err(with_id(
                    e.to_string(),
                    single.get("id").and_then(serde_yaml::Value::as_str),
                ))
            }),
    }
}

/// serde_yaml prefixes errors inside a list with their path (`.[1]: …`, `.[1].plugin: …`);
/// say it as `rule #2 (`id`): …` / `rule #2 (`id`), plugin: …`.
fn yaml_list_error(message: &str, ids: &[Option<&str>]) -> String {
    let parsed = message.strip_prefix(".[").and_then(|rest| {
        let (index, rest) = rest.split_once(']')?;
        let index: usize = index.parse().ok()?;
        Some((index, rest))
    });
    match parsed {
        Some((index, rest)) => {
            let rule = rule_label(index, ids.get(index).copied().flatten());
            match rest.strip_prefix(": ") {
                Some(detail) => format!("{rule}: {detail}"),
                None => format!("{rule}, {}", rest.trim_start_matches('.')),
            }
        }
        None => message.to_string(),
    }
}

fn rule_label(index: usize, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("rule #{} (`{id}`)", index + 1),
        None => format!("rule #{}", index + 1),
    }
}

fn with_id(message: String, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("rule `{id}`: {message}"),
        None => message,
    }
}

/// JSON: serde_json reports line and column but not which list entry failed, so find the
/// entry with an untyped pass and say both.
fn json_rules(text: &str, value: serde_json::Value) -> Result<Vec<Rule>, String> {
    let id_of = |v: &serde_json::Value| {
        v.get("id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    match value {
        serde_json::Value::Array(items) => serde_json::from_str::<Vec<Rule>>(text).map_err(|e| {
            let failing = items
                .iter()
                .position(|item| serde_json::from_value::<Rule>(item.clone()).is_err());
            match failing {
                Some(i) => format!("{}: {e}", rule_label(i, id_of(&items[i]).as_deref())),
                None => e.to_string(),
            }
        }),
        other => serde_json::from_str::<Rule>(text)
            .map(|r| vec![r])
            .map_err(|e| with_id(e.to_string(), id_of(&other).as_deref())),
    }
}

/// The JSON Schema of a rules file (a rule or a list of rules), as committed in
/// `rules/schema.json`.
pub fn json_schema() -> serde_json::Value {
    let rule = schemars::schema_for!(Rule);
    let mut schema = serde_json::to_value(&rule).unwrap_or_default();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), "alteryx-router rule(s)".into());
        let single = serde_json::json!({"$ref": "#/$defs/Rule"});
        let defs = obj.entry("$defs").or_insert_with(|| serde_json::json!({}));
        let mut rule_def = serde_json::to_value(&rule).unwrap_or_default();
        if let Some(r) = rule_def.as_object_mut() {
            r.remove("$schema");
            r.remove("$defs");
        }
        if let Some(d) = defs.as_object_mut() {
            d.insert("Rule".into(), rule_def);
        }
        let keep = ["$schema", "title", "$defs"];
        obj.retain(|k, _| keep.contains(&k.as_str()));
        obj.insert(
            "oneOf".into(),
            serde_json::json!([single, {"type": "array", "items": {"$ref": "#/$defs/Rule"}}]),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ObjectCreated;

    fn rule(yaml: &str) -> Rule {
        parse_rules_document(yaml, "test").unwrap().remove(0)
    }

    fn invalid(yaml: &str) -> (String, String, String) {
        match CompiledRule::compile(rule(yaml)) {
            Err(RuleError::Invalid {
                rule,
                field,
                message,
            }) => (rule, field, message),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply() {
        let r = rule("id: a\nkey: '**'\nworkflow: w\n");
        assert!(r.enabled);
        assert_eq!(r.priority, 100);
        assert!(!r.is_final);
        let p = rule("id: a\nkey: '**'\nworkflow: w\nplugin: {name: csv-header}\n")
            .plugin
            .unwrap();
        assert_eq!(p.read_bytes, 65536);
        assert_eq!(p.read_budget(), DEFAULT_READ_BUDGET_BYTES);
        assert!(p.workflows.is_empty());
        // A plugin may take no head at all and read ranges instead.
        CompiledRule::compile(rule(
            "id: a\nkey: '**'\nworkflow: w\nplugin: {name: x, read_bytes: 0, read_budget_bytes: 0}\n",
        ))
        .unwrap();
    }

    #[test]
    fn each_invalid_field_is_named() {
        assert_eq!(invalid("id: 'bad id'\nkey: a\nworkflow: w").1, "id");
        assert_eq!(invalid("id: a\nkey: a\nworkflow: ' '").1, "workflow");
        let (r, f, m) = invalid("id: a\nkey: 'x/[ab'\nworkflow: w");
        assert_eq!((r.as_str(), f.as_str()), ("a", "key"));
        assert!(m.contains("unclosed"), "{m}");
        assert_eq!(
            invalid("id: a\nbucket: '{a'\nkey: a\nworkflow: w").1,
            "bucket"
        );
        assert_eq!(
            invalid("id: a\nkey: a\nexclude: ['ok', '[']\nworkflow: w").1,
            "exclude[1]"
        );
        let (_, f, m) = invalid("id: a\nkey: a\nworkflow: w\nquestions: {Path: '{bukket}'}");
        assert_eq!(f, "questions.Path");
        assert!(m.contains("bukket"), "{m}");
        assert_eq!(
            invalid("id: a\nkey: a\nworkflow: w\nmin_size: 5\nmax_size: 1").1,
            "min_size"
        );
        assert_eq!(
            invalid("id: a\nkey: a\nworkflow: w\nplugin: {name: ../x}").1,
            "plugin.name"
        );
        assert_eq!(
            invalid("id: a\nkey: a\nworkflow: w\nplugin: {name: x, read_bytes: 16777217}").1,
            "plugin.read_bytes"
        );
        assert_eq!(
            invalid("id: a\nkey: a\nworkflow: w\nplugin: {name: x, sha256: abc}").1,
            "plugin.sha256"
        );
    }

    #[test]
    fn unknown_fields_and_syntax_errors_name_the_source() {
        let e = parse_rules_document(
            "- id: a\n  key: a\n  workflow: w\n  prority: 1\n",
            "rules/x.yaml",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("rules/x.yaml") && msg.contains("prority") && msg.contains("rule #1"),
            "{msg}"
        );
        let e = parse_rules_document("[{\"id\": \"a\",}]", "r.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("r.json") && e.contains("line 1"), "{e}");
        let e = parse_rules_document("id: a\nworkflow: w\n", "one.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `key`"), "{e}");
    }

    #[test]
    fn every_other_invalid_case_names_its_field() {
        let cases = [
            ("id: ''\nkey: a\nworkflow: w", "id"),
            ("id: 'a/b'\nkey: a\nworkflow: w", "id"),
            ("id: a\nkey: ''\nworkflow: w", "key"),
            ("id: a\nkey: a\nworkflow: ''", "workflow"),
            (
                "id: a\nkey: a\nworkflow: w\nquestions: {'': '{key}'}",
                "questions",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nquestions: {P: 'x}'}",
                "questions.P",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nquestions: {P: '{key'}",
                "questions.P",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nquestions: {P: '{}'}",
                "questions.P",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, read_bytes: 16777217}",
                "plugin.read_bytes",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: .x}",
                "plugin.name",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: ''}",
                "plugin.name",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, timeout_ms: 0}",
                "plugin.timeout_ms",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, memory_mb: 0}",
                "plugin.memory_mb",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, config: [1]}",
                "plugin.config",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, timeout_ms: 10001}",
                "plugin.timeout_ms",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, memory_mb: 129}",
                "plugin.memory_mb",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, read_budget_bytes: 67108865}",
                "plugin.read_budget_bytes",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, workflows: [eu, ' us']}",
                "plugin.workflows",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, workflows: [eu, eu]}",
                "plugin.workflows",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nplugin: {name: x, workflows: ['']}",
                "plugin.workflows",
            ),
        ];
        for (yaml, field) in cases {
            assert_eq!(invalid(yaml).1, field, "{yaml}");
        }
        // The limits themselves are accepted.
        CompiledRule::compile(rule(
            "id: A.b_c-9\nkey: a\nworkflow: w\nmin_size: 5\nmax_size: 5\njob_priority: CRITICAL\nplugin: {name: x, read_bytes: 16777216, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, timeout_ms: 10000, memory_mb: 128, read_budget_bytes: 67108864, workflows: [eu, us]}",
        ))
        .unwrap();
        let shown = CompiledRule::compile(rule("id: sales-csv\nkey: '[a'\nworkflow: w"))
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with("rule `sales-csv`, field `key`: "),
            "{shown}"
        );
    }

    #[test]
    fn caps_name_their_group_and_members_of_a_group_agree() {
        let alone = rule("id: nightly-a\nkey: a\nworkflow: w\nmax_concurrent_jobs: 4");
        assert_eq!(
            alone.cap(),
            Some(Cap {
                group: "nightly-a".into(),
                max_concurrent_jobs: 4
            })
        );
        let member =
            rule("id: b\nkey: a\nworkflow: w\nmax_concurrent_jobs: 2\nconcurrency_group: shared");
        assert_eq!(member.cap().unwrap().group, "shared");
        assert_eq!(rule("id: c\nkey: a\nworkflow: w").cap(), None);
        for (yaml, field, says) in [
            (
                "id: a\nkey: a\nworkflow: w\nmax_concurrent_jobs: 0",
                "max_concurrent_jobs",
                "between 1 and 10000",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nmax_concurrent_jobs: 10001",
                "max_concurrent_jobs",
                "not 10001",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nconcurrency_group: g",
                "concurrency_group",
                "needs max_concurrent_jobs",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nmax_concurrent_jobs: 1\nconcurrency_group: 'a b'",
                "concurrency_group",
                "A-Z a-z",
            ),
        ] {
            let e = CompiledRule::compile(rule(yaml)).unwrap_err().to_string();
            assert!(
                e.contains(&format!("field `{field}`")) && e.contains(says),
                "{yaml}: {e}"
            );
        }
        let disagree = vec![
            member.clone(),
            rule("id: d\nkey: a\nworkflow: w\nmax_concurrent_jobs: 3\nconcurrency_group: shared"),
        ];
        let e = RuleSet::new(disagree).unwrap_err().to_string();
        assert!(
            e.contains("rule `d`")
                && e.contains("differs from 2 on rule `b`")
                && e.contains("`shared`"),
            "{e}"
        );
        let agree = vec![
            member,
            rule("id: d\nkey: a\nworkflow: w\nmax_concurrent_jobs: 2\nconcurrency_group: shared"),
        ];
        assert_eq!(RuleSet::new(agree).unwrap().len(), 2);
    }

    #[test]
    fn job_priority_is_read_in_any_case_and_refused_at_parse_time() {
        for (text, want) in [
            ("low", Priority::Low),
            ("Medium", Priority::Medium),
            ("HIGH", Priority::High),
            ("CrItIcAl", Priority::Critical),
        ] {
            let yaml = format!("id: a\nkey: a\nworkflow: w\njob_priority: {text}\n");
            assert_eq!(rule(&yaml).job_priority, Some(want), "{yaml}");
            let json =
                format!(r#"{{"id": "a", "key": "a", "workflow": "w", "job_priority": "{text}"}}"#);
            assert_eq!(rule(&json).job_priority, Some(want), "{json}");
        }
        // Written back in the documented spelling.
        let r = rule("id: a\nkey: a\nworkflow: w\njob_priority: HIGH\n");
        assert_eq!(serde_json::to_value(&r).unwrap()["job_priority"], "high");

        let cases = [
            (
                "id: sales\nkey: a\nworkflow: w\njob_priority: urgent\n",
                "r.yaml",
            ),
            (
                "- id: ok\n  key: a\n  workflow: w\n- id: sales\n  key: a\n  workflow: w\n  job_priority: urgent\n",
                "r.yaml",
            ),
            (
                r#"{"id": "sales", "key": "a", "workflow": "w", "job_priority": "urgent"}"#,
                "r.json",
            ),
            (
                r#"[{"id": "ok", "key": "a", "workflow": "w"}, {"id": "sales", "key": "a", "workflow": "w", "job_priority": "urgent"}]"#,
                "r.json",
            ),
            // A priority that is not text at all.
            (
                "id: sales\nkey: a\nworkflow: w\njob_priority: 3\n",
                "r.yaml",
            ),
        ];
        for (text, source) in cases {
            let e = parse_rules_document(text, source).unwrap_err().to_string();
            assert!(e.starts_with(source) && e.contains("`sales`"), "{e}");
            assert!(
                e.contains("job priority") || e.contains("job_priority"),
                "{e}"
            );
            if source.ends_with(".yaml") {
                assert!(e.contains("job_priority: "), "YAML names the field: {e}");
            }
            if text.contains("urgent") {
                assert!(
                    e.contains("\"urgent\" is not low, medium, high or critical"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn rendered_questions_use_every_template() {
        let compiled = CompiledRule::compile(rule(
            "id: a\nkey: '**'\nworkflow: w\nquestions: {InputPath: '{s3_uri}', FileName: '{key.name}', Fixed: 'EU'}",
        ))
        .unwrap();
        let obj = ObjectCreated {
            bucket: "acme-landing".into(),
            key: "incoming/sales/q4 report.csv".into(),
            size: 1,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: "2026-11-24T09:15:02Z".into(),
            reason: None,
            source: "test".into(),
        };
        assert_eq!(
            compiled.render_questions(&obj).unwrap(),
            BTreeMap::from([
                ("FileName".to_string(), "q4 report.csv".to_string()),
                ("Fixed".to_string(), "EU".to_string()),
                (
                    "InputPath".to_string(),
                    "s3://acme-landing/incoming/sales/q4 report.csv".to_string()
                ),
            ])
        );
    }

    fn object(key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: "acme-landing".into(),
            key: key.into(),
            size: 10,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: "2026-11-24T23:15:02Z".into(),
            reason: None,
            source: "test".into(),
        }
    }

    #[test]
    fn captures_do_not_change_what_matches() {
        let set = RuleSet::new(
            parse_rules_document(
                "- {id: plain, key: 'incoming/*/*/*.csv', workflow: w}\n\
                 - {id: captures, key: 'incoming/<region>/<date>/*.csv', workflow: w, questions: {Region: '{region}', Day: '{date}', Month: '{event_time:%Y-%m}'}}\n\
                 - {id: deep, key: 'incoming/<region>/**/<file>.csv', workflow: w, questions: {File: '{file}', Region: '{region}'}}\n",
                "t",
            )
            .unwrap(),
        )
        .unwrap();
        let ids = |key: &str| -> Vec<String> {
            set.matching(&object(key))
                .iter()
                .map(|r| r.rule.id.clone())
                .collect()
        };
        assert_eq!(
            ids("incoming/eu/2026-11-24/a.csv"),
            ["captures", "deep", "plain"]
        );
        assert_eq!(ids("incoming/eu/x/y/a.csv"), ["deep"]);
        assert_eq!(ids("incoming/eu/a.csv"), ["deep"]);
        assert!(ids("incoming/eu/2026/a.txt").is_empty());
        let by_id = |id: &str| set.rules().iter().find(|r| r.rule.id == id).unwrap();
        assert_eq!(by_id("captures").capture_names(), ["region", "date"]);
        let values = by_id("captures")
            .render_questions(&object("incoming/eu/2026-11-24/a.csv"))
            .unwrap();
        assert_eq!(values["Region"], "eu");
        assert_eq!(values["Day"], "2026-11-24");
        assert_eq!(values["Month"], "2026-11");
        let values = by_id("deep")
            .render_questions(&object("incoming/us/x/y/report.csv"))
            .unwrap();
        assert_eq!(
            (values["Region"].as_str(), values["File"].as_str()),
            ("us", "report")
        );
        // Asked about a key it does not match (a retry under an edited rule), it says so.
        let e = by_id("captures")
            .render_questions(&object("elsewhere/a.csv"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not match the rule's key glob `incoming/<region>/<date>/*.csv`"),
            "{e}"
        );
        // Literal `<` in a key is escaped, and is no capture.
        let literal =
            CompiledRule::compile(rule("id: a\nkey: 'in/\\<x>.csv'\nworkflow: w")).unwrap();
        assert!(literal.capture_names().is_empty());
    }

    #[test]
    fn template_and_job_field_misuse_is_named() {
        let cases = [
            (
                "id: a\nkey: 'in/<reg-ion>/x'\nworkflow: w",
                "key",
                "does not open a capture",
            ),
            (
                "id: a\nkey: 'in/<key>/x'\nworkflow: w",
                "key",
                "built-in variable",
            ),
            (
                "id: a\nkey: 'in/<meta>/x'\nworkflow: w",
                "key",
                "built-in variable",
            ),
            ("id: a\nkey: 'in/<a>*'\nworkflow: w", "key", "touches `*`"),
            ("id: a\nkey: 'in/<a>/<a>'\nworkflow: w", "key", "used twice"),
            (
                "id: a\nbucket: 'acme-<env>'\nkey: a\nworkflow: w",
                "bucket",
                "only `key` captures",
            ),
            (
                "id: a\nkey: a\nexclude: ['x', 'tmp/<d>/**']\nworkflow: w",
                "exclude[1]",
                "only `key` captures",
            ),
            (
                "id: a\nkey: 'in/<region>/*'\nworkflow: w\nquestions: {R: '{regoin}'}",
                "questions.R",
                "the captures of the rule's key: region",
            ),
            (
                "id: a\nkey: 'in/*'\nworkflow: w\nquestions: {R: '{region}'}",
                "questions.R",
                "has no captures",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nquestions: {D: '{event_time:%Q}'}",
                "questions.D",
                "not a strftime format",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nquestions: {D: '{event_date:date}'}",
                "questions.D",
                "no %-conversion",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nquestions: {D: '{size:%Y}'}",
                "questions.D",
                "only event_time and event_date",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nquestions: {M: '{meta.}'}",
                "questions.M",
                "metadata name",
            ),
            (
                "id: a\nkey: a\nworkflow: w\npresign_expiry_seconds: 0\nquestions: {U: '{presigned_url}'}",
                "presign_expiry_seconds",
                "out of range",
            ),
            (
                "id: a\nkey: a\nworkflow: w\npresign_expiry_seconds: 604801\nquestions: {U: '{presigned_url}'}",
                "presign_expiry_seconds",
                "7 days",
            ),
            (
                "id: a\nkey: a\nworkflow: w\npresign_expiry_seconds: 60\nquestions: {U: '{s3_uri}'}",
                "presign_expiry_seconds",
                "no question uses `{presigned_url}`",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nworker_tag: ''",
                "worker_tag",
                "is empty",
            ),
            (
                "id: a\nkey: a\nworkflow: w\nworker_tag: ' gpu'",
                "worker_tag",
                "surrounding spaces",
            ),
            (
                "id: a\nkey: a\nworkflow: w\ncredential_id: 'ab cd'",
                "credential_id",
                "contains spaces",
            ),
            (
                "id: a\nkey: a\nworkflow: w\ncredential_id: \"a\\tb\"",
                "credential_id",
                "control characters",
            ),
        ];
        for (yaml, field, want) in cases {
            let (rule, f, message) = invalid(yaml);
            assert_eq!(
                (rule.as_str(), f.as_str()),
                ("a", field),
                "{yaml}: {message}"
            );
            assert!(message.contains(want), "{yaml}: {message}");
        }
        let long = format!(
            "id: a\nkey: a\nworkflow: w\nworker_tag: {}",
            "t".repeat(257)
        );
        assert_eq!(invalid(&long).1, "worker_tag");
        // The limits themselves, and every new field, are accepted.
        let ok = CompiledRule::compile(rule(
            "id: a\nkey: 'in/<region>/*.csv'\nworkflow: w\npresign_expiry_seconds: 604800\nworker_tag: gpu\ncredential_id: 6543210fedcba98765430001\nquestions: {U: '{presigned_url}', C: '{meta.Customer}', R: '{region}', T: '{event_time:%H:%M}'}",
        ))
        .unwrap();
        assert_eq!(ok.presign_expiry(), std::time::Duration::from_secs(604800));
        assert_eq!(
            ok.needs(),
            questions::Needs {
                metadata: true,
                presigned_url: true
            }
        );
        let request = ok.job_request(&BTreeMap::from([("R".to_string(), "eu".to_string())]));
        assert_eq!(request.worker_tag.as_deref(), Some("gpu"));
        assert_eq!(
            request.credential_id.as_deref(),
            Some("6543210fedcba98765430001")
        );
        assert_eq!(request.rule_id.as_deref(), Some("a"));
        assert_eq!(request.questions.len(), 1);
        let plain =
            CompiledRule::compile(rule("id: a\nkey: a\nworkflow: w\nquestions: {K: '{key}'}"))
                .unwrap();
        assert_eq!(plain.needs(), questions::Needs::default());
        assert_eq!(plain.presign_expiry(), std::time::Duration::from_secs(3600));
    }

    #[test]
    fn the_preview_marks_what_only_routing_knows() {
        let rule = CompiledRule::compile(rule(
            "id: a\nkey: 'in/<region>/*.csv'\nworkflow: w\npresign_expiry_seconds: 900\nquestions: {U: '{presigned_url}', C: '{meta.customer}', B: '{meta.batch}', R: '{region}'}",
        ))
        .unwrap();
        let given = crate::template::Metadata::from([("customer".to_string(), "ACME".to_string())]);
        let shown = rule.preview_questions(&object("in/eu/a.csv"), &given);
        assert_eq!(shown["R"], "eu");
        assert_eq!(shown["C"], "ACME");
        assert_eq!(
            shown["B"],
            "‹meta.batch: read from the object (HEAD) when routed›"
        );
        assert_eq!(
            shown["U"],
            "‹pre-signed GET of s3://acme-landing/in/eu/a.csv, valid 900 s; signed when routed›"
        );
        let off = rule.preview_questions(&object("other/a.csv"), &given);
        assert!(
            off["R"].starts_with("‹error: rule `a`: the key"),
            "{}",
            off["R"]
        );
    }

    #[test]
    fn parse_errors_name_rule_field_line_and_column() {
        let msg =
            |text: &str, name: &str| parse_rules_document(text, name).unwrap_err().to_string();
        let yaml = "- id: a\n  key: a\n  workflow: w\n- id: sales-csv\n  key: b\n  workflow: w\n  prority: 1\n";
        let m = msg(yaml, "rules/sales.yaml");
        assert!(
            m.starts_with("rules/sales.yaml: rule #2 (`sales-csv`): unknown field `prority`")
                && m.ends_with("at line 7 column 3"),
            "{m}"
        );
        let nested = "- id: a\n  key: a\n  workflow: w\n  plugin:\n    name: x\n    read_byte: 5\n";
        let m = msg(nested, "p.yaml");
        assert!(
            m.contains("rule #1 (`a`), plugin: unknown field `read_byte`")
                && m.contains("line 6 column 5"),
            "{m}"
        );
        let m = msg(
            "- id: a\n  key: a\n  workflow: w\n  min_size: -1\n",
            "t.yml",
        );
        assert!(m.contains("min_size") && m.contains("line 4"), "{m}");
        let m = msg("- key: a\n  workflow: w\n", "t.yml");
        assert!(m.contains("rule #1: missing field `id`"), "{m}");
        let m = msg("id: solo\nkey: a\nworkflow: w\nfinal: maybe\n", "one.yaml");
        assert!(m.contains("rule `solo`: final: invalid type"), "{m}");
        assert!(m.contains("line 4"), "{m}");
        let json = "[\n {\"id\": \"a\", \"key\": \"k\", \"workflow\": \"w\"},\n {\"id\": \"b\", \"key\": \"k\", \"workflow\": \"w\",\n  \"prority\": 1}\n]";
        let m = msg(json, "rules.json");
        assert!(
            m.starts_with("rules.json: rule #2 (`b`): unknown field `prority`")
                && m.ends_with("at line 4 column 11"),
            "{m}"
        );
        let m = msg("{\"id\": \"x\", \"workflow\": \"w\"}", "one.json");
        assert!(m.contains("rule `x`: missing field `key`"), "{m}");
    }

    #[test]
    fn a_list_read_item_by_item_is_the_list_read_whole() {
        let text = "# partner rules\n\
            - id: a\n  key: 'in/a/**'\n  workflow: w\n  questions:\n    Note: |\n      line one\n      - not an item\n\n\
            - {id: b, key: 'in/b/*.csv', workflow: w, priority: 5}\n\
            -\n  id: c\n  key: \"in/c/**\"\n  # a comment inside\n  workflow: w\n";
        let whole: Vec<Rule> = serde_yaml::from_str(text).unwrap();
        assert_eq!(parse_rules_document(text, "t.yaml").unwrap(), whole);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].questions["Note"], "line one\n- not an item\n");
    }

    #[test]
    fn items_that_do_not_read_alone_are_read_whole() {
        // An alias to another item's anchor reads only in the whole document.
        let text = "- id: a\n  key: &k 'in/**'\n  workflow: w\n- id: b\n  key: *k\n  workflow: w\n";
        let rules = parse_rules_document(text, "t.yaml").unwrap();
        assert_eq!(rules[1].key, "in/**");
        // A bad item still gets the whole document's message, with its line.
        let text = "- id: a\n  key: 'in/**'\n  workflow: w\n- id: b\n  key: 'x'\n  wrkflow: w\n";
        let message = parse_rules_document(text, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("rule #2 (`b`)")
                && message.contains("wrkflow")
                && message.contains("line 6"),
            "{message}"
        );
    }

    #[test]
    fn json_and_yaml_lists_and_single_rules_parse() {
        assert_eq!(
            parse_rules_document("[{\"id\":\"a\",\"key\":\"*\",\"workflow\":\"w\"}]", "x")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            parse_rules_document("{\"id\":\"a\",\"key\":\"*\",\"workflow\":\"w\"}", "x")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            parse_rules_document(
                "- {id: a, key: '*', workflow: w}\n- {id: b, key: '*', workflow: w}",
                "x"
            )
            .unwrap()
            .len(),
            2
        );
        assert!(parse_rules_document("", "x").unwrap().is_empty());
    }

    #[test]
    fn committed_schema_matches_the_model() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/schema.json");
        let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "rules/schema.json is out of date with the Rule model; run `UPDATE_SCHEMA=1 cargo test -p alteryx-router-core --lib committed_schema` and commit it"
        );
    }

    #[test]
    fn example_rules_are_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/examples");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for r in parse_rules_document(&text, &path.display().to_string()).unwrap() {
                CompiledRule::compile(r).unwrap();
                count += 1;
            }
        }
        assert!(count >= 3, "expected example rules in {}", dir.display());
    }
}
