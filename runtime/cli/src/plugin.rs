//! `alteryx-router plugin build|compile|run`: make and try plugins on a laptop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::output;
use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::plugin::{
    DirPluginStore, FilePluginStore, PluginHost, PluginInput, PluginLimits, PluginOutcome,
    PluginSpec, PluginStore, compile_to_cwasm,
};

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
        #[arg(long, default_value_t = 65536)]
        read_bytes: u64,
        /// CPU time limit in milliseconds (default 100; the first call of a .wasm also
        /// compiles it, outside this limit).
        #[arg(long)]
        timeout_ms: Option<u64>,
        #[arg(long)]
        memory_mb: Option<u64>,
    },
}

#[derive(Serialize)]
struct RunReport {
    plugin: String,
    outcome: String,
    questions: Vec<(String, String)>,
    skip_reason: Option<String>,
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
            let bytes =
                std::fs::read(&object).with_context(|| format!("reading {}", object.display()))?;
            let key = key.unwrap_or_else(|| {
                object
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let facts = ObjectCreated {
                bucket,
                key,
                size: bytes.len() as u64,
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
            };
            let head = &bytes[..bytes.len().min(read_bytes as usize)];
            let input = PluginInput {
                rule_id: "(plugin run)",
                object: &facts,
                content_type: None,
                head,
                config_json: &config,
            };
            let started = Instant::now();
            let run = host.run(&spec, input).await?;
            let report = RunReport {
                plugin: name,
                outcome: match &run.outcome {
                    PluginOutcome::Questions(_) => "questions".into(),
                    PluginOutcome::Skip(_) => "skip".into(),
                },
                questions: match &run.outcome {
                    PluginOutcome::Questions(q) => q.clone(),
                    PluginOutcome::Skip(_) => Vec::new(),
                },
                skip_reason: match &run.outcome {
                    PluginOutcome::Skip(r) => Some(r.clone()),
                    PluginOutcome::Questions(_) => None,
                },
                load_and_call_ms: started.elapsed().as_secs_f64() * 1e3,
                call_ms: run.elapsed.as_secs_f64() * 1e3,
                fuel_used: run.fuel_used,
                logs: run.logs,
            };
            if json {
                return output::print_json(&report);
            }
            match &run.outcome {
                PluginOutcome::Questions(q) => {
                    println!("outcome: questions");
                    for (k, v) in q {
                        println!("  {k}={v}");
                    }
                }
                PluginOutcome::Skip(r) => println!("outcome: skip ({r})"),
            }
            println!(
                "time: {:.2} ms call, {:.1} ms including load/compile",
                report.call_ms, report.load_and_call_ms
            );
            match report.fuel_used {
                Some(fuel) => println!("fuel: {fuel} units (instantiation and call)"),
                None => println!(
                    "fuel: not metered for a precompiled .cwasm (run the .wasm to count it)"
                ),
            }
            for l in &report.logs {
                println!("log: {l}");
            }
            Ok(())
        }
    }
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
