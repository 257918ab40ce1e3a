//! One conformance suite, run against both execution stores (SQLite and DynamoDB on moto):
//! claims, duplicates, concurrent claims, lease takeover, retryable errors, optimistic
//! updates, manual retries, listing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use alteryx_router_core::executions::{
    Claim, DynamoExecutionStore, Execution, ExecutionError, ExecutionStatus, ExecutionStore,
    ListFilter, SqliteExecutionStore, now_unix,
};

fn record(rule: &str, key: &str, created_at: i64) -> Execution {
    common::execution(rule, key, created_at)
}

const LEASE: Duration = Duration::from_secs(300);

async fn conformance(store: Arc<dyn ExecutionStore>, second: Arc<dyn ExecutionStore>) {
    let now = now_unix();
    // Fresh claim, then a duplicate.
    let r = record("rule-a", "k1.csv", now);
    let Claim::Acquired(mine) = store.claim(r.clone(), LEASE).await.unwrap() else {
        panic!("fresh claim")
    };
    assert_eq!((mine.status, mine.attempt), (ExecutionStatus::Claimed, 1));
    assert!(mine.lease_until.unwrap() >= now + 299);
    assert!(matches!(
        store.claim(r.clone(), LEASE).await.unwrap(),
        Claim::Duplicate(_)
    ));

    // Submitted; an update with the wrong expected status conflicts.
    let mut submitted = mine.clone();
    submitted.status = ExecutionStatus::Submitted;
    submitted.job_id = Some("job-1".into());
    store
        .update(&submitted, ExecutionStatus::Claimed)
        .await
        .unwrap();
    assert!(matches!(
        store.update(&submitted, ExecutionStatus::Claimed).await,
        Err(ExecutionError::Conflict { .. })
    ));
    let stored = store.get(&r.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.job_id.as_deref()),
        (ExecutionStatus::Submitted, Some("job-1"))
    );
    match store.claim(r.clone(), LEASE).await.unwrap() {
        Claim::Duplicate(existing) => assert_eq!(existing.job_id.as_deref(), Some("job-1")),
        other => panic!("{other:?}"),
    }

    // Concurrent claims from two store instances: exactly one wins.
    let race = record("rule-a", "race.csv", now);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 {
            Arc::clone(&store)
        } else {
            Arc::clone(&second)
        };
        let r = race.clone();
        tasks.push(tokio::spawn(
            async move { s.claim(r, LEASE).await.unwrap() },
        ));
    }
    let mut won = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Claim::Acquired(_)) {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one of 16 concurrent claims wins");

    // A claim whose lease expired is taken over (attempt 2).
    let stale = record("rule-a", "stale.csv", now);
    let Claim::Acquired(_) = store.claim(stale.clone(), Duration::ZERO).await.unwrap() else {
        panic!()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    match second.claim(stale.clone(), LEASE).await.unwrap() {
        Claim::Acquired(taken) => assert_eq!(taken.attempt, 2),
        other => panic!("expired lease must be taken over: {other:?}"),
    }

    // Retryable ERROR may be re-claimed; a non-retryable one may not.
    for (key, retryable) in [("err-retry.csv", true), ("err-final.csv", false)] {
        let r = record("rule-a", key, now);
        let Claim::Acquired(mut c) = store.claim(r.clone(), LEASE).await.unwrap() else {
            panic!()
        };
        c.status = ExecutionStatus::Error;
        c.retryable = retryable;
        c.message = Some("Alteryx answered 503".into());
        store.update(&c, ExecutionStatus::Claimed).await.unwrap();
        let again = store.claim(r, LEASE).await.unwrap();
        assert_eq!(matches!(again, Claim::Acquired(_)), retryable, "{key}");
    }

    // Manual retries: FAILED → CLAIMED attempt+1; SUBMITTED refused; unknown id; one winner.
    let f = record("rule-b", "failed.csv", now);
    let Claim::Acquired(mut c) = store.claim(f.clone(), LEASE).await.unwrap() else {
        panic!()
    };
    c.status = ExecutionStatus::Failed;
    c.message = Some("job failed".into());
    store.update(&c, ExecutionStatus::Claimed).await.unwrap();
    let (a, b) = tokio::join!(
        store.claim_retry(&f.id, LEASE),
        second.claim_retry(&f.id, LEASE)
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
        store.claim_retry(&r.id, LEASE).await,
        Err(ExecutionError::NotRetryable {
            status: ExecutionStatus::Submitted,
            ..
        })
    ));
    assert!(matches!(
        store.claim_retry("rule-a:0000000000000000", LEASE).await,
        Err(ExecutionError::NotFound(_))
    ));

    // Listing: by status, newest first, since, rule, limit.
    let old = record("rule-c", "old.csv", now - 7200);
    let Claim::Acquired(mut o) = store.claim(old, LEASE).await.unwrap() else {
        panic!()
    };
    o.status = ExecutionStatus::Submitted;
    store.update(&o, ExecutionStatus::Claimed).await.unwrap();
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
    let by_rule = store
        .list(&ListFilter {
            rule_id: Some("rule-b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_rule.len(), 1);
    let all = store.list(&ListFilter::default()).await.unwrap();
    assert!(
        all.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
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
    let Claim::Acquired(mut c) = store.claim(flagged.clone(), LEASE).await.unwrap() else {
        panic!()
    };
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
    let retried = second.claim_retry(&c.id, LEASE).await.unwrap();
    assert_eq!((retried.attempt, retried.stuck_at), (2, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms_across_two_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("executions.sqlite3");
    let a: Arc<dyn ExecutionStore> = Arc::new(SqliteExecutionStore::open(&path).unwrap());
    let b: Arc<dyn ExecutionStore> = Arc::new(SqliteExecutionStore::open(&path).unwrap());
    conformance(a, b).await;
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
    let Claim::Acquired(mut c) = a
        .claim(record("rule-e", "flag.csv", now_unix()), LEASE)
        .await
        .unwrap()
    else {
        panic!()
    };
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
