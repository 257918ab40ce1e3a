//! Ranged reads in the real host (interface 0.3.0 through the SDK's plugins, 0.2.0 through the
//! Python example): ranged reads of objects really in moto's S3, counted
//! against the rule's budget; the faults a plugin can cause (past the budget, past the end, a
//! workflow outside the allow-list) named with their values; time waiting for reads not
//! charged to the plugin; reads pinned to the event's version (overwritten, deleted, a
//! versioned bucket's older version, an empty object read without a request, access denied);
//! and the Excel and Parquet examples reading kilobytes of 50 MiB objects.
//!
//! The plugins are the ones `scripts/test` builds from source (`BUILT_PLUGINS_DIR`); the
//! objects are made at test time by openpyxl and pyarrow (`tests/plugin_fixtures.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::plugin::{
    ByteRange, DirPluginStore, ObjectReader, ObjectVersion, PluginError, PluginHost, PluginInput,
    PluginLimits, PluginOutcome, PluginRun, PluginSpec, RangeRead, ReadError, S3ObjectReader,
    read_head,
};

/// The directory of plugins `scripts/test` built, or `None` with the reason printed when the
/// wasm32 target could not be installed here.
fn built_plugins(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("BUILT_PLUGINS_DIR").map(PathBuf::from);
    match dir.filter(|d| d.join("range-probe.wasm").exists()) {
        Some(dir) => Some(dir),
        None => match std::env::var("RUST_PLUGIN_SKIP_REASON") {
            Ok(reason) => {
                eprintln!("SKIPPED {test}: {reason}");
                None
            }
            Err(_) => panic!(
                "range-probe.wasm not in BUILT_PLUGINS_DIR: run scripts/test, or plugins/build-rust.sh DIR and set BUILT_PLUGINS_DIR=DIR"
            ),
        },
    }
}

fn spec(name: &str, budget: u64, config: serde_json::Value) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        read_bytes: 0,
        config,
        sha256: None,
        timeout_ms: Some(2000),
        memory_mb: None,
        read_budget_bytes: Some(budget),
        workflows: vec!["wf-eu".into()],
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

async fn call(
    host: &PluginHost,
    spec: &PluginSpec,
    object: &ObjectCreated,
    reader: Arc<dyn ObjectReader>,
) -> Result<PluginRun, PluginError> {
    let config = spec.config.to_string();
    let head = read_head(reader.as_ref(), &ObjectVersion::of(object), spec.read_bytes)
        .await
        .unwrap();
    host.run(
        spec,
        PluginInput {
            batch: None,
            rule_id: "rule-7",
            object,
            content_type: head.content_type.as_deref(),
            head: &head.bytes,
            config_json: &config,
            workflow: "wf-default",
            reader,
        },
    )
    .await
}

/// A real reader, counted; optionally slow.
struct Counting {
    inner: Arc<dyn ObjectReader>,
    calls: AtomicUsize,
    delay: Duration,
}

#[async_trait::async_trait]
impl ObjectReader for Counting {
    async fn read_range(
        &self,
        object: &ObjectVersion,
        offset: u64,
        length: u64,
    ) -> Result<RangeRead, ReadError> {
        self.calls.fetch_add(1, SeqCst);
        tokio::time::sleep(self.delay).await;
        self.inner.read_range(object, offset, length).await
    }
}

async fn s3() -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::new(&common::aws_config().await)
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) -> Option<String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap()
        .e_tag
        .map(|e| e.trim_matches('"').to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn ranged_reads_count_against_the_budget_and_faults_name_plugin_rule_and_values() {
    let Some(dir) = built_plugins("ranged_reads_count_against_the_budget") else {
        return;
    };
    let s3 = s3().await;
    let bucket = common::unique("ranges");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let body: Vec<u8> = b"0123456789".repeat(1000);
    let etag = put(&s3, &bucket, "data/digits.txt", body).await;
    let object = facts(&bucket, "data/digits.txt", 10_000, etag);
    let reader: Arc<dyn ObjectReader> = Arc::new(S3ObjectReader::new(s3.clone()));
    let host =
        PluginHost::new(Arc::new(DirPluginStore::new(dir)), PluginLimits::default()).unwrap();
    let probe = |budget, config| spec("range-probe", budget, config);

    let run = call(
        &host,
        &probe(100, serde_json::json!({"reads": [[0, 10], [9995, 100]]})),
        &object,
        reader.clone(),
    )
    .await
    .unwrap();
    let PluginOutcome::Questions(values) = &run.outcome else {
        panic!("{:?}", run.outcome)
    };
    let value = |name: &str| values.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(
        value("Read"),
        "10,5",
        "the second read ends where the object does"
    );
    assert_eq!(value("Bytes"), "56789");
    assert_eq!(value("Budget"), "100");
    assert_eq!(
        value("Workflows"),
        "wf-default,wf-eu",
        "the rule's own first"
    );
    assert_eq!(value("Head"), "0");
    assert_eq!(run.interface, "0.3.0");
    assert_eq!(
        (
            run.reads.range_reads,
            run.reads.range_bytes,
            run.reads.budget
        ),
        (2, 15, 100)
    );
    assert_eq!(
        run.reads.ranges,
        vec![
            ByteRange {
                offset: 0,
                length: 10
            },
            ByteRange {
                offset: 9995,
                length: 5
            }
        ]
    );

    // Past the budget: the second read would make 120 of 100.
    let e = call(
        &host,
        &probe(100, serde_json::json!({"reads": [[0, 60], [100, 60]]})),
        &object,
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::OverBudget {
                offset: 100,
                length: 60,
                used: 60,
                budget: 100,
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("range-probe") && text.contains("rule-7") && text.contains("budget"),
        "{text}"
    );
    assert!(!e.is_retryable());

    // Past the end.
    let e = call(
        &host,
        &probe(100, serde_json::json!({"reads": [[10000, 1]]})),
        &object,
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::PastEnd {
                offset: 10000,
                size: 10000,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("at or past the end of the 10000-byte object")
    );

    // A workflow from the allow-list, and one outside it.
    let run = call(
        &host,
        &probe(100, serde_json::json!({"workflow": "wf-eu"})),
        &object,
        reader.clone(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&run.outcome, PluginOutcome::Workflow { workflow, .. } if workflow == "wf-eu")
    );
    let e = call(
        &host,
        &probe(100, serde_json::json!({"workflow": "wf-payroll"})),
        &object,
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, PluginError::WorkflowNotAllowed { workflow, allowed, .. }
            if workflow == "wf-payroll" && allowed == &["wf-default", "wf-eu"]),
        "{e:?}"
    );
    assert!(e.to_string().contains("`wf-payroll`"), "{e}");

    // Waiting for the object store is not the plugin's time: three reads of 150 ms each
    // under a 50 ms limit.
    let slow: Arc<dyn ObjectReader> = Arc::new(Counting {
        inner: reader.clone(),
        calls: 0.into(),
        delay: Duration::from_millis(150),
    });
    let mut quick = probe(100, serde_json::json!({"reads": [[0, 1], [1, 1], [2, 1]]}));
    quick.timeout_ms = Some(50);
    let run = call(&host, &quick, &object, slow).await.unwrap();
    assert_eq!(run.reads.range_reads, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_are_pinned_to_the_event_version() {
    let s3 = s3().await;
    let reader = S3ObjectReader::new(s3.clone());
    let bucket = common::unique("pinned");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    // Overwritten after the event: the ETag pin refuses the new bytes.
    let etag = put(&s3, &bucket, "a.csv", b"first version".to_vec()).await;
    let event = ObjectVersion::of(&facts(&bucket, "a.csv", 13, etag));
    assert_eq!(
        reader.read_range(&event, 0, 5).await.unwrap().bytes,
        b"first"
    );
    put(&s3, &bucket, "a.csv", b"second version".to_vec()).await;
    let e = reader.read_range(&event, 0, 5).await.unwrap_err();
    assert!(
        matches!(e, ReadError::Overwritten { .. }) && e.is_gone() && !e.is_retryable(),
        "{e:?}"
    );
    assert!(e.to_string().contains("overwritten since the event"), "{e}");
    // Without an ETag, a different size gives it away.
    let unpinned = ObjectVersion {
        etag: None,
        ..event.clone()
    };
    let e = reader.read_range(&unpinned, 0, 5).await.unwrap_err();
    assert!(matches!(e, ReadError::Overwritten { .. }), "{e:?}");

    // Deleted before routing.
    s3.delete_object()
        .bucket(&bucket)
        .key("a.csv")
        .send()
        .await
        .unwrap();
    let e = reader.read_range(&event, 0, 5).await.unwrap_err();
    assert!(
        matches!(e, ReadError::Deleted { .. }) && e.is_gone(),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("s3://{bucket}/a.csv was deleted before routing")
    );

    // A versioned bucket: the event's version is read even after an overwrite.
    let versioned = common::unique("versioned");
    s3.create_bucket().bucket(&versioned).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(&versioned)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let first = s3
        .put_object()
        .bucket(&versioned)
        .key("v.csv")
        .body(b"old bytes".to_vec().into())
        .send()
        .await
        .unwrap();
    put(&s3, &versioned, "v.csv", b"new bytes!".to_vec()).await;
    let mut old = facts(&versioned, "v.csv", 9, None);
    old.version_id = first.version_id.clone();
    assert!(old.version_id.is_some());
    let read = reader
        .read_range(&ObjectVersion::of(&old), 0, 9)
        .await
        .unwrap();
    assert_eq!(read.bytes, b"old bytes");

    // An empty object: zero bytes and no request at all (S3 would answer 416).
    put(&s3, &bucket, "empty.csv", Vec::new()).await;
    let counting = Counting {
        inner: Arc::new(S3ObjectReader::new(s3.clone())),
        calls: 0.into(),
        delay: Duration::ZERO,
    };
    let empty = ObjectVersion::of(&facts(&bucket, "empty.csv", 0, None));
    let head = read_head(&counting, &empty, 65536).await.unwrap();
    assert!(head.bytes.is_empty());
    assert_eq!(counting.calls.load(SeqCst), 0);
}

/// S3's AccessDenied (here from a stand-in that answers every request with it, since moto does
/// not enforce IAM) is an error no retry fixes, naming the bucket and the key.
#[tokio::test]
async fn access_denied_is_not_retryable_and_names_bucket_and_key() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R</RequestId></Error>";
        // A bounded number of connections: the SDK may retry, never many times.
        for _ in 0..8 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let _ = socket.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    let sdk = common::aws_config().await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .force_path_style(true)
        .build();
    let reader = S3ObjectReader::new(aws_sdk_s3::Client::from_conf(config));
    let object = ObjectVersion::of(&facts("acme-private", "hr/salaries.xlsx", 100, None));
    let e = reader.read_range(&object, 0, 10).await.unwrap_err();
    assert!(
        matches!(&e, ReadError::AccessDenied { bucket, key, .. } if bucket == "acme-private" && key == "hr/salaries.xlsx"),
        "{e:?}"
    );
    assert!(!e.is_retryable() && !e.is_gone());
    let text = alteryx_router_core::error_chain(&e);
    assert!(
        text.contains("bucket `acme-private`") && text.contains("key `hr/salaries.xlsx`"),
        "{text}"
    );
    server.abort();
}

/// An object made by `tests/plugin_fixtures.py` (openpyxl, pyarrow).
fn fixture(kind: &str, args: &[&str]) -> Vec<u8> {
    let root = common::repo_root();
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/plugin_fixtures.py"))
        .arg(kind)
        .arg(out.path())
        .args(args)
        .status()
        .expect("run .venv/bin/python (scripts/setup-venv installs openpyxl and pyarrow)");
    assert!(status.success(), "tests/plugin_fixtures.py {kind} failed");
    std::fs::read(out.path()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_excel_and_parquet_examples_read_kilobytes_of_50_mib_objects() {
    let Some(dir) = built_plugins("the_excel_and_parquet_examples_read_kilobytes") else {
        return;
    };
    let s3 = s3().await;
    let bucket = common::unique("examples");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let reader: Arc<dyn ObjectReader> = Arc::new(S3ObjectReader::new(s3.clone()));
    let host =
        PluginHost::new(Arc::new(DirPluginStore::new(dir)), PluginLimits::default()).unwrap();

    let workbook = fixture(
        "xlsx",
        &["--sheets", "Sales,Costs & Notes,日本", "--mib", "50"],
    );
    assert!(workbook.len() > 45 << 20, "{} bytes", workbook.len());
    let size = workbook.len() as u64;
    let etag = put(&s3, &bucket, "in/big.xlsx", workbook).await;
    let object = facts(&bucket, "in/big.xlsx", size, etag);
    let sheets = |config| spec("xlsx-sheets", 1 << 20, config);
    let run = call(
        &host,
        &sheets(serde_json::json!({"required": ["Sales"]})),
        &object,
        reader.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        run.outcome,
        PluginOutcome::Questions(vec![
            ("Sheets".into(), "Sales,Costs & Notes,日本".into()),
            ("SheetCount".into(), "3".into()),
            ("FirstSheet".into(), "Sales".into()),
        ])
    );
    assert!(
        run.reads.total_bytes() < 16 << 10,
        "kilobytes of a 50 MiB workbook: {:?}",
        run.reads
    );
    let run = call(
        &host,
        &sheets(serde_json::json!({"required": ["Payroll"]})),
        &object,
        reader.clone(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&run.outcome, PluginOutcome::Skip(r) if r.contains("lacks sheet(s): Payroll")),
        "{:?}",
        run.outcome
    );
    // A budget too small for the directory is an error naming it.
    let e = call(
        &host,
        &spec("xlsx-sheets", 100, serde_json::json!({})),
        &object,
        reader.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, PluginError::OverBudget { budget: 100, .. }),
        "{e:?}"
    );

    let table = fixture(
        "parquet",
        &["--columns", "id,region,vat_id,amount", "--mib", "50"],
    );
    let size = table.len() as u64;
    let etag = put(&s3, &bucket, "in/big.parquet", table).await;
    let object = facts(&bucket, "in/big.parquet", size, etag);
    let run = call(
        &host,
        &spec(
            "parquet-schema",
            1 << 20,
            serde_json::json!({"workflows": [{"when_columns": ["vat_id"], "workflow": "wf-eu"}]}),
        ),
        &object,
        reader.clone(),
    )
    .await
    .unwrap();
    let PluginOutcome::Workflow {
        workflow,
        questions,
    } = &run.outcome
    else {
        panic!("{:?}", run.outcome)
    };
    assert_eq!(workflow, "wf-eu");
    assert_eq!(
        questions[0],
        ("Columns".into(), "id,region,vat_id,amount".into())
    );
    assert!(
        run.reads.total_bytes() < 32 << 10,
        "kilobytes of a 50 MiB Parquet file: {:?}",
        run.reads
    );
}

/// The Python example of interface 0.2.0 (`plugins/examples/file-kind-py`, componentize-py):
/// two 4-byte ranged reads of a 50 MiB Parquet file, and a workflow chosen by kind.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_reads_eight_bytes_and_chooses_a_workflow() {
    let dir = std::env::var_os("BUILT_PLUGINS_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("file-kind.cwasm").exists() || d.join("file-kind.wasm").exists())
        .expect("file-kind not in BUILT_PLUGINS_DIR: run scripts/test, or plugins/examples/file-kind-py/build.sh DIR and set BUILT_PLUGINS_DIR=DIR");
    let s3 = s3().await;
    let bucket = common::unique("kinds");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let table = fixture("parquet", &["--columns", "id,amount", "--mib", "50"]);
    let size = table.len() as u64;
    let etag = put(&s3, &bucket, "in/t.parquet", table).await;
    let object = facts(&bucket, "in/t.parquet", size, etag);
    let host =
        PluginHost::new(Arc::new(DirPluginStore::new(dir)), PluginLimits::default()).unwrap();
    let mut kind = spec(
        "file-kind",
        1 << 20,
        serde_json::json!({"workflows": {"parquet": "wf-eu"}}),
    );
    kind.timeout_ms = Some(5000);
    let reader: Arc<dyn ObjectReader> = Arc::new(S3ObjectReader::new(s3.clone()));
    let run = call(&host, &kind, &object, reader).await.unwrap();
    assert_eq!(
        run.outcome,
        PluginOutcome::Workflow {
            workflow: "wf-eu".into(),
            questions: vec![
                ("Kind".into(), "parquet".into()),
                ("BytesRead".into(), "8".into())
            ],
        }
    );
    assert_eq!(run.interface, "0.2.0");
    assert_eq!((run.reads.range_reads, run.reads.total_bytes()), (2, 8));
}
