//! Reconciliation: before an attempt submits again after an attempt whose job request may
//! have reached Alteryx (killed mid-request, timed out, reset, 500/502/504), ask Alteryx
//! instead of guessing. Never a second job on a guess.
//!
//! The window: the earlier request started at `reconcile_from` and had surely ended by
//! `reconcile_after` (its time budget plus a grace); widened by the allowed clock skew on both
//! sides, since the times are ours and `createDate` is Alteryx's. The workflow's jobs created in
//! the window that no execution owns are the candidates:
//!
//! - none: the request queued nothing; submit;
//! - exactly one, and no other execution may have sent a request to the same workflow in the
//!   same window: it is this execution's job; adopt it;
//! - another execution's request to the same workflow is still in flight (a live claim): its
//!   job may be among the candidates; wait until it is recorded ([`Verdict::Wait`]);
//! - anything else (several candidates, or one that an execution whose outcome is also unknown
//!   could own, or more jobs than can be read): [`Verdict::Uncertain`], for a person.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::submit::{Deadline, Recorded, Recorder};
use super::{
    Execution, ExecutionError, ExecutionStatus, ExecutionStore, JobCandidate, LeaseState,
    ListFilter, format_unix, now_unix,
};
use crate::alteryx::{AlteryxClient, AlteryxError, Job};
use crate::error_chain;
use crate::secrets::ClientPool;

/// Tunables of reconciliation.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// `RECONCILE_CLOCK_SKEW_SECONDS` (default 120): how far Alteryx's clock may be from ours.
    pub clock_skew: Duration,
    /// The most jobs read from a workflow's list; more in the window is `UNCERTAIN`.
    pub max_jobs: usize,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            clock_skew: Duration::from_secs(120),
            max_jobs: 1000,
        }
    }
}

/// What Alteryx's job list says about an execution whose earlier request may have queued a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No job could be this execution's: the earlier request queued nothing.
    NoJob,
    /// This job is this execution's.
    Adopt(Job),
    /// Another execution's request to the same workflow, in the same window, is in flight;
    /// try again once it is recorded.
    Wait { reason: String },
    /// The job cannot be attributed: a person decides (`executions resolve`).
    Uncertain {
        candidates: Vec<JobCandidate>,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("listing the jobs of workflow {workflow} to reconcile")]
    Alteryx {
        workflow: String,
        #[source]
        source: AlteryxError,
    },
    #[error("reconciling")]
    Store(#[source] ExecutionError),
}

impl ReconcileError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconcileError::Alteryx { source, .. } => source.is_retryable(),
            ReconcileError::Store(_) => true,
        }
    }
}

/// Reconciles claimed executions and records what that decides (the router's and the
/// tracker's shared step).
#[derive(Clone)]
pub struct Reconciler {
    recorder: Recorder,
    alteryx: Arc<ClientPool>,
    settings: ReconcileSettings,
}

/// What reconciling a claimed execution came to.
#[derive(Debug)]
pub enum Settled {
    /// Nothing at Alteryx is the execution's: submit. The record (still `CLAIMED`, not yet
    /// written) no longer has to reconcile.
    Submit(Execution),
    /// Decided and written (or not, see [`Recorded::error`]): `SUBMITTED` with the adopted
    /// job, `UNCERTAIN`, or released again (`wait`: another execution's request is in flight;
    /// else Alteryx could not be asked).
    Done { recorded: Recorded, wait: bool },
}

impl Reconciler {
    pub fn new(recorder: Recorder, alteryx: Arc<ClientPool>, settings: ReconcileSettings) -> Self {
        Self {
            recorder,
            alteryx,
            settings,
        }
    }

    /// Reconcile `record` (`CLAIMED` by this process, [`Execution::must_reconcile`]); Alteryx
    /// is asked until `requests_end`, the outcome written by `deadline`.
    pub async fn settle(
        &self,
        mut record: Execution,
        deadline: &Deadline,
        requests_end: Instant,
    ) -> Settled {
        let verdict = self.verdict(&record, requests_end).await;
        let from = record
            .reconcile_from
            .or(record.submit_started_at)
            .unwrap_or_default();
        let claimed = ExecutionStatus::Claimed;
        match verdict {
            Ok(Verdict::NoJob) => {
                tracing::info!(execution = %record.id, attempt = record.attempt,
                    "reconciled: the earlier job request queued nothing");
                record.reconcile_from = None;
                record.reconcile_after = None;
                record.message = None;
                Settled::Submit(record)
            }
            Ok(Verdict::Adopt(job)) => {
                tracing::warn!(execution = %record.id, job_id = %job.id,
                    "reconciled: adopting the job an earlier job request queued");
                record.status = ExecutionStatus::Submitted;
                record.job_id = Some(job.id.clone());
                record.submitted_at = Some(now_unix());
                record.lease_until = None;
                record.retryable = false;
                record.reconcile_from = None;
                record.reconcile_after = None;
                record.message = Some(format!(
                    "adopted job {}: Alteryx queued it for the job request started at {} whose answer was lost",
                    job.id,
                    format_unix(from / 1000)
                ));
                Settled::Done {
                    recorded: self.recorder.record_job(record, claimed, deadline).await,
                    wait: false,
                }
            }
            Ok(Verdict::Uncertain { candidates, reason }) => Settled::Done {
                recorded: self
                    .recorder
                    .record_uncertain(record, claimed, candidates, reason, deadline)
                    .await,
                wait: false,
            },
            Ok(Verdict::Wait { reason }) => {
                record.lease_until = None;
                record.retryable = true;
                record.message = Some(reason);
                Settled::Done {
                    recorded: self.recorder.write(record, claimed, deadline).await,
                    wait: true,
                }
            }
            Err(error) => {
                tracing::warn!(execution = %record.id, %error, "could not reconcile");
                record.lease_until = None;
                record.retryable = true;
                record.message = Some(format!(
                    "could not ask Alteryx what became of the earlier job request: {error}"
                ));
                Settled::Done {
                    recorded: self.recorder.write(record, claimed, deadline).await,
                    wait: false,
                }
            }
        }
    }

    /// The verdict, with the secret read again once if Alteryx refuses the credentials.
    async fn verdict(&self, record: &Execution, until: Instant) -> Result<Verdict, String> {
        let secret = record.secret_id.as_deref();
        let store = self.recorder.store().as_ref();
        let mut refused_once = false;
        loop {
            let client = self
                .alteryx
                .client(secret)
                .await
                .map_err(|e| format!("credentials: {}", error_chain(&e)))?
                .until(until);
            match reconcile(store, &client, record, &self.settings).await {
                Err(ReconcileError::Alteryx {
                    source: AlteryxError::Unauthorized { .. },
                    ..
                }) if !refused_once => {
                    refused_once = true;
                    self.alteryx.invalidate(secret).await;
                }
                other => return other.map_err(|e| error_chain(&e)),
            }
        }
    }
}

/// The window an execution's earlier request could have created a job in (Unix ms): from its
/// start to when it surely ended, or `None` when the record has no such request.
pub fn window(record: &Execution) -> Option<(i64, i64)> {
    let from = record.reconcile_from.or(record.submit_started_at)?;
    let until = record.reconcile_after.unwrap_or(from).max(from);
    Some((from, until))
}

/// Ask Alteryx (through `client`) and the store what became of `record`'s earlier request.
pub async fn reconcile(
    store: &dyn ExecutionStore,
    client: &AlteryxClient,
    record: &Execution,
    settings: &ReconcileSettings,
) -> Result<Verdict, ReconcileError> {
    let Some((from, until)) = window(record) else {
        return Ok(Verdict::NoJob);
    };
    let skew = settings.clock_skew.as_millis() as i64;
    let (start, end) = (from - skew, until + skew);
    let since = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let listed = client
        .jobs_created_since(&record.workflow, since, settings.max_jobs)
        .await
        .map_err(|source| ReconcileError::Alteryx {
            workflow: record.workflow.clone(),
            source,
        })?;
    let in_window: Vec<Job> = listed
        .jobs
        .into_iter()
        .filter(|j| {
            j.created_at()
                .is_none_or(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64 <= end)
        })
        .collect();
    let ids: Vec<String> = in_window.iter().map(|j| j.id.clone()).collect();
    let owners = store
        .job_owners(&ids)
        .await
        .map_err(ReconcileError::Store)?;
    if let Some(own) = in_window
        .iter()
        .find(|j| owners.get(&j.id) == Some(&record.id))
    {
        // Recorded by an earlier try of this very execution: it is its job.
        return Ok(Verdict::Adopt(own.clone()));
    }
    let candidates: Vec<&Job> = in_window
        .iter()
        .filter(|j| !owners.contains_key(&j.id))
        .collect();
    let listed_all = listed.complete;
    if candidates.is_empty() && listed_all {
        return Ok(Verdict::NoJob);
    }
    let contenders = contenders(store, record, (start, end)).await?;
    let as_candidates = |jobs: &[&Job]| -> Vec<JobCandidate> {
        jobs.iter()
            .map(|j| JobCandidate {
                job_id: j.id.clone(),
                created: j.create_date.clone(),
                owner: None,
            })
            .collect()
    };
    let window_text = format!(
        "created between {} and {} (Alteryx's clock, ±{} s)",
        super::format_unix(from / 1000),
        super::format_unix(until / 1000),
        settings.clock_skew.as_secs()
    );
    if !listed_all {
        return Ok(Verdict::Uncertain {
            candidates: as_candidates(&candidates),
            reason: format!(
                "more than {} jobs of workflow {} were {window_text}; too many to tell which is this execution's",
                settings.max_jobs, record.workflow
            ),
        });
    }
    let now = now_unix();
    if let Some(live) = contenders
        .iter()
        .find(|c| matches!(c.lease_state(now), Some(LeaseState::Live(_))))
    {
        return Ok(Verdict::Wait {
            reason: format!(
                "execution {} is sending a job request to workflow {} in the same window; waiting until its job is recorded",
                live.id, record.workflow
            ),
        });
    }
    if candidates.len() == 1 && contenders.is_empty() {
        return Ok(Verdict::Adopt(candidates[0].clone()));
    }
    let mut reason = format!(
        "{} job(s) of workflow {} that no execution recorded were {window_text}",
        candidates.len(),
        record.workflow
    );
    if !contenders.is_empty() {
        let ids: Vec<&str> = contenders.iter().map(|c| c.id.as_str()).collect();
        reason.push_str(&format!(
            ", and other execution(s) whose job request's outcome is also unknown could own them: {}",
            ids.join(", ")
        ));
    }
    Ok(Verdict::Uncertain {
        candidates: as_candidates(&candidates),
        reason,
    })
}

/// Other executions of the same workflow (and server) whose job request may have created a
/// job in `window` without recording it: `SUBMITTING`, reconciling `CLAIMED`, `UNCERTAIN`.
async fn contenders(
    store: &dyn ExecutionStore,
    record: &Execution,
    (start, end): (i64, i64),
) -> Result<Vec<Execution>, ReconcileError> {
    let mut found: HashMap<String, Execution> = HashMap::new();
    for status in [
        ExecutionStatus::Submitting,
        ExecutionStatus::Claimed,
        ExecutionStatus::Uncertain,
    ] {
        let listed = store
            .list(&ListFilter {
                status: Some(status),
                workflow: Some(record.workflow.clone()),
                limit: Some(500),
                ..ListFilter::default()
            })
            .await
            .map_err(ReconcileError::Store)?;
        for other in listed {
            if other.id == record.id || other.secret_id != record.secret_id {
                continue;
            }
            if status == ExecutionStatus::Claimed && !other.must_reconcile() {
                continue; // has not sent anything yet
            }
            let overlaps =
                window(&other).is_some_and(|(from, until)| from <= end && until >= start);
            if overlaps {
                found.insert(other.id.clone(), other);
            }
        }
    }
    let mut out: Vec<Execution> = found.into_values().collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
