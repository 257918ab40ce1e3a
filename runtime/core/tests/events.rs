//! Every event fixture in tests/events (shaped like AWS's documented examples) decodes to the
//! facts a rule should see; key encodings are handled per source.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alteryx_router_core::event::{Decoded, EventError, ObjectCreated, decode_str};

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/events")
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
        "b21b84d653bb07b05b1e6b33684dc11b",
        "no version id: the ETag identifies the version (a listing has it too)"
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
    let bad_size = r#"{"source":"aws.s3","detail-type":"Object Created","time":"t","detail":{"bucket":{"name":"bkt"},"object":{"key":"k","size":-3}}}"#;
    assert!(
        decode_str(bad_size)
            .unwrap_err()
            .to_string()
            .contains("size")
    );
    // One bad record of two: the other is still there to route, the bad one is named.
    let bad_escape = fixture("s3-put.json").replace("%E5%8F%97", "%FF%FF");
    match decode_str(&bad_escape).unwrap() {
        Decoded::Partial { objects, rejected } => {
            assert_eq!(objects.len(), 1, "{objects:?}");
            assert!(!objects[0].key.contains('\u{FFFD}'));
            assert_eq!(rejected.len(), 1, "{rejected:?}");
            assert!(
                rejected[0].starts_with("malformed S3 notification: record ")
                    && rejected[0].contains("UTF-8"),
                "{rejected:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The same record alone is a malformed event.
    let mut alone: serde_json::Value = serde_json::from_str(&bad_escape).unwrap();
    let records = alone["Records"].as_array().unwrap().clone();
    let bad = records
        .into_iter()
        .find(|r| r["s3"]["object"]["key"].as_str().unwrap().contains("%FF"))
        .unwrap();
    alone["Records"] = serde_json::json!([bad]);
    let e = alteryx_router_core::event::decode(&alone)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("malformed S3 notification: record 0: ") && e.contains("UTF-8"),
        "{e}"
    );
}

#[test]
fn sqs_messages_decode_one_by_one() {
    let mut batch: serde_json::Value = serde_json::from_str(&fixture("sqs-s3.json")).unwrap();
    let mut bad = batch["Records"][0].clone();
    bad["messageId"] = "bad-1".into();
    bad["body"] = "not json".into();
    batch["Records"].as_array_mut().unwrap().push(bad);
    match alteryx_router_core::event::decode(&batch).unwrap() {
        Decoded::Sqs(messages) => {
            assert_eq!(messages.len(), 2);
            assert!(messages[0].result.is_ok());
            assert_eq!(messages[1].message_id, "bad-1");
            assert!(matches!(messages[1].result, Err(EventError::Json { .. })));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_fixture_decodes_without_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 11, "{names:?}");
    for name in names {
        match decode_str(&fixture(&name)) {
            Ok(Decoded::Sqs(messages)) => {
                for m in messages {
                    assert!(m.result.is_ok(), "{name}: {}: {:?}", m.message_id, m.result);
                }
            }
            Ok(_) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

#[test]
fn both_encodings_of_the_same_keys_give_the_same_key() {
    let classic: Vec<String> = objects("s3-put.json").into_iter().map(|o| o.key).collect();
    let eventbridge: Vec<String> = [
        "eventbridge-japanese-key.json",
        "eventbridge-special-key.json",
    ]
    .iter()
    .map(|name| objects(name).remove(0).key)
    .collect();
    assert_eq!(classic, eventbridge);
    assert_eq!(
        eventbridge,
        [
            "受信/2026年/売上 データ+v2.csv",
            "incoming/sales/2026/11/24/q4 report:final 100%.csv"
        ]
    );
}

fn eventbridge_with_key(key: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&fixture("eventbridge-object-created.json")).unwrap();
    event["detail"]["object"]["key"] = key.into();
    event.to_string()
}

fn s3_with_key(encoded_key: &str) -> String {
    let mut event: serde_json::Value = serde_json::from_str(&fixture("s3-put.json")).unwrap();
    event["Records"][0]["s3"]["object"]["key"] = encoded_key.into();
    event["Records"].as_array_mut().unwrap().truncate(1);
    event.to_string()
}

fn only_key(text: &str) -> String {
    match decode_str(text).unwrap() {
        Decoded::Objects(mut o) if o.len() == 1 => o.remove(0).key,
        other => panic!("{other:?}"),
    }
}

#[test]
fn eventbridge_keys_are_never_decoded_and_classic_keys_always_are() {
    // What looks like an escape in an EventBridge key is part of the name.
    for key in [
        "a%2Bb.csv",
        "a+b.csv",
        "100%.csv",
        "a%20b %zz.csv",
        "日本/語.csv",
    ] {
        assert_eq!(only_key(&eventbridge_with_key(key)), key);
    }
    // Classic notifications: form decoding, including `%2F` (some emulators escape `/`) and
    // `+` vs `%2B`, and a lone `%` that was escaped as `%25`.
    for (encoded, key) in [
        ("a+b%2Bc.csv", "a b+c.csv"),
        ("in%2Fsales%2Fa.csv", "in/sales/a.csv"),
        ("100%25+done.csv", "100% done.csv"),
        ("a%3Ab%3Dc%26d.csv", "a:b=c&d.csv"),
        (
            "%E5%8F%97%E4%BF%A1%2F%E5%A3%B2%E4%B8%8A.csv",
            "受信/売上.csv",
        ),
    ] {
        assert_eq!(only_key(&s3_with_key(encoded)), key, "{encoded}");
    }
    // A folder placeholder is recognised after decoding.
    assert!(matches!(
        decode_str(&s3_with_key("new+folder%2F")).unwrap(),
        Decoded::Skipped(r) if r.contains("s3://acme-landing/new folder/") && r.contains("folder placeholder")
    ));
}

#[test]
fn a_records_batch_keeps_its_objects_and_skips_the_rest() {
    let mut batch: serde_json::Value = serde_json::from_str(&fixture("s3-put.json")).unwrap();
    let delete: serde_json::Value = serde_json::from_str(&fixture("s3-delete.json")).unwrap();
    let records = batch["Records"].as_array_mut().unwrap();
    records.insert(1, delete["Records"][0].clone());
    let mut folder = records[0].clone();
    folder["s3"]["object"]["key"] = "incoming/".into();
    records.push(folder);
    match alteryx_router_core::event::decode(&batch).unwrap() {
        Decoded::Objects(o) => assert_eq!(
            o.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            [
                "受信/2026年/売上 データ+v2.csv",
                "incoming/sales/2026/11/24/q4 report:final 100%.csv"
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sqs_batches_report_each_message_on_its_own() {
    let template: serde_json::Value = serde_json::from_str(&fixture("sqs-s3.json")).unwrap();
    let message = |id: &str, body: Option<String>| {
        let mut m = template["Records"][0].clone();
        m["messageId"] = id.into();
        match body {
            Some(b) => m["body"] = b.into(),
            None => {
                m.as_object_mut().unwrap().remove("body");
            }
        }
        m
    };
    let batch = serde_json::json!({"Records": [
        message("created", Some(fixture("eventbridge-object-created.json"))),
        message("test-event", Some(fixture("s3-test-event.json"))),
        message("deleted", Some(fixture("eventbridge-object-deleted.json"))),
        message("no-body", None),
        message("truncated", Some("{\"Records\": [".into())),
        message("sns", Some(serde_json::json!({"Type": "Notification", "Message": fixture("s3-put.json")}).to_string())),
    ]});
    let Decoded::Sqs(messages) = alteryx_router_core::event::decode(&batch).unwrap() else {
        panic!("expected an SQS batch");
    };
    let summary: Vec<(String, String)> = messages
        .into_iter()
        .map(|m| {
            let what = match m.result {
                Ok(Decoded::Objects(o)) => format!("objects:{}", o.len()),
                Ok(Decoded::Skipped(r)) => format!("skipped:{r}"),
                Ok(Decoded::Partial { objects, rejected }) => {
                    format!("partial:{}:{}", objects.len(), rejected.len())
                }
                Ok(Decoded::Sqs(_)) => "sqs".into(),
                Err(e) => format!("error:{e}"),
            };
            (m.message_id, what)
        })
        .collect();
    assert_eq!(summary[0], ("created".into(), "objects:1".into()));
    assert!(
        summary[1].1.starts_with("skipped:S3 test event"),
        "{summary:?}"
    );
    assert!(summary[2].1.contains("Object Deleted"), "{summary:?}");
    assert_eq!(
        summary[3],
        (
            "no-body".into(),
            "error:malformed SQS message: record has no `body`".into()
        )
    );
    assert!(
        summary[4].1.starts_with("error:event is not valid JSON")
            && summary[4].1.contains("column"),
        "{summary:?}"
    );
    assert_eq!(summary[5], ("sns".into(), "objects:2".into()));
}

#[test]
fn broken_wrappers_are_errors_that_say_where() {
    let not_a_list = decode_str(r#"{"Records": {"eventSource": "aws:s3"}}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        not_a_list,
        "malformed Records event: `Records` is not a list"
    );
    let mut sns: serde_json::Value = serde_json::from_str(&fixture("sns-s3.json")).unwrap();
    sns["Records"][0]["Sns"]["Message"] = "{not json".into();
    assert!(matches!(
        alteryx_router_core::event::decode(&sns),
        Err(EventError::Json { .. })
    ));
    sns["Records"][0]["Sns"]
        .as_object_mut()
        .unwrap()
        .remove("Message");
    assert_eq!(
        alteryx_router_core::event::decode(&sns)
            .unwrap_err()
            .to_string(),
        "malformed SNS notification: `Message` is missing or not a string"
    );
    let mut no_bucket: serde_json::Value = serde_json::from_str(&fixture("s3-put.json")).unwrap();
    no_bucket["Records"][1]["s3"]["bucket"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    match alteryx_router_core::event::decode(&no_bucket).unwrap() {
        Decoded::Partial { objects, rejected } => {
            assert_eq!(objects.len(), 1, "record 0 is routed");
            assert_eq!(
                rejected,
                ["malformed S3 notification: record 1: s3.bucket.name is missing"]
            );
        }
        other => panic!("{other:?}"),
    }
    for text in ["", "   ", "nul", "{\"a\": 1,}"] {
        assert!(
            matches!(decode_str(text), Err(EventError::Json { .. })),
            "{text:?}"
        );
    }
    // Valid JSON that is no event at all is skipped, never an error or a panic.
    for text in [
        "null",
        "[]",
        "42",
        "{}",
        r#"{"Records": []}"#,
        r#"{"detail-type": "x", "source": "aws.s3"}"#,
    ] {
        assert!(
            matches!(decode_str(text), Ok(Decoded::Skipped(_))),
            "{text}"
        );
    }
}
