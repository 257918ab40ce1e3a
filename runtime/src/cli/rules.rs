//! `alteryx-router rules validate|put|list|delete|test`.
//!
//! The store comes from the environment: `RULES_TABLE` (DynamoDB) or `RULES_FILE`. `validate`
//! needs neither; `test` can also take `--rules FILE` to try rules before storing them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::cli::output;
use crate::event::ObjectCreated;
use crate::plugin::{PluginHost, PluginInput, PluginLimits, PluginOutcome};
use crate::rules::{
    CompiledRule, DynamoRuleStore, FileRuleSource, MatchVerdict, Rule, RuleSet, RuleSource,
    cache_ttl_from_env, parse_rules_document,
};

#[derive(Debug, clap::Subcommand)]
pub enum RulesCmd {
    /// Check rule files (YAML/JSON, one rule or a list) without storing them.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate rule files and store every rule in RULES_TABLE (replacing same ids).
    Put {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the stored rules, invalid ones included (with why).
    List,
    /// Delete a rule from RULES_TABLE.
    Delete { id: String },
    /// Show which rules match an object, in order, with the exact question values.
    Test {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        key: String,
        #[arg(long, default_value_t = 1024)]
        size: u64,
        #[arg(long)]
        etag: Option<String>,
        /// Event time (RFC 3339); default now.
        #[arg(long)]
        event_time: Option<String>,
        /// A local copy of the object: rules with a plugin run it over the file's head.
        #[arg(long)]
        object: Option<PathBuf>,
        /// Test these rule files instead of the configured store.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

fn read_files(files: &[PathBuf]) -> anyhow::Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for f in files {
        let source = FileRuleSource::new(f.clone());
        rules.extend(source.read_rules()?);
    }
    Ok(rules)
}

fn dynamo_store(sdk: &aws_config::SdkConfig) -> anyhow::Result<DynamoRuleStore> {
    let table = std::env::var("RULES_TABLE").context(
        "RULES_TABLE is not set (rules put/list/delete work on the DynamoDB table; with RULES_FILE, edit the file)",
    )?;
    Ok(DynamoRuleStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        table,
        cache_ttl_from_env(),
    ))
}

async fn configured_rules(override_path: Option<&Path>) -> anyhow::Result<Arc<RuleSet>> {
    if let Some(p) = override_path {
        return Ok(FileRuleSource::new(p.to_path_buf()).rule_set().await?);
    }
    let source = crate::config::rule_source().await?;
    Ok(source.rule_set().await?)
}

pub async fn run(cmd: RulesCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        RulesCmd::Validate { files } => {
            let rules = read_files(&files)?;
            let set = RuleSet::new(rules)?;
            if json {
                return output::print_json(
                    &set.rules().iter().map(|r| &r.rule).collect::<Vec<_>>(),
                );
            }
            println!("{} rule(s) valid: {}", set.len(), ids(set.rules()));
            Ok(())
        }
        RulesCmd::Put { files } => {
            let rules = read_files(&files)?;
            // All or nothing: validate every rule (and id uniqueness) before writing any.
            RuleSet::new(rules.clone())?;
            let sdk = crate::aws::sdk_config().await;
            let store = dynamo_store(&sdk)?;
            for rule in &rules {
                store.put(rule).await?;
            }
            if json {
                return output::print_json(&rules.iter().map(|r| &r.id).collect::<Vec<_>>());
            }
            println!(
                "stored {} rule(s) in {}: {}",
                rules.len(),
                store.table(),
                rules
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        RulesCmd::List => {
            let rules: Vec<(String, Result<Rule, String>)> =
                if std::env::var_os("RULES_TABLE").is_some() {
                    let sdk = crate::aws::sdk_config().await;
                    dynamo_store(&sdk)?
                        .list()
                        .await?
                        .into_iter()
                        .map(|(id, r)| (id, r.map_err(|e| e.to_string())))
                        .collect()
                } else {
                    let set = configured_rules(None).await?;
                    set.rules()
                        .iter()
                        .map(|r| (r.rule.id.clone(), Ok(r.rule.clone())))
                        .collect()
                };
            if json {
                #[derive(Serialize)]
                struct Listed<'a> {
                    id: &'a str,
                    rule: Option<&'a Rule>,
                    error: Option<&'a str>,
                }
                let listed: Vec<Listed> = rules
                    .iter()
                    .map(|(id, r)| Listed {
                        id,
                        rule: r.as_ref().ok(),
                        error: r.as_ref().err().map(String::as_str),
                    })
                    .collect();
                return output::print_json(&listed);
            }
            let mut t = output::table(&[
                "id", "enabled", "priority", "bucket", "key", "workflow", "problem",
            ]);
            for (id, r) in &rules {
                match r {
                    Ok(r) => t.add_row(vec![
                        id.clone(),
                        r.enabled.to_string(),
                        r.priority.to_string(),
                        r.bucket.clone().unwrap_or_else(|| "*".into()),
                        r.key.clone(),
                        r.workflow.clone(),
                        String::new(),
                    ]),
                    Err(e) => t.add_row(vec![
                        id.clone(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        e.clone(),
                    ]),
                };
            }
            println!("{t}");
            Ok(())
        }
        RulesCmd::Delete { id } => {
            let sdk = crate::aws::sdk_config().await;
            let store = dynamo_store(&sdk)?;
            if !store.delete(&id).await? {
                bail!("no rule `{id}` in {}", store.table());
            }
            println!("deleted rule `{id}` from {}", store.table());
            Ok(())
        }
        RulesCmd::Test {
            bucket,
            key,
            size,
            etag,
            event_time,
            object,
            rules,
        } => {
            let set = configured_rules(rules.as_deref()).await?;
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let object_facts = ObjectCreated {
                bucket,
                key,
                size: match &object {
                    Some(p) => std::fs::metadata(p)
                        .with_context(|| format!("reading {}", p.display()))?
                        .len(),
                    None => size,
                },
                etag,
                version_id: None,
                sequencer: None,
                event_time: event_time.unwrap_or(now),
                reason: Some("PutObject".into()),
                source: "cli".into(),
            };
            test(&set, &object_facts, object.as_deref(), json).await
        }
    }
}

fn ids(rules: &[CompiledRule]) -> String {
    rules
        .iter()
        .map(|r| r.rule.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Serialize)]
struct Tested {
    rule: String,
    verdict: MatchVerdict,
    workflow: Option<String>,
    questions: Option<std::collections::BTreeMap<String, String>>,
    plugin: Option<String>,
}

async fn test(
    set: &RuleSet,
    obj: &ObjectCreated,
    object: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let host = match object {
        Some(_) if set.rules().iter().any(|r| r.rule.plugin.is_some()) => {
            let sdk = crate::aws::sdk_config().await;
            match crate::plugin::plugin_store_from_env(Some(&sdk))? {
                Some(store) => Some(PluginHost::new(store, PluginLimits::default())?),
                None => bail!(
                    "a matching rule uses a plugin: set PLUGIN_DIR (or PLUGIN_S3_URI) to run it"
                ),
            }
        }
        _ => None,
    };
    let matched: Vec<String> = set
        .matching(obj)
        .iter()
        .map(|r| r.rule.id.clone())
        .collect();
    let mut out = Vec::new();
    for (id, verdict) in set.explain(obj) {
        let Some(rule) = set.rules().iter().find(|r| r.rule.id == id) else {
            continue;
        };
        let is_match = matched.contains(&id);
        let mut tested = Tested {
            rule: id,
            verdict,
            workflow: is_match.then(|| rule.rule.workflow.clone()),
            questions: is_match.then(|| rule.render_questions(obj)),
            plugin: None,
        };
        if let (true, Some(spec), Some(host), Some(path)) =
            (is_match, &rule.rule.plugin, &host, object)
        {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let head = &bytes[..bytes.len().min(spec.read_bytes as usize)];
            let config = if spec.config.is_null() {
                "{}".to_string()
            } else {
                spec.config.to_string()
            };
            let input = PluginInput {
                rule_id: &rule.rule.id,
                object: obj,
                content_type: None,
                head,
                config_json: &config,
            };
            tested.plugin = Some(match host.run(spec, input).await {
                Ok(run) => match run.outcome {
                    PluginOutcome::Questions(values) => {
                        if let Some(q) = tested.questions.as_mut() {
                            q.extend(values);
                        }
                        format!("{}: ok in {:?}", spec.name, run.elapsed)
                    }
                    PluginOutcome::Skip(reason) => format!("{}: skip ({reason})", spec.name),
                },
                Err(e) => format!("error: {e}"),
            });
        }
        out.push(tested);
    }
    if json {
        return output::print_json(&out);
    }
    println!("s3://{}/{} ({} bytes)", obj.bucket, obj.key, obj.size);
    let mut t = output::table(&["rule", "result", "workflow", "question values"]);
    for r in &out {
        let result = match &r.verdict {
            MatchVerdict::Matched => "MATCH".to_string(),
            MatchVerdict::Disabled => "disabled".to_string(),
            MatchVerdict::Bucket(g) => format!("bucket is not {g}"),
            MatchVerdict::Key(g) => format!("key does not match {g}"),
            MatchVerdict::Excluded(g) => format!("excluded by {g}"),
            MatchVerdict::TooSmall(n) => format!("smaller than min_size {n}"),
            MatchVerdict::TooLarge(n) => format!("larger than max_size {n}"),
            MatchVerdict::AfterFinal(f) => format!("after final rule {f}"),
        };
        let mut values = r
            .questions
            .as_ref()
            .map(output::questions_cell)
            .unwrap_or_default();
        if let Some(p) = &r.plugin {
            values.push_str(&format!("\nplugin {p}"));
        }
        t.add_row(vec![
            r.rule.clone(),
            result,
            r.workflow.clone().unwrap_or_default(),
            values,
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Parse one rules document (exposed for the demo's embedded examples).
pub fn parse(text: &str, name: &str) -> anyhow::Result<Vec<Rule>> {
    Ok(parse_rules_document(text, name)?)
}
