//! The `alteryx-router` command line. See `alteryx-router --help`.

use clap::Parser;

use alteryx_router::cli::{Cli, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The emulator and `track --every` are long-running services: info logs by default.
    // Everything else is quiet unless RUST_LOG asks.
    let default_level = match cli.command {
        alteryx_router::cli::Command::Emulator(_) | alteryx_router::cli::Command::Track(_) => {
            "info"
        }
        _ => "warn",
    };
    alteryx_router::logging::init(default_level);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
