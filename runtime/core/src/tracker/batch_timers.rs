//! The tracker's batch timers: open batches, oldest first, a bounded number per pass (a
//! cursor moves on across passes, wrapping to the oldest), each closed when it is due — quiet
//! for its rule's `quiet_seconds`, complete (its completing member's invocation died before
//! the close), or open `max_wait_seconds` (then `on_timeout`: `run` closes it, `notify`
//! expires it with a `batch_expired` notice). A batch whose rule is gone expires with a notice.
//! A close dispatches the batch's execution at once ([`Router::close_batch`]).

use super::{FailureNotice, NoticeKind, TrackReport, Tracker};
use crate::error_chain;
use crate::executions::batch::{Batch, CloseOutcome, CloseReason};
use crate::executions::submit::Deadline;
use crate::executions::{ExecutionStatus, format_unix, now_unix};
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
            let due = match rule.and_then(|r| r.batch()) {
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
                        report.batches_expired += 1;
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
                Ok(BatchClosed::Closed { .. }) => report.batches_closed += 1,
                Ok(BatchClosed::Expired(expired)) => {
                    report.batches_expired += 1;
                    let why = if rule.batch().is_some() {
                        "it was still open after max_wait_seconds"
                    } else {
                        "its rule no longer batches"
                    };
                    self.expired_notice(&expired, Some(rule), why).await;
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

    async fn expired_notice(&self, batch: &Batch, rule: Option<&CompiledRule>, why: &str) {
        let notice = expired_notice(batch, rule, why);
        crate::notify::publish(self.notifier.as_ref(), &notice).await;
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
