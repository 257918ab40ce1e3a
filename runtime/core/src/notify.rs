//! Failure notices: jobs that failed or are stuck, executions whose job cannot be attributed
//! (`UNCERTAIN`) and claims whose invocation died (stale), written for the person who reads
//! them and tagged for the machines that route them. Published to an SNS topic
//! (`FAILURE_TOPIC_ARN`), or logged when there is none.
//!
//! A notice has three faces:
//! - the **subject** names what happened, the rule, the file and the workflow, within SNS's 100
//!   printable ASCII characters ([`FailureNotice::subject`]);
//! - the **body** is plain text: where the file and the job are, Alteryx's error lines (or the
//!   tracker's finding), and the exact command that settles it: `executions retry ID` for a
//!   failed job or a stale claim, `executions resolve ID --job JOB | --resubmit` for an
//!   uncertain one ([`FailureNotice::body`]);
//! - the **message attributes** carry the same facts as separate values (`kind`, `rule_id`,
//!   `execution_id`, `status`, `bucket`, `key`, `workflow`, `job_id`, `disposition`,
//!   `attempt`), for subscription filter policies and programs ([`FailureNotice::attributes`]).
//!   SNS allows ten attributes per message; these are the ten.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use crate::alteryx::Job;
use crate::executions::{Execution, ExecutionStatus, JobCandidate};
use crate::job_report::{JobReport, MessageLevel, ReportedMessage, clip};

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
    #[error("encoding the notice's attribute `{name}`")]
    Attribute {
        name: &'static str,
        #[source]
        source: aws_sdk_sns::error::BuildError,
    },
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
    /// A batch stayed open `max_wait_seconds` (`on_timeout: notify`): no job ran.
    BatchExpired,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Failed => "failed",
            NoticeKind::Stuck => "stuck",
            NoticeKind::Uncertain => "uncertain",
            NoticeKind::Stale => "stale",
            NoticeKind::BatchExpired => "batch_expired",
        }
    }

    /// How the subject line starts.
    fn headline(self) -> &'static str {
        match self {
            NoticeKind::Failed => "Alteryx job failed",
            NoticeKind::Stuck => "Alteryx job stuck",
            NoticeKind::Uncertain => "Alteryx job uncertain",
            NoticeKind::Stale => "Alteryx job not sent",
            NoticeKind::BatchExpired => "Batch expired",
        }
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SNS's limit on a subject, in characters.
pub const MAX_SUBJECT: usize = 100;
/// Alteryx lines quoted in a notice's body (the execution keeps up to
/// [`crate::job_report::MAX_MESSAGES`]).
pub const BODY_MESSAGES: usize = 20;

/// What a failure notice says. Also its JSON form (logs, tests).
#[derive(Debug, Clone, Serialize)]
pub struct FailureNotice {
    pub kind: NoticeKind,
    pub execution_id: String,
    pub rule_id: String,
    pub bucket: String,
    pub key: String,
    /// The workflow that ran (a plugin may have chosen it over the rule's).
    pub workflow: String,
    pub job_id: Option<String>,
    /// The execution's status once the tracker recorded what it found (`FAILED`, or
    /// `SUBMITTED` for a stuck job).
    pub status: ExecutionStatus,
    pub attempt: u32,
    /// Alteryx's status of the job (`Completed`, `Running`, ...), when it answered.
    pub job_status: Option<String>,
    pub disposition: Option<String>,
    /// What went wrong, most important first: Alteryx's error lines (else its warnings, else
    /// every line), or the tracker's own finding (a job Alteryx no longer knows, a job that
    /// has been running too long).
    pub messages: Vec<String>,
    /// Lines of Alteryx's not in `messages` (`executions show` has up to 50).
    pub messages_omitted: usize,
    /// The job's outputs, by file name (or id).
    pub outputs: Vec<String>,
    /// The command that runs the file again, when a retry is possible.
    pub retry_command: Option<String>,
    /// For `uncertain`: the jobs that could be the execution's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<JobCandidate>,
}

impl FailureNotice {
    /// A notice about `record` as the tracker just recorded it: Alteryx's lines from its
    /// [`job_report`](Execution::job_report) (else from `job`, else the record's `message`).
    pub fn with_job(kind: NoticeKind, record: &Execution, job: Option<&Job>) -> Self {
        let report: Option<Cow<'_, JobReport>> = match (&record.job_report, job) {
            (Some(report), _) => Some(Cow::Borrowed(report)),
            (None, Some(job)) => Some(Cow::Owned(JobReport::of(job))),
            (None, None) => None,
        };
        let mut messages = Vec::new();
        let mut messages_omitted = 0;
        let mut outputs = Vec::new();
        if let Some(report) = &report {
            let lines: Vec<&ReportedMessage> = match kind {
                NoticeKind::Failed => report.headline(),
                // A running job's progress lines are noise; its errors and warnings are not (nor
                // are they for a job a stale or uncertain record may carry).
                NoticeKind::Stuck
                | NoticeKind::Uncertain
                | NoticeKind::Stale
                | NoticeKind::BatchExpired => report
                    .messages
                    .iter()
                    .filter(|m| m.level != MessageLevel::Info)
                    .collect(),
            };
            messages_omitted = report.messages.len() - lines.len() + report.messages_omitted;
            messages = lines.iter().map(|m| m.text.clone()).collect();
            outputs = report
                .outputs
                .iter()
                .map(|o| o.name.clone().unwrap_or_else(|| o.id.clone()))
                .collect();
        }
        // The tracker's own finding (a job Alteryx no longer knows, a job running too long, a
        // claim whose invocation died, jobs it cannot attribute) is not among Alteryx's lines:
        // it comes first.
        if let Some(finding) = record.message.as_deref().filter(|m| !m.is_empty())
            && (report.is_none() || kind != NoticeKind::Failed)
        {
            messages.insert(0, finding.to_string());
        }
        if messages.len() > BODY_MESSAGES {
            messages_omitted += messages.len() - BODY_MESSAGES;
            messages.truncate(BODY_MESSAGES);
        }
        let retryable = matches!(
            record.status,
            ExecutionStatus::Failed | ExecutionStatus::Error
        );
        FailureNotice {
            kind,
            execution_id: record.id.clone(),
            rule_id: record.rule_id.clone(),
            bucket: record.bucket.clone(),
            key: record.key.clone(),
            workflow: record.workflow.clone(),
            job_id: record.job_id.clone(),
            status: record.status,
            attempt: record.attempt,
            job_status: job
                .map(|j| j.status.clone())
                .or_else(|| report.as_ref().map(|r| r.status.clone()))
                .filter(|s| !s.is_empty()),
            disposition: record.disposition.clone(),
            messages,
            messages_omitted,
            outputs,
            retry_command: retryable
                .then(|| format!("alteryx-router executions retry {}", record.id)),
            candidates: record.candidates.clone(),
        }
    }

    /// A notice about `record` as it is stored.
    pub fn of_execution(kind: NoticeKind, record: &Execution) -> Self {
        Self::with_job(kind, record, None)
    }

    /// The object's file name (the key's last segment).
    fn file_name(&self) -> &str {
        self.key
            .rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or(&self.key)
    }

    /// `Alteryx job failed: rule R, file F, workflow W`: at most 100 printable ASCII
    /// characters. Other characters become `?`; when it is too long, rule, file and workflow
    /// share the room fairly, and a part that must shrink loses its middle
    /// (`daily-sa...-eu.csv`), keeping its start and its end (a file's extension).
    pub fn subject(&self) -> String {
        let mut parts = [
            ascii(&self.rule_id),
            ascii(self.file_name()),
            ascii(&self.workflow),
        ];
        let render = |p: &[String; 3]| {
            format!(
                "{}: rule {}, file {}, workflow {}",
                self.kind.headline(),
                p[0],
                p[1],
                p[2]
            )
        };
        // Share what the fixed words leave fairly: a part shorter than its share keeps all
        // of it, and the longer ones split the rest (never below a readable `abcd...wxyz`).
        const SHORTEST: usize = 11;
        let fixed = render(&Default::default()).len();
        let mut left = MAX_SUBJECT.saturating_sub(fixed);
        let mut order = [0, 1, 2];
        order.sort_by_key(|&i| parts[i].len());
        for (n, &i) in order.iter().enumerate() {
            let share = left / (order.len() - n);
            parts[i] = middle_cut(&parts[i], share.max(SHORTEST));
            left = left.saturating_sub(parts[i].len());
        }
        let mut subject = render(&parts);
        subject.truncate(MAX_SUBJECT);
        subject
    }

    /// The plain-text body. `environment` is how the CLI reaches this deployment (`RULES_TABLE`,
    /// `EXECUTIONS_TABLE`, `AWS_REGION`), printed under the command that settles it.
    pub fn body(&self, environment: &[(String, String)]) -> String {
        use std::fmt::Write as _;
        let uri = format!("s3://{}/{}", self.bucket, self.key);
        let mut out = String::new();
        let _ = match self.kind {
            NoticeKind::Failed => writeln!(out, "The Alteryx job for {uri} failed."),
            NoticeKind::Stuck => {
                writeln!(out, "The Alteryx job for {uri} is still queued or running.")
            }
            NoticeKind::Uncertain => writeln!(
                out,
                "It is not known whether Alteryx runs a job for {uri}: its job request's answer \
                 was lost, and the jobs Alteryx lists cannot be told apart. A person decides."
            ),
            NoticeKind::Stale => writeln!(
                out,
                "The run that took {uri} ended without recording an outcome (killed or timed \
                 out) and no job reached Alteryx; it waits for a retry."
            ),
            NoticeKind::BatchExpired => writeln!(
                out,
                "A batch of rule {} expired before it was complete; no job ran. Its last file \
                 was {uri}.",
                self.rule_id
            ),
        };
        out.push('\n');
        let job = match &self.job_id {
            None => "(none)".to_string(),
            Some(id) => {
                let state: Vec<&str> = [self.job_status.as_deref(), self.disposition.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                if state.is_empty() {
                    id.clone()
                } else {
                    format!("{id} ({})", state.join(", "))
                }
            }
        };
        for (label, value) in [
            ("Rule", self.rule_id.clone()),
            ("File", uri.clone()),
            ("Workflow", self.workflow.clone()),
            ("Job", job),
            (
                "Execution",
                format!(
                    "{} (attempt {}, now {})",
                    self.execution_id, self.attempt, self.status
                ),
            ),
        ] {
            let _ = writeln!(out, "{:<11}{value}", format!("{label}:"));
        }
        out.push('\n');
        if self.messages.is_empty() {
            if matches!(self.kind, NoticeKind::Failed | NoticeKind::Stuck) {
                out.push_str("Alteryx gave no messages for this job.\n");
            }
        } else {
            out.push_str(match self.kind {
                NoticeKind::Failed | NoticeKind::Stuck => "What went wrong:\n",
                NoticeKind::Uncertain | NoticeKind::Stale | NoticeKind::BatchExpired => {
                    "What happened:\n"
                }
            });
            for line in &self.messages {
                // Alteryx's lines may span several; indent every one.
                for part in clip(line, 1000).lines() {
                    let _ = writeln!(out, "  {part}");
                }
            }
        }
        if self.messages_omitted > 0 {
            let _ = writeln!(
                out,
                "  ({} more line(s) from Alteryx: alteryx-router executions show {})",
                self.messages_omitted, self.execution_id
            );
        }
        if !self.outputs.is_empty() {
            let _ = writeln!(out, "\nOutputs: {}", self.outputs.join(", "));
        }
        if !self.candidates.is_empty() {
            out.push_str("\nJobs at Alteryx that could be this file's:\n");
            for candidate in &self.candidates {
                let mut line = format!("  {}", candidate.job_id);
                if let Some(created) = &candidate.created {
                    let _ = write!(line, ", created {created}");
                }
                if let Some(owner) = &candidate.owner {
                    let _ = write!(line, ", recorded by execution {owner}");
                }
                let _ = writeln!(out, "{line}");
            }
        }
        let mut commands = true;
        match (&self.retry_command, self.kind) {
            (Some(command), NoticeKind::BatchExpired) => {
                let _ = write!(
                    out,
                    "\nTo run its job with the files it has:\n\n  {command}\n"
                );
            }
            (Some(command), NoticeKind::Stale) => {
                let _ = write!(
                    out,
                    "\nA redelivery of its event runs it again on its own; if none comes (the \
                     event may be gone), run it with:\n\n  {command}\n"
                );
            }
            (Some(command), _) => {
                let _ = write!(
                    out,
                    "\nOnce the cause is fixed, run the file again with:\n\n  {command}\n"
                );
            }
            (None, NoticeKind::Uncertain) => {
                let id = &self.execution_id;
                let _ = write!(
                    out,
                    "\nCheck the jobs in Alteryx Server, then either name the one that is this \
                     file's:\n\n  alteryx-router executions resolve {id} --job JOB_ID\n\nor, if \
                     none is, run the file again:\n\n  alteryx-router executions resolve {id} \
                     --resubmit\n"
                );
            }
            (None, NoticeKind::Stuck) => {
                commands = false;
                out.push_str(
                    "\nNothing to do if the job is only slow: the tracker keeps watching it and \
                     records its end. If it hangs, cancel it in Alteryx Server; the tracker then \
                     records it as FAILED and sends a notice with the command that runs the file \
                     again.\n",
                );
            }
            (None, NoticeKind::Failed | NoticeKind::Stale | NoticeKind::BatchExpired) => {
                commands = false
            }
        }
        if commands && !environment.is_empty() {
            let settings: Vec<String> = environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(
                out,
                "\n(with this deployment's settings: {})",
                settings.join(" ")
            );
        }
        let _ = write!(
            out,
            "\nDetails: alteryx-router executions show {}\n",
            self.execution_id
        );
        out
    }

    /// The message attributes: `(name, SNS data type, value)`, none empty.
    pub fn attributes(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut out = vec![
            ("kind", "String", self.kind.as_str().to_string()),
            ("rule_id", "String", self.rule_id.clone()),
            ("execution_id", "String", self.execution_id.clone()),
            ("status", "String", self.status.as_str().to_string()),
            ("bucket", "String", self.bucket.clone()),
            ("key", "String", self.key.clone()),
            ("workflow", "String", self.workflow.clone()),
            ("attempt", "Number", self.attempt.to_string()),
        ];
        if let Some(job) = &self.job_id {
            out.push(("job_id", "String", job.clone()));
        }
        if let Some(disposition) = &self.disposition {
            out.push(("disposition", "String", disposition.clone()));
        }
        out.retain(|(_, _, v)| !v.is_empty());
        out
    }
}

/// Printable ASCII only (SNS subjects): anything else becomes `?`.
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// `text` (ASCII) cut to `len` characters by replacing its middle with `...`.
fn middle_cut(text: &str, len: usize) -> String {
    if text.len() <= len {
        return text.to_string();
    }
    let keep = len.saturating_sub(3);
    let head = keep.div_ceil(2);
    let tail = keep - head;
    format!("{}...{}", &text[..head], &text[text.len() - tail..])
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
    environment: Vec<(String, String)>,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        Self {
            client,
            topic_arn,
            environment: Vec::new(),
        }
    }

    /// The settings the CLI needs to reach this deployment, printed under the retry command.
    pub fn with_environment(mut self, environment: Vec<(String, String)>) -> Self {
        self.environment = environment;
        self
    }
}

#[async_trait::async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, subject: &str, notice: &FailureNotice) -> Result<(), NotifyError> {
        use aws_sdk_sns::types::MessageAttributeValue;
        let mut publish = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(ascii(subject).chars().take(MAX_SUBJECT).collect::<String>())
            .message(notice.body(&self.environment));
        for (name, data_type, value) in notice.attributes() {
            let value = MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|source| NotifyError::Attribute { name, source })?;
            publish = publish.message_attributes(name, value);
        }
        publish
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
            messages = %notice.messages.join(" | "),
            "failure notice (no FAILURE_TOPIC_ARN set)");
        Ok(())
    }
}

/// The notifier for a topic ARN (with the settings its notices print under the retry
/// command), or the log when there is none.
pub async fn notifier(
    topic_arn: Option<String>,
    environment: Vec<(String, String)>,
) -> Arc<dyn Notifier> {
    match topic_arn.filter(|t| !t.is_empty()) {
        Some(arn) => {
            let sdk = crate::aws::sdk_config().await;
            Arc::new(
                SnsNotifier::new(aws_sdk_sns::Client::new(&sdk), arn).with_environment(environment),
            )
        }
        None => Arc::new(LogNotifier),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::alteryx::{JobMessage, JobOutput};

    fn record(rule: &str, key: &str, workflow: &str) -> Execution {
        Execution {
            id: format!("{rule}:0123456789abcdef"),
            rule_id: rule.into(),
            bucket: "acme-landing".into(),
            key: key.into(),
            object_version: "v".into(),
            version_id: None,
            size: 1,
            etag: None,
            event_time: "2026-11-24T09:15:02Z".into(),
            workflow: workflow.into(),
            secret_id: None,
            status: ExecutionStatus::Failed,
            attempt: 2,
            questions: BTreeMap::new(),
            job_id: Some("6a0c00000000000000000001".into()),
            disposition: Some("Error".into()),
            message: None,
            retryable: false,
            created_at: 0,
            updated_at: 0,
            submitted_at: Some(0),
            finished_at: Some(60),
            stuck_at: None,
            lease_until: None,
            claim_token: None,
            submit_started_at: None,
            reconcile_from: None,
            reconcile_after: None,
            candidates: Vec::new(),
            expires_at: 0,
            source: "test".into(),
            plugin: None,
            reruns: 0,
            rerun_at: None,
            history: Vec::new(),
            job_report: None,
            batch_id: None,
            group: None,
            slot_held: false,
            wait_reason: None,
            waiting_since: None,
            next_attempt_at: None,
        }
    }

    fn failed_job() -> Job {
        Job {
            id: "6a0c00000000000000000001".into(),
            workflow_id: None,
            create_date: None,
            status: "Completed".into(),
            disposition: Some("Error".into()),
            messages: vec![
                JobMessage {
                    status: Some(1),
                    text: "Input Data (1): 0 records".into(),
                    tool_id: Some(1),
                },
                JobMessage {
                    status: Some(3),
                    text: "Error: Input Data (1): File not found".into(),
                    tool_id: Some(1),
                },
            ],
            outputs: vec![JobOutput {
                id: "o1".into(),
                name: Some("Output.csv".into()),
                formats: vec![],
            }],
            priority: None,
        }
    }

    #[test]
    fn a_failure_reads_like_a_message_to_a_person() {
        let mut r = record("sales-csv", "incoming/sales/2026/11/24/eu.csv", "wf-1");
        r.job_report = Some(JobReport::of(&failed_job()));
        r.message = r.job_report.as_ref().map(JobReport::summary);
        let notice = FailureNotice::with_job(NoticeKind::Failed, &r, Some(&failed_job()));
        assert_eq!(
            notice.subject(),
            "Alteryx job failed: rule sales-csv, file eu.csv, workflow wf-1"
        );
        let env = vec![(
            "EXECUTIONS_TABLE".to_string(),
            "prod-executions".to_string(),
        )];
        let body = notice.body(&env);
        assert_eq!(
            body,
            "The Alteryx job for s3://acme-landing/incoming/sales/2026/11/24/eu.csv failed.

Rule:      sales-csv
File:      s3://acme-landing/incoming/sales/2026/11/24/eu.csv
Workflow:  wf-1
Job:       6a0c00000000000000000001 (Completed, Error)
Execution: sales-csv:0123456789abcdef (attempt 2, now FAILED)

What went wrong:
  Error: Input Data (1): File not found
  (1 more line(s) from Alteryx: alteryx-router executions show sales-csv:0123456789abcdef)

Outputs: Output.csv

Once the cause is fixed, run the file again with:

  alteryx-router executions retry sales-csv:0123456789abcdef

(with this deployment's settings: EXECUTIONS_TABLE=prod-executions)

Details: alteryx-router executions show sales-csv:0123456789abcdef
"
        );
        let attributes: BTreeMap<&str, (&str, String)> = notice
            .attributes()
            .into_iter()
            .map(|(n, t, v)| (n, (t, v)))
            .collect();
        assert_eq!(attributes.len(), 10, "SNS allows ten: {attributes:?}");
        assert_eq!(attributes["status"].1, "FAILED");
        assert_eq!(attributes["attempt"], ("Number", "2".to_string()));
        assert_eq!(attributes["job_id"].1, "6a0c00000000000000000001");
        assert_eq!(attributes["key"].1, "incoming/sales/2026/11/24/eu.csv");
    }

    #[test]
    fn a_job_alteryx_forgot_says_so_and_can_be_retried() {
        let mut r = record("gone", "d.csv", "wf");
        r.disposition = None;
        r.message = Some("Alteryx no longer knows job j: not found".into());
        let notice = FailureNotice::of_execution(NoticeKind::Failed, &r);
        assert_eq!(
            notice.messages,
            ["Alteryx no longer knows job j: not found"]
        );
        assert!(notice.retry_command.is_some());
        let body = notice.body(&[]);
        assert!(body.contains("  Alteryx no longer knows job j"), "{body}");
        assert!(!body.contains("deployment's settings"), "{body}");
        assert!(
            !notice
                .attributes()
                .iter()
                .any(|(n, ..)| *n == "disposition")
        );
    }

    #[test]
    fn a_stuck_job_says_what_to_do_and_offers_no_retry() {
        let mut r = record("slow", "big.csv", "wf");
        r.status = ExecutionStatus::Submitted;
        r.disposition = None;
        r.message = Some("job j still Running after 61 minutes".into());
        let notice = FailureNotice::of_execution(NoticeKind::Stuck, &r);
        assert_eq!(notice.retry_command, None);
        assert!(notice.subject().starts_with("Alteryx job stuck: rule slow"));
        let body = notice.body(&[]);
        assert!(body.contains("still queued or running"), "{body}");
        assert!(
            body.contains("job j still Running after 61 minutes"),
            "{body}"
        );
        assert!(body.contains("cancel it in Alteryx Server"), "{body}");
        assert!(!body.contains("executions retry"), "{body}");
    }

    #[test]
    fn long_and_non_ascii_subjects_are_shortened_in_the_middle_within_100_characters() {
        let r = record(
            "finance-monthly-close-reconciliation-europe-and-middle-east",
            "incoming/finance/2026/11/Umsätze-Oktober-Filiale-München-und-Umgebung-final-v2.xlsx",
            "5f3c0e5a2c1b0a0001d1e001",
        );
        let subject = FailureNotice::of_execution(NoticeKind::Failed, &r).subject();
        assert!(
            subject.len() <= MAX_SUBJECT,
            "{} > 100: {subject}",
            subject.len()
        );
        assert!(
            subject.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "{subject}"
        );
        // Each part keeps its start and its end: the rule's prefix, the file's extension, the
        // workflow id's last digits; none is crushed for the others.
        let parts: Vec<&str> = subject
            .strip_prefix("Alteryx job failed: rule ")
            .unwrap()
            .split(", file ")
            .flat_map(|p| p.split(", workflow "))
            .collect();
        assert_eq!(parts.len(), 3, "{subject}");
        assert!(
            parts[0].starts_with("finance-") && parts[0].ends_with("east"),
            "{subject}"
        );
        assert!(
            parts[1].starts_with("Ums?tze-") && parts[1].ends_with(".xlsx"),
            "{subject}"
        );
        assert!(
            parts[2].starts_with("5f3c") && parts[2].ends_with("d1e001"),
            "{subject}"
        );
        assert!(parts.iter().all(|p| p.len() >= 17), "{subject}");
        assert!(subject.len() >= 95, "uses the room it has: {subject}");

        // Even absurd lengths end within the limit.
        let huge = "r".repeat(500);
        let r = record(&huge, &"k".repeat(900), &"w".repeat(300));
        let subject = FailureNotice::of_execution(NoticeKind::Stuck, &r).subject();
        assert!(subject.len() <= MAX_SUBJECT, "{subject}");
    }

    #[test]
    fn an_uncertain_execution_lists_the_candidates_and_the_commands_that_decide() {
        let mut r = record("sales", "incoming/a.csv", "wf");
        r.status = ExecutionStatus::Uncertain;
        r.job_id = None;
        r.disposition = None;
        r.message = Some("2 jobs of workflow wf were created while the answer was lost".into());
        r.candidates = vec![
            JobCandidate {
                job_id: "j1".into(),
                created: Some("2026-11-24T09:15:03Z".into()),
                owner: None,
            },
            JobCandidate {
                job_id: "j2".into(),
                created: None,
                owner: Some("other:1".into()),
            },
        ];
        let notice = FailureNotice::of_execution(NoticeKind::Uncertain, &r);
        assert_eq!(
            notice.subject(),
            "Alteryx job uncertain: rule sales, file a.csv, workflow wf"
        );
        assert_eq!(notice.retry_command, None, "a retry could run it twice");
        let env = [(
            "EXECUTIONS_TABLE".to_string(),
            "prod-executions".to_string(),
        )];
        let body = notice.body(&env);
        assert!(
            body.contains("What happened:\n  2 jobs of workflow wf"),
            "{body}"
        );
        assert!(
            body.contains(
                "\n  j1, created 2026-11-24T09:15:03Z\n  j2, recorded by execution other:1\n"
            ),
            "{body}"
        );
        assert!(
            body.contains(
                "\n  alteryx-router executions resolve sales:0123456789abcdef --job JOB_ID\n"
            ),
            "{body}"
        );
        assert!(
            body.contains(
                "\n  alteryx-router executions resolve sales:0123456789abcdef --resubmit\n"
            ),
            "{body}"
        );
        assert!(body.contains("EXECUTIONS_TABLE=prod-executions"), "{body}");
        assert!(!body.contains("executions retry"), "{body}");
        let attributes = notice.attributes();
        assert!(attributes.contains(&("kind", "String", "uncertain".into())));
        assert!(attributes.contains(&("status", "String", "UNCERTAIN".into())));
        assert!(!attributes.iter().any(|(n, ..)| *n == "job_id"));
    }

    #[test]
    fn a_stale_claim_says_nothing_reached_alteryx_and_how_to_run_it() {
        let mut r = record("sales", "incoming/b.csv", "wf");
        r.status = ExecutionStatus::Error;
        r.retryable = true;
        r.job_id = None;
        r.disposition = None;
        r.message = Some("the invocation that claimed attempt 2 ended without an outcome".into());
        let notice = FailureNotice::of_execution(NoticeKind::Stale, &r);
        assert!(
            notice
                .subject()
                .starts_with("Alteryx job not sent: rule sales, file b.csv"),
            "{}",
            notice.subject()
        );
        let body = notice.body(&[]);
        assert!(body.contains("no job reached Alteryx"), "{body}");
        assert!(
            body.contains("  the invocation that claimed attempt 2"),
            "{body}"
        );
        assert!(
            body.contains("\n  alteryx-router executions retry sales:0123456789abcdef\n"),
            "{body}"
        );
        assert!(!body.contains("Alteryx gave no messages"), "{body}");
    }

    #[test]
    fn middle_cut_keeps_both_ends() {
        assert_eq!(middle_cut("abcdefghijklmnop", 11), "abcd...mnop");
        assert_eq!(middle_cut("short", 11), "short");
    }
}
