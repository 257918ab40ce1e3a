//! `alteryx-router plugin build|compile|run|publish`: make and try plugins on a laptop, and
//! put one into production (compiled for the function's CPU, uploaded, pinned by its rules).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::output;
use alteryx_router_core::config::RulesLocation;
use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::plugin::{
    BatchInput, DirPluginStore, FileObjectReader, FilePluginStore, ObjectReader, ObjectVersion,
    PluginHost, PluginInput, PluginLimits, PluginOutcome, PluginSpec, PluginStore, RangeRead,
    ReadError, ReadStats, S3ObjectReader, S3PluginStore, check_component, compile_to_cwasm,
    is_precompiled, read_head,
};
use alteryx_router_core::rules::DEFAULT_READ_BUDGET_BYTES;

/// The CPU of the function in template.yaml (`Architectures: [arm64]`).
const FUNCTION_TARGET: &str = "aarch64-unknown-linux-gnu";

#[derive(Debug, clap::Subcommand)]
pub enum PluginCmd {
    /// Build a plugin from source: runs the directory's build.sh (see plugins/examples/).
    Build {
        /// The plugin's source directory.
        dir: PathBuf,
    },
    /// Compile a .wasm component ahead of time into a .cwasm for fast cold starts.
    Compile {
        input: PathBuf,
        /// Output file (default: the input with .cwasm).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Target triple to cross-compile for, e.g. aarch64-unknown-linux-gnu (Lambda arm64).
        #[arg(long)]
        target: Option<String>,
    },
    /// Run a plugin on a local file, as a rule would; or, with --member (repeated), over a
    /// closed batch, as a rule with a `batch` block would (interface 0.3.0 plugins only).
    Run {
        /// A .wasm/.cwasm file, or a plugin name in PLUGIN_DIR.
        plugin: String,
        /// The bucket the plugin sees for local files.
        #[arg(long, default_value = "local")]
        bucket: String,
        /// The object key the plugin sees (default: the file name).
        #[arg(long)]
        key: Option<String>,
        /// The object's content (a single object; or use --member).
        #[arg(long, required_unless_present = "members", conflicts_with = "members")]
        object: Option<PathBuf>,
        /// A member of a batch, in join order: a local file (its key is its file name, in
        /// --bucket) or s3://BUCKET/KEY (its current version, read from S3). Repeat it for
        /// every member; the last one closed the batch (it is the call's object and gets the
        /// head).
        #[arg(long = "member", value_name = "FILE_OR_S3_URI", conflicts_with = "key")]
        members: Vec<String>,
        /// The batch's id the plugin sees (with --member).
        #[arg(long, default_value = "plugin-run-batch", requires = "members")]
        batch_id: String,
        /// The batch's group (the rule's `batch.by` value) the plugin sees (with --member).
        #[arg(long, default_value = "", requires = "members")]
        group: String,
        /// The rule's plugin config, as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
        /// Bytes of the object handed to the plugin up front (the rule's read_bytes).
        #[arg(long, default_value_t = 65536)]
        read_bytes: u64,
        /// Bytes the plugin may read with ranged reads (the rule's read_budget_bytes).
        #[arg(long, default_value_t = DEFAULT_READ_BUDGET_BYTES)]
        read_budget_bytes: u64,
        /// The rule's workflow (the plugin may always choose it).
        #[arg(long, default_value = "rule-workflow")]
        workflow: String,
        /// Workflows the plugin may choose instead (the rule's plugin.workflows), comma-separated.
        #[arg(long, value_delimiter = ',')]
        workflows: Vec<String>,
        /// CPU time limit in milliseconds (default 100; the first call of a .wasm also
        /// compiles it, outside this limit).
        #[arg(long)]
        timeout_ms: Option<u64>,
        #[arg(long)]
        memory_mb: Option<u64>,
    },
    /// Put a plugin into production in one step: compile it for the function's CPU, upload
    /// the .cwasm to the plugin bucket, and pin every rule that uses it (its sha256).
    /// An operator command: it needs write access to the bucket and the rules table, which
    /// the functions do not have.
    Publish {
        /// The plugin component (.wasm).
        wasm: PathBuf,
        /// The name rules know it by (default: the file name without .wasm).
        #[arg(long)]
        name: Option<String>,
        /// Where plugins live, s3://bucket/prefix/ (default: PLUGIN_S3_URI).
        #[arg(long)]
        to: Option<String>,
        /// Target triple to compile for; `host` for this machine (tests, local functions).
        #[arg(long, default_value = FUNCTION_TARGET)]
        target: String,
        /// Pin only these rules (default: every rule in RULES_TABLE whose plugin has this name).
        #[arg(long = "rule")]
        rules: Vec<String>,
    },
}

#[derive(Serialize)]
struct RunReport {
    plugin: String,
    /// The interface version the plugin implements (0.1.0, 0.2.0 or 0.3.0).
    interface: String,
    /// The batch's members (s3://bucket/key, in join order), when run over a batch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<String>,
    outcome: String,
    /// The workflow the plugin chose, when it chose one.
    workflow: Option<String>,
    questions: Vec<(String, String)>,
    skip_reason: Option<String>,
    /// What the call read of the object: the head, each ranged read, the totals.
    reads: ReadStats,
    bytes_read: u64,
    load_and_call_ms: f64,
    call_ms: f64,
    /// Fuel burned, when metered (a .wasm run here); null for a .cwasm.
    fuel_used: Option<u64>,
    logs: Vec<String>,
}

pub async fn run(cmd: PluginCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        PluginCmd::Build { dir } => {
            let script = dir.join("build.sh");
            if !script.exists() {
                bail!(
                    "{} has no build.sh; see plugins/README.md for building components",
                    dir.display()
                );
            }
            let status = std::process::Command::new("bash")
                .arg(&script)
                .current_dir(&dir)
                .status()
                .with_context(|| format!("running {}", script.display()))?;
            if !status.success() {
                bail!("{} failed ({status})", script.display());
            }
            Ok(())
        }
        PluginCmd::Compile {
            input,
            output: out,
            target,
        } => {
            let wasm =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let started = Instant::now();
            let cwasm = compile_to_cwasm(&wasm, target.as_deref())?;
            let out = out.unwrap_or_else(|| input.with_extension("cwasm"));
            std::fs::write(&out, &cwasm).with_context(|| format!("writing {}", out.display()))?;
            let sha = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&cwasm))
            };
            if json {
                return output::print_json(&serde_json::json!({
                    "output": out, "bytes": cwasm.len(), "seconds": started.elapsed().as_secs_f64(), "sha256": sha,
                    "target": target.unwrap_or_else(|| "host".into()),
                }));
            }
            println!(
                "{} → {} ({} bytes, {:.1} s, target {})\nsha256: {sha}",
                input.display(),
                out.display(),
                cwasm.len(),
                started.elapsed().as_secs_f64(),
                target.as_deref().unwrap_or("host")
            );
            Ok(())
        }
        PluginCmd::Run {
            plugin,
            bucket,
            key,
            object,
            members,
            batch_id,
            group,
            config,
            read_bytes,
            read_budget_bytes,
            workflow,
            workflows,
            timeout_ms,
            memory_mb,
        } => {
            let config_value: serde_json::Value = serde_json::from_str(&config)
                .with_context(|| format!("--config {config:?} is not JSON"))?;
            let (store, name) = locate(&plugin)?;
            // Meter fuel when the plugin is compiled here (a .wasm); a .cwasm was compiled for
            // the production engine, which does not meter, and would not load into one that does.
            let precompiled = store.fetch(&name).await?.precompiled;
            let host = PluginHost::new(
                store,
                PluginLimits {
                    meter_fuel: !precompiled,
                    ..PluginLimits::default()
                },
            )?;
            let mut reader = RunReader::default();
            let batch = match object {
                Some(object) => {
                    reader.add_file(&bucket, key, object)?;
                    None
                }
                None => {
                    for member in &members {
                        reader.add_member(&bucket, member).await?;
                    }
                    Some(BatchInput {
                        id: batch_id,
                        group,
                        members: reader.objects.clone(),
                    })
                }
            };
            // The single object, or the member that closed the batch: the last one.
            let facts = reader.objects.last().cloned().context(
                "give --object FILE, or --member FILE_OR_S3_URI for each member of a batch",
            )?;
            let member_uris = batch
                .iter()
                .flat_map(|b| &b.members)
                .map(|m| format!("s3://{}/{}", m.bucket, m.key))
                .collect();
            let spec = PluginSpec {
                name: name.clone(),
                read_bytes,
                config: config_value,
                sha256: None,
                timeout_ms,
                memory_mb,
                read_budget_bytes: Some(read_budget_bytes),
                workflows,
            };
            let reader = Arc::new(reader);
            let head = read_head(reader.as_ref(), &ObjectVersion::of(&facts), read_bytes)
                .await
                .with_context(|| format!("reading s3://{}/{}", facts.bucket, facts.key))?;
            let input = PluginInput {
                batch: batch.as_ref(),
                rule_id: "(plugin run)",
                object: &facts,
                content_type: None,
                head: &head.bytes,
                config_json: &config,
                workflow: &workflow,
                reader,
            };
            let started = Instant::now();
            let run = host.run(&spec, input).await?;
            let (outcome, chosen, questions, skip_reason) = match &run.outcome {
                PluginOutcome::Questions(q) => ("questions", None, q.clone(), None),
                PluginOutcome::Workflow {
                    workflow,
                    questions,
                } => ("workflow", Some(workflow.clone()), questions.clone(), None),
                PluginOutcome::Skip(r) => ("skip", None, Vec::new(), Some(r.clone())),
            };
            let report = RunReport {
                plugin: name,
                interface: run.interface.to_string(),
                members: member_uris,
                outcome: outcome.into(),
                workflow: chosen,
                questions,
                skip_reason,
                bytes_read: run.reads.total_bytes(),
                reads: run.reads,
                load_and_call_ms: started.elapsed().as_secs_f64() * 1e3,
                call_ms: run.elapsed.as_secs_f64() * 1e3,
                fuel_used: run.fuel_used,
                logs: run.logs,
            };
            if json {
                return output::print_json(&report);
            }
            print!("{}", human_run_report(&report));
            Ok(())
        }
        PluginCmd::Publish {
            wasm,
            name,
            to,
            target,
            rules,
        } => publish(wasm, name, to, target, rules, json).await,
    }
}

/// `plugin run` for a person: the outcome, the time, the fuel, what was read, the log.
fn human_run_report(report: &RunReport) -> String {
    let mut out = String::new();
    match (report.outcome.as_str(), &report.workflow) {
        ("skip", _) => out.push_str(&format!(
            "outcome: skip ({})\n",
            report.skip_reason.as_deref().unwrap_or_default()
        )),
        (_, Some(workflow)) => out.push_str(&format!("outcome: workflow {workflow}\n")),
        _ => out.push_str("outcome: questions\n"),
    }
    for (k, v) in &report.questions {
        out.push_str(&format!("  {k}={v}\n"));
    }
    out.push_str(&format!(
        "time: {:.2} ms call, {:.1} ms including load/compile\n",
        report.call_ms, report.load_and_call_ms
    ));
    match report.fuel_used {
        Some(fuel) => out.push_str(&format!("fuel: {fuel} units (instantiation and call)\n")),
        None => {
            out.push_str("fuel: not metered for a precompiled .cwasm (run the .wasm to count it)\n")
        }
    }
    let r = &report.reads;
    if !report.members.is_empty() {
        out.push_str(&format!("batch of {} member(s):\n", report.members.len()));
        for (i, uri) in report.members.iter().enumerate() {
            out.push_str(&format!("  member {i}: {uri}\n"));
        }
    }
    out.push_str(&format!(
        "read: {} bytes in all: head {} bytes, {} ranged read(s) of {} bytes (budget {} bytes); interface {}\n",
        r.total_bytes(),
        r.head_bytes,
        r.range_reads,
        r.range_bytes,
        r.budget,
        report.interface
    ));
    for range in &r.ranges {
        out.push_str(&format!(
            "  read {} bytes at offset {}\n",
            range.length, range.offset
        ));
    }
    for range in &r.member_ranges {
        out.push_str(&format!(
            "  read {} bytes at offset {} of member {}\n",
            range.length, range.offset, range.member
        ));
    }
    let listed = r.ranges.len() + r.member_ranges.len();
    if r.range_reads as usize > listed {
        out.push_str(&format!(
            "  ... and {} more\n",
            r.range_reads as usize - listed
        ));
    }
    for l in &report.logs {
        out.push_str(&format!("log: {l}\n"));
    }
    out
}

#[derive(Serialize)]
struct PublishReport {
    plugin: String,
    interface: String,
    target: String,
    location: String,
    bytes: usize,
    sha256: String,
    pinned_rules: Vec<String>,
}

/// Compile for the function's CPU, upload, pin. The upload comes first: a function whose
/// rule cache still holds the old pin then meets a pin mismatch, which is retryable (the
/// event is delivered again once its rules are fresh); pinning first would leave rules
/// naming a file that is not there yet.
async fn publish(
    wasm_path: PathBuf,
    name: Option<String>,
    to: Option<String>,
    target: String,
    only_rules: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    let settings = alteryx_router_core::config::Settings::from_env()?;
    let name = match name {
        Some(n) => n,
        None => wasm_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let uri = to
        .or_else(|| settings.plugin_s3_uri.clone())
        .context("say where plugins live: --to s3://bucket/prefix/ (or set PLUGIN_S3_URI)")?;
    let wasm =
        std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    if is_precompiled(&wasm) {
        bail!(
            "{} is already compiled; publish the .wasm component, which it compiles for the function's CPU",
            wasm_path.display()
        );
    }
    // Refuse what the router could not load before anything is uploaded.
    let interface = check_component(&wasm).with_context(|| {
        format!(
            "{} is not a plugin the router can load",
            wasm_path.display()
        )
    })?;
    let target_triple = (target != "host").then_some(target.as_str());
    let cwasm = compile_to_cwasm(&wasm, target_triple)?;
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&cwasm))
    };
    // Which rules to pin, read (and checked) before the upload.
    let rules_store = match &settings.rules {
        Some(RulesLocation::Table(table)) => settings.dynamo_rules(table).await,
        _ => bail!(
            "`plugin publish` pins the rules in RULES_TABLE, which is not set (rules in a file: `plugin compile` prints the sha256 to put in it)"
        ),
    };
    let mut to_pin = Vec::new();
    for (id, rule) in rules_store.list().await? {
        let Ok(rule) = rule else { continue };
        let uses_it = rule.plugin.as_ref().is_some_and(|p| p.name == name);
        if only_rules.is_empty() && uses_it || only_rules.contains(&id) {
            if !uses_it {
                bail!("rule `{id}` does not use plugin `{name}`; nothing was uploaded");
            }
            to_pin.push(rule);
        }
    }
    for id in &only_rules {
        if !to_pin.iter().any(|r| &r.id == id) {
            bail!("rule `{id}` is not in RULES_TABLE; nothing was uploaded");
        }
    }
    let sdk = alteryx_router_core::aws::sdk_config().await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let store = S3PluginStore::new(s3.clone(), &uri)?;
    let key = store.cwasm_key(&name);
    let location = format!("s3://{}/{key}", store.bucket());
    let bytes = cwasm.len();
    s3.put_object()
        .bucket(store.bucket())
        .key(&key)
        .body(cwasm.into())
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "uploading {location}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        })?;
    let mut pinned_rules = Vec::new();
    for mut rule in to_pin {
        if let Some(p) = rule.plugin.as_mut() {
            p.sha256 = Some(sha256.clone());
        }
        rules_store.put(&rule).await.with_context(|| {
            format!(
                "{location} is uploaded, but pinning rule `{}` failed; run `plugin publish` again",
                rule.id
            )
        })?;
        pinned_rules.push(rule.id);
    }
    let report = PublishReport {
        plugin: name,
        interface: interface.to_string(),
        target: target_triple.unwrap_or("host").to_string(),
        location,
        bytes,
        sha256,
        pinned_rules,
    };
    if json {
        return output::print_json(&report);
    }
    println!(
        "{} ({} bytes, interface {}, for {}) → {}\nsha256: {}",
        wasm_path.display(),
        report.bytes,
        report.interface,
        report.target,
        report.location,
        report.sha256
    );
    if report.pinned_rules.is_empty() {
        println!(
            "no rule uses plugin `{}` yet: set plugin.sha256 to the value above in the rule that will",
            report.plugin
        );
    }
    for id in &report.pinned_rules {
        println!("pinned rule {id}");
    }
    Ok(())
}

/// What `plugin run` reads: local files by the bucket and key the plugin sees them under, and
/// `s3://` members from S3 (pinned to the version found when the run started, as a router
/// call is pinned to the event's).
#[derive(Default)]
struct RunReader {
    /// The single object, or the members in join order.
    objects: Vec<ObjectCreated>,
    files: HashMap<(String, String), PathBuf>,
    s3: Option<(aws_sdk_s3::Client, S3ObjectReader)>,
}

impl RunReader {
    fn add_file(&mut self, bucket: &str, key: Option<String>, path: PathBuf) -> anyhow::Result<()> {
        let size = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let key = key.unwrap_or_else(|| {
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let slot = (bucket.to_string(), key.clone());
        if let Some(other) = self.files.get(&slot) {
            bail!(
                "{} and {} would both be s3://{bucket}/{key} (a file member's key is its file name); give each member its own name",
                other.display(),
                path.display()
            );
        }
        self.files.insert(slot, path);
        self.objects.push(ObjectCreated {
            bucket: bucket.to_string(),
            key,
            size,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: now(),
            reason: Some("PutObject".into()),
            source: "cli".into(),
        });
        Ok(())
    }

    async fn add_member(&mut self, bucket: &str, member: &str) -> anyhow::Result<()> {
        if !member.starts_with("s3://") {
            return self.add_file(bucket, None, PathBuf::from(member));
        }
        let location: alteryx_router_core::backfill::S3Prefix = member
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--member {e}"))?;
        if location.prefix.is_empty() || location.prefix.ends_with('/') {
            bail!("--member {member} names no object; expected s3://BUCKET/KEY");
        }
        if self.s3.is_none() {
            let client = aws_sdk_s3::Client::new(&alteryx_router_core::aws::sdk_config().await);
            self.s3 = Some((client.clone(), S3ObjectReader::new(client)));
        }
        let client = self
            .s3
            .as_ref()
            .map(|(c, _)| c.clone())
            .context("no S3 client")?;
        let found = alteryx_router_core::backfill::S3Objects::new(client)
            .current(&location.bucket, &location.prefix, None)
            .await
            .with_context(|| format!("--member {member}"))?;
        match found {
            alteryx_router_core::backfill::Current::Found(mut object) => {
                object.event_time = now();
                object.reason = Some("PutObject".into());
                object.source = "cli".into();
                self.objects.push(object);
                Ok(())
            }
            alteryx_router_core::backfill::Current::Gone => {
                bail!("--member {member}: no such object")
            }
        }
    }
}

#[async_trait::async_trait]
impl ObjectReader for RunReader {
    async fn read_range(
        &self,
        object: &ObjectVersion,
        offset: u64,
        length: u64,
    ) -> Result<RangeRead, ReadError> {
        let slot = (object.bucket.clone(), object.key.clone());
        match (self.files.get(&slot), &self.s3) {
            (Some(path), _) => {
                FileObjectReader::new(path.clone())
                    .read_range(object, offset, length)
                    .await
            }
            (None, Some((_, s3))) => s3.read_range(object, offset, length).await,
            (None, None) => Err(ReadError::Deleted {
                uri: format!("s3://{}/{}", object.bucket, object.key),
            }),
        }
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A path to a .wasm/.cwasm (that file exactly), or a name in PLUGIN_DIR → (store, name).
fn locate(plugin: &str) -> anyhow::Result<(Arc<dyn PluginStore>, String)> {
    let path = Path::new(plugin);
    if matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("wasm" | "cwasm")
    ) {
        if !path.exists() {
            bail!("{plugin} does not exist");
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok((Arc::new(FilePluginStore::new(path.to_path_buf())), name));
    }
    let dir = alteryx_router_core::config::Settings::from_env()?
        .plugin_dir
        .context("give a .wasm/.cwasm path, or set PLUGIN_DIR to run a plugin by name")?;
    Ok((Arc::new(DirPluginStore::new(dir)), plugin.to_string()))
}
