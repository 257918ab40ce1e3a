//! Job tracker: one bounded pass, run on a schedule, that
//!
//! 1. **polls `SUBMITTED` executions**, oldest first, continuing where the last pass stopped (a
//!    cursor kept by the process), and records `COMPLETED` (with the disposition) or `FAILED`
//!    (with Alteryx's messages), keeping what Alteryx said about the finished job (its messages
//!    and outputs) on the execution as a [`JobReport`]. Only Alteryx's own answer that it does not know a job (a JSON
//!    404) closes an execution; a proxy's 404 page and 5xx answers are transient.
//!    A workflow with many jobs in the pass is asked once for its job list (one request per
//!    100 jobs created since its oldest one) and only the jobs the list shows finished, or
//!    does not show, are read one by one; a job the pass does not learn about from a list is
//!    read every pass while young and then less often the older it gets ([`poll_interval`]),
//!    so a pass where nothing changed makes no request per job;
//! 2. **sweeps stale claims**: `CLAIMED`/`SUBMITTING` executions whose lease ran out (or was
//!    released) more than `stale_after` ago — their invocation died and no redelivery took them
//!    over. It counts them (`stale_claims` in the pass's log line feeds the stale-claim alarm),
//!    takes each over, reconciles what may have reached Alteryx (adopting the job, or
//!    `UNCERTAIN`), and otherwise leaves a retryable `ERROR` that a redelivery, `drain-dlq` or
//!    `executions retry` runs — with a `stale` notice, since its event may be gone — except a
//!    batch's own execution, which no event brings back: it goes back in the waiting line;
//! 3. **dispatches the waiting line** (with a [`Router`], [`dispatch`]): `WAITING`
//!    executions, oldest first, while their concurrency group has free slots, each through the
//!    router's path, keeping the groups' line marks (which make new uploads queue behind a
//!    line) true.
//!
//! 4. **closes due batches** ([`batch_timers`]): open batches quiet for their rule's
//!    `quiet_seconds` or open past `max_wait_seconds`, a bounded number per pass.
//!
//! Failures, jobs stuck past a limit, `UNCERTAIN` and stale executions are published to a
//! [`Notifier`] (SNS in AWS). Each pass does bounded work: at most `max_executions` polls with
//! `concurrency` in flight and `max_stale` takeovers, and it starts nothing new once its time
//! budget (kept below the function timeout) is spent; the rest waits for the next pass. The
//! pass's [`TrackReport`] lists the jobs that finished, for the metrics ([`crate::metrics`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::alteryx::{AlteryxError, Job};
use crate::error_chain;
use crate::executions::WaitReason;
use crate::executions::reconcile::{ReconcileSettings, Reconciler, Settled};
use crate::executions::submit::{Deadline, Recorder};
use crate::executions::{
    Claimant, Execution, ExecutionError, ExecutionStatus, ExecutionStore, LeaseState, ListFilter,
    Takeover, format_unix, now_unix,
};
use crate::job_report::JobReport;
use crate::router::Router;
use crate::secrets::{ClientPool, PoolError};

mod batch_timers;
mod dispatch;

pub use crate::notify::{
    FailureNotice, LogNotifier, NoticeKind, Notifier, NotifyError, SnsNotifier, notifier,
};

#[derive(Debug, Clone)]
pub struct TrackerSettings {
    /// `TRACK_MAX_EXECUTIONS` (default 500): `SUBMITTED` executions polled per pass.
    pub max_executions: usize,
    pub concurrency: usize,
    /// `TRACK_BUDGET_SECONDS`: no new work starts after this much of a pass.
    pub budget: Duration,
    /// A job still queued or running after this long is flagged as stuck (once).
    pub stuck_after: Duration,
    /// `TRACK_STALE_AFTER_SECONDS` (default 300): a claim whose lease ran out (or was
    /// released) this long ago, and that no redelivery took over, is stale.
    pub stale_after: Duration,
    /// Stale claims taken over per pass.
    pub max_stale: usize,
    /// The tracker's own takeovers hold a lease of the pass's budget plus this margin.
    pub claim_lease_margin: Duration,
    pub reconcile: ReconcileSettings,
    /// `TRACK_MAX_DISPATCH` (default 100): `WAITING` executions submitted per pass.
    pub max_dispatch: usize,
    /// `WAITING` executions read per pass from the head of the line (and as many again from
    /// the moving window behind it).
    pub dispatch_scan: usize,
    /// `WAITING_GIVE_UP_SECONDS` (default 86400): an execution waiting for Alteryx (an outage),
    /// or a batch's execution whose dispatches keep dying (`stale`), this long ends `ERROR`,
    /// with a `failed` notice.
    pub waiting_give_up: Duration,
    /// `WAITING_CAP_GIVE_UP_SECONDS` (default 604800, 7 days): an execution waiting for a
    /// slot of its group this long ends `ERROR`, with a `failed` notice.
    pub cap_give_up: Duration,
    /// A workflow (of one secret) with at least this many `SUBMITTED` executions in a pass is
    /// asked for its job list instead of each job on its own.
    pub list_from_jobs: usize,
    /// The most jobs read from one workflow's list in a pass (100 per request); jobs the
    /// list did not reach are polled one by one, with the back-off.
    pub list_max_jobs: usize,
    /// A job not learnt about from a list is polled every pass for this long after its
    /// submission, then every minute, the interval doubling each time its age doubles ...
    pub poll_every_pass_for: Duration,
    /// ... up to this.
    pub poll_max_interval: Duration,
    /// A group's line mark is removed only when it was set this long before the pass read
    /// the line ([`crate::executions::line::LINE_CLEAR_AFTER`]).
    pub line_clear_after: Duration,
    /// `TRACK_REPEAT_SECONDS` (default 0: off): [`Tracker::run_passes`] runs another pass
    /// this long after one that left executions in the waiting line ...
    pub repeat: Duration,
    /// ... while it has run less than this (`TRACK_REPEAT_FOR_SECONDS`, default 50) and the
    /// time left still holds a whole pass (`budget`).
    pub repeat_for: Duration,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        Self {
            max_executions: 500,
            concurrency: 8,
            budget: Duration::from_secs(45),
            stuck_after: Duration::from_secs(60 * 60),
            stale_after: Duration::from_secs(300),
            max_stale: 50,
            claim_lease_margin: Duration::from_secs(60),
            reconcile: ReconcileSettings::default(),
            max_dispatch: 100,
            dispatch_scan: 500,
            waiting_give_up: Duration::from_secs(24 * 3600),
            cap_give_up: Duration::from_secs(7 * 24 * 3600),
            list_from_jobs: 10,
            list_max_jobs: 10_000,
            poll_every_pass_for: Duration::from_secs(5 * 60),
            poll_max_interval: Duration::from_secs(15 * 60),
            line_clear_after: crate::executions::line::LINE_CLEAR_AFTER,
            repeat: Duration::ZERO,
            repeat_for: Duration::from_secs(50),
        }
    }
}

/// How long after its last poll a job of `age` (since its submission) is polled again when
/// no job list says how it is: every pass (zero) while younger than `every_pass_for`, then
/// one minute, doubling each time the age doubles (2 minutes from twice `every_pass_for`,
/// 4 from four times ...), at most `max`.
pub fn poll_interval(age: Duration, every_pass_for: Duration, max: Duration) -> Duration {
    if age < every_pass_for {
        return Duration::ZERO;
    }
    let doublings = (age.as_secs() / every_pass_for.as_secs().max(1))
        .max(1)
        .ilog2()
        .min(20);
    (Duration::from_secs(60) * 2u32.pow(doublings)).min(max)
}

/// What one tracking pass did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TrackReport {
    pub checked: usize,
    pub completed: usize,
    pub failed: usize,
    pub still_running: usize,
    pub stuck: usize,
    /// `CLAIMED`/`SUBMITTING` executions past their lease by more than `stale_after`.
    pub stale_claims: usize,
    /// Of those, the ones whose job was found at Alteryx and recorded.
    pub adopted: usize,
    /// Of those, the ones now `UNCERTAIN`.
    pub uncertain: usize,
    /// Of those, the ones left as a retryable `ERROR` (nothing reached Alteryx).
    pub released: usize,
    /// Of those, batches' own executions put back in the waiting line (nothing reached
    /// Alteryx, and no event comes back for them).
    pub stale_requeued: usize,
    pub errors: Vec<String>,
    pub out_of_budget: bool,
    /// The poll reached the newest `SUBMITTED` execution; the next pass starts from the oldest.
    pub wrapped: bool,
    /// `WAITING` executions read.
    pub waiting: usize,
    /// Of those, the ones submitted (`SUBMITTED` now).
    pub dispatched: usize,
    /// Of those, the ones that went back in line (their group filled meanwhile, or Alteryx
    /// still unavailable).
    pub requeued: usize,
    /// Of those, the ones that waited past `waiting_give_up` (for Alteryx) or `cap_give_up`
    /// (for a slot) and ended `ERROR`.
    pub gave_up: usize,
    /// Requests for one job (`GET v3/jobs/{id}`, `GET v1/jobs/{id}/`).
    pub job_polls: usize,
    /// Requests for a workflow's job list (pages of 100).
    pub list_calls: usize,
    /// Workflows whose list request failed (their jobs were polled one by one).
    pub list_failures: usize,
    /// `SUBMITTED` executions not polled this pass: no list covered their job and their last
    /// poll was recent for their age ([`poll_interval`]).
    pub deferred: usize,
    /// DynamoDB requests the process made during the pass (dispatch included): reads
    /// (`GetItem`, `BatchGetItem`, `Query`, `Scan`) and writes (the rest). Zero with SQLite.
    pub dynamodb_reads: u64,
    pub dynamodb_writes: u64,
    /// Open batches looked at by the timers.
    pub open_batches: usize,
    /// Of those, the ones closed (their execution dispatched) and expired.
    pub batches_closed: usize,
    pub batches_expired: usize,
    /// Those batches, each with its rule, for the metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended_batches: Vec<EndedBatch>,
    /// The jobs this pass found finished (`COMPLETED` or `FAILED`), for the metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finished: Vec<FinishedJob>,
}

/// A batch the tracker's timers closed or expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndedBatch {
    pub rule_id: String,
    pub batch_id: String,
    /// `CLOSED` (its execution dispatched) or `EXPIRED` (a `batch_expired` notice went out).
    pub state: crate::executions::batch::BatchState,
}

/// A job the tracker recorded as ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinishedJob {
    pub rule_id: String,
    pub execution_id: String,
    /// `COMPLETED` or `FAILED`.
    pub status: ExecutionStatus,
    /// From submission to the tracker recording its end (so up to one tracker interval
    /// more than Alteryx's run time); absent when the submission time is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
}

pub struct Tracker {
    executions: Arc<dyn ExecutionStore>,
    alteryx: Arc<ClientPool>,
    notifier: Arc<dyn Notifier>,
    settings: TrackerSettings,
    /// Where the next pass's poll continues: the last `SUBMITTED` execution checked
    /// (`created_at`, `id`). Kept by the process: a cold start begins with the oldest.
    cursor: Mutex<Option<(i64, String)>>,
    /// Dispatches the waiting line; without it the line is left alone.
    router: Option<Arc<Router>>,
    /// Where the next pass's window over the waiting line (behind its head) starts.
    waiting_cursor: Mutex<Option<(i64, String)>>,
    /// When each execution's job was last polled or seen in a list (for the back-off). Kept
    /// by the process: a cold start polls every job once.
    last_polled: std::sync::Mutex<HashMap<String, Instant>>,
    /// Where the next pass's batch timers continue (`opened_at`, batch id).
    batch_cursor: Mutex<Option<(i64, String)>>,
    /// Groups whose line mark this process saw or set and has not removed: read each pass
    /// until the mark goes, also after their line emptied ([`crate::executions::line`]).
    line_marks: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// One workflow's jobs, as its job list showed them in this pass.
struct Listing {
    jobs: HashMap<String, Job>,
    /// The list reached every job created since the oldest of the pass's executions.
    complete: bool,
}

/// What the pass does about one `SUBMITTED` execution.
enum Plan {
    /// Read the job: it finished, vanished from a complete list, or is due for a poll.
    Poll,
    /// A list showed it queued or running.
    Listed(Job),
    /// Polled recently for its age; no list said anything about it.
    Defer,
}

fn record_reason(record: &Execution) -> &'static str {
    record.wait_reason.map_or("", WaitReason::as_str)
}

/// A list entry that says the job has not ended (anything else is read in full).
fn unfinished(job: &Job) -> bool {
    !job.is_finished()
        && (job.status.eq_ignore_ascii_case("queued") || job.status.eq_ignore_ascii_case("running"))
}

/// How records written before [`Execution::stuck_at`] existed said "flagged as stuck": a
/// message prefix. Still honoured, so an upgrade does not send their notices again.
const LEGACY_STUCK_PREFIX: &str = "stuck:";

enum Checked {
    /// Another tracker recorded it first (passes may overlap).
    Raced,
    Completed(FinishedJob),
    Failed(FinishedJob),
    Running,
    Stuck,
    /// Not polled this pass (back-off).
    Deferred,
    Error(String),
}

impl Tracker {
    pub fn new(
        executions: Arc<dyn ExecutionStore>,
        alteryx: Arc<ClientPool>,
        notifier: Arc<dyn Notifier>,
        settings: TrackerSettings,
    ) -> Self {
        Self {
            executions,
            alteryx,
            notifier,
            settings,
            cursor: Mutex::new(None),
            router: None,
            waiting_cursor: Mutex::new(None),
            last_polled: Default::default(),
            batch_cursor: Mutex::new(None),
            line_marks: Default::default(),
        }
    }

    /// Dispatch the waiting line with `router` (built from the same settings).
    pub fn with_dispatch(mut self, router: Arc<Router>) -> Self {
        self.router = Some(router);
        self
    }

    /// How long of a pass polling may take: dispatch needs a job request's time and its
    /// record's left before the pass's end.
    fn poll_budget(&self) -> Duration {
        match &self.router {
            Some(router) => self
                .settings
                .budget
                .saturating_sub(router.time_to_start())
                .max(self.settings.budget / 4),
            None => self.settings.budget,
        }
    }

    /// Passes for one scheduled invocation that must end by `until`: one, and with `repeat`
    /// set, another `repeat` after each that left executions in the waiting line, while less
    /// than `repeat_for` has passed and the time left after the pause still holds a whole
    /// pass's `budget`. A slot is freed when a pass records its job's end, so for short jobs
    /// this is what lets a capped group's line move faster than once per schedule interval.
    /// `each` sees every pass's report as it ends (for its metrics); the last is returned,
    /// with the number of passes.
    pub async fn run_passes(
        &self,
        until: Instant,
        mut each: impl FnMut(&TrackReport),
    ) -> (TrackReport, usize) {
        let started = Instant::now();
        let mut passes = 0;
        loop {
            let report = self.run_once().await;
            passes += 1;
            each(&report);
            let repeat = self.settings.repeat;
            let resume = Instant::now() + repeat;
            let again = !repeat.is_zero()
                && report.waiting > 0
                && resume.duration_since(started) < self.settings.repeat_for
                && until.saturating_duration_since(resume) >= self.settings.budget;
            if !again {
                return (report, passes);
            }
            tokio::time::sleep(repeat).await;
        }
    }

    /// One bounded pass: poll `SUBMITTED` executions, then sweep stale claims.
    pub async fn run_once(&self) -> TrackReport {
        let started = Instant::now();
        let deadline = Deadline::after(self.settings.budget);
        let mut report = TrackReport::default();
        let dynamodb = crate::aws::dynamodb_requests();
        self.poll(&mut report, started).await;
        self.sweep(&mut report, &deadline).await;
        self.batch_timers(&mut report, &deadline).await;
        self.dispatch(&mut report, &deadline).await;
        let (reads, writes) = crate::aws::dynamodb_requests();
        report.dynamodb_reads = reads.saturating_sub(dynamodb.0);
        report.dynamodb_writes = writes.saturating_sub(dynamodb.1);
        tracing::info!(
            checked = report.checked,
            completed = report.completed,
            failed = report.failed,
            running = report.still_running,
            stuck = report.stuck,
            stale_claims = report.stale_claims,
            adopted = report.adopted,
            uncertain = report.uncertain,
            released = report.released,
            errors = report.errors.len(),
            out_of_budget = report.out_of_budget,
            wrapped = report.wrapped,
            waiting = report.waiting,
            dispatched = report.dispatched,
            requeued = report.requeued,
            gave_up = report.gave_up,
            job_polls = report.job_polls,
            list_calls = report.list_calls,
            deferred = report.deferred,
            dynamodb_reads = report.dynamodb_reads,
            dynamodb_writes = report.dynamodb_writes,
            batches_closed = report.batches_closed,
            batches_expired = report.batches_expired,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tracker run"
        );
        report
    }

    async fn poll(&self, report: &mut TrackReport, started: Instant) {
        let after = self.cursor.lock().await.clone();
        let limit = self.settings.max_executions.max(1);
        let filter = ListFilter {
            status: Some(ExecutionStatus::Submitted),
            limit: Some(limit),
            oldest_first: true,
            after,
            ..ListFilter::default()
        };
        let pending = match self.executions.list(&filter).await {
            Ok(p) => p,
            Err(e) => {
                report
                    .errors
                    .push(format!("listing SUBMITTED executions: {}", error_chain(&e)));
                return;
            }
        };
        let reached_newest = pending.len() < limit;
        let keys: Vec<(i64, String)> = pending
            .iter()
            .map(|r| (r.created_at, r.id.clone()))
            .collect();
        let budget = self.poll_budget();
        let listings = self.list_workflows(&pending, report).await;
        let listings = &listings;
        // In order, so the cursor can move to the last execution checked.
        let results: Vec<Option<(bool, Checked)>> = futures::stream::iter(pending)
            .map(|record| async move {
                if started.elapsed() >= budget {
                    return None;
                }
                Some(match self.plan(&record, listings) {
                    Plan::Poll => (true, self.check(record).await),
                    Plan::Listed(job) => {
                        self.polled(&record.id);
                        (false, self.running(record, &job).await)
                    }
                    Plan::Defer => (false, Checked::Deferred),
                })
            })
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut last_checked = None;
        for (i, result) in results.into_iter().enumerate() {
            match result {
                None => report.out_of_budget = true,
                Some((polled, c)) => {
                    if !report.out_of_budget {
                        last_checked = Some(i);
                    }
                    report.checked += 1;
                    report.job_polls += usize::from(polled);
                    match c {
                        Checked::Completed(job) => {
                            report.completed += 1;
                            report.finished.push(job);
                        }
                        Checked::Failed(job) => {
                            report.failed += 1;
                            report.finished.push(job);
                        }
                        Checked::Running => report.still_running += 1,
                        Checked::Stuck => report.stuck += 1,
                        Checked::Error(e) => report.errors.push(e),
                        Checked::Deferred => report.deferred += 1,
                        Checked::Raced => {}
                    }
                }
            }
        }
        let mut cursor = self.cursor.lock().await;
        if reached_newest && !report.out_of_budget {
            report.wrapped = true;
            *cursor = None;
            // Forget jobs not seen for long (ended, or taken by another tracker): at worst
            // one of them is polled once more.
            let keep = self.settings.poll_max_interval * 2;
            self.last_polled_map().retain(|_, at| at.elapsed() < keep);
        } else if let Some(i) = last_checked {
            *cursor = Some(keys[i].clone());
        }
    }

    fn last_polled_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic elsewhere while holding it leaves nothing half-written: keep using it.
        self.last_polled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn polled(&self, execution_id: &str) {
        self.last_polled_map()
            .insert(execution_id.to_string(), Instant::now());
    }

    /// Ask each workflow (per secret) with at least `list_from_jobs` executions in `pending`
    /// for the jobs created since its oldest one's submission (less the clock-skew
    /// allowance). A list that fails is reported and its jobs are polled one by one.
    async fn list_workflows(
        &self,
        pending: &[Execution],
        report: &mut TrackReport,
    ) -> HashMap<(Option<String>, String), Listing> {
        let mut workflows: HashMap<(Option<String>, String), (usize, i64)> = HashMap::new();
        for record in pending.iter().filter(|r| r.job_id.is_some()) {
            let submitted = record.submitted_at.unwrap_or(record.created_at);
            let entry = workflows
                .entry((record.secret_id.clone(), record.workflow.clone()))
                .or_insert((0, submitted));
            entry.0 += 1;
            entry.1 = entry.1.min(submitted);
        }
        let mut listings = HashMap::new();
        let skew = self.settings.reconcile.clock_skew.as_secs() as i64;
        for ((secret, workflow), (count, oldest)) in workflows {
            if count < self.settings.list_from_jobs.max(1) {
                continue;
            }
            let Ok(since) = time::OffsetDateTime::from_unix_timestamp(oldest - skew) else {
                continue;
            };
            // At most 10 listed jobs per job of ours (a page per 10 jobs): an old job among
            // them must not make every pass page through days of history; jobs past the
            // cut are polled one by one, with the back-off.
            let max = self
                .settings
                .list_max_jobs
                .min(count.saturating_mul(10))
                .max(100);
            let listed = self
                .alteryx
                .with_client(secret.as_deref(), |client| {
                    let workflow = workflow.clone();
                    async move { client.jobs_created_since(&workflow, since, max).await }
                })
                .await;
            match listed {
                Ok(listed) => {
                    report.list_calls += listed.pages;
                    let jobs = listed
                        .jobs
                        .into_iter()
                        .map(|job| (job.id.clone(), job))
                        .collect();
                    listings.insert(
                        (secret, workflow),
                        Listing {
                            jobs,
                            complete: listed.complete,
                        },
                    );
                }
                Err(e) => {
                    // Not a tracker error: its jobs are polled one by one (with the back-off).
                    report.list_calls += 1;
                    report.list_failures += 1;
                    tracing::warn!(%workflow, jobs = count, error = %error_chain(&e),
                        "listing a workflow's jobs failed; polling them one by one");
                }
            }
        }
        listings
    }

    fn plan(
        &self,
        record: &Execution,
        listings: &HashMap<(Option<String>, String), Listing>,
    ) -> Plan {
        let Some(job_id) = &record.job_id else {
            return Plan::Poll;
        };
        if let Some(listing) = listings.get(&(record.secret_id.clone(), record.workflow.clone())) {
            match listing.jobs.get(job_id) {
                Some(job) if unfinished(job) => return Plan::Listed(job.clone()),
                // Finished (its messages and outputs are read), or not where a complete
                // list should show it (Alteryx may no longer know it).
                Some(_) => return Plan::Poll,
                None if listing.complete => return Plan::Poll,
                None => {}
            }
        }
        let age = Duration::from_secs(
            (now_unix() - record.submitted_at.unwrap_or(record.created_at)).max(0) as u64,
        );
        let interval = poll_interval(
            age,
            self.settings.poll_every_pass_for,
            self.settings.poll_max_interval,
        );
        let due = interval.is_zero()
            || self
                .last_polled_map()
                .get(&record.id)
                .is_none_or(|at| at.elapsed() >= interval);
        if due { Plan::Poll } else { Plan::Defer }
    }

    async fn check(&self, mut record: Execution) -> Checked {
        self.polled(&record.id);
        let Some(job_id) = record.job_id.clone() else {
            return Checked::Error(format!(
                "execution {} is SUBMITTED without a job id",
                record.id
            ));
        };
        let result = self
            .alteryx
            .with_client(record.secret_id.as_deref(), |client| {
                let job_id = job_id.clone();
                async move { client.get_job(&job_id).await }
            })
            .await;
        let job = match result {
            Ok(job) => job,
            Err(PoolError::Alteryx(AlteryxError::Api {
                status: 404,
                message,
                ..
            })) => {
                // Alteryx's own JSON answer that it does not know the job (purged, or another
                // server): nothing will ever complete it, so close the record and say why. A
                // 404 page from a proxy is not this (it is `InvalidResponse`, transient).
                record.status = ExecutionStatus::Failed;
                record.message = Some(format!("Alteryx no longer knows job {job_id}: {message}"));
                record.finished_at = Some(now_unix());
                return self.finish(record, None).await;
            }
            Err(e) => {
                return Checked::Error(format!(
                    "execution {} job {job_id}: {}",
                    record.id,
                    error_chain(&e)
                ));
            }
        };
        if job.is_finished() {
            record.disposition = job.disposition.clone();
            record.finished_at = Some(now_unix());
            let report = JobReport::of(&job);
            if job.succeeded() {
                record.status = ExecutionStatus::Completed;
                record.message = None;
            } else {
                record.status = ExecutionStatus::Failed;
                record.message = Some(report.summary());
            }
            record.job_report = Some(report);
            return self.finish(record, Some(&job)).await;
        }
        self.running(record, &job).await
    }

    /// A job still queued or running: flag it as stuck (once) past `stuck_after`.
    async fn running(&self, mut record: Execution, job: &Job) -> Checked {
        let job_id = record.job_id.clone().unwrap_or_else(|| job.id.clone());
        let age = Duration::from_secs(
            (now_unix() - record.submitted_at.unwrap_or(record.created_at)).max(0) as u64,
        );
        let already_flagged = record.stuck_at.is_some()
            || record
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with(LEGACY_STUCK_PREFIX));
        if age < self.settings.stuck_after || already_flagged {
            return Checked::Running;
        }
        record.stuck_at = Some(now_unix());
        record.message = Some(format!(
            "job {job_id} still {} after {} minutes",
            job.status,
            age.as_secs() / 60
        ));
        match self
            .executions
            .update(&record, ExecutionStatus::Submitted)
            .await
        {
            Ok(()) => {}
            Err(ExecutionError::Conflict { .. }) => return Checked::Raced,
            Err(e) => {
                return Checked::Error(format!("execution {}: {}", record.id, error_chain(&e)));
            }
        }
        self.publish(NoticeKind::Stuck, &record, Some(job)).await;
        Checked::Stuck
    }

    async fn finish(&self, record: Execution, job: Option<&Job>) -> Checked {
        match self
            .executions
            .update(&record, ExecutionStatus::Submitted)
            .await
        {
            Ok(()) => {}
            Err(ExecutionError::Conflict { .. }) => return Checked::Raced,
            Err(e) => {
                return Checked::Error(format!("execution {}: {}", record.id, error_chain(&e)));
            }
        }
        let finished = FinishedJob {
            rule_id: record.rule_id.clone(),
            execution_id: record.id.clone(),
            status: record.status,
            duration_seconds: record
                .finished_at
                .zip(record.submitted_at)
                .map(|(end, start)| (end - start).max(0) as u64),
        };
        if record.status == ExecutionStatus::Completed {
            return Checked::Completed(finished);
        }
        self.publish(NoticeKind::Failed, &record, job).await;
        Checked::Failed(finished)
    }

    async fn publish(&self, kind: NoticeKind, record: &Execution, job: Option<&Job>) {
        let notice = FailureNotice::with_job(kind, record, job);
        crate::notify::publish(self.notifier.as_ref(), &notice).await;
    }

    /// Find stale claims, count them, and repair as many as the pass allows.
    async fn sweep(&self, report: &mut TrackReport, deadline: &Deadline) {
        let now = now_unix();
        let stale_after = self.settings.stale_after.as_secs() as i64;
        let mut stale = Vec::new();
        for status in [ExecutionStatus::Submitting, ExecutionStatus::Claimed] {
            let filter = ListFilter {
                status: Some(status),
                oldest_first: true,
                limit: Some(1000),
                ..ListFilter::default()
            };
            match self.executions.list(&filter).await {
                Ok(list) => stale.extend(list.into_iter().filter(|r| match r.lease_state(now) {
                    Some(LeaseState::Expired(until)) => until + stale_after < now,
                    Some(LeaseState::Released) => r.updated_at + stale_after < now,
                    _ => false,
                })),
                Err(e) => report
                    .errors
                    .push(format!("listing {status} executions: {}", error_chain(&e))),
            }
        }
        report.stale_claims = stale.len();
        for record in stale.into_iter().take(self.settings.max_stale) {
            if deadline.left() < Duration::from_secs(2) {
                report.out_of_budget = true;
                break;
            }
            if let Err(e) = self.repair(record, report, deadline).await {
                report.errors.push(e);
            }
        }
    }

    /// Take a stale claim over and settle it.
    async fn repair(
        &self,
        stale: Execution,
        report: &mut TrackReport,
        deadline: &Deadline,
    ) -> Result<(), String> {
        let claimant = Claimant::new(deadline.lease_until(self.settings.claim_lease_margin));
        let claimed = match self
            .executions
            .claim_retry(&stale.id, &claimant, Takeover::Stale)
            .await
        {
            Ok(c) => c,
            // Taken over meanwhile, or its earlier request is still settling: not stale now.
            Err(ExecutionError::NotRetryable { .. } | ExecutionError::Conflict { .. }) => {
                return Ok(());
            }
            Err(e) => return Err(format!("taking over {}: {}", stale.id, error_chain(&e))),
        };
        let recorder = Recorder::new(Arc::clone(&self.executions), Arc::clone(&self.notifier));
        let claimed_at = format_unix(stale.lease_until.unwrap_or(stale.updated_at));
        let mut record = if claimed.must_reconcile() {
            let reconciler = Reconciler::new(
                recorder.clone(),
                Arc::clone(&self.alteryx),
                self.settings.reconcile.clone(),
            );
            match reconciler
                .settle(claimed, deadline, deadline.instant())
                .await
            {
                Settled::Submit(record) => record,
                Settled::Done { recorded, .. } => {
                    if let Some(e) = recorded.error {
                        return Err(format!("recording {}: {}", stale.id, error_chain(&e)));
                    }
                    match recorded.record.status {
                        ExecutionStatus::Submitted => report.adopted += 1,
                        ExecutionStatus::Uncertain => report.uncertain += 1,
                        _ => {}
                    }
                    return Ok(());
                }
            }
        } else {
            claimed
        };
        if record.batch_id.as_deref() == Some(record.id.as_str()) {
            return self
                .requeue_stale_batch(record, &stale, &claimed_at, report, deadline)
                .await;
        }
        // Nothing reached Alteryx: leave it for a redelivery or a person, and say so.
        record.status = ExecutionStatus::Error;
        record.retryable = true;
        record.lease_until = None;
        record.message = Some(format!(
            "the invocation that claimed attempt {} ended without an outcome (killed or timed out; lease ran out {claimed_at}), and nothing reached Alteryx; a redelivery, `executions drain-dlq` or `executions retry` runs it",
            stale.attempt
        ));
        let recorded = recorder
            .write(record, ExecutionStatus::Claimed, deadline)
            .await;
        if let Some(e) = recorded.error {
            return Err(format!("recording {}: {}", stale.id, error_chain(&e)));
        }
        report.released += 1;
        self.publish(NoticeKind::Stale, &recorded.record, None)
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_slow_down_with_age_to_the_cap() {
        let (fast, max) = (Duration::from_secs(300), Duration::from_secs(900));
        let at = |minutes: u64| poll_interval(Duration::from_secs(minutes * 60), fast, max);
        assert_eq!(at(0), Duration::ZERO);
        assert_eq!(at(4), Duration::ZERO);
        assert_eq!(at(5), Duration::from_secs(60));
        assert_eq!(at(9), Duration::from_secs(60));
        assert_eq!(at(10), Duration::from_secs(120));
        assert_eq!(at(20), Duration::from_secs(240));
        assert_eq!(at(40), Duration::from_secs(480));
        assert_eq!(at(80), max);
        assert_eq!(at(60 * 24 * 365), max);
    }
}
