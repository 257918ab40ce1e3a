//! The DynamoDB rule store and the Secrets Manager credential source against moto's server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use alteryx_router_core::rules::{DynamoRuleStore, RuleError, RuleSource, parse_rules_document};
use alteryx_router_core::secrets::{CredentialSource, SecretsError, SecretsManagerSource};
use aws_sdk_dynamodb::types::AttributeValue;

async fn rules_table() -> (aws_sdk_dynamodb::Client, String) {
    let sdk = common::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = common::unique("rules");
    alteryx_router_core::tables::create_table(
        &client,
        &table,
        &alteryx_router_core::tables::rules_table(),
    )
    .await
    .unwrap();
    (client, table)
}

#[tokio::test]
async fn rules_round_trip_and_an_invalid_item_is_skipped() {
    let (client, table) = rules_table().await;
    let store = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    let rules = parse_rules_document(
        "- {id: a, key: 'in/**', workflow: w1, questions: {P: '{s3_uri}'}, plugin: {name: csv-header, config: {delimiter: ';'}}}\n- {id: b, key: '**', workflow: w2, priority: 1}",
        "t",
    )
    .unwrap();
    for r in &rules {
        store.put(r).await.unwrap();
    }
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].1.as_ref().unwrap(),
        &rules[0],
        "a rule reads back exactly as written"
    );
    // Invalid input is refused before writing.
    let bad = parse_rules_document("{id: c, key: '[', workflow: w}", "t")
        .unwrap()
        .remove(0);
    assert!(
        matches!(store.put(&bad).await, Err(RuleError::Invalid { field, .. }) if field == "key")
    );
    // An invalid item written behind our back is skipped; the others keep working.
    let item: HashMap<String, AttributeValue> = [
        ("id".to_string(), AttributeValue::S("broken".into())),
        ("key".to_string(), AttributeValue::S("**".into())),
        ("workflow".to_string(), AttributeValue::S("w".into())),
        ("colour".to_string(), AttributeValue::S("blue".into())),
    ]
    .into();
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let set = store.rule_set().await.unwrap();
    assert_eq!(
        set.rules()
            .iter()
            .map(|r| r.rule.id.as_str())
            .collect::<Vec<_>>(),
        ["b", "a"]
    );
    let listed = store.list().await.unwrap();
    let broken = listed.iter().find(|(id, _)| id == "broken").unwrap();
    assert!(
        broken
            .1
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("colour")
    );
    assert!(store.delete("a").await.unwrap());
    assert!(!store.delete("a").await.unwrap());
}

#[tokio::test]
async fn scans_follow_pages_and_the_cache_holds_for_its_ttl() {
    let (client, table) = rules_table().await;
    let writer = DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO);
    for i in 0..25 {
        let r = parse_rules_document(
            &format!("{{id: r{i:03}, key: 'k/{i}/*', workflow: w}}"),
            "t",
        )
        .unwrap()
        .remove(0);
        writer.put(&r).await.unwrap();
    }
    let paged =
        DynamoRuleStore::new(client.clone(), table.clone(), Duration::ZERO).with_page_size(4);
    assert_eq!(paged.rule_set().await.unwrap().len(), 25, "7 pages of 4");
    let cached = DynamoRuleStore::new(client.clone(), table.clone(), Duration::from_secs(60));
    assert_eq!(cached.rule_set().await.unwrap().len(), 25);
    writer.delete("r000").await.unwrap();
    assert_eq!(
        cached.rule_set().await.unwrap().len(),
        25,
        "served from cache"
    );
    assert_eq!(
        paged.rule_set().await.unwrap().len(),
        24,
        "no cache: sees the delete"
    );
}

#[tokio::test]
async fn secrets_in_the_recipe_layout_are_read_and_bad_ones_named() {
    let sdk = common::aws_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let good = common::unique("alteryx/prod");
    sm.create_secret()
        .name(&good)
        .secret_string(r#"{"ALTERYX_URL":"https://alteryx.example.com/gallery/api/","ALTERYX_KEY":"k1","ALTERYX_SECRET":"top-secret-1","NOTE":"extra fields are fine"}"#)
        .send()
        .await
        .unwrap();
    let not_json = common::unique("alteryx/bad");
    sm.create_secret()
        .name(&not_json)
        .secret_string("top-secret-2")
        .send()
        .await
        .unwrap();
    let no_key = common::unique("alteryx/nokey");
    sm.create_secret()
        .name(&no_key)
        .secret_string(r#"{"ALTERYX_URL":"https://h/webapi/","ALTERYX_SECRET":"top-secret-3"}"#)
        .send()
        .await
        .unwrap();
    let source = SecretsManagerSource::new(sm.clone(), Some(good.clone()), None);
    let config = source.server_config(None).await.unwrap();
    assert_eq!(
        (config.key.as_str(), config.secret.expose()),
        ("k1", "top-secret-1")
    );
    let errors = [
        source
            .server_config(Some("alteryx/missing"))
            .await
            .unwrap_err(),
        source.server_config(Some(&not_json)).await.unwrap_err(),
        source.server_config(Some(&no_key)).await.unwrap_err(),
    ];
    assert!(
        matches!(&errors[0], SecretsError::NotFound { secret_id } if secret_id == "alteryx/missing")
    );
    assert!(matches!(&errors[1], SecretsError::NotJson { .. }));
    assert!(matches!(
        &errors[2],
        SecretsError::MissingField {
            field: "ALTERYX_KEY",
            ..
        }
    ));
    assert!(
        errors[2].to_string().contains(&no_key) && errors[2].to_string().contains("ALTERYX_KEY")
    );
    for e in &errors {
        let text = format!("{e} {e:?}");
        assert!(!text.contains("top-secret"), "{text}");
        assert!(!e.is_retryable());
    }
    let nothing = SecretsManagerSource::new(sm, None, None);
    assert!(matches!(
        nothing.server_config(None).await,
        Err(SecretsError::NoSecretConfigured)
    ));
}
