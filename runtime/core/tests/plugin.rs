//! The plugin host: faulty WAT fixtures are contained and reported while the host keeps
//! serving; the Python example is built from source during the test run and routes values;
//! a plugin cannot reach host files, the environment or the network; pins and stores work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::plugin::{
    DirPluginStore, FileObjectReader, ObjectVersion, PluginError, PluginHost, PluginInput,
    PluginLimits, PluginOutcome, PluginSpec, PluginStore, S3ObjectReader, S3PluginStore,
    compile_to_cwasm, read_head,
};

fn object(key: &str) -> ObjectCreated {
    ObjectCreated {
        bucket: "acme-landing".into(),
        key: key.into(),
        size: 40,
        etag: None,
        version_id: None,
        sequencer: Some("1".into()),
        event_time: "2026-11-24T09:15:02Z".into(),
        reason: None,
        source: "test".into(),
    }
}

fn spec(name: &str) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        read_bytes: 65536,
        config: serde_json::Value::Null,
        sha256: None,
        timeout_ms: None,
        memory_mb: None,
        read_budget_bytes: None,
        workflows: Vec::new(),
    }
}

async fn run(
    host: &PluginHost,
    spec: &PluginSpec,
    key: &str,
    head: &[u8],
    config: &str,
) -> Result<alteryx_router_core::plugin::PluginRun, PluginError> {
    let obj = object(key);
    host.run(
        spec,
        PluginInput {
            batch: None,
            rule_id: "rule-1",
            object: &obj,
            content_type: Some("text/csv"),
            head,
            config_json: config,
            workflow: "rule-workflow",
            // 0.1.0 plugins read only the head.
            reader: Arc::new(FileObjectReader::new(PathBuf::from("/nonexistent"))),
        },
    )
    .await
}

/// Every WAT fixture compiled into a directory of .wasm components.
fn wat_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = common::repo_root().join("plugins/fixtures");
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wat") {
            let wasm = wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            std::fs::write(
                dir.path()
                    .join(path.with_extension("wasm").file_name().unwrap()),
                wasm,
            )
            .unwrap();
        }
    }
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn faulty_plugins_are_contained_and_the_host_keeps_serving() {
    let dir = wat_dir();
    let limits = PluginLimits {
        timeout: Duration::from_millis(200),
        memory_bytes: 16 << 20,
        ..Default::default()
    };
    let host = PluginHost::new(
        Arc::new(DirPluginStore::new(dir.path().to_path_buf())),
        limits,
    )
    .unwrap();
    let good = |r: Result<alteryx_router_core::plugin::PluginRun, PluginError>| match r {
        Ok(run) => assert_eq!(run.outcome, PluginOutcome::Skip("wat says hi".into())),
        Err(e) => panic!("the well-behaved plugin must keep working: {e}"),
    };
    good(run(&host, &spec("skip"), "k", b"a,b", "{}").await);
    type Expect = fn(&PluginError) -> bool;
    let cases: Vec<(&str, Expect)> = vec![
        (
            "loop",
            |e| matches!(e, PluginError::Timeout { limit, .. } if *limit == Duration::from_millis(200)),
        ),
        (
            "grow",
            |e| matches!(e, PluginError::MemoryLimit { limit, .. } if *limit == 16 << 20),
        ),
        (
            "trap",
            |e| matches!(e, PluginError::Trap { message, .. } if message.contains("unreachable")),
        ),
        (
            "oversized",
            |e| matches!(e, PluginError::OutputTooLarge { message, .. } if message.contains("10000")),
        ),
        ("no-export", |e| {
            matches!(e, PluginError::Incompatible { .. })
        }),
        (
            "wrong-version",
            |e| matches!(e, PluginError::Incompatible { message, .. } if message.contains("9.9.9")),
        ),
        ("missing", |e| matches!(e, PluginError::NotFound { .. })),
    ];
    for (name, expected) in cases {
        let e = run(&host, &spec(name), "k", b"a,b", "{}")
            .await
            .unwrap_err();
        assert!(expected(&e), "{name}: unexpected {e:?}");
        let text = e.to_string();
        assert!(
            text.contains(name) || name == "missing",
            "{name}: the message names the plugin: {text}"
        );
        assert!(!e.is_retryable(), "{name}");
        good(run(&host, &spec("skip"), "k", b"a,b", "{}").await);
    }
    // A rule may raise the limit it needs.
    let mut roomy = spec("grow");
    roomy.memory_mb = Some(8);
    assert!(
        matches!(run(&host, &roomy, "k", b"", "{}").await, Err(PluginError::MemoryLimit { limit, .. }) if limit == 8 << 20)
    );
}

#[tokio::test]
async fn pinned_hashes_and_foreign_cwasm_are_refused() {
    let dir = wat_dir();
    let host = PluginHost::new(
        Arc::new(DirPluginStore::new(dir.path().to_path_buf())),
        PluginLimits::default(),
    )
    .unwrap();
    let wasm = std::fs::read(dir.path().join("skip.wasm")).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wasm))
    };
    let mut pinned = spec("skip");
    pinned.sha256 = Some(digest.to_uppercase());
    assert!(run(&host, &pinned, "k", b"", "{}").await.is_ok());
    pinned.sha256 = Some("0".repeat(64));
    match run(&host, &pinned, "k", b"", "{}").await.unwrap_err() {
        e @ PluginError::ChecksumMismatch { .. } => {
            assert!(
                matches!(&e, PluginError::ChecksumMismatch { actual, rule, .. } if *actual == digest && rule == "rule-1")
            );
            // Retryable: a function whose rules are older than the plugin `plugin publish`
            // just uploaded meets exactly this, and its retry sees the new pin.
            assert!(e.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    // AOT: a .cwasm from our compiler loads; one from "another wasmtime" does not.
    let cwasm = compile_to_cwasm(&wasm, None).unwrap();
    std::fs::write(dir.path().join("aot.cwasm"), &cwasm).unwrap();
    assert!(run(&host, &spec("aot"), "k", b"", "{}").await.is_ok());
    // Cross-compiling for Lambda's arm64 works from this machine; on another CPU the artifact
    // is refused with a message that says what to do.
    let arm = compile_to_cwasm(&wasm, Some("aarch64-unknown-linux-gnu")).unwrap();
    assert!(!arm.is_empty() && arm != cwasm);
    if cfg!(target_arch = "x86_64") {
        std::fs::write(dir.path().join("foreign.cwasm"), &arm).unwrap();
        match run(&host, &spec("foreign"), "k", b"", "{}")
            .await
            .unwrap_err()
        {
            PluginError::Load { message, .. } => assert!(
                message.contains("recompile") && message.contains("aarch64"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }
    std::fs::write(dir.path().join("junk.wasm"), b"\0asm not really").unwrap();
    assert!(matches!(
        run(&host, &spec("junk"), "k", b"", "{}").await,
        Err(PluginError::Load { .. })
    ));
}

/// A Python plugin built from source (componentize-py) with its `.cwasm`: the one
/// `scripts/test` built fresh for this run (`BUILT_PLUGINS_DIR`), or, when this test runs on
/// its own, one built here and cached by the hash of its sources.
pub fn build_python(source_dir: &Path, name: &str) -> PathBuf {
    use sha2::Digest;
    if let Some(dir) = std::env::var_os("BUILT_PLUGINS_DIR").map(PathBuf::from)
        && dir.join(format!("{name}.cwasm")).exists()
    {
        return dir;
    }
    let mut h = sha2::Sha256::new();
    h.update(std::fs::read(source_dir.join("app.py")).unwrap());
    h.update(std::fs::read(common::repo_root().join("plugins/wit/0.1.0/plugin.wit")).unwrap());
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| common::repo_root().join("target"));
    let out = target
        .join("plugin-cache")
        .join(&hex::encode(h.finalize())[..16]);
    let wasm = out.join(format!("{name}.wasm"));
    if !wasm.exists() {
        let cpy = common::repo_root().join(".venv/bin/componentize-py");
        assert!(
            cpy.exists(),
            "componentize-py missing: run scripts/setup-venv"
        );
        std::fs::create_dir_all(&out).unwrap();
        let status = Command::new(&cpy)
            .current_dir(source_dir)
            .args([
                "-d",
                common::repo_root()
                    .join("plugins/wit/0.1.0")
                    .to_str()
                    .unwrap(),
                "-w",
                "router-plugin",
                "componentize",
                "app",
                "-o",
            ])
            .arg(&wasm)
            .status()
            .unwrap();
        assert!(status.success(), "building {name} failed");
        let cwasm = compile_to_cwasm(&std::fs::read(&wasm).unwrap(), None).unwrap();
        std::fs::write(out.join(format!("{name}.cwasm")), cwasm).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_reads_csv_headers_and_cannot_escape() {
    let root = common::repo_root();
    let csv_dir = build_python(&root.join("plugins/examples/csv-header"), "csv-header");
    let escape_dir = build_python(
        &root.join("plugins/fixtures/python-escape"),
        "python-escape",
    );
    let limits = PluginLimits {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let host = PluginHost::new(Arc::new(DirPluginStore::new(csv_dir)), limits.clone()).unwrap();
    let csv = b"\xef\xbb\xbfRegion;Amount;Currency\nEU;1200.50;EUR\n";
    let run1 = run(
        &host,
        &spec("csv-header"),
        "incoming/sales/2026/11/24/x.csv",
        csv,
        r#"{"delimiter":";","required":["Region"]}"#,
    )
    .await
    .unwrap();
    assert_eq!(
        run1.outcome,
        PluginOutcome::Questions(vec![
            ("Columns".into(), "3".into()),
            ("ColumnNames".into(), "Region,Amount,Currency".into()),
            ("ReportDate".into(), "2026-11-24".into()),
        ])
    );
    assert!(
        run1.logs.iter().any(|l| l.contains("3 columns")),
        "{:?}",
        run1.logs
    );
    let skip = run(
        &host,
        &spec("csv-header"),
        "x.csv",
        csv,
        r#"{"delimiter":";","required":["Vendor"]}"#,
    )
    .await
    .unwrap();
    assert_eq!(
        skip.outcome,
        PluginOutcome::Skip("missing required column(s): Vendor".into())
    );
    let bad = run(
        &host,
        &spec("csv-header"),
        "x.csv",
        csv,
        r#"{"delimiter":";;"}"#,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(bad, PluginError::PluginReported { message, .. } if message.contains("delimiter"))
    );

    let escape = PluginHost::new(Arc::new(DirPluginStore::new(escape_dir)), limits).unwrap();
    let out = run(&escape, &spec("python-escape"), "k", b"", "{}")
        .await
        .unwrap();
    let PluginOutcome::Questions(values) = out.outcome else {
        panic!()
    };
    assert_eq!(values.len(), 4);
    for (what, result) in values {
        assert!(
            result.starts_with("denied"),
            "{what} must be denied, got {result}"
        );
    }
}

#[tokio::test]
async fn plugins_and_object_heads_come_from_s3() {
    let sdk = common::aws_config().await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let bucket = common::unique("plugins");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let wasm = wat::parse_file(common::repo_root().join("plugins/fixtures/skip.wat")).unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("prod/skip.wasm")
        .body(wasm.clone().into())
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("data/big.csv")
        .body(vec![b'x'; 200_000].into())
        .content_type("text/csv")
        .send()
        .await
        .unwrap();
    let store = S3PluginStore::new(s3.clone(), &format!("s3://{bucket}/prod")).unwrap();
    let fetched = store.fetch("skip").await.unwrap();
    assert_eq!((fetched.bytes, fetched.precompiled), (wasm, false));
    assert!(matches!(
        store.fetch("nope").await,
        Err(PluginError::NotFound { .. })
    ));
    // The version token (HeadObject ETag) changes with the object, and is absent for no object.
    let first = store.version("skip").await.unwrap().expect("an ETag");
    assert_eq!(
        store.version("skip").await.unwrap().as_deref(),
        Some(first.as_str())
    );
    let trap = wat::parse_file(common::repo_root().join("plugins/fixtures/trap.wat")).unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("prod/skip.wasm")
        .body(trap.into())
        .send()
        .await
        .unwrap();
    assert_ne!(store.version("skip").await.unwrap(), Some(first));
    assert_eq!(store.version("nope").await.unwrap(), None);
    assert!(S3PluginStore::new(s3.clone(), "bucket/prefix").is_err());
    let reader = S3ObjectReader::new(s3.clone());
    let big = ObjectVersion {
        bucket: bucket.clone(),
        key: "data/big.csv".into(),
        size: 200_000,
        version_id: None,
        etag: None,
    };
    let head = read_head(&reader, &big, 1000).await.unwrap();
    assert_eq!(
        (head.bytes.len(), head.content_type.as_deref()),
        (1000, Some("text/csv")),
        "a ranged GET reads only the head"
    );
    let none = ObjectVersion {
        key: "data/none.csv".into(),
        ..big
    };
    let missing = read_head(&reader, &none, 10).await.unwrap_err();
    assert!(
        missing.is_gone()
            && !missing.is_retryable()
            && missing
                .to_string()
                .contains("data/none.csv was deleted before routing"),
        "{missing}"
    );
}

/// Counts what a host asks of its store.
struct CountingStore {
    inner: DirPluginStore,
    fetches: std::sync::atomic::AtomicUsize,
    versions: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl PluginStore for CountingStore {
    async fn fetch(
        &self,
        name: &str,
    ) -> Result<alteryx_router_core::plugin::PluginBytes, PluginError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.fetch(name).await
    }
    async fn version(&self, name: &str) -> Result<Option<String>, PluginError> {
        self.versions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.version(name).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A plugin is downloaded once, not per object; after the cache TTL only its version is asked,
/// and a changed file is loaded again (and checked against the rule's pin).
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_is_fetched_once_and_reloaded_only_when_it_changes() {
    use std::sync::atomic::Ordering::SeqCst;
    let fixtures = wat_dir();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.wasm");
    std::fs::copy(fixtures.path().join("skip.wasm"), &path).unwrap();
    let store = Arc::new(CountingStore {
        inner: DirPluginStore::new(dir.path().to_path_buf()),
        fetches: 0.into(),
        versions: 0.into(),
    });
    let cached_for_an_hour = PluginHost::new(store.clone(), PluginLimits::default())
        .unwrap()
        .with_cache_ttl(Duration::from_secs(3600));
    for _ in 0..5 {
        let run = run(&cached_for_an_hour, &spec("p"), "k", b"a", "{}")
            .await
            .unwrap();
        assert_eq!(run.outcome, PluginOutcome::Skip("wat says hi".into()));
    }
    assert_eq!(store.fetches.load(SeqCst), 1, "five calls, one download");

    // TTL 0: every call asks for the version, and only a changed file is fetched again.
    let store = Arc::new(CountingStore {
        inner: DirPluginStore::new(dir.path().to_path_buf()),
        fetches: 0.into(),
        versions: 0.into(),
    });
    let host = PluginHost::new(store.clone(), PluginLimits::default())
        .unwrap()
        .with_cache_ttl(Duration::ZERO);
    let skip_digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&path).unwrap()))
    };
    let mut pinned = spec("p");
    pinned.sha256 = Some(skip_digest.clone());
    for _ in 0..3 {
        run(&host, &pinned, "k", b"a", "{}").await.unwrap();
    }
    assert_eq!(store.fetches.load(SeqCst), 1);
    assert!(store.versions.load(SeqCst) >= 3);
    // Replace the file (a different size, so its version changes whatever the clock's grain).
    std::fs::copy(fixtures.path().join("trap.wasm"), &path).unwrap();
    let err = run(&host, &pinned, "k", b"a", "{}").await.unwrap_err();
    assert!(
        matches!(&err, PluginError::ChecksumMismatch { expected, .. } if *expected == skip_digest),
        "the pin still names the old plugin: {err}"
    );
    assert_eq!(
        store.fetches.load(SeqCst),
        2,
        "the changed file was fetched"
    );
    let err = run(&host, &pinned, "k", b"a", "{}").await.unwrap_err();
    assert!(matches!(err, PluginError::ChecksumMismatch { .. }), "{err}");
    assert_eq!(
        store.fetches.load(SeqCst),
        2,
        "refused again without a download"
    );
    // A rule without the pin loads the new plugin (once) and meets its trap.
    for _ in 0..2 {
        let err = run(&host, &spec("p"), "k", b"a", "{}").await.unwrap_err();
        assert!(matches!(err, PluginError::Trap { .. }), "{err}");
    }
    assert_eq!(store.fetches.load(SeqCst), 3);
}

/// The Rust example (`plugins/examples/json-fields-rust`, wasm32-wasip2), as `scripts/test`
/// builds it from source: fields by JSON Pointer, skip on a missing required field, an error
/// naming the problem for a non-JSON object; and the same answers from its `.cwasm`.
#[tokio::test(flavor = "multi_thread")]
async fn the_rust_example_reads_json_fields() {
    let built = std::env::var_os("BUILT_PLUGINS_DIR")
        .map(PathBuf::from)
        .map(|d| d.join("json-fields.wasm"))
        .filter(|p| p.exists());
    let Some(wasm_path) = built else {
        match std::env::var("RUST_PLUGIN_SKIP_REASON") {
            Ok(reason) => {
                eprintln!("SKIPPED the_rust_example_reads_json_fields: {reason}");
                return;
            }
            Err(_) => panic!(
                "json-fields.wasm not in BUILT_PLUGINS_DIR: run scripts/test, or build it with plugins/examples/json-fields-rust/build.sh and set BUILT_PLUGINS_DIR"
            ),
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(&wasm_path).unwrap();
    std::fs::write(dir.path().join("json-fields.wasm"), &wasm).unwrap();
    std::fs::write(
        dir.path().join("json-fields-aot.cwasm"),
        compile_to_cwasm(&wasm, None).unwrap(),
    )
    .unwrap();
    let host = PluginHost::new(
        Arc::new(DirPluginStore::new(dir.path().to_path_buf())),
        PluginLimits::default(),
    )
    .unwrap();
    let config =
        r#"{"fields": {"Customer": "/customer/id", "Batch": "/batch"}, "required": ["Customer"]}"#;
    for name in ["json-fields", "json-fields-aot"] {
        let answered = run(
            &host,
            &spec(name),
            "orders/o-1.json",
            br#"{"customer": {"id": "C-042"}, "batch": 7}"#,
            config,
        )
        .await
        .unwrap();
        assert_eq!(
            answered.outcome,
            PluginOutcome::Questions(vec![
                ("Batch".into(), "7".into()),
                ("Customer".into(), "C-042".into()),
            ]),
            "{name}"
        );
        assert!(
            answered.logs.iter().any(|l| l.contains("2 field(s)")),
            "{:?}",
            answered.logs
        );
        let skipped = run(&host, &spec(name), "k", br#"{"batch": 1}"#, config)
            .await
            .unwrap();
        assert_eq!(
            skipped.outcome,
            PluginOutcome::Skip("missing required field(s): Customer".into())
        );
        let err = run(&host, &spec(name), "k", b"Region,Amount\n", config)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PluginError::PluginReported { message, .. } if message.contains("does not start with a JSON object")),
            "{err}"
        );
    }
}

/// The JavaScript example (`plugins/examples/key-facts-js`, jco componentize from npm), as
/// `scripts/test` builds it from source: a 0.1.0 plugin, loaded beside 0.2.0 and 0.3.0 ones.
#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_example_reads_key_facts() {
    let built = std::env::var_os("BUILT_PLUGINS_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("key-facts.wasm").exists())
        .expect("key-facts.wasm not in BUILT_PLUGINS_DIR: run scripts/test, or build it with plugins/examples/key-facts-js/build.sh DIR and set BUILT_PLUGINS_DIR=DIR");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        built.join("key-facts.wasm"),
        dir.path().join("key-facts.wasm"),
    )
    .unwrap();
    let host = PluginHost::new(
        Arc::new(DirPluginStore::new(dir.path().to_path_buf())),
        PluginLimits {
            timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .unwrap();
    let config = r#"{"prefix": "partners/", "skip_empty": true}"#;
    let answered = run(
        &host,
        &spec("key-facts"),
        "partners/globex/feed.csv",
        b"Region,Amount\nEU,1\n",
        config,
    )
    .await
    .unwrap();
    assert_eq!(
        answered.outcome,
        PluginOutcome::Questions(vec![
            ("Partner".into(), "globex".into()),
            ("Extension".into(), "csv".into()),
            ("FirstLine".into(), "Region,Amount".into()),
        ])
    );
    assert_eq!(answered.interface, "0.1.0");
    let skipped = run(&host, &spec("key-facts"), "other/x.csv", b"a", config)
        .await
        .unwrap();
    assert_eq!(
        skipped.outcome,
        PluginOutcome::Skip("key does not start with partners/".into())
    );
}

/// Plugins from S3 run only when their rule pins them (unless the store is told otherwise,
/// `PLUGIN_REQUIRE_PIN=false`); the refusal happens before the bytes are deserialized.
#[tokio::test(flavor = "multi_thread")]
async fn plugins_from_s3_must_be_pinned() {
    let sdk = common::aws_config().await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let bucket = common::unique("pins");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let wasm = wat::parse_file(common::repo_root().join("plugins/fixtures/skip.wat")).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wasm))
    };
    s3.put_object()
        .bucket(&bucket)
        .key("prod/skip.wasm")
        .body(wasm.into())
        .send()
        .await
        .unwrap();
    let uri = format!("s3://{bucket}/prod/");
    let strict = PluginHost::new(
        Arc::new(S3PluginStore::new(s3.clone(), &uri).unwrap()),
        PluginLimits::default(),
    )
    .unwrap();
    let e = run(&strict, &spec("skip"), "k", b"", "{}")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PluginError::PinRequired { plugin, rule, location } if plugin == "skip" && rule == "rule-1" && location.contains(&bucket)),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("plugin publish") && e.to_string().contains("PLUGIN_REQUIRE_PIN"),
        "the message says what to do: {e}"
    );
    assert!(!e.is_retryable());
    let mut pinned = spec("skip");
    pinned.sha256 = Some(digest);
    assert!(run(&strict, &pinned, "k", b"", "{}").await.is_ok());
    let lax = PluginHost::new(
        Arc::new(
            S3PluginStore::new(s3.clone(), &uri)
                .unwrap()
                .require_pin(false),
        ),
        PluginLimits::default(),
    )
    .unwrap();
    assert!(run(&lax, &spec("skip"), "k", b"", "{}").await.is_ok());
}
