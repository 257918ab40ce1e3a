//! What routing one payload did: per rule ([`RuleOutcome`]), per object ([`ObjectSummary`])
//! and per invocation ([`InvocationSummary`]), and why an invocation must fail so its event
//! comes back ([`InvocationFailure`], whose `error_type` Lambda reports).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::executions::ExecutionStatus;

/// What happened to one rule for one object.
#[derive(Debug, Clone, Serialize)]
pub struct RuleOutcome {
    pub rule_id: String,
    pub execution_id: String,
    pub workflow: String,
    /// The execution's status after this delivery (for a duplicate or one in progress: the
    /// existing record's).
    pub status: ExecutionStatus,
    /// True when this delivery found the execution already done and did nothing.
    pub duplicate: bool,
    /// True when another invocation is working on the execution (or its last job request is
    /// still settling at Alteryx): nothing was done, and the event must come back.
    pub in_progress: bool,
    pub attempt: u32,
    pub job_id: Option<String>,
    pub questions: BTreeMap<String, String>,
    pub message: Option<String>,
    /// A failure (or a wait) that a redelivery may fix; makes the invocation fail after it is
    /// recorded.
    pub retryable: bool,
    /// For `WAITING`: why (its group is full, or Alteryx was unavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_reason: Option<crate::executions::WaitReason>,
    /// For a rule with a `batch` block: the batch this delivery joined and the batches it
    /// closed (the outcome of a close is the batch's own execution's, so the join would not
    /// show otherwise). `None` for other rules. Boxed: most outcomes have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Box<BatchActivity>>,
}

/// What one delivery did to the batches of its rule (for the metrics and the summary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchActivity {
    /// The batch the object joined; `None` when it did not (a duplicate delivery, a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<String>,
    /// The batches this delivery closed: the one its object completed, a full one it found
    /// before joining, or a complete one whose closer died (on a duplicate delivery).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed: Vec<String>,
}

/// What happened to one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectSummary {
    pub bucket: String,
    pub key: String,
    pub version: String,
    pub rules_matched: usize,
    pub outcomes: Vec<RuleOutcome>,
}

impl ObjectSummary {
    pub fn has_retryable_failure(&self) -> bool {
        self.outcomes.iter().any(|o| o.retryable)
    }
}

/// What happened to one invocation's payload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InvocationSummary {
    pub objects: Vec<ObjectSummary>,
    /// Inputs that were deliberately ignored, with the reason (not object creation, folder
    /// placeholder, S3 test event, ...).
    pub skipped: Vec<String>,
    /// Records of a notification that could not be read, by index and reason; the others
    /// were routed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<String>,
    /// SQS message ids to report as `batchItemFailures` (retryable failure or undecodable).
    pub failed_messages: Vec<String>,
    /// Whether the payload was an SQS batch (the Lambda then answers with batch failures).
    pub sqs: bool,
}

/// Why an invocation must fail so its event comes back (or, after the retries, is kept in the
/// DLQ): `error_type` is what Lambda reports as `errorType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvocationFailure {
    pub error_type: &'static str,
    pub message: String,
}

impl InvocationSummary {
    /// True when the Lambda should fail this invocation so the event is delivered again.
    pub fn needs_redelivery(&self) -> bool {
        self.failure().is_some()
    }

    /// Why the invocation must fail, if it must: the most serious kind first (an outcome
    /// unknown, a retryable failure, an execution in progress elsewhere, unreadable records).
    /// An SQS batch never fails as a whole: its messages are reported one by one.
    pub fn failure(&self) -> Option<InvocationFailure> {
        if self.sqs {
            return None;
        }
        let outcomes: Vec<&RuleOutcome> = self
            .objects
            .iter()
            .flat_map(|o| &o.outcomes)
            .filter(|o| o.retryable)
            .collect();
        let unknown = outcomes
            .iter()
            .filter(|o| !o.in_progress && o.status == ExecutionStatus::Submitting)
            .count();
        let in_progress = outcomes.iter().filter(|o| o.in_progress).count();
        let failed = outcomes.len() - unknown - in_progress;
        let mut parts = Vec::new();
        if unknown > 0 {
            parts.push(format!(
                "{unknown} job request(s) whose outcome is not recorded (the next attempt reconciles with Alteryx)"
            ));
        }
        if failed > 0 {
            parts.push(format!(
                "{failed} rule(s) failed with a retryable error, recorded as ERROR"
            ));
        }
        if in_progress > 0 {
            parts.push(format!(
                "{in_progress} execution(s) in progress in another invocation"
            ));
        }
        if !self.rejected.is_empty() {
            parts.push(format!(
                "{} record(s) could not be read: {}",
                self.rejected.len(),
                self.rejected.join("; ")
            ));
        }
        let error_type = if unknown > 0 {
            "OutcomeUnknown"
        } else if failed > 0 {
            "RetryableFailure"
        } else if in_progress > 0 {
            "ExecutionInProgress"
        } else if !self.rejected.is_empty() {
            "MalformedRecords"
        } else {
            return None;
        };
        let ids: Vec<&str> = outcomes.iter().map(|o| o.execution_id.as_str()).collect();
        let mut message = parts.join("; ");
        if !ids.is_empty() {
            message.push_str(&format!(" [{}]", ids.join(", ")));
        }
        message.push_str("; failing so the event is delivered again");
        Some(InvocationFailure {
            error_type,
            message,
        })
    }

    pub fn counts(&self) -> OutcomeCounts {
        let mut c = OutcomeCounts::default();
        for o in self.objects.iter().flat_map(|s| &s.outcomes) {
            match (o.duplicate, o.in_progress, o.status) {
                (true, _, _) => c.duplicates += 1,
                (_, true, _) => c.in_progress += 1,
                (_, _, ExecutionStatus::Submitted) => c.submitted += 1,
                (_, _, ExecutionStatus::Skipped) => c.skipped += 1,
                (_, _, ExecutionStatus::Uncertain) => c.uncertain += 1,
                (_, _, ExecutionStatus::Waiting) => c.waiting += 1,
                (_, _, ExecutionStatus::Batched) => c.batched += 1,
                (_, _, ExecutionStatus::Submitting) => c.unknown += 1,
                _ => c.errors += 1,
            }
        }
        c
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub submitted: usize,
    pub duplicates: usize,
    pub in_progress: usize,
    pub skipped: usize,
    pub errors: usize,
    /// Job requests whose outcome is not recorded yet (to reconcile).
    pub unknown: usize,
    pub uncertain: usize,
    /// Put in the waiting line (cap full, Alteryx unavailable): the tracker submits them.
    pub waiting: usize,
    /// Joined a batch whose job starts when it closes.
    pub batched: usize,
}
