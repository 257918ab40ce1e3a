//! The DynamoDB rule store against moto's server, on a table created here with nothing but
//! the documented key (partition key `id`, a string): items are exactly the rule's fields,
//! scans follow every page, an invalid item is skipped while the others keep routing, and the
//! in-process cache holds for its TTL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use alteryx_router_core::alteryx::Priority;
use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::rules::{
    DynamoRuleStore, PluginSpec, Rule, RuleError, RuleSource, parse_rules_document,
};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};

async fn table() -> (aws_sdk_dynamodb::Client, String) {
    let sdk = common::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let name = common::unique("rules-store");
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    (client, name)
}

fn rule(yaml: &str) -> Rule {
    parse_rules_document(yaml, "test").unwrap().remove(0)
}

fn object(key: &str) -> ObjectCreated {
    ObjectCreated {
        bucket: "acme-landing".into(),
        key: key.into(),
        size: 2048,
        etag: None,
        version_id: None,
        sequencer: Some("1".into()),
        event_time: "2026-11-24T09:15:02Z".into(),
        reason: None,
        source: "test".into(),
    }
}

async fn put_raw(client: &aws_sdk_dynamodb::Client, table: &str, item: &[(&str, AttributeValue)]) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(
            item.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ))
        .send()
        .await
        .unwrap();
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[tokio::test]
async fn a_rule_with_every_field_is_stored_as_exactly_its_fields_and_reads_back_equal() {
    let (client, table) = table().await;
    let store = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    let full = Rule {
        id: "sales-csv".into(),
        description: Some("Clean up daily sales files — 売上".into()),
        enabled: true,
        priority: -5,
        bucket: Some("acme-*".into()),
        key: "incoming/sales/**/*.csv".into(),
        exclude: vec!["**/_tmp/**".into(), "**/*.part".into()],
        min_size: Some(1),
        max_size: Some(52_428_800),
        workflow: "5f3c0e5a2c1b0a0001d1e001".into(),
        secret_id: Some("alteryx/prod".into()),
        questions: BTreeMap::from([
            ("InputPath".into(), "{s3_uri}".into()),
            ("Note".into(), "{{literal}} {key.name}".into()),
            ("Url".into(), "{presigned_url}".into()),
        ]),
        plugin: Some(PluginSpec {
            name: "csv-header".into(),
            read_bytes: 4096,
            config: serde_json::json!({"delimiter": ";", "required": ["Region"], "nested": {"n": 1.5, "ok": true}}),
            sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
            timeout_ms: Some(250),
            memory_mb: Some(64),
            read_budget_bytes: Some(65536),
            workflows: vec!["5f3c0e5a2c1b0a0001d1e002".into()],
        }),
        is_final: true,
        job_priority: Some(Priority::High),
        max_concurrent_jobs: Some(4),
        concurrency_group: Some("nightly".into()),
        presign_expiry_seconds: Some(900),
        worker_tag: Some("gpu".into()),
        credential_id: Some("6543210fedcba98765430001".into()),
        batch: Some(alteryx_router_core::rules::batch::BatchSpec {
            by: "{key.dir}".into(),
            require: vec!["orders.csv".into(), "ledger-*.csv".into()],
            quiet_seconds: Some(300),
            max_files: Some(500),
            max_wait_seconds: Some(3600),
            on_timeout: alteryx_router_core::rules::batch::OnTimeout::Run,
        }),
    };
    store.put(&full).await.unwrap();
    let minimal = rule("{id: minimal, key: '**', workflow: w}");
    store.put(&minimal).await.unwrap();

    let listed = store.list().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["minimal", "sales-csv"]);
    assert_eq!(listed[1].1.as_ref().unwrap(), &full);
    assert_eq!(listed[0].1.as_ref().unwrap(), &minimal);

    // The item's attributes are the rule's field names, `final` included; unset optional
    // fields are absent rather than stored as NULL.
    let item = client
        .get_item()
        .table_name(&table)
        .key("id", s("sales-csv"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "batch",
            "bucket",
            "concurrency_group",
            "credential_id",
            "description",
            "enabled",
            "exclude",
            "final",
            "id",
            "job_priority",
            "key",
            "max_concurrent_jobs",
            "max_size",
            "min_size",
            "plugin",
            "presign_expiry_seconds",
            "priority",
            "questions",
            "secret_id",
            "worker_tag",
            "workflow"
        ]
    );
    assert_eq!(item["priority"], AttributeValue::N("-5".into()));
    assert_eq!(item["final"], AttributeValue::Bool(true));
    let minimal_item = client
        .get_item()
        .table_name(&table)
        .key("id", s("minimal"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut names: Vec<&str> = minimal_item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["enabled", "final", "id", "key", "priority", "workflow"]
    );

    let set = store.rule_set().await.unwrap();
    let matched = set.matching(&object("incoming/sales/2026/eu.csv"));
    assert_eq!(matched.len(), 1, "final stops before `minimal`");
    assert_eq!(
        matched[0]
            .render_with(
                &object("incoming/sales/2026/eu.csv"),
                None,
                Some("https://u")
            )
            .unwrap()["Note"],
        "{literal} eu.csv"
    );
}

#[tokio::test]
async fn invalid_input_is_refused_before_anything_is_written() {
    let (client, table) = table().await;
    let store = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    let bad = rule("{id: bad, key: 'in/**', workflow: w, questions: {P: '{bukket}'}}");
    match store.put(&bad).await {
        Err(RuleError::Invalid { rule, field, .. }) => {
            assert_eq!((rule.as_str(), field.as_str()), ("bad", "questions.P"));
        }
        other => panic!("{other:?}"),
    }
    let found = client
        .get_item()
        .table_name(&table)
        .key("id", s("bad"))
        .send()
        .await
        .unwrap();
    assert!(found.item.is_none());
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_items_are_skipped_and_listed_with_why_while_the_others_route() {
    let (client, table) = table().await;
    let store = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    store
        .put(&rule(
            "{id: good, key: 'incoming/**', workflow: w, questions: {P: '{key.name}'}}",
        ))
        .await
        .unwrap();
    // Written behind the store's back, as someone editing the table by hand could.
    let n = |v: &str| AttributeValue::N(v.into());
    put_raw(
        &client,
        &table,
        &[
            ("id", s("typo")),
            ("key", s("**")),
            ("workflow", s("w")),
            ("prority", n("1")),
        ],
    )
    .await;
    put_raw(
        &client,
        &table,
        &[
            ("id", s("priority-as-text")),
            ("key", s("**")),
            ("workflow", s("w")),
            ("priority", s("high")),
        ],
    )
    .await;
    put_raw(
        &client,
        &table,
        &[
            ("id", s("bad-glob")),
            ("key", s("incoming/[a")),
            ("workflow", s("w")),
        ],
    )
    .await;
    put_raw(
        &client,
        &table,
        &[("id", s("no-workflow")), ("key", s("**"))],
    )
    .await;
    put_raw(
        &client,
        &table,
        &[
            ("id", s("bad template")),
            ("key", s("**")),
            ("workflow", s("w")),
        ],
    )
    .await;

    let set = store.rule_set().await.unwrap();
    let ids: Vec<&str> = set.rules().iter().map(|r| r.rule.id.as_str()).collect();
    assert_eq!(ids, ["good"]);
    assert_eq!(set.matching(&object("incoming/a.csv")).len(), 1);

    let listed: HashMap<String, Result<Rule, RuleError>> =
        store.list().await.unwrap().into_iter().collect();
    assert_eq!(listed.len(), 6);
    let why = |id: &str| listed[id].as_ref().unwrap_err().to_string();
    let field = |id: &str| match listed[id].as_ref().unwrap_err() {
        RuleError::Invalid { field, .. } => field.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(field("typo"), "prority");
    assert_eq!(field("no-workflow"), "workflow");
    assert_eq!(field("priority-as-text"), "priority");
    assert!(
        why("priority-as-text")
            .starts_with("rule `priority-as-text`, field `priority`: wrong type"),
        "{}",
        why("priority-as-text")
    );
    assert!(why("typo").contains("prority"), "{}", why("typo"));
    assert!(why("typo").starts_with("rule `typo`"), "{}", why("typo"));
    assert!(why("priority-as-text").contains("rule `priority-as-text`"));
    assert!(
        why("bad-glob").starts_with("rule `bad-glob`, field `key`"),
        "{}",
        why("bad-glob")
    );
    assert!(
        why("no-workflow").contains("workflow"),
        "{}",
        why("no-workflow")
    );
    assert!(
        why("bad template").contains("field `id`"),
        "{}",
        why("bad template")
    );
    assert!(listed["good"].is_ok());
}

#[tokio::test]
async fn scans_follow_every_page() {
    let (client, table) = table().await;
    let writer = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    for i in 0..120 {
        writer
            .put(&rule(&format!(
                "{{id: r{i:03}, priority: {}, key: 'teams/t{i}/**', workflow: wf{i}}}",
                i % 4
            )))
            .await
            .unwrap();
    }
    // 7 items a page: 18 pages, the last one partial.
    let paged =
        DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO).with_page_size(7);
    let listed = paged.list().await.unwrap();
    assert_eq!(listed.len(), 120);
    let expected: Vec<String> = (0..120).map(|i| format!("r{i:03}")).collect();
    assert_eq!(
        listed.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        expected,
        "every item once, sorted by id"
    );
    let set = paged.rule_set().await.unwrap();
    assert_eq!(set.len(), 120);
    let matched = set.matching(&object("teams/t117/in.csv"));
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0].rule.workflow, "wf117");
    // Evaluation order: priority, then id.
    assert_eq!(set.rules()[0].rule.id, "r000");
    assert_eq!(set.rules()[1].rule.id, "r004");
    assert_eq!(set.rules()[30].rule.id, "r001");
}

#[tokio::test]
async fn the_cache_holds_for_its_ttl_and_own_writes_refresh_it() {
    let (client, table) = table().await;
    let store = DynamoRuleStore::new(client.clone(), table.clone(), Duration::from_millis(800));
    store
        .put(&rule("{id: a, key: 'a/**', workflow: w}"))
        .await
        .unwrap();
    let first = store.rule_set().await.unwrap();
    assert_eq!(first.len(), 1);
    // Another writer (a second Lambda instance, the console) adds a rule.
    put_raw(
        &client,
        &table,
        &[("id", s("b")), ("key", s("b/**")), ("workflow", s("w"))],
    )
    .await;
    let cached = store.rule_set().await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &cached), "served from cache");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        store.rule_set().await.unwrap().len(),
        2,
        "reloaded after the TTL"
    );
    // This store's own writes take effect at once.
    store
        .put(&rule("{id: c, key: 'c/**', workflow: w}"))
        .await
        .unwrap();
    assert_eq!(store.rule_set().await.unwrap().len(), 3);
    assert!(store.delete("a").await.unwrap());
    assert!(!store.delete("a").await.unwrap(), "already gone");
    let ids: Vec<String> = store
        .rule_set()
        .await
        .unwrap()
        .rules()
        .iter()
        .map(|r| r.rule.id.clone())
        .collect();
    assert_eq!(ids, ["b", "c"]);
}

#[tokio::test]
async fn a_missing_table_is_a_store_error_naming_it() {
    let sdk = common::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let name = common::unique("no-such-table");
    let store = DynamoRuleStore::new(client, name.clone(), Duration::ZERO);
    match store.rule_set().await {
        Err(e @ RuleError::Store { .. }) => {
            let message = alteryx_router_core::error_chain(&e);
            assert!(
                message.contains(&name) && message.contains("Scan"),
                "{message}"
            );
            assert!(
                std::error::Error::source(&e).is_some(),
                "the SDK error is kept as the cause"
            );
            assert!(message.contains("ResourceNotFound"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

/// `job_priority` items written by hand in any case keep working; a value that is not a
/// priority makes that rule invalid (naming rule and field) while the others route.
#[tokio::test]
async fn job_priority_items_are_read_in_any_case_and_a_bad_one_is_named() {
    let (client, table) = table().await;
    let store = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    for (id, priority) in [("upper", "HIGH"), ("title", "Critical"), ("bad", "urgent")] {
        put_raw(
            &client,
            &table,
            &[
                ("id", s(id)),
                ("key", s("**")),
                ("workflow", s("w")),
                ("job_priority", s(priority)),
            ],
        )
        .await;
    }
    let listed: HashMap<String, Result<Rule, RuleError>> =
        store.list().await.unwrap().into_iter().collect();
    let priority = |id: &str| listed[id].as_ref().unwrap().job_priority;
    assert_eq!(priority("upper"), Some(Priority::High));
    assert_eq!(priority("title"), Some(Priority::Critical));
    match listed["bad"].as_ref().unwrap_err() {
        RuleError::Invalid {
            rule,
            field,
            message,
        } => {
            assert_eq!((rule.as_str(), field.as_str()), ("bad", "job_priority"));
            assert!(message.contains("\"urgent\" is not low"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.rule_set().await.unwrap().len(), 2);
    // Written back by the store in the documented spelling.
    store.put(listed["upper"].as_ref().unwrap()).await.unwrap();
    let item = client
        .get_item()
        .table_name(&table)
        .key("id", s("upper"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["job_priority"], s("high"));
}
