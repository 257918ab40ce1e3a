//! The tracker's batch timers: open batches, oldest first, a bounded number per pass (a
//! cursor moves on across passes, wrapping to the oldest), each closed when it is due — quiet
//! for its rule's `quiet_seconds`, complete (its completing member's invocation died before
//! the close), or open `max_wait_seconds` (then `on_timeout`: `run` closes it, `notify`
//! expires it with a `batch_expired` notice). A batch whose rule is gone expires with a notice.
//! A close dispatches the batch's execution at once ([`Router::close_batch`]). The stale
//! sweep hands back here a batch's execution whose dispatch died before its job request: it
//! goes back in the waiting line ([`Tracker::requeue_stale_batch`]).

use std::sync::Arc;

use super::{EndedBatch, FailureNotice, NoticeKind, TrackReport, Tracker};
use crate::error_chain;
use crate::executions::batch::{Batch, BatchState, CloseOutcome, CloseReason};
use crate::executions::submit::{Deadline, Recorder};
use crate::executions::{Execution, ExecutionStatus, WaitReason, format_unix, now_unix};
use crate::router::BatchClosed;
use crate::rules::CompiledRule;

/// Open batches looked at per pass.
pub const BATCHES_PER_PASS: usize = 200;

impl Tracker {
    pub(super) async fn batch_timers(&self, report: &mut TrackReport, deadline: &Deadline) {
        let (Some(router), Some(store)) = (&self.router, self.executions.batches()) else {
            return;
        };
        let mut cursor = self.batch_cursor.lock().await;
        let open = match store.open_batches(BATCHES_PER_PASS, cursor.clone()).await {
            Ok(open) => open,
            Err(e) => {
                report
                    .errors
                    .push(format!("listing open batches: {}", error_chain(&e)));
                return;
            }
        };
        *cursor = match open.last() {
            Some(last) if open.len() == BATCHES_PER_PASS => Some((last.opened_at, last.id.clone())),
            _ => None,
        };
        drop(cursor);
        report.open_batches = open.len();
        if open.is_empty() {
            return;
        }
        let rule_set = match router.rules().rule_set().await {
            Ok(set) => set,
            Err(e) => {
                report.errors.push(format!(
                    "loading rules for the batch timers: {}",
                    error_chain(&e)
                ));
                return;
            }
        };
        let now = now_unix();
        for batch in open {
            if deadline.left() < router.time_to_start() {
                report.out_of_budget = true;
                break;
            }
            let rule = rule_set.get(&batch.rule_id);
            let due = match rule.as_ref().and_then(|r| r.batch()) {
                Some(spec) => spec.due(&batch, now),
                // The rule is gone or no longer batches: nothing will close it.
                None => Some(CloseReason::Timeout),
            };
            let Some(reason) = due else {
                continue;
            };
            let Some(rule) = rule else {
                match router.expire_orphan_batch(&batch).await {
                    Ok(CloseOutcome::Closed(expired)) => {
                        report.ended(&expired, BatchState::Expired);
                        self.expired_notice(&expired, None, "its rule no longer exists")
                            .await;
                    }
                    Ok(_) => {}
                    Err(e) => report.errors.push(format!(
                        "expiring batch {}: {}",
                        batch.id,
                        error_chain(&e)
                    )),
                }
                continue;
            };
            match router.close_batch(&batch, reason, *deadline).await {
                Ok(BatchClosed::Closed { batch, .. }) => report.ended(&batch, BatchState::Closed),
                Ok(BatchClosed::Expired(expired)) => {
                    report.ended(&expired, BatchState::Expired);
                    let why = if rule.batch().is_some() {
                        "it was still open after max_wait_seconds"
                    } else {
                        "its rule no longer batches"
                    };
                    self.expired_notice(&expired, Some(&rule), why).await;
                }
                Ok(BatchClosed::Unchanged(_)) => {}
                Err(e) => {
                    report
                        .errors
                        .push(format!("closing batch {}: {}", batch.id, error_chain(&e)))
                }
            }
        }
    }

    /// A batch's own execution whose dispatch died before any job request reached Alteryx
    /// (taken over by the stale sweep, reconciled if it had to be): back in the waiting line,
    /// due now, where the dispatch of this same pass (or the next) submits it. An ordinary
    /// execution becomes a retryable `ERROR` for its event's redelivery; a batch's has no
    /// event (its members' deliveries are duplicates). A slot it held is given back in the
    /// same write. The place in line and the give-up age (`WAITING_GIVE_UP_SECONDS`, which
    /// ends a batch whose dispatches keep dying) count from when it first waited.
    pub(super) async fn requeue_stale_batch(
        &self,
        mut record: Execution,
        stale: &Execution,
        claimed_at: &str,
        report: &mut TrackReport,
        deadline: &Deadline,
    ) -> Result<(), String> {
        let now = now_unix();
        record.status = ExecutionStatus::Waiting;
        record.wait_reason = Some(WaitReason::Stale);
        record.waiting_since = stale.waiting_since.or(record.waiting_since).or(Some(now));
        record.next_attempt_at = Some(now);
        record.retryable = false;
        record.lease_until = None;
        record.message = Some(format!(
            "the invocation that dispatched attempt {} ended without an outcome (killed or timed out; lease ran out {claimed_at}), and nothing reached Alteryx; back in line for the tracker's dispatch",
            stale.attempt
        ));
        let recorder = Recorder::new(Arc::clone(&self.executions), Arc::clone(&self.notifier));
        let recorded = recorder
            .write(record, ExecutionStatus::Claimed, deadline)
            .await;
        if let Some(e) = recorded.error {
            return Err(format!("recording {}: {}", stale.id, error_chain(&e)));
        }
        tracing::warn!(execution = %stale.id, attempt = stale.attempt,
            "a batch's execution was left claimed by a dispatch that died; back in the waiting line");
        report.stale_requeued += 1;
        Ok(())
    }

    async fn expired_notice(&self, batch: &Batch, rule: Option<&CompiledRule>, why: &str) {
        let notice = expired_notice(batch, rule, why);
        crate::notify::publish(self.notifier.as_ref(), &notice).await;
    }
}

impl TrackReport {
    /// Count a batch the timers closed or expired, and keep it (with its rule) for the metrics.
    fn ended(&mut self, batch: &Batch, state: BatchState) {
        match state {
            BatchState::Expired => self.batches_expired += 1,
            _ => self.batches_closed += 1,
        }
        self.ended_batches.push(EndedBatch {
            rule_id: batch.rule_id.clone(),
            batch_id: batch.id.clone(),
            state,
        });
    }
}

/// The `batch_expired` notice: which batch, why, what it has and what it misses.
pub fn expired_notice(batch: &Batch, rule: Option<&CompiledRule>, why: &str) -> FailureNotice {
    let last = batch.closing_member();
    let mut messages = vec![format!(
        "batch {} (group {}) expired: {why}; opened {}, last member {}, {} member(s)",
        batch.id,
        batch.group,
        format_unix(batch.opened_at),
        format_unix(batch.last_member_at),
        batch.member_count
    )];
    if let Some(spec) = rule.and_then(|r| r.rule.batch.as_ref()) {
        let missing: Vec<&str> = spec
            .require
            .iter()
            .enumerate()
            .filter(|(i, _)| !batch.satisfied.contains(&(*i as u32)))
            .map(|(_, glob)| glob.as_str())
            .collect();
        if !missing.is_empty() {
            messages.push(format!("no member matched: {}", missing.join(", ")));
        }
    }
    const LISTED: usize = 20;
    for member in batch.members.iter().take(LISTED) {
        messages.push(format!("member: s3://{}/{}", member.bucket, member.key));
    }
    FailureNotice {
        kind: NoticeKind::BatchExpired,
        execution_id: batch.id.clone(),
        rule_id: batch.rule_id.clone(),
        bucket: last.map(|m| m.bucket.clone()).unwrap_or_default(),
        key: last.map(|m| m.key.clone()).unwrap_or_default(),
        workflow: rule.map(|r| r.rule.workflow.clone()).unwrap_or_default(),
        job_id: None,
        status: ExecutionStatus::Batched,
        attempt: 0,
        job_status: None,
        disposition: None,
        messages,
        messages_omitted: batch.members.len().saturating_sub(LISTED),
        outputs: Vec::new(),
        retry_command: rule.map(|_| format!("alteryx-router batches close {}", batch.id)),
        candidates: Vec::new(),
    }
}
