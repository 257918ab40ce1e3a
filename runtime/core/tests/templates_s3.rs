//! Question values from what the event does not carry, against moto's S3 and the emulator:
//! objects really put with user metadata, `{meta.NAME}` read by one pinned HEAD per object
//! version (counted by a wrapper around the real S3 reader), `{presigned_url}` fetched over
//! HTTP and compared with the object's bytes, key captures, time formats, objects deleted or
//! overwritten since the event, and where and as whom the job runs (worker tag, credential id)
//! on v3 and v1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alteryx_router_core::alteryx::{ClientOptions, ServerConfig};
use alteryx_router_core::event::ObjectCreated;
use alteryx_router_core::executions::{ExecutionStatus, SqliteExecutionStore};
use alteryx_router_core::plugin::ObjectVersion;
use alteryx_router_core::render::{HeadError, ObjectDetails, PresignError, S3ObjectDetails};
use alteryx_router_core::router::{Router, RuleOutcome};
use alteryx_router_core::rules::FileRuleSource;
use alteryx_router_core::secrets::{ClientPool, SecretString, StaticSource};
use alteryx_router_core::template::Metadata;
use alteryx_router_emulator::{
    self as emulator, EmulatedQuestion, EmulatedWorkflow, EmulatorConfig, EmulatorHandle,
    JobOutcome,
};
use aws_sdk_s3::primitives::ByteStream;

const KEY_ID: &str = "templates-key";
const KEY_SECRET: &str = "templates-secret";
const WF: &str = "5f3c0e5a2c1b0a0001d1e001";
const CREDENTIAL: &str = "6543210fedcba98765430001";

/// The real S3 reader, counting its HEADs and signatures.
struct Counting {
    inner: S3ObjectDetails,
    heads: AtomicUsize,
    signed: AtomicUsize,
}

#[async_trait::async_trait]
impl ObjectDetails for Counting {
    async fn metadata(&self, object: &ObjectVersion) -> Result<Metadata, HeadError> {
        self.heads.fetch_add(1, Ordering::SeqCst);
        self.inner.metadata(object).await
    }

    async fn presign_get(
        &self,
        object: &ObjectVersion,
        expires_in: Duration,
    ) -> Result<String, PresignError> {
        self.signed.fetch_add(1, Ordering::SeqCst);
        self.inner.presign_get(object, expires_in).await
    }
}

struct World {
    _dir: tempfile::TempDir,
    s3: aws_sdk_s3::Client,
    bucket: String,
    emu: EmulatorHandle,
    details: Arc<Counting>,
    router: Router,
}

async fn world(rules_yaml: &str, api: &str, versioned: bool) -> World {
    let s3 = aws_sdk_s3::Client::new(&common::aws_config().await);
    let bucket = common::unique("templates");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    if versioned {
        s3.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let questions = [
        "Rule",
        "InputUrl",
        "Customer",
        "Region",
        "Date",
        "Month",
        "Batch",
        "Name",
        "InputPath",
    ];
    let emu = emulator::start(
        EmulatorConfig {
            workflows: vec![EmulatedWorkflow {
                id: WF.into(),
                name: "Templates".into(),
                questions: questions
                    .iter()
                    .map(|q| EmulatedQuestion {
                        name: q.to_string(),
                        question_type: "QuestionTextBox".into(),
                    })
                    .collect(),
                outcome: JobOutcome::Success,
            }],
            credentials: vec![(KEY_ID.into(), KEY_SECRET.into())],
            worker_tags: vec!["gpu".into()],
            credential_ids: vec![CREDENTIAL.into()],
            ..EmulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let url = if api == "v3" {
        emu.webapi_url()
    } else {
        emu.gallery_url()
    };
    let server =
        ServerConfig::from_parts(&url, KEY_ID, SecretString::new(KEY_SECRET), None, None).unwrap();
    let pool = Arc::new(ClientPool::new(
        Arc::new(StaticSource(server)),
        ClientOptions::default(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rules_yaml.replace("BUCKET", &bucket)).unwrap();
    let store = Arc::new(SqliteExecutionStore::open(&dir.path().join("x.sqlite3")).unwrap());
    let details = Arc::new(Counting {
        inner: S3ObjectDetails::new(s3.clone()),
        heads: AtomicUsize::new(0),
        signed: AtomicUsize::new(0),
    });
    let router = Router::new(Arc::new(FileRuleSource::new(rules)), store, pool)
        .with_object_details(details.clone());
    World {
        _dir: dir,
        s3,
        bucket,
        emu,
        details,
        router,
    }
}

impl World {
    /// Put an object with user metadata; the event S3 would send for it.
    async fn put(&self, key: &str, body: &[u8], metadata: &[(&str, &str)]) -> ObjectCreated {
        let mut put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()));
        for (name, value) in metadata {
            put = put.metadata(*name, *value);
        }
        let out = put.send().await.unwrap();
        ObjectCreated {
            bucket: self.bucket.clone(),
            key: key.into(),
            size: body.len() as u64,
            etag: out.e_tag().map(|e| e.trim_matches('"').to_string()),
            version_id: out.version_id().map(str::to_string),
            sequencer: Some(format!("{:016X}", rand::random::<u64>())),
            event_time: "2026-11-24T23:15:02.123Z".into(),
            reason: Some("PutObject".into()),
            source: "test".into(),
        }
    }

    async fn route(&self, object: &ObjectCreated) -> Vec<RuleOutcome> {
        self.router.route_object(object).await.unwrap().outcomes
    }

    fn heads(&self) -> usize {
        self.details.heads.load(Ordering::SeqCst)
    }

    /// The questions of the jobs the emulator received, by `Rule` question.
    fn jobs(&self) -> Vec<HashMap<String, String>> {
        self.emu
            .jobs()
            .into_iter()
            .map(|j| j.questions.into_iter().collect())
            .collect()
    }
}

async fn get(url: &str) -> (u16, Vec<u8>) {
    let answer = reqwest::get(url).await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.bytes().await.unwrap().to_vec())
}

const RULES: &str = "
- id: with-url
  priority: 1
  bucket: BUCKET
  key: 'incoming/<region>/<date>/*.csv'
  workflow: 5f3c0e5a2c1b0a0001d1e001
  presign_expiry_seconds: 120
  questions:
    Rule: with-url
    InputUrl: '{presigned_url}'
    Customer: '{meta.Customer}'
    Region: '{region}'
    Date: '{date}'
    Month: '{event_time:%Y/%m}'
- id: metadata-too
  priority: 2
  bucket: BUCKET
  key: 'incoming/**/*.csv'
  workflow: 5f3c0e5a2c1b0a0001d1e001
  questions:
    Rule: metadata-too
    Batch: '{meta.batch-id}'
- id: event-only
  priority: 3
  bucket: BUCKET
  key: 'plain/*.csv'
  workflow: 5f3c0e5a2c1b0a0001d1e001
  questions:
    Rule: event-only
    Name: '{key.name}'
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_one_head_per_object_and_the_url_fetches_the_object() {
    let w = world(RULES, "v1", false).await;
    let body = b"region,amount\neu,12\n".repeat(100);
    let object = w
        .put(
            "incoming/eu-west/2026-11-24/sales.csv",
            &body,
            &[("customer", "ACME"), ("batch-id", "b-77")],
        )
        .await;
    let outcomes = w.route(&object).await;
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == ExecutionStatus::Submitted),
        "{outcomes:#?}"
    );
    assert_eq!(w.heads(), 1, "two rules read metadata: one HEAD");
    assert_eq!(w.details.signed.load(Ordering::SeqCst), 1);

    let jobs = w.jobs();
    let with_url = jobs.iter().find(|j| j["Rule"] == "with-url").unwrap();
    assert_eq!(with_url["Customer"], "ACME");
    assert_eq!(with_url["Region"], "eu-west");
    assert_eq!(with_url["Date"], "2026-11-24");
    assert_eq!(with_url["Month"], "2026/11");
    let batch = jobs.iter().find(|j| j["Rule"] == "metadata-too").unwrap();
    assert_eq!(batch["Batch"], "b-77");

    // The URL is signed for the rule's expiry and fetches exactly the object's bytes.
    let url = &with_url["InputUrl"];
    assert!(
        url.starts_with(&common::moto()) && url.contains("X-Amz-Signature="),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=120"), "{url}");
    let (status, fetched) = get(url).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, body, "the URL's bytes are the object's");
    // The execution keeps the values it sent.
    let execution = w
        .router
        .executions()
        .get(&outcomes[0].execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execution.questions["InputUrl"], *url);

    // A rule that reads only the event costs no request at all.
    let plain = w.put("plain/a.csv", b"x", &[("customer", "ACME")]).await;
    let outcomes = w.route(&plain).await;
    assert_eq!(outcomes[0].status, ExecutionStatus::Submitted);
    assert_eq!(outcomes[0].questions["Name"], "a.csv");
    assert_eq!(w.heads(), 1, "no HEAD for a rule without {{meta.*}}");
    assert_eq!(w.details.signed.load(Ordering::SeqCst), 1);

    // Another object version is another HEAD.
    let second = w
        .put(
            "incoming/us/2026-11-25/sales.csv",
            b"a",
            &[("customer", "Initech"), ("batch-id", "b-78")],
        )
        .await;
    w.route(&second).await;
    assert_eq!(w.heads(), 2);
    assert!(
        w.jobs()
            .iter()
            .any(|j| j.get("Customer").map(String::as_str) == Some("Initech"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_gone_since_the_event_are_skipped_and_missing_metadata_is_an_error() {
    let w = world(RULES, "v1", false).await;
    // Overwritten: the event's ETag no longer matches.
    let first = w
        .put(
            "incoming/eu/d1/a.csv",
            b"first",
            &[("customer", "A"), ("batch-id", "1")],
        )
        .await;
    w.put(
        "incoming/eu/d1/a.csv",
        b"second!",
        &[("customer", "B"), ("batch-id", "2")],
    )
    .await;
    let outcomes = w.route(&first).await;
    for o in &outcomes {
        assert_eq!(o.status, ExecutionStatus::Skipped, "{o:#?}");
        let message = o.message.as_deref().unwrap();
        assert!(
            message.contains("was overwritten since the event"),
            "{message}"
        );
    }
    // Deleted before routing.
    let gone = w
        .put(
            "incoming/eu/d2/a.csv",
            b"x",
            &[("customer", "A"), ("batch-id", "1")],
        )
        .await;
    w.s3.delete_object()
        .bucket(&w.bucket)
        .key("incoming/eu/d2/a.csv")
        .send()
        .await
        .unwrap();
    for o in w.route(&gone).await {
        assert_eq!(o.status, ExecutionStatus::Skipped);
        assert!(
            o.message
                .as_deref()
                .unwrap()
                .contains("was deleted before routing"),
            "{o:#?}"
        );
    }
    // No such metadata on the object: an ERROR no retry fixes, naming rule, question, name.
    let bare = w
        .put("incoming/eu/d3/a.csv", b"x", &[("customer", "A")])
        .await;
    let outcomes = w.route(&bare).await;
    let batch = outcomes
        .iter()
        .find(|o| o.rule_id == "metadata-too")
        .unwrap();
    assert_eq!(batch.status, ExecutionStatus::Error);
    assert!(!batch.retryable);
    let message = batch.message.as_deref().unwrap();
    assert!(
        message.starts_with(
            "rule `metadata-too`, question `Batch`: the object has no user metadata `batch-id`"
        ) && message.ends_with("it has customer"),
        "{message}"
    );
    let with_url = outcomes.iter().find(|o| o.rule_id == "with-url").unwrap();
    assert_eq!(with_url.status, ExecutionStatus::Submitted, "{with_url:#?}");
    assert!(w.emu.jobs().len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_versioned_bucket_the_url_keeps_fetching_the_events_version() {
    let w = world(RULES, "v1", true).await;
    let body = b"the event's version".to_vec();
    let object = w
        .put(
            "incoming/eu/d/a.csv",
            &body,
            &[("customer", "A"), ("batch-id", "1")],
        )
        .await;
    let version = object.version_id.clone().expect("a version id");
    // Overwritten after the event, before the workflow downloads.
    w.put(
        "incoming/eu/d/a.csv",
        b"a later upload",
        &[("customer", "B"), ("batch-id", "2")],
    )
    .await;
    let outcomes = w.route(&object).await;
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == ExecutionStatus::Submitted),
        "pinned by version id, the event's version is still there: {outcomes:#?}"
    );
    let url = &outcomes
        .iter()
        .find(|o| o.rule_id == "with-url")
        .unwrap()
        .questions["InputUrl"];
    assert!(url.contains(&format!("versionId={version}")), "{url}");
    assert_eq!(get(url).await, (200, body));
    let customer = &outcomes[0].questions["Customer"];
    assert_eq!(customer, "A", "the metadata of the event's version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_fails_is_a_retryable_error_and_access_is_required() {
    // An S3 endpoint where nothing listens: the failure is transient as far as we can tell.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let config = aws_sdk_s3::config::Builder::from(&common::aws_config().await)
        .endpoint_url(&dead)
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    let details = S3ObjectDetails::new(aws_sdk_s3::Client::from_conf(config));
    let object = ObjectVersion {
        bucket: "b".into(),
        key: "k".into(),
        size: 1,
        version_id: None,
        etag: Some("e".into()),
    };
    let e = details.metadata(&object).await.unwrap_err();
    assert!(e.is_retryable() && !e.is_gone(), "{e:?}");

    // Through the router: recorded as a retryable ERROR, so the event is delivered again.
    let w = world(RULES, "v1", false).await;
    let router = Router::new(
        Arc::new(FileRuleSource::new(w._dir.path().join("rules.yaml"))),
        Arc::new(SqliteExecutionStore::in_memory().unwrap()),
        w.router.alteryx().clone(),
    )
    .with_object_details(Arc::new(details));
    let object = w
        .put(
            "incoming/eu/d/a.csv",
            b"x",
            &[("customer", "A"), ("batch-id", "1")],
        )
        .await;
    let summary = router.route_object(&object).await.unwrap();
    for o in &summary.outcomes {
        assert_eq!(o.status, ExecutionStatus::Error);
        assert!(o.retryable, "{o:#?}");
        assert!(o.message.as_deref().unwrap().contains("{meta.*}"), "{o:#?}");
    }
    assert!(summary.has_retryable_failure());

    // A router with no object access refuses such rules clearly, and runs the others.
    let bare = Router::new(
        Arc::new(FileRuleSource::new(w._dir.path().join("rules.yaml"))),
        Arc::new(SqliteExecutionStore::in_memory().unwrap()),
        w.router.alteryx().clone(),
    );
    let outcomes = bare.route_object(&object).await.unwrap().outcomes;
    let message = outcomes[0].message.as_deref().unwrap();
    assert!(
        message.contains("rule `with-url` uses {meta.*}, but this router reads no objects"),
        "{message}"
    );
    assert!(!outcomes[0].retryable);
}

const JOB_RULES: &str = "
- id: on-gpu
  priority: 1
  bucket: BUCKET
  key: 'gpu/*.csv'
  workflow: 5f3c0e5a2c1b0a0001d1e001
  worker_tag: gpu
  credential_id: 6543210fedcba98765430001
  questions: {InputPath: '{s3_uri}'}
- id: unknown-tag
  priority: 2
  bucket: BUCKET
  key: 'tpu/*.csv'
  workflow: 5f3c0e5a2c1b0a0001d1e001
  worker_tag: tpu
";

fn event_only(bucket: &str, key: &str) -> ObjectCreated {
    ObjectCreated {
        bucket: bucket.into(),
        key: key.into(),
        size: 1,
        etag: Some("e".into()),
        version_id: None,
        sequencer: Some("01".into()),
        event_time: "2026-11-24T09:15:02Z".into(),
        reason: None,
        source: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_tag_and_credential_reach_v3_and_refusals_are_clear_errors() {
    let w = world(JOB_RULES, "v3", false).await;
    let outcomes = w.route(&event_only(&w.bucket, "gpu/a.csv")).await;
    assert_eq!(
        outcomes[0].status,
        ExecutionStatus::Submitted,
        "{outcomes:#?}"
    );
    let jobs = w.emu.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].worker_tag.as_deref(), Some("gpu"));
    assert_eq!(jobs[0].credential_id.as_deref(), Some(CREDENTIAL));
    assert_eq!(jobs[0].workflow_id, WF);

    // A tag the server does not know: Alteryx's refusal, recorded as an ERROR.
    let outcomes = w.route(&event_only(&w.bucket, "tpu/a.csv")).await;
    assert_eq!(outcomes[0].status, ExecutionStatus::Error);
    assert!(!outcomes[0].retryable);
    let message = outcomes[0].message.as_deref().unwrap();
    assert!(message.contains("Invalid workerTag 'tpu'"), "{message}");
    assert_eq!(w.emu.jobs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_v1_a_worker_tag_is_refused_before_anything_is_sent() {
    let w = world(JOB_RULES, "v1", false).await;
    let outcomes = w.route(&event_only(&w.bucket, "gpu/a.csv")).await;
    assert_eq!(outcomes[0].status, ExecutionStatus::Error);
    assert!(!outcomes[0].retryable, "no retry makes v1 carry it");
    let message = outcomes[0].message.as_deref().unwrap();
    assert!(
        message.starts_with(
            "submit job: rule `on-gpu` asks for `worker_tag` (workerTag) and `credential_id` (credentialId), which API v1 cannot carry"
        ),
        "{message}"
    );
    assert!(w.emu.jobs().is_empty(), "nothing was submitted");
}
