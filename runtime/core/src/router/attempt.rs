//! One attempt of one claimed execution: reconcile if an earlier job request may have reached
//! Alteryx, render the question values (templates, then the plugin), write the intent, send the
//! job request within the time left, and record what came of it.

use std::time::Instant;

use super::{Questions, Router, RuleOutcome, outcome_of};
use crate::error_chain;
use crate::event::ObjectCreated;
use crate::executions::line::mark_is_due;
use crate::executions::reconcile::Settled;
use crate::executions::submit::{
    Deadline, Recorded, SubmitFailure, after_failure, intent, wait_for_slot, write_within,
};
use crate::executions::{Execution, ExecutionStatus, LinePlace, SlotGrant, now_unix, now_unix_ms};
use crate::rules::CompiledRule;
use crate::secrets::PoolError;

impl Router {
    /// Everything after the claim, for an execution this process has claimed; always
    /// records the result (or says that it could not).
    pub(super) async fn execute(
        &self,
        record: Execution,
        rule: &CompiledRule,
        object: &ObjectCreated,
        deadline: Deadline,
    ) -> RuleOutcome {
        let record = if record.must_reconcile() {
            match self.settle(record, &deadline).await {
                Ok(record) => record,
                Err(outcome) => return outcome,
            }
        } else {
            record
        };
        self.render_and_submit(record, rule, object, deadline).await
    }

    /// A claimed record its invocation has no time to submit: `WAITING (deadline)`, in its
    /// place in line; the next tracker pass dispatches it.
    pub(super) async fn wait_for_time(
        &self,
        mut record: Execution,
        rule: &CompiledRule,
        deadline: Deadline,
    ) -> RuleOutcome {
        record.workflow = rule.rule.workflow.clone();
        record.secret_id = rule.rule.secret_id.clone();
        if !record.slot_held {
            record.group = rule.rule.cap().map(|c| c.group);
        }
        let failure = SubmitFailure::NoTime(format!(
            "{} ms left before the invocation's deadline; a job request and its record need {} ms",
            deadline.left().as_millis(),
            self.time_to_start().as_millis()
        ));
        let record = after_failure(record, failure);
        outcome_of_recorded(
            self.recorder()
                .write(record, ExecutionStatus::Claimed, &deadline)
                .await,
        )
    }

    /// Reconcile a claimed record: `Ok` with it when it may submit, else the outcome.
    pub(super) async fn settle(
        &self,
        record: Execution,
        deadline: &Deadline,
    ) -> Result<Execution, RuleOutcome> {
        let requests_end = deadline.minus(self.settings.write_reserve).instant();
        match self
            .reconciler()
            .settle(record, deadline, requests_end)
            .await
        {
            Settled::Submit(record) => Ok(record),
            Settled::Done { recorded, wait } => {
                let mut outcome = outcome_of_recorded(recorded);
                outcome.in_progress = wait;
                Err(outcome)
            }
        }
    }

    /// Question values, then (unless the plugin skips) the job request.
    pub(super) async fn render_and_submit(
        &self,
        mut record: Execution,
        rule: &CompiledRule,
        object: &ObjectCreated,
        deadline: Deadline,
    ) -> RuleOutcome {
        record.workflow = rule.rule.workflow.clone();
        record.secret_id = rule.rule.secret_id.clone();
        record.plugin = None;
        if !record.slot_held {
            // The slot a record already holds (an earlier attempt's, whose job request may
            // have queued a job) stays with the group it was taken from.
            record.group = rule.rule.cap().map(|c| c.group);
        }
        let claimed = ExecutionStatus::Claimed;
        // A batch's own execution renders over its batch's members.
        let batch = match record.batch_id.as_deref().filter(|b| *b == record.id) {
            None => None,
            Some(batch_id) => match self.batch_input(batch_id).await {
                Ok(batch) => Some(batch),
                Err(e) => {
                    let failure = SubmitFailure::NotQueued(format!(
                        "reading batch {batch_id}: {}",
                        error_chain(&e)
                    ));
                    let record = after_failure(record, failure);
                    return outcome_of_recorded(
                        self.recorder().write(record, claimed, &deadline).await,
                    );
                }
            },
        };
        match self.questions_for(rule, object, batch.as_ref()).await {
            Err(failure) => {
                let failure = if failure.retryable {
                    SubmitFailure::NotQueued(failure.message)
                } else {
                    SubmitFailure::Refused(failure.message)
                };
                let record = after_failure(record, failure);
                outcome_of_recorded(self.recorder().write(record, claimed, &deadline).await)
            }
            Ok(Questions::Skip {
                questions,
                reason,
                plugin,
            }) => {
                record.questions = questions;
                record.plugin = plugin;
                record.status = ExecutionStatus::Skipped;
                record.message = Some(reason);
                record.finished_at = Some(now_unix());
                record.lease_until = None;
                outcome_of_recorded(self.recorder().write(record, claimed, &deadline).await)
            }
            Ok(Questions::Values { questions, plugin }) => {
                record.questions = questions;
                // The plugin may choose the workflow from the rule's allow-list.
                if let Some(chosen) = plugin.as_ref().and_then(|p| p.workflow.as_ref()) {
                    record.workflow = chosen.clone();
                }
                record.plugin = plugin;
                self.submit(record, rule, deadline).await
            }
        }
    }

    /// The intent, the job request within the time left, and its record.
    async fn submit(
        &self,
        record: Execution,
        rule: &CompiledRule,
        deadline: Deadline,
    ) -> RuleOutcome {
        let recorder = self.recorder();
        let options = self.alteryx.options();
        let requests_end = deadline.minus(self.settings.write_reserve);
        if requests_end.left() < options.request_timeout {
            let failure = SubmitFailure::NoTime(format!(
                "{} ms left before the invocation's deadline; a job request ({} ms) and its record ({} ms) need more",
                deadline.left().as_millis(),
                options.request_timeout.as_millis(),
                self.settings.write_reserve.as_millis()
            ));
            let record = after_failure(record, failure);
            return outcome_of_recorded(
                recorder
                    .write(record, ExecutionStatus::Claimed, &deadline)
                    .await,
            );
        }
        // The request (with the client's own retries of what cannot have queued a job) ends
        // by then, whatever happens: the intent says so to whoever reconciles later.
        let budget = (options.max_elapsed + options.request_timeout).min(requests_end.left());
        let request_until = Instant::now() + budget;
        let record = intent(
            record,
            now_unix_ms() + budget.as_millis() as i64,
            self.settings.reconcile_grace,
        );
        let store = recorder.store();
        // A capped rule's intent takes a slot of its group with the same write; a full group
        // puts the execution in the waiting line instead, and the invocation is done.
        let cap = rule.rule.cap().filter(|_| !record.slot_held);
        let written = match &cap {
            Some(cap) => {
                let place = LinePlace::of(&record);
                write_within(&deadline, "recording the intent", || {
                    store.acquire_slot(
                        &record,
                        ExecutionStatus::Claimed,
                        cap.max_concurrent_jobs,
                        place,
                    )
                })
                .await
            }
            None => write_within(&deadline, "recording the intent", || {
                store.update(&record, ExecutionStatus::Claimed)
            })
            .await
            .map(|()| SlotGrant::Acquired),
        };
        let mut record = record;
        match (&written, &cap) {
            (Ok(SlotGrant::Full { running, line_at }), Some(cap)) => {
                let waiting = wait_for_slot(record, *running, cap.max_concurrent_jobs);
                tracing::info!(execution = %waiting.id, group = %cap.group, running,
                    cap = cap.max_concurrent_jobs, line = line_at.is_some(),
                    "concurrency group full or its line not empty; execution waits in line");
                let recorded = recorder
                    .write(waiting, ExecutionStatus::Claimed, &deadline)
                    .await;
                // After the write, so a tracker that did not see this execution in the line
                // finds a mark too recent to remove.
                if recorded.error.is_none()
                    && mark_is_due(*line_at, now_unix_ms())
                    && let Err(e) = store.mark_line(&cap.group).await
                {
                    tracing::warn!(group = %cap.group, error = %error_chain(&e),
                        "could not mark the group's line; the next tracker pass marks it");
                }
                return outcome_of_recorded(recorded);
            }
            (Ok(_), Some(_)) => record.slot_held = true,
            _ => {}
        }
        if let Err(e) = written {
            let error = error_chain(&e);
            tracing::error!(execution = %record.id, %error, "could not record the intent; not submitting");
            return RuleOutcome {
                status: ExecutionStatus::Claimed,
                retryable: true,
                message: Some(format!(
                    "not submitted: recording the intent failed: {error}"
                )),
                ..outcome_of(&record)
            };
        }
        // Questions, priority, and where and as whom the job runs (worker tag, credential).
        let request = rule.job_request(&record.questions);
        let workflow = record.workflow.as_str();
        let result = self
            .alteryx
            .with_client(rule.rule.secret_id.as_deref(), |client| {
                let client = client.until(request_until);
                let request = request.clone();
                async move { client.submit_job(workflow, &request).await }
            })
            .await;
        let submitting = ExecutionStatus::Submitting;
        match result {
            Ok(job) => {
                let mut record = record;
                record.status = ExecutionStatus::Submitted;
                record.job_id = Some(job.id);
                record.submitted_at = Some(now_unix());
                record.message = None;
                record.retryable = false;
                record.lease_until = None;
                record.reconcile_from = None;
                record.reconcile_after = None;
                outcome_of_recorded(recorder.record_job(record, submitting, &deadline).await)
            }
            Err(e) => {
                let failure = match &e {
                    PoolError::Credentials(c) => {
                        let message = format!("credentials: {}", error_chain(c));
                        if c.is_retryable() {
                            SubmitFailure::NotQueued(message)
                        } else {
                            SubmitFailure::Refused(message)
                        }
                    }
                    PoolError::Alteryx(a) => SubmitFailure::of(a, error_chain(a)),
                };
                let record = after_failure(record, failure);
                outcome_of_recorded(recorder.write(record, submitting, &deadline).await)
            }
        }
    }
}

/// The outcome of a decided record: as decided when it was written; when it was not, the
/// stored status (the lease runs out and the next delivery takes over — reconciling first if a
/// job request was sent), retryable, with what was decided and why it is not recorded.
pub(super) fn outcome_of_recorded(recorded: Recorded) -> RuleOutcome {
    let Recorded {
        record,
        previous,
        error,
    } = recorded;
    match error {
        None => outcome_of(&record),
        Some(e) => {
            let decided = match (&record.job_id, record.status) {
                (Some(job), ExecutionStatus::Submitted) => format!(
                    "job {job} queued, but recording it failed ({}); the next attempt finds it at Alteryx and adopts it",
                    error_chain(&e)
                ),
                _ => format!(
                    "{} {} (and recording it failed: {})",
                    record.status,
                    record.message.as_deref().unwrap_or(""),
                    error_chain(&e)
                ),
            };
            RuleOutcome {
                status: previous,
                retryable: true,
                message: Some(decided),
                ..outcome_of(&record)
            }
        }
    }
}
