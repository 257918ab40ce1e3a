//! The waiting line as operators see it: where each `WAITING` execution stands in its group's
//! line ([`places`]), what each concurrency group is doing ([`group_status`]: cap, slots
//! taken, executions waiting, the oldest wait), and taking a waiting execution out
//! ([`cancel`]); and the line's mark, which keeps it fair during a burst.
//!
//! **The line mark.** A slot freed while executions wait belongs to the oldest of them, not
//! to whichever upload arrives next. So a group's counter item carries `line_at` while its
//! line is not empty: an execution that goes `WAITING` for a slot sets it (unless it was set
//! less than [`LINE_MARK_REFRESH`] ago), and an arrival's intent ([`super::LinePlace`])
//! takes a slot only while it is absent — an arrival that finds it joins the line's end.
//! Executions dispatched from the line ignore it. The tracker removes it when a pass saw the
//! whole line without any execution of the group left in it, and only if it was last set
//! more than [`LINE_CLEAR_AFTER`] before the pass read the line, so an execution that joined
//! while the pass read (or that the status index did not show yet) keeps it; and it sets it
//! again for a group whose executions it saw waiting without it (a router killed between its
//! `WAITING` write and the mark). Either slip costs fairness for at most one pass, never the
//! cap.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::{
    Execution, ExecutionError, ExecutionStatus, ExecutionStore, ListFilter, WaitReason, now_unix,
};

/// The group name used for waiting executions of uncapped rules (they wait for Alteryx only).
pub const NO_GROUP: &str = "(no cap)";

/// An execution that joins the line sets the mark again when it is older than this (so a
/// burst writes it about once per this interval, not once per upload).
pub const LINE_MARK_REFRESH: Duration = Duration::from_secs(5);

/// The tracker removes a mark only when it was last set this long before the pass read the
/// line: longer than [`LINE_MARK_REFRESH`] plus the status index's lag.
pub const LINE_CLEAR_AFTER: Duration = Duration::from_secs(15);

/// Whether an execution that just joined `group`'s line should (re)set the mark last set at
/// `line_at` (Unix ms), at `now_ms`.
pub fn mark_is_due(line_at: Option<i64>, now_ms: i64) -> bool {
    line_at.is_none_or(|at| now_ms - at >= LINE_MARK_REFRESH.as_millis() as i64)
}

/// One concurrency group, now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub group: String,
    /// The cap the rules give it (absent for [`NO_GROUP`], or a group no rule names any more).
    pub cap: Option<u32>,
    /// Slots taken: jobs queued or running at Alteryx, or about to be.
    pub running: i64,
    /// Executions in its line.
    pub waiting: usize,
    /// Of those, the ones waiting for Alteryx (an outage) rather than for a slot.
    pub waiting_for_alteryx: usize,
    /// Unix seconds: since when the longest-waiting one waits.
    pub oldest_waiting_since: Option<i64>,
    /// Unix seconds: the earliest next attempt of an execution waiting for Alteryx.
    pub next_attempt_at: Option<i64>,
    /// Unix milliseconds: the group's line mark (new uploads join the line even with a slot
    /// free), absent while the line is unmarked.
    pub line_at: Option<i64>,
}

/// Each execution's place in its group's line (1 for the head), for a list in line order
/// (oldest first) that starts at the head.
pub fn places(line: &[Execution]) -> HashMap<String, usize> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    line.iter()
        .filter(|e| e.status == ExecutionStatus::Waiting)
        .map(|e| {
            let n = counts
                .entry(e.group.as_deref().unwrap_or(NO_GROUP))
                .or_default();
            *n += 1;
            (e.id.clone(), *n)
        })
        .collect()
}

/// Every group the rules cap (`caps`: group → cap) or that has executions waiting, with its
/// counter and line.
pub async fn group_status(
    store: &dyn ExecutionStore,
    caps: &BTreeMap<String, u32>,
) -> Result<Vec<GroupStatus>, ExecutionError> {
    let line = store
        .list(&ListFilter {
            status: Some(ExecutionStatus::Waiting),
            oldest_first: true,
            ..ListFilter::default()
        })
        .await?;
    let mut groups: BTreeMap<String, GroupStatus> = caps
        .iter()
        .map(|(group, cap)| (group.clone(), empty(group, Some(*cap))))
        .collect();
    for e in &line {
        let name = e.group.clone().unwrap_or_else(|| NO_GROUP.to_string());
        let g = groups
            .entry(name.clone())
            .or_insert_with(|| empty(&name, None));
        g.waiting += 1;
        let since = e.waiting_since.unwrap_or(e.created_at);
        g.oldest_waiting_since = Some(g.oldest_waiting_since.map_or(since, |o| o.min(since)));
        if e.wait_reason == Some(WaitReason::Outage) {
            g.waiting_for_alteryx += 1;
            if let Some(at) = e.next_attempt_at {
                g.next_attempt_at = Some(g.next_attempt_at.map_or(at, |n| n.min(at)));
            }
        }
    }
    let names: Vec<String> = groups.keys().filter(|g| *g != NO_GROUP).cloned().collect();
    for (name, usage) in store.group_usage(&names).await? {
        if let Some(g) = groups.get_mut(&name) {
            g.running = usage.running;
            g.cap = g.cap.or(usage.cap);
            g.line_at = usage.line_at;
        }
    }
    Ok(groups.into_values().collect())
}

fn empty(group: &str, cap: Option<u32>) -> GroupStatus {
    GroupStatus {
        group: group.to_string(),
        cap,
        running: 0,
        waiting: 0,
        waiting_for_alteryx: 0,
        oldest_waiting_since: None,
        next_attempt_at: None,
        line_at: None,
    }
}

/// Why [`cancel`] did not cancel.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("execution {0} not found")]
    NotFound(String),
    #[error("execution {id} is {status}; only WAITING executions can be cancelled")]
    NotWaiting { id: String, status: ExecutionStatus },
    #[error(transparent)]
    Store(#[from] ExecutionError),
}

/// Take the `WAITING` execution `id` out of the line: `CANCELLED`, conditional on the record
/// still being the waiting one read (a dispatch that took it first wins, and this is refused
/// as a conflict). A waiting execution holds no slot, so nothing is given back.
pub async fn cancel(store: &dyn ExecutionStore, id: &str) -> Result<Execution, CancelError> {
    let mut record = store
        .get(id)
        .await?
        .ok_or_else(|| CancelError::NotFound(id.to_string()))?;
    if record.status != ExecutionStatus::Waiting {
        return Err(CancelError::NotWaiting {
            id: record.id,
            status: record.status,
        });
    }
    record.status = ExecutionStatus::Cancelled;
    record.finished_at = Some(now_unix());
    record.next_attempt_at = None;
    record.message = Some(format!(
        "cancelled by an operator while waiting ({})",
        record.wait_reason.map_or("", |r| r.as_str())
    ));
    store.update(&record, ExecutionStatus::Waiting).await?;
    Ok(record)
}
