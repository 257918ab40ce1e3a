//! `alteryx-router executions list|show|retry|rerun|resolve|cancel|drain-dlq`: inspect and
//! replay executions, and take one out of the waiting line.
//!
//! Replays are safe by construction: `retry` claims a new attempt on the same record with a
//! conditional write, so two people (or a person and a redelivery) retrying at once produce
//! one job for that attempt, and an attempt whose earlier job request may have reached Alteryx
//! asks Alteryx before it submits; `resolve` settles an `UNCERTAIN` execution; `drain-dlq`
//! feeds dead-lettered events back through the router, where already-handled executions are
//! skipped as duplicates.

use anyhow::bail;
use serde::Serialize;

use crate::output;
use alteryx_router_core::config::Settings;
use alteryx_router_core::executions::{
    Execution, ExecutionStatus, LeaseState, ListFilter, WaitReason, format_unix, line, now_unix,
};
use alteryx_router_core::router::Resolution;

#[derive(Debug, clap::Subcommand)]
pub enum ExecutionsCmd {
    /// List executions, newest first. CLAIMED and SUBMITTING ones show their lease: live
    /// (someone works on it), expired (its invocation died) or released. `--status WAITING`
    /// lists the waiting line in its order (oldest first) with each one's group, place in its
    /// group's line, why it waits and its next attempt.
    List {
        /// Only this status: WAITING, CLAIMED, SUBMITTING, SUBMITTED, COMPLETED, FAILED,
        /// SKIPPED, ERROR, UNCERTAIN or CANCELLED.
        #[arg(long, value_parser = parse_status)]
        status: Option<ExecutionStatus>,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only executions created since: RFC 3339 time or an age like 30m, 6h, 2d.
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one execution in full.
    Show { id: String },
    /// Submit a new attempt of ERROR or FAILED executions, or take over CLAIMED/SUBMITTING ones
    /// past their lease (their invocation died): one by id, or all with a status. An attempt
    /// whose earlier job request may have reached Alteryx asks Alteryx first.
    Retry {
        /// The execution id (as printed by `executions list`).
        #[arg(required_unless_present = "status", conflicts_with = "status")]
        id: Option<String>,
        /// Retry every execution with this status (ERROR, FAILED, or CLAIMED/SUBMITTING past
        /// their lease).
        #[arg(long, value_parser = parse_status)]
        status: Option<ExecutionStatus>,
        /// With --status: only executions created since (RFC 3339 or 30m, 6h, 2d).
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        /// With --status: at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Show what would be retried without doing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run finished executions again on purpose (COMPLETED, FAILED, SKIPPED, ERROR): one by id,
    /// or a rule's since a time. The object is read again and must still be the version the
    /// execution ran; the attempt replaced is kept in the record's history.
    Rerun {
        /// The execution id (as printed by `executions list`).
        #[arg(required_unless_present = "rule", conflicts_with_all = ["rule", "since"])]
        id: Option<String>,
        /// Every finished execution of this rule (with --since).
        #[arg(long, requires = "since")]
        rule: Option<String>,
        /// With --rule: executions created since (RFC 3339 or 30m, 6h, 2d).
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        /// With --rule: at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Show what would be rerun without doing it.
        #[arg(long)]
        dry_run: bool,
        /// With --rule: do it (without it, the executions are listed and nothing runs).
        #[arg(long)]
        yes: bool,
    },
    /// Settle an UNCERTAIN execution: name the job at Alteryx that is its own, or submit anew.
    Resolve {
        id: String,
        /// This job (it must exist at Alteryx, in the execution's workflow) is the execution's.
        #[arg(
            long,
            required_unless_present = "resubmit",
            conflicts_with = "resubmit"
        )]
        job: Option<String>,
        /// None of the candidate jobs is the execution's: submit a new attempt.
        #[arg(long)]
        resubmit: bool,
    },
    /// Take a WAITING execution out of the line (it becomes CANCELLED; `executions retry` puts
    /// it back).
    Cancel { id: String },
    /// Feed the events in a dead-letter queue back through the router; each message is
    /// deleted only after it routed without a retryable failure.
    DrainDlq {
        /// The SQS queue URL of the dead-letter queue.
        #[arg(long, env = "DLQ_URL")]
        queue_url: String,
        /// Stop after this many messages.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

pub fn parse_status(s: &str) -> Result<ExecutionStatus, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_uppercase())).map_err(|_| {
        let all: Vec<&str> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status `{s}`; expected one of {}", all.join(", "))
    })
}

/// RFC 3339 time, or an age (`90s`, `30m`, `6h`, `2d`) counted back from now, as Unix seconds.
pub fn parse_since(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is neither an RFC 3339 time nor an age like 30m, 6h, 2d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{s}`: age unit must be s, m, h or d")),
    };
    Ok(alteryx_router_core::executions::now_unix() - n * seconds)
}

fn format_time(unix: Option<i64>) -> String {
    unix.map(format_unix).unwrap_or_default()
}

/// A CLAIMED/SUBMITTING record's lease, for people: `live until …`, `EXPIRED …`, `released`.
fn lease_cell(e: &Execution, now: i64) -> String {
    match e.lease_state(now) {
        None => String::new(),
        Some(LeaseState::Live(until)) => format!("live until {}", format_unix(until)),
        Some(LeaseState::Expired(until)) => format!(
            "EXPIRED {} ({}s ago): its invocation died; `executions retry` takes it over",
            format_unix(until),
            now - until
        ),
        Some(LeaseState::Released) => "released: the next delivery or retry takes it over".into(),
    }
}

pub(crate) fn status_name(status: ExecutionStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub async fn run(cmd: ExecutionsCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        ExecutionsCmd::List {
            status,
            rule,
            since,
            limit,
        } => {
            let store = Settings::from_env()?.execution_store().await?;
            let waiting = status == Some(ExecutionStatus::Waiting);
            let filter = ListFilter {
                status,
                rule_id: rule,
                since,
                limit: Some(limit),
                // The waiting line in its order, from its head.
                oldest_first: waiting,
                ..ListFilter::default()
            };
            let list = store.list(&filter).await?;
            let places = line::places(&list);
            if json {
                #[derive(Serialize)]
                struct Listed<'a> {
                    #[serde(flatten)]
                    execution: &'a Execution,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    lease: Option<LeaseState>,
                    /// Place in its group's line (1: next), for WAITING ones.
                    #[serde(skip_serializing_if = "Option::is_none")]
                    place: Option<usize>,
                }
                let now = now_unix();
                let listed: Vec<Listed> = list
                    .iter()
                    .map(|execution| Listed {
                        execution,
                        lease: execution.lease_state(now),
                        place: places.get(&execution.id).copied(),
                    })
                    .collect();
                return output::print_json(&listed);
            }
            if waiting {
                print_line(&list, &places);
            } else {
                print_list(&list);
            }
            Ok(())
        }
        ExecutionsCmd::Cancel { id } => {
            let store = Settings::from_env()?.execution_store().await?;
            let cancelled = line::cancel(store.as_ref(), &id).await?;
            if json {
                return output::print_json(&cancelled);
            }
            println!(
                "{id}: CANCELLED (was waiting in group {})",
                cancelled.group.as_deref().unwrap_or(line::NO_GROUP)
            );
            Ok(())
        }
        ExecutionsCmd::Show { id } => {
            let store = Settings::from_env()?.execution_store().await?;
            // A batch's execution (its id is the batch's) shows its batch too; an expired
            // batch has no execution, only the batch.
            let batch = match store.batches() {
                Some(b) if id.contains(":batch-") => b.get_batch(&id).await?,
                _ => None,
            };
            let Some(record) = store.get(&id).await? else {
                if let Some(batch) = batch {
                    if json {
                        return output::print_json(&serde_json::json!({"batch": batch}));
                    }
                    crate::batches::print_batch(&batch);
                    return Ok(());
                }
                bail!(
                    "no execution with id `{id}` (ids look like `rule-id:0123456789abcdef`; see `executions list`)"
                );
            };
            if json {
                // The record as always, with its batch under `batch`.
                let mut value = serde_json::to_value(&record)?;
                if let (Some(batch), Some(obj)) = (batch, value.as_object_mut()) {
                    obj.insert("batch".into(), serde_json::to_value(batch)?);
                }
                return output::print_json(&value);
            }
            print_record(&record);
            if let Some(batch) = batch {
                println!();
                crate::batches::print_batch(&batch);
            }
            Ok(())
        }
        ExecutionsCmd::Retry {
            id,
            status,
            since,
            limit,
            dry_run,
        } => retry(id, status, since, limit, dry_run, json).await,
        ExecutionsCmd::Rerun {
            id,
            rule,
            since,
            limit,
            dry_run,
            yes,
        } => rerun(id, rule, since, limit, dry_run, yes, json).await,
        ExecutionsCmd::Resolve { id, job, resubmit } => {
            let resolution = match (job, resubmit) {
                (Some(job), false) => Resolution::Job(job),
                (None, true) => Resolution::Resubmit,
                _ => bail!("give either --job JOB_ID or --resubmit"),
            };
            let router = Settings::from_env()?.router().await?;
            let outcome = router.resolve(&id, resolution).await?;
            if json {
                return output::print_json(&outcome);
            }
            println!(
                "{id}: {} (attempt {}){}{}",
                status_name(outcome.status),
                outcome.attempt,
                outcome
                    .job_id
                    .as_deref()
                    .map(|j| format!(", job {j}"))
                    .unwrap_or_default(),
                outcome
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            if outcome.status != ExecutionStatus::Submitted {
                bail!("{id} is {} after resolving", status_name(outcome.status));
            }
            Ok(())
        }
        ExecutionsCmd::DrainDlq { queue_url, max } => drain_dlq(&queue_url, max, json).await,
    }
}

async fn retry(
    id: Option<String>,
    status: Option<ExecutionStatus>,
    since: Option<i64>,
    limit: usize,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let router = Settings::from_env()?.router().await?;
    let ids: Vec<String> = match (id, status) {
        (Some(id), _) => vec![id],
        (
            None,
            Some(
                status @ (ExecutionStatus::Error
                | ExecutionStatus::Failed
                | ExecutionStatus::Claimed
                | ExecutionStatus::Submitting),
            ),
        ) => {
            let now = now_unix();
            router
                .executions()
                .list(&ListFilter {
                    status: Some(status),
                    since,
                    limit: Some(limit),
                    ..ListFilter::default()
                })
                .await?
                .into_iter()
                // Claims are taken over only once their invocation is gone.
                .filter(|e| !matches!(e.lease_state(now), Some(LeaseState::Live(_))))
                .map(|e| e.id)
                .collect()
        }
        (None, Some(other)) => bail!(
            "only ERROR, FAILED, or CLAIMED/SUBMITTING executions past their lease can be retried, not {}",
            status_name(other)
        ),
        (None, None) => bail!("give an execution id or --status ERROR|FAILED|CLAIMED|SUBMITTING"),
    };
    if dry_run {
        if json {
            return output::print_json(&ids);
        }
        for id in &ids {
            println!("would retry {id}");
        }
        return Ok(());
    }
    let mut results = Vec::new();
    for id in ids {
        let done = router.retry(&id).await;
        results.push(ManualResult::of(id, done));
    }
    report(&results, json, "retried", "retries")
}

/// Statuses `executions rerun` takes.
const RERUNNABLE: [ExecutionStatus; 4] = [
    ExecutionStatus::Completed,
    ExecutionStatus::Failed,
    ExecutionStatus::Skipped,
    ExecutionStatus::Error,
];

async fn rerun(
    id: Option<String>,
    rule: Option<String>,
    since: Option<i64>,
    limit: usize,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> anyhow::Result<()> {
    let router = Settings::from_env()?.router().await?;
    let ids: Vec<String> = match (id, rule) {
        (Some(id), _) => vec![id],
        (None, Some(rule)) => {
            let mut found = router
                .executions()
                .list(&ListFilter {
                    rule_id: Some(rule.clone()),
                    since,
                    ..ListFilter::default()
                })
                .await?;
            found.retain(|e| RERUNNABLE.contains(&e.status));
            found.truncate(limit);
            let ids: Vec<String> = found.into_iter().map(|e| e.id).collect();
            if ids.is_empty() {
                bail!("no finished execution of rule `{rule}` in that time");
            }
            if !yes && !dry_run {
                for id in &ids {
                    eprintln!("would rerun {id}");
                }
                bail!(
                    "{} execution(s) of rule `{rule}` would run again; add --yes to run them (or --dry-run to only list them)",
                    ids.len()
                );
            }
            ids
        }
        (None, None) => bail!("give an execution id, or --rule RULE --since AGE"),
    };
    if dry_run {
        if json {
            return output::print_json(&ids);
        }
        for id in &ids {
            println!("would rerun {id}");
        }
        return Ok(());
    }
    let objects = alteryx_router_core::backfill::S3Objects::new(aws_sdk_s3::Client::new(
        &alteryx_router_core::aws::sdk_config().await,
    ));
    let mut results = Vec::new();
    for id in ids {
        let done = alteryx_router_core::backfill::rerun(&router, &objects, &id).await;
        results.push(ManualResult::of(id, done));
    }
    report(&results, json, "rerun", "reruns")
}

/// What a retry or a rerun of one execution came to.
#[derive(Serialize)]
struct ManualResult {
    id: String,
    outcome: Option<alteryx_router_core::router::RuleOutcome>,
    error: Option<String>,
}

impl ManualResult {
    fn of<E: std::error::Error + 'static>(
        id: String,
        done: Result<alteryx_router_core::router::RuleOutcome, E>,
    ) -> Self {
        match done {
            Ok(outcome) => ManualResult {
                id,
                outcome: Some(outcome),
                error: None,
            },
            Err(e) => ManualResult {
                id,
                outcome: None,
                error: Some(alteryx_router_core::error_chain(&e)),
            },
        }
    }
}

/// Prints retries or reruns (`done`: "retried" / "rerun"; `many`: "retries" / "reruns") and
/// fails when any of them did not submit a job.
fn report(results: &[ManualResult], json: bool, done: &str, many: &str) -> anyhow::Result<()> {
    let failures = results
        .iter()
        .filter(|r| {
            r.error.is_some()
                || r.outcome.as_ref().is_some_and(|o| {
                    !matches!(
                        o.status,
                        ExecutionStatus::Submitted | ExecutionStatus::Skipped
                    )
                })
        })
        .count();
    if json {
        output::print_json(&results)?;
    } else {
        let mut t = output::table(&["execution", "attempt", "status", "job", "message"]);
        for r in results {
            match (&r.outcome, &r.error) {
                (Some(o), _) => t.add_row(vec![
                    r.id.clone(),
                    o.attempt.to_string(),
                    status_name(o.status),
                    o.job_id.clone().unwrap_or_default(),
                    o.message.clone().unwrap_or_default(),
                ]),
                (None, e) => t.add_row(vec![
                    r.id.clone(),
                    String::new(),
                    format!("not {done}"),
                    String::new(),
                    e.clone().unwrap_or_default(),
                ]),
            };
        }
        println!("{t}");
    }
    if failures > 0 {
        bail!(
            "{failures} of {} {many} did not submit a job",
            results.len()
        );
    }
    Ok(())
}

async fn drain_dlq(queue_url: &str, max: usize, json: bool) -> anyhow::Result<()> {
    let router = Settings::from_env()?.router().await?;
    let sdk = alteryx_router_core::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    #[derive(Default, Serialize)]
    struct Drained {
        received: usize,
        routed: usize,
        kept: usize,
        errors: Vec<String>,
    }
    let mut drained = Drained::default();
    while drained.received < max {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10.min((max - drained.received) as i32))
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "receiving from {queue_url}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        let messages = batch.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            drained.received += 1;
            let id = message.message_id.clone().unwrap_or_default();
            let body = message.body.as_deref().unwrap_or("");
            let result = match serde_json::from_str::<serde_json::Value>(body) {
                Err(e) => Err(format!("message {id} is not JSON: {e}")),
                // Lambda's on-failure destination wraps the event; EventBridge's DLQ does not.
                Ok(payload) => match router
                    .handle_payload(payload.get("requestPayload").unwrap_or(&payload))
                    .await
                {
                    Ok(s) if s.needs_redelivery() || !s.failed_messages.is_empty() => Err(format!(
                        "message {id}: a rule failed again with a retryable error"
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!(
                        "message {id}: {}",
                        alteryx_router_core::error_chain(&e)
                    )),
                },
            };
            match result {
                Ok(()) => {
                    if let Some(handle) = &message.receipt_handle {
                        sqs.delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| {
                                anyhow::anyhow!(
                                    "deleting message {id}: {}",
                                    aws_sdk_sqs::error::DisplayErrorContext(e)
                                )
                            })?;
                    }
                    drained.routed += 1;
                }
                Err(e) => {
                    // Left in the queue: it becomes visible again after its visibility timeout.
                    tracing::warn!(error = %e, "dead-lettered event kept");
                    drained.kept += 1;
                    drained.errors.push(e);
                }
            }
        }
    }
    if json {
        output::print_json(&drained)?;
    } else {
        println!(
            "received {} message(s): {} routed and deleted, {} kept in the queue",
            drained.received, drained.routed, drained.kept
        );
        for e in &drained.errors {
            println!("  kept: {e}");
        }
    }
    Ok(())
}

/// The waiting line: group, place, why, next attempt.
fn print_line(list: &[Execution], places: &std::collections::HashMap<String, usize>) {
    let mut t = output::table(&[
        "id",
        "group",
        "place",
        "waits for",
        "next attempt",
        "waiting since",
        "object",
    ]);
    for e in list {
        t.add_row(vec![
            e.id.clone(),
            e.group
                .clone()
                .unwrap_or_else(|| line::NO_GROUP.to_string()),
            places.get(&e.id).map(|p| p.to_string()).unwrap_or_default(),
            match e.wait_reason {
                Some(WaitReason::Cap) => "a free slot".to_string(),
                Some(WaitReason::Outage) => "Alteryx".to_string(),
                Some(WaitReason::Deadline) => "the next tracker pass".to_string(),
                Some(WaitReason::Batch) => "its first dispatch (a closed batch)".to_string(),
                None => String::new(),
            },
            e.next_attempt_at
                .map(format_unix)
                .unwrap_or_else(|| "when a slot frees".to_string()),
            format_time(e.waiting_since.or(Some(e.created_at))),
            format!("s3://{}/{}", e.bucket, e.key),
        ]);
    }
    println!("{t}");
    println!("{} waiting execution(s)", list.len());
}

fn print_list(list: &[Execution]) {
    let now = now_unix();
    let leases = list.iter().any(|e| e.lease_state(now).is_some());
    let mut header = vec!["id", "status", "attempt", "object", "job", "created"];
    if leases {
        header.push("lease");
    }
    header.push("message");
    let mut t = output::table(&header);
    for e in list {
        let mut row = vec![
            e.id.clone(),
            status_name(e.status),
            e.attempt.to_string(),
            format!("s3://{}/{}", e.bucket, e.key),
            e.job_id.clone().unwrap_or_default(),
            format_time(Some(e.created_at)),
        ];
        if leases {
            row.push(lease_cell(e, now));
        }
        row.push(
            e.message
                .clone()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect(),
        );
        t.add_row(row);
    }
    println!("{t}");
    println!("{} execution(s)", list.len());
}

/// What Alteryx said about the finished job (kept by the tracker): errors first, a line each.
fn job_messages_cell(e: &Execution) -> String {
    let Some(report) = &e.job_report else {
        return String::new();
    };
    let mut lines: Vec<String> = report
        .messages
        .iter()
        .map(|m| format!("{}: {}", m.level.as_str(), m.text))
        .collect();
    if report.messages_omitted > 0 {
        lines.push(format!(
            "({} more line(s) not kept)",
            report.messages_omitted
        ));
    }
    lines.join("\n")
}

fn print_record(e: &Execution) {
    let mut t = output::table(&["field", "value"]);
    let rows: Vec<(&str, String)> = vec![
        ("id", e.id.clone()),
        ("status", status_name(e.status)),
        ("attempt", e.attempt.to_string()),
        ("rule", e.rule_id.clone()),
        ("object", format!("s3://{}/{}", e.bucket, e.key)),
        ("object version", e.object_version.clone()),
        ("batch", e.batch_id.clone().unwrap_or_default()),
        ("size", e.size.to_string()),
        ("workflow", e.workflow.clone()),
        (
            "secret",
            e.secret_id.clone().unwrap_or_else(|| "(default)".into()),
        ),
        ("questions", output::questions_cell(&e.questions)),
        ("job", e.job_id.clone().unwrap_or_default()),
        ("disposition", e.disposition.clone().unwrap_or_default()),
        ("message", e.message.clone().unwrap_or_default()),
        ("retryable", e.retryable.to_string()),
        ("lease", lease_cell(e, now_unix())),
        (
            "job request sent",
            e.submit_started_at
                .map(|ms| format_unix(ms / 1000))
                .unwrap_or_default(),
        ),
        (
            "reconcile from",
            e.reconcile_from
                .map(|ms| format_unix(ms / 1000))
                .unwrap_or_default(),
        ),
        (
            "candidates",
            e.candidates
                .iter()
                .map(|c| {
                    let mut line = c.job_id.clone();
                    if let Some(created) = &c.created {
                        line.push_str(&format!(" created {created}"));
                    }
                    if let Some(owner) = &c.owner {
                        line.push_str(&format!(" (recorded by {owner})"));
                    }
                    line
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        (
            "reruns",
            if e.reruns == 0 {
                String::new()
            } else {
                format!("{} (last {})", e.reruns, format_time(e.rerun_at))
            },
        ),
        (
            "history",
            e.history
                .iter()
                .map(|h| {
                    format!(
                        "attempt {}: {}{}{}",
                        h.attempt,
                        h.status,
                        h.job_id
                            .as_deref()
                            .map(|j| format!(", job {j}"))
                            .unwrap_or_default(),
                        h.disposition
                            .as_deref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("alteryx messages", job_messages_cell(e)),
        (
            "outputs",
            e.job_report
                .iter()
                .flat_map(|r| &r.outputs)
                .map(|o| o.name.clone().unwrap_or_else(|| o.id.clone()))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("event time", e.event_time.clone()),
        ("created", format_time(Some(e.created_at))),
        ("submitted", format_time(e.submitted_at)),
        ("finished", format_time(e.finished_at)),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    println!("{t}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_case_insensitively_and_unknown_ones_are_named() {
        assert_eq!(parse_status("error"), Ok(ExecutionStatus::Error));
        assert_eq!(parse_status("SUBMITTED"), Ok(ExecutionStatus::Submitted));
        let e = parse_status("DONE").unwrap_err();
        assert!(e.contains("DONE"), "{e}");
    }

    #[test]
    fn since_accepts_ages_and_rfc3339() {
        let now = alteryx_router_core::executions::now_unix();
        let two_hours = parse_since("2h").unwrap();
        assert!((now - 7200 - two_hours).abs() <= 2);
        assert_eq!(parse_since("2026-11-24T00:00:00Z").unwrap(), 1_795_478_400);
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("5w").unwrap_err().contains("unit"));
    }
}
