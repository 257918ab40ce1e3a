//! Batches: where the members of a batch rule's batches are collected, and how a batch closes.
//!
//! A **member** is the ordinary execution record of (rule, object version) (the id of
//! [`super::execution_id_of`]) in status `BATCHED` with its `batch_id`, created only where no
//! record has its id: a duplicate delivery of a member — before or after its batch closed —
//! meets that record and is a duplicate; a new version of the key is another record and joins
//! the batch open then.
//!
//! A **batch item** (`batch#{batch id}` in the executions table; a `batches` table in SQLite)
//! holds the rule, the group (the `by` value), the state (`OPEN`, `CLOSED`, `EXPIRED`), when it
//! opened and when its last member joined, the member count, the indices of the `require`
//! entries satisfied, the members themselves (enough to rebuild each one's event), and once
//! closed why and the id of the batch's own execution. An **open pointer** per (rule, group)
//! (`batchopen#{rule}#{hash of group}`) names the batch new members join; it exists exactly
//! while that batch is `OPEN` (it is written with the batch and removed in the same
//! transaction that closes or expires it).
//!
//! - **Join**: one transaction puts the member record (`attribute_not_exists`) and updates the
//!   open batch (condition `state = OPEN`: count + 1, satisfied ∪ the member's, member
//!   appended, `last_member_at`); where no batch is open, the pointer, a new batch with this
//!   first member and the member record are put together (each `attribute_not_exists`).
//! - **Close**: a second transaction anyone may attempt: the batch `OPEN → CLOSED` (condition:
//!   still open, and for a quiet close no member joined since it was read), the pointer
//!   removed, and the batch's own execution record put (`attribute_not_exists`) in status
//!   `WAITING` (`wait_reason` `batch`, due now). Of racing closers exactly one wins; whoever
//!   wins dispatches the execution at once, and the tracker dispatches it if that process died.
//!   An expiry is the same transaction to `EXPIRED`, without an execution.
//!
//! Open batches carry `status = BATCH_OPEN` and `created_at = opened_at`, so the status index
//! finds them oldest first for the tracker's timers; the close removes both. Execution
//! listings ask the index for execution statuses only, and a scan skips batch items.

use serde::{Deserialize, Serialize};

use super::{Execution, ExecutionError};
use crate::event::ObjectCreated;

/// The status-index value of open batch items (never an execution status).
pub const BATCH_OPEN_STATUS: &str = "BATCH_OPEN";

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchState {
    /// New members join it.
    Open,
    /// Closed: its execution (`execution_id`) runs the job.
    Closed,
    /// Open past `max_wait_seconds` with `on_timeout: notify`: no job; a notice went out.
    Expired,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Open => "OPEN",
            BatchState::Closed => "CLOSED",
            BatchState::Expired => "EXPIRED",
        }
    }
}

impl std::fmt::Display for BatchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a batch closed (or expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Every `require` entry was satisfied.
    Require,
    /// No member joined for `quiet_seconds`.
    Quiet,
    /// `max_files` members joined.
    MaxFiles,
    /// Open `max_wait_seconds`.
    Timeout,
    /// An operator closed it (`batches close`).
    Operator,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Require => "require",
            CloseReason::Quiet => "quiet",
            CloseReason::MaxFiles => "max_files",
            CloseReason::Timeout => "timeout",
            CloseReason::Operator => "operator",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member as kept on the batch: enough to rebuild its `ObjectCreated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMember {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    pub event_time: String,
}

impl BatchMember {
    pub fn of(object: &ObjectCreated) -> Self {
        Self {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            size: object.size,
            etag: object.etag.clone(),
            version_id: object.version_id.clone(),
            sequencer: object.sequencer.clone(),
            event_time: object.event_time.clone(),
        }
    }

    pub fn object(&self) -> ObjectCreated {
        ObjectCreated {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            size: self.size,
            etag: self.etag.clone(),
            version_id: self.version_id.clone(),
            sequencer: self.sequencer.clone(),
            event_time: self.event_time.clone(),
            reason: None,
            source: "batch".into(),
        }
    }
}

/// A batch item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// `{rule_id}:batch-{16 hex}`; also the id of the batch's own execution.
    pub id: String,
    pub rule_id: String,
    /// The rule's `batch.by` value its members share.
    pub group: String,
    pub state: BatchState,
    /// Unix seconds.
    pub opened_at: i64,
    /// Unix seconds: when the last member joined.
    pub last_member_at: i64,
    pub member_count: u32,
    /// Indices of the rule's `require` entries a member satisfied, ascending.
    pub satisfied: Vec<u32>,
    /// In the order they joined.
    pub members: Vec<BatchMember>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<CloseReason>,
    /// The batch's own execution (closed batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// Unix seconds; DynamoDB TTL.
    pub expires_at: i64,
}

impl Batch {
    /// An open batch without members (the store adds the first).
    pub fn opened(id: &str, rule_id: &str, group: &str, now: i64) -> Self {
        Self {
            id: id.into(),
            rule_id: rule_id.into(),
            group: group.into(),
            state: BatchState::Open,
            opened_at: now,
            last_member_at: now,
            member_count: 0,
            satisfied: Vec::new(),
            members: Vec::new(),
            closed_at: None,
            close_reason: None,
            execution_id: None,
            expires_at: now,
        }
    }

    /// What a plugin and the templates see of it; `closing` is the member that closed it.
    pub fn input(&self) -> crate::plugin::BatchInput {
        crate::plugin::BatchInput {
            id: self.id.clone(),
            group: self.group.clone(),
            members: self.members.iter().map(BatchMember::object).collect(),
        }
    }

    /// The member whose facts the batch's execution carries: the last to join.
    pub fn closing_member(&self) -> Option<&BatchMember> {
        self.members.last()
    }
}

/// A fresh batch id for `rule_id`.
pub fn new_batch_id(rule_id: &str) -> String {
    format!("{rule_id}:batch-{}", hex::encode(rand::random::<[u8; 8]>()))
}

/// The batch item's key.
pub(crate) fn batch_item_id(batch_id: &str) -> String {
    format!("batch#{batch_id}")
}

/// The open pointer's key: the group is hashed so any `by` value fits a key.
pub(crate) fn pointer_item_id(rule_id: &str, group: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(group.as_bytes());
    format!("batchopen#{rule_id}#{}", hex::encode(&digest[..8]))
}

/// A member about to join the open batch of (`rule_id`, `group`).
#[derive(Debug, Clone)]
pub struct Joining {
    /// Its execution record (status `BATCHED`, a fresh random `claim_token` by which the
    /// joiner recognises its own write whose answer was lost); the store sets `batch_id`.
    pub record: Execution,
    /// The member as the batch keeps it.
    pub member: BatchMember,
    pub group: String,
    /// The `require` entries it satisfies.
    pub satisfies: Vec<u32>,
    /// The rule's `max_files`: a batch that has this many members takes no more (it is
    /// complete and must close first: [`Joined::Full`]).
    pub max_members: u32,
    /// TTL of a batch it opens.
    pub expires_at: i64,
}

/// What a join did.
#[derive(Debug, Clone, PartialEq)]
pub enum Joined {
    /// The member is recorded in this batch (as read after the join: it may already hold
    /// later members; DynamoDB leaves `members` out of this read, the counts are exact).
    Joined { record: Execution, batch: Batch },
    /// A record with the member's id exists: a duplicate delivery (or an older execution).
    Duplicate(Execution),
    /// The open batch already has `max_members` members: nothing was written; close it, then
    /// join again (the next batch).
    Full(Batch),
}

/// A close (or expiry) to attempt.
#[derive(Debug, Clone)]
pub struct Closing {
    pub batch_id: String,
    pub reason: CloseReason,
    /// `Closed` (with `execution`) or `Expired` (without).
    pub state: BatchState,
    /// For a quiet close: the `last_member_at` read; a member that joined since keeps it open.
    pub unchanged_since: Option<i64>,
    /// The batch's execution (`WAITING`), put with the close.
    pub execution: Option<Execution>,
    /// An operator's close may also run an `EXPIRED` batch (its pointer is gone already).
    pub expired_too: bool,
}

/// What a close attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseOutcome {
    /// This attempt closed (or expired) it.
    Closed(Batch),
    /// It was not open any more (another closer won, or an earlier try of this one whose
    /// answer was lost).
    NotOpen(Batch),
    /// A member joined since it was read (a quiet close only): still open.
    Changed(Batch),
}

/// Filter for [`BatchStore::list_batches`].
#[derive(Debug, Clone, Default)]
pub struct BatchFilter {
    pub open_only: bool,
    pub rule_id: Option<String>,
    pub limit: Option<usize>,
}

/// The batch operations of an execution store.
#[async_trait::async_trait]
pub trait BatchStore: Send + Sync {
    /// Record `joining.record` as a member of the open batch of its rule and group (opening
    /// one if none is open), or find the record that already has its id.
    async fn join(&self, joining: Joining) -> Result<Joined, ExecutionError>;

    /// Close or expire an open batch (see [`Closing`]).
    async fn close(&self, closing: Closing) -> Result<CloseOutcome, ExecutionError>;

    async fn get_batch(&self, id: &str) -> Result<Option<Batch>, ExecutionError>;

    /// Open batches, oldest first, after `after` (`opened_at`, id), at most `limit`.
    async fn open_batches(
        &self,
        limit: usize,
        after: Option<(i64, String)>,
    ) -> Result<Vec<Batch>, ExecutionError>;

    /// Batches, newest first.
    async fn list_batches(&self, filter: &BatchFilter) -> Result<Vec<Batch>, ExecutionError>;
}

/// How many times a join or close tries again when it met a concurrent transaction (the
/// pointer changed, the batch closed under it) before it reports a store error.
pub(crate) const CONTENTION_TRIES: usize = 20;
