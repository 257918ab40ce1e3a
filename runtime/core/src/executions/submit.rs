//! The submit path of one claimed execution, as far as its record is concerned: the time it
//! has ([`Deadline`]), the intent written before the job request, what a failed request leaves
//! behind ([`after_failure`]), and outcome writes retried within the deadline.
//!
//! [`after_failure`] is the one place that maps a kind of failure to the record's next state.
//! Alteryx unavailable (unreachable, 429, 503) puts the execution in the waiting line
//! (`WAITING`, `wait_reason: outage`) with a next attempt after an exponential backoff with
//! jitter that honours `Retry-After`; the tracker tries it again then. Too little time left
//! and an outcome to reconcile are released for the next attempt (a redelivery).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Execution, ExecutionError, ExecutionStatus, ExecutionStore, JobCandidate, now_unix, now_unix_ms,
};
use crate::alteryx::AlteryxError;
use crate::notify::{FailureNotice, NoticeKind, Notifier};

/// The end of an invocation's time: the Lambda context's deadline, or the CLI's own timeout.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    /// The same moment as Unix milliseconds, for leases other processes compare against.
    unix_ms: i64,
}

impl Deadline {
    /// `left` from now.
    pub fn after(left: Duration) -> Self {
        Self {
            at: Instant::now() + left,
            unix_ms: now_unix_ms() + left.as_millis() as i64,
        }
    }

    /// At a wall-clock time (the Lambda context's `deadline`).
    pub fn at_system_time(at: std::time::SystemTime) -> Self {
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Self::after(left)
    }

    pub fn instant(&self) -> Instant {
        self.at
    }

    /// Unix milliseconds.
    pub fn unix_ms(&self) -> i64 {
        self.unix_ms
    }

    /// The time left.
    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// This deadline moved `reserve` earlier (time kept back for what comes after).
    pub fn minus(&self, reserve: Duration) -> Self {
        Self {
            at: self.at.checked_sub(reserve).unwrap_or_else(Instant::now),
            unix_ms: self.unix_ms - reserve.as_millis() as i64,
        }
    }

    /// The lease a claim made now asks for (Unix seconds): the deadline plus `margin`,
    /// rounded up.
    pub fn lease_until(&self, margin: Duration) -> i64 {
        (self.unix_ms + 999) / 1000 + margin.as_secs() as i64
    }
}

/// How a job request failed, as far as the execution's next state is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitFailure {
    /// Alteryx refused it, or it cannot be sent as configured: it would be refused again until
    /// someone changes something (a question name, a secret, a certificate).
    Refused(String),
    /// It was not sent or not taken for a reason of ours that may pass (credentials unreadable
    /// just now, the object unreadable): a redelivery may succeed.
    NotQueued(String),
    /// Alteryx did not take it (unreachable, 429, 503, a maintenance page): the execution waits
    /// in line and the tracker tries again after a backoff (at least `retry_after`).
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// It may have queued a job whose answer never came: the next attempt reconciles.
    OutcomeUnknown(String),
    /// Not sent: too little time was left before the deadline (the execution waits in line).
    NoTime(String),
}

impl SubmitFailure {
    /// What a failed submission means for the execution.
    pub fn of(error: &AlteryxError, message: String) -> Self {
        if matches!(error, AlteryxError::Deadline { .. }) {
            SubmitFailure::NoTime(message)
        } else if error.may_have_queued_a_job() {
            SubmitFailure::OutcomeUnknown(message)
        } else if error.is_retryable() {
            SubmitFailure::Unavailable {
                message,
                retry_after: error.retry_after(),
            }
        } else {
            SubmitFailure::Refused(message)
        }
    }
}

/// The record a failed job request leaves behind (from `CLAIMED` or `SUBMITTING`).
pub fn after_failure(mut record: Execution, failure: SubmitFailure) -> Execution {
    record.lease_until = None;
    record.job_id = None;
    match failure {
        SubmitFailure::Refused(message) => {
            record.status = ExecutionStatus::Error;
            record.retryable = false;
            record.message = Some(message);
            record.finished_at = Some(now_unix());
        }
        SubmitFailure::NotQueued(message) => {
            record.status = ExecutionStatus::Error;
            record.retryable = true;
            record.message = Some(message);
        }
        SubmitFailure::Unavailable {
            message,
            retry_after,
        } => {
            let now = now_unix();
            let wait = outage_backoff(record.attempt, retry_after);
            record.status = ExecutionStatus::Waiting;
            record.wait_reason = Some(super::WaitReason::Outage);
            record.waiting_since = record.waiting_since.or(Some(now));
            record.next_attempt_at = Some(now + wait.as_secs() as i64);
            record.retryable = false;
            record.submit_started_at = None;
            record.reconcile_after = None;
            record.message = Some(format!(
                "waiting: Alteryx is unavailable ({message}); the tracker tries again after {}",
                super::format_unix(now + wait.as_secs() as i64)
            ));
        }
        SubmitFailure::NoTime(message) => {
            // Nothing was sent: the line keeps it (in its place), the invocation succeeds,
            // and the next tracker pass submits it with a fresh time budget.
            let now = now_unix();
            record.status = ExecutionStatus::Waiting;
            record.wait_reason = Some(super::WaitReason::Deadline);
            record.waiting_since = record.waiting_since.or(Some(now));
            record.next_attempt_at = None;
            record.retryable = false;
            record.submit_started_at = None;
            record.reconcile_after = None;
            record.message = Some(format!(
                "waiting: not submitted by its invocation ({message}); the next tracker pass submits it"
            ));
        }
        SubmitFailure::OutcomeUnknown(message) => {
            // Released, still SUBMITTING: whoever takes it over reconciles first.
            record.status = ExecutionStatus::Submitting;
            record.retryable = true;
            record.message = Some(format!(
                "the job request's outcome is unknown ({message}); the next attempt asks Alteryx before it submits again"
            ));
        }
    }
    record
}

/// The first wait after Alteryx was unavailable; each later attempt doubles it.
pub const OUTAGE_BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The longest wait between two attempts during an outage.
pub const OUTAGE_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// How long attempt `attempt` (1 for the first) waits after finding Alteryx unavailable:
/// `OUTAGE_BACKOFF_BASE × 2^(attempt−1)`, at most `OUTAGE_BACKOFF_MAX`, with jitter (a random
/// half to all of it, so executions that met the same outage do not all come back at once),
/// and never less than the server's `Retry-After`.
pub fn outage_backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let full = OUTAGE_BACKOFF_BASE
        .saturating_mul(1u32 << exponent)
        .min(OUTAGE_BACKOFF_MAX);
    let jittered = Duration::from_secs_f64(full.as_secs_f64() * rand::random_range(0.5..=1.0));
    jittered.max(retry_after.unwrap_or_default())
}

/// `record` (`CLAIMED`, no slot) put in the waiting line: its group is full. It keeps its place
/// (`created_at`) and, when it has waited before, its `waiting_since`.
pub fn wait_for_slot(mut record: Execution, running: i64, cap: u32) -> Execution {
    let group = record.group.clone().unwrap_or_default();
    record.status = ExecutionStatus::Waiting;
    record.wait_reason = Some(super::WaitReason::Cap);
    record.waiting_since = record.waiting_since.or(Some(now_unix()));
    record.next_attempt_at = None;
    record.lease_until = None;
    record.submit_started_at = None;
    record.reconcile_after = None;
    record.retryable = false;
    record.message = Some(if running < i64::from(cap) {
        format!(
            "waiting: concurrency group {group} has executions waiting ahead of it ({running} of {cap} jobs at Alteryx); the tracker submits it in its place in line"
        )
    } else {
        format!(
            "waiting: concurrency group {group} has {running} of {cap} jobs at Alteryx; the tracker submits it when a slot frees"
        )
    });
    record
}

/// The intent: `record` (`CLAIMED`) about to send its job request, which ends by
/// `request_until` (Unix ms); reconciliation may look once that plus `grace` has passed.
pub fn intent(mut record: Execution, request_until_ms: i64, grace: Duration) -> Execution {
    let now = now_unix_ms();
    record.status = ExecutionStatus::Submitting;
    record.submit_started_at = Some(now);
    record.reconcile_from = None;
    record.reconcile_after = Some(request_until_ms.max(now) + grace.as_millis() as i64);
    record.candidates = Vec::new();
    record
}

/// Run a store write until it succeeds, a non-transient error comes back, or less than the
/// next backoff is left before `deadline` (the AWS SDK retries each call too; this covers
/// longer throttling or an outage of a few seconds). Idempotent writes only: the stores
/// accept a write that an earlier try already applied.
pub async fn write_within<T, F, Fut>(
    deadline: &Deadline,
    what: &str,
    mut write: F,
) -> Result<T, ExecutionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ExecutionError>>,
{
    let mut backoff = Duration::from_millis(100);
    let mut tries = 0u32;
    loop {
        tries += 1;
        match write().await {
            Ok(done) => return Ok(done),
            Err(e) if e.is_transient() && deadline.left() > backoff * 2 => {
                let wait =
                    Duration::from_secs_f64(backoff.as_secs_f64() * rand::random_range(0.5..=1.0));
                tracing::warn!(tries, wait_ms = wait.as_millis() as u64,
                    error = %crate::error_chain(&e), "{what} failed; trying again");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A record this process decided on, and whether writing it worked.
#[derive(Debug)]
pub struct Recorded {
    pub record: Execution,
    /// The status the store had before (and still has when the write failed).
    pub previous: ExecutionStatus,
    /// Why the write failed (after its retries within the deadline), if it did.
    pub error: Option<ExecutionError>,
}

/// Writes the outcomes of claimed executions within the deadline, and announces the ones a
/// person must look at.
#[derive(Clone)]
pub struct Recorder {
    store: Arc<dyn ExecutionStore>,
    notifier: Arc<dyn Notifier>,
}

impl Recorder {
    pub fn new(store: Arc<dyn ExecutionStore>, notifier: Arc<dyn Notifier>) -> Self {
        Self { store, notifier }
    }

    pub fn store(&self) -> &Arc<dyn ExecutionStore> {
        &self.store
    }

    /// Replace the stored record (status `previous`) with `record`.
    pub async fn write(
        &self,
        record: Execution,
        previous: ExecutionStatus,
        deadline: &Deadline,
    ) -> Recorded {
        let store = &self.store;
        let result = write_within(deadline, "recording the execution", || {
            store.update(&record, previous)
        })
        .await;
        if let Err(e) = &result {
            tracing::error!(execution = %record.id, status = %record.status,
                error = %crate::error_chain(e), "could not record the execution");
        }
        Recorded {
            record,
            previous,
            error: result.err(),
        }
    }

    /// Record `record` (`SUBMITTED` with its job) and the job's ownership. A job another
    /// execution already recorded (it adopted it while reconciling, before this one could
    /// record it) makes this one `UNCERTAIN`: one of the two is wrong, and only a person can
    /// tell which.
    pub async fn record_job(
        &self,
        record: Execution,
        previous: ExecutionStatus,
        deadline: &Deadline,
    ) -> Recorded {
        let store = &self.store;
        let result = write_within(deadline, "recording the job", || {
            store.record_job(&record, previous)
        })
        .await;
        match result {
            Ok(()) => Recorded {
                record,
                previous,
                error: None,
            },
            Err(ExecutionError::JobTaken { job_id, owner }) => {
                let reason = format!(
                    "job {job_id} was queued for this execution, but execution {owner} recorded it first while reconciling; decide for both with `executions resolve`"
                );
                let candidates = vec![JobCandidate {
                    job_id,
                    created: None,
                    owner: Some(owner),
                }];
                self.record_uncertain(record, previous, candidates, reason, deadline)
                    .await
            }
            Err(e) => {
                tracing::error!(execution = %record.id,
                    job_id = record.job_id.as_deref().unwrap_or(""), error = %crate::error_chain(&e),
                    "job queued but not recorded; the next attempt finds it at Alteryx and adopts it");
                Recorded {
                    record,
                    previous,
                    error: Some(e),
                }
            }
        }
    }

    /// Record `UNCERTAIN` with the candidates, and announce it.
    pub async fn record_uncertain(
        &self,
        mut record: Execution,
        previous: ExecutionStatus,
        candidates: Vec<JobCandidate>,
        reason: String,
        deadline: &Deadline,
    ) -> Recorded {
        tracing::error!(execution = %record.id, %reason, "execution UNCERTAIN: a person decides");
        record.status = ExecutionStatus::Uncertain;
        record.job_id = None;
        record.lease_until = None;
        record.retryable = false;
        record.candidates = candidates;
        record.message = Some(reason);
        let recorded = self.write(record, previous, deadline).await;
        if recorded.error.is_none() {
            let notice = FailureNotice::of_execution(NoticeKind::Uncertain, &recorded.record);
            crate::notify::publish(self.notifier.as_ref(), &notice).await;
        }
        recorded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_back_off_exponentially_with_jitter_and_honour_retry_after() {
        for _ in 0..50 {
            let first = outage_backoff(1, None);
            assert!((15..=30).contains(&first.as_secs()), "{first:?}");
            let third = outage_backoff(3, None);
            assert!((60..=120).contains(&third.as_secs()), "{third:?}");
            let late = outage_backoff(40, None);
            assert!((450..=900).contains(&late.as_secs()), "{late:?}");
        }
        let told = outage_backoff(1, Some(Duration::from_secs(600)));
        assert_eq!(told, Duration::from_secs(600), "Retry-After is a floor");
    }

    #[test]
    fn leases_end_after_the_deadline_by_the_margin() {
        let d = Deadline::after(Duration::from_secs(10));
        let lease = d.lease_until(Duration::from_secs(5));
        let expected = now_unix() + 15;
        assert!((expected..=expected + 1).contains(&lease), "{lease}");
        assert!(d.minus(Duration::from_secs(20)).left().is_zero());
    }
}
