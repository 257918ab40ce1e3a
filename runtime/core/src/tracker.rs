//! Job tracker: finds `SUBMITTED` executions, asks Alteryx how each job is doing, and records
//! `COMPLETED` (with the disposition) or `FAILED` (with Alteryx's messages). Failures and jobs
//! stuck past a limit are published to a [`Notifier`] (SNS in AWS).
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
use crate::secrets::ClientPool;

/// Where failure notices go.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, subject: &str, notice: &FailureNotice) -> Result<(), NotifyError>;
}

/// A notice that could not be published. The cause is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("encoding the notice")]
    Encode(#[source] serde_json::Error),
    #[error("publishing to {topic_arn}")]
    Publish {
        topic_arn: String,
        #[source]
        source: Box<aws_sdk_sns::error::SdkError<aws_sdk_sns::operation::publish::PublishError>>,
    },
}

/// What a failure notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// The job ended in error, or Alteryx no longer knows it.
    Failed,
    /// The job is still queued or running after `TRACK_STUCK_AFTER_MINUTES`.
    Stuck,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Failed => "failed",
            NoticeKind::Stuck => "stuck",
        }
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failure notice says (published as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct FailureNotice {
    pub kind: NoticeKind,
    pub execution_id: String,
    pub rule_id: String,
    pub bucket: String,
    pub key: String,
    pub workflow: String,
    pub job_id: Option<String>,
    pub status: String,
    pub disposition: Option<String>,
    pub messages: Vec<String>,
}

/// Publishes notices to an SNS topic.
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }
}

#[async_trait::async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, subject: &str, notice: &FailureNotice) -> Result<(), NotifyError> {
        let body = serde_json::to_string_pretty(notice).map_err(NotifyError::Encode)?;
        // SNS subjects are limited to 100 characters.
        let subject: String = subject.chars().take(100).collect();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| NotifyError::Publish {
                topic_arn: self.topic_arn.clone(),
                source: Box::new(e),
            })
    }
}

/// Logs notices only (no topic configured).
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, subject: &str, notice: &FailureNotice) -> Result<(), NotifyError> {
        tracing::info!(%subject, execution = %notice.execution_id, "failure notice (no FAILURE_TOPIC_ARN set)");
        Ok(())
    }
}

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
    Completed,
    Failed,
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
                        Checked::Completed => report.completed += 1,
                        Checked::Failed => report.failed += 1,
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
            if job.succeeded() {
                record.status = ExecutionStatus::Completed;
                record.message = None;
            } else {
                record.status = ExecutionStatus::Failed;
                record.message = Some(job_messages(&job).join("\n"));
            }
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
        if record.status == ExecutionStatus::Completed {
            return Checked::Completed;
        }
        self.publish(NoticeKind::Failed, &record, job).await;
        Checked::Failed
    }

    async fn publish(&self, kind: NoticeKind, record: &Execution, job: Option<&Job>) {
        let notice = FailureNotice {
            kind,
            execution_id: record.id.clone(),
            rule_id: record.rule_id.clone(),
            bucket: record.bucket.clone(),
            key: record.key.clone(),
            workflow: record.workflow.clone(),
            job_id: record.job_id.clone(),
            status: job
                .map(|j| j.status.clone())
                .unwrap_or_else(|| "unknown".into()),
            disposition: record.disposition.clone(),
            messages: job
                .map(job_messages)
                .unwrap_or_else(|| record.message.iter().cloned().collect()),
        };
        let subject = format!(
            "alteryx-router: job {kind} for rule {} ({})",
            record.rule_id, record.key
        );
        if let Err(e) = self.notifier.notify(&subject, &notice).await {
            tracing::error!(execution = %record.id, error = %error_chain(&e),
                "could not publish failure notice");
        }
    }
}

fn job_messages(job: &Job) -> Vec<String> {
    let mut out: Vec<String> = job.messages.iter().map(|m| m.text.clone()).collect();
    if out.is_empty() {
        out.push(format!(
            "job {} ended {} / {}",
            job.id,
            job.status,
            job.disposition.as_deref().unwrap_or("no disposition")
        ));
    }
    out
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
