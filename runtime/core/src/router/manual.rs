//! What people do by hand: retry an execution (`executions retry`), settle an `UNCERTAIN`
//! one (`executions resolve`) and run a finished one again on purpose (`executions rerun`).
//! All go through the same claim, reconciliation and submit path as a delivery, so they are
//! as safe against concurrent deliveries and each other.

use super::{Deadline, Resolution, Router, RouterError, RuleOutcome, object_of, outcome_of};
use crate::event::ObjectCreated;
use crate::executions::submit::Recorded;
use crate::executions::{Claimant, ExecutionError, ExecutionStatus, Takeover, now_unix};

impl Router {
    /// Retry an execution by hand: an `ERROR` or `FAILED` one, or a `CLAIMED`/`SUBMITTING`
    /// one whose claimant died (its lease expired or was released) — a new attempt on the same
    /// record, with the rule as it is now (the user usually fixed it first). An attempt whose
    /// earlier job request may have reached Alteryx reconciles before anything else.
    pub async fn retry(&self, execution_id: &str) -> Result<RuleOutcome, RouterError> {
        self.take_over_and_run(execution_id, Takeover::Retry, self.default_deadline())
            .await
    }

    /// Take an existing record over (`takeover`) and run its rule for the stored object facts:
    /// reconcile first if an earlier request may have reached Alteryx, then the same render
    /// and submit path as a delivery. A rule that is gone ends the execution as an `ERROR`.
    pub(super) async fn take_over_and_run(
        &self,
        execution_id: &str,
        takeover: Takeover,
        deadline: Deadline,
    ) -> Result<RuleOutcome, RouterError> {
        // Rules first: when they cannot be loaded, nothing is claimed.
        let rule_set = self.rules.rule_set().await?;
        let claimant = Claimant::new(deadline.lease_until(self.settings.claim_lease_margin));
        let claimed = self
            .executions
            .claim_retry(execution_id, &claimant, takeover)
            .await?;
        // Reconciliation needs the workflow the earlier request went to, not the rule.
        let claimed = if claimed.must_reconcile() {
            match self.settle(claimed, &deadline).await {
                Ok(record) => record,
                Err(outcome) => return Ok(outcome),
            }
        } else {
            claimed
        };
        let Some(rule) = rule_set.get(&claimed.rule_id) else {
            let rule = claimed.rule_id.clone();
            let mut record = claimed;
            record.status = ExecutionStatus::Error;
            record.retryable = false;
            record.lease_until = None;
            record.finished_at = Some(now_unix());
            record.message = Some(format!("rule `{rule}` no longer exists"));
            let Recorded { error, .. } = self
                .recorder()
                .write(record, ExecutionStatus::Claimed, &deadline)
                .await;
            if let Some(e) = error {
                return Err(e.into());
            }
            return Err(RouterError::RuleGone {
                execution: execution_id.to_string(),
                rule,
            });
        };
        let object = object_of(&claimed);
        Ok(self
            .render_and_submit(claimed, &rule, &object, deadline)
            .await)
    }

    /// Settle an `UNCERTAIN` execution: record the job a person found to be its own (it must
    /// exist at Alteryx, in the execution's workflow), or submit a new attempt without
    /// reconciling.
    pub async fn resolve(
        &self,
        execution_id: &str,
        resolution: Resolution,
    ) -> Result<RuleOutcome, RouterError> {
        let deadline = self.default_deadline();
        let existing = self
            .executions
            .get(execution_id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(execution_id.to_string()))?;
        if existing.status != ExecutionStatus::Uncertain {
            return Err(RouterError::NotUncertain {
                execution: existing.id,
                status: existing.status,
            });
        }
        match resolution {
            Resolution::Job(job_id) => {
                let job = self
                    .alteryx
                    .with_client(existing.secret_id.as_deref(), |client| {
                        let job_id = job_id.clone();
                        async move { client.get_job(&job_id).await }
                    })
                    .await
                    .map_err(|source| RouterError::JobCheck {
                        job: job_id.clone(),
                        source,
                    })?;
                if let Some(actual) = job.workflow_id.as_deref()
                    && actual != existing.workflow
                {
                    return Err(RouterError::WrongWorkflow {
                        job: job_id,
                        actual: actual.to_string(),
                        expected: existing.workflow,
                    });
                }
                let mut record = existing;
                record.status = ExecutionStatus::Submitted;
                record.job_id = Some(job.id.clone());
                record.submitted_at = Some(now_unix());
                record.message = Some(format!(
                    "resolved by hand: job {} is this execution's",
                    job.id
                ));
                record.retryable = false;
                record.candidates = Vec::new();
                record.reconcile_from = None;
                record.reconcile_after = None;
                let store = &self.executions;
                crate::executions::submit::write_within(&deadline, "recording the job", || {
                    store.record_job(&record, ExecutionStatus::Uncertain)
                })
                .await?;
                Ok(outcome_of(&record))
            }
            Resolution::Resubmit => {
                let rule_set = self.rules.rule_set().await?;
                let Some(rule) = rule_set.get(&existing.rule_id) else {
                    return Err(RouterError::RuleGone {
                        execution: existing.id,
                        rule: existing.rule_id,
                    });
                };
                let claimant =
                    Claimant::new(deadline.lease_until(self.settings.claim_lease_margin));
                let claimed = self
                    .executions
                    .claim_retry(execution_id, &claimant, Takeover::Resubmit)
                    .await?;
                let object = object_of(&claimed);
                let outcome = self
                    .render_and_submit(claimed, &rule, &object, deadline)
                    .await;
                Ok(outcome)
            }
        }
    }

    /// Run a finished execution again on purpose (`executions rerun`): a conditional takeover
    /// ([`Takeover::Rerun`]: `COMPLETED`, `FAILED`, `SKIPPED` or `ERROR`; the attempt it
    /// replaces is kept in `history`, `reruns` and `rerun_at` record it), then the execution's
    /// rule against `current`, the object's facts read again (the caller checked that it is
    /// still the version the execution ran). The rule must still exist and match the object.
    pub async fn rerun(
        &self,
        execution_id: &str,
        current: &ObjectCreated,
    ) -> Result<RuleOutcome, RouterError> {
        let deadline = self.default_deadline();
        let rule_set = self.rules.rule_set().await?;
        let existing = self
            .executions
            .get(execution_id)
            .await?
            .ok_or_else(|| ExecutionError::NotFound(execution_id.to_string()))?;
        let Some(rule) = rule_set.get(&existing.rule_id) else {
            return Err(RouterError::RuleGone {
                execution: existing.id,
                rule: existing.rule_id,
            });
        };
        if !rule_set
            .matching(current)
            .iter()
            .any(|r| r.rule.id == existing.rule_id)
        {
            return Err(RouterError::RerunRefused {
                execution: existing.id,
                reason: format!(
                    "rule `{}` no longer matches s3://{}/{}",
                    existing.rule_id, current.bucket, current.key
                ),
            });
        }
        let claimant = Claimant::new(deadline.lease_until(self.settings.claim_lease_margin));
        let claimed = self
            .executions
            .claim_retry(execution_id, &claimant, Takeover::Rerun)
            .await?;
        Ok(self
            .render_and_submit(claimed, &rule, current, deadline)
            .await)
    }
}
