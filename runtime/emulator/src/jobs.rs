//! Jobs and the simulated worker pool. A job waits Queued until a worker slot is free (highest
//! priority first, then arrival order), runs for its workflow's run time, then ends Completed
//! with the workflow's outcome; a cancelled job ends at once. Without a slot limit every job
//! runs as soon as it has been queued for a tenth of its run time.
//!
//! The schedule is computed, not timed: every read first calls [`Jobs::advance`] with the
//! current `Instant`, which replays the starts and ends that happened since the last call in
//! time order (so the statistics see the true peaks). Tests drive it with made-up instants.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::JobOutcome;

/// Which API version queued the job (it decides field names in answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    V1,
    V3,
}

impl Api {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Api::V1 => "v1",
            Api::V3 => "v3",
        }
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued,
    Running,
    Done,
}

/// What a valid job request asked for.
#[derive(Clone, Debug, Default)]
pub(crate) struct NewJob {
    pub workflow_id: String,
    pub questions: Vec<(String, String)>,
    pub priority: Option<String>,
    pub worker_tag: Option<String>,
    pub credential_id: Option<String>,
    /// Request fields this API version does not apply (recorded so tests can see them).
    pub ignored_fields: Vec<String>,
    pub outcome: JobOutcome,
    pub run_time: Duration,
}

/// One job, as received and as scheduled.
#[derive(Debug)]
pub(crate) struct Job {
    pub seq: u64,
    pub id: String,
    pub api: Api,
    pub request: NewJob,
    /// Wall-clock arrival (UTC), for `createDate` and "jobs created since".
    pub created: OffsetDateTime,
    pub arrived: Instant,
    pub phase: Phase,
    pub started: Option<Instant>,
    /// When the run time is counted from: the start, or (without a slot limit) the arrival.
    run_origin: Option<Instant>,
    pub ended: Option<Instant>,
    pub cancelled: bool,
}

impl Job {
    /// When the job ends by itself, once running (`None`: a stuck job never does).
    fn natural_end(&self) -> Option<Instant> {
        match self.request.outcome {
            JobOutcome::Stuck => None,
            _ => self.run_origin.map(|o| o + self.request.run_time),
        }
    }

    /// Alteryx's `status` and `disposition`.
    pub(crate) fn status(&self) -> (&'static str, &'static str) {
        match self.phase {
            Phase::Queued => ("Queued", "None"),
            Phase::Running => ("Running", "None"),
            Phase::Done if self.cancelled => ("Completed", "Cancelled"),
            Phase::Done => ("Completed", self.request.outcome.disposition()),
        }
    }

    /// Unix milliseconds of an instant of this job, from its wall-clock arrival.
    pub(crate) fn unix_ms(&self, at: Instant) -> f64 {
        let arrived_ms = self.created.unix_timestamp_nanos() as f64 / 1e6;
        arrived_ms + at.saturating_duration_since(self.arrived).as_secs_f64() * 1e3
    }
}

/// How busy the server has been.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub jobs_received: u64,
    /// Jobs that reached Completed (any disposition, Cancelled included).
    pub jobs_completed: u64,
    pub jobs_queued: u64,
    pub jobs_running: u64,
    /// The most unfinished (Queued + Running) jobs held at once.
    pub max_unfinished: u64,
    /// The most Running jobs at once.
    pub max_running: u64,
}

/// The order in which waiting jobs start: the greatest key first.
type WaitKey = (Reverse<Instant>, u8, Reverse<u64>, usize);

/// All jobs and the worker pool.
pub(crate) struct Jobs {
    jobs: Vec<Job>,
    by_id: HashMap<String, usize>,
    slots: Option<usize>,
    /// Jobs not started yet (entries of cancelled jobs are skipped when met).
    waiting: BinaryHeap<WaitKey>,
    /// Natural ends of running jobs (entries that no longer match the job are skipped).
    ending: BinaryHeap<Reverse<(Instant, usize)>>,
    queued: usize,
    running: usize,
    /// Everything up to this instant has been scheduled.
    cursor: Instant,
    /// A fixed instant, the common "ready" time of waiting jobs in a pool.
    epoch: Instant,
    counts: JobCounts,
    next_seq: u64,
}

impl Jobs {
    pub(crate) fn new(slots: Option<usize>, now: Instant) -> Self {
        Self {
            jobs: Vec::new(),
            by_id: HashMap::new(),
            slots,
            waiting: BinaryHeap::new(),
            ending: BinaryHeap::new(),
            queued: 0,
            running: 0,
            cursor: now,
            epoch: now,
            counts: JobCounts::default(),
            next_seq: 1,
        }
    }

    /// Forget every job and the statistics (job ids keep counting, so an old id stays unknown).
    pub(crate) fn clear(&mut self, now: Instant) {
        let next_seq = self.next_seq;
        *self = Self::new(self.slots, now);
        self.next_seq = next_seq;
    }

    pub(crate) fn slots(&self) -> Option<usize> {
        self.slots
    }

    /// Change the number of worker slots from `now` on. Running jobs keep running.
    pub(crate) fn set_slots(&mut self, slots: Option<usize>, now: Instant) {
        self.advance(now);
        self.slots = slots;
        // The waiting order depends on the mode: rebuild it.
        let keys: Vec<usize> = self.waiting.drain().map(|k| k.3).collect();
        for i in keys {
            if self.jobs[i].phase == Phase::Queued {
                let key = self.wait_key(i);
                self.waiting.push(key);
            }
        }
        self.advance(now);
    }

    /// Queue a job that arrived at `now`; returns its index.
    pub(crate) fn submit(&mut self, api: Api, request: NewJob, now: Instant) -> usize {
        self.advance(now);
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = format!("{:024x}", (0x6a0b_0000_u128 << 64) | u128::from(seq));
        let index = self.jobs.len();
        self.jobs.push(Job {
            seq,
            id: id.clone(),
            api,
            request,
            created: OffsetDateTime::now_utc(),
            arrived: now,
            phase: Phase::Queued,
            started: None,
            run_origin: None,
            ended: None,
            cancelled: false,
        });
        self.by_id.insert(id, index);
        let key = self.wait_key(index);
        self.waiting.push(key);
        self.queued += 1;
        self.counts.jobs_received += 1;
        let unfinished = (self.queued + self.running) as u64;
        self.counts.max_unfinished = self.counts.max_unfinished.max(unfinished);
        self.advance(now);
        index
    }

    pub(crate) fn find(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn get(&self, index: usize) -> &Job {
        &self.jobs[index]
    }

    pub(crate) fn all(&self) -> &[Job] {
        &self.jobs
    }

    pub(crate) fn counts(&self) -> JobCounts {
        JobCounts {
            jobs_queued: self.queued as u64,
            jobs_running: self.running as u64,
            ..self.counts.clone()
        }
    }

    /// End a queued or running job now with disposition Cancelled. False if it had finished.
    pub(crate) fn cancel(&mut self, index: usize, now: Instant) -> bool {
        self.advance(now);
        match self.jobs[index].phase {
            Phase::Done => return false,
            Phase::Queued => self.queued -= 1,
            Phase::Running => self.running -= 1,
        }
        let job = &mut self.jobs[index];
        job.phase = Phase::Done;
        job.cancelled = true;
        job.ended = Some(now);
        self.counts.jobs_completed += 1;
        // A freed slot can start a waiting job at once.
        self.advance(now);
        true
    }

    /// Change how a job ends (a running job's end moves with it).
    pub(crate) fn set_outcome(&mut self, index: usize, outcome: JobOutcome, now: Instant) {
        self.advance(now);
        let job = &mut self.jobs[index];
        job.request.outcome = outcome;
        if job.phase == Phase::Running
            && let Some(end) = job.natural_end()
        {
            self.ending.push(Reverse((end.max(now), index)));
        }
        self.advance(now);
    }

    /// Replay the schedule up to `now`.
    pub(crate) fn advance(&mut self, now: Instant) {
        let now = now.max(self.cursor);
        while let Some(next) = self.next_waiting() {
            let free_at = if self.running < self.slots.unwrap_or(usize::MAX) {
                self.cursor
            } else {
                match self.next_end() {
                    Some(end) => end,
                    // Every slot is held by a job that never ends.
                    None => break,
                }
            };
            let at = self.cursor.max(self.ready_at(next)).max(free_at);
            if at > now {
                break;
            }
            self.retire_until(at);
            self.cursor = at;
            if self.running >= self.slots.unwrap_or(usize::MAX) {
                continue; // slots were reduced below the running count
            }
            self.waiting.pop();
            self.start(next, at);
        }
        self.retire_until(now);
        self.cursor = now;
    }

    fn wait_key(&self, index: usize) -> WaitKey {
        let job = &self.jobs[index];
        match self.slots {
            // No limit: jobs start in the order they become ready.
            None => (Reverse(self.ready_at(index)), 0, Reverse(job.seq), index),
            // A pool: highest priority first, then arrival order.
            Some(_) => (
                Reverse(self.epoch),
                priority_rank(job.request.priority.as_deref()),
                Reverse(job.seq),
                index,
            ),
        }
    }

    /// When a queued job may start at the earliest.
    fn ready_at(&self, index: usize) -> Instant {
        let job = &self.jobs[index];
        match self.slots {
            None => job.arrived + job.request.run_time / 10,
            Some(_) => job.arrived,
        }
    }

    fn next_waiting(&mut self) -> Option<usize> {
        while let Some(&(.., index)) = self.waiting.peek() {
            if self.jobs[index].phase == Phase::Queued {
                return Some(index);
            }
            self.waiting.pop();
        }
        None
    }

    fn next_end(&mut self) -> Option<Instant> {
        while let Some(&Reverse((end, index))) = self.ending.peek() {
            if self.is_current_end(end, index) {
                return Some(end);
            }
            self.ending.pop();
        }
        None
    }

    /// An `ending` entry still describes its job: it is running and will end (its run time
    /// and origin never change; only a stuck outcome or a cancellation can void the entry).
    fn is_current_end(&self, end: Instant, index: usize) -> bool {
        let job = &self.jobs[index];
        job.phase == Phase::Running && job.natural_end().is_some_and(|e| e <= end)
    }

    fn start(&mut self, index: usize, at: Instant) {
        let unlimited = self.slots.is_none();
        let job = &mut self.jobs[index];
        job.phase = Phase::Running;
        job.started = Some(at);
        job.run_origin = Some(if unlimited { job.arrived } else { at });
        if let Some(end) = job.natural_end() {
            self.ending.push(Reverse((end.max(at), index)));
        }
        self.queued -= 1;
        self.running += 1;
        self.counts.max_running = self.counts.max_running.max(self.running as u64);
    }

    fn retire_until(&mut self, at: Instant) {
        while let Some(&Reverse((end, index))) = self.ending.peek() {
            if end > at {
                break;
            }
            self.ending.pop();
            if self.is_current_end(end, index) {
                let job = &mut self.jobs[index];
                job.phase = Phase::Done;
                job.ended = Some(end);
                self.running -= 1;
                self.counts.jobs_completed += 1;
            }
        }
    }
}

/// Scheduling rank of a priority (v1 lower case, v3 capitalised): Critical first.
pub(crate) fn priority_rank(priority: Option<&str>) -> u8 {
    match priority.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => 3,
        Some("high") => 2,
        Some("medium") => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(priority: Option<&str>, seconds: u64, outcome: JobOutcome) -> NewJob {
        NewJob {
            workflow_id: "w".into(),
            priority: priority.map(String::from),
            outcome,
            run_time: Duration::from_secs(seconds),
            ..NewJob::default()
        }
    }

    fn phases(jobs: &Jobs) -> Vec<Phase> {
        jobs.all().iter().map(|j| j.phase).collect()
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn without_a_limit_a_job_is_queued_for_a_tenth_of_its_run_time() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(None, t0);
        jobs.submit(Api::V1, job(None, 10, JobOutcome::Success), t0);
        jobs.advance(t0 + Duration::from_millis(999));
        assert_eq!(phases(&jobs), [Phase::Queued]);
        jobs.advance(t0 + S);
        assert_eq!(phases(&jobs), [Phase::Running]);
        jobs.advance(t0 + 10 * S);
        assert_eq!(phases(&jobs), [Phase::Done]);
        assert_eq!(jobs.get(0).status(), ("Completed", "Success"));
        assert_eq!(jobs.get(0).ended, Some(t0 + 10 * S));
    }

    #[test]
    fn slots_hold_jobs_back_in_priority_then_arrival_order() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(Some(1), t0);
        jobs.submit(Api::V1, job(None, 2, JobOutcome::Success), t0); // runs 0..2
        jobs.submit(Api::V1, job(Some("low"), 2, JobOutcome::Success), t0 + S);
        jobs.submit(Api::V3, job(Some("High"), 2, JobOutcome::Error), t0 + S);
        jobs.submit(Api::V1, job(Some("high"), 2, JobOutcome::Success), t0 + S);
        assert_eq!(
            phases(&jobs),
            [Phase::Running, Phase::Queued, Phase::Queued, Phase::Queued]
        );
        // The advance jumps far ahead: the replay still starts each at its slot's release.
        jobs.advance(t0 + 100 * S);
        let started: Vec<_> = jobs.all().iter().map(|j| j.started).collect();
        assert_eq!(
            started,
            [
                Some(t0),
                Some(t0 + 6 * S),
                Some(t0 + 2 * S),
                Some(t0 + 4 * S)
            ],
            "high before low, and the earlier of two highs first"
        );
        assert_eq!(jobs.get(2).status(), ("Completed", "Error"));
        let c = jobs.counts();
        assert_eq!(
            (c.max_running, c.max_unfinished, c.jobs_completed),
            (1, 4, 4)
        );
    }

    #[test]
    fn peaks_count_jobs_that_overlap_in_time() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(Some(2), t0);
        for i in 0..5 {
            jobs.submit(Api::V1, job(None, 1, JobOutcome::Success), t0 + i * S / 5);
        }
        jobs.advance(t0 + 10 * S);
        let c = jobs.counts();
        assert_eq!(c.max_running, 2);
        assert_eq!(
            c.max_unfinished, 5,
            "all five were in before the first ended"
        );
        assert_eq!((c.jobs_queued, c.jobs_running, c.jobs_completed), (0, 0, 5));
    }

    #[test]
    fn a_stuck_job_holds_its_slot_until_cancelled() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(Some(1), t0);
        jobs.submit(Api::V1, job(None, 1, JobOutcome::Stuck), t0);
        jobs.submit(Api::V1, job(None, 1, JobOutcome::Success), t0);
        jobs.advance(t0 + 100 * S);
        assert_eq!(phases(&jobs), [Phase::Running, Phase::Queued]);
        assert!(jobs.cancel(0, t0 + 100 * S));
        assert_eq!(jobs.get(0).status(), ("Completed", "Cancelled"));
        assert_eq!(
            jobs.get(1).started,
            Some(t0 + 100 * S),
            "the freed slot is taken at once"
        );
        assert!(
            !jobs.cancel(0, t0 + 101 * S),
            "a finished job cannot be cancelled"
        );
    }

    #[test]
    fn a_cancelled_queued_job_never_starts() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(Some(1), t0);
        jobs.submit(Api::V1, job(None, 1, JobOutcome::Success), t0);
        jobs.submit(Api::V1, job(None, 1, JobOutcome::Success), t0);
        assert!(jobs.cancel(1, t0));
        jobs.advance(t0 + 5 * S);
        assert_eq!(jobs.get(1).started, None);
        assert_eq!(jobs.counts().jobs_completed, 2);
    }

    #[test]
    fn changing_the_outcome_moves_a_running_jobs_end() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(Some(1), t0);
        jobs.submit(Api::V1, job(None, 1, JobOutcome::Stuck), t0);
        jobs.advance(t0 + 5 * S);
        jobs.set_outcome(0, JobOutcome::Error, t0 + 5 * S);
        assert_eq!(jobs.get(0).status(), ("Completed", "Error"));
        jobs.submit(Api::V1, job(None, 3, JobOutcome::Success), t0 + 5 * S);
        jobs.set_outcome(1, JobOutcome::Stuck, t0 + 6 * S);
        jobs.advance(t0 + 60 * S);
        assert_eq!(
            jobs.get(1).phase,
            Phase::Running,
            "now stuck: it never ends"
        );
    }

    #[test]
    fn more_slots_start_waiting_jobs_fewer_let_running_ones_finish() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(Some(0), t0);
        for _ in 0..3 {
            jobs.submit(Api::V1, job(None, 2, JobOutcome::Success), t0);
        }
        jobs.advance(t0 + S);
        assert_eq!(jobs.counts().jobs_running, 0, "no worker");
        jobs.set_slots(Some(3), t0 + S);
        assert_eq!(jobs.counts().jobs_running, 3);
        jobs.set_slots(Some(1), t0 + S);
        jobs.advance(t0 + 2 * S);
        assert_eq!(
            jobs.counts().jobs_running,
            3,
            "running jobs are not stopped"
        );
        jobs.advance(t0 + 3 * S);
        assert_eq!(jobs.counts().jobs_completed, 3);
    }

    #[test]
    fn clearing_keeps_ids_unique() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(None, t0);
        let i = jobs.submit(Api::V1, job(None, 1, JobOutcome::Success), t0);
        let first = jobs.get(i).id.clone();
        jobs.clear(t0);
        assert_eq!(jobs.find(&first), None);
        let i = jobs.submit(Api::V1, job(None, 1, JobOutcome::Success), t0);
        let second = jobs.get(i).id.clone();
        assert_ne!(first, second);
        assert_eq!(second.len(), 24);
    }
}
