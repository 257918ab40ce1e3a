//! One conformance suite, run against both execution stores (SQLite and DynamoDB on moto):
//! claims and their tokens (a claimant recognises its own write), claims in progress,
//! duplicates, concurrent claims, lease takeover, takeovers that must reconcile, retryable
//! errors, optimistic and idempotent updates, job ownership, manual retries, the tracker's
//! and a person's takeovers, deliberate re-runs, listing with filters and a cursor;
//! concurrency groups' slots (acquired with the intent, released exactly once, never past the
//! cap under many concurrent acquirers) and the waiting line (dispatch, cancel).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use alteryx_router_core::executions::{
    Claim, Claimant, DynamoExecutionStore, Execution, ExecutionError, ExecutionStatus,
    ExecutionStore, LeaseState, LinePlace, ListFilter, SlotGrant, SqliteExecutionStore, Takeover,
    WaitReason, line, now_unix, now_unix_ms,
};

fn record(rule: &str, key: &str, created_at: i64) -> Execution {
    common::execution(rule, key, created_at)
}

const LEASE: Duration = Duration::from_secs(300);

/// `r` claimed by a new claimant with `lease`.
fn claimed(r: &Execution, lease: Duration) -> Execution {
    common::claimed_by(r.clone(), lease)
}

fn claimant() -> Claimant {
    Claimant::new(now_unix() + LEASE.as_secs() as i64)
}

async fn acquire(store: &dyn ExecutionStore, r: &Execution) -> Execution {
    match store.claim(claimed(r, LEASE)).await.unwrap() {
        Claim::Acquired(c) => c,
        other => panic!("expected a fresh claim of {}: {other:?}", r.key),
    }
}

async fn conformance(store: Arc<dyn ExecutionStore>, second: Arc<dyn ExecutionStore>) {
    let now = now_unix();
    // Fresh claim; another invocation's claim meets it live: in progress, not done.
    let r = record("rule-a", "k1.csv", now);
    let mine = acquire(store.as_ref(), &r).await;
    assert_eq!((mine.status, mine.attempt), (ExecutionStatus::Claimed, 1));
    assert!(mine.lease_until.unwrap() >= now + 299);
    assert!(mine.claim_token.is_some());
    match second.claim(claimed(&r, LEASE)).await.unwrap() {
        Claim::InProgress(existing) => assert_eq!(existing.claim_token, mine.claim_token),
        other => panic!("a live claim is in progress: {other:?}"),
    }
    // The same claimant again (its first write applied, its answer lost): its own claim.
    match second.claim(mine.clone()).await.unwrap() {
        Claim::Acquired(again) => assert_eq!(again, mine),
        other => panic!("a claimant recognises its own claim: {other:?}"),
    }

    // Submitted; an update with the wrong expected status conflicts; the same update again
    // (a retry after a lost answer) succeeds; another claimant's token is refused.
    let mut submitted = mine.clone();
    submitted.status = ExecutionStatus::Submitted;
    submitted.job_id = Some("job-1".into());
    submitted.lease_until = None;
    store
        .record_job(&submitted, ExecutionStatus::Claimed)
        .await
        .unwrap();
    store
        .record_job(&submitted, ExecutionStatus::Claimed)
        .await
        .expect("the same write twice is one write");
    store
        .update(&submitted, ExecutionStatus::Claimed)
        .await
        .expect("an update that is already stored succeeds");
    let mut other_change = submitted.clone();
    other_change.message = Some("something else".into());
    assert!(matches!(
        store.update(&other_change, ExecutionStatus::Claimed).await,
        Err(ExecutionError::Conflict { .. })
    ));
    let mut stranger = submitted.clone();
    stranger.claim_token = Some("not-the-claimant".into());
    stranger.message = Some("x".into());
    assert!(matches!(
        store.update(&stranger, ExecutionStatus::Submitted).await,
        Err(ExecutionError::Conflict { .. })
    ));
    let stored = store.get(&r.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.job_id.as_deref()),
        (ExecutionStatus::Submitted, Some("job-1"))
    );
    match store.claim(claimed(&r, LEASE)).await.unwrap() {
        Claim::Duplicate(existing) => assert_eq!(existing.job_id.as_deref(), Some("job-1")),
        other => panic!("{other:?}"),
    }

    // A job belongs to one execution: another cannot record it, the owner is known.
    let thief = acquire(store.as_ref(), &record("rule-a", "thief.csv", now)).await;
    let mut steal = thief.clone();
    steal.status = ExecutionStatus::Submitted;
    steal.job_id = Some("job-1".into());
    match second.record_job(&steal, ExecutionStatus::Claimed).await {
        Err(ExecutionError::JobTaken { job_id, owner }) => {
            assert_eq!((job_id.as_str(), owner.as_str()), ("job-1", r.id.as_str()))
        }
        other => panic!("a recorded job cannot be recorded again: {other:?}"),
    }
    assert_eq!(
        store.get(&thief.id).await.unwrap().unwrap().status,
        ExecutionStatus::Claimed,
        "nothing of the refused transaction was written"
    );
    let owners = second
        .job_owners(&["job-1".into(), "job-unknown".into()])
        .await
        .unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners["job-1"], r.id);

    // Concurrent claims from two store instances: exactly one wins.
    let race = record("rule-a", "race.csv", now);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 {
            Arc::clone(&store)
        } else {
            Arc::clone(&second)
        };
        let r = claimed(&race, LEASE);
        tasks.push(tokio::spawn(async move { s.claim(r).await.unwrap() }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Claim::Acquired(_) => won += 1,
            Claim::InProgress(_) => {}
            Claim::Duplicate(d) => panic!("a live claim is never a duplicate: {d:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one of 16 concurrent claims wins");

    // A claim whose lease expired is taken over (attempt 2, new token).
    let stale = record("rule-a", "stale.csv", now);
    let first = match store.claim(claimed(&stale, Duration::ZERO)).await.unwrap() {
        Claim::Acquired(c) => c,
        other => panic!("{other:?}"),
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        first.lease_state(now_unix()),
        Some(LeaseState::Expired(_))
    ));
    match second.claim(claimed(&stale, LEASE)).await.unwrap() {
        Claim::Acquired(taken) => {
            assert_eq!(taken.attempt, 2);
            assert_ne!(taken.claim_token, first.claim_token);
            assert!(
                !taken.must_reconcile(),
                "a CLAIMED predecessor sent nothing"
            );
        }
        other => panic!("expired lease must be taken over: {other:?}"),
    }
    // The first claimant, back from the dead, can no longer write.
    let mut late = first.clone();
    late.status = ExecutionStatus::Error;
    assert!(matches!(
        store.update(&late, ExecutionStatus::Claimed).await,
        Err(ExecutionError::Conflict { .. })
    ));

    // A SUBMITTING record released after an outcome it could not tell: not before its
    // `reconcile_after` (in progress), then taken over with `reconcile_from` = its request.
    let unknown = record("rule-a", "unknown.csv", now);
    let mut c = acquire(store.as_ref(), &unknown).await;
    c.status = ExecutionStatus::Submitting;
    c.submit_started_at = Some(now_unix_ms() - 5_000);
    c.reconcile_after = Some(now_unix_ms() + 1_500);
    store.update(&c, ExecutionStatus::Claimed).await.unwrap();
    c.lease_until = None;
    c.retryable = true;
    store.update(&c, ExecutionStatus::Submitting).await.unwrap();
    assert_eq!(
        c.lease_state(now_unix()),
        Some(LeaseState::Released),
        "released"
    );
    assert!(matches!(
        second.claim(claimed(&unknown, LEASE)).await.unwrap(),
        Claim::InProgress(_)
    ));
    assert!(matches!(
        second
            .claim_retry(&unknown.id, &claimant(), Takeover::Retry)
            .await,
        Err(ExecutionError::NotRetryable { .. })
    ));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    match second.claim(claimed(&unknown, LEASE)).await.unwrap() {
        Claim::Acquired(taken) => {
            assert_eq!(taken.attempt, 2);
            assert_eq!(taken.status, ExecutionStatus::Claimed);
            assert!(taken.must_reconcile());
            assert_eq!(taken.reconcile_from, c.submit_started_at);
            assert_eq!(taken.reconcile_after, c.reconcile_after);
        }
        other => panic!("{other:?}"),
    }

    // Retryable ERROR may be re-claimed; a non-retryable one and UNCERTAIN may not.
    for (key, status, retryable) in [
        ("err-retry.csv", ExecutionStatus::Error, true),
        ("err-final.csv", ExecutionStatus::Error, false),
        ("uncertain.csv", ExecutionStatus::Uncertain, false),
    ] {
        let r = record("rule-a", key, now);
        let mut c = acquire(store.as_ref(), &r).await;
        c.status = status;
        c.retryable = retryable;
        c.message = Some("Alteryx answered 503".into());
        store.update(&c, ExecutionStatus::Claimed).await.unwrap();
        let again = store.claim(claimed(&r, LEASE)).await.unwrap();
        assert_eq!(matches!(again, Claim::Acquired(_)), retryable, "{key}");
    }

    // Manual retries: FAILED → CLAIMED attempt+1; SUBMITTED refused; unknown id; one winner.
    let f = record("rule-b", "failed.csv", now);
    let mut c = acquire(store.as_ref(), &f).await;
    c.status = ExecutionStatus::Failed;
    c.message = Some("job failed".into());
    store.update(&c, ExecutionStatus::Claimed).await.unwrap();
    let (one, two) = (claimant(), claimant());
    let (a, b) = tokio::join!(
        store.claim_retry(&f.id, &one, Takeover::Retry),
        second.claim_retry(&f.id, &two, Takeover::Retry)
    );
    assert_eq!(
        a.is_ok() as u8 + b.is_ok() as u8,
        1,
        "one of two concurrent retries wins: {a:?} {b:?}"
    );
    let retried = a.or(b).unwrap();
    assert_eq!(
        (retried.status, retried.attempt, retried.message),
        (ExecutionStatus::Claimed, 2, None)
    );
    assert!(matches!(
        store.claim_retry(&r.id, &claimant(), Takeover::Retry).await,
        Err(ExecutionError::NotRetryable {
            status: ExecutionStatus::Submitted,
            ..
        })
    ));
    assert!(matches!(
        store
            .claim_retry("rule-a:0000000000000000", &claimant(), Takeover::Retry)
            .await,
        Err(ExecutionError::NotFound(_))
    ));
    // A retry of a live claim is refused; of a dead one (lease over) it is a takeover; the
    // tracker's sweep takes only claims; a resubmission only UNCERTAIN, without reconciling.
    let live = acquire(store.as_ref(), &record("rule-b", "live.csv", now)).await;
    let e = second
        .claim_retry(&live.id, &claimant(), Takeover::Retry)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("live claim until"), "{e}");
    let dead = match store
        .claim(claimed(&record("rule-b", "dead.csv", now), Duration::ZERO))
        .await
        .unwrap()
    {
        Claim::Acquired(c) => c,
        other => panic!("{other:?}"),
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        second
            .claim_retry(&f.id, &claimant(), Takeover::Stale)
            .await,
        Err(ExecutionError::NotRetryable { .. })
    ));
    let swept = second
        .claim_retry(&dead.id, &claimant(), Takeover::Stale)
        .await
        .unwrap();
    assert_eq!((swept.status, swept.attempt), (ExecutionStatus::Claimed, 2));
    let mut u = acquire(store.as_ref(), &record("rule-b", "resolve.csv", now)).await;
    u.status = ExecutionStatus::Uncertain;
    u.reconcile_from = Some(1);
    u.reconcile_after = Some(2);
    u.candidates = vec![alteryx_router_core::executions::JobCandidate {
        job_id: "j1".into(),
        created: Some("2026-01-01T00:00:00Z".into()),
        owner: None,
    }];
    store.update(&u, ExecutionStatus::Claimed).await.unwrap();
    assert_eq!(
        second.get(&u.id).await.unwrap().unwrap().candidates,
        u.candidates,
        "candidates are stored"
    );
    let resubmitted = second
        .claim_retry(&u.id, &claimant(), Takeover::Resubmit)
        .await
        .unwrap();
    assert!(!resubmitted.must_reconcile() && resubmitted.candidates.is_empty());
    assert!(matches!(
        second
            .claim_retry(&f.id, &claimant(), Takeover::Resubmit)
            .await,
        Err(ExecutionError::NotRetryable { .. })
    ));

    // Listing: by status, newest first, since, rule, workflow, limit, oldest first with a
    // cursor; job ownership items never show up.
    let old = record("rule-c", "old.csv", now - 7200);
    let mut o = acquire(store.as_ref(), &old).await;
    o.status = ExecutionStatus::Submitted;
    o.job_id = Some("job-old".into());
    o.workflow = "wf-old".into();
    store
        .record_job(&o, ExecutionStatus::Claimed)
        .await
        .unwrap();
    let submitted = store
        .list(&ListFilter {
            status: Some(ExecutionStatus::Submitted),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        submitted.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["k1.csv", "old.csv"]
    );
    let recent = store
        .list(&ListFilter {
            status: Some(ExecutionStatus::Submitted),
            since: Some(now - 60),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    let by_workflow = second
        .list(&ListFilter {
            status: Some(ExecutionStatus::Submitted),
            workflow: Some("wf-old".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_workflow.len(), 1);
    assert_eq!(by_workflow[0].key, "old.csv");
    let oldest = store
        .list(&ListFilter {
            status: Some(ExecutionStatus::Submitted),
            oldest_first: true,
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(oldest[0].key, "old.csv");
    let next = second
        .list(&ListFilter {
            status: Some(ExecutionStatus::Submitted),
            oldest_first: true,
            limit: Some(1),
            after: Some((oldest[0].created_at, oldest[0].id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].key, "k1.csv");
    let by_rule = store
        .list(&ListFilter {
            rule_id: Some("rule-b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_rule.len(), 4);
    let all = store.list(&ListFilter::default()).await.unwrap();
    assert!(
        all.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    assert!(
        all.iter().all(|e| e.id.contains(':')),
        "only executions are listed: {:?}",
        all.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .list(&ListFilter {
                limit: Some(2),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        2
    );

    // The tracker's stuck flag is stored and read back by the other instance; a retry of
    // the execution starts without it.
    let flagged = record("rule-d", "stuck.csv", now);
    let mut c = acquire(store.as_ref(), &flagged).await;
    c.status = ExecutionStatus::Submitted;
    store.update(&c, ExecutionStatus::Claimed).await.unwrap();
    assert_eq!(second.get(&c.id).await.unwrap().unwrap().stuck_at, None);
    c.stuck_at = Some(now - 5);
    store.update(&c, ExecutionStatus::Submitted).await.unwrap();
    assert_eq!(
        second.get(&c.id).await.unwrap().unwrap().stuck_at,
        Some(now - 5)
    );
    c.status = ExecutionStatus::Failed;
    store.update(&c, ExecutionStatus::Submitted).await.unwrap();
    let retried = second
        .claim_retry(&c.id, &claimant(), Takeover::Retry)
        .await
        .unwrap();
    assert_eq!((retried.attempt, retried.stuck_at), (2, None));

    rerun_conformance(store.as_ref(), second.as_ref(), now).await;
}

/// Deliberate re-runs (`executions rerun`): of two concurrent reruns of a finished execution
/// exactly one takes it over, recorded as such (`reruns`, `rerun_at`, the replaced attempt in
/// `history`, read back by the other instance); a live claim, `SUBMITTING`, `SUBMITTED` and
/// `UNCERTAIN` are refused, so a rerun never bypasses a claim.
async fn rerun_conformance(store: &dyn ExecutionStore, second: &dyn ExecutionStore, now: i64) {
    let done = record("rule-r", "rerun.csv", now);
    let mut c = acquire(store, &done).await;
    c.status = ExecutionStatus::Submitted;
    c.job_id = Some("job-r1".into());
    store
        .record_job(&c, ExecutionStatus::Claimed)
        .await
        .unwrap();
    c.status = ExecutionStatus::Completed;
    c.disposition = Some("Success".into());
    c.finished_at = Some(now);
    store.update(&c, ExecutionStatus::Submitted).await.unwrap();

    let (one, two) = (claimant(), claimant());
    let (a, b) = tokio::join!(
        store.claim_retry(&c.id, &one, Takeover::Rerun),
        second.claim_retry(&c.id, &two, Takeover::Rerun)
    );
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("exactly one of two concurrent reruns wins: {other:?}"),
    };
    assert!(
        matches!(
            lost,
            ExecutionError::Conflict { .. } | ExecutionError::NotRetryable { .. }
        ),
        "{lost}"
    );
    assert_eq!((won.status, won.attempt), (ExecutionStatus::Claimed, 2));
    assert_eq!(won.reruns, 1);
    assert!(won.rerun_at.is_some_and(|t| t >= now));
    assert_eq!(won.job_id, None);
    assert_eq!(won.history.len(), 1);
    assert_eq!(
        (
            won.history[0].attempt,
            won.history[0].status,
            won.history[0].job_id.as_deref(),
            won.history[0].disposition.as_deref()
        ),
        (
            1,
            ExecutionStatus::Completed,
            Some("job-r1"),
            Some("Success")
        )
    );
    assert_eq!(second.get(&c.id).await.unwrap().unwrap(), won);

    let refused = |e: ExecutionError, says: &str| {
        assert!(
            matches!(e, ExecutionError::NotRetryable { .. }) && e.to_string().contains(says),
            "{e}"
        );
    };
    // The rerun's own live claim.
    refused(
        second
            .claim_retry(&c.id, &claimant(), Takeover::Rerun)
            .await
            .unwrap_err(),
        "with a live claim until",
    );
    let mut next = won.clone();
    next.status = ExecutionStatus::Submitting;
    store.update(&next, ExecutionStatus::Claimed).await.unwrap();
    refused(
        second
            .claim_retry(&c.id, &claimant(), Takeover::Rerun)
            .await
            .unwrap_err(),
        "is SUBMITTING",
    );
    next.status = ExecutionStatus::Submitted;
    next.job_id = Some("job-r2".into());
    next.lease_until = None;
    store
        .record_job(&next, ExecutionStatus::Submitting)
        .await
        .unwrap();
    refused(
        second
            .claim_retry(&c.id, &claimant(), Takeover::Rerun)
            .await
            .unwrap_err(),
        "queued or running",
    );
    let owners = second
        .job_owners(&["job-r1".into(), "job-r2".into()])
        .await
        .unwrap();
    assert_eq!(
        owners.len(),
        2,
        "both attempts' jobs stay owned: {owners:?}"
    );
    next.status = ExecutionStatus::Uncertain;
    store
        .update(&next, ExecutionStatus::Submitted)
        .await
        .unwrap();
    refused(
        second
            .claim_retry(&c.id, &claimant(), Takeover::Rerun)
            .await
            .unwrap_err(),
        "executions resolve",
    );
}

/// The intent of a capped execution, as the router builds it: `SUBMITTING` in `group`.
fn intent_in(claimed: &Execution, group: &str) -> Execution {
    let mut r = claimed.clone();
    r.status = ExecutionStatus::Submitting;
    r.group = Some(group.into());
    r.submit_started_at = Some(now_unix_ms());
    r
}

async fn running(store: &dyn ExecutionStore, group: &str) -> i64 {
    store
        .group_usage(&[group.to_string()])
        .await
        .unwrap()
        .get(group)
        .map_or(0, |u| u.running)
}

/// Slots: acquired with the intent only while the group has room, released exactly once by
/// the write that ends the execution's hold, kept by the statuses a job may be queued in;
/// the waiting line and its takeovers; many acquirers at once never pass the cap.
async fn slots(store: Arc<dyn ExecutionStore>, second: Arc<dyn ExecutionStore>, group: &str) {
    let now = now_unix();
    let a = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-a"), now),
    )
    .await;
    let b = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-b"), now),
    )
    .await;
    let c = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-c"), now + 1),
    )
    .await;
    let (ia, ib, ic) = (
        intent_in(&a, group),
        intent_in(&b, group),
        intent_in(&c, group),
    );
    assert_eq!(
        store
            .acquire_slot(&ia, ExecutionStatus::Claimed, 2, LinePlace::Arrival)
            .await
            .unwrap(),
        SlotGrant::Acquired
    );
    assert_eq!(
        second
            .acquire_slot(&ib, ExecutionStatus::Claimed, 2, LinePlace::Arrival)
            .await
            .unwrap(),
        SlotGrant::Acquired
    );
    assert_eq!(
        store
            .acquire_slot(&ic, ExecutionStatus::Claimed, 2, LinePlace::Arrival)
            .await
            .unwrap(),
        SlotGrant::Full {
            running: 2,
            line_at: None
        }
    );
    let stored_c = store.get(&c.id).await.unwrap().unwrap();
    assert_eq!(
        (stored_c.status, stored_c.slot_held),
        (ExecutionStatus::Claimed, false),
        "a full group writes nothing"
    );
    // The same acquire again (its answer lost): its own write, not a second slot.
    assert_eq!(
        second
            .acquire_slot(&ia, ExecutionStatus::Claimed, 2, LinePlace::Arrival)
            .await
            .unwrap(),
        SlotGrant::Acquired
    );
    let usage = second
        .group_usage(&[group.to_string(), "never-used".to_string()])
        .await
        .unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!((usage[group].running, usage[group].cap), (2, Some(2)));
    let stored_a = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored_a.status,
            stored_a.slot_held,
            stored_a.group.as_deref()
        ),
        (ExecutionStatus::Submitting, true, Some(group))
    );

    // A job recorded keeps the slot; its end gives it back, once, whoever writes it twice.
    let mut submitted = stored_a.clone();
    submitted.status = ExecutionStatus::Submitted;
    submitted.job_id = Some(format!("{group}-job-a"));
    store
        .record_job(&submitted, ExecutionStatus::Submitting)
        .await
        .unwrap();
    assert_eq!(running(store.as_ref(), group).await, 2);
    let mut done = store.get(&a.id).await.unwrap().unwrap();
    assert!(done.slot_held);
    done.status = ExecutionStatus::Completed;
    store
        .update(&done, ExecutionStatus::Submitted)
        .await
        .unwrap();
    second
        .update(&done, ExecutionStatus::Submitted)
        .await
        .expect("the same release again is the same write");
    assert_eq!(
        running(store.as_ref(), group).await,
        1,
        "released exactly once"
    );
    let stored_a = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (stored_a.status, stored_a.slot_held),
        (ExecutionStatus::Completed, false)
    );

    // The freed slot goes to the next intent; a definite failure gives its slot back.
    assert_eq!(
        store
            .acquire_slot(&ic, ExecutionStatus::Claimed, 2, LinePlace::Arrival)
            .await
            .unwrap(),
        SlotGrant::Acquired
    );
    let mut failed = store.get(&b.id).await.unwrap().unwrap();
    failed.status = ExecutionStatus::Error;
    failed.retryable = false;
    second
        .update(&failed, ExecutionStatus::Submitting)
        .await
        .unwrap();
    assert_eq!(running(store.as_ref(), group).await, 1);
    // A record that believes it holds a slot the store says it does not: nothing to give back.
    let mut never = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-never"), now),
    )
    .await;
    never.group = Some(group.into());
    never.slot_held = true;
    never.status = ExecutionStatus::Skipped;
    store
        .update(&never, ExecutionStatus::Claimed)
        .await
        .unwrap();
    assert_eq!(running(store.as_ref(), group).await, 1);
    // An outcome-unknown SUBMITTING record keeps its slot through a takeover.
    let mut unknown = store.get(&c.id).await.unwrap().unwrap();
    unknown.lease_until = None;
    store
        .update(&unknown, ExecutionStatus::Submitting)
        .await
        .unwrap();
    let retaken = second
        .claim_retry(&c.id, &claimant(), Takeover::Stale)
        .await
        .unwrap();
    assert!(retaken.slot_held && retaken.must_reconcile());
    assert_eq!(running(store.as_ref(), group).await, 1);

    // The waiting line: WAITING records are listed oldest first, a redelivery is a duplicate,
    // the tracker's dispatch takes one over keeping its place, an operator cancels one.
    let mut w1 = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-w1"), now - 20),
    )
    .await;
    let mut w2 = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-w2"), now - 10),
    )
    .await;
    for w in [&mut w1, &mut w2] {
        w.status = ExecutionStatus::Waiting;
        w.group = Some(group.into());
        w.wait_reason = Some(WaitReason::Cap);
        w.waiting_since = Some(now - 5);
        w.lease_until = None;
        store.update(w, ExecutionStatus::Claimed).await.unwrap();
    }
    let line = second
        .list(&ListFilter {
            status: Some(ExecutionStatus::Waiting),
            oldest_first: true,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = line
        .iter()
        .filter(|r| r.group.as_deref() == Some(group))
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, [w1.id.as_str(), w2.id.as_str()]);
    assert!(matches!(
        store.claim(claimed(&w1, LEASE)).await.unwrap(),
        Claim::Duplicate(d) if d.status == ExecutionStatus::Waiting
    ));
    let dispatched = second
        .claim_retry(&w1.id, &claimant(), Takeover::Dispatch)
        .await
        .unwrap();
    assert_eq!(
        (
            dispatched.status,
            dispatched.attempt,
            dispatched.waiting_since
        ),
        (ExecutionStatus::Claimed, 2, Some(now - 5))
    );
    assert_eq!(dispatched.wait_reason, None);
    assert!(matches!(
        store
            .claim_retry(&w1.id, &claimant(), Takeover::Dispatch)
            .await,
        Err(ExecutionError::NotRetryable { .. })
    ));
    let mut cancelled = w2.clone();
    cancelled.status = ExecutionStatus::Cancelled;
    store
        .update(&cancelled, ExecutionStatus::Waiting)
        .await
        .unwrap();
    assert!(matches!(
        second
            .claim_retry(&w2.id, &claimant(), Takeover::Dispatch)
            .await,
        Err(ExecutionError::NotRetryable { .. })
    ));
    assert_eq!(
        running(store.as_ref(), group).await,
        1,
        "waiting holds no slot"
    );

    // Operators: places in line, each group's state, cancelling a waiting one.
    let line_group = format!("{group}-line");
    let mut queued = Vec::new();
    for (i, since) in [(0, now - 30), (1, now - 20)] {
        let mut w = acquire(
            store.as_ref(),
            &record("capped", &format!("{line_group}-{i}"), now - 30 + i),
        )
        .await;
        w.status = ExecutionStatus::Waiting;
        w.group = Some(line_group.clone());
        w.wait_reason = Some(if i == 0 {
            WaitReason::Cap
        } else {
            WaitReason::Outage
        });
        w.next_attempt_at = (i == 1).then_some(now + 60);
        w.waiting_since = Some(since);
        w.lease_until = None;
        store.update(&w, ExecutionStatus::Claimed).await.unwrap();
        queued.push(w);
    }
    let listed = second
        .list(&ListFilter {
            status: Some(ExecutionStatus::Waiting),
            oldest_first: true,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    let places = line::places(&listed);
    assert_eq!((places[&queued[0].id], places[&queued[1].id]), (1, 2));
    let caps = std::collections::BTreeMap::from([(line_group.clone(), 2)]);
    let status = line::group_status(second.as_ref(), &caps).await.unwrap();
    let g = status.iter().find(|g| g.group == line_group).unwrap();
    assert_eq!(
        (
            g.cap,
            g.running,
            g.waiting,
            g.waiting_for_alteryx,
            g.oldest_waiting_since,
            g.next_attempt_at
        ),
        (Some(2), 0, 2, 1, Some(now - 30), Some(now + 60))
    );
    let cancelled = line::cancel(second.as_ref(), &queued[0].id).await.unwrap();
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
    assert!(matches!(
        line::cancel(store.as_ref(), &queued[0].id).await,
        Err(line::CancelError::NotWaiting {
            status: ExecutionStatus::Cancelled,
            ..
        })
    ));
    let status = line::group_status(store.as_ref(), &caps).await.unwrap();
    assert_eq!(
        status
            .iter()
            .find(|g| g.group == line_group)
            .unwrap()
            .waiting,
        1
    );

    // No listing ever shows a group item.
    let all = store.list(&ListFilter::default()).await.unwrap();
    assert!(all.iter().all(|r| !r.id.contains('#')), "{all:?}");

    // Many acquirers at once, from two store instances, each releasing as soon as it holds a
    // slot and trying again while the group is full: never more than the cap hold a slot at
    // once, and every one of them gets exactly one.
    const CAP: u32 = 3;
    const N: usize = 16;
    let busy = format!("{group}-busy");
    let holding = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let most = Arc::new(std::sync::atomic::AtomicI64::new(0));
    // All try at once first (exactly CAP win), then the holders let go and the others keep
    // trying while slots come and go.
    let first_round = Arc::new(tokio::sync::Barrier::new(N));
    let first_done = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let s = if i % 2 == 0 {
            Arc::clone(&store)
        } else {
            Arc::clone(&second)
        };
        let claimed = acquire(s.as_ref(), &record("capped", &format!("{busy}-{i}"), now)).await;
        let intent = intent_in(&claimed, &busy);
        let (holding, most) = (Arc::clone(&holding), Arc::clone(&most));
        let (first_round, first_done) = (Arc::clone(&first_round), Arc::clone(&first_done));
        tasks.push(tokio::spawn(async move {
            let try_once = || async {
                loop {
                    match s
                        .acquire_slot(&intent, ExecutionStatus::Claimed, CAP, LinePlace::Arrival)
                        .await
                    {
                        Ok(SlotGrant::Acquired) => return true,
                        Ok(SlotGrant::Full { running, .. }) => {
                            assert!(running >= i64::from(CAP));
                            return false;
                        }
                        // A transaction that met a concurrent one: try again.
                        Err(e) if e.is_transient() => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            };
            first_round.wait().await;
            let won_first = try_once().await;
            if won_first {
                let now_holding = holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now_holding, std::sync::atomic::Ordering::SeqCst);
            }
            first_done.wait().await;
            if !won_first {
                while !try_once().await {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let now_holding = holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now_holding, std::sync::atomic::Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            let mut done = intent.clone();
            done.slot_held = true;
            done.status = ExecutionStatus::Failed;
            loop {
                match s.update(&done, ExecutionStatus::Submitting).await {
                    Ok(()) => break,
                    Err(e) if e.is_transient() => {}
                    Err(e) => panic!("{e}"),
                }
            }
            won_first
        }));
    }
    let mut first_winners = 0;
    for t in tasks {
        first_winners += u32::from(t.await.unwrap());
    }
    assert_eq!(
        first_winners, CAP,
        "of {N} acquiring at once, exactly the cap win"
    );
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        most <= i64::from(CAP),
        "{most} held at once with a cap of {CAP}"
    );
    assert_eq!(
        running(store.as_ref(), &busy).await,
        0,
        "every slot given back once"
    );
    let finished = store
        .list(&ListFilter {
            status: Some(ExecutionStatus::Failed),
            ..ListFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.key.starts_with(&format!("{busy}-")))
        .count();
    assert_eq!(finished, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms_across_two_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("executions.sqlite3");
    let a: Arc<dyn ExecutionStore> = Arc::new(SqliteExecutionStore::open(&path).unwrap());
    let b: Arc<dyn ExecutionStore> = Arc::new(SqliteExecutionStore::open(&path).unwrap());
    conformance(Arc::clone(&a), Arc::clone(&b)).await;
    slots(Arc::clone(&a), Arc::clone(&b), "g1").await;
    line_marks(a, b, "g2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_store_conforms() {
    let sdk = common::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let rules = common::unique("rules");
    let table = common::unique("executions");
    let created = alteryx_router_core::tables::create_tables(&client, &rules, &table)
        .await
        .unwrap();
    assert!(
        created.iter().all(|l| l.ends_with("created")),
        "{created:?}"
    );
    let again = alteryx_router_core::tables::create_tables(&client, &rules, &table)
        .await
        .unwrap();
    assert!(
        again.iter().all(|l| l.ends_with("exists")),
        "idempotent: {again:?}"
    );
    let a: Arc<dyn ExecutionStore> =
        Arc::new(DynamoExecutionStore::new(client.clone(), table.clone()));
    let b: Arc<dyn ExecutionStore> =
        Arc::new(DynamoExecutionStore::new(client.clone(), table.clone()));
    conformance(Arc::clone(&a), b).await;

    // The schema is the one tables.rs declares, TTL included, and items carry the TTL attribute.
    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let gsi = &described.global_secondary_indexes.unwrap()[0];
    assert_eq!(
        gsi.index_name.as_deref(),
        Some(alteryx_router_core::tables::EXECUTIONS_STATUS_INDEX)
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description
            .unwrap()
            .attribute_name
            .as_deref(),
        Some("expires_at")
    );
    let items = client
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert!(items.iter().all(|i| matches!(
        i.get("expires_at"),
        Some(aws_sdk_dynamodb::types::AttributeValue::N(_))
    )));
    // `stuck_at` is a number where set and absent elsewhere, exactly like the records written
    // before it existed (which therefore read as not stuck).
    assert!(
        items.iter().all(|i| !i.contains_key("stuck_at")),
        "none set"
    );
    let mut c = acquire(a.as_ref(), &record("rule-e", "flag.csv", now_unix())).await;
    c.stuck_at = Some(1_700_000_000);
    a.update(&c, ExecutionStatus::Claimed).await.unwrap();
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(c.id.clone()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        item["stuck_at"],
        aws_sdk_dynamodb::types::AttributeValue::N("1700000000".into())
    );
}

/// A group's line mark: while it is set an arrival joins the line even with a slot free, an
/// execution served from the line takes the slot, and only a mark set before the given time
/// is removed.
async fn line_marks(store: Arc<dyn ExecutionStore>, second: Arc<dyn ExecutionStore>, group: &str) {
    let now = alteryx_router_core::executions::now_unix();
    let first = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-m1"), now),
    )
    .await;
    let arrival = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-m2"), now),
    )
    .await;
    let mut waited = acquire(
        store.as_ref(),
        &record("capped", &format!("{group}-m3"), now - 60),
    )
    .await;
    waited.waiting_since = Some(now - 50);
    let (first, arrival, waited) = (
        intent_in(&first, group),
        intent_in(&arrival, group),
        intent_in(&waited, group),
    );
    assert_eq!(LinePlace::of(&arrival), LinePlace::Arrival);
    assert_eq!(LinePlace::of(&waited), LinePlace::InLine);
    // No mark: an arrival takes a free slot.
    assert_eq!(
        store
            .acquire_slot(&first, ExecutionStatus::Claimed, 3, LinePlace::of(&first))
            .await
            .unwrap(),
        SlotGrant::Acquired
    );
    let before = alteryx_router_core::executions::now_unix_ms();
    second.mark_line(group).await.unwrap();
    let after = alteryx_router_core::executions::now_unix_ms();
    let usage = store.group_usage(&[group.to_string()]).await.unwrap();
    let line_at = usage[group].line_at.expect("marked");
    assert!(
        (before..=after).contains(&line_at),
        "{before} <= {line_at} <= {after}"
    );
    // Marked: the arrival waits although 1 of 3 slots is taken, and nothing is written.
    assert_eq!(
        second
            .acquire_slot(
                &arrival,
                ExecutionStatus::Claimed,
                3,
                LinePlace::of(&arrival)
            )
            .await
            .unwrap(),
        SlotGrant::Full {
            running: 1,
            line_at: Some(line_at)
        }
    );
    let stored = store.get(&arrival.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.slot_held),
        (ExecutionStatus::Claimed, false)
    );
    assert_eq!(running(store.as_ref(), group).await, 1);
    // The one served from the line takes the slot the mark kept.
    assert_eq!(
        second
            .acquire_slot(&waited, ExecutionStatus::Claimed, 3, LinePlace::of(&waited))
            .await
            .unwrap(),
        SlotGrant::Acquired
    );
    assert_eq!(running(store.as_ref(), group).await, 2);
    // Only a mark older than the given time goes; removing twice is removing once.
    assert!(
        !store.clear_line(group, line_at).await.unwrap(),
        "set at, not before, line_at"
    );
    assert!(
        store.group_usage(&[group.to_string()]).await.unwrap()[group]
            .line_at
            .is_some()
    );
    assert!(second.clear_line(group, line_at + 1).await.unwrap());
    assert!(!store.clear_line(group, line_at + 1).await.unwrap());
    assert_eq!(
        store.group_usage(&[group.to_string()]).await.unwrap()[group].line_at,
        None
    );
    // Unmarked again: the arrival takes the last slot.
    assert_eq!(
        store
            .acquire_slot(
                &arrival,
                ExecutionStatus::Claimed,
                3,
                LinePlace::of(&arrival)
            )
            .await
            .unwrap(),
        SlotGrant::Acquired
    );
    assert_eq!(running(store.as_ref(), group).await, 3);
    // A group only ever marked (never acquired) is known by its mark.
    let lonely = format!("{group}-lonely");
    store.mark_line(&lonely).await.unwrap();
    let usage = second
        .group_usage(std::slice::from_ref(&lonely))
        .await
        .unwrap();
    assert_eq!(
        (usage[&lonely].running, usage[&lonely].line_at.is_some()),
        (0, true)
    );
}

/// Concurrency groups' slots on DynamoDB, against a moto that answers one request at a time
/// (a cancelled transaction in moto restores the whole table, undoing concurrent writes;
/// DynamoDB isolates transactions). Many acquirers are still in flight at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_slots_are_exact() {
    let (sdk, _moto) = common::serial_moto().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = common::unique("executions");
    alteryx_router_core::tables::create_tables(&client, &common::unique("rules"), &table)
        .await
        .unwrap();
    let a: Arc<dyn ExecutionStore> =
        Arc::new(DynamoExecutionStore::new(client.clone(), table.clone()));
    let b: Arc<dyn ExecutionStore> =
        Arc::new(DynamoExecutionStore::new(client.clone(), table.clone()));
    slots(Arc::clone(&a), Arc::clone(&b), "g1").await;
    line_marks(a, b, "g2").await;
    // Group items are not executions: no status, so the status index never holds them.
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S("group#g1".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(
        !item.contains_key("status") && item.contains_key("running"),
        "{item:?}"
    );
}

/// Store errors say what was being done and where, and keep the cause as their source.
#[tokio::test]
async fn store_errors_name_action_and_table_and_keep_their_cause() {
    let store_parts = |e: &ExecutionError| match e {
        ExecutionError::Store { action, table, .. } => (action.clone(), table.clone()),
        other => panic!("{other:?}"),
    };

    // DynamoDB: a table that does not exist.
    let sdk = common::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let missing = common::unique("no-such-table");
    let store = DynamoExecutionStore::new(client, missing.clone());
    let e = store.get("rule-a:0000000000000000").await.unwrap_err();
    assert_eq!(store_parts(&e), ("GetItem".to_string(), missing.clone()));
    assert_eq!(
        e.to_string(),
        format!("execution store: GetItem on {missing}")
    );
    assert!(std::error::Error::source(&e).is_some());
    let chain = alteryx_router_core::error_chain(&e);
    assert!(chain.contains("ResourceNotFoundException"), "{chain}");

    // SQLite: a record that is not an execution (written by hand, or by a broken version).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("executions.sqlite3");
    let store = SqliteExecutionStore::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO executions (id, status, attempt, rule_id, created_at, record)
         VALUES ('r:1', 'CLAIMED', 1, 'r', 0, '{\"id\": \"r:1\"}')",
        [],
    )
    .unwrap();
    let e = store.get("r:1").await.unwrap_err();
    let (action, table) = store_parts(&e);
    assert_eq!(action, "decoding a record");
    assert!(table.contains(&path.display().to_string()), "{table}");
    let chain = alteryx_router_core::error_chain(&e);
    assert!(
        chain.contains("missing field"),
        "serde's cause is kept: {chain}"
    );

    // SQLite: a file where the directory should be.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let e = SqliteExecutionStore::open(&blocker.join("executions.sqlite3"))
        .err()
        .unwrap();
    assert_eq!(store_parts(&e).0, "creating its directory");
    assert!(std::error::Error::source(&e).is_some(), "{e:?}");
}
