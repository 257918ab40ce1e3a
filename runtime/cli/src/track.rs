//! `alteryx-router track`: check submitted jobs and record their outcome, sweep stale claims
//! and dispatch the waiting line, once or repeatedly.

use std::time::Duration;

use crate::output;
use alteryx_router_core::tracker::TrackReport;

#[derive(Debug, clap::Args)]
pub struct TrackArgs {
    /// Keep tracking, one pass every this many seconds (default: one pass and exit).
    #[arg(long)]
    pub every: Option<u64>,
    /// Flag jobs still queued or running after this many minutes (default: TRACK_STUCK_AFTER_MINUTES, else 60).
    #[arg(long)]
    pub stuck_after_minutes: Option<u64>,
    /// SNS topic for failure notices (default: FAILURE_TOPIC_ARN, else they are logged).
    #[arg(long)]
    pub topic_arn: Option<String>,
}

pub async fn run(args: TrackArgs, json: bool) -> anyhow::Result<()> {
    let mut settings = alteryx_router_core::config::Settings::from_env()?;
    if let Some(topic) = args.topic_arn.clone().filter(|t| !t.is_empty()) {
        settings.failure_topic_arn = Some(topic);
    }
    if let Some(minutes) = args.stuck_after_minutes {
        settings.track_stuck_after = Duration::from_secs(minutes * 60);
    }
    let tracker = settings.tracker().await?;
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
    if report.stale_claims > 0 {
        println!(
            "{} stale claim(s) (invocation died, lease long over): {} job(s) adopted, {} UNCERTAIN, {} left as retryable ERROR",
            report.stale_claims, report.adopted, report.uncertain, report.released
        );
    }
    if report.waiting > 0 || report.dispatched > 0 {
        println!(
            "waiting line: {} read, {} submitted, {} back in line, {} given up",
            report.waiting, report.dispatched, report.requeued, report.gave_up
        );
    }
    println!(
        "requests: Alteryx {} job poll(s), {} job-list page(s){}; DynamoDB {} read(s), {} write(s){}",
        report.job_polls,
        report.list_calls,
        if report.list_failures > 0 {
            format!(" ({} list(s) failed)", report.list_failures)
        } else {
            String::new()
        },
        report.dynamodb_reads,
        report.dynamodb_writes,
        if report.deferred > 0 {
            format!(
                "; {} job(s) not polled this pass (back-off by age)",
                report.deferred
            )
        } else {
            String::new()
        }
    );
    for e in &report.errors {
        println!("  error: {e}");
    }
    Ok(())
}
