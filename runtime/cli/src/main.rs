//! The `alteryx-router` command line: one binary, one subcommand group per file.
//!
//! Every command reads the same environment as the Lambda (`docs/architecture.md`, "Configuration"), so what a
//! user tries on a laptop is what runs in AWS. `--json` switches any command to
//! machine-readable output on stdout; logs always go to stderr.

mod alteryx;
mod backfill;
mod batches;
mod demo;
mod emulator;
mod executions;
mod invoke;
mod output;
mod plugin;
mod rules;
mod status;
mod tables;
mod track;

use clap::{Parser, Subcommand};

/// Route S3 "Object Created" events to Alteryx Server workflows by rules.
#[derive(Debug, Parser)]
#[command(name = "alteryx-router", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole path on this machine: emulated Alteryx Server, example rules, sample objects.
    Demo(demo::DemoArgs),
    /// Run the Lambda handler locally on an event file (same configuration as the Lambda).
    Invoke(invoke::InvokeArgs),
    /// Route objects already in S3 (s3://BUCKET/PREFIX) as if their events had just come:
    /// same rules, claims and jobs; what already ran is a duplicate.
    Backfill(backfill::BackfillArgs),
    /// Validate, store, list, delete and test routing rules.
    #[command(subcommand)]
    Rules(rules::RulesCmd),
    /// Inspect and replay executions.
    #[command(subcommand)]
    Executions(executions::ExecutionsCmd),
    /// List, show and close the batches of batch rules.
    #[command(subcommand)]
    Batches(batches::BatchesCmd),
    /// List the workflows the Alteryx credentials can run.
    Workflows {
        #[command(flatten)]
        server: alteryx::ServerArgs,
        #[command(subcommand)]
        cmd: alteryx::WorkflowsCmd,
    },
    /// Submit and inspect Alteryx jobs.
    Jobs {
        #[command(flatten)]
        server: alteryx::ServerArgs,
        #[command(subcommand)]
        cmd: alteryx::JobsCmd,
    },
    /// Build, compile and run WebAssembly plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// Run a local Alteryx Server emulator (v1 OAuth1 and v3 OAuth2).
    Emulator(emulator::EmulatorArgs),
    /// Create the DynamoDB tables named by RULES_TABLE and EXECUTIONS_TABLE.
    #[command(subcommand)]
    Tables(tables::TablesCmd),
    /// Check submitted jobs once and record their outcome (what the scheduled tracker does).
    Track(track::TrackArgs),
    /// Per concurrency group: cap, jobs at Alteryx, executions waiting, the oldest wait.
    Status,
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Demo(args) => demo::run(args, json).await,
        Command::Invoke(args) => invoke::run(args, json).await,
        Command::Backfill(args) => backfill::run(args, json).await,
        Command::Rules(cmd) => rules::run(cmd, json).await,
        Command::Executions(cmd) => executions::run(cmd, json).await,
        Command::Batches(cmd) => batches::run(cmd, json).await,
        Command::Workflows { server, cmd } => alteryx::run_workflows(cmd, &server, json).await,
        Command::Jobs { server, cmd } => alteryx::run_jobs(cmd, &server, json).await,
        Command::Plugin(cmd) => plugin::run(cmd, json).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Tables(cmd) => tables::run(cmd, json).await,
        Command::Track(args) => track::run(args, json).await,
        Command::Status => status::run(json).await,
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The emulator and `track --every` are long-running services: info logs by default.
    // Everything else is quiet unless RUST_LOG asks.
    let default_level = match cli.command {
        Command::Emulator(_) | Command::Track(_) => "info",
        _ => "warn",
    };
    alteryx_router_core::logging::init(default_level);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
