//! Benchmarks of each stage and the whole pipeline (criterion).
//!
//! `cargo bench -p alteryx-router --bench pipeline` (add `-- matching` etc. to filter).
//! Targets (issue notes): matching ≤ 2 µs per event at 100 000 rules (issue 17); pipeline
//! overhead < 1 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use alteryx_router_core::alteryx::{
    AlteryxClient, ClientOptions, JobRequest, QuestionValue, ServerConfig,
};
use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::executions::SqliteExecutionStore;
use alteryx_router_core::plugin::{
    DirPluginStore, PluginHost, PluginInput, PluginLimits, PluginSpec, compile_to_cwasm,
};
use alteryx_router_core::router::Router;
use alteryx_router_core::rules::snapshot::{self, SnapshotInfo};
use alteryx_router_core::rules::{Rule, RuleError, RuleSet, RuleSource};
use alteryx_router_core::secrets::ClientPool;
use alteryx_router_core::secrets::{SecretString, StaticSource};
use alteryx_router_core::template::{Facts, Template};
use alteryx_router_emulator::{self as emulator, EmulatorConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn object(key: &str) -> ObjectCreated {
    ObjectCreated {
        bucket: "acme-landing".into(),
        key: key.into(),
        size: 48213,
        etag: Some("9b2cf535f27731c974343645a3985328".into()),
        version_id: None,
        sequencer: Some("00617F08299329D189".into()),
        event_time: "2026-11-24T09:15:02Z".into(),
        reason: Some("PutObject".into()),
        source: "bench".into(),
    }
}

/// `n` rules of realistic shapes: per-team prefixes, extensions, some bucket globs and excludes.
fn rules(n: usize) -> Vec<Rule> {
    (0..n)
        .map(|i| Rule {
            id: format!("rule-{i:06}"),
            description: None,
            enabled: i % 50 != 0,
            priority: (i % 7) as i64,
            bucket: (i % 3 == 0).then(|| "acme-*".to_string()),
            key: match i % 4 {
                0 => format!("incoming/team{i}/**/*.csv"),
                1 => format!("incoming/team{i}/*.xlsx"),
                2 => format!("exports/{i}/**"),
                _ => format!("partners/p{i}/*/*.json"),
            },
            exclude: if i % 5 == 0 {
                vec!["**/_tmp/**".into()]
            } else {
                vec![]
            },
            min_size: Some(1),
            max_size: None,
            workflow: format!("wf{i}"),
            secret_id: None,
            questions: BTreeMap::from([
                ("InputPath".to_string(), "{s3_uri}".to_string()),
                ("FileName".to_string(), "{key.name}".to_string()),
            ]),
            plugin: None,
            is_final: false,
            job_priority: None,
            max_concurrent_jobs: None,
            concurrency_group: None,
            batch: None,
            presign_expiry_seconds: None,
            worker_tag: None,
            credential_id: None,
        })
        .collect()
}

/// `n` rules in the shapes teams use at scale, a quarter each: a folder per partner
/// (`incoming/partner-N/**/*.csv`), a folder per partner below a `**`
/// (`archive/**/partner-N/*.json`), an extension per feed (`**/*.feedN`), and a bucket per
/// store with any key (`key: "**"`, `bucket: "store-N"`). Every 50th rule is disabled, every
/// 5th has an exclude, every 3rd of the folder rules a bucket glob.
fn mixed_rules(n: usize) -> Vec<Rule> {
    (0..n)
        .map(|i| {
            let (key, bucket) = match i % 4 {
                0 => (
                    format!("incoming/partner-{i:06}/**/*.csv"),
                    (i % 3 == 0).then(|| "acme-*".to_string()),
                ),
                1 => (format!("archive/**/partner-{i:06}/*.json"), None),
                2 => (format!("**/*.feed{i}"), None),
                _ => ("**".to_string(), Some(format!("store-{i:06}"))),
            };
            Rule {
                id: format!("rule-{i:06}"),
                description: None,
                enabled: i % 50 != 1,
                priority: (i % 7) as i64,
                bucket,
                key,
                exclude: if i % 5 == 0 {
                    vec!["**/_tmp/**".into()]
                } else {
                    vec![]
                },
                min_size: Some(1),
                max_size: None,
                workflow: format!("wf{i}"),
                secret_id: None,
                questions: BTreeMap::from([
                    ("InputPath".to_string(), "{s3_uri}".to_string()),
                    ("FileName".to_string(), "{key.name}".to_string()),
                ]),
                plugin: None,
                is_final: false,
                job_priority: None,
                max_concurrent_jobs: None,
                concurrency_group: None,
                batch: None,
                worker_tag: None,
                credential_id: None,
                presign_expiry_seconds: None,
            }
        })
        .collect()
}

fn object_in(bucket: &str, key: &str) -> ObjectCreated {
    ObjectCreated {
        bucket: bucket.into(),
        ..object(key)
    }
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("matching");
    group.throughput(Throughput::Elements(1));
    let sizes = [10usize, 1_000, 10_000, 100_000];
    for n in sizes {
        let set = RuleSet::new(mixed_rules(n)).unwrap();
        // One object per shape, each matching one rule when there are enough rules; and one
        // that no rule matches.
        let probes = [
            (
                "hit",
                object_in(
                    "acme-landing",
                    "incoming/partner-000004/2026/11/24/sales.csv",
                ),
            ),
            (
                "hit_deep",
                object_in("acme-landing", "archive/2026/11/partner-000005/orders.json"),
            ),
            (
                "hit_extension",
                object_in("acme-landing", "drop/x/file.feed6"),
            ),
            (
                "hit_bucket",
                object_in("store-000007", "any/key/at/all.bin"),
            ),
            (
                "miss",
                object_in("acme-landing", "nothing/matches/this/key.bin"),
            ),
        ];
        for (name, obj) in &probes {
            group.bench_with_input(BenchmarkId::new(*name, n), &set, |b, set| {
                b.iter(|| black_box(set.matching(black_box(obj)).len()))
            });
        }
        if n == 10_000 {
            // The old probe (and the one BENCHMARKS.md quotes) on the old rule shapes.
            let old = RuleSet::new(rules(n)).unwrap();
            let hit = object("incoming/team4/2026/11/24/sales.csv");
            group.bench_with_input(BenchmarkId::new("hit_legacy_shapes", n), &old, |b, set| {
                b.iter(|| black_box(set.matching(black_box(&hit)).len()))
            });
        }
    }
    group.finish();
    let mut group = c.benchmark_group("compile_rules");
    group.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        let rs = mixed_rules(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &rs, |b, rs| {
            b.iter(|| black_box(RuleSet::new(rs.clone()).unwrap().len()))
        });
    }
    group.finish();
    // The Lambda's path: a snapshot read into a set (nothing decoded yet), then the first
    // event (which decodes and validates its candidates).
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    for n in [10usize, 10_000, 100_000] {
        let set = RuleSet::new(mixed_rules(n)).unwrap();
        let info = SnapshotInfo {
            format: snapshot::FORMAT,
            built_at: "2026-11-25T00:00:00Z".into(),
            table: "rules".into(),
            rules: n,
            invalid: Vec::new(),
            builder: "bench".into(),
        };
        let bytes = snapshot::encode(&set, &info).unwrap();
        let obj = object_in(
            "acme-landing",
            "incoming/partner-000004/2026/11/24/sales.csv",
        );
        group.bench_with_input(BenchmarkId::new("load", n), &bytes, |b, bytes| {
            b.iter(|| black_box(snapshot::decode(bytes.clone()).unwrap().1.len()))
        });
        group.bench_with_input(
            BenchmarkId::new("load_and_first_match", n),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let (_, set) = snapshot::decode(bytes.clone()).unwrap();
                    black_box(set.matching(&obj).len())
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("encode", n), &set, |b, set| {
            b.iter(|| black_box(snapshot::encode(set, &info).unwrap().len()))
        });
        let (_, loaded) = snapshot::decode(bytes.clone()).unwrap();
        loaded.matching(&obj);
        group.bench_with_input(BenchmarkId::new("warm_match", n), &loaded, |b, set| {
            b.iter(|| black_box(set.matching(black_box(&obj)).len()))
        });
        eprintln!("snapshot of {n} rules: {} bytes", bytes.len());
    }
    group.finish();
}

fn templates(c: &mut Criterion) {
    let t =
        Template::parse("s3://{bucket}/{key} ({key.name}, {key.ext}, {size} bytes, {event_date})")
            .unwrap();
    let obj = object("incoming/sales/2026/11/24/sales-eu.csv");
    c.bench_function("template/render", |b| {
        b.iter(|| black_box(t.render(&Facts::of(black_box(&obj)))))
    });
    c.bench_function("template/parse", |b| {
        b.iter(|| {
            black_box(
                Template::parse(black_box("s3://{bucket}/{key} {key.name} {{literal}}")).unwrap(),
            )
        })
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn alteryx(c: &mut Criterion) {
    let secret = SecretString::new("bench-secret");
    let rt = runtime();
    let emu = rt
        .block_on(emulator::start(
            EmulatorConfig {
                credentials: vec![("bench-key".into(), "bench-secret".into())],
                ..Default::default()
            },
            ([127, 0, 0, 1], 0).into(),
        ))
        .unwrap();
    let request = JobRequest {
        questions: vec![QuestionValue {
            name: "InputPath".into(),
            value: "s3://acme-landing/incoming/sales/x.csv".into(),
        }],
        ..Default::default()
    };
    for (name, url) in [
        ("v1-oauth1", emu.gallery_url()),
        ("v3-oauth2", emu.webapi_url()),
    ] {
        let config =
            ServerConfig::from_parts(&url, "bench-key", secret.clone(), None, None).unwrap();
        let client = AlteryxClient::new(config, ClientOptions::default()).unwrap();
        rt.block_on(client.list_workflows()).unwrap(); // warm: connection and token
        c.bench_function(&format!("alteryx/submit_job/{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    client
                        .submit_job("5f3c0e5a2c1b0a0001d1e001", &request)
                        .await
                        .unwrap(),
                )
            })
        });
    }
    let _ = secret;
    rt.block_on(emu.shutdown());
}

struct StaticRules(Arc<RuleSet>);

#[async_trait::async_trait]
impl RuleSource for StaticRules {
    async fn rule_set(&self) -> Result<Arc<RuleSet>, RuleError> {
        Ok(Arc::clone(&self.0))
    }
}

fn pipeline(c: &mut Criterion) {
    let rt = runtime();
    let emu = rt
        .block_on(emulator::start(
            EmulatorConfig::default(),
            ([127, 0, 0, 1], 0).into(),
        ))
        .unwrap();
    let config = ServerConfig::from_parts(
        &emu.gallery_url(),
        "demo-key",
        SecretString::new("demo-secret"),
        None,
        None,
    )
    .unwrap();
    let mut rs = rules(1_000);
    rs[4].workflow = "5f3c0e5a2c1b0a0001d1e001".into();
    let set = Arc::new(RuleSet::new(rs).unwrap());
    let store = Arc::new(SqliteExecutionStore::in_memory().unwrap());
    let pool = Arc::new(ClientPool::new(
        Arc::new(StaticSource(config)),
        ClientOptions::default(),
    ));
    let router = Router::new(Arc::new(StaticRules(Arc::clone(&set))), store, pool);
    let mut n = 0u64;
    // Every iteration is a new object version: claim, render, submit (to the local emulator), record.
    c.bench_function("pipeline/new_object_1000_rules", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let mut obj = object("incoming/team4/2026/11/24/sales.csv");
            obj.sequencer = Some(format!("{n:016x}"));
            let router = &router;
            async move { black_box(router.route_object(&obj).await.unwrap()) }
        })
    });
    // The same object again: a duplicate costs one claim and no submission.
    let dup = object("incoming/team4/2026/11/24/sales.csv");
    rt.block_on(router.route_object(&dup)).unwrap();
    c.bench_function("pipeline/duplicate_1000_rules", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(router.route_object(&dup).await.unwrap()) })
    });
    rt.block_on(emu.shutdown());
}

fn plugins(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/fixtures/skip.wat");
    let wasm = wat::parse_file(&fixture).unwrap();
    std::fs::write(dir.path().join("jit.wasm"), &wasm).unwrap();
    std::fs::write(
        dir.path().join("aot.cwasm"),
        compile_to_cwasm(&wasm, None).unwrap(),
    )
    .unwrap();
    let host = PluginHost::new(
        Arc::new(DirPluginStore::new(dir.path().to_path_buf())),
        PluginLimits::default(),
    )
    .unwrap();
    let obj = object("incoming/sales/x.csv");
    let spec = |name: &str| PluginSpec {
        name: name.into(),
        read_bytes: 4096,
        config: serde_json::Value::Null,
        sha256: None,
        timeout_ms: None,
        memory_mb: None,
        read_budget_bytes: None,
        workflows: Vec::new(),
    };
    let head = vec![b'x'; 4096];
    for name in ["aot", "jit"] {
        let s = spec(name);
        c.bench_function(&format!("plugin/wat_call/{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                let input = bench_input(&obj, &head);
                black_box(host.run(&s, input).await.unwrap())
            })
        });
    }
    let mut group = c.benchmark_group("plugin/load");
    group.sample_size(20);
    group.bench_function("compile_wat_component", |b| {
        b.iter(|| black_box(compile_to_cwasm(&wasm, None).unwrap()))
    });
    // A new sandbox's first call: fresh host, so the plugin is loaded (deserialized, or
    // compiled from .wasm) before it runs.
    for name in ["aot", "jit"] {
        let s = spec(name);
        group.bench_function(format!("first_call_wat/{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                let host = PluginHost::new(
                    Arc::new(DirPluginStore::new(dir.path().to_path_buf())),
                    PluginLimits::default(),
                )
                .unwrap();
                let input = bench_input(&obj, &head);
                black_box(host.run(&s, input).await.unwrap())
            })
        });
    }
    group.finish();
    // The Python example, when built: `BUILT_PLUGINS_DIR` (as scripts/test builds it), else the
    // plugin tests' cache in $CARGO_TARGET_DIR/plugin-cache.
    if let Some(dir) = python_plugin_dir() {
        let py = PluginHost::new(
            Arc::new(DirPluginStore::new(dir.clone())),
            PluginLimits {
                timeout: Duration::from_secs(2),
                ..Default::default()
            },
        )
        .unwrap();
        let s = spec("csv-header");
        let csv = b"Region,Amount,Currency\nEU,1200.50,EUR\n".to_vec();
        let mut group = c.benchmark_group("plugin/python_load");
        group.sample_size(10);
        group.bench_function("first_call_cwasm", |b| {
            b.to_async(&rt).iter(|| async {
                let fresh = PluginHost::new(
                    Arc::new(DirPluginStore::new(dir.clone())),
                    PluginLimits {
                        timeout: Duration::from_secs(2),
                        ..Default::default()
                    },
                )
                .unwrap();
                let input = bench_input(&obj, &csv);
                black_box(fresh.run(&s, input).await.unwrap())
            })
        });
        if let Ok(python_wasm) = std::fs::read(dir.join("csv-header.wasm")) {
            group.bench_function("compile_component", |b| {
                b.iter(|| black_box(compile_to_cwasm(&python_wasm, None).unwrap()))
            });
        }
        group.finish();
        c.bench_function("plugin/python_csv_header_call/aot", |b| {
            b.to_async(&rt).iter(|| async {
                let input = bench_input(&obj, &csv);
                black_box(py.run(&s, input).await.unwrap())
            })
        });
    }
}

/// One plugin call's input: the object, its head, an empty config.
fn bench_input<'a>(object: &'a ObjectCreated, head: &'a [u8]) -> PluginInput<'a> {
    PluginInput {
        batch: None,
        rule_id: "bench",
        object,
        content_type: None,
        head,
        config_json: "{}",
        workflow: "bench-workflow",
        // These plugins read only the head.
        reader: std::sync::Arc::new(alteryx_router_core::plugin::FileObjectReader::new(
            "/dev/null".into(),
        )),
    }
}

fn python_plugin_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("BUILT_PLUGINS_DIR").map(std::path::PathBuf::from)
        && dir.join("csv-header.cwasm").exists()
    {
        return Some(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR").ok()?;
    let cache = std::path::Path::new(&target).join("plugin-cache");
    std::fs::read_dir(cache)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("csv-header.cwasm").exists())
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = matching, templates, alteryx, pipeline, plugins
}
criterion_main!(benches);
