//! Interface 0.3.0 on batches, in the real host: a plugin built from source
//! (`plugins/examples/batch-manifest`, and the `range-probe` fixture) sees a closed batch's
//! members in join order and reads each of them, pinned to the version that joined, within one
//! budget for the whole batch, from real files (`DirObjectReader`) and from moto's S3; the
//! faults (past the budget, past a member's end, a member index that does not exist, a member
//! deleted or overwritten since it joined) are named with their values; plugins of interfaces
//! 0.1.0 and 0.2.0 are refused on batches, naming the interface batches need, and still run
//! on single objects, as 0.3.0 plugins do.
//!
//! The plugins are the ones `scripts/test` builds from source (`BUILT_PLUGINS_DIR`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::plugin::{
    BatchInput, DirObjectReader, DirPluginStore, MemberRange, ObjectReader, ObjectVersion,
    PluginError, PluginHost, PluginInput, PluginLimits, PluginOutcome, PluginRun, PluginSpec,
    S3ObjectReader, read_head,
};

/// The directory of plugins `scripts/test` built (with `names` in it), or `None` with the
/// reason printed when the wasm32 target could not be installed here.
fn built_plugins(test: &str, names: &[&str]) -> Option<PathBuf> {
    let dir = std::env::var_os("BUILT_PLUGINS_DIR").map(PathBuf::from);
    let has = |d: &PathBuf| {
        names
            .iter()
            .all(|n| d.join(format!("{n}.wasm")).exists() || d.join(format!("{n}.cwasm")).exists())
    };
    match dir.filter(has) {
        Some(dir) => Some(dir),
        None => match std::env::var("RUST_PLUGIN_SKIP_REASON") {
            Ok(reason) => {
                eprintln!("SKIPPED {test}: {reason}");
                None
            }
            Err(_) => panic!(
                "{names:?} not in BUILT_PLUGINS_DIR: run scripts/test, or plugins/build-rust.sh DIR (and the examples' build.sh DIR) and set BUILT_PLUGINS_DIR=DIR"
            ),
        },
    }
}

fn spec(name: &str, budget: u64, config: serde_json::Value) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        read_bytes: 64,
        config,
        sha256: None,
        timeout_ms: Some(5000),
        memory_mb: None,
        read_budget_bytes: Some(budget),
        workflows: Vec::new(),
    }
}

fn facts(bucket: &str, key: &str, size: u64, etag: Option<String>) -> ObjectCreated {
    ObjectCreated {
        bucket: bucket.into(),
        key: key.into(),
        size,
        etag,
        version_id: None,
        sequencer: Some("1".into()),
        event_time: "2026-11-24T09:15:02Z".into(),
        reason: None,
        source: "test".into(),
    }
}

/// Run `spec` over `object`, as the closing call of `batch` when given.
async fn call(
    host: &PluginHost,
    spec: &PluginSpec,
    object: &ObjectCreated,
    batch: Option<&BatchInput>,
    reader: Arc<dyn ObjectReader>,
) -> Result<PluginRun, PluginError> {
    let config = spec.config.to_string();
    let head = read_head(reader.as_ref(), &ObjectVersion::of(object), spec.read_bytes)
        .await
        .unwrap();
    host.run(
        spec,
        PluginInput {
            batch,
            rule_id: "month-end",
            object,
            content_type: head.content_type.as_deref(),
            head: &head.bytes,
            config_json: &config,
            workflow: "wf-close",
            reader,
        },
    )
    .await
}

/// The month-end batch of the issue, as real files under `<root>/<bucket>/<key>` (what
/// `DirObjectReader` reads): orders and customers carry `customer_id`, the ledger does not.
const MONTH_END: [(&str, &[u8]); 3] = [
    (
        "closing/2026-10/orders.csv",
        b"order_id,customer_id,amount\n1,7,9.50\n2,8,12.00\n",
    ),
    (
        "closing/2026-10/ledger.csv",
        b"\xEF\xBB\xBFaccount,amount\r\n4000,21.50\r\n",
    ),
    (
        "closing/2026-10/customers.csv",
        b"customer_id,name\n7,Ada\n8,Grace\n",
    ),
];

fn write_members(root: &Path, bucket: &str) -> Vec<ObjectCreated> {
    MONTH_END
        .iter()
        .map(|(key, body)| {
            let path = root.join(bucket).join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body).unwrap();
            facts(bucket, key, body.len() as u64, None)
        })
        .collect()
}

fn batch_of(members: Vec<ObjectCreated>) -> BatchInput {
    BatchInput {
        id: "b-2026-10".into(),
        group: "closing/2026-10".into(),
        members,
    }
}

fn host(dir: PathBuf) -> PluginHost {
    PluginHost::new(Arc::new(DirPluginStore::new(dir)), PluginLimits::default()).unwrap()
}

fn values(run: &PluginRun) -> Vec<(String, String)> {
    match &run.outcome {
        PluginOutcome::Questions(values) => values.clone(),
        other => panic!("expected question values, got {other:?}"),
    }
}

fn value(run: &PluginRun, name: &str) -> String {
    values(run)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", run.outcome))
        .1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_plugin_sees_the_members_in_join_order_and_reads_each_within_the_budget() {
    let Some(dir) = built_plugins("members_in_order", &["batch-manifest"]) else {
        return;
    };
    let objects = tempfile::tempdir().unwrap();
    let members = write_members(objects.path(), "landing");
    let batch = batch_of(members.clone());
    let reader: Arc<dyn ObjectReader> =
        Arc::new(DirObjectReader::new(objects.path().to_path_buf()));
    let host = host(dir);
    let manifest = spec(
        "batch-manifest",
        1 << 20,
        serde_json::json!({"columns": ["customer_id"], "required": ["amount"], "separator": ";"}),
    );
    let run = call(&host, &manifest, &members[2], Some(&batch), reader.clone())
        .await
        .unwrap();
    assert_eq!(run.interface, "0.3.0");
    assert_eq!(
        values(&run),
        vec![
            (
                "Matching".into(),
                "closing/2026-10/orders.csv;closing/2026-10/customers.csv".into()
            ),
            ("MatchCount".into(), "2".into()),
            ("MemberCount".into(), "3".into()),
            ("Group".into(), "closing/2026-10".into()),
        ],
        "the members whose header has customer_id, in the order they joined"
    );
    // One read per member (each smaller than line_bytes: the whole member), in join order,
    // counted against one budget.
    let sizes: Vec<u64> = MONTH_END.iter().map(|(_, b)| b.len() as u64).collect();
    assert_eq!(
        run.reads.member_ranges,
        (0..3)
            .map(|i| MemberRange {
                member: i,
                offset: 0,
                length: sizes[i as usize],
            })
            .collect::<Vec<_>>()
    );
    assert!(run.reads.ranges.is_empty(), "{:?}", run.reads);
    assert_eq!(
        (run.reads.range_reads, run.reads.range_bytes),
        (3, sizes.iter().sum::<u64>())
    );
    assert_eq!(run.reads.head_bytes, sizes[2], "the closing member's head");

    // The same batch closed by its first member: the plugin is told which one closed it, and
    // the answer is still about all members in join order.
    let run = call(&host, &manifest, &members[0], Some(&batch), reader.clone())
        .await
        .unwrap();
    assert_eq!(value(&run, "MatchCount"), "2");

    // A required column no member has: the batch is skipped, saying which and over what.
    let strict = spec(
        "batch-manifest",
        1 << 20,
        serde_json::json!({"required": ["period"]}),
    );
    let run = call(&host, &strict, &members[2], Some(&batch), reader)
        .await
        .unwrap();
    assert_eq!(
        run.outcome,
        PluginOutcome::Skip(
            "no member's header has column `period` (3 member(s): closing/2026-10/orders.csv, closing/2026-10/ledger.csv, closing/2026-10/customers.csv)".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn member_reads_past_the_budget_the_end_or_the_members_end_the_call_naming_the_values() {
    let Some(dir) = built_plugins("member_faults", &["batch-manifest", "range-probe"]) else {
        return;
    };
    let objects = tempfile::tempdir().unwrap();
    let members = write_members(objects.path(), "landing");
    let batch = batch_of(members.clone());
    let reader: Arc<dyn ObjectReader> =
        Arc::new(DirObjectReader::new(objects.path().to_path_buf()));
    let host = host(dir);

    // One budget for the batch: orders (47 bytes) fits in 60, the ledger's 31 more do not.
    let e = call(
        &host,
        &spec("batch-manifest", 60, serde_json::json!({})),
        &members[2],
        Some(&batch),
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &e,
            PluginError::MemberOverBudget { plugin, rule, member: 1, key, offset: 0, length: 31, used: 47, budget: 60 }
                if plugin == "batch-manifest" && rule == "month-end" && key == "closing/2026-10/ledger.csv"
        ),
        "{e:?}"
    );
    let text = e.to_string();
    for part in [
        "batch-manifest",
        "month-end",
        "member 1",
        "closing/2026-10/ledger.csv",
        "31 bytes at offset 0",
        "47 of 60 bytes",
        "plugin.read_budget_bytes",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert!(!e.is_retryable() && e.object_gone().is_none());

    // Reads of the object and of members share the budget too.
    let probe = |config| spec("range-probe", 40, config);
    let e = call(
        &host,
        &probe(serde_json::json!({"reads": [[0, 30]], "member_reads": [[0, 0, 20]]})),
        &members[2],
        Some(&batch),
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::MemberOverBudget {
                member: 0,
                used: 30,
                budget: 40,
                ..
            }
        ),
        "{e:?}"
    );

    // Past a member's end.
    let e = call(
        &host,
        &probe(serde_json::json!({"member_reads": [[1, 31, 1]]})),
        &members[2],
        Some(&batch),
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, PluginError::MemberPastEnd { member: 1, offset: 31, size: 31, key, .. } if key == "closing/2026-10/ledger.csv"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("at or past the end of the 31-byte member"),
        "{e}"
    );

    // A member that does not exist, in a batch and on a single object.
    let e = call(
        &host,
        &probe(serde_json::json!({"member_reads": [[3, 0, 1]]})),
        &members[2],
        Some(&batch),
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::NoSuchMember {
                member: 3,
                members: 3,
                ..
            }
        ),
        "{e:?}"
    );
    let e = call(
        &host,
        &probe(serde_json::json!({"member_reads": [[0, 0, 1]]})),
        &members[2],
        None,
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::NoSuchMember {
                member: 0,
                members: 0,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("none on a single object"), "{e}");

    // Within the budget, the probe reads exactly the bytes of the member asked for.
    let run = call(
        &host,
        &probe(serde_json::json!({"member_reads": [[1, 3, 14], [2, 0, 11]]})),
        &members[2],
        Some(&batch),
        reader.clone(),
    )
    .await
    .unwrap();
    assert_eq!(value(&run, "Read"), "14,11");
    assert_eq!(value(&run, "Bytes"), "customer_id");

    // A batch that does not list the object that closed it is refused before the call.
    let stranger = facts("landing", "closing/2026-10/other.csv", 3, None);
    let e = call(
        &host,
        &probe(serde_json::json!({})),
        &members[0],
        Some(&batch_of(vec![stranger])),
        reader,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, PluginError::ClosingMemberMissing { batch, uri, members: 1, .. } if batch == "b-2026-10" && uri == "s3://landing/closing/2026-10/orders.csv"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_deleted_since_it_joined_ends_the_call_as_gone() {
    let Some(dir) = built_plugins("member_deleted", &["batch-manifest"]) else {
        return;
    };
    let objects = tempfile::tempdir().unwrap();
    let members = write_members(objects.path(), "landing");
    let batch = batch_of(members.clone());
    std::fs::remove_file(objects.path().join("landing").join(MONTH_END[1].0)).unwrap();
    let reader: Arc<dyn ObjectReader> =
        Arc::new(DirObjectReader::new(objects.path().to_path_buf()));
    let e = call(
        &host(dir),
        &spec("batch-manifest", 1 << 20, serde_json::json!({})),
        &members[2],
        Some(&batch),
        reader,
    )
    .await
    .unwrap_err();
    let gone = e.object_gone().unwrap_or_else(|| panic!("not gone: {e:?}"));
    assert!(
        gone.to_string()
            .contains("s3://landing/closing/2026-10/ledger.csv")
            && gone.to_string().contains("was deleted"),
        "{gone}"
    );
    assert!(!e.is_retryable());
}

/// Members really in S3 (moto): each read is pinned to the ETag the member joined with, so a
/// member overwritten after it joined is reported gone (the router records `SKIPPED`), as is
/// one deleted; the others read as they were.
#[tokio::test(flavor = "multi_thread")]
async fn members_in_s3_are_read_pinned_to_the_version_that_joined() {
    let Some(dir) = built_plugins("members_in_s3", &["batch-manifest"]) else {
        return;
    };
    let s3 = aws_sdk_s3::Client::new(&common::aws_config().await);
    let bucket = common::unique("batches");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let mut members = Vec::new();
    for (key, body) in MONTH_END {
        let etag = s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap()
            .e_tag
            .map(|e| e.trim_matches('"').to_string());
        members.push(facts(&bucket, key, body.len() as u64, etag));
    }
    let batch = batch_of(members.clone());
    let reader: Arc<dyn ObjectReader> = Arc::new(S3ObjectReader::new(s3.clone()));
    let host = host(dir);
    let manifest = spec(
        "batch-manifest",
        1 << 20,
        serde_json::json!({"columns": ["amount"]}),
    );
    let run = call(&host, &manifest, &members[2], Some(&batch), reader.clone())
        .await
        .unwrap();
    assert_eq!(
        value(&run, "Matching"),
        "closing/2026-10/orders.csv\nclosing/2026-10/ledger.csv"
    );
    assert_eq!(run.reads.member_ranges.len(), 3);

    // The ledger overwritten with the same size: its ETag no longer matches.
    s3.put_object()
        .bucket(&bucket)
        .key(MONTH_END[1].0)
        .body(
            b"\xEF\xBB\xBFACCOUNT,AMOUNT\r\n4000,99.99\r\n"
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let e = call(&host, &manifest, &members[2], Some(&batch), reader.clone())
        .await
        .unwrap_err();
    let gone = e.object_gone().unwrap_or_else(|| panic!("not gone: {e:?}"));
    assert!(
        gone.to_string().contains("ledger.csv") && gone.to_string().contains("overwritten"),
        "{gone}"
    );

    // Customers deleted (and the ledger's original content put back, so its ETag matches
    // again): the first gone member in join order is customers.
    s3.put_object()
        .bucket(&bucket)
        .key(MONTH_END[1].0)
        .body(MONTH_END[1].1.to_vec().into())
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket(&bucket)
        .key(MONTH_END[2].0)
        .send()
        .await
        .unwrap();
    let closing = &members[0];
    let e = call(&host, &manifest, closing, Some(&batch), reader)
        .await
        .unwrap_err();
    let gone = e.object_gone().unwrap_or_else(|| panic!("not gone: {e:?}"));
    assert!(
        gone.to_string().contains("customers.csv") && gone.to_string().contains("deleted"),
        "{gone}"
    );
}

/// Plugins of 0.1.0 (`json-fields`, Rust, built from source) and 0.2.0 (`file-kind`, Python,
/// built from source) still load and run on single objects, and are refused on batches with
/// a message naming their interface and the one batches need; a 0.3.0 plugin runs on both.
#[tokio::test(flavor = "multi_thread")]
async fn older_interfaces_run_on_single_objects_and_are_refused_on_batches() {
    let Some(dir) = built_plugins(
        "older_interfaces",
        &["json-fields", "file-kind", "batch-manifest"],
    ) else {
        return;
    };
    let objects = tempfile::tempdir().unwrap();
    let members = write_members(objects.path(), "landing");
    let batch = batch_of(members.clone());
    let reader: Arc<dyn ObjectReader> =
        Arc::new(DirObjectReader::new(objects.path().to_path_buf()));
    let host = host(dir);
    let json_fields = spec(
        "json-fields",
        0,
        serde_json::json!({"fields": {"Customer": "/customer/id"}}),
    );
    let file_kind = spec(
        "file-kind",
        1 << 20,
        serde_json::json!({"workflows": {"csv": "wf-close"}}),
    );
    // A single object each can answer for: json-fields wants JSON.
    let json = br#"{"customer": {"id": "C-7"}}"#;
    std::fs::write(
        objects.path().join("landing/closing/2026-10/meta.json"),
        json,
    )
    .unwrap();
    let meta = facts(
        "landing",
        "closing/2026-10/meta.json",
        json.len() as u64,
        None,
    );
    for (plugin, interface, single) in [
        (&json_fields, "0.1.0", &meta),
        (&file_kind, "0.2.0", &members[2]),
    ] {
        let e = call(&host, plugin, &members[2], Some(&batch), reader.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PluginError::NoBatchSupport { plugin: p, rule, interface: i } if p == &plugin.name && rule == "month-end" && *i == interface),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "implements interface {interface}, which has no batches"
            )) && text.contains("alteryx-router:plugin@0.3.0"),
            "{text}"
        );
        let single = call(&host, plugin, single, None, reader.clone())
            .await
            .unwrap_or_else(|e| panic!("{} on a single object: {e}", plugin.name));
        assert_eq!(single.interface, interface);
        if interface == "0.1.0" {
            assert_eq!(
                single.outcome,
                PluginOutcome::Questions(vec![("Customer".into(), "C-7".into())])
            );
        }
    }

    // A 0.3.0 plugin on a single object: `batch` is none, the object is a batch of one.
    let run = call(
        &host,
        &spec(
            "batch-manifest",
            1 << 20,
            serde_json::json!({"columns": ["customer_id"]}),
        ),
        &members[0],
        None,
        reader,
    )
    .await
    .unwrap();
    assert_eq!(run.interface, "0.3.0");
    assert_eq!(
        values(&run),
        vec![
            ("Matching".into(), "closing/2026-10/orders.csv".into()),
            ("MatchCount".into(), "1".into()),
            ("MemberCount".into(), "1".into()),
            ("Group".into(), "".into()),
        ]
    );
    assert!(run.reads.member_ranges.is_empty() && run.reads.range_reads == 1);
}
