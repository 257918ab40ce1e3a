//! `alteryx-router rules validate|put|list|delete|test`.
//!
//! The store comes from the environment: `RULES_TABLE` (DynamoDB) or `RULES_FILE`. `validate`
//! needs neither; `test` can also take `--rules FILE` to try rules before storing them. With
//! `RULES_SNAPSHOT_URI` set, `put` and `delete` republish the rules snapshot the router reads
//! (`snapshot` does it on demand). `list` and `test` filter and page, for tables of 100,000
//! rules.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::output;
use alteryx_router_core::config::{RulesLocation, Settings};
use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::plugin::{
    FileObjectReader, ObjectReader, ObjectVersion, PluginHost, PluginInput, PluginLimits,
    PluginOutcome, read_head,
};
use alteryx_router_core::rules::job::{DEFAULT_SECRET_PREFIX, secret_warning};
use alteryx_router_core::rules::{
    CompiledRule, DynamoRuleStore, FileRuleSource, MatchVerdict, Rule, RuleRef, RuleSet,
    RuleSource, matcher,
};
use alteryx_router_core::template::Metadata;

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
    /// List the stored rules, invalid ones included (with why), sorted by id.
    List {
        /// Only rules whose id matches this pattern (`*` matches any text, e.g. `partner-00*`).
        #[arg(long)]
        id: Option<String>,
        /// Only rules whose key glob, as written, matches this pattern (`*` matches any text,
        /// e.g. `incoming/partner-*`).
        #[arg(long)]
        key: Option<String>,
        /// Only the items that fail validation (and so are skipped by the router).
        #[arg(long)]
        invalid: bool,
        /// Show at most this many (default: 200 in the table, all with --json).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this id (the next page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Delete a rule from RULES_TABLE.
    Delete { id: String },
    /// Build the rules snapshot from RULES_TABLE and write it to RULES_SNAPSHOT_URI (what
    /// `put`, `delete` and the rules-stream function do after each change).
    Snapshot,
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
        /// User metadata for `{meta.NAME}` templates, NAME=VALUE (repeatable); without it
        /// those values are shown as read when routed.
        #[arg(long = "meta", value_name = "NAME=VALUE", value_parser = parse_meta)]
        meta: Vec<(String, String)>,
        /// Only report the rules whose id matches this pattern (`*` matches any text).
        #[arg(long)]
        id: Option<String>,
    },
}

fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_ascii_lowercase(), value.to_string()))
        }
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// Warn (on stderr) about rules naming a secret the deployed functions may not read.
fn warn_about_secrets<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> anyhow::Result<()> {
    let configured = Settings::from_env()?.secret_prefix;
    let prefix = configured.as_deref().unwrap_or(DEFAULT_SECRET_PREFIX);
    for rule in rules {
        if let Some(warning) = secret_warning(rule, prefix) {
            eprintln!("warning: {warning}");
            if configured.is_none() {
                eprintln!(
                    "  (ALTERYX_SECRET_PREFIX is not set; assumed the template's default `{DEFAULT_SECRET_PREFIX}`)"
                );
            }
        }
    }
    Ok(())
}

/// A `--id`/`--key` filter: a glob in which `*` also crosses `/`.
fn filter(pattern: Option<&str>, flag: &str) -> anyhow::Result<Option<globset::GlobMatcher>> {
    pattern
        .map(|p| {
            globset::Glob::new(p)
                .map(|g| g.compile_matcher())
                .with_context(|| format!("{flag} {p:?} is not a valid pattern"))
        })
        .transpose()
}

/// The command ends with the process: freeing a large rule set piece by piece (100,000 rules
/// are millions of allocations) would only delay the exit.
fn forget_at_exit<T>(value: T) {
    std::mem::forget(value);
}

fn read_files(files: &[PathBuf]) -> anyhow::Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for f in files {
        let source = FileRuleSource::new(f.clone());
        rules.extend(source.read_rules()?);
    }
    Ok(rules)
}

/// The DynamoDB rule store named by `RULES_TABLE`, for `rules put|list|delete`. Checked before
/// any AWS configuration is loaded, so a file-based setup gets its answer at once.
async fn dynamo_store(command: &str) -> anyhow::Result<DynamoRuleStore> {
    let settings = Settings::from_env()?;
    let table = rules_table(command, settings.rules.as_ref())?;
    Ok(settings.dynamo_rules(&table).await)
}

fn rules_table(command: &str, location: Option<&RulesLocation>) -> anyhow::Result<String> {
    match location {
        Some(RulesLocation::Table(table)) => Ok(table.clone()),
        Some(RulesLocation::File(file)) => bail!(
            "`rules {command}` changes the DynamoDB table named by RULES_TABLE, which is not set; \
             the rules come from RULES_FILE={file}: edit that file instead \
             (`rules validate {file}` checks it)",
            file = file.display()
        ),
        None => bail!(
            "`rules {command}` needs RULES_TABLE (the DynamoDB table of rules); it is not set"
        ),
    }
}

/// Where `rules test` reads the rules: a file (`--rules` or `RULES_FILE`), checked one rule at
/// a time, or the whole set from the configured store.
enum TestRules {
    Files(PathBuf),
    Set(Arc<RuleSet>),
}

async fn test_rules(override_path: Option<&Path>) -> anyhow::Result<TestRules> {
    if let Some(p) = override_path {
        return Ok(TestRules::Files(p.to_path_buf()));
    }
    let settings = Settings::from_env()?;
    if let Some(RulesLocation::File(p)) = &settings.rules {
        return Ok(TestRules::Files(p.clone()));
    }
    Ok(TestRules::Set(
        settings.rule_source().await?.rule_set().await?,
    ))
}

async fn configured_rules(override_path: Option<&Path>) -> anyhow::Result<Arc<RuleSet>> {
    if let Some(p) = override_path {
        return Ok(FileRuleSource::new(p.to_path_buf()).rule_set().await?);
    }
    let source = Settings::from_env()?.rule_source().await?;
    Ok(source.rule_set().await?)
}

pub async fn run(cmd: RulesCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        RulesCmd::Validate { files } => {
            // Every rule validated and compiled, only the rules kept (in evaluation order).
            let rules = alteryx_router_core::rules::load::validate(&files)?;
            warn_about_secrets(&rules)?;
            if json {
                return output::print_json(&rules);
            }
            println!(
                "{} rule(s) valid: {}",
                rules.len(),
                id_list(rules.iter().map(|r| r.id.as_str()))
            );
            forget_at_exit(rules);
            Ok(())
        }
        RulesCmd::Put { files } => {
            let rules = read_files(&files)?;
            // All or nothing: validate every rule (and id uniqueness) before writing any.
            RuleSet::new(rules.clone())?;
            warn_about_secrets(&rules)?;
            let store = dynamo_store("put").await?;
            store.put_many(&rules).await?;
            let published = publish_snapshot(json).await?;
            if json {
                return output::print_json(&rules.iter().map(|r| &r.id).collect::<Vec<_>>());
            }
            println!(
                "stored {} rule(s) in {}: {}",
                rules.len(),
                store.table(),
                id_list(rules.iter().map(|r| r.id.as_str()))
            );
            print!("{published}");
            Ok(())
        }
        RulesCmd::Snapshot => {
            let settings = Settings::from_env()?;
            let publisher = settings.snapshot_publisher(false).await?;
            let published = publisher.publish().await?;
            if json {
                return output::print_json(&published);
            }
            println!(
                "published {} rule(s) from {} to {} ({} bytes, ETag {})",
                published.rules,
                rules_table("snapshot", settings.rules.as_ref())?,
                published.location,
                published.bytes,
                published.etag
            );
            if !published.invalid.is_empty() {
                println!(
                    "{} item(s) in the table fail validation and are left out: {} (`rules list --invalid`)",
                    published.invalid.len(),
                    id_list(published.invalid.iter().map(|i| i.id.as_str()))
                );
            }
            Ok(())
        }
        RulesCmd::List {
            id,
            key,
            invalid,
            limit,
            after,
        } => {
            let id_filter = filter(id.as_deref(), "--id")?;
            let key_filter = filter(key.as_deref(), "--key")?;
            let all: Vec<(String, Result<Rule, String>)> =
                if matches!(Settings::from_env()?.rules, Some(RulesLocation::Table(_))) {
                    dynamo_store("list")
                        .await?
                        .list()
                        .await?
                        .into_iter()
                        .map(|(id, r)| (id, r.map_err(|e| e.to_string())))
                        .collect()
                } else {
                    let set = configured_rules(None).await?;
                    let mut listed: Vec<_> = set
                        .rules()
                        .iter()
                        .map(|r| (r.rule.id.clone(), Ok(r.rule.clone())))
                        .collect();
                    listed.sort_by(|a, b| a.0.cmp(&b.0));
                    listed
                };
            let total = all.len();
            let invalid_total = all.iter().filter(|(_, r)| r.is_err()).count();
            let selected: Vec<&(String, Result<Rule, String>)> = all
                .iter()
                .filter(|(rule_id, r)| {
                    id_filter.as_ref().is_none_or(|f| f.is_match(rule_id))
                        && key_filter
                            .as_ref()
                            .is_none_or(|f| r.as_ref().is_ok_and(|r| f.is_match(&r.key)))
                        && (!invalid || r.is_err())
                        && after.as_deref().is_none_or(|a| rule_id.as_str() > a)
                })
                .collect();
            let limit = limit.or(if json { None } else { Some(200) });
            let shown = &selected[..limit.unwrap_or(usize::MAX).min(selected.len())];
            let rules: Vec<(String, Result<Rule, String>)> =
                shown.iter().map(|r| (*r).clone()).collect();
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
            println!(
                "{}",
                list_summary(
                    total,
                    invalid_total,
                    selected.len(),
                    shown.len(),
                    rules.last().map(|r| r.0.as_str())
                )
            );
            Ok(())
        }
        RulesCmd::Delete { id } => {
            let store = dynamo_store("delete").await?;
            if !store.delete(&id).await? {
                bail!("no rule `{id}` in {}", store.table());
            }
            println!("deleted rule `{id}` from {}", store.table());
            print!("{}", publish_snapshot(json).await?);
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
            meta,
            id,
        } => {
            let id_filter = filter(id.as_deref(), "--id")?;
            let source = test_rules(rules.as_deref()).await?;
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
            let metadata: Metadata = meta.into_iter().collect();
            let (out, matches) = match &source {
                TestRules::Files(path) => streamed_verdicts(path, &object_facts, &metadata)?,
                TestRules::Set(set) => verdicts(set, &object_facts, &metadata),
            };
            let tested = test(
                out,
                &matches,
                &object_facts,
                object.as_deref(),
                id_filter.as_ref(),
                json,
            )
            .await;
            forget_at_exit(matches);
            forget_at_exit(source);
            tested
        }
    }
}

/// After `put`/`delete`: republish the snapshot when `RULES_SNAPSHOT_URI` is set, and say so.
async fn publish_snapshot(json: bool) -> anyhow::Result<String> {
    let settings = Settings::from_env()?;
    if settings.rules_snapshot.is_none() {
        return Ok(String::new());
    }
    let published = settings
        .snapshot_publisher(false)
        .await?
        .publish()
        .await
        .context("the rules were written, but the snapshot was not republished (run `alteryx-router rules snapshot`)")?;
    if json {
        return Ok(String::new());
    }
    let mut text = format!(
        "snapshot {}: {} rule(s)\n",
        published.location, published.rules
    );
    if !published.invalid.is_empty() {
        text.push_str(&format!(
            "{} item(s) in the table fail validation and are skipped: {} (`rules list --invalid`)\n",
            published.invalid.len(),
            id_list(published.invalid.iter().map(|i| i.id.as_str()))
        ));
    }
    Ok(text)
}

/// How many ids a message lists before it only counts the rest.
const IDS_SHOWN: usize = 20;

fn id_list<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let ids: Vec<&str> = ids.collect();
    match ids.len() {
        n if n <= IDS_SHOWN => ids.join(", "),
        n => format!(
            "{}, … and {} more",
            ids[..IDS_SHOWN].join(", "),
            n - IDS_SHOWN
        ),
    }
}

/// The line under `rules list`: what was shown of how many, and how to see the next page.
fn list_summary(
    total: usize,
    invalid: usize,
    selected: usize,
    shown: usize,
    last: Option<&str>,
) -> String {
    let mut line = format!("{total} rule(s) in all, {invalid} invalid");
    if selected != total {
        line.push_str(&format!("; {selected} selected"));
    }
    line.push_str(&format!("; {shown} shown"));
    if let (true, Some(last)) = (shown < selected, last) {
        line.push_str(&format!("; next page: --after {last}"));
    }
    line
}

#[derive(Serialize)]
struct Tested {
    rule: String,
    verdict: MatchVerdict,
    workflow: Option<String>,
    questions: Option<std::collections::BTreeMap<String, String>>,
    plugin: Option<String>,
    /// The concurrency group whose slots a match's job takes, and its cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    cap: Option<alteryx_router_core::rules::Cap>,
    /// Where and as whom a match's job runs (API v3 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<String>,
    /// For a batch rule's match: the batch the object would join and what it satisfies.
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<BatchJoin>,
}

/// The batch an object would join (`rules test`).
#[derive(Serialize)]
struct BatchJoin {
    /// The rule's `batch.by` value for this object.
    group: String,
    /// The `require` globs its file name matches (their indices and text).
    satisfies: Vec<(u32, String)>,
    /// How many `require` entries the rule has.
    required: usize,
}

fn batch_join(rule: &CompiledRule, obj: &ObjectCreated) -> Option<BatchJoin> {
    let batch = rule.batch()?;
    let spec = rule.rule.batch.as_ref()?;
    Some(BatchJoin {
        group: batch
            .key_of(rule, obj)
            .unwrap_or_else(|e| format!("‹error: {}›", alteryx_router_core::error_chain(&e))),
        satisfies: batch
            .satisfied_by(&obj.key)
            .into_iter()
            .map(|i| (i, spec.require[i as usize].clone()))
            .collect(),
        required: batch.required(),
    })
}

/// A rule seen on its own: its verdict, or (matching the object) the rule itself, whose
/// verdict depends on the rules before it (a `final` one).
// Unboxed: nearly every rule is a `Verdict`, and a box each would be 100,000 allocations more.
#[allow(clippy::large_enum_variant)]
enum Seen<'a> {
    Verdict(Tested),
    Matches(RuleRef<'a>),
}

/// The verdict of a rule that does not match, from the rule alone; `None` when it matches.
fn first_look(rule: &CompiledRule, obj: &ObjectCreated) -> Option<Tested> {
    rule.verdict_alone(obj)
        .map(|verdict| Tested::not_matched(rule, verdict))
}

impl Tested {
    fn not_matched(rule: &CompiledRule, verdict: MatchVerdict) -> Self {
        Tested {
            rule: rule.rule.id.clone(),
            verdict,
            workflow: None,
            questions: None,
            plugin: None,
            cap: rule.rule.cap(),
            worker_tag: None,
            credential_id: None,
            batch: None,
        }
    }
}

/// Every rule's verdict in evaluation order, and the matching rules (what runs their plugins)
/// with their positions in it.
type Verdicts<'a> = (Vec<Tested>, Vec<(usize, RuleRef<'a>)>);

/// Every rule's verdict in evaluation order, with the exact values of the matches, and the
/// matching rules (what runs their plugins) with their positions.
fn in_order<'a>(
    seen: impl Iterator<Item = Seen<'a>>,
    obj: &ObjectCreated,
    metadata: &Metadata,
) -> Verdicts<'a> {
    let mut out = Vec::with_capacity(seen.size_hint().0);
    let mut matches = Vec::new();
    let mut final_rule = None;
    for s in seen {
        match s {
            Seen::Verdict(tested) => out.push(tested),
            Seen::Matches(rule) => {
                let verdict = matcher::in_order(None, &rule.rule, &mut final_rule);
                if verdict != MatchVerdict::Matched {
                    out.push(Tested::not_matched(&rule, verdict));
                    continue;
                }
                out.push(Tested {
                    rule: rule.rule.id.clone(),
                    verdict,
                    workflow: Some(rule.rule.workflow.clone()),
                    questions: Some(rule.preview_questions(obj, metadata)),
                    plugin: None,
                    cap: rule.rule.cap(),
                    worker_tag: rule.rule.worker_tag.clone(),
                    credential_id: rule.rule.credential_id.clone(),
                    batch: batch_join(&rule, obj),
                });
                matches.push((out.len() - 1, rule));
            }
        }
    }
    (out, matches)
}

/// [`in_order`] over a rule set (from the configured table).
fn verdicts<'a>(set: &'a RuleSet, obj: &ObjectCreated, metadata: &Metadata) -> Verdicts<'a> {
    let seen = set.rules().iter().map(|rule| match first_look(rule, obj) {
        Some(tested) => Seen::Verdict(tested),
        None => Seen::Matches(RuleRef::Borrowed(rule)),
    });
    in_order(seen, obj, metadata)
}

/// [`in_order`] over rules files, checked as strictly as loading them for the router, with
/// each rule looked at as it is compiled and then dropped unless it matches: at 100,000 rules
/// this holds their verdicts, not their compiled globs and templates.
fn streamed_verdicts(
    path: &Path,
    obj: &ObjectCreated,
    metadata: &Metadata,
) -> anyhow::Result<Verdicts<'static>> {
    let kept = alteryx_router_core::rules::load::checked(
        std::slice::from_ref(&path.to_path_buf()),
        |rule| match first_look(&rule, obj) {
            Some(tested) => Seen::Verdict(tested),
            None => Seen::Matches(RuleRef::Decoded(Arc::new(rule))),
        },
    )?;
    Ok(in_order(kept.into_iter().map(|k| k.value), obj, metadata))
}

async fn test(
    mut out: Vec<Tested>,
    matches: &[(usize, RuleRef<'_>)],
    obj: &ObjectCreated,
    object: Option<&Path>,
    id_filter: Option<&globset::GlobMatcher>,
    json: bool,
) -> anyhow::Result<()> {
    let a_match_has_a_plugin = matches.iter().any(|(_, r)| r.rule.plugin.is_some());
    let host = match object {
        Some(_) if a_match_has_a_plugin => match Settings::from_env()?.plugin_store().await? {
            Some(store) => Some(PluginHost::new(store, PluginLimits::default())?),
            None => {
                bail!("a matching rule uses a plugin: set PLUGIN_DIR (or PLUGIN_S3_URI) to run it")
            }
        },
        _ => None,
    };
    for (position, rule) in matches {
        let tested = &mut out[*position];
        if let (Some(spec), Some(host), Some(path)) = (&rule.rule.plugin, &host, object) {
            let reader: Arc<dyn ObjectReader> = Arc::new(FileObjectReader::new(path.to_path_buf()));
            let mut facts = obj.clone();
            facts.size = std::fs::metadata(path)
                .with_context(|| format!("reading {}", path.display()))?
                .len();
            let head = read_head(reader.as_ref(), &ObjectVersion::of(&facts), spec.read_bytes)
                .await
                .with_context(|| format!("reading {}", path.display()))?;
            let config = if spec.config.is_null() {
                "{}".to_string()
            } else {
                spec.config.to_string()
            };
            let input = PluginInput {
                batch: None,
                rule_id: &rule.rule.id,
                object: &facts,
                content_type: None,
                head: &head.bytes,
                config_json: &config,
                workflow: &rule.rule.workflow,
                reader,
            };
            tested.plugin = Some(match host.run(spec, input).await {
                Ok(run) => match run.outcome {
                    PluginOutcome::Questions(values) => {
                        if let Some(q) = tested.questions.as_mut() {
                            q.extend(values);
                        }
                        format!("{}: ok in {:?}", spec.name, run.elapsed)
                    }
                    PluginOutcome::Workflow {
                        workflow,
                        questions: values,
                    } => {
                        if let Some(q) = tested.questions.as_mut() {
                            q.extend(values);
                        }
                        tested.workflow = Some(workflow.clone());
                        format!(
                            "{}: ok in {:?}, chose workflow {workflow}",
                            spec.name, run.elapsed
                        )
                    }
                    PluginOutcome::Skip(reason) => format!("{}: skip ({reason})", spec.name),
                },
                Err(e) => format!("error: {e}"),
            });
        }
    }
    if let Some(f) = id_filter {
        out.retain(|t| f.is_match(&t.rule));
    }
    if json {
        return output::print_json(&out);
    }
    print!("{}", human_report(obj, &out));
    Ok(())
}

/// How many rules whose key glob does not match `rules test` lists before it only counts
/// them: with hundreds of rules the near misses are what a user debugging a rule wants.
const KEY_MISSES_SHOWN: usize = 10;

fn verdict_text(verdict: &MatchVerdict) -> String {
    match verdict {
        MatchVerdict::Matched => "MATCH".to_string(),
        MatchVerdict::Disabled => "disabled".to_string(),
        MatchVerdict::Bucket(g) => format!("bucket does not match {g}"),
        MatchVerdict::Key(g) => format!("key does not match {g}"),
        MatchVerdict::Excluded(g) => format!("excluded by {g}"),
        MatchVerdict::TooSmall(n) => format!("size below min_size {n}"),
        MatchVerdict::TooLarge(n) => format!("size above max_size {n}"),
        MatchVerdict::AfterFinal(f) => format!("skipped: final rule {f} matched first"),
    }
}

/// The table `rules test` prints: every match with its exact values, every near miss (key
/// matched, something else did not) and the first few key misses, then a summary line.
fn human_report(obj: &ObjectCreated, tested: &[Tested]) -> String {
    let mut report = format!("s3://{}/{} ({} bytes)\n", obj.bucket, obj.key, obj.size);
    if tested.is_empty() {
        report.push_str("no rules are configured\n");
        return report;
    }
    let mut t = output::table(&["rule", "result", "workflow", "question values"]);
    let mut key_misses = 0usize;
    for r in tested {
        if matches!(r.verdict, MatchVerdict::Key(_)) {
            key_misses += 1;
            if key_misses > KEY_MISSES_SHOWN {
                continue;
            }
        }
        let mut values = r
            .questions
            .as_ref()
            .map(output::questions_cell)
            .unwrap_or_default();
        if let Some(p) = &r.plugin {
            values.push_str(&format!("\nplugin {p}"));
        }
        let mut workflow = r.workflow.clone().unwrap_or_default();
        if let (Some(cap), MatchVerdict::Matched) = (&r.cap, &r.verdict) {
            workflow.push_str(&format!(
                "\ngroup {} (at most {} at once)",
                cap.group, cap.max_concurrent_jobs
            ));
        }
        if let Some(tag) = &r.worker_tag {
            values.push_str(&format!("\nworker tag: {tag}"));
        }
        if let Some(b) = &r.batch {
            let satisfies = if b.satisfies.is_empty() {
                "no require entry".to_string()
            } else {
                b.satisfies
                    .iter()
                    .map(|(i, glob)| format!("require[{i}] `{glob}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            values.push_str(&format!(
                "\njoins batch `{}` (satisfies {satisfies}; {} required)",
                b.group, b.required
            ));
        }
        if let Some(id) = &r.credential_id {
            values.push_str(&format!("\nruns as credential: {id}"));
        }
        t.add_row(vec![
            r.rule.clone(),
            verdict_text(&r.verdict),
            workflow,
            values,
        ]);
    }
    report.push_str(&format!("{t}\n"));
    let matched = tested
        .iter()
        .filter(|r| r.verdict == MatchVerdict::Matched)
        .count();
    report.push_str(&match matched {
        0 => format!("no rule matches ({} rule(s) checked)\n", tested.len()),
        n => format!(
            "{n} of {} rule(s) match; each match submits one job, in this order\n",
            tested.len()
        ),
    });
    if key_misses > KEY_MISSES_SHOWN {
        report.push_str(&format!(
            "{} more rule(s) not shown: their key glob does not match (--json lists every rule)\n",
            key_misses - KEY_MISSES_SHOWN
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use alteryx_router_core::rules::parse_rules_document;

    fn object(key: &str, size: u64) -> ObjectCreated {
        ObjectCreated {
            bucket: "acme-landing".into(),
            key: key.into(),
            size,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: "2026-11-24T09:15:02Z".into(),
            reason: Some("PutObject".into()),
            source: "cli".into(),
        }
    }

    #[test]
    fn the_report_shows_the_batch_an_object_would_join() {
        let yaml = "- {id: month-end, key: 'closing/<period>/*.csv', workflow: w, batch: {by: '{key.dir}', require: ['orders.csv', 'ledger*.csv']}, questions: {Files: '{batch.keys:,}', Period: '{period}'}}";
        let set = RuleSet::new(parse_rules_document(yaml, "t").unwrap()).unwrap();
        let obj = object("closing/2026-11/ledger-eu.csv", 10);
        let tested = verdicts(&set, &obj, &Metadata::new()).0;
        let report = human_report(&obj, &tested);
        assert!(
            report.contains(
                "joins batch `closing/2026-11` (satisfies require[1] `ledger*.csv`; 2 required)"
            ),
            "{report}"
        );
        let json = serde_json::to_value(&tested).unwrap();
        assert_eq!(json[0]["batch"]["group"], "closing/2026-11");
        assert_eq!(json[0]["batch"]["satisfies"][0][0], 1);
        assert!(
            json[0]["questions"]["Files"].as_str().unwrap().contains(
                "when the batch closes; with this object alone: closing/2026-11/ledger-eu.csv"
            ),
            "{json}"
        );
        assert_eq!(json[0]["questions"]["Period"], "2026-11");
    }

    #[test]
    fn the_report_shows_matches_near_misses_and_only_the_first_key_misses() {
        let mut yaml = String::from(
            "- {id: sales-csv, priority: 10, key: 'incoming/sales/**/*.csv', workflow: wf-sales, max_concurrent_jobs: 4, concurrency_group: nightly, questions: {InputPath: '{s3_uri}', FileName: '{key.name}'}}\n\
             - {id: big-only, priority: 20, key: 'incoming/**', min_size: 1000000, workflow: w}\n\
             - {id: no-tmp, priority: 30, key: 'incoming/**', exclude: ['**/_tmp/**', '**/*.csv'], workflow: w}\n",
        );
        for i in 0..25 {
            yaml.push_str(&format!(
                "- {{id: other-{i:02}, priority: 50, key: 'team{i}/**', workflow: w}}\n"
            ));
        }
        let set = RuleSet::new(parse_rules_document(&yaml, "t").unwrap()).unwrap();
        let obj = object("incoming/sales/2026/eu.csv", 2048);
        let report = human_report(&obj, &verdicts(&set, &obj, &Metadata::new()).0);
        assert!(report.starts_with("s3://acme-landing/incoming/sales/2026/eu.csv (2048 bytes)\n"));
        assert!(
            report.contains("MATCH") && report.contains("wf-sales"),
            "{report}"
        );
        assert!(
            report.contains("group nightly (at most 4 at once)"),
            "a match shows the cap its job counts against: {report}"
        );
        assert!(
            report.contains("InputPath=s3://acme-landing/incoming/sales/2026/eu.csv")
                && report.contains("FileName=eu.csv"),
            "{report}"
        );
        assert!(report.contains("size below min_size 1000000"), "{report}");
        assert!(report.contains("excluded by **/*.csv"), "{report}");
        assert!(
            report.contains("other-09") && !report.contains("other-10"),
            "{report}"
        );
        assert!(report.contains("1 of 28 rule(s) match"), "{report}");
        assert!(
            report.contains("15 more rule(s) not shown: their key glob does not match"),
            "{report}"
        );
        let nothing = object("elsewhere/x.bin", 1);
        let report = human_report(&nothing, &verdicts(&set, &nothing, &Metadata::new()).0);
        assert!(
            report.contains("no rule matches (28 rule(s) checked)"),
            "{report}"
        );
        let empty = RuleSet::new(Vec::new()).unwrap();
        assert!(
            human_report(&obj, &verdicts(&empty, &obj, &Metadata::new()).0)
                .contains("no rules are configured")
        );
    }

    #[test]
    fn the_report_shows_captures_marked_urls_metadata_and_where_the_job_runs() {
        let set = RuleSet::new(
            parse_rules_document(
                "- {id: gpu, key: 'in/<region>/*.csv', workflow: w, worker_tag: gpu, credential_id: c0ffee, questions: {Region: '{region}', Url: '{presigned_url}', Customer: '{meta.customer}', Batch: '{meta.batch}', Day: '{event_time:%Y/%m/%d}'}}",
                "t",
            )
            .unwrap(),
        )
        .unwrap();
        let obj = object("in/eu/a.csv", 10);
        let metadata = Metadata::from([("customer".to_string(), "ACME".to_string())]);
        let tested = verdicts(&set, &obj, &metadata).0;
        let report = human_report(&obj, &tested);
        for want in [
            "Region=eu",
            "Customer=ACME",
            "Batch=‹meta.batch: read from the object (HEAD) when routed›",
            "Url=‹pre-signed GET of s3://acme-landing/in/eu/a.csv, valid 3600 s; signed when routed›",
            "Day=2026/11/24",
            "worker tag: gpu",
            "runs as credential: c0ffee",
        ] {
            assert!(report.contains(want), "{want}: {report}");
        }
        let value = serde_json::to_value(&tested).unwrap();
        assert_eq!(value[0]["worker_tag"], "gpu");
        assert_eq!(value[0]["credential_id"], "c0ffee");
        assert_eq!(
            parse_meta("Customer=a=b").unwrap(),
            ("customer".into(), "a=b".into())
        );
        assert!(parse_meta("novalue").is_err());
    }

    /// `rules test` over a file looks at each rule alone as it is compiled; its verdicts are
    /// those of the whole set's `explain` (the router's index), match values included.
    #[test]
    fn a_file_streamed_gives_the_verdicts_of_the_whole_set() {
        let mut yaml = String::from(
            "- {id: late-final, priority: 90, key: 'in/**', final: true, workflow: w9}\n\
             - {id: first-final, priority: 5, key: 'in/a/**/*.csv', final: true, workflow: w1, questions: {P: '{key.name}'}}\n\
             - {id: before, priority: 1, key: 'in/**/*.csv', workflow: w0, max_concurrent_jobs: 2}\n\
             - {id: after, priority: 7, key: 'in/**', workflow: w7, worker_tag: gpu, credential_id: c1}\n\
             - {id: off, priority: 3, enabled: false, key: 'in/**', workflow: w}\n\
             - {id: eu-only, priority: 4, bucket: 'acme-eu', key: 'in/**', workflow: w}\n\
             - {id: no-tmp, priority: 6, key: 'in/**', exclude: ['**/tmp/**'], workflow: w}\n\
             - {id: big, priority: 6, key: 'in/**', min_size: 100, workflow: w}\n\
             - {id: small, priority: 6, key: 'in/**', max_size: 10, workflow: w}\n",
        );
        for i in 0..40 {
            yaml.push_str(&format!(
                "- {{id: p{i:02}, priority: {}, key: 'in/p{i}/**/*.csv', workflow: w}}\n",
                i % 3
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, &yaml).unwrap();
        let set = RuleSet::new(parse_rules_document(&yaml, "t").unwrap()).unwrap();
        for key in [
            "in/a/x/f.csv",
            "in/b/f.csv",
            "in/tmp/f.txt",
            "in/p7/2026/x.csv",
            "nothing/here",
        ] {
            for size in [1, 50, 1000] {
                let obj = object(key, size);
                let (want, want_matches) = verdicts(&set, &obj, &Metadata::new());
                let (got, got_matches) = streamed_verdicts(&path, &obj, &Metadata::new()).unwrap();
                let explained: Vec<(String, MatchVerdict)> = set.explain(&obj);
                let from_set: Vec<(String, MatchVerdict)> = want
                    .iter()
                    .map(|t| (t.rule.clone(), t.verdict.clone()))
                    .collect();
                assert_eq!(explained.len(), from_set.len());
                for ((id, e), (id2, o)) in explained.iter().zip(&from_set) {
                    assert_eq!(id, id2);
                    // The index files `eu-only` under its bucket, so for another bucket
                    // `explain` calls it a key miss; looked at alone, the bucket is what fails.
                    let bucket = matches!((e, o), (MatchVerdict::Key(_), MatchVerdict::Bucket(_)));
                    assert!(e == o || bucket, "{key} {size}: {id} {e:?} {o:?}");
                }
                assert_eq!(
                    serde_json::to_value(&want).unwrap(),
                    serde_json::to_value(&got).unwrap(),
                    "{key} {size}"
                );
                let positions = |m: &[(usize, RuleRef<'_>)]| {
                    m.iter()
                        .map(|(i, r)| (*i, r.rule.id.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(positions(&want_matches), positions(&got_matches));
            }
        }
        // Matched by several rules, in priority order, up to the first `final` one.
        let (tested, _) = verdicts(&set, &object("in/a/x/f.csv", 50), &Metadata::new());
        let matched: Vec<&str> = tested
            .iter()
            .filter(|t| t.verdict == MatchVerdict::Matched)
            .map(|t| t.rule.as_str())
            .collect();
        assert_eq!(matched, ["before", "first-final"]);
        // The same errors as loading the file for the router.
        for bad in [
            format!("{yaml}- {{id: p03, key: 'x/*', workflow: w}}\n"),
            format!("{yaml}- {{id: broken, key: 'x/[', workflow: w}}\n"),
            format!(
                "{yaml}- {{id: capped, key: 'x/*', workflow: w, concurrency_group: before, max_concurrent_jobs: 3}}\n"
            ),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let want = RuleSet::new(parse_rules_document(&bad, "t").unwrap()).unwrap_err();
            let got = streamed_verdicts(&path, &object("in/b", 1), &Metadata::new())
                .err()
                .unwrap();
            assert_eq!(want.to_string(), got.to_string());
        }
    }

    #[test]
    fn long_lists_are_paged_and_counted() {
        assert_eq!(
            list_summary(100_000, 2, 100_000, 200, Some("p00199")),
            "100000 rule(s) in all, 2 invalid; 200 shown; next page: --after p00199"
        );
        assert_eq!(
            list_summary(100_000, 2, 11, 11, Some("p00019")),
            "100000 rule(s) in all, 2 invalid; 11 selected; 11 shown"
        );
        let many: Vec<String> = (0..25).map(|i| format!("r{i}")).collect();
        let listed = id_list(many.iter().map(String::as_str));
        assert!(listed.ends_with("r19, … and 5 more"), "{listed}");
        assert_eq!(id_list(["a", "b"].into_iter()), "a, b");
        let f = filter(Some("partner-00*"), "--id").unwrap().unwrap();
        assert!(f.is_match("partner-0042") && !f.is_match("partner-1"));
        let k = filter(Some("incoming/*"), "--key").unwrap().unwrap();
        assert!(
            k.is_match("incoming/p/**/*.csv"),
            "`*` crosses `/` in filters"
        );
        let bad = filter(Some("[a"), "--id").unwrap_err();
        assert!(format!("{bad:#}").contains("--id \"[a\""), "{bad:#}");
    }

    #[test]
    fn put_and_delete_without_a_table_say_what_to_do() {
        assert_eq!(
            rules_table("put", Some(&RulesLocation::Table("rules".into()))).unwrap(),
            "rules"
        );
        let file = rules_table("delete", Some(&RulesLocation::File("rules/".into())))
            .unwrap_err()
            .to_string();
        assert!(
            file.contains("`rules delete`")
                && file.contains("RULES_FILE=rules/: edit that file instead"),
            "{file}"
        );
        let none = rules_table("put", None).unwrap_err().to_string();
        assert!(none.contains("needs RULES_TABLE"), "{none}");
    }

    #[test]
    fn json_verdicts_are_tagged() {
        let set = RuleSet::new(
            parse_rules_document("- {id: r, key: 'a/**', min_size: 10, workflow: w}", "t").unwrap(),
        )
        .unwrap();
        let value =
            serde_json::to_value(verdicts(&set, &object("a/b", 1), &Metadata::new()).0).unwrap();
        assert_eq!(
            value,
            serde_json::json!([{"rule": "r", "verdict": {"verdict": "too_small", "detail": 10}, "workflow": null, "questions": null, "plugin": null}])
        );
    }
}
