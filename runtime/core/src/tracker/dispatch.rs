//! The tracker's dispatch of the waiting line: `WAITING` executions, oldest first, while
//! their concurrency group has free slots and their `next_attempt_at` passed, each through
//! the router's claim → intent → submit → record path ([`Router::dispatch`]); executions
//! that waited past their give-up age end `ERROR` with a notice. Every pass reads the head of
//! the line and, when the line is longer, a window that moves on from pass to pass (a
//! cursor), so a group whose line is long never hides another's executions behind it.
//!
//! It also keeps each group's line mark true ([`crate::executions::line`]): removed when a
//! pass saw the whole line and none of the group's executions is left in it, set again when
//! the pass saw some waiting without it.
//!
//! [`Router::dispatch`]: crate::router::Router::dispatch

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{NoticeKind, TrackReport, Tracker, record_reason};
use crate::error_chain;
use crate::executions::submit::{Deadline, Recorder};
use crate::executions::{
    Execution, ExecutionError, ExecutionStatus, GroupUsage, ListFilter, WaitReason, format_unix,
    now_unix, now_unix_ms,
};

impl Tracker {
    /// The head of the waiting line and, when it is longer than a scan, the window behind it
    /// where the last pass's stopped (wrapping to the head at the end); and whether that is
    /// the whole line.
    async fn waiting_line(&self, report: &mut TrackReport) -> (Vec<Execution>, bool) {
        let scan = self.settings.dispatch_scan.max(1);
        let listing = |after: Option<(i64, String)>| ListFilter {
            status: Some(ExecutionStatus::Waiting),
            oldest_first: true,
            limit: Some(scan),
            after,
            ..ListFilter::default()
        };
        let mut line = match self.executions.list(&listing(None)).await {
            Ok(head) => head,
            Err(e) => {
                report
                    .errors
                    .push(format!("listing WAITING executions: {}", error_chain(&e)));
                return (Vec::new(), false);
            }
        };
        if line.len() < scan {
            return (line, true);
        }
        let mut cursor = self.waiting_cursor.lock().await;
        let from = match cursor.clone() {
            Some(c)
                if line
                    .last()
                    .is_some_and(|r| (r.created_at, &r.id) < (c.0, &c.1)) =>
            {
                c
            }
            // The window starts behind the head.
            _ => line
                .last()
                .map(|r| (r.created_at, r.id.clone()))
                .unwrap_or_default(),
        };
        match self.executions.list(&listing(Some(from))).await {
            Ok(window) => {
                *cursor = match window.last() {
                    Some(last) if window.len() == scan => Some((last.created_at, last.id.clone())),
                    _ => None,
                };
                line.extend(window);
            }
            Err(e) => report
                .errors
                .push(format!("listing WAITING executions: {}", error_chain(&e))),
        }
        (line, false)
    }

    /// Submit waiting executions, oldest first, while their groups have free slots; then
    /// keep the groups' line marks true.
    pub(super) async fn dispatch(&self, report: &mut TrackReport, deadline: &Deadline) {
        let Some(router) = &self.router else {
            return;
        };
        // Before the line is read: a mark set after this may belong to an execution the read
        // did not see, and must stay.
        let read_at = now_unix_ms();
        let (line, whole_line) = self.waiting_line(report).await;
        report.waiting = line.len();
        let marked: Vec<String> = self.marked_groups();
        if line.is_empty() && marked.is_empty() {
            return;
        }
        let mut groups: Vec<String> = line.iter().filter_map(|r| r.group.clone()).collect();
        groups.extend(marked);
        groups.sort();
        groups.dedup();
        let usage = match self.executions.group_usage(&groups).await {
            Ok(usage) => usage,
            Err(e) => {
                report
                    .errors
                    .push(format!("reading concurrency groups: {}", error_chain(&e)));
                return;
            }
        };
        let mut left: HashSet<String> = HashSet::new();
        if !line.is_empty() {
            match router.rules().rule_set().await {
                Ok(rule_set) => {
                    left = self
                        .dispatch_line(line, &rule_set, &usage, report, deadline)
                        .await
                }
                Err(e) => {
                    report.errors.push(format!(
                        "loading rules to dispatch the waiting line: {}",
                        error_chain(&e)
                    ));
                    return;
                }
            }
        }
        self.keep_line_marks(&usage, &left, whole_line, read_at, report)
            .await;
    }

    /// The dispatch proper; returns the groups with executions still in the line.
    async fn dispatch_line(
        &self,
        line: Vec<Execution>,
        rule_set: &crate::rules::RuleSet,
        usage: &HashMap<String, GroupUsage>,
        report: &mut TrackReport,
        deadline: &Deadline,
    ) -> HashSet<String> {
        let Some(router) = &self.router else {
            return HashSet::new();
        };
        // Slots taken per group, as of now; counted up as this pass takes them.
        let mut taken: HashMap<String, i64> =
            usage.iter().map(|(g, u)| (g.clone(), u.running)).collect();
        // Executions left in the line after this pass, per group (not dispatched, or not
        // known to be).
        let mut left: HashMap<String, usize> = HashMap::new();
        let count_in = |left: &mut HashMap<String, usize>, record: &Execution, n: isize| {
            if let Some(group) = &record.group {
                let count = left.entry(group.clone()).or_default();
                *count = count.saturating_add_signed(n);
            }
        };
        // A closed batch waiting for its first dispatch never gives up (it is dispatched at
        // once, and waits for a slot or for Alteryx under those reasons afterwards).
        let give_up = |reason: Option<WaitReason>| match reason {
            Some(WaitReason::Cap) => Some(self.settings.cap_give_up.as_secs() as i64),
            Some(WaitReason::Outage | WaitReason::Deadline | WaitReason::Stale) => {
                Some(self.settings.waiting_give_up.as_secs() as i64)
            }
            Some(WaitReason::Batch) | None => None,
        };
        // Servers (by secret) found unavailable in this pass: their other waiting executions
        // wait for the next pass instead of each meeting the outage again.
        let mut unavailable: HashSet<Option<String>> = Default::default();
        let mut rest = line.into_iter();
        while let Some(record) = rest.next() {
            if deadline.left() < router.time_to_start() {
                report.out_of_budget = true;
                count_in(&mut left, &record, 1);
                rest.for_each(|r| count_in(&mut left, &r, 1));
                break;
            }
            let now = now_unix();
            // Give-ups go on past `max_dispatch`: they send nothing to Alteryx.
            if record
                .waiting_since
                .zip(give_up(record.wait_reason))
                .is_some_and(|(since, age)| since + age < now)
            {
                match self.give_up(record, deadline).await {
                    Ok(()) => report.gave_up += 1,
                    Err(e) => report.errors.push(e),
                }
                continue;
            }
            // Whatever happens next, unless the dispatch takes it out it is still in the line.
            count_in(&mut left, &record, 1);
            if report.dispatched >= self.settings.max_dispatch {
                report.out_of_budget = true;
                continue;
            }
            if record.next_attempt_at.is_some_and(|at| at > now)
                || unavailable.contains(&record.secret_id)
            {
                continue;
            }
            // The cap as the rule says now (a rule that is gone ends in the dispatch itself).
            let cap = rule_set.get(&record.rule_id).and_then(|r| r.rule.cap());
            if let Some(cap) = &cap
                && taken.get(&cap.group).copied().unwrap_or(0) >= i64::from(cap.max_concurrent_jobs)
            {
                continue;
            }
            let dispatched = router.dispatch(&record.id, *deadline).await;
            if dispatched
                .as_ref()
                .is_ok_and(|o| o.status != ExecutionStatus::Waiting)
            {
                count_in(&mut left, &record, -1);
            }
            match dispatched {
                Ok(outcome) => match outcome.status {
                    ExecutionStatus::Submitted => {
                        report.dispatched += 1;
                        if let Some(cap) = &cap {
                            *taken.entry(cap.group.clone()).or_default() += 1;
                        }
                    }
                    ExecutionStatus::Waiting => {
                        report.requeued += 1;
                        match (outcome.wait_reason, &cap) {
                            (Some(WaitReason::Cap), Some(cap)) => {
                                taken.insert(cap.group.clone(), i64::from(cap.max_concurrent_jobs));
                            }
                            (Some(WaitReason::Outage), _) => {
                                unavailable.insert(record.secret_id.clone());
                            }
                            _ => {}
                        }
                    }
                    status => report.errors.push(format!(
                        "dispatching {}: {status}: {}",
                        record.id,
                        outcome.message.unwrap_or_default()
                    )),
                },
                // Another dispatcher, or an operator's cancel, changed it first.
                Err(crate::router::RouterError::Execution(
                    ExecutionError::NotRetryable { .. } | ExecutionError::Conflict { .. },
                )) => {}
                Err(e) => {
                    report
                        .errors
                        .push(format!("dispatching {}: {}", record.id, error_chain(&e)))
                }
            }
        }
        left.into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(g, _)| g)
            .collect()
    }

    /// Remove the marks of groups this pass saw no execution of left in the whole line (set
    /// long enough before the line was read), and mark the groups it left executions of.
    async fn keep_line_marks(
        &self,
        usage: &HashMap<String, GroupUsage>,
        left: &HashSet<String>,
        whole_line: bool,
        read_at: i64,
        report: &mut TrackReport,
    ) {
        let before = read_at - self.settings.line_clear_after.as_millis() as i64;
        for group in left {
            if usage.get(group).is_some_and(|u| u.line_at.is_some()) {
                self.remember_mark(group, true);
                continue;
            }
            match self.executions.mark_line(group).await {
                Ok(()) => {
                    tracing::info!(%group, "marked the line of a group whose executions waited unmarked");
                    self.remember_mark(group, true);
                }
                Err(e) => report.errors.push(format!(
                    "marking the line of group {group}: {}",
                    error_chain(&e)
                )),
            }
        }
        for (group, u) in usage {
            let Some(line_at) = u.line_at else {
                self.remember_mark(group, false);
                continue;
            };
            // Part of the line unread, executions left, or too recent to tell: a later pass
            // looks again.
            if !whole_line || left.contains(group) || line_at >= before {
                self.remember_mark(group, true);
                continue;
            }
            match self.executions.clear_line(group, before).await {
                Ok(cleared) => {
                    tracing::debug!(%group, cleared, "the group's line is empty");
                    self.remember_mark(group, !cleared);
                }
                Err(e) => report.errors.push(format!(
                    "removing the line mark of group {group}: {}",
                    error_chain(&e)
                )),
            }
        }
    }

    fn marked_groups(&self) -> Vec<String> {
        self.line_marks
            .lock()
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn remember_mark(&self, group: &str, marked: bool) {
        if let Ok(mut marks) = self.line_marks.lock() {
            if marked {
                marks.insert(group.to_string());
            } else {
                marks.remove(group);
            }
        }
    }

    /// End an execution that waited past its give-up age (`waiting_give_up` for Alteryx,
    /// `cap_give_up` for a slot): `ERROR` (retryable by hand), with a `failed` notice.
    async fn give_up(&self, mut record: Execution, deadline: &Deadline) -> Result<(), String> {
        let since = record.waiting_since.unwrap_or(record.created_at);
        let (what, setting, age) = match record.wait_reason {
            Some(WaitReason::Cap) => (
                format!(
                    "a free slot of concurrency group {}",
                    record.group.as_deref().unwrap_or("?")
                ),
                "WAITING_CAP_GIVE_UP_SECONDS",
                self.settings.cap_give_up,
            ),
            _ => (
                "Alteryx to take it".to_string(),
                "WAITING_GIVE_UP_SECONDS",
                self.settings.waiting_give_up,
            ),
        };
        record.status = ExecutionStatus::Error;
        record.retryable = true;
        record.finished_at = Some(now_unix());
        record.next_attempt_at = None;
        record.message = Some(format!(
            "gave up after waiting since {} ({setting} {}) for {what}: {}; `executions retry` runs it",
            format_unix(since),
            age.as_secs(),
            record.message.as_deref().unwrap_or("unavailable")
        ));
        let recorder = Recorder::new(Arc::clone(&self.executions), Arc::clone(&self.notifier));
        let recorded = recorder
            .write(record, ExecutionStatus::Waiting, deadline)
            .await;
        match recorded.error {
            // Dispatched or cancelled meanwhile: not ours to end.
            Some(ExecutionError::Conflict { .. }) => Ok(()),
            Some(e) => Err(format!(
                "giving up on {}: {}",
                recorded.record.id,
                error_chain(&e)
            )),
            None => {
                tracing::warn!(execution = %recorded.record.id, waited_ms = now_unix_ms() - since * 1000,
                    reason = record_reason(&recorded.record), "gave up waiting");
                self.publish(NoticeKind::Failed, &recorded.record, None)
                    .await;
                Ok(())
            }
        }
    }
}
