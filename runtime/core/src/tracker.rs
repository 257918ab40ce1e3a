//! Job tracker: finds `SUBMITTED` executions, asks Alteryx how each job is doing, and records
//! `COMPLETED` (with the disposition) or `FAILED` (with Alteryx's messages). Failures and jobs
//! stuck past a limit are published to a [`Notifier`] (SNS in AWS). What Alteryx said about a
//! finished job (its messages and outputs) is kept on the execution as a
//! [`JobReport`](crate::job_report::JobReport), and what finished is listed in the
//! [`TrackReport`] for the metrics ([`crate::metrics`]).
//!
//! Each run does bounded work: at most `max_executions`, `concurrency` calls in flight, and it
//! stops starting new checks when its time budget (kept below the function timeout) runs out;
//! what it did not reach waits for the next scheduled run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use crate::alteryx::{AlteryxError, Job};
use crate::error_chain;
use crate::executions::{Execution, ExecutionStatus, ExecutionStore, ListFilter, now_unix};
use crate::job_report::JobReport;
use crate::secrets::ClientPool;

pub use crate::notify::{
    FailureNotice, LogNotifier, NoticeKind, Notifier, NotifyError, SnsNotifier, notifier,
};

#[derive(Debug, Clone)]
pub struct TrackerSettings {
    pub max_executions: usize,
    pub concurrency: usize,
    pub budget: Duration,
    /// A job still queued or running after this long is flagged as stuck (once).
    pub stuck_after: Duration,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        Self {
            max_executions: 500,
            concurrency: 8,
            budget: Duration::from_secs(45),
            stuck_after: Duration::from_secs(60 * 60),
        }
    }
}

/// What one tracking run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TrackReport {
    pub checked: usize,
    pub completed: usize,
    pub failed: usize,
    pub still_running: usize,
    pub stuck: usize,
    pub errors: Vec<String>,
    pub out_of_budget: bool,
    /// The jobs this pass found finished (`COMPLETED` or `FAILED`), for the metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finished: Vec<FinishedJob>,
}

/// A job the tracker recorded as ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinishedJob {
    pub rule_id: String,
    pub execution_id: String,
    /// `COMPLETED` or `FAILED`.
    pub status: ExecutionStatus,
    /// From submission to the tracker recording its end (so up to one tracker interval
    /// more than Alteryx's run time); absent when the submission time is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
}

pub struct Tracker {
    executions: Arc<dyn ExecutionStore>,
    alteryx: Arc<ClientPool>,
    notifier: Arc<dyn Notifier>,
    settings: TrackerSettings,
}

/// How records written before [`Execution::stuck_at`] existed said "flagged as stuck": a
/// message prefix. Still honoured, so an upgrade does not send their notices again.
const LEGACY_STUCK_PREFIX: &str = "stuck:";

enum Checked {
    Completed(FinishedJob),
    Failed(FinishedJob),
    Running,
    Stuck,
    Error(String),
}

impl Tracker {
    pub fn new(
        executions: Arc<dyn ExecutionStore>,
        alteryx: Arc<ClientPool>,
        notifier: Arc<dyn Notifier>,
        settings: TrackerSettings,
    ) -> Self {
        Self {
            executions,
            alteryx,
            notifier,
            settings,
        }
    }

    /// One bounded pass over the `SUBMITTED` executions.
    pub async fn run_once(&self) -> TrackReport {
        let started = Instant::now();
        let mut report = TrackReport::default();
        let filter = ListFilter {
            status: Some(ExecutionStatus::Submitted),
            limit: Some(self.settings.max_executions),
            ..ListFilter::default()
        };
        let pending = match self.executions.list(&filter).await {
            Ok(p) => p,
            Err(e) => {
                report
                    .errors
                    .push(format!("listing SUBMITTED executions: {}", error_chain(&e)));
                return report;
            }
        };
        let budget = self.settings.budget;
        let results: Vec<Option<Checked>> = futures::stream::iter(pending)
            .map(|record| async move {
                if started.elapsed() >= budget {
                    return None;
                }
                Some(self.check(record).await)
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for result in results {
            match result {
                None => report.out_of_budget = true,
                Some(c) => {
                    report.checked += 1;
                    match c {
                        Checked::Completed(job) => {
                            report.completed += 1;
                            report.finished.push(job);
                        }
                        Checked::Failed(job) => {
                            report.failed += 1;
                            report.finished.push(job);
                        }
                        Checked::Running => report.still_running += 1,
                        Checked::Stuck => report.stuck += 1,
                        Checked::Error(e) => report.errors.push(e),
                    }
                }
            }
        }
        tracing::info!(
            checked = report.checked,
            completed = report.completed,
            failed = report.failed,
            running = report.still_running,
            stuck = report.stuck,
            errors = report.errors.len(),
            out_of_budget = report.out_of_budget,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tracker run"
        );
        report
    }

    async fn check(&self, mut record: Execution) -> Checked {
        let Some(job_id) = record.job_id.clone() else {
            return Checked::Error(format!(
                "execution {} is SUBMITTED without a job id",
                record.id
            ));
        };
        let client = match self.alteryx.client(record.secret_id.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                return Checked::Error(format!(
                    "execution {}: credentials: {}",
                    record.id,
                    error_chain(&e)
                ));
            }
        };
        let job = match client.get_job(&job_id).await {
            Ok(job) => job,
            Err(AlteryxError::Api {
                status: 404,
                message,
                ..
            }) => {
                // Alteryx no longer knows the job (purged, or another server): nothing will
                // ever complete it, so close the record and say why.
                record.status = ExecutionStatus::Failed;
                record.message = Some(format!("Alteryx no longer knows job {job_id}: {message}"));
                record.finished_at = Some(now_unix());
                return self.finish(record, None).await;
            }
            Err(e) => {
                return Checked::Error(format!(
                    "execution {} job {job_id}: {}",
                    record.id,
                    error_chain(&e)
                ));
            }
        };
        if job.is_finished() {
            record.disposition = job.disposition.clone();
            record.finished_at = Some(now_unix());
            let report = JobReport::of(&job);
            if job.succeeded() {
                record.status = ExecutionStatus::Completed;
                record.message = None;
            } else {
                record.status = ExecutionStatus::Failed;
                record.message = Some(report.summary());
            }
            record.job_report = Some(report);
            return self.finish(record, Some(&job)).await;
        }
        let age = Duration::from_secs(
            (now_unix() - record.submitted_at.unwrap_or(record.created_at)).max(0) as u64,
        );
        let already_flagged = record.stuck_at.is_some()
            || record
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with(LEGACY_STUCK_PREFIX));
        if age < self.settings.stuck_after || already_flagged {
            return Checked::Running;
        }
        record.stuck_at = Some(now_unix());
        record.message = Some(format!(
            "job {job_id} still {} after {} minutes",
            job.status,
            age.as_secs() / 60
        ));
        if let Err(e) = self
            .executions
            .update(&record, ExecutionStatus::Submitted)
            .await
        {
            return Checked::Error(format!("execution {}: {}", record.id, error_chain(&e)));
        }
        self.publish(NoticeKind::Stuck, &record, Some(&job)).await;
        Checked::Stuck
    }

    async fn finish(&self, record: Execution, job: Option<&Job>) -> Checked {
        if let Err(e) = self
            .executions
            .update(&record, ExecutionStatus::Submitted)
            .await
        {
            return Checked::Error(format!("execution {}: {}", record.id, error_chain(&e)));
        }
        let finished = FinishedJob {
            rule_id: record.rule_id.clone(),
            execution_id: record.id.clone(),
            status: record.status,
            duration_seconds: record
                .finished_at
                .zip(record.submitted_at)
                .map(|(end, start)| (end - start).max(0) as u64),
        };
        if record.status == ExecutionStatus::Completed {
            return Checked::Completed(finished);
        }
        self.publish(NoticeKind::Failed, &record, job).await;
        Checked::Failed(finished)
    }

    async fn publish(&self, kind: NoticeKind, record: &Execution, job: Option<&Job>) {
        let notice = FailureNotice::with_job(kind, record, job);
        crate::notify::publish(self.notifier.as_ref(), &notice).await;
    }
}
