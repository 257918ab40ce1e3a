//! `alteryx-router backfill s3://BUCKET/PREFIX`: route objects already in S3 through the same
//! rules, claims, plugins and job requests as their events would have
//! ([`alteryx_router_core::backfill`]). Progress goes to stderr, the summary to stdout.
//!
//! Progress is a counter line (rewritten in place on a terminal, a line every few seconds
//! otherwise) rather than a progress-bar crate: the total is unknown until the listing ends,
//! which is what a bar would need.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::executions::{parse_since, status_name};
use crate::output;
use alteryx_router_core::backfill::{
    BackfillCounts, BackfillOptions, BackfillReport, ItemDetail, S3Objects, S3Prefix, backfill,
};
use alteryx_router_core::config::Settings;
use alteryx_router_core::executions::ExecutionStatus;

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// Where the objects are: s3://BUCKET/PREFIX (or s3://BUCKET for all of it).
    pub location: S3Prefix,
    /// Only this rule (the others are not run).
    #[arg(long)]
    pub rule: Option<String>,
    /// Only objects last modified at or after: RFC 3339 time or an age like 30m, 6h, 2d.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<i64>,
    /// Only objects last modified before: RFC 3339 time or an age like 30m, 6h, 2d.
    #[arg(long, value_parser = parse_since)]
    pub until: Option<i64>,
    /// Say what would run (rule, object, workflow, question values); write and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Route at most this many objects (after --since/--until).
    #[arg(long)]
    pub max: Option<usize>,
    /// Objects routed at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

pub async fn run(args: BackfillArgs, json: bool) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let router = settings.router().await?;
    let objects = S3Objects::new(aws_sdk_s3::Client::new(
        &alteryx_router_core::aws::sdk_config().await,
    ));
    let options = BackfillOptions {
        rule: args.rule,
        since: args.since,
        until: args.until,
        max: args.max,
        concurrency: usize::from(args.concurrency),
        dry_run: args.dry_run,
    };
    let mut progress = Progress::new();
    // The first Ctrl-C stops taking new objects (those started finish and are recorded);
    // a second one ends the process at once (claims left behind are taken over later).
    let stop = async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\nstopping: finishing the objects already started (Ctrl-C again to quit now)"
            );
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            });
        } else {
            std::future::pending::<()>().await;
        }
    };
    let report = backfill(
        &router,
        &objects,
        &args.location,
        &options,
        |c| progress.show(c),
        stop,
    )
    .await?;
    progress.finish();
    if json {
        output::print_json(&report)?;
    } else {
        print_report(&report);
    }
    let c = &report.counts;
    if let Some(e) = &report.listing_error {
        bail!("the listing failed part-way: {e}; run the same command again to finish");
    }
    if report.interrupted {
        bail!("interrupted; run the same command again to finish the rest");
    }
    if c.unfinished() {
        bail!(
            "{} error(s), {} in progress elsewhere, {} outcome(s) unknown; run the same command again later to finish",
            c.errors,
            c.in_progress,
            c.unknown
        );
    }
    if c.uncertain > 0 {
        bail!(
            "{} execution(s) UNCERTAIN: see `executions list --status UNCERTAIN`",
            c.uncertain
        );
    }
    Ok(())
}

/// The counter on stderr.
struct Progress {
    terminal: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last: None,
            shown: false,
        }
    }

    fn show(&mut self, c: &BackfillCounts) {
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let line = format!(
            "listed {} · routed {} · submitted {} · duplicates {} · skipped {} · errors {}",
            c.listed, c.routed, c.submitted, c.duplicates, c.skipped, c.errors
        );
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.shown = true;
    }

    fn finish(&self) {
        if self.terminal && self.shown {
            eprintln!();
        }
    }
}

fn print_report(report: &BackfillReport) {
    let c = &report.counts;
    if report.dry_run {
        let mut t = output::table(&["object", "rule", "workflow", "would", "questions / why"]);
        for item in &report.items {
            let object = format!("s3://{}/{}", item.bucket, item.key);
            match &item.detail {
                ItemDetail::Planned(p) => {
                    let what = serde_json::to_value(p.would)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let cell = if p.questions.is_empty() {
                        p.message.clone().unwrap_or_default()
                    } else {
                        output::questions_cell(&p.questions)
                    };
                    t.add_row(vec![
                        object,
                        p.rule_id.clone(),
                        p.workflow.clone(),
                        what,
                        cell,
                    ]);
                }
                ItemDetail::Failed { error } => {
                    t.add_row(vec![
                        object,
                        String::new(),
                        String::new(),
                        "error".into(),
                        error.clone(),
                    ]);
                }
                ItemDetail::Routed(_) => {}
            }
        }
        if !report.items.is_empty() {
            println!("{t}");
        }
        println!(
            "dry run of {}: listed {}, routed {}, matched {}: would run {}, duplicates {}, in progress {}, would skip {}, errors {}; nothing was written or submitted",
            report.location,
            c.listed,
            c.routed,
            c.matched,
            c.would_run,
            c.duplicates,
            c.in_progress,
            c.skipped,
            c.errors
        );
        return;
    }
    let failures: Vec<_> = report
        .items
        .iter()
        .filter_map(|item| match &item.detail {
            ItemDetail::Routed(o)
                if !o.duplicate
                    && (o.in_progress
                        || !matches!(
                            o.status,
                            ExecutionStatus::Submitted | ExecutionStatus::Skipped
                        )) =>
            {
                Some((
                    format!("s3://{}/{}", item.bucket, item.key),
                    o.rule_id.clone(),
                    status_name(o.status),
                    o.message.clone().unwrap_or_default(),
                ))
            }
            ItemDetail::Failed { error } => Some((
                format!("s3://{}/{}", item.bucket, item.key),
                String::new(),
                "not routed".into(),
                error.clone(),
            )),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        let mut t = output::table(&["object", "rule", "status", "message"]);
        for (object, rule, status, message) in failures {
            t.add_row(vec![object, rule, status, message]);
        }
        println!("{t}");
    }
    println!(
        "backfill of {}{}: listed {}, routed {}, matched {}, submitted {}, duplicates {}, skipped {}, errors {}{}{}{}",
        report.location,
        if report.versioned { " (versioned)" } else { "" },
        c.listed,
        c.routed,
        c.matched,
        c.submitted,
        c.duplicates,
        c.skipped,
        c.errors,
        if c.in_progress > 0 {
            format!(", in progress {}", c.in_progress)
        } else {
            String::new()
        },
        if c.unknown > 0 {
            format!(", outcome unknown {}", c.unknown)
        } else {
            String::new()
        },
        if c.uncertain > 0 {
            format!(", uncertain {}", c.uncertain)
        } else {
            String::new()
        },
    );
}
