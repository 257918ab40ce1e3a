//! `alteryx-router plugin build|compile|run|publish`: make and try plugins on a laptop, and
//! put one into production (compiled for the function's CPU, uploaded, pinned by its rules).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::output;
use alteryx_router_core::config::RulesLocation;
use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::plugin::{
    DirPluginStore, FileObjectReader, FilePluginStore, ObjectVersion, PluginHost, PluginInput,
    PluginLimits, PluginOutcome, PluginSpec, PluginStore, ReadStats, S3PluginStore,
    check_component, compile_to_cwasm, is_precompiled, read_head,
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
    /// Run a plugin on a local file, as a rule would.
    Run {
        /// A .wasm/.cwasm file, or a plugin name in PLUGIN_DIR.
        plugin: String,
        #[arg(long, default_value = "local")]
        bucket: String,
        /// The object key the plugin sees (default: the file name).
        #[arg(long)]
        key: Option<String>,
        /// The object's content.
        #[arg(long)]
        object: PathBuf,
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
    /// The interface version the plugin implements (0.1.0 or 0.2.0).
    interface: String,
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
            let size = std::fs::metadata(&object)
                .with_context(|| format!("reading {}", object.display()))?
                .len();
            let key = key.unwrap_or_else(|| {
                object
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let facts = ObjectCreated {
                bucket,
                key,
                size,
                etag: None,
                version_id: None,
                sequencer: None,
                event_time: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                reason: Some("PutObject".into()),
                source: "cli".into(),
            };
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
            let reader = Arc::new(FileObjectReader::new(object.clone()));
            let head = read_head(reader.as_ref(), &ObjectVersion::of(&facts), read_bytes)
                .await
                .with_context(|| format!("reading {}", object.display()))?;
            let input = PluginInput {
                batch: None,
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
    if r.range_reads as usize > r.ranges.len() {
        out.push_str(&format!(
            "  ... and {} more\n",
            r.range_reads as usize - r.ranges.len()
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
