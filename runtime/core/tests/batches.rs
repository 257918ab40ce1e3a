//! Batches on both execution stores (SQLite, and DynamoDB on a moto that answers one request
//! at a time: moto's cancelled transactions restore the whole table, see tests/moto_serial.py):
//! concurrent arrivals into one batch (no member lost, the count exact), the completing member
//! arriving twice at once (one member), racing closers (one close, one execution), duplicates
//! after the close, a new version after the close joining the next batch, quiet closes that a
//! late member keeps open, expiry, and batch items kept out of execution listings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use alteryx_router_core::executions::batch::{
    Batch, BatchFilter, BatchMember, BatchState, CloseOutcome, CloseReason, Closing, Joined,
    Joining,
};
use alteryx_router_core::executions::{
    Claimant, DynamoExecutionStore, Execution, ExecutionStatus, ExecutionStore, ListFilter,
    SqliteExecutionStore, WaitReason, execution_id, now_unix,
};

fn member(rule: &str, key: &str, version: &str) -> Joining {
    let now = now_unix();
    let mut record = common::execution(rule, key, now);
    record.id = execution_id(rule, "acme-landing", key, version);
    record.object_version = version.into();
    record.etag = Some(version.into());
    record.status = ExecutionStatus::Batched;
    record.claim_token = Some(Claimant::new(0).token);
    let member = BatchMember {
        bucket: "acme-landing".into(),
        key: key.into(),
        size: 10,
        etag: Some(version.into()),
        version_id: None,
        sequencer: None,
        event_time: record.event_time.clone(),
    };
    Joining {
        record,
        member,
        group: "closing/2026-11".into(),
        satisfies: Vec::new(),
        max_members: 1000,
        expires_at: now + 86_400,
    }
}

fn requiring(mut j: Joining, satisfies: &[u32]) -> Joining {
    j.satisfies = satisfies.to_vec();
    j
}

async fn join(store: &dyn ExecutionStore, j: Joining) -> Joined {
    store.batches().unwrap().join(j).await.unwrap()
}

fn joined(j: Joined) -> (Execution, Batch) {
    match j {
        Joined::Joined { record, batch } => (record, batch),
        other => panic!("expected a join: {other:?}"),
    }
}

/// The batch's own execution as a closer writes it.
fn batch_execution(batch: &Batch) -> Execution {
    let mut e = common::execution(
        &batch.rule_id,
        &batch.members.last().unwrap().key,
        now_unix(),
    );
    e.id = batch.id.clone();
    e.batch_id = Some(batch.id.clone());
    e.status = ExecutionStatus::Waiting;
    e.wait_reason = Some(WaitReason::Batch);
    e.waiting_since = Some(now_unix());
    e.next_attempt_at = Some(now_unix());
    e.attempt = 0;
    e
}

fn closing(batch: &Batch, reason: CloseReason) -> Closing {
    Closing {
        batch_id: batch.id.clone(),
        reason,
        state: BatchState::Closed,
        unchanged_since: None,
        execution: Some(batch_execution(batch)),
        expired_too: false,
    }
}

async fn conformance(a: Arc<dyn ExecutionStore>, b: Arc<dyn ExecutionStore>, rule: &str) {
    // Concurrent arrivals, from two store handles at once: one batch, every member in it once.
    const N: usize = 12;
    let mut tasks = Vec::new();
    for i in 0..N {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let j = requiring(
            member(rule, &format!("closing/2026-11/f{i:02}.csv"), "v1"),
            &[(i % 3) as u32],
        );
        tasks.push(tokio::spawn(async move { join(store.as_ref(), j).await }));
    }
    let mut batch_ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (record, batch) = joined(t.await.unwrap());
        assert_eq!(record.status, ExecutionStatus::Batched);
        assert_eq!(record.batch_id.as_deref(), Some(batch.id.as_str()));
        batch_ids.insert(batch.id);
    }
    assert_eq!(
        batch_ids.len(),
        1,
        "one open batch per rule and group: {batch_ids:?}"
    );
    let first_id = batch_ids.into_iter().next().unwrap();
    let batches = a.batches().unwrap();
    let batch = batches.get_batch(&first_id).await.unwrap().unwrap();
    assert_eq!(batch.state, BatchState::Open);
    assert_eq!(batch.member_count as usize, N);
    let mut keys: Vec<_> = batch.members.iter().map(|m| m.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), N, "no member lost or doubled");
    assert_eq!(batch.satisfied, vec![0, 1, 2]);
    assert_eq!(batch.group, "closing/2026-11");

    // The completing member arriving twice at once: one member.
    let completing = member(rule, "closing/2026-11/ledger.csv", "v1");
    let mut twice = completing.clone();
    twice.record.claim_token = Some(Claimant::new(0).token);
    let (x, y) = tokio::join!(
        join(a.as_ref(), completing.clone()),
        join(b.as_ref(), twice)
    );
    let outcomes = [x, y];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Joined::Joined { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Joined::Duplicate(_)))
            .count(),
        1,
        "{outcomes:?}"
    );
    // A try whose answer was lost (same token) finds its own record: joined, not duplicate.
    assert!(matches!(
        join(a.as_ref(), completing).await,
        Joined::Joined { .. } | Joined::Duplicate(_)
    ));
    let batch = batches.get_batch(&first_id).await.unwrap().unwrap();
    assert_eq!(batch.member_count as usize, N + 1);
    assert_eq!(batch.members.len(), N + 1);

    // A quiet close that read an older `last_member_at` is refused: a member joined since.
    let mut stale = closing(&batch, CloseReason::Quiet);
    stale.unchanged_since = Some(batch.last_member_at - 1);
    assert!(matches!(
        batches.close(stale).await.unwrap(),
        CloseOutcome::Changed(_)
    ));

    // Racing closers: one close, one execution.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let c = closing(&batch, CloseReason::Require);
        tasks.push(tokio::spawn(async move {
            store.batches().unwrap().close(c).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            CloseOutcome::Closed(b) => {
                won += 1;
                assert_eq!(b.state, BatchState::Closed);
            }
            CloseOutcome::NotOpen(b) => assert_eq!(b.state, BatchState::Closed),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one closer wins");
    let closed = batches.get_batch(&first_id).await.unwrap().unwrap();
    assert_eq!(closed.close_reason, Some(CloseReason::Require));
    assert_eq!(closed.execution_id.as_deref(), Some(first_id.as_str()));
    let execution = a.get(&first_id).await.unwrap().unwrap();
    assert_eq!(execution.status, ExecutionStatus::Waiting);
    assert_eq!(execution.wait_reason, Some(WaitReason::Batch));
    assert_eq!(execution.batch_id.as_deref(), Some(first_id.as_str()));

    // Duplicates after the close stay duplicates of the closed batch's member.
    match join(b.as_ref(), member(rule, "closing/2026-11/f03.csv", "v1")).await {
        Joined::Duplicate(existing) => {
            assert_eq!(existing.status, ExecutionStatus::Batched);
            assert_eq!(existing.batch_id.as_deref(), Some(first_id.as_str()));
        }
        other => panic!("{other:?}"),
    }
    // A new version of a member after the close joins (opens) the next batch.
    let (record, next) =
        joined(join(a.as_ref(), member(rule, "closing/2026-11/f03.csv", "v2")).await);
    assert_ne!(next.id, first_id);
    assert_eq!((next.member_count, next.state), (1, BatchState::Open));
    assert_eq!(record.batch_id.as_deref(), Some(next.id.as_str()));

    // Open batches, oldest first, for the tracker; another group has its own batch.
    let mut other_group = member(rule, "closing/2026-12/orders.csv", "v1");
    other_group.group = "closing/2026-12".into();
    let (_, other) = joined(join(b.as_ref(), other_group).await);
    let open = batches.open_batches(10, None).await.unwrap();
    let ids: Vec<_> = open
        .iter()
        .filter(|x| x.rule_id == rule)
        .map(|x| x.id.clone())
        .collect();
    assert!(
        ids.contains(&next.id) && ids.contains(&other.id) && !ids.contains(&first_id),
        "{ids:?}"
    );

    // Expiry: no execution, out of the open list, still listed.
    let expire = Closing {
        batch_id: other.id.clone(),
        reason: CloseReason::Timeout,
        state: BatchState::Expired,
        unchanged_since: None,
        execution: None,
        expired_too: false,
    };
    assert!(matches!(
        batches.close(expire).await.unwrap(),
        CloseOutcome::Closed(_)
    ));
    assert!(a.get(&other.id).await.unwrap().is_none());
    let open = batches.open_batches(10, None).await.unwrap();
    assert!(!open.iter().any(|x| x.id == other.id));
    // An operator may still run an expired batch; nothing else closes it.
    let expired = batches.get_batch(&other.id).await.unwrap().unwrap();
    assert_eq!(expired.state, BatchState::Expired);
    assert!(matches!(
        batches
            .close(closing(&expired, CloseReason::Quiet))
            .await
            .unwrap(),
        CloseOutcome::NotOpen(_)
    ));
    let mut revive = closing(&expired, CloseReason::Operator);
    revive.expired_too = true;
    assert!(matches!(
        batches.close(revive).await.unwrap(),
        CloseOutcome::Closed(_)
    ));
    assert_eq!(
        a.get(&other.id).await.unwrap().unwrap().status,
        ExecutionStatus::Waiting
    );
    let all = batches
        .list_batches(&BatchFilter {
            rule_id: Some(rule.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    let open_only = batches
        .list_batches(&BatchFilter {
            rule_id: Some(rule.into()),
            open_only: true,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(
        open_only.iter().map(|x| &x.id).collect::<Vec<_>>(),
        vec![&next.id]
    );

    // Batch items are not executions: listings see members and the batch's execution only.
    let listed = a
        .list(&ListFilter {
            rule_id: Some(rule.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        N + 1 + 1 + 1 + 2,
        "members, the next batch's and the other group's, and two batch executions"
    );
    let members = a
        .list(&ListFilter {
            rule_id: Some(rule.into()),
            status: Some(ExecutionStatus::Batched),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(members.len(), N + 3);
}

/// A batch with `max_members` members takes no more (concurrent joiners past the limit are
/// told it is full, nothing written); once closed, the next member opens the next batch.
async fn full_batches_take_no_more(store: Arc<dyn ExecutionStore>, rule: &str) {
    let batches = store.batches().unwrap();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut j = member(rule, &format!("tens/t/{i}.csv"), "v1");
        j.max_members = 3;
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move { join(store.as_ref(), j).await }));
    }
    let mut members = Vec::new();
    let mut full = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Joined::Joined { batch, .. } => members.push(batch),
            Joined::Full(batch) => full.push(batch),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((members.len(), full.len()), (3, 2), "{members:?} {full:?}");
    let batch = batches.get_batch(&full[0].id).await.unwrap().unwrap();
    assert_eq!((batch.member_count, batch.members.len()), (3, 3));
    assert!(matches!(
        batches
            .close(closing(&batch, CloseReason::MaxFiles))
            .await
            .unwrap(),
        CloseOutcome::Closed(_)
    ));
    let mut late = member(rule, "tens/t/9.csv", "v1");
    late.max_members = 3;
    let (_, next) = joined(join(store.as_ref(), late).await);
    assert_ne!(next.id, batch.id);
    assert_eq!(next.member_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_batches_conform_across_two_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("executions.sqlite3");
    let a: Arc<dyn ExecutionStore> = Arc::new(SqliteExecutionStore::open(&path).unwrap());
    let b: Arc<dyn ExecutionStore> = Arc::new(SqliteExecutionStore::open(&path).unwrap());
    conformance(Arc::clone(&a), b, "month-end").await;
    full_batches_take_no_more(a, "tens").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_batches_conform() {
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
    conformance(Arc::clone(&a), b, "month-end").await;
    full_batches_take_no_more(a, "tens").await;
}
