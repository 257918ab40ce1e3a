//! `alteryx-router invoke --event FILE`: run the Lambda's handler locally on one event.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// The event JSON (EventBridge, S3 notification, SNS or SQS shaped); `-` reads stdin.
    #[arg(long, short)]
    pub event: PathBuf,
}

pub async fn run(args: InvokeArgs, json: bool) -> anyhow::Result<()> {
    let text = if args.event.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the event from stdin")?
    } else {
        std::fs::read_to_string(&args.event)
            .with_context(|| format!("reading event file {}", args.event.display()))?
    };
    let payload: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.event.display()))?;
    let router = alteryx_router_core::config::Settings::from_env()?
        .router()
        .await?;
    let summary = router.handle_payload(&payload).await?;
    if json {
        output::print_json(&summary)?;
    } else {
        output::print_summary(&summary);
    }
    if summary.needs_redelivery() || !summary.failed_messages.is_empty() {
        anyhow::bail!(
            "some rules failed in a way a retry may fix; in Lambda this invocation would be retried"
        );
    }
    Ok(())
}
