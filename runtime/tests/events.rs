//! Every event fixture in tests/events (shaped like AWS's documented examples) decodes to the
//! facts a rule should see; key encodings are handled per source.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alteryx_router::event::{Decoded, EventError, ObjectCreated, decode_str};

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn objects(name: &str) -> Vec<ObjectCreated> {
    match decode_str(&fixture(name)).unwrap() {
        Decoded::Objects(o) => o,
        other => panic!("{name}: expected objects, got {other:?}"),
    }
}

fn skipped(name: &str) -> String {
    match decode_str(&fixture(name)).unwrap() {
        Decoded::Skipped(reason) => reason,
        other => panic!("{name}: expected skipped, got {other:?}"),
    }
}

fn sqs_objects(name: &str) -> Vec<ObjectCreated> {
    match decode_str(&fixture(name)).unwrap() {
        Decoded::Sqs(messages) => messages
            .into_iter()
            .flat_map(|m| match m.result.unwrap() {
                Decoded::Objects(o) => o,
                other => panic!("{name}: {other:?}"),
            })
            .collect(),
        other => panic!("{name}: expected an SQS batch, got {other:?}"),
    }
}

#[test]
fn eventbridge_object_created_gives_every_fact_and_keeps_the_key_as_written() {
    let [o] = objects("eventbridge-object-created.json")
        .try_into()
        .unwrap();
    assert_eq!(o.bucket, "acme-landing");
    assert_eq!(o.key, "incoming/sales/2026/11/24/sales-eu.csv");
    assert_eq!(o.size, 48213);
    assert_eq!(o.etag.as_deref(), Some("9b2cf535f27731c974343645a3985328"));
    assert_eq!(
        o.version_id.as_deref(),
        Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
    );
    assert_eq!(o.sequencer.as_deref(), Some("00617F08299329D189"));
    assert_eq!(o.event_time, "2026-11-24T09:15:02Z");
    assert_eq!(o.reason.as_deref(), Some("PutObject"));
    assert_eq!(o.source, "eventbridge");
    assert_eq!(o.version_token(), "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e");
    let [jp] = objects("eventbridge-japanese-key.json").try_into().unwrap();
    assert_eq!(
        jp.key, "受信/2026年/売上 データ+v2.csv",
        "EventBridge keys are not URL-encoded"
    );
}

#[test]
fn classic_notifications_form_decode_keys() {
    let o = objects("s3-put.json");
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].key, "受信/2026年/売上 データ+v2.csv");
    assert_eq!(
        o[1].key,
        "incoming/sales/2026/11/24/q4 report:final 100%.csv"
    );
    assert_eq!(o[0].reason.as_deref(), Some("Put"));
    assert_eq!(
        o[0].version_token(),
        "0C0F6F405D6ED209E1",
        "no version id: the sequencer identifies the version"
    );
}

#[test]
fn sns_and_sqs_wrappings_are_unwrapped() {
    let [o] = objects("sns-s3.json").try_into().unwrap();
    assert_eq!(
        (o.key.as_str(), o.source.as_str()),
        ("incoming/sales/2026/11/24/via sns.csv", "sns/s3")
    );
    let [o] = sqs_objects("sqs-s3.json").try_into().unwrap();
    assert_eq!(
        (o.key.as_str(), o.source.as_str()),
        ("incoming/sales/2026/11/24/via sqs.csv", "sqs/s3")
    );
    let [o] = sqs_objects("sqs-sns-s3.json").try_into().unwrap();
    assert_eq!(
        (o.key.as_str(), o.source.as_str()),
        ("incoming/sales/2026/11/24/via sns.csv", "sqs/sns/s3")
    );
    let [o] = sqs_objects("sqs-eventbridge.json").try_into().unwrap();
    assert_eq!(o.key, "incoming/sales/2026/11/24/sales-eu.csv");
}

#[test]
fn other_events_are_skipped_with_a_reason() {
    assert!(skipped("eventbridge-object-deleted.json").contains("Object Deleted"));
    assert!(skipped("s3-delete.json").contains("ObjectRemoved:Delete"));
    assert!(skipped("s3-test-event.json").contains("test event"));
    let folder = fixture("eventbridge-object-created.json")
        .replace("incoming/sales/2026/11/24/sales-eu.csv", "incoming/sales/");
    match decode_str(&folder).unwrap() {
        Decoded::Skipped(r) => assert!(r.contains("folder placeholder"), "{r}"),
        other => panic!("{other:?}"),
    }
    let ec2 = r#"{"version":"0","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#;
    assert!(matches!(decode_str(ec2).unwrap(), Decoded::Skipped(r) if r.contains("aws.ec2")));
}

#[test]
fn malformed_input_is_an_error_naming_what_is_wrong() {
    match decode_str("{\"Records\": [") {
        Err(EventError::Json { detail }) => assert!(detail.contains("line 1"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let no_key = r#"{"source":"aws.s3","detail-type":"Object Created","time":"t","detail":{"bucket":{"name":"b"},"object":{"size":1}}}"#;
    let e = decode_str(no_key).unwrap_err().to_string();
    assert!(e.contains("detail.object.key is missing"), "{e}");
    let bad_size = r#"{"source":"aws.s3","detail-type":"Object Created","time":"t","detail":{"bucket":{"name":"b"},"object":{"key":"k","size":-3}}}"#;
    assert!(
        decode_str(bad_size)
            .unwrap_err()
            .to_string()
            .contains("size")
    );
    let bad_escape = fixture("s3-put.json").replace("%E5%8F%97", "%FF%FF");
    assert!(
        decode_str(&bad_escape)
            .unwrap_err()
            .to_string()
            .contains("UTF-8")
    );
}

#[test]
fn sqs_messages_decode_one_by_one() {
    let mut batch: serde_json::Value = serde_json::from_str(&fixture("sqs-s3.json")).unwrap();
    let mut bad = batch["Records"][0].clone();
    bad["messageId"] = "bad-1".into();
    bad["body"] = "not json".into();
    batch["Records"].as_array_mut().unwrap().push(bad);
    match alteryx_router::event::decode(&batch).unwrap() {
        Decoded::Sqs(messages) => {
            assert_eq!(messages.len(), 2);
            assert!(messages[0].result.is_ok());
            assert_eq!(messages[1].message_id, "bad-1");
            assert!(matches!(messages[1].result, Err(EventError::Json { .. })));
        }
        other => panic!("{other:?}"),
    }
}
