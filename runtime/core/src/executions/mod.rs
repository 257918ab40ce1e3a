//! Execution state: one record per (rule, object version), claimed with a conditional write
//! so duplicate or concurrent deliveries of the same event submit one job.
//!
//! Statuses move `CLAIMED → SUBMITTED → COMPLETED | FAILED`, or end in `SKIPPED` (a plugin said
//! skip) or `ERROR` (never reached Alteryx). A claim holds a lease: a claim whose lease expired
//! (the process died between claim and submit) can be taken over, and an `ERROR` marked
//! `retryable` (Alteryx was down, say) can be taken over by a redelivery of the same event.
//!
//! The types and the trait below are a contract used by the router, the tracker and the CLI.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Claimed,
    Submitted,
    Completed,
    Failed,
    Skipped,
    Error,
}

/// One rule applied to one version of one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// `{rule_id}:{16 hex of sha256(rule_id, bucket, key, version_token)}`; see [`execution_id`].
    pub id: String,
    pub rule_id: String,
    pub bucket: String,
    pub key: String,
    /// The object's version token (`ObjectCreated::version_token`).
    pub object_version: String,
    /// The S3 version id when the bucket is versioned, kept so a retry renders
    /// `{version_id}` exactly as the first attempt did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub size: u64,
    pub etag: Option<String>,
    pub event_time: String,
    pub workflow: String,
    pub secret_id: Option<String>,
    pub status: ExecutionStatus,
    /// 1 for the first attempt; each retry claims attempt + 1.
    pub attempt: u32,
    /// The question values sent (or that would have been sent) to Alteryx.
    pub questions: BTreeMap<String, String>,
    pub job_id: Option<String>,
    /// Alteryx's disposition once the job finished (`Success`, `Error`, ...).
    pub disposition: Option<String>,
    /// Why it is `ERROR`/`FAILED`/`SKIPPED`, or Alteryx's messages.
    pub message: Option<String>,
    /// For `ERROR`: whether a redelivery of the same event may try again.
    pub retryable: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub submitted_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Unix seconds when the tracker found the job still queued or running past its limit
    /// and published a `stuck` notice; set once, so the notice is sent once. Absent in
    /// records written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_at: Option<i64>,
    /// Unix seconds until which a `CLAIMED` record belongs to its claimant.
    pub lease_until: Option<i64>,
    /// Unix seconds; DynamoDB TTL attribute.
    pub expires_at: i64,
    /// The full original event payload is not kept; this is the router's input source tag.
    pub source: String,
    /// What the rule's plugin read and chose, when it ran and answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginSummary>,
    /// What Alteryx said about the job when it ended (its messages, errors first, and its
    /// outputs), recorded by the tracker. Absent before the job ends and in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_report: Option<crate::job_report::JobReport>,
}

/// What a rule's plugin did for one execution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginSummary {
    /// The workflow the plugin chose from the rule's `plugin.workflows` (then also the
    /// execution's `workflow`); absent when it kept the rule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Bytes read of the object: the head, each ranged read, the totals and the budget.
    pub reads: crate::plugin::ReadStats,
}

/// The deterministic id of the execution of `rule_id` over one object version.
pub fn execution_id(rule_id: &str, bucket: &str, key: &str, version_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [rule_id, bucket, key, version_token] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    format!("{rule_id}:{}", hex::encode(&digest[..8]))
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The caller owns the execution now (a fresh record, a takeover of an expired lease, or a
    /// retryable `ERROR`); the returned record is what was written (status `CLAIMED`).
    Acquired(Execution),
    /// Someone else has it or it already ran: the existing record.
    Duplicate(Execution),
}

/// Filter for [`ExecutionStore::list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<ExecutionStatus>,
    pub rule_id: Option<String>,
    /// Only executions created at or after this Unix time.
    pub since: Option<i64>,
    pub limit: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("execution {0} not found")]
    NotFound(String),
    #[error(
        "execution {id} changed under us (expected status {expected}, attempt {attempt}); someone else is working on it"
    )]
    Conflict {
        id: String,
        expected: ExecutionStatus,
        attempt: u32,
    },
    #[error("execution {id} is {status}; only ERROR or FAILED executions can be retried")]
    NotRetryable { id: String, status: ExecutionStatus },
    /// The store failed: `Display` says what was being done and where, the cause (the AWS
    /// SDK's, SQLite's or serde's error) is the [`source`](std::error::Error::source).
    #[error("execution store: {action} on {table}")]
    Store {
        /// `PutItem`, `decoding execution X`, `BEGIN IMMEDIATE`, ...
        action: String,
        /// The DynamoDB table, or `executions in <SQLite file>`.
        table: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store behaved in a way its guarantees rule out (a record that exists and does not).
    #[error("execution store: {0}")]
    Inconsistent(String),
}

impl ExecutionError {
    /// An [`ExecutionError::Store`]: `action` failed on `table` because of `source`.
    pub fn store(
        action: impl Into<String>,
        table: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ExecutionError::Store {
            action: action.into(),
            table: table.into(),
            source: source.into(),
        }
    }
}

/// The execution store. Implemented by DynamoDB (`EXECUTIONS_TABLE`) and an embedded SQLite
/// file for local use; both give the same guarantees.
#[async_trait::async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Claim `new` (status `CLAIMED`, attempt 1) unless a record with the same id exists that
    /// is not claimable. Claimable: absent; `CLAIMED` with `lease_until < now`; `ERROR` with
    /// `retryable`. A takeover keeps `created_at`, bumps `attempt` and sets a new lease.
    async fn claim(&self, new: Execution, lease: Duration) -> Result<Claim, ExecutionError>;

    /// Replace the record, on condition that the stored one still has `expected_status` and
    /// the same `attempt` as `record` (optimistic concurrency). Sets `updated_at`.
    async fn update(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError>;

    /// Move an `ERROR` or `FAILED` execution back to `CLAIMED` for a manual retry:
    /// attempt + 1, new lease, job id/disposition/message cleared. Conditional on the status
    /// and attempt read, so two concurrent retries cannot both win.
    async fn claim_retry(&self, id: &str, lease: Duration) -> Result<Execution, ExecutionError>;

    async fn get(&self, id: &str) -> Result<Option<Execution>, ExecutionError>;

    /// Newest first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Execution>, ExecutionError>;
}

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

mod dynamo;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use dynamo::DynamoExecutionStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteExecutionStore;

/// Whether an existing record may be taken over by a new claim at `now`.
pub(crate) fn claimable(existing: &Execution, now: i64) -> bool {
    match existing.status {
        ExecutionStatus::Claimed => existing.lease_until.is_none_or(|until| until < now),
        ExecutionStatus::Error => existing.retryable,
        _ => false,
    }
}

/// The record a takeover writes: same execution, next attempt, fresh lease.
pub(crate) fn taken_over(existing: &Execution, lease: Duration, now: i64) -> Execution {
    let mut next = existing.clone();
    next.status = ExecutionStatus::Claimed;
    next.attempt = existing.attempt + 1;
    next.lease_until = Some(now + lease.as_secs() as i64);
    next.updated_at = now;
    next.job_id = None;
    next.disposition = None;
    next.retryable = false;
    next.submitted_at = None;
    next.finished_at = None;
    next.stuck_at = None;
    next
}

/// For a manual retry: only `ERROR` and `FAILED` executions.
pub(crate) fn check_retryable(existing: &Execution) -> Result<(), ExecutionError> {
    match existing.status {
        ExecutionStatus::Error | ExecutionStatus::Failed => Ok(()),
        status => Err(ExecutionError::NotRetryable {
            id: existing.id.clone(),
            status,
        }),
    }
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Claimed => "CLAIMED",
            ExecutionStatus::Submitted => "SUBMITTED",
            ExecutionStatus::Completed => "COMPLETED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Skipped => "SKIPPED",
            ExecutionStatus::Error => "ERROR",
        }
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
