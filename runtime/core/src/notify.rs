//! Failure notices: jobs that failed or are stuck, executions whose job cannot be attributed
//! (`UNCERTAIN`) and claims whose invocation died (stale). Published as JSON to an SNS topic
//! (`FAILURE_TOPIC_ARN`), or logged when there is none.

use std::sync::Arc;

use serde::Serialize;

use crate::alteryx::Job;
use crate::executions::{Execution, JobCandidate};

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
    /// Reconciliation could not tell which job is the execution's: a person decides.
    Uncertain,
    /// The invocation that claimed the execution ended without recording an outcome.
    Stale,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Failed => "failed",
            NoticeKind::Stuck => "stuck",
            NoticeKind::Uncertain => "uncertain",
            NoticeKind::Stale => "stale",
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
    /// For `uncertain`: the jobs that could be the execution's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<JobCandidate>,
}

impl FailureNotice {
    /// A notice about `record` as it is stored (status, message, candidates), optionally with
    /// Alteryx's view of its job.
    pub fn of_execution(kind: NoticeKind, record: &Execution) -> Self {
        Self::with_job(kind, record, None)
    }

    pub fn with_job(kind: NoticeKind, record: &Execution, job: Option<&Job>) -> Self {
        FailureNotice {
            kind,
            execution_id: record.id.clone(),
            rule_id: record.rule_id.clone(),
            bucket: record.bucket.clone(),
            key: record.key.clone(),
            workflow: record.workflow.clone(),
            job_id: record.job_id.clone(),
            status: job
                .map(|j| j.status.clone())
                .unwrap_or_else(|| record.status.as_str().to_string()),
            disposition: record.disposition.clone(),
            messages: job
                .map(job_messages)
                .unwrap_or_else(|| record.message.iter().cloned().collect()),
            candidates: record.candidates.clone(),
        }
    }

    /// The subject line: what, for which rule and key (at most 100 characters, SNS's limit).
    pub fn subject(&self) -> String {
        let what = match self.kind {
            NoticeKind::Failed => "job failed",
            NoticeKind::Stuck => "job stuck",
            NoticeKind::Uncertain => "execution uncertain",
            NoticeKind::Stale => "execution stale",
        };
        format!(
            "alteryx-router: {what} for rule {} ({})",
            self.rule_id, self.key
        )
        .chars()
        .take(100)
        .collect()
    }
}

/// A job's messages, or a line saying how it ended when it has none.
pub fn job_messages(job: &Job) -> Vec<String> {
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

/// Publish `notice`, logging (not failing) when that is not possible: a notice is never
/// worth losing the record it is about.
pub async fn publish(notifier: &dyn Notifier, notice: &FailureNotice) {
    if let Err(e) = notifier.notify(&notice.subject(), notice).await {
        tracing::error!(execution = %notice.execution_id, kind = %notice.kind,
            error = %crate::error_chain(&e), "could not publish a failure notice");
    }
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
        tracing::info!(%subject, execution = %notice.execution_id, kind = %notice.kind,
            "failure notice (no FAILURE_TOPIC_ARN set)");
        Ok(())
    }
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
