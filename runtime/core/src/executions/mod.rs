//! Execution state: one record per (rule, object version), claimed with a conditional write
//! so duplicate or concurrent deliveries of the same event submit one job.
//!
//! ```text
//!          claim              intent             job recorded
//! (none) ───────▶ CLAIMED ───────────▶ SUBMITTING ───────────▶ SUBMITTED ──tracker──▶ COMPLETED | FAILED
//!                   │                     │ outcome unknown: released, the next attempt reconciles
//!                   │                     └ refused / not sent ──▶ ERROR (retryable or not)
//!                   ├ plugin skip ──▶ SKIPPED
//!                   └ failure before Alteryx ──▶ ERROR
//! reconciliation that cannot attribute a job ──▶ UNCERTAIN ──`executions resolve`──▶ SUBMITTED | new attempt
//!   cap full at the intent, Alteryx unavailable ──▶ WAITING ──tracker dispatch──▶ CLAIMED …
//!   operator ──▶ CANCELLED (from WAITING)
//! ```
//!
//! **Caps.** A capped rule's jobs take slots of its concurrency group: a group item with a
//! `running` counter, changed only in the same transaction as the execution record. The
//! intent (`CLAIMED → SUBMITTING`) acquires a slot ([`ExecutionStore::acquire_slot`]: only
//! while `running < cap`) and sets the record's `slot_held`; any write that moves a record
//! holding a slot into a status that holds none (`COMPLETED`, `FAILED`, `SKIPPED`, `ERROR`,
//! `WAITING`, `CANCELLED`) releases it in the same transaction, on condition that the stored
//! record still holds it, so a slot is released exactly once. `CLAIMED`, `SUBMITTING`,
//! `SUBMITTED` and `UNCERTAIN` keep it: a job may be queued at Alteryx.
//!
//! A claim belongs to one invocation: a random `claim_token` and a `lease_until` (the
//! invocation's deadline plus a margin). Every later write is conditional on the status,
//! attempt and token it read, so a writer whose answer was lost recognises its own write when
//! it tries again, and a writer whose claim was taken over is refused. A record can be taken
//! over (a new attempt) when it is absent, `CLAIMED`/`SUBMITTING` with an expired or released
//! lease, or a retryable `ERROR`; a `SUBMITTING` predecessor makes the new attempt reconcile
//! with Alteryx ([`reconcile`]) before it may submit. Recording a job id also writes a job
//! ownership item, so no two executions can ever hold the same job.
//!
//! The types and the trait below are a contract used by the router, the tracker and the CLI;
//! `docs/executions.md` describes the states for users.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub mod batch;
pub mod line;
pub mod reconcile;
pub mod submit;

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Owned by one invocation (`claim_token`, `lease_until`); templates and plugins run.
    Claimed,
    /// The job request is about to be sent or was sent: its outcome is not recorded yet.
    /// With an expired or released lease, the next attempt reconciles before it submits.
    Submitting,
    Submitted,
    Completed,
    Failed,
    Skipped,
    Error,
    /// Reconciliation could not tell which job (if any) is this execution's: a person decides
    /// with `executions resolve`.
    Uncertain,
    /// In the waiting line (`wait_reason`): its group's cap was full, or Alteryx unavailable;
    /// the tracker dispatches it (oldest first, once `next_attempt_at` passed).
    Waiting,
    /// An operator took it out of the waiting line (`executions cancel`).
    Cancelled,
    /// A member of a batch (`batch_id`): the batch's own execution runs the job.
    Batched,
}

/// Why an execution is `WAITING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// Its concurrency group had no free slot.
    Cap,
    /// Alteryx was unreachable or answered 429/503: tried again at `next_attempt_at`.
    Outage,
    /// Its invocation had too little time left to send the job request and record it: the
    /// next tracker pass submits it.
    Deadline,
    /// A batch closed: its execution waits for its first dispatch (at once, by the closer;
    /// the tracker's if the closer died).
    Batch,
    /// A batch's execution whose dispatch died before its job request: the tracker's stale
    /// sweep put it back, due at once (no event comes back for a batch's execution).
    Stale,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Cap => "cap",
            WaitReason::Outage => "outage",
            WaitReason::Deadline => "deadline",
            WaitReason::Batch => "batch",
            WaitReason::Stale => "stale",
        }
    }
}

/// What [`ExecutionStore::acquire_slot`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotGrant {
    /// The record is `SUBMITTING` and holds a slot of its group.
    Acquired,
    /// Nothing was written: the group had `running` slots taken of its cap, or (for an
    /// [`LinePlace::Arrival`]) its line was marked not empty since `line_at`.
    Full { running: i64, line_at: Option<i64> },
}

/// Where an execution asking for a slot stands in its group's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinePlace {
    /// It never waited: while its group's line is marked not empty it joins the line's end
    /// even when a slot is free, so a burst of uploads cannot take every freed slot ahead of
    /// the executions that waited first.
    Arrival,
    /// It has waited (`waiting_since`): it is being served from the line in its place, and
    /// only the cap limits it.
    InLine,
}

impl LinePlace {
    pub fn of(record: &Execution) -> Self {
        if record.waiting_since.is_some() {
            LinePlace::InLine
        } else {
            LinePlace::Arrival
        }
    }
}

/// A concurrency group's counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupUsage {
    pub group: String,
    /// Slots taken: executions between their intent and their job's end.
    pub running: i64,
    /// The cap of the last acquire.
    pub cap: Option<u32>,
    /// Unix milliseconds: when an execution last joined the group's line with the mark
    /// absent or old ([`line::LINE_MARK_REFRESH`]); absent while the line is empty. While
    /// present, new arrivals queue behind the line ([`LinePlace::Arrival`]).
    pub line_at: Option<i64>,
}

/// The item of the executions table that counts a concurrency group's slots. Like job
/// ownership items it has no `status`, so listings never see it.
pub(crate) fn group_item_id(group: &str) -> String {
    format!("group#{group}")
}

/// A job that reconciliation found and could not attribute (kept on `UNCERTAIN` records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCandidate {
    pub job_id: String,
    /// When Alteryx says it created the job, as it wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The execution that owns it, when another one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
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
    /// 1 for the first attempt; each takeover or retry claims attempt + 1.
    pub attempt: u32,
    /// The question values sent (or that would have been sent) to Alteryx.
    pub questions: BTreeMap<String, String>,
    pub job_id: Option<String>,
    /// Alteryx's disposition once the job finished (`Success`, `Error`, ...).
    pub disposition: Option<String>,
    /// Why it is `ERROR`/`FAILED`/`SKIPPED`/`UNCERTAIN`, or Alteryx's messages.
    pub message: Option<String>,
    /// For `ERROR` (and a released `SUBMITTING`): whether a redelivery may try again.
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
    /// Unix seconds until which a `CLAIMED`/`SUBMITTING` record belongs to its claimant (the
    /// invocation's deadline plus `CLAIM_LEASE_MARGIN_SECONDS`); `None` on such a record: the
    /// claimant released it.
    pub lease_until: Option<i64>,
    /// Random, unique per claim: whose claim this is. Every write of the claimant is
    /// conditional on it, and a claimant whose write was applied but whose answer was lost
    /// recognises its own record by it. Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_token: Option<String>,
    /// Unix milliseconds: when this attempt's job request was about to be sent (the intent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_started_at: Option<i64>,
    /// Unix milliseconds: set on an attempt that must reconcile before it may submit — the
    /// time the previous attempt, whose outcome is unknown, started its job request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_from: Option<i64>,
    /// Unix milliseconds: by then the job request of the attempt that may have reached
    /// Alteryx has surely ended (its time budget plus `RECONCILE_GRACE_SECONDS`).
    /// Reconciliation does not look before it; it also closes the window searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_after: Option<i64>,
    /// For `UNCERTAIN`: the jobs that could be this execution's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<JobCandidate>,
    /// Unix seconds; DynamoDB TTL attribute.
    pub expires_at: i64,
    /// The full original event payload is not kept; this is the router's input source tag.
    pub source: String,
    /// What the rule's plugin read and chose, when it ran and answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginSummary>,
    /// The concurrency group whose slot the execution takes (its rule's `concurrency_group`,
    /// or the rule's id when capped alone); absent for uncapped rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether the execution holds one of its group's slots (from its intent until its job
    /// ends or it fails for sure). Only the stores change it, together with the group's counter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slot_held: bool,
    /// Why it is `WAITING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_reason: Option<WaitReason>,
    /// Unix seconds: when it entered the waiting line (kept while it goes round between
    /// `WAITING` and dispatch; the give-up age counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<i64>,
    /// Unix seconds: not dispatched before (an outage's backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    /// How many times a person ran this execution again on purpose (`executions rerun`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reruns: u32,
    /// Unix seconds: the last deliberate re-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_at: Option<i64>,
    /// The attempts a re-run replaced, oldest first (at most [`HISTORY_LIMIT`]): what each
    /// ended as and with which job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PriorAttempt>,
    /// What Alteryx said about the job when it ended (its messages, errors first, and its
    /// outputs), recorded by the tracker. Absent before the job ends and in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_report: Option<crate::job_report::JobReport>,
    /// A `BATCHED` member's batch; on a batch's own execution (whose id it is), that batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many earlier attempts a record keeps in `history` (the oldest are dropped).
pub const HISTORY_LIMIT: usize = 20;

/// An attempt a deliberate re-run replaced, kept on the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorAttempt {
    pub attempt: u32,
    pub status: ExecutionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
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

/// Where the claim of a `CLAIMED` or `SUBMITTING` record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "at")]
pub enum LeaseState {
    /// Its claimant may still be working on it, until then (Unix seconds).
    Live(i64),
    /// Its claimant's time ran out then (Unix seconds) without an outcome: killed or timed out.
    Expired(i64),
    /// Its claimant gave it up (an outcome it could not decide, or too little time left).
    Released,
}

impl Execution {
    /// The lease of a `CLAIMED`/`SUBMITTING` record at `now` (Unix seconds); `None` for the
    /// other statuses.
    pub fn lease_state(&self, now: i64) -> Option<LeaseState> {
        if !matches!(
            self.status,
            ExecutionStatus::Claimed | ExecutionStatus::Submitting
        ) {
            return None;
        }
        Some(match self.lease_until {
            None => LeaseState::Released,
            Some(until) if until >= now => LeaseState::Live(until),
            Some(until) => LeaseState::Expired(until),
        })
    }

    /// Whether an attempt on this record must ask Alteryx first: a job request of an earlier
    /// attempt may have queued a job nobody recorded.
    pub fn must_reconcile(&self) -> bool {
        self.status == ExecutionStatus::Submitting || self.reconcile_from.is_some()
    }
}

/// The execution id of `rule_id` over `object`: the one function every path (events,
/// backfill, dry runs) uses, over the object's [`version_token`](crate::event::ObjectCreated::version_token).
pub fn execution_id_of(rule_id: &str, object: &crate::event::ObjectCreated) -> String {
    execution_id(rule_id, &object.bucket, &object.key, object.version_token())
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

/// Who claims: a fresh random token and the lease it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    pub token: String,
    /// Unix seconds.
    pub lease_until: i64,
}

impl Claimant {
    /// A new claimant (a random 128-bit token) whose lease ends at `lease_until` (Unix seconds).
    pub fn new(lease_until: i64) -> Self {
        Self {
            token: hex::encode(rand::random::<[u8; 16]>()),
            lease_until,
        }
    }
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The caller owns the execution now (a fresh record, a takeover of an expired or released
    /// claim or a retryable `ERROR`, or its own claim whose answer was lost); the returned
    /// record is what is stored (status `CLAIMED`). If [`Execution::must_reconcile`], the
    /// caller reconciles before it submits.
    Acquired(Execution),
    /// Another invocation is working on it (a live lease), or an earlier attempt's job request
    /// may still be settling at Alteryx (`reconcile_after` not reached): not done, try later.
    InProgress(Execution),
    /// It already ran or ended: the existing record.
    Duplicate(Execution),
}

/// Which records a [`ExecutionStore::claim_retry`] may take over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// A manual retry (`executions retry`): `ERROR`, `FAILED`, or a `CLAIMED`/`SUBMITTING`
    /// record whose lease expired or was released (a `SUBMITTING` one reconciles first).
    Retry,
    /// The tracker's sweep: only `CLAIMED`/`SUBMITTING` records whose lease expired or was
    /// released.
    Stale,
    /// `executions resolve --resubmit`: an `UNCERTAIN` record; a person decided that no job of
    /// Alteryx is this execution's, so the new attempt does not reconcile.
    Resubmit,
    /// The tracker's dispatch: a `WAITING` record (its place in line and wait kept).
    Dispatch,
    /// `executions rerun`: a finished execution (`COMPLETED`, `FAILED`, `SKIPPED`, `ERROR`) run
    /// again on purpose. The attempt it replaces goes to `history`; `reruns` and `rerun_at`
    /// record it. A job still running (`SUBMITTED`), a claim, a `SUBMITTING` record or an
    /// `UNCERTAIN` one is refused.
    Rerun,
}

/// Filter for [`ExecutionStore::list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<ExecutionStatus>,
    pub rule_id: Option<String>,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// Only executions created at or after this Unix time.
    pub since: Option<i64>,
    pub limit: Option<usize>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// With `status`: continue after this record (`created_at`, `id`), in the listing's order.
    pub after: Option<(i64, String)>,
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
    #[error("execution {id} is {status}{detail}; {allowed}")]
    NotRetryable {
        id: String,
        status: ExecutionStatus,
        /// What else matters (` until 2026-…` for a live claim), or empty.
        detail: String,
        /// What could be taken over.
        allowed: &'static str,
    },
    #[error("job {job_id} is already recorded by execution {owner}")]
    JobTaken { job_id: String, owner: String },
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

    /// Whether trying the same write again may succeed (the store was unreachable, throttled
    /// or failed); a refused condition or a missing record will be refused again.
    pub fn is_transient(&self) -> bool {
        matches!(self, ExecutionError::Store { .. })
    }
}

/// The execution store. Implemented by DynamoDB (`EXECUTIONS_TABLE`) and an embedded SQLite
/// file for local use; both give the same guarantees (`runtime/core/tests/executions.rs`).
#[async_trait::async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Claim `new` (status `CLAIMED`, attempt 1, its `claim_token` and `lease_until` are the
    /// claimant's) unless a record with the same id exists that cannot be taken over.
    /// Takeover: `CLAIMED`/`SUBMITTING` whose lease expired or was released (and, if it must
    /// reconcile, whose `reconcile_after` passed), or `ERROR` with `retryable`; it keeps
    /// `created_at`, bumps `attempt` and writes `new`'s token and lease. A record that already
    /// carries `new`'s token is the caller's own claim: `Acquired`.
    async fn claim(&self, new: Execution) -> Result<Claim, ExecutionError>;

    /// Replace the record, on condition that the stored one still has `expected_status` and
    /// the `attempt` and `claim_token` of `record` (optimistic concurrency). Sets `updated_at`.
    /// Writing what is already stored (an earlier try whose answer was lost) succeeds.
    async fn update(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError>;

    /// [`update`](Self::update) to a `SUBMITTED` record with a job id, and in the same
    /// transaction the job's ownership item, which no other execution may hold:
    /// [`ExecutionError::JobTaken`] if one does.
    async fn record_job(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
    ) -> Result<(), ExecutionError>;

    /// Take an existing record over for a new attempt by hand or by the tracker (see
    /// [`Takeover`]): attempt + 1, the claimant's token and lease, job id, disposition and
    /// message cleared. Conditional on the status, attempt and token read, so two concurrent
    /// takeovers cannot both win.
    async fn claim_retry(
        &self,
        id: &str,
        claimant: &Claimant,
        takeover: Takeover,
    ) -> Result<Execution, ExecutionError>;

    async fn get(&self, id: &str) -> Result<Option<Execution>, ExecutionError>;

    /// Which of `job_ids` an execution owns: job id → execution id.
    async fn job_owners(
        &self,
        job_ids: &[String],
    ) -> Result<HashMap<String, String>, ExecutionError>;

    /// Newest first unless `oldest_first`.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Execution>, ExecutionError>;

    /// The intent of a capped execution: write `record` (`SUBMITTING`, its `group` set, not
    /// holding a slot yet) over the stored `expected_status` record of the same attempt and
    /// token, and take one of the group's slots, in one transaction, only while fewer than
    /// `cap` are taken and, for an [`LinePlace::Arrival`], the group's line is not marked. A
    /// full group writes nothing. A try whose earlier try was applied (its answer lost) finds
    /// its own record: `Acquired`.
    async fn acquire_slot(
        &self,
        record: &Execution,
        expected_status: ExecutionStatus,
        cap: u32,
        place: LinePlace,
    ) -> Result<SlotGrant, ExecutionError>;

    /// Mark `group`'s line not empty (`line_at` = now, in milliseconds): arrivals queue
    /// behind it until [`ExecutionStore::clear_line`].
    async fn mark_line(&self, group: &str) -> Result<(), ExecutionError>;

    /// Remove `group`'s line mark if it was last set before `marked_before` (Unix ms), the
    /// tracker having seen the line empty of the group; `Ok(false)` when it is newer (or
    /// absent) and stays as it is.
    async fn clear_line(&self, group: &str, marked_before: i64) -> Result<bool, ExecutionError>;

    /// The counters of these groups (groups never used are absent).
    async fn group_usage(
        &self,
        groups: &[String],
    ) -> Result<HashMap<String, GroupUsage>, ExecutionError>;

    /// The store's batches ([`batch`]); `None` for a store that keeps none.
    fn batches(&self) -> Option<&dyn batch::BatchStore> {
        None
    }
}

/// Unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix milliseconds.
pub fn now_unix_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

mod dynamo;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use dynamo::DynamoExecutionStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteExecutionStore;

/// What a claim finds in an existing record.
pub(crate) enum Found {
    /// May be taken over.
    Takeover,
    /// Someone is on it, or it is not yet time to reconcile it.
    InProgress,
    /// It ran or ended.
    Done,
}

/// How a claim at `now` (Unix seconds) treats an existing record.
pub(crate) fn on_claim(existing: &Execution, now: i64) -> Found {
    match existing.status {
        ExecutionStatus::Claimed | ExecutionStatus::Submitting => {
            let live = matches!(existing.lease_state(now), Some(LeaseState::Live(_)));
            if live || reconcile_pending(existing) {
                Found::InProgress
            } else {
                Found::Takeover
            }
        }
        ExecutionStatus::Error if existing.retryable => Found::Takeover,
        // WAITING: in line, the tracker dispatches it; a redelivery adds nothing.
        _ => Found::Done,
    }
}

/// A record that must reconcile, before its `reconcile_after`: the earlier job request may
/// still be settling at Alteryx, so looking now could miss its job.
fn reconcile_pending(existing: &Execution) -> bool {
    existing.must_reconcile() && existing.reconcile_after.is_some_and(|t| now_unix_ms() < t)
}

/// The record a takeover writes: same execution, next attempt, the claimant's token and lease.
/// A `SUBMITTING` predecessor's job request may have reached Alteryx: its start becomes the
/// new attempt's `reconcile_from`.
pub(crate) fn taken_over(existing: &Execution, claimant: &Claimant, now: i64) -> Execution {
    let mut next = existing.clone();
    if existing.status == ExecutionStatus::Submitting {
        next.reconcile_from = existing
            .submit_started_at
            .or(existing.reconcile_from)
            .or(Some(existing.updated_at * 1000));
    }
    next.status = ExecutionStatus::Claimed;
    next.attempt = existing.attempt + 1;
    next.claim_token = Some(claimant.token.clone());
    next.lease_until = Some(claimant.lease_until);
    next.updated_at = now;
    next.job_id = None;
    next.disposition = None;
    next.retryable = false;
    next.submitted_at = None;
    next.finished_at = None;
    next.stuck_at = None;
    next.candidates = Vec::new();
    next.wait_reason = None;
    next.next_attempt_at = None;
    next
}

/// The record [`ExecutionStore::claim_retry`] writes: a takeover without the old message; a
/// resubmission decided by a person does not reconcile.
pub(crate) fn retried(
    existing: &Execution,
    claimant: &Claimant,
    takeover: Takeover,
    now: i64,
) -> Execution {
    let mut next = taken_over(existing, claimant, now);
    next.message = None;
    if matches!(takeover, Takeover::Resubmit | Takeover::Rerun) {
        next.reconcile_from = None;
        next.reconcile_after = None;
    }
    if takeover != Takeover::Dispatch {
        next.waiting_since = None;
    }
    if takeover == Takeover::Rerun {
        next.history.push(PriorAttempt {
            attempt: existing.attempt,
            status: existing.status,
            job_id: existing.job_id.clone(),
            disposition: existing.disposition.clone(),
            message: existing.message.clone(),
            finished_at: existing.finished_at,
        });
        let excess = next.history.len().saturating_sub(HISTORY_LIMIT);
        next.history.drain(..excess);
        // The report was the replaced job's; the tracker writes the new job's.
        next.job_report = None;
        next.reruns = existing.reruns + 1;
        next.rerun_at = Some(now);
        next.message = Some(format!(
            "rerun by hand: attempt {} was {}{}",
            existing.attempt,
            existing.status,
            existing
                .job_id
                .as_deref()
                .map(|j| format!(" (job {j})"))
                .unwrap_or_default()
        ));
    }
    next
}

/// Whether `takeover` may take `existing` over at `now`.
pub(crate) fn check_takeover(
    existing: &Execution,
    takeover: Takeover,
    now: i64,
) -> Result<(), ExecutionError> {
    let refuse = |detail: String, allowed| {
        Err(ExecutionError::NotRetryable {
            id: existing.id.clone(),
            status: existing.status,
            detail,
            allowed,
        })
    };
    const RETRY: &str = "only ERROR, FAILED, CANCELLED, or CLAIMED/SUBMITTING executions past their lease can be retried";
    const STALE: &str = "only CLAIMED/SUBMITTING executions past their lease are stale";
    const RESUBMIT: &str = "only UNCERTAIN executions are resolved";
    const DISPATCH: &str = "only WAITING executions are dispatched";
    const RERUN: &str = "only finished executions (COMPLETED, FAILED, SKIPPED, ERROR) are rerun";
    let claim_state = || match existing.lease_state(now) {
        Some(LeaseState::Live(until)) => {
            Some(format!(" with a live claim until {}", format_unix(until)))
        }
        _ if reconcile_pending(existing) => Some(format!(
            " and its last job request may still be settling at Alteryx until {}",
            format_unix(existing.reconcile_after.unwrap_or_default() / 1000)
        )),
        _ => None,
    };
    match (takeover, existing.status) {
        (
            Takeover::Retry,
            ExecutionStatus::Error | ExecutionStatus::Failed | ExecutionStatus::Cancelled,
        ) => Ok(()),
        (Takeover::Retry, ExecutionStatus::Claimed | ExecutionStatus::Submitting) => {
            match claim_state() {
                Some(detail) => refuse(detail, RETRY),
                None => Ok(()),
            }
        }
        (Takeover::Retry, _) => refuse(String::new(), RETRY),
        (Takeover::Stale, ExecutionStatus::Claimed | ExecutionStatus::Submitting) => {
            match claim_state() {
                Some(detail) => refuse(detail, STALE),
                None => Ok(()),
            }
        }
        (Takeover::Stale, _) => refuse(String::new(), STALE),
        (Takeover::Resubmit, ExecutionStatus::Uncertain) => Ok(()),
        (Takeover::Resubmit, _) => refuse(String::new(), RESUBMIT),
        (Takeover::Dispatch, ExecutionStatus::Waiting) => Ok(()),
        (Takeover::Dispatch, _) => refuse(String::new(), DISPATCH),
        (
            Takeover::Rerun,
            ExecutionStatus::Completed
            | ExecutionStatus::Failed
            | ExecutionStatus::Skipped
            | ExecutionStatus::Error,
        ) => Ok(()),
        (Takeover::Rerun, ExecutionStatus::Claimed | ExecutionStatus::Submitting) => refuse(
            claim_state().unwrap_or_else(|| {
                " past its lease (its invocation died): `executions retry` takes it over".into()
            }),
            RERUN,
        ),
        (Takeover::Rerun, ExecutionStatus::Submitted) => refuse(
            format!(
                " (job {} is queued or running; the tracker records when it ends)",
                existing.job_id.as_deref().unwrap_or("?")
            ),
            RERUN,
        ),
        (Takeover::Rerun, ExecutionStatus::Uncertain) => {
            refuse(" (settle it with `executions resolve`)".into(), RERUN)
        }
        (Takeover::Rerun, ExecutionStatus::Cancelled) => Ok(()),
        (Takeover::Rerun, ExecutionStatus::Batched) => refuse(
            format!(
                " (a member of batch {}: the batch's execution runs the job; `batches show` shows it)",
                existing.batch_id.as_deref().unwrap_or("?")
            ),
            RERUN,
        ),
        (Takeover::Rerun, ExecutionStatus::Waiting) => refuse(
            " (it is in the waiting line; the tracker submits it, or `executions cancel` takes it out)"
                .into(),
            RERUN,
        ),
    }
}

/// Whether `stored` is exactly `written` (except for `updated_at`, which each try sets anew):
/// the write was applied by an earlier try whose answer was lost.
pub(crate) fn same_write(stored: &Execution, written: &Execution) -> bool {
    let mut stored = stored.clone();
    stored.updated_at = written.updated_at;
    stored == *written
}

/// RFC 3339 for a Unix time, for messages.
pub fn format_unix(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The item of the executions table that records which execution owns a job. Its key cannot
/// be an execution id (rule ids have no `#`), and it has no `status`, so status listings and
/// the status index never see it.
pub(crate) fn job_item_id(job_id: &str) -> String {
    format!("job#{job_id}")
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Claimed => "CLAIMED",
            ExecutionStatus::Submitting => "SUBMITTING",
            ExecutionStatus::Submitted => "SUBMITTED",
            ExecutionStatus::Completed => "COMPLETED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Skipped => "SKIPPED",
            ExecutionStatus::Error => "ERROR",
            ExecutionStatus::Uncertain => "UNCERTAIN",
            ExecutionStatus::Waiting => "WAITING",
            ExecutionStatus::Cancelled => "CANCELLED",
            ExecutionStatus::Batched => "BATCHED",
        }
    }

    /// Whether a record in this status may hold a slot of its concurrency group: a job may be
    /// queued at Alteryx, or be about to be. Writing a record that holds one into any other
    /// status releases it.
    pub fn may_hold_slot(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Claimed
                | ExecutionStatus::Submitting
                | ExecutionStatus::Submitted
                | ExecutionStatus::Uncertain
        )
    }

    /// Every status, in the order of the life of an execution.
    pub const ALL: [ExecutionStatus; 11] = [
        ExecutionStatus::Batched,
        ExecutionStatus::Waiting,
        ExecutionStatus::Claimed,
        ExecutionStatus::Submitting,
        ExecutionStatus::Submitted,
        ExecutionStatus::Completed,
        ExecutionStatus::Failed,
        ExecutionStatus::Skipped,
        ExecutionStatus::Error,
        ExecutionStatus::Uncertain,
        ExecutionStatus::Cancelled,
    ];
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: ExecutionStatus) -> Execution {
        Execution {
            id: "r:1".into(),
            rule_id: "r".into(),
            bucket: "b".into(),
            key: "k".into(),
            object_version: "v".into(),
            version_id: None,
            size: 1,
            etag: None,
            event_time: "t".into(),
            workflow: "w".into(),
            secret_id: None,
            status,
            attempt: 1,
            questions: BTreeMap::new(),
            job_id: None,
            disposition: None,
            message: None,
            retryable: false,
            created_at: 100,
            updated_at: 100,
            submitted_at: None,
            finished_at: None,
            stuck_at: None,
            lease_until: None,
            claim_token: Some("t1".into()),
            submit_started_at: None,
            reconcile_from: None,
            reconcile_after: None,
            candidates: Vec::new(),
            plugin: None,
            reruns: 0,
            rerun_at: None,
            history: Vec::new(),
            expires_at: 1000,
            source: "test".into(),
            group: None,
            slot_held: false,
            wait_reason: None,
            waiting_since: None,
            next_attempt_at: None,
            job_report: None,
            batch_id: None,
        }
    }

    #[test]
    fn leases_are_live_expired_or_released() {
        let mut r = record(ExecutionStatus::Claimed);
        r.lease_until = Some(50);
        assert_eq!(r.lease_state(50), Some(LeaseState::Live(50)));
        assert_eq!(r.lease_state(51), Some(LeaseState::Expired(50)));
        r.lease_until = None;
        assert_eq!(r.lease_state(51), Some(LeaseState::Released));
        r.status = ExecutionStatus::Submitted;
        assert_eq!(r.lease_state(51), None);
    }

    #[test]
    fn a_takeover_of_a_submitting_record_reconciles_from_its_request() {
        let mut r = record(ExecutionStatus::Submitting);
        r.submit_started_at = Some(123_456);
        r.reconcile_after = Some(200_000);
        let next = taken_over(&r, &Claimant::new(500), 300);
        assert_eq!(next.status, ExecutionStatus::Claimed);
        assert_eq!((next.attempt, next.lease_until), (2, Some(500)));
        assert_ne!(next.claim_token, r.claim_token);
        assert_eq!(
            (next.reconcile_from, next.reconcile_after),
            (Some(123_456), Some(200_000))
        );
        assert!(next.must_reconcile());
        // A retryable ERROR has nothing to reconcile.
        let mut e = record(ExecutionStatus::Error);
        e.retryable = true;
        assert!(!taken_over(&e, &Claimant::new(500), 300).must_reconcile());
    }

    #[test]
    fn claims_find_live_claims_in_progress_and_pending_reconciliation_too() {
        let now = now_unix();
        let mut r = record(ExecutionStatus::Submitting);
        r.lease_until = Some(now + 10);
        assert!(matches!(on_claim(&r, now), Found::InProgress));
        r.lease_until = None;
        r.reconcile_after = Some(now_unix_ms() + 60_000);
        assert!(matches!(on_claim(&r, now), Found::InProgress));
        r.reconcile_after = Some(now_unix_ms() - 1);
        assert!(matches!(on_claim(&r, now), Found::Takeover));
        assert!(matches!(
            on_claim(&record(ExecutionStatus::Uncertain), now),
            Found::Done
        ));
        let e =
            check_takeover(&record(ExecutionStatus::Submitted), Takeover::Retry, now).unwrap_err();
        assert!(e.to_string().contains("is SUBMITTED; only ERROR"), "{e}");
        let mut live = record(ExecutionStatus::Claimed);
        live.lease_until = Some(now + 100);
        let e = check_takeover(&live, Takeover::Retry, now).unwrap_err();
        assert!(e.to_string().contains("with a live claim until"), "{e}");
    }

    #[test]
    fn reruns_take_finished_executions_and_keep_what_they_replace() {
        let now = now_unix();
        for status in [
            ExecutionStatus::Completed,
            ExecutionStatus::Failed,
            ExecutionStatus::Skipped,
            ExecutionStatus::Error,
        ] {
            assert!(check_takeover(&record(status), Takeover::Rerun, now).is_ok());
        }
        let mut live = record(ExecutionStatus::Claimed);
        live.lease_until = Some(now + 100);
        let e = check_takeover(&live, Takeover::Rerun, now).unwrap_err();
        assert!(e.to_string().contains("with a live claim until"), "{e}");
        for (status, says) in [
            (ExecutionStatus::Submitting, "executions retry"),
            (ExecutionStatus::Submitted, "queued or running"),
            (ExecutionStatus::Uncertain, "executions resolve"),
        ] {
            let e = check_takeover(&record(status), Takeover::Rerun, now).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }

        let mut done = record(ExecutionStatus::Completed);
        done.job_id = Some("j1".into());
        done.disposition = Some("Success".into());
        let next = retried(&done, &Claimant::new(now + 60), Takeover::Rerun, now);
        assert_eq!((next.status, next.attempt), (ExecutionStatus::Claimed, 2));
        assert_eq!((next.reruns, next.rerun_at), (1, Some(now)));
        assert_eq!(next.job_id, None);
        assert_eq!(next.history.len(), 1);
        assert_eq!(next.history[0].job_id.as_deref(), Some("j1"));
        assert_eq!(next.history[0].status, ExecutionStatus::Completed);
        assert!(next.message.as_deref().unwrap().contains("job j1"));
        let mut many = done.clone();
        many.history = vec![next.history[0].clone(); HISTORY_LIMIT];
        let next = retried(&many, &Claimant::new(now + 60), Takeover::Rerun, now);
        assert_eq!(next.history.len(), HISTORY_LIMIT);
    }
}
