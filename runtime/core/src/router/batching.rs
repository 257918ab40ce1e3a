//! Batch rules in the router: an object that matches a rule with a `batch` block joins the
//! open batch of its group instead of starting a job ([`crate::executions::batch`] says how
//! that is recorded). The member that completes the batch (every `require` entry satisfied,
//! or `max_files`) closes it, and the closer dispatches the batch's own execution at once
//! through the same path the tracker dispatches the waiting line with (claim → intent → caps →
//! submit → record): killed in between, the tracker's dispatch picks it up. Quiet periods,
//! timeouts and operator closes come through [`Router::close_batch`].
//!
//! A duplicate delivery of a member whose batch is still open and complete (its joiner died
//! between the join and the close) closes it, so a complete batch never waits for a timer.

use std::sync::Mutex;

use super::{BatchActivity, Deadline, Router, RouterError, RuleOutcome, outcome_of};
use crate::error_chain;
use crate::event::ObjectCreated;
use crate::executions::batch::{
    Batch, BatchMember, BatchState, BatchStore, CloseOutcome, CloseReason, Closing, Joined,
    Joining, MEMBER_BYTES_BUDGET,
};
use crate::executions::submit::{outage_backoff, write_within};
use crate::executions::{
    Claimant, Execution, ExecutionError, ExecutionStatus, WaitReason, format_unix, now_unix,
};
use crate::rules::CompiledRule;
use crate::rules::batch::{CompiledBatch, OnTimeout};

/// What [`Router::close_batch`] did.
#[derive(Debug, Clone)]
pub enum BatchClosed {
    /// Closed now; the dispatch's outcome when it ran (`None`: left to the tracker).
    Closed {
        batch: Batch,
        dispatched: Option<RuleOutcome>,
    },
    /// Expired now (`on_timeout: notify`).
    Expired(Batch),
    /// Not open any more, or a member joined since it was read (a quiet close).
    Unchanged(Batch),
}

impl Router {
    fn batch_store(&self) -> Result<&dyn BatchStore, ExecutionError> {
        self.executions.batches().ok_or_else(|| {
            ExecutionError::Inconsistent("this execution store keeps no batches".into())
        })
    }

    /// One object into the open batch of its group (opening one), and the close when it
    /// completes the batch. The outcome says which batch it joined and which it closed.
    pub(super) async fn join_batch(
        &self,
        rule: &CompiledRule,
        spec: &CompiledBatch,
        object: &ObjectCreated,
        deadline: Deadline,
    ) -> RuleOutcome {
        let mut activity = BatchActivity::default();
        let outcome = self
            .join_batch_steps(rule, spec, object, deadline, &mut activity)
            .await;
        RuleOutcome {
            batch: Some(Box::new(activity)),
            ..outcome
        }
    }

    async fn join_batch_steps(
        &self,
        rule: &CompiledRule,
        spec: &CompiledBatch,
        object: &ObjectCreated,
        deadline: Deadline,
        activity: &mut BatchActivity,
    ) -> RuleOutcome {
        let claimant = Claimant::new(0);
        let mut record = self.new_execution(rule, object, &claimant);
        record.status = ExecutionStatus::Batched;
        record.lease_until = None;
        let fail = |record: &Execution, message: String, retryable: bool| RuleOutcome {
            status: ExecutionStatus::Error,
            message: Some(message),
            retryable,
            ..outcome_of(record)
        };
        let group = match spec.key_of(rule, object) {
            Ok(group) => group,
            Err(e) => return fail(&record, error_chain(&e), false),
        };
        let store = match self.batch_store() {
            Ok(store) => store,
            Err(e) => return fail(&record, error_chain(&e), false),
        };
        let member = BatchMember::of(object);
        if member.stored_bytes() > MEMBER_BYTES_BUDGET {
            // Unreachable with S3's own limits (a member of the longest key takes about 2.3 KB),
            // but an event may say anything: it could never join, so it is no retry.
            return fail(&record, too_large(&rule.rule.id, &member), false);
        }
        let joining = Joining {
            member,
            satisfies: spec.satisfied_by(&object.key),
            max_members: spec.max_files,
            expires_at: record.expires_at,
            group,
            record: record.clone(),
        };
        // A full batch (`max_files` members, its closer not done yet) takes no more: close
        // it, then join the next one.
        let mut full_closes = 0;
        let joined = loop {
            let result = Mutex::new(None);
            let written = write_within(&deadline, "joining the batch", || async {
                let joined = store.join(joining.clone()).await?;
                if let Ok(mut slot) = result.lock() {
                    *slot = Some(joined);
                }
                Ok(())
            })
            .await;
            match (written, result.into_inner().ok().flatten()) {
                (Ok(()), Some(Joined::Full(full))) if full_closes < 3 => {
                    full_closes += 1;
                    let reason = if full.member_count >= spec.max_files {
                        CloseReason::MaxFiles
                    } else {
                        CloseReason::Full
                    };
                    if self
                        .close_and_dispatch(rule, &full, reason, None, deadline)
                        .await
                        .is_some()
                    {
                        activity.closed.push(full.id.clone());
                    }
                }
                (Ok(()), Some(Joined::Full(full))) => {
                    return fail(
                        &record,
                        format!("batch {} is full and still open; try again", full.id),
                        true,
                    );
                }
                (Ok(()), Some(joined)) => break joined,
                (Err(e), _) => {
                    tracing::error!(rule = %rule.rule.id, error = %error_chain(&e), "could not join the batch");
                    return fail(
                        &record,
                        format!("could not join the batch: {}", error_chain(&e)),
                        true,
                    );
                }
                (Ok(()), None) => return fail(&record, "a join returned nothing".into(), true),
            }
        };
        match joined {
            Joined::Joined { record, batch } => {
                activity.joined = Some(batch.id.clone());
                tracing::info!(rule = %rule.rule.id, batch = %batch.id, group = %batch.group,
                    members = batch.member_count, satisfied = batch.satisfied.len(),
                    required = spec.required(), "joined a batch");
                let mut outcome = outcome_of(&record);
                outcome.message = Some(format!(
                    "member {} of batch {} (group {})",
                    batch.member_count, batch.id, batch.group
                ));
                if let Some(reason) = spec.complete(&batch) {
                    // This member closes it: the batch's execution carries its facts (the
                    // batch as read after the join may come without its member list).
                    let closer = Batch {
                        members: vec![BatchMember::of(object)],
                        ..batch
                    };
                    let batch_id = closer.id.clone();
                    if let Some(closed) = self
                        .close_and_dispatch(rule, &closer, reason, None, deadline)
                        .await
                    {
                        activity.closed.push(batch_id);
                        return closed;
                    }
                }
                outcome
            }
            Joined::Duplicate(existing) => {
                if existing.status == ExecutionStatus::Batched
                    && let Some(batch_id) = &existing.batch_id
                    && let Ok(Some(batch)) = store.get_batch(batch_id).await
                    && batch.state == BatchState::Open
                    && let Some(reason) = spec.complete(&batch)
                {
                    // Its joiner died before it closed the batch it completed.
                    if self
                        .close_and_dispatch(rule, &batch, reason, None, deadline)
                        .await
                        .is_some()
                    {
                        activity.closed.push(batch.id.clone());
                    }
                }
                RuleOutcome {
                    duplicate: true,
                    retryable: false,
                    ..outcome_of(&existing)
                }
            }
            Joined::Full(_) => fail(&record, "a full batch was not closed".into(), true),
        }
    }

    /// Close an open batch for `reason` and dispatch its execution: `Some` with the dispatch's
    /// outcome when this call closed it, `None` when another closer did (or a member joined
    /// since, for a quiet close).
    async fn close_and_dispatch(
        &self,
        rule: &CompiledRule,
        batch: &Batch,
        reason: CloseReason,
        unchanged_since: Option<i64>,
        deadline: Deadline,
    ) -> Option<RuleOutcome> {
        match self
            .close_batch_as(
                rule,
                batch,
                reason,
                BatchState::Closed,
                unchanged_since,
                deadline,
            )
            .await
        {
            Ok(BatchClosed::Closed { dispatched, batch }) => {
                Some(dispatched.unwrap_or_else(|| RuleOutcome {
                    message: Some(format!(
                        "closed batch {} ({reason}); its job is left to the tracker's dispatch",
                        batch.id
                    )),
                    ..batch_outcome(&batch, rule)
                }))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(batch = %batch.id, error = %error_chain(&e),
                    "could not close the batch; the tracker closes it");
                None
            }
        }
    }

    /// Close (or expire) `batch` of `rule`: the close transaction, then (closed) the dispatch
    /// of its execution when there is time for a job request.
    async fn close_batch_as(
        &self,
        rule: &CompiledRule,
        batch: &Batch,
        reason: CloseReason,
        state: BatchState,
        unchanged_since: Option<i64>,
        deadline: Deadline,
    ) -> Result<BatchClosed, RouterError> {
        let store = self.batch_store()?;
        let execution = (state == BatchState::Closed)
            .then(|| self.batch_execution(rule, batch, reason))
            .flatten();
        if state == BatchState::Closed && execution.is_none() {
            return Err(
                ExecutionError::Inconsistent(format!("batch {} has no members", batch.id)).into(),
            );
        }
        let closing = Closing {
            batch_id: batch.id.clone(),
            reason,
            state,
            unchanged_since,
            execution,
            expired_too: reason == CloseReason::Operator,
        };
        let closed = match store.close(closing).await? {
            CloseOutcome::Closed(closed) => closed,
            CloseOutcome::NotOpen(b) | CloseOutcome::Changed(b) => {
                return Ok(BatchClosed::Unchanged(b));
            }
        };
        tracing::info!(rule = %rule.rule.id, batch = %closed.id, group = %closed.group,
            members = closed.member_count, %reason, state = %closed.state, "batch closed");
        if state == BatchState::Expired {
            return Ok(BatchClosed::Expired(closed));
        }
        let dispatched = if deadline.left() >= self.time_to_start() {
            Some(match self.dispatch(&closed.id, deadline).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::warn!(batch = %closed.id, error = %error_chain(&e),
                        "dispatching the closed batch failed; the tracker dispatches it");
                    RuleOutcome {
                        message: Some(format!(
                            "closed batch {}; dispatching it failed ({}), the tracker dispatches it",
                            closed.id,
                            error_chain(&e)
                        )),
                        ..batch_outcome(&closed, rule)
                    }
                }
            })
        } else {
            None
        };
        Ok(BatchClosed::Closed {
            batch: closed,
            dispatched: dispatched.map(|o| RuleOutcome {
                // The batch's execution is the tracker's to finish now; a redelivery of the
                // member's event would only be a duplicate.
                retryable: false,
                ..o
            }),
        })
    }

    /// Close or expire an open batch because of a timer (`Quiet`, `Timeout`), by hand
    /// (`Operator`) or because it is complete: the rule's `on_timeout` decides what a timeout
    /// does. A rule that is gone or no longer batches expires its open batches.
    pub async fn close_batch(
        &self,
        batch: &Batch,
        reason: CloseReason,
        deadline: Deadline,
    ) -> Result<BatchClosed, RouterError> {
        let rule_set = self.rules.rule_set().await?;
        let Some(rule) = rule_set.get(&batch.rule_id) else {
            return Err(RouterError::RuleGone {
                execution: batch.id.clone(),
                rule: batch.rule_id.clone(),
            });
        };
        let on_timeout = rule.batch().map_or(OnTimeout::Notify, |b| b.on_timeout);
        let state = match (reason, on_timeout) {
            (CloseReason::Timeout, OnTimeout::Notify) => BatchState::Expired,
            _ if rule.batch().is_none() && reason != CloseReason::Operator => BatchState::Expired,
            _ => BatchState::Closed,
        };
        let unchanged_since = (reason == CloseReason::Quiet).then_some(batch.last_member_at);
        self.close_batch_as(&rule, batch, reason, state, unchanged_since, deadline)
            .await
    }

    /// Expire an open batch whose rule is gone: nothing can run it.
    pub async fn expire_orphan_batch(&self, batch: &Batch) -> Result<CloseOutcome, ExecutionError> {
        self.batch_store()?
            .close(Closing {
                batch_id: batch.id.clone(),
                reason: CloseReason::Timeout,
                state: BatchState::Expired,
                unchanged_since: None,
                execution: None,
                expired_too: false,
            })
            .await
    }

    /// The batch's own execution: `WAITING` (`batch`), due now, over the facts of the member
    /// that closed it, with the batch's id as its id.
    fn batch_execution(
        &self,
        rule: &CompiledRule,
        batch: &Batch,
        reason: CloseReason,
    ) -> Option<Execution> {
        let closing = batch.closing_member()?.object();
        let now = now_unix();
        let mut e = self.new_execution(rule, &closing, &Claimant::new(0));
        e.id = batch.id.clone();
        e.source = "batch".into();
        e.batch_id = Some(batch.id.clone());
        e.status = ExecutionStatus::Waiting;
        // The first dispatch makes it attempt 1.
        e.attempt = 0;
        e.claim_token = None;
        e.lease_until = None;
        e.wait_reason = Some(WaitReason::Batch);
        e.waiting_since = Some(now);
        e.next_attempt_at = Some(now);
        e.message = Some(format!(
            "batch of {} member(s) (group {}) closed ({reason})",
            batch.member_count, batch.group
        ));
        Some(e)
    }

    /// What templates and plugins see of the batch a batch execution runs for.
    pub(super) async fn batch_input(
        &self,
        batch_id: &str,
    ) -> Result<crate::plugin::BatchInput, ExecutionError> {
        let batch = self
            .batch_store()?
            .get_batch(batch_id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(format!("batch {batch_id}")))?;
        Ok(batch.input())
    }

    /// A batch's execution that a dispatch left in a retryable `ERROR` (Alteryx or the store
    /// unreachable before the job request; too little time left is `WAITING` already) goes
    /// back in line: no event will come
    /// back for it (its members' deliveries are duplicates), so the tracker must.
    pub(super) async fn requeue_batch_failure(&self, outcome: &RuleOutcome) {
        if !(outcome.status == ExecutionStatus::Error && outcome.retryable) {
            return;
        }
        let Ok(Some(mut record)) = self.executions.get(&outcome.execution_id).await else {
            return;
        };
        if record.batch_id.as_deref() != Some(record.id.as_str())
            || record.status != ExecutionStatus::Error
            || !record.retryable
        {
            return;
        }
        let now = now_unix();
        let wait = outage_backoff(record.attempt, None);
        record.status = ExecutionStatus::Waiting;
        record.wait_reason = Some(WaitReason::Outage);
        record.waiting_since = record.waiting_since.or(Some(now));
        record.next_attempt_at = Some(now + wait.as_secs() as i64);
        record.retryable = false;
        record.message = Some(format!(
            "{}; the tracker tries again after {}",
            record.message.as_deref().unwrap_or("not submitted"),
            format_unix(now + wait.as_secs() as i64)
        ));
        if let Err(e) = self
            .executions
            .update(&record, ExecutionStatus::Error)
            .await
        {
            tracing::warn!(execution = %record.id, error = %error_chain(&e),
                "could not put the batch's execution back in line; `executions retry` runs it");
        }
    }
}

/// Why `member` cannot join any batch of `rule_id`: it alone is bigger than a batch's member
/// list may be.
fn too_large(rule_id: &str, member: &BatchMember) -> String {
    const SHOWN: usize = 200;
    let key = match member.key.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}… ({} bytes)", &member.key[..end], member.key.len()),
        None => member.key.clone(),
    };
    format!(
        "rule {rule_id}: object s3://{}/{key} would take {} bytes of its batch's member list, more than a batch keeps ({MEMBER_BYTES_BUDGET} bytes); it cannot join a batch",
        member.bucket,
        member.stored_bytes()
    )
}

/// The outcome of a closed batch whose execution was not dispatched here.
fn batch_outcome(batch: &Batch, rule: &CompiledRule) -> RuleOutcome {
    RuleOutcome {
        rule_id: batch.rule_id.clone(),
        execution_id: batch.id.clone(),
        workflow: rule.rule.workflow.clone(),
        status: ExecutionStatus::Waiting,
        duplicate: false,
        in_progress: false,
        attempt: 0,
        job_id: None,
        questions: Default::default(),
        message: None,
        retryable: false,
        wait_reason: Some(WaitReason::Batch),
        batch: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(key: String) -> BatchMember {
        BatchMember {
            bucket: "acme-landing".into(),
            key,
            size: 1,
            etag: Some("0123456789abcdef0123456789abcdef-10000".into()),
            version_id: Some("v".repeat(1024)),
            sequencer: Some("0062E99A88DC407460".into()),
            event_time: "2026-11-26T04:46:20.123Z".into(),
        }
    }

    #[test]
    fn any_member_s3_allows_fits_a_batch_many_times_over() {
        // S3's longest key and version id, a multipart ETag, the longest bucket name.
        let mut longest = member("k".repeat(1024));
        longest.bucket = "b".repeat(63);
        let bytes = longest.stored_bytes();
        assert!(bytes < 2_400, "{bytes}");
        assert!(MEMBER_BYTES_BUDGET / bytes >= 145);
    }

    #[test]
    fn a_member_too_large_alone_names_the_rule_the_key_and_the_limit() {
        let huge = member(format!("in/{}", "x".repeat(400_000)));
        assert!(huge.stored_bytes() > MEMBER_BYTES_BUDGET);
        let message = too_large("month-end", &huge);
        assert!(message.starts_with("rule month-end: object s3://acme-landing/in/xxx"));
        assert!(message.contains(&format!("… ({} bytes)", huge.key.len())));
        assert!(message.contains(&format!("would take {} bytes", huge.stored_bytes())));
        assert!(message.contains("(350000 bytes); it cannot join a batch"));
        assert!(message.len() < 500, "the key is shortened: {message}");
    }
}
