//! The job tracker against moto (DynamoDB executions table with its status index, SNS topic
//! with an SQS queue subscribed to read what was published) and the Alteryx emulator: jobs
//! that end Success and Error, a job that stays running past the limit, and a job id Alteryx
//! no longer knows. Every case ends in a recorded state and, for failures, one notice: a
//! subject and a body for people, message attributes for machines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alteryx_router_core::alteryx::{ClientOptions, JobRequest, ServerConfig};
use alteryx_router_core::executions::{
    Claim, DynamoExecutionStore, Execution, ExecutionStatus, ExecutionStore, now_unix,
};
use alteryx_router_core::job_report::MessageLevel;
use alteryx_router_core::secrets::ClientPool;
use alteryx_router_core::secrets::{SecretString, StaticSource};
use alteryx_router_core::tables;
use alteryx_router_core::tracker::{SnsNotifier, Tracker, TrackerSettings};
use alteryx_router_emulator::{self as emulator, EmulatedWorkflow, EmulatorConfig, JobOutcome};

const OK_WF: &str = "wf-ok";
const ERR_WF: &str = "wf-err";
const STUCK_WF: &str = "wf-stuck";

fn workflow(id: &str, outcome: JobOutcome) -> EmulatedWorkflow {
    EmulatedWorkflow {
        id: id.into(),
        name: id.into(),
        questions: Vec::new(),
        outcome,
    }
}

fn submitted(rule: &str, key: &str, workflow: &str, job_id: &str) -> Execution {
    let now = now_unix();
    Execution {
        workflow: workflow.into(),
        job_id: Some(job_id.into()),
        submitted_at: Some(now),
        lease_until: Some(now + 300),
        ..common::execution(rule, key, now)
    }
}

/// Claim the record, then move it to SUBMITTED, as the router does.
async fn record_submitted(store: &dyn ExecutionStore, record: Execution) {
    let Claim::Acquired(mut claimed) = store
        .claim(common::claimed_by(record, Duration::from_secs(300)))
        .await
        .unwrap()
    else {
        panic!("fresh claim")
    };
    claimed.status = ExecutionStatus::Submitted;
    claimed.lease_until = None;
    store
        .update(&claimed, ExecutionStatus::Claimed)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_records_outcomes_flags_stuck_jobs_once_and_closes_unknown_jobs() {
    let sdk = common::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = common::unique("executions");
    tables::create_table(&dynamo, &table, &tables::executions_table())
        .await
        .unwrap();
    let store: Arc<dyn ExecutionStore> = Arc::new(DynamoExecutionStore::new(dynamo, table));

    // SNS topic with an SQS queue subscribed: what the tracker publishes lands in the queue.
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name(common::unique("failures"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(common::unique("inbox"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .unwrap();

    let emu = emulator::start(
        EmulatorConfig {
            workflows: vec![
                workflow(OK_WF, JobOutcome::Success),
                workflow(ERR_WF, JobOutcome::Error),
                workflow(STUCK_WF, JobOutcome::Stuck),
            ],
            credentials: vec![("k".into(), "s".into())],
            job_duration: Duration::from_millis(200),
            ..EmulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config =
        ServerConfig::from_parts(&emu.gallery_url(), "k", SecretString::new("s"), None, None)
            .unwrap();
    let pool = Arc::new(ClientPool::new(
        Arc::new(StaticSource(config)),
        ClientOptions::default(),
    ));
    let client = pool.client(None).await.unwrap();
    let request = JobRequest::default();
    let mut jobs = BTreeMap::new();
    for wf in [OK_WF, ERR_WF, STUCK_WF] {
        jobs.insert(wf, client.submit_job(wf, &request).await.unwrap().id);
    }
    let ok = submitted("ok", "a.csv", OK_WF, &jobs[OK_WF]);
    let err = submitted("err", "b.csv", ERR_WF, &jobs[ERR_WF]);
    let stuck = submitted("stuck", "c.csv", STUCK_WF, &jobs[STUCK_WF]);
    // A job id from another (or a wiped) server: Alteryx answers 404 for it.
    let gone = submitted("gone", "d.csv", OK_WF, "0000000000000000deadbeef");
    for r in [&ok, &err, &stuck, &gone] {
        record_submitted(store.as_ref(), r.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await; // let the finite jobs finish

    let tracker = Tracker::new(
        store.clone(),
        pool.clone(),
        Arc::new(SnsNotifier::new(sns.clone(), topic.clone())),
        TrackerSettings {
            stuck_after: Duration::ZERO,
            ..TrackerSettings::default()
        },
    );
    let report = tracker.run_once().await;
    assert_eq!(report.checked, 4, "{report:?}");
    assert_eq!(
        (report.completed, report.failed, report.stuck),
        (1, 2, 1),
        "{report:?}"
    );
    assert!(report.errors.is_empty(), "{report:?}");
    // What finished, for the metrics: the rule, the outcome, how long since submission.
    let mut finished: Vec<(String, ExecutionStatus, bool)> = report
        .finished
        .iter()
        .map(|f| (f.rule_id.clone(), f.status, f.duration_seconds.is_some()))
        .collect();
    finished.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        finished,
        [
            ("err".to_string(), ExecutionStatus::Failed, true),
            ("gone".to_string(), ExecutionStatus::Failed, true),
            ("ok".to_string(), ExecutionStatus::Completed, true),
        ]
    );

    let get = |id: String| {
        let store = store.clone();
        async move { store.get(&id).await.unwrap().unwrap() }
    };
    let done = get(ok.id.clone()).await;
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.disposition.as_deref(), Some("Success"));
    assert!(done.finished_at.is_some());
    let failed = get(err.id.clone()).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(failed.disposition.as_deref(), Some("Error"));
    // Alteryx's error lines, and the whole report (errors first, outputs) kept on the record.
    assert_eq!(
        failed.message.as_deref().unwrap_or("").lines().next(),
        Some("Error: Input Data (1): File not found")
    );
    let kept = failed.job_report.clone().expect("job report kept");
    assert_eq!(kept.job_id, jobs[ERR_WF]);
    assert_eq!(kept.messages[0].level, MessageLevel::Error);
    assert_eq!(kept.outputs.len(), 1, "{kept:?}");
    assert!(
        done.job_report
            .as_ref()
            .is_some_and(|r| r.disposition.as_deref() == Some("Success"))
    );
    let unknown = get(gone.id.clone()).await;
    assert_eq!(unknown.status, ExecutionStatus::Failed);
    let why = unknown.message.unwrap();
    assert!(
        why.contains("no longer knows job 0000000000000000deadbeef"),
        "{why}"
    );
    assert_eq!(unknown.job_report, None, "Alteryx said nothing about it");
    let running = get(stuck.id.clone()).await;
    assert_eq!(running.status, ExecutionStatus::Submitted, "still tracked");
    assert!(
        running.stuck_at.is_some_and(|at| at >= now_unix() - 60),
        "{running:?}"
    );
    assert!(
        running
            .message
            .as_deref()
            .unwrap_or("")
            .contains(&format!("job {} still", jobs[STUCK_WF])),
        "{running:?}"
    );
    assert!(get(ok.id.clone()).await.stuck_at.is_none());

    // Three notices: the Error job, the unknown job, the stuck job, each naming what it is.
    let notices = receive_all(&sqs, &queue_url, 3).await;
    let mut kinds: Vec<(String, String)> = notices
        .iter()
        .map(|n| (attribute(n, "kind"), attribute(n, "rule_id")))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [("failed", "err"), ("failed", "gone"), ("stuck", "stuck")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let err_notice = notices
        .iter()
        .find(|n| attribute(n, "rule_id") == "err")
        .unwrap();
    assert_eq!(attribute(err_notice, "workflow"), ERR_WF);
    assert_eq!(attribute(err_notice, "job_id"), jobs[ERR_WF]);
    assert_eq!(attribute(err_notice, "key"), "b.csv");
    assert_eq!(attribute(err_notice, "status"), "FAILED");
    assert_eq!(attribute(err_notice, "disposition"), "Error");
    assert_eq!(
        err_notice["Subject"],
        format!("Alteryx job failed: rule err, file b.csv, workflow {ERR_WF}")
    );
    let body = err_notice["Message"].as_str().unwrap();
    assert!(
        body.contains("\n  Error: Input Data (1): File not found\n"),
        "{body}"
    );
    assert!(
        body.contains(&format!("\n  alteryx-router executions retry {}\n", err.id)),
        "{body}"
    );
    let stuck_notice = notices
        .iter()
        .find(|n| attribute(n, "kind") == "stuck")
        .unwrap();
    assert_eq!(attribute(stuck_notice, "status"), "SUBMITTED");
    let body = stuck_notice["Message"].as_str().unwrap();
    assert!(body.contains("still queued or running"), "{body}");
    assert!(
        !body.contains("executions retry"),
        "nothing to retry yet: {body}"
    );

    // A second run: the stuck job is still running but is not flagged (or published) again,
    // and finished executions are no longer looked at.
    let again = tracker.run_once().await;
    assert_eq!(
        (again.checked, again.still_running, again.stuck),
        (1, 1, 0),
        "{again:?}"
    );
    assert!(receive_all(&sqs, &queue_url, 0).await.is_empty());
    emu.shutdown().await;
}

/// A message attribute of a notice (as SNS delivers it to SQS: `{"Type", "Value"}`).
fn attribute(notice: &serde_json::Value, name: &str) -> String {
    notice["MessageAttributes"][name]["Value"]
        .as_str()
        .unwrap_or_else(|| panic!("no attribute {name} in {notice}"))
        .to_string()
}

/// Read notices (SNS's envelopes: `Subject`, `Message`, `MessageAttributes`) from the queue
/// until `expected` arrived (or, for 0, one empty poll).
async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for _ in 0..10 {
        let messages = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        for m in messages {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if out.len() >= expected {
            break;
        }
    }
    out
}

/// A notice that cannot be published is an error naming the topic, with SNS's answer as its
/// cause (the tracker logs it with `error_chain` and carries on).
#[tokio::test]
async fn a_notice_to_a_missing_topic_names_the_topic_and_keeps_the_cause() {
    use alteryx_router_core::tracker::{FailureNotice, NoticeKind, Notifier, NotifyError};
    let sdk = common::aws_config().await;
    let topic = format!(
        "arn:aws:sns:us-east-1:123456789012:{}",
        common::unique("missing")
    );
    let notifier = SnsNotifier::new(aws_sdk_sns::Client::new(&sdk), topic.clone());
    let notice =
        FailureNotice::of_execution(NoticeKind::Failed, &common::execution("r", "k", now_unix()));
    let e = notifier.notify("subject", &notice).await.unwrap_err();
    assert!(
        matches!(&e, NotifyError::Publish { topic_arn, .. } if *topic_arn == topic),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("publishing to {topic}"));
    let chain = alteryx_router_core::error_chain(&e);
    assert!(chain.contains("NotFound"), "SNS's answer is kept: {chain}");
}

/// A record written before `stuck_at` existed, flagged the old way (a `stuck:` message
/// prefix), reads from the store and is not flagged — or notified — a second time.
#[tokio::test]
async fn a_record_flagged_stuck_by_an_older_version_is_not_flagged_again() {
    use alteryx_router_core::executions::SqliteExecutionStore;
    use alteryx_router_core::tracker::LogNotifier;

    let emu = emulator::start(
        EmulatorConfig {
            workflows: vec![workflow(STUCK_WF, JobOutcome::Stuck)],
            credentials: vec![("k".into(), "s".into())],
            ..EmulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config =
        ServerConfig::from_parts(&emu.gallery_url(), "k", SecretString::new("s"), None, None)
            .unwrap();
    let pool = Arc::new(ClientPool::new(
        Arc::new(StaticSource(config)),
        ClientOptions::default(),
    ));
    let job = pool
        .client(None)
        .await
        .unwrap()
        .submit_job(STUCK_WF, &JobRequest::default())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("executions.sqlite3");
    let store = Arc::new(SqliteExecutionStore::open(&path).unwrap());
    let mut old = submitted("legacy", "e.csv", STUCK_WF, &job.id);
    old.status = ExecutionStatus::Submitted;
    old.lease_until = None;
    let legacy_message = format!("stuck: job {} still Running after 61 minutes", job.id);
    old.message = Some(legacy_message.clone());
    let mut json = serde_json::to_value(&old).unwrap();
    json.as_object_mut().unwrap().remove("stuck_at");
    assert!(!json.to_string().contains("stuck_at"));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO executions (id, status, attempt, rule_id, created_at, record)
             VALUES (?1, 'SUBMITTED', 1, 'legacy', ?2, ?3)",
            rusqlite::params![old.id, old.created_at, json.to_string()],
        )
        .unwrap();

    let tracker = Tracker::new(
        store.clone(),
        pool,
        Arc::new(LogNotifier),
        TrackerSettings {
            stuck_after: Duration::ZERO,
            ..TrackerSettings::default()
        },
    );
    let report = tracker.run_once().await;
    assert_eq!(
        (report.checked, report.still_running, report.stuck),
        (1, 1, 0),
        "{report:?}"
    );
    let read = store.get(&old.id).await.unwrap().unwrap();
    assert_eq!(
        (read.stuck_at, read.message.as_deref()),
        (None, Some(legacy_message.as_str()))
    );
    emu.shutdown().await;
}

/// A SQLite store, the emulator with one workflow per outcome, and a pool over it.
async fn small_world(
    workflows: Vec<EmulatedWorkflow>,
) -> (
    tempfile::TempDir,
    Arc<dyn ExecutionStore>,
    alteryx_router_emulator::EmulatorHandle,
    Arc<ClientPool>,
) {
    let emu = emulator::start(
        EmulatorConfig {
            workflows,
            credentials: vec![("k".into(), "s".into())],
            job_duration: Duration::from_millis(100),
            ..EmulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config =
        ServerConfig::from_parts(&emu.gallery_url(), "k", SecretString::new("s"), None, None)
            .unwrap();
    let pool = Arc::new(ClientPool::new(
        Arc::new(StaticSource(config)),
        ClientOptions::default(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ExecutionStore> = Arc::new(
        alteryx_router_core::executions::SqliteExecutionStore::open(
            &dir.path().join("executions.sqlite3"),
        )
        .unwrap(),
    );
    (dir, store, emu, pool)
}

/// Only Alteryx's own JSON 404 closes an execution: a proxy's HTML 404 page (maintenance) is
/// a transient error, and the next pass records the job's real outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxys_404_page_is_not_a_job_alteryx_forgot() {
    let (_dir, store, emu, pool) = small_world(vec![workflow(OK_WF, JobOutcome::Success)]).await;
    let job = pool
        .client(None)
        .await
        .unwrap()
        .submit_job(OK_WF, &JobRequest::default())
        .await
        .unwrap();
    let record = submitted("proxied", "p.csv", OK_WF, &job.id);
    record_submitted(store.as_ref(), record.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tracker = Tracker::new(
        store.clone(),
        pool,
        Arc::new(alteryx_router_core::tracker::LogNotifier),
        TrackerSettings::default(),
    );
    emu.inject(alteryx_router_emulator::Fault::Html404 { count: 1 });
    let report = tracker.run_once().await;
    assert_eq!((report.checked, report.failed), (1, 0), "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.errors[0].contains("404"), "{report:?}");
    assert_eq!(
        store.get(&record.id).await.unwrap().unwrap().status,
        ExecutionStatus::Submitted
    );
    let report = tracker.run_once().await;
    assert_eq!(report.completed, 1, "{report:?}");
    emu.shutdown().await;
}

/// Every SUBMITTED execution is polled, oldest first, a bounded number per pass, each pass
/// continuing where the last stopped; after the newest it starts again from the oldest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_poll_oldest_first_with_a_cursor() {
    let (_dir, store, emu, pool) = small_world(vec![workflow(STUCK_WF, JobOutcome::Stuck)]).await;
    let client = pool.client(None).await.unwrap();
    let now = now_unix();
    for i in 0..5 {
        let job = client
            .submit_job(STUCK_WF, &JobRequest::default())
            .await
            .unwrap();
        let mut r = submitted("rule", &format!("{i}.csv"), STUCK_WF, &job.id);
        r.created_at = now - 100 + i; // 0.csv is the oldest
        record_submitted(store.as_ref(), r).await;
    }
    let tracker = Tracker::new(
        store.clone(),
        pool,
        Arc::new(alteryx_router_core::tracker::LogNotifier),
        TrackerSettings {
            max_executions: 2,
            ..TrackerSettings::default()
        },
    );
    let before = emu.stats().operations.get_job;
    let mut seen = Vec::new();
    for expected in [2, 2, 1, 2] {
        let report = tracker.run_once().await;
        assert_eq!(report.checked, expected, "{report:?}");
        assert_eq!(report.still_running, expected);
        seen.push((report.checked, report.wrapped));
    }
    assert_eq!(seen, [(2, false), (2, false), (1, true), (2, false)]);
    assert_eq!(emu.stats().operations.get_job - before, 7, "one poll each");
    emu.shutdown().await;
}

/// A tracker pass finds claims whose invocation died: one that never sent a job request
/// becomes a retryable ERROR; one whose request reached Alteryx is reconciled and adopts its
/// job; a live claim and one that expired only just now are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_claims_are_counted_reconciled_and_released() {
    use alteryx_router_core::executions::{Claimant, LeaseState, now_unix_ms};
    let (_dir, store, emu, pool) = small_world(vec![workflow(OK_WF, JobOutcome::Success)]).await;
    let now = now_unix();
    let claim = |key: &str, lease_until: i64| {
        let mut r = common::execution("rule", key, now - 1000);
        r.workflow = OK_WF.into();
        let c = Claimant::new(lease_until);
        r.claim_token = Some(c.token);
        r.lease_until = Some(lease_until);
        r
    };
    // Died before sending: CLAIMED, lease over for 10 minutes.
    let dead = claim("dead.csv", now - 600);
    store.claim(dead.clone()).await.unwrap();
    // Died while its job request was in flight: SUBMITTING, and Alteryx has the job.
    let mid = claim("mid.csv", now - 600);
    store.claim(mid.clone()).await.unwrap();
    let mut intent = store.get(&mid.id).await.unwrap().unwrap();
    intent.status = ExecutionStatus::Submitting;
    intent.submit_started_at = Some(now_unix_ms() - 2000);
    intent.reconcile_after = Some(now_unix_ms() - 1000);
    store
        .update(&intent, ExecutionStatus::Claimed)
        .await
        .unwrap();
    let job = pool
        .client(None)
        .await
        .unwrap()
        .submit_job(OK_WF, &JobRequest::default())
        .await
        .unwrap();
    // Alive, and only just expired.
    let live = claim("live.csv", now + 600);
    store.claim(live.clone()).await.unwrap();
    let fresh = claim("fresh.csv", now - 5);
    store.claim(fresh.clone()).await.unwrap();

    let tracker = Tracker::new(
        store.clone(),
        pool,
        Arc::new(alteryx_router_core::tracker::LogNotifier),
        TrackerSettings {
            stale_after: Duration::from_secs(60),
            ..TrackerSettings::default()
        },
    );
    let report = tracker.run_once().await;
    assert_eq!(report.stale_claims, 2, "{report:?}");
    assert_eq!((report.adopted, report.released), (1, 1), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let dead = store.get(&dead.id).await.unwrap().unwrap();
    assert_eq!(
        (dead.status, dead.retryable),
        (ExecutionStatus::Error, true)
    );
    assert!(
        dead.message
            .as_deref()
            .unwrap_or("")
            .contains("killed or timed out"),
        "{dead:?}"
    );
    let mid = store.get(&mid.id).await.unwrap().unwrap();
    assert_eq!(mid.status, ExecutionStatus::Submitted, "{mid:?}");
    assert_eq!(mid.job_id.as_deref(), Some(job.id.as_str()));
    assert_eq!(mid.attempt, 2);
    for untouched in [&live, &fresh] {
        let r = store.get(&untouched.id).await.unwrap().unwrap();
        assert_eq!((r.status, r.attempt), (ExecutionStatus::Claimed, 1));
    }
    assert!(matches!(
        store
            .get(&live.id)
            .await
            .unwrap()
            .unwrap()
            .lease_state(now_unix()),
        Some(LeaseState::Live(_))
    ));
    assert_eq!(emu.jobs().len(), 1, "the tracker never submits");
    let again = tracker.run_once().await;
    assert_eq!(again.stale_claims, 0, "repaired: {again:?}");
    emu.shutdown().await;
}

/// The secret is rotated while the tracker holds a client with the old credentials: the
/// refused poll reads the secret again (Secrets Manager on moto) and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_reads_a_rotated_secret_again() {
    use alteryx_router_core::secrets::SecretsManagerSource;
    let (_dir, store, emu, _) = small_world(vec![workflow(OK_WF, JobOutcome::Success)]).await;
    let sdk = common::aws_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret_id = common::unique("alteryx/tracker");
    let secret = |key: &str, value: &str| {
        serde_json::json!({"ALTERYX_URL": emu.gallery_url(), "ALTERYX_KEY": key, "ALTERYX_SECRET": value})
            .to_string()
    };
    sm.create_secret()
        .name(&secret_id)
        .secret_string(secret("k", "s"))
        .send()
        .await
        .unwrap();
    let pool = Arc::new(ClientPool::new(
        Arc::new(SecretsManagerSource::new(
            sm.clone(),
            Some(secret_id.clone()),
            None,
        )),
        ClientOptions::default(),
    ));
    let client = pool.client(None).await.unwrap();
    let job = client
        .submit_job(OK_WF, &JobRequest::default())
        .await
        .unwrap();
    let record = submitted("rotated", "r.csv", OK_WF, &job.id);
    record_submitted(store.as_ref(), record.clone()).await;
    emu.set_credentials(vec![("k2".into(), "s2".into())]);
    sm.put_secret_value()
        .secret_id(&secret_id)
        .secret_string(secret("k2", "s2"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tracker = Tracker::new(
        store.clone(),
        pool,
        Arc::new(alteryx_router_core::tracker::LogNotifier),
        TrackerSettings::default(),
    );
    let report = tracker.run_once().await;
    assert_eq!(report.completed, 1, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    emu.shutdown().await;
}

/// A workflow with many jobs in flight is asked for its job list once a pass: jobs the list
/// shows running are not read on their own, finished ones are (their messages), and so is a
/// job a complete list does not show (Alteryx no longer knows it: recorded, not lost). A pass
/// where nothing changed reads one list page and no job. A list that fails falls back to one
/// poll per job, and is not a tracker error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_asks_each_busy_workflow_for_its_job_list_instead_of_each_job() {
    let (_dir, store, emu, pool) = small_world(vec![
        workflow(OK_WF, JobOutcome::Success),
        workflow(STUCK_WF, JobOutcome::Stuck),
    ])
    .await;
    let client = pool.client(None).await.unwrap();
    for (wf, n) in [(OK_WF, 12), (STUCK_WF, 11)] {
        for i in 0..n {
            let job = client.submit_job(wf, &JobRequest::default()).await.unwrap();
            let record = submitted(wf, &format!("{i}.csv"), wf, &job.id);
            record_submitted(store.as_ref(), record).await;
        }
    }
    let forgotten = submitted(STUCK_WF, "forgotten.csv", STUCK_WF, "no-such-job");
    record_submitted(store.as_ref(), forgotten.clone()).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // the OK_WF jobs end
    let tracker = Tracker::new(
        store.clone(),
        pool,
        Arc::new(alteryx_router_core::tracker::LogNotifier),
        TrackerSettings::default(),
    );
    let before = emu.stats().operations;
    let report = tracker.run_once().await;
    let after = emu.stats().operations;
    assert_eq!(report.checked, 24, "{report:?}");
    assert_eq!(
        (report.completed, report.failed, report.still_running),
        (12, 1, 11)
    );
    assert_eq!((report.list_calls, report.job_polls), (2, 13), "{report:?}");
    assert_eq!(after.list_jobs - before.list_jobs, 2);
    assert_eq!(after.get_job - before.get_job, 13);
    assert!(report.errors.is_empty(), "{report:?}");
    let gone = store.get(&forgotten.id).await.unwrap().unwrap();
    assert_eq!(gone.status, ExecutionStatus::Failed, "{gone:?}");

    // Nothing changed: one list page, no job read.
    let report = tracker.run_once().await;
    assert_eq!(
        (report.checked, report.still_running),
        (11, 11),
        "{report:?}"
    );
    assert_eq!(
        (report.list_calls, report.job_polls, report.deferred),
        (1, 0, 0)
    );
    assert_eq!(emu.stats().operations.get_job, after.get_job);

    // The list request fails: each job is polled on its own (young jobs: every pass).
    emu.inject(alteryx_router_emulator::Fault::Status {
        status: 400,
        count: 1,
    });
    let report = tracker.run_once().await;
    assert_eq!(
        (report.list_failures, report.job_polls),
        (1, 11),
        "{report:?}"
    );
    assert_eq!(report.still_running, 11);
    assert!(report.errors.is_empty(), "{report:?}");
    emu.shutdown().await;
}

/// Jobs no list covers are polled less often the older they get: every pass while young;
/// an hour-old job once, then not again within its interval — and a cold start (a new
/// process) polls it once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_jobs_are_polled_less_often() {
    let (_dir, store, emu, pool) = small_world(vec![workflow(STUCK_WF, JobOutcome::Stuck)]).await;
    let client = pool.client(None).await.unwrap();
    for i in 0..3 {
        let job = client
            .submit_job(STUCK_WF, &JobRequest::default())
            .await
            .unwrap();
        let mut r = submitted("rule", &format!("{i}.csv"), STUCK_WF, &job.id);
        if i > 0 {
            r.submitted_at = Some(now_unix() - 3600);
        }
        record_submitted(store.as_ref(), r).await;
    }
    let tracker = |store: Arc<dyn ExecutionStore>| {
        Tracker::new(
            store,
            pool.clone(),
            Arc::new(alteryx_router_core::tracker::LogNotifier),
            TrackerSettings::default(),
        )
    };
    let warm = tracker(store.clone());
    let first = warm.run_once().await;
    assert_eq!(
        (first.job_polls, first.deferred, first.list_calls),
        (3, 0, 0),
        "{first:?}"
    );
    let second = warm.run_once().await;
    assert_eq!((second.job_polls, second.deferred), (1, 2), "{second:?}");
    assert_eq!(
        second.still_running, 1,
        "deferred ones are not counted as checked running"
    );
    let cold = tracker(store.clone()).run_once().await;
    assert_eq!((cold.job_polls, cold.deferred), (3, 0), "{cold:?}");
    emu.shutdown().await;
}
