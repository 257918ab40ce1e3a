//! `alteryx-router demo`: the whole path on one machine, with no AWS account.
//!
//! It starts the Alteryx Server emulator in-process, loads the example rules (embedded in the
//! binary, or `--rules DIR`), feeds realistic EventBridge and S3-notification events for a few
//! sample objects (one that matches nothing, one delivered twice), runs them through the same
//! [`Router`] the Lambda uses (with a fresh local execution store), tracks the jobs to the
//! end and prints what ran. Nothing here is a second pipeline: only the stores differ.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::output;
use alteryx_router_core::alteryx::{ClientOptions, ServerConfig};
use alteryx_router_core::executions::{
    ExecutionStatus, ExecutionStore, ListFilter, SqliteExecutionStore,
};
use alteryx_router_core::router::{InvocationSummary, Router};
use alteryx_router_core::rules::{RuleError, RuleSet, RuleSource, parse_rules_document};
use alteryx_router_core::secrets::ClientPool;
use alteryx_router_core::secrets::{SecretString, StaticSource};
use alteryx_router_core::tracker::{LogNotifier, Tracker, TrackerSettings};
use alteryx_router_emulator::{self as emulator, EmulatorConfig};

/// The example rules, embedded so `demo` runs from the binary alone.
const EXAMPLE_RULES: &[(&str, &str)] = &[
    (
        "rules/examples/invoices.yaml",
        include_str!("../../../rules/examples/invoices.yaml"),
    ),
    (
        "rules/examples/month-end.yaml",
        include_str!("../../../rules/examples/month-end.yaml"),
    ),
    (
        "rules/examples/partners.yaml",
        include_str!("../../../rules/examples/partners.yaml"),
    ),
    (
        "rules/examples/sales.yaml",
        include_str!("../../../rules/examples/sales.yaml"),
    ),
];

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Rules to use instead of the embedded examples (a file or a directory of YAML/JSON).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Which Alteryx API the demo talks to: v1 (OAuth1, /gallery/api/) or v3 (OAuth2, /webapi/).
    #[arg(long, default_value = "v1", value_parser = ["v1", "v3"])]
    pub api: String,
    /// How long each emulated job runs, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub job_seconds: f64,
}

/// Rules held in memory (the demo's rule store).
struct StaticRules(Arc<RuleSet>);

#[async_trait::async_trait]
impl RuleSource for StaticRules {
    async fn rule_set(&self) -> Result<Arc<RuleSet>, RuleError> {
        Ok(Arc::clone(&self.0))
    }
}

/// One sample upload and how it is delivered.
struct Sample {
    what: &'static str,
    payload: Value,
}

fn eventbridge(bucket: &str, key: &str, size: u64, sequencer: &str, time: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("demo-{sequencer}"),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "111122223333",
        "time": time,
        "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {
            "version": "0",
            "bucket": { "name": bucket },
            "object": { "key": key, "size": size, "etag": format!("etag{sequencer}"), "sequencer": sequencer },
            "request-id": "DEMO1234567890",
            "requester": "111122223333",
            "source-ip-address": "203.0.113.15",
            "reason": "PutObject"
        }
    })
}

fn s3_notification(
    bucket: &str,
    encoded_key: &str,
    size: u64,
    sequencer: &str,
    time: &str,
) -> Value {
    json!({ "Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": time,
        "eventName": "ObjectCreated:Put",
        "userIdentity": { "principalId": "AWS:AIDAEXAMPLE" },
        "requestParameters": { "sourceIPAddress": "203.0.113.15" },
        "responseElements": { "x-amz-request-id": "DEMO", "x-amz-id-2": "DEMO" },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "alteryx-router",
            "bucket": { "name": bucket, "ownerIdentity": { "principalId": "A3EXAMPLE" }, "arn": format!("arn:aws:s3:::{bucket}") },
            "object": { "key": encoded_key, "size": size, "eTag": format!("etag{sequencer}"), "sequencer": sequencer }
        }
    }]})
}

fn samples() -> Vec<Sample> {
    let day = "2026-11-24T09:15:02Z";
    let sales = eventbridge(
        "acme-landing",
        "incoming/sales/2026/11/24/sales-eu.csv",
        48_213,
        "0065F1A2B3C4D5E6F7",
        day,
    );
    vec![
        Sample {
            what: "daily sales file (EventBridge)",
            payload: sales.clone(),
        },
        Sample {
            what: "invoice PDF, key with a space (classic S3 notification, URL-encoded key)",
            payload: s3_notification(
                "acme-landing",
                "incoming/invoices/acme+supplies/INV-2026-0042.pdf",
                91_004,
                "0065F1A2B3C4D5E700",
                "2026-11-24T09:16:40Z",
            ),
        },
        Sample {
            what: "partner feed (its workflow will fail)",
            payload: eventbridge(
                "acme-landing",
                "partners/globex/feed-2026-11-24.json",
                5_120,
                "0065F1A2B3C4D5E701",
                "2026-11-24T09:17:05Z",
            ),
        },
        Sample {
            what: "upload in progress under _tmp/ (excluded)",
            payload: eventbridge(
                "acme-landing",
                "incoming/sales/_tmp/sales-eu.csv.part",
                1_024,
                "0065F1A2B3C4D5E702",
                "2026-11-24T09:17:30Z",
            ),
        },
        Sample {
            what: "a file no rule is interested in",
            payload: eventbridge(
                "acme-landing",
                "archive/2019/old-report.xlsx",
                220_331,
                "0065F1A2B3C4D5E703",
                "2026-11-24T09:18:00Z",
            ),
        },
        Sample {
            what: "the daily sales event delivered again (duplicate)",
            payload: sales,
        },
        Sample {
            what: "month-end: orders for 2026-11 (opens the period's batch)",
            payload: eventbridge(
                "acme-landing",
                "closing/2026-11/orders.csv",
                312_400,
                "0065F1A2B3C4D5E710",
                "2026-11-30T18:02:11Z",
            ),
        },
        Sample {
            what: "month-end: customers (joins the batch)",
            payload: eventbridge(
                "acme-landing",
                "closing/2026-11/customers.csv",
                88_120,
                "0065F1A2B3C4D5E711",
                "2026-11-30T18:05:40Z",
            ),
        },
        Sample {
            what: "month-end: the ledger completes the batch (one job for the three files)",
            payload: eventbridge(
                "acme-landing",
                "closing/2026-11/ledger-eu.csv",
                1_204_330,
                "0065F1A2B3C4D5E712",
                "2026-11-30T18:11:02Z",
            ),
        },
    ]
}

fn load_rules(path: Option<&PathBuf>) -> anyhow::Result<RuleSet> {
    let mut rules = Vec::new();
    match path {
        None => {
            for (name, text) in EXAMPLE_RULES {
                rules.extend(parse_rules_document(text, name)?);
            }
        }
        Some(p) if p.is_dir() => {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    matches!(
                        f.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
                })
                .collect();
            entries.sort();
            for f in entries {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                rules.extend(parse_rules_document(&text, &f.display().to_string())?);
            }
        }
        Some(f) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            rules.extend(parse_rules_document(&text, &f.display().to_string())?);
        }
    }
    Ok(RuleSet::new(rules)?)
}

#[derive(Serialize)]
struct DemoRow {
    upload: String,
    execution_id: Option<String>,
    object: String,
    rule: Option<String>,
    routed: String,
    job_id: Option<String>,
    questions: BTreeMap<String, String>,
    final_status: String,
    detail: Option<String>,
}

pub async fn run(args: DemoArgs, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let rule_set = Arc::new(load_rules(args.rules.as_ref())?);

    let config = EmulatorConfig {
        job_duration: Duration::from_secs_f64(args.job_seconds.max(0.1)),
        ..Default::default()
    };
    let emulator = emulator::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .context("starting the Alteryx Server emulator")?;
    let (base, auth) = if args.api == "v3" {
        (emulator.webapi_url(), "v3 + OAuth2 client credentials")
    } else {
        (emulator.gallery_url(), "v1 + OAuth1 HMAC-SHA1")
    };
    let server = ServerConfig::from_parts(
        &base,
        "demo-key",
        SecretString::new("demo-secret"),
        None,
        None,
    )?;

    let home = std::env::temp_dir().join(format!("alteryx-router-demo-{}", std::process::id()));
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let store: Arc<dyn ExecutionStore> = Arc::new(SqliteExecutionStore::open(
        &home.join("executions.sqlite3"),
    )?);
    let pool = Arc::new(ClientPool::new(
        Arc::new(StaticSource(server)),
        ClientOptions::default(),
    ));
    let router = Router::new(
        Arc::new(StaticRules(Arc::clone(&rule_set))),
        Arc::clone(&store),
        Arc::clone(&pool),
    );

    if !json {
        println!("alteryx-router demo");
        println!("  Alteryx Server emulator: {base} ({auth})");
        println!(
            "  rules: {} ({})",
            rule_set.len(),
            rule_set
                .rules()
                .iter()
                .map(|r| r.rule.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  execution store: {}",
            home.join("executions.sqlite3").display()
        );
        println!();
    }

    let mut rows = Vec::new();
    for sample in samples() {
        let summary: InvocationSummary = router.handle_payload(&sample.payload).await?;
        if !json {
            println!("▶ {}", sample.what);
        }
        for object in &summary.objects {
            let name = format!("s3://{}/{}", object.bucket, object.key);
            if !json {
                println!("    {name}: {} rule(s) matched", object.rules_matched);
            }
            if object.outcomes.is_empty() {
                rows.push(DemoRow {
                    upload: sample.what.to_string(),
                    execution_id: None,
                    object: name.clone(),
                    rule: None,
                    routed: "no rule matched".into(),
                    job_id: None,
                    questions: BTreeMap::new(),
                    final_status: "-".into(),
                    detail: None,
                });
            }
            for o in &object.outcomes {
                let routed = if o.duplicate {
                    "duplicate, skipped".to_string()
                } else {
                    format!("{:?}", o.status).to_uppercase()
                };
                rows.push(DemoRow {
                    upload: sample.what.to_string(),
                    execution_id: Some(o.execution_id.clone()),
                    object: name.clone(),
                    rule: Some(o.rule_id.clone()),
                    routed,
                    job_id: o.job_id.clone(),
                    questions: o.questions.clone(),
                    final_status: String::new(),
                    detail: o.message.clone(),
                });
            }
        }
    }

    // Track the jobs to the end, as the scheduled tracker does in AWS.
    let tracker = Tracker::new(
        Arc::clone(&store),
        pool,
        Arc::new(LogNotifier),
        TrackerSettings::default(),
    );
    let deadline = Instant::now() + Duration::from_secs_f64(args.job_seconds.max(0.1) * 3.0 + 10.0);
    loop {
        let report = tracker.run_once().await;
        let pending = store
            .list(&ListFilter {
                status: Some(ExecutionStatus::Submitted),
                ..Default::default()
            })
            .await?
            .len();
        if pending == 0 || Instant::now() > deadline {
            if !report.errors.is_empty() && !json {
                for e in &report.errors {
                    println!("tracker: {e}");
                }
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let finals = store.list(&ListFilter::default()).await?;
    for row in &mut rows {
        let Some(id) = &row.execution_id else {
            continue;
        };
        let record = finals.iter().find(|e| &e.id == id);
        if let Some(e) = record {
            row.final_status = match &e.disposition {
                Some(d) => format!("{} ({d})", e.status),
                None => e.status.to_string(),
            };
            if e.status == ExecutionStatus::Failed {
                row.detail = e.message.clone();
            }
        }
    }
    let jobs = emulator.jobs();
    emulator.shutdown().await;

    if json {
        return output::print_json(&json!({ "rows": rows, "jobs_received_by_alteryx": jobs }));
    }
    println!();
    let mut t = output::table(&[
        "object",
        "rule",
        "routed",
        "job",
        "question values",
        "final status",
    ]);
    for r in &rows {
        let mut detail = output::questions_cell(&r.questions);
        if let Some(d) = &r.detail {
            if !detail.is_empty() {
                detail.push('\n');
            }
            detail.push_str(d);
        }
        t.add_row(vec![
            r.object.clone(),
            r.rule.clone().unwrap_or_else(|| "-".into()),
            r.routed.clone(),
            r.job_id.clone().unwrap_or_default(),
            detail,
            r.final_status.clone(),
        ]);
    }
    println!("{t}");
    println!(
        "{} events, {} jobs received by the Alteryx emulator, in {:.1}s. Try: ALTERYX_ROUTER_HOME={} alteryx-router executions list",
        samples().len(),
        jobs.len(),
        started.elapsed().as_secs_f64(),
        home.display()
    );
    Ok(())
}
