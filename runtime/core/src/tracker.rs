//! Job tracker: one bounded pass, run on a schedule, that
//!
//! 1. **polls `SUBMITTED` executions**, oldest first, continuing where the last pass stopped (a
//!    cursor kept by the process), and records `COMPLETED` (with the disposition) or `FAILED`
//!    (with Alteryx's messages), keeping what Alteryx said about the finished job (its messages
//!    and outputs) on the execution as a [`JobReport`]. Only Alteryx's own answer that it does not know a job (a JSON
//!    404) closes an execution; a proxy's 404 page and 5xx answers are transient;
//! 2. **sweeps stale claims**: `CLAIMED`/`SUBMITTING` executions whose lease ran out (or was
//!    released) more than `stale_after` ago — their invocation died and no redelivery took them
//!    over. It counts them (`stale_claims` in the pass's log line feeds the stale-claim alarm),
//!    takes each over, reconciles what may have reached Alteryx (adopting the job, or
//!    `UNCERTAIN`), and otherwise leaves a retryable `ERROR` that a redelivery, `drain-dlq` or
//!    `executions retry` runs — with a `stale` notice, since its event may be gone.
//!
//! Failures, jobs stuck past a limit, `UNCERTAIN` and stale executions are published to a
//! [`Notifier`] (SNS in AWS). Each pass does bounded work: at most `max_executions` polls with
//! `concurrency` in flight and `max_stale` takeovers, and it starts nothing new once its time
//! budget (kept below the function timeout) is spent; the rest waits for the next pass. The
//! pass's [`TrackReport`] lists the jobs that finished, for the metrics ([`crate::metrics`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::alteryx::{AlteryxError, Job};
use crate::error_chain;
use crate::executions::reconcile::{ReconcileSettings, Reconciler, Settled};
use crate::executions::submit::{Deadline, Recorder};
use crate::executions::{
    Claimant, Execution, ExecutionError, ExecutionStatus, ExecutionStore, LeaseState, ListFilter,
    Takeover, format_unix, now_unix,
};
use crate::job_report::JobReport;
use crate::secrets::{ClientPool, PoolError};

pub use crate::notify::{
    FailureNotice, LogNotifier, NoticeKind, Notifier, NotifyError, SnsNotifier, notifier,
};

#[derive(Debug, Clone)]
pub struct TrackerSettings {
    /// `TRACK_MAX_EXECUTIONS` (default 500): `SUBMITTED` executions polled per pass.
    pub max_executions: usize,
    pub concurrency: usize,
    /// `TRACK_BUDGET_SECONDS`: no new work starts after this much of a pass.
    pub budget: Duration,
    /// A job still queued or running after this long is flagged as stuck (once).
    pub stuck_after: Duration,
    /// `TRACK_STALE_AFTER_SECONDS` (default 300): a claim whose lease ran out (or was
    /// released) this long ago, and that no redelivery took over, is stale.
    pub stale_after: Duration,
    /// Stale claims taken over per pass.
    pub max_stale: usize,
    /// The tracker's own takeovers hold a lease of the pass's budget plus this margin.
    pub claim_lease_margin: Duration,
    pub reconcile: ReconcileSettings,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        Self {
            max_executions: 500,
            concurrency: 8,
            budget: Duration::from_secs(45),
            stuck_after: Duration::from_secs(60 * 60),
            stale_after: Duration::from_secs(300),
            max_stale: 50,
            claim_lease_margin: Duration::from_secs(60),
            reconcile: ReconcileSettings::default(),
        }
    }
}

/// What one tracking pass did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TrackReport {
    pub checked: usize,
    pub completed: usize,
    pub failed: usize,
    pub still_running: usize,
    pub stuck: usize,
    /// `CLAIMED`/`SUBMITTING` executions past their lease by more than `stale_after`.
    pub stale_claims: usize,
    /// Of those, the ones whose job was found at Alteryx and recorded.
    pub adopted: usize,
    /// Of those, the ones now `UNCERTAIN`.
    pub uncertain: usize,
    /// Of those, the ones left as a retryable `ERROR` (nothing reached Alteryx).
    pub released: usize,
    pub errors: Vec<String>,
    pub out_of_budget: bool,
    /// The poll reached the newest `SUBMITTED` execution; the next pass starts from the oldest.
    pub wrapped: bool,
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
    /// Where the next pass's poll continues: the last `SUBMITTED` execution checked
    /// (`created_at`, `id`). Kept by the process: a cold start begins with the oldest.
    cursor: Mutex<Option<(i64, String)>>,
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
            cursor: Mutex::new(None),
        }
    }

    /// One bounded pass: poll `SUBMITTED` executions, then sweep stale claims.
    pub async fn run_once(&self) -> TrackReport {
        let started = Instant::now();
        let deadline = Deadline::after(self.settings.budget);
        let mut report = TrackReport::default();
        self.poll(&mut report, started).await;
        self.sweep(&mut report, &deadline).await;
        tracing::info!(
            checked = report.checked,
            completed = report.completed,
            failed = report.failed,
            running = report.still_running,
            stuck = report.stuck,
            stale_claims = report.stale_claims,
            adopted = report.adopted,
            uncertain = report.uncertain,
            released = report.released,
            errors = report.errors.len(),
            out_of_budget = report.out_of_budget,
            wrapped = report.wrapped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tracker run"
        );
        report
    }

    async fn poll(&self, report: &mut TrackReport, started: Instant) {
        let after = self.cursor.lock().await.clone();
        let limit = self.settings.max_executions.max(1);
        let filter = ListFilter {
            status: Some(ExecutionStatus::Submitted),
            limit: Some(limit),
            oldest_first: true,
            after,
            ..ListFilter::default()
        };
        let pending = match self.executions.list(&filter).await {
            Ok(p) => p,
            Err(e) => {
                report
                    .errors
                    .push(format!("listing SUBMITTED executions: {}", error_chain(&e)));
                return;
            }
        };
        let reached_newest = pending.len() < limit;
        let keys: Vec<(i64, String)> = pending
            .iter()
            .map(|r| (r.created_at, r.id.clone()))
            .collect();
        let budget = self.settings.budget;
        // In order, so the cursor can move to the last execution checked.
        let results: Vec<Option<Checked>> = futures::stream::iter(pending)
            .map(|record| async move {
                if started.elapsed() >= budget {
                    return None;
                }
                Some(self.check(record).await)
            })
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut last_checked = None;
        for (i, result) in results.into_iter().enumerate() {
            match result {
                None => report.out_of_budget = true,
                Some(c) => {
                    if !report.out_of_budget {
                        last_checked = Some(i);
                    }
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
        let mut cursor = self.cursor.lock().await;
        if reached_newest && !report.out_of_budget {
            report.wrapped = true;
            *cursor = None;
        } else if let Some(i) = last_checked {
            *cursor = Some(keys[i].clone());
        }
    }

    async fn check(&self, mut record: Execution) -> Checked {
        let Some(job_id) = record.job_id.clone() else {
            return Checked::Error(format!(
                "execution {} is SUBMITTED without a job id",
                record.id
            ));
        };
        let result = self
            .alteryx
            .with_client(record.secret_id.as_deref(), |client| {
                let job_id = job_id.clone();
                async move { client.get_job(&job_id).await }
            })
            .await;
        let job = match result {
            Ok(job) => job,
            Err(PoolError::Alteryx(AlteryxError::Api {
                status: 404,
                message,
                ..
            })) => {
                // Alteryx's own JSON answer that it does not know the job (purged, or another
                // server): nothing will ever complete it, so close the record and say why. A
                // 404 page from a proxy is not this (it is `InvalidResponse`, transient).
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

    /// Find stale claims, count them, and repair as many as the pass allows.
    async fn sweep(&self, report: &mut TrackReport, deadline: &Deadline) {
        let now = now_unix();
        let stale_after = self.settings.stale_after.as_secs() as i64;
        let mut stale = Vec::new();
        for status in [ExecutionStatus::Submitting, ExecutionStatus::Claimed] {
            let filter = ListFilter {
                status: Some(status),
                oldest_first: true,
                limit: Some(1000),
                ..ListFilter::default()
            };
            match self.executions.list(&filter).await {
                Ok(list) => stale.extend(list.into_iter().filter(|r| match r.lease_state(now) {
                    Some(LeaseState::Expired(until)) => until + stale_after < now,
                    Some(LeaseState::Released) => r.updated_at + stale_after < now,
                    _ => false,
                })),
                Err(e) => report
                    .errors
                    .push(format!("listing {status} executions: {}", error_chain(&e))),
            }
        }
        report.stale_claims = stale.len();
        for record in stale.into_iter().take(self.settings.max_stale) {
            if deadline.left() < Duration::from_secs(2) {
                report.out_of_budget = true;
                break;
            }
            if let Err(e) = self.repair(record, report, deadline).await {
                report.errors.push(e);
            }
        }
    }

    /// Take a stale claim over and settle it.
    async fn repair(
        &self,
        stale: Execution,
        report: &mut TrackReport,
        deadline: &Deadline,
    ) -> Result<(), String> {
        let claimant = Claimant::new(deadline.lease_until(self.settings.claim_lease_margin));
        let claimed = match self
            .executions
            .claim_retry(&stale.id, &claimant, Takeover::Stale)
            .await
        {
            Ok(c) => c,
            // Taken over meanwhile, or its earlier request is still settling: not stale now.
            Err(ExecutionError::NotRetryable { .. } | ExecutionError::Conflict { .. }) => {
                return Ok(());
            }
            Err(e) => return Err(format!("taking over {}: {}", stale.id, error_chain(&e))),
        };
        let recorder = Recorder::new(Arc::clone(&self.executions), Arc::clone(&self.notifier));
        let claimed_at = format_unix(stale.lease_until.unwrap_or(stale.updated_at));
        let mut record = if claimed.must_reconcile() {
            let reconciler = Reconciler::new(
                recorder.clone(),
                Arc::clone(&self.alteryx),
                self.settings.reconcile.clone(),
            );
            match reconciler
                .settle(claimed, deadline, deadline.instant())
                .await
            {
                Settled::Submit(record) => record,
                Settled::Done { recorded, .. } => {
                    if let Some(e) = recorded.error {
                        return Err(format!("recording {}: {}", stale.id, error_chain(&e)));
                    }
                    match recorded.record.status {
                        ExecutionStatus::Submitted => report.adopted += 1,
                        ExecutionStatus::Uncertain => report.uncertain += 1,
                        _ => {}
                    }
                    return Ok(());
                }
            }
        } else {
            claimed
        };
        // Nothing reached Alteryx: leave it for a redelivery or a person, and say so.
        record.status = ExecutionStatus::Error;
        record.retryable = true;
        record.lease_until = None;
        record.message = Some(format!(
            "the invocation that claimed attempt {} ended without an outcome (killed or timed out; lease ran out {claimed_at}), and nothing reached Alteryx; a redelivery, `executions drain-dlq` or `executions retry` runs it",
            stale.attempt
        ));
        let recorded = recorder
            .write(record, ExecutionStatus::Claimed, deadline)
            .await;
        if let Some(e) = recorded.error {
            return Err(format!("recording {}: {}", stale.id, error_chain(&e)));
        }
        report.released += 1;
        self.publish(NoticeKind::Stale, &recorded.record, None)
            .await;
        Ok(())
    }
}
