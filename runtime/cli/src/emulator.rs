//! `alteryx-router emulator`: run the local Alteryx Server until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use alteryx_router_emulator::{self as emulator, DEMO_KEY, DEMO_SECRET, EmulatorConfig};

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
    /// How long each job runs, in seconds.
    #[arg(long)]
    pub job_seconds: Option<f64>,
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
        config.job_duration = Duration::from_secs_f64(j.max(0.0));
    }
    let workflows = config.workflows.clone();
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
        "  received jobs:    http://{}/_emulator/jobs",
        handle.addr()
    );
    println!("workflows:");
    for w in &workflows {
        let names: Vec<&str> = w.questions.iter().map(|q| q.name.as_str()).collect();
        println!(
            "  {}  {}  [{}]  jobs end {:?}",
            w.id,
            w.name,
            names.join(", "),
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
