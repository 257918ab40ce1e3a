//! Shared helpers for integration tests: a moto server for AWS APIs and AWS SDK clients
//! pointed at it. Include with `mod common;` from a test file.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct Moto {
    endpoint: String,
    _child: Option<ChildGuard>,
}

struct ChildGuard(Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The repository root (two levels above `runtime/core/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The endpoint of a moto server: `$AWS_ENDPOINT_URL` when the test script started one,
/// otherwise one started here from `.venv/bin/moto_server` and kept for this test binary.
/// Also sets the fake AWS credentials and region the SDK needs.
pub fn moto() -> String {
    let moto = MOTO.get_or_init(|| {
        set_fake_aws_env();
        if let Ok(url) = std::env::var("AWS_ENDPOINT_URL")
            && !url.is_empty()
        {
            return Moto {
                endpoint: url,
                _child: None,
            };
        }
        let bin = repo_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "moto_server not found at {}; run scripts/setup-venv (or scripts/test)",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_for_port(port, Duration::from_secs(30));
        // SAFETY of set_var: called once, before any client reads the environment.
        unsafe_set_env("AWS_ENDPOINT_URL", &endpoint);
        Moto {
            endpoint,
            _child: Some(ChildGuard(child)),
        }
    });
    moto.endpoint.clone()
}

fn set_fake_aws_env() {
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ] {
        if std::env::var(k).is_err() {
            unsafe_set_env(k, v);
        }
    }
}

#[allow(unsafe_code)]
fn unsafe_set_env(key: &str, value: &str) {
    // Tests in one binary share the process environment; we only ever set the same values.
    unsafe { std::env::set_var(key, value) }
}

pub fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listening on 127.0.0.1:{port} after {timeout:?}");
}

/// AWS SDK config pointed at moto.
/// A moto server of this test's own that answers one request at a time
/// (`tests/moto_serial.py`: moto's transactions are not isolated from concurrent requests), and
/// an SDK config pointed at it. The server stops when the guard is dropped.
pub async fn serial_moto() -> (aws_config::SdkConfig, impl Drop) {
    set_fake_aws_env();
    let port = free_port();
    let child = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/moto_serial.py"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tests/moto_serial.py");
    let guard = ChildGuard(child);
    wait_for_port(port, Duration::from_secs(30));
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    (config, guard)
}

pub async fn aws_config() -> aws_config::SdkConfig {
    let endpoint = moto();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

/// A short random suffix for resource names, so tests can share one moto server.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// A `CLAIMED` execution of `rule` over `s3://acme-landing/{key}` (ETag `etag-seq1`, the
/// version token of an unversioned object; router tests' `event(key, "seq1")`), attempt 1,
/// created at `created_at`, as the router would claim it (without its claimant: see
/// [`claimed_by`]).
pub fn execution(
    rule: &str,
    key: &str,
    created_at: i64,
) -> alteryx_router_core::executions::Execution {
    use alteryx_router_core::executions::{Execution, ExecutionStatus, execution_id};
    Execution {
        id: execution_id(rule, "acme-landing", key, "etag-seq1"),
        rule_id: rule.into(),
        bucket: "acme-landing".into(),
        key: key.into(),
        object_version: "etag-seq1".into(),
        version_id: None,
        size: 10,
        etag: Some("etag-seq1".into()),
        event_time: "2026-11-24T09:15:02Z".into(),
        workflow: "wf".into(),
        secret_id: None,
        status: ExecutionStatus::Claimed,
        attempt: 1,
        questions: std::collections::BTreeMap::from([(
            "InputPath".to_string(),
            format!("s3://acme-landing/{key}"),
        )]),
        job_id: None,
        disposition: None,
        message: None,
        retryable: false,
        created_at,
        updated_at: created_at,
        submitted_at: None,
        finished_at: None,
        stuck_at: None,
        lease_until: None,
        claim_token: None,
        submit_started_at: None,
        reconcile_from: None,
        reconcile_after: None,
        candidates: Vec::new(),
        expires_at: created_at + 90 * 86400,
        source: "test".into(),
        group: None,
        slot_held: false,
        wait_reason: None,
        waiting_since: None,
        next_attempt_at: None,
        plugin: None,
        reruns: 0,
        rerun_at: None,
        history: Vec::new(),
        job_report: None,
        batch_id: None,
    }
}

/// `record` with a fresh claimant's token and a lease of `lease` from now.
pub fn claimed_by(
    mut record: alteryx_router_core::executions::Execution,
    lease: Duration,
) -> alteryx_router_core::executions::Execution {
    let claimant = alteryx_router_core::executions::Claimant::new(
        alteryx_router_core::executions::now_unix() + lease.as_secs() as i64,
    );
    record.claim_token = Some(claimant.token);
    record.lease_until = Some(claimant.lease_until);
    record
}
