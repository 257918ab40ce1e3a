//! `alteryx-router track`: check submitted jobs and record their outcome, once or repeatedly.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::output;
use crate::tracker::{LogNotifier, Notifier, SnsNotifier, TrackReport};

#[derive(Debug, clap::Args)]
pub struct TrackArgs {
    /// Keep tracking, one pass every this many seconds (default: one pass and exit).
    #[arg(long)]
    pub every: Option<u64>,
    /// Flag jobs still queued or running after this many minutes.
    #[arg(long, env = "TRACK_STUCK_AFTER_MINUTES", default_value_t = 60)]
    pub stuck_after_minutes: u64,
    /// SNS topic for failure notices (default: log them).
    #[arg(long, env = "FAILURE_TOPIC_ARN")]
    pub topic_arn: Option<String>,
}

pub async fn run(args: TrackArgs, json: bool) -> anyhow::Result<()> {
    let tracker =
        crate::config::tracker_from_env(args.topic_arn.clone(), args.stuck_after_minutes).await?;
    loop {
        let report = tracker.run_once().await;
        print_report(&report, json)?;
        match args.every {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
            None => break,
        }
    }
    Ok(())
}

fn print_report(report: &TrackReport, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(report);
    }
    println!(
        "checked {}: {} completed, {} failed, {} still running, {} newly stuck{}",
        report.checked,
        report.completed,
        report.failed,
        report.still_running,
        report.stuck,
        if report.out_of_budget {
            " (time budget reached; the rest waits for the next run)"
        } else {
            ""
        }
    );
    for e in &report.errors {
        println!("  error: {e}");
    }
    Ok(())
}

/// The notifier for a topic ARN, or the log when there is none.
pub async fn notifier(topic_arn: Option<String>) -> Arc<dyn Notifier> {
    match topic_arn.filter(|t| !t.is_empty()) {
        Some(arn) => {
            let sdk = crate::aws::sdk_config().await;
            Arc::new(SnsNotifier::new(aws_sdk_sns::Client::new(&sdk), arn))
        }
        None => Arc::new(LogNotifier),
    }
}
