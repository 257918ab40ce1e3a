//! Rules at scale against moto's server: the snapshot (published, read, refreshed after an
//! edit made behind the CLI's back, refused when it is of another table), parallel scans and
//! batch writes, the last good rule set served while the table is gone or DynamoDB throttles
//! (a fault-injecting interceptor around the real client), and invalid items notified once per
//! change through SNS (subscribed by an SQS queue, as a person's e-mail would be).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::rules::problems::SnsProblemNotifier;
use alteryx_router_core::rules::publish::SnapshotPublisher;
use alteryx_router_core::rules::snapshot_store::{SnapshotLocation, SnapshotStore};
use alteryx_router_core::rules::{
    DynamoRuleStore, Rule, RuleError, RuleSource, parse_rules_document,
};
use aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;

async fn new_table() -> (aws_sdk_dynamodb::Client, String) {
    let sdk = common::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = common::unique("rules-scale");
    alteryx_router_core::tables::create_table(
        &client,
        &table,
        &alteryx_router_core::tables::rules_table(),
    )
    .await
    .unwrap();
    (client, table)
}

async fn snapshot_store() -> SnapshotStore {
    let sdk = common::aws_config().await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let bucket = common::unique("snapshots");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    SnapshotStore::new(
        s3,
        SnapshotLocation::parse(&format!("s3://{bucket}/rules/snapshot.bin")).unwrap(),
    )
}

fn rules(yaml: &str) -> Vec<Rule> {
    parse_rules_document(yaml, "test").unwrap()
}

fn object(key: &str) -> ObjectCreated {
    ObjectCreated {
        bucket: "acme-landing".into(),
        key: key.into(),
        size: 10,
        etag: None,
        version_id: None,
        sequencer: Some("1".into()),
        event_time: "2026-11-24T09:15:02Z".into(),
        reason: None,
        source: "test".into(),
    }
}

async fn matched(store: &DynamoRuleStore, key: &str) -> Vec<String> {
    store
        .rule_set()
        .await
        .unwrap()
        .matching(&object(key))
        .iter()
        .map(|r| r.rule.id.clone())
        .collect()
}

async fn put_raw(client: &aws_sdk_dynamodb::Client, table: &str, item: &[(&str, &str)]) {
    let item: HashMap<String, AttributeValue> = item
        .iter()
        .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
        .collect();
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_router_reads_the_snapshot_and_sees_console_edits_once_it_is_republished() {
    let (client, table) = new_table().await;
    let snapshot = snapshot_store().await;
    let writer = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    let many: String = (0..60)
        .map(|i| format!("- {{id: p{i:03}, key: 'incoming/p{i:03}/**/*.csv', workflow: w{i}}}\n"))
        .collect();
    writer.put_many(&rules(&many)).await.unwrap();
    let publisher = SnapshotPublisher::new(client.clone(), table.clone(), snapshot.clone());
    let first = publisher.publish().await.unwrap();
    assert_eq!(
        (first.rules, first.invalid.len(), first.attempts),
        (60, 0, 1)
    );

    let router = DynamoRuleStore::new(client.clone(), table.clone(), Duration::from_millis(300))
        .with_snapshot(snapshot.clone());
    assert_eq!(matched(&router, "incoming/p007/2026/a.csv").await, ["p007"]);
    let loaded = router.rule_set().await.unwrap();
    assert_eq!(loaded.len(), 60);

    // An edit in the console: the router keeps the snapshot's view until it is republished
    // (the stream function's job), then sees the edit within RULES_CACHE_SECONDS.
    put_raw(
        &client,
        &table,
        &[
            ("id", "p007"),
            ("key", "moved/p007/*.csv"),
            ("workflow", "w7"),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let unchanged = router.rule_set().await.unwrap();
    assert!(Arc::ptr_eq(&loaded, &unchanged), "a 304 keeps the same set");
    let stream_event = serde_json::json!({"Records": [{"eventSource": "aws:dynamodb", "eventName": "MODIFY",
        "dynamodb": {"Keys": {"id": {"S": "p007"}}}}]});
    let answer = publisher.handle_event(&stream_event).await.unwrap();
    assert_eq!(answer["changed"], serde_json::json!(["p007"]));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(matched(&router, "moved/p007/x.csv").await, ["p007"]);
    assert!(
        matched(&router, "incoming/p007/2026/a.csv")
            .await
            .is_empty()
    );

    // A snapshot of another table is not used: the router scans its own.
    let (other_client, other_table) = new_table().await;
    let elsewhere = DynamoRuleStore::new(other_client, other_table, Duration::ZERO)
        .with_snapshot(snapshot.clone());
    assert!(elsewhere.rule_set().await.unwrap().is_empty());

    // Two writers racing: the one that started from an older snapshot starts over.
    let a = SnapshotPublisher::new(client.clone(), table.clone(), snapshot.clone());
    let (ra, rb) = tokio::join!(a.publish(), publisher.publish());
    assert_eq!((ra.unwrap().rules, rb.unwrap().rules), (60, 60));
}

#[tokio::test]
async fn parallel_segments_read_every_item_once() {
    let (client, table) = new_table().await;
    let writer = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    let many: String = (0..130)
        .map(|i| format!("- {{id: r{i:03}, key: 't/{i}/**', workflow: w}}\n"))
        .collect();
    writer.put_many(&rules(&many)).await.unwrap();
    for segments in [1, 3, 8] {
        let store = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO)
            .with_scan_segments(segments)
            .with_page_size(9);
        let listed = store.list().await.unwrap();
        let ids: Vec<String> = listed.iter().map(|(id, _)| id.clone()).collect();
        let want: Vec<String> = (0..130).map(|i| format!("r{i:03}")).collect();
        assert_eq!(ids, want, "{segments} segments");
    }
}

#[tokio::test]
async fn a_vanished_table_is_served_from_the_last_good_set_until_max_stale() {
    let (client, table) = new_table().await;
    // Generous against a loaded machine (1.5 s flaked): the stale checks below run well
    // inside it, the last one after it, measured from when the set was last read.
    let max_stale = Duration::from_secs(3);
    let store = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO)
        .with_max_stale(max_stale);
    store
        .put(&rules("{id: a, key: 'in/**', workflow: w}")[0])
        .await
        .unwrap();
    assert_eq!(matched(&store, "in/x").await, ["a"]);
    // The set was confirmed current before this instant.
    let after_last_read = std::time::Instant::now();
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    // Failing refreshes serve the last good set (with a warning)...
    assert_eq!(matched(&store, "in/x").await, ["a"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(matched(&store, "in/x").await, ["a"]);
    // ... until it is older than RULES_MAX_STALE_SECONDS: then the error, naming the table.
    let past = (after_last_read + max_stale + Duration::from_millis(200))
        .saturating_duration_since(std::time::Instant::now());
    tokio::time::sleep(past).await;
    let e = store.rule_set().await.unwrap_err();
    assert!(matches!(e, RuleError::Store { .. }), "{e:?}");
    assert!(alteryx_router_core::error_chain(&e).contains(&table));
}

/// Lets `pass` DynamoDB requests through, then answers the next `fail` with a throttling
/// error (each request still reaches moto; only its answer is replaced).
#[derive(Debug)]
struct Throttle {
    pass: u32,
    fail: u32,
    seen: Arc<AtomicU32>,
}

impl Intercept for Throttle {
    fn name(&self) -> &'static str {
        "Throttle"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        if n >= self.pass && n - self.pass < self.fail {
            let response = context.response_mut();
            *response.status_mut() = 400.try_into()?;
            response
                .headers_mut()
                .insert("x-amzn-errortype", "ProvisionedThroughputExceededException");
        }
        Ok(())
    }
}

async fn throttled_client(pass: u32, fail: u32) -> (aws_sdk_dynamodb::Client, Arc<AtomicU32>) {
    let sdk = common::aws_config().await;
    let seen = Arc::new(AtomicU32::new(0));
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(Throttle {
            pass,
            fail,
            seen: Arc::clone(&seen),
        })
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), seen)
}

#[tokio::test]
async fn throttled_reads_are_retried_with_backoff_and_then_served_stale() {
    let (client, table) = new_table().await;
    DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO)
        .put(&rules("{id: a, key: 'in/**', workflow: w}")[0])
        .await
        .unwrap();
    // Three throttles in a row (the SDK's default would give up after them): retried.
    let (throttled, seen) = throttled_client(0, 3).await;
    let store =
        DynamoRuleStore::new(throttled, table.clone(), Duration::ZERO).with_scan_segments(1);
    assert_eq!(matched(&store, "in/x").await, ["a"]);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        4,
        "three throttled attempts, then the answer"
    );

    // Throttled on every attempt from the start: nothing to fall back on, the error says why.
    let (always, seen) = throttled_client(0, u32::MAX).await;
    let fresh = DynamoRuleStore::new(always, table.clone(), Duration::ZERO).with_scan_segments(1);
    let e = fresh.rule_set().await.unwrap_err();
    let chain = alteryx_router_core::error_chain(&e);
    assert!(chain.contains("ProvisionedThroughputExceeded"), "{chain}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        6,
        "every attempt the retry policy allows"
    );

    // Loaded once, then throttled for good: the last good set keeps routing.
    let (later, _) = throttled_client(1, u32::MAX).await;
    let store = DynamoRuleStore::new(later, table.clone(), Duration::ZERO)
        .with_scan_segments(1)
        .with_max_stale(Duration::from_secs(60));
    assert_eq!(matched(&store, "in/x").await, ["a"]);
    assert_eq!(matched(&store, "in/x").await, ["a"], "served stale");
}

#[tokio::test]
async fn an_invalid_console_edit_is_notified_once_per_change_naming_rule_field_and_fix() {
    let sdk = common::aws_config().await;
    let (client, table) = new_table().await;
    let snapshot = snapshot_store().await;
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
    let queue = sqs
        .create_queue()
        .queue_name(common::unique("inbox"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
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
    let publisher = SnapshotPublisher::new(client.clone(), table.clone(), snapshot.clone())
        .with_notifier(Arc::new(SnsProblemNotifier::new(sns, topic)));
    DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO)
        .put(&rules("{id: good, key: 'in/**', workflow: w}")[0])
        .await
        .unwrap();
    put_raw(
        &client,
        &table,
        &[
            ("id", "sales-csv"),
            ("key", "in/**"),
            ("workflow", "w"),
            ("prority", "1"),
        ],
    )
    .await;

    let inbox = || async {
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let got = sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in got.messages.unwrap_or_default() {
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(m.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
                bodies.push(serde_json::from_str::<serde_json::Value>(&m.body.unwrap()).unwrap());
            }
        }
        bodies
    };
    let published = publisher.publish().await.unwrap();
    assert_eq!(published.rules, 1);
    assert_eq!(published.notified, ["sales-csv"]);
    let messages = inbox().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let subject = messages[0]["Subject"].as_str().unwrap();
    let body = messages[0]["Message"].as_str().unwrap();
    assert!(
        subject.contains("sales-csv") && subject.contains("prority"),
        "{subject}"
    );
    assert!(
        body.contains("Field:   prority") && body.contains("rename"),
        "{body}"
    );
    let notice: serde_json::Value = serde_json::from_str(
        messages[0]["MessageAttributes"]["notice"]["Value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            notice["kind"].as_str(),
            notice["rule"].as_str(),
            notice["field"].as_str()
        ),
        (Some("invalid_rule"), Some("sales-csv"), Some("prority"))
    );

    // Published again (another change, the hourly run): the same problem is not notified again.
    assert!(publisher.publish().await.unwrap().notified.is_empty());
    assert!(inbox().await.is_empty());
    // A new edit that is still wrong is a new problem.
    put_raw(
        &client,
        &table,
        &[("id", "sales-csv"), ("key", "in/[a"), ("workflow", "w")],
    )
    .await;
    assert_eq!(publisher.publish().await.unwrap().notified, ["sales-csv"]);
    let messages = inbox().await;
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0]["Message"]
            .as_str()
            .unwrap()
            .contains("Field:   key")
    );
    // The router skips it and routes the rest.
    let router = DynamoRuleStore::new(client, table, Duration::ZERO).with_snapshot(snapshot);
    assert_eq!(matched(&router, "in/x").await, ["good"]);
}
