//! `alteryx-router emulator`: run the local Alteryx Server until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use alteryx_router_emulator::{
    self as emulator, DEMO_KEY, DEMO_SECRET, EmulatorConfig, config::seconds,
};

#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8087)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Workflows and their questions (YAML or JSON; see emulator/workflows.example.yaml).
    #[arg(long)]
    pub workflows: Option<PathBuf>,
    /// API key to accept (OAuth1 consumer key / OAuth2 client id).
    #[arg(long, default_value = DEMO_KEY)]
    pub key: String,
    /// API secret to accept.
    #[arg(long, default_value = DEMO_SECRET, hide_default_value = true)]
    pub secret: String,
    /// OAuth2 token lifetime in seconds.
    #[arg(long)]
    pub token_ttl: Option<u64>,
    /// How long each job runs, in seconds (workflows with their own `job_seconds` excepted).
    #[arg(long)]
    pub job_seconds: Option<f64>,
    /// Worker slots: at most N jobs Running at once, the others wait Queued (priority, then
    /// arrival). Without it, every job runs as soon as it is queued.
    #[arg(long, value_name = "N")]
    pub slots: Option<usize>,
    /// A worker tag the server knows (repeatable; adds to the workflows file's `worker_tags`).
    /// A v3 job request naming another is refused.
    #[arg(long = "worker-tag", value_name = "TAG")]
    pub worker_tags: Vec<String>,
    /// A credential id the server knows (repeatable; adds to the file's `credential_ids`).
    #[arg(long = "credential-id", value_name = "ID")]
    pub credential_ids: Vec<String>,
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let mut config = match &args.workflows {
        Some(path) => EmulatorConfig::from_yaml_file(path)?,
        None => EmulatorConfig::default(),
    };
    config.credentials = vec![(args.key.clone(), args.secret.clone())];
    if let Some(t) = args.token_ttl {
        config.token_ttl = Duration::from_secs(t);
    }
    if let Some(j) = args.job_seconds {
        config.job_duration = seconds("--job-seconds", j)?;
    }
    if args.slots.is_some() {
        config.slots = args.slots;
    }
    config.worker_tags.extend(args.worker_tags.iter().cloned());
    config
        .credential_ids
        .extend(args.credential_ids.iter().cloned());
    let settings = describe_settings(&config);
    let workflows: Vec<_> = config
        .workflows
        .iter()
        .map(|w| (w.clone(), config.run_time(&w.id)))
        .collect();
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("{}:{} is not a socket address", args.host, args.port))?;
    let handle = emulator::start(config, addr).await?;
    let demo_secret = args.secret == DEMO_SECRET;
    println!("Alteryx Server emulator");
    println!("  v1, OAuth1:       {}", handle.gallery_url());
    println!("  v1 + v3, OAuth2:  {}", handle.webapi_url());
    println!("  key:              {}", args.key);
    println!(
        "  secret:           {}",
        if demo_secret {
            DEMO_SECRET
        } else {
            "(as given)"
        }
    );
    println!(
        "  received jobs:    http://{}/_emulator/jobs  (stats, faults, ...: docs/emulator.md)",
        handle.addr()
    );
    println!("  settings:         {settings}");
    println!("workflows:");
    for (w, run_time) in &workflows {
        let names: Vec<&str> = w.questions.iter().map(|q| q.name.as_str()).collect();
        println!(
            "  {}  {}  [{}]  jobs run {} s and end {:?}",
            w.id,
            w.name,
            names.join(", "),
            run_time.as_secs_f64(),
            w.outcome
        );
    }
    println!();
    println!(
        "export ALTERYX_URL={} ALTERYX_KEY={}{}",
        handle.gallery_url(),
        args.key,
        if demo_secret {
            format!(" ALTERYX_SECRET={DEMO_SECRET}")
        } else {
            String::new()
        }
    );
    wait_for_stop().await;
    handle.shutdown().await;
    Ok(())
}

/// Slots, run time, worker tags and credential ids in one line.
fn describe_settings(config: &EmulatorConfig) -> String {
    let slots = config.slots.map_or_else(
        || "no slot limit".to_string(),
        |n| format!("{n} worker slot(s)"),
    );
    let mut out = format!("{slots}, jobs run {} s", config.job_duration.as_secs_f64());
    if !config.worker_tags.is_empty() {
        out.push_str(&format!(", worker tags {}", config.worker_tags.join(", ")));
    }
    if !config.credential_ids.is_empty() {
        out.push_str(&format!(
            ", credential ids {}",
            config.credential_ids.join(", ")
        ));
    }
    out
}

async fn wait_for_stop() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
