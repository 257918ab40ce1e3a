//! The Alteryx client against the emulator: every operation in both auth modes, token
//! refresh, each retry and no-retry class (fault injection), timeouts, bad answers, and no
//! secret in any log line or error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alteryx_router_core::alteryx::{
    AlteryxClient, AlteryxError, ApiVersion, AuthScheme, ClientOptions, JobQuery, JobRequest,
    Priority, QuestionValue, ServerConfig,
};
use alteryx_router_core::error_chain;
use alteryx_router_core::secrets::SecretString;
use alteryx_router_emulator::{self as emulator, EmulatorConfig, EmulatorHandle, Fault};

const SALES: &str = "5f3c0e5a2c1b0a0001d1e001";
const SECRET: &str = "s3cr3t-value-that-must-never-leak";

async fn emulator_with(config: EmulatorConfig) -> EmulatorHandle {
    let mut config = config;
    config.credentials = vec![("test-key".into(), SECRET.into())];
    emulator::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

async fn emulator() -> EmulatorHandle {
    let config = EmulatorConfig {
        job_duration: Duration::from_millis(300),
        ..Default::default()
    };
    emulator_with(config).await
}

fn fast() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        max_attempts: 4,
        max_elapsed: Duration::from_secs(10),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

fn client(url: &str, api: Option<&str>, secret: &str) -> AlteryxClient {
    let config =
        ServerConfig::from_parts(url, "test-key", SecretString::new(secret), api, None).unwrap();
    AlteryxClient::new(config, fast()).unwrap()
}

fn clients(emu: &EmulatorHandle) -> Vec<(&'static str, AlteryxClient)> {
    vec![
        ("v1 OAuth1", client(&emu.gallery_url(), None, SECRET)),
        ("v1 OAuth2", client(&emu.webapi_url(), Some("v1"), SECRET)),
        ("v3 OAuth2", client(&emu.webapi_url(), None, SECRET)),
    ]
}

#[tokio::test]
async fn every_operation_works_in_every_mode() {
    let emu = emulator().await;
    for (mode, c) in clients(&emu) {
        let workflows = c
            .list_workflows()
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(workflows.len(), 3, "{mode}");
        let sales = workflows.iter().find(|w| w.id == SALES).unwrap();
        assert_eq!(sales.name, "Daily Sales Cleanup", "{mode}");
        let questions = c
            .questions(SALES)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(questions.iter().any(|q| q.name == "InputPath"), "{mode}");
        let request = JobRequest {
            questions: vec![QuestionValue {
                name: "InputPath".into(),
                value: format!("s3://b/{mode}.csv"),
            }],
            priority: Some(Priority::High),
            ..Default::default()
        };
        let job = c
            .submit_job(SALES, &request)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(job.workflow_id.as_deref(), Some(SALES), "{mode}");
        assert!(!job.is_finished(), "{mode}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let done = c
            .get_job(&job.id)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(done.succeeded(), "{mode}: {done:?}");
        let jobs = c
            .list_jobs(
                SALES,
                &JobQuery {
                    limit: Some(10),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(jobs.iter().any(|j| j.id == job.id), "{mode}");
    }
    let received = emu.jobs();
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].api, "v1");
    assert_eq!(
        received[0].priority.as_deref(),
        Some("high"),
        "v1 sends lower case"
    );
    assert_eq!(received[2].api, "v3");
    assert_eq!(
        received[2].priority.as_deref(),
        Some("High"),
        "v3 sends the contract's case"
    );
    assert_eq!(
        received[0].questions,
        vec![("InputPath".to_string(), "s3://b/v1 OAuth1.csv".to_string())]
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn oauth2_token_is_cached_refreshed_before_expiry_and_after_a_401() {
    let emu = emulator_with(EmulatorConfig {
        token_ttl: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let c = client(&emu.webapi_url(), None, SECRET);
    c.list_workflows().await.unwrap();
    c.list_workflows().await.unwrap();
    assert_eq!(emu.tokens_issued(), 1, "the token is reused");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.list_workflows().await.unwrap();
    assert_eq!(
        emu.tokens_issued(),
        2,
        "an expired token is replaced before use"
    );
    emu.revoke_tokens();
    c.list_workflows().await.unwrap();
    assert_eq!(
        emu.tokens_issued(),
        3,
        "a 401 refreshes the token and retries once"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_then_succeed() {
    let emu = emulator().await;
    let c = client(&emu.gallery_url(), None, SECRET);
    for status in [500, 502, 503, 429] {
        let before = emu.request_count();
        emu.inject(Fault::Status { status, count: 2 });
        c.list_workflows()
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(
            emu.request_count() - before,
            3,
            "{status}: two failures then success"
        );
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn retries_stop_at_the_attempt_limit_with_the_last_error() {
    let emu = emulator().await;
    let c = client(&emu.gallery_url(), None, SECRET);
    emu.inject(Fault::Status {
        status: 503,
        count: 100,
    });
    let before = emu.request_count();
    let e = c.list_workflows().await.unwrap_err();
    assert_eq!(emu.request_count() - before, 4);
    assert!(e.is_retryable() && e.status() == Some(503), "{e}");
    assert!(
        e.to_string().contains("Injected fault: 503"),
        "Alteryx's own message is kept: {e}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let emu = emulator().await;
    let c = client(&emu.gallery_url(), None, SECRET);
    for status in [400, 404, 409] {
        emu.inject(Fault::Status { status, count: 1 });
        let before = emu.request_count();
        let e = c.list_workflows().await.unwrap_err();
        assert_eq!(
            emu.request_count() - before,
            1,
            "{status} must not be retried"
        );
        assert_eq!(e.status(), Some(status));
        assert!(!e.is_retryable());
    }
    let before = emu.request_count();
    match c.get_job("no-such-job").await.unwrap_err() {
        AlteryxError::Api {
            status: 404,
            message,
            ..
        } => assert!(message.contains("no-such-job")),
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.request_count() - before, 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn submitting_is_retried_only_when_alteryx_cannot_have_queued_the_job() {
    let emu = emulator().await;
    let c = client(&emu.gallery_url(), None, SECRET);
    let request = JobRequest::default();
    emu.inject(Fault::Status {
        status: 503,
        count: 1,
    });
    c.submit_job(SALES, &request).await.unwrap();
    assert_eq!(emu.jobs().len(), 1, "503: retried, one job");
    emu.inject(Fault::Status {
        status: 500,
        count: 1,
    });
    let before = emu.request_count();
    let e = c.submit_job(SALES, &request).await.unwrap_err();
    assert_eq!(
        emu.request_count() - before,
        1,
        "500 on submit is returned, not blindly retried"
    );
    assert!(
        e.is_retryable(),
        "but it is a retryable failure for the router to record"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_hung_server_times_out_and_a_read_is_retried() {
    let emu = emulator().await;
    let c = client(&emu.gallery_url(), None, SECRET);
    emu.inject(Fault::Hang {
        duration: Duration::from_secs(3),
        count: 1,
    });
    let started = Instant::now();
    c.list_workflows().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited for the request timeout"
    );
    emu.inject(Fault::Hang {
        duration: Duration::from_secs(3),
        count: 1,
    });
    match c
        .submit_job(SALES, &JobRequest::default())
        .await
        .unwrap_err()
    {
        AlteryxError::Timeout { after, .. } => assert_eq!(after, Duration::from_millis(500)),
        other => panic!("{other:?}"),
    }
    emu.shutdown().await;
}

/// `until` bounds every operation, not only some: the router's job request and the
/// reconciler's job listing end by the invocation's deadline even when Alteryx hangs.
#[tokio::test]
async fn a_deadline_bounds_every_operation() {
    let emu = emulator().await;
    let config = ServerConfig::from_parts(
        &emu.gallery_url(),
        "test-key",
        SecretString::new(SECRET),
        None,
        None,
    )
    .unwrap();
    let slow = ClientOptions {
        request_timeout: Duration::from_secs(10),
        ..fast()
    };
    let c = AlteryxClient::new(config, slow).unwrap();
    for operation in ["submit job", "list jobs", "get job", "list workflows"] {
        emu.inject(Fault::Hang {
            duration: Duration::from_secs(4),
            count: 1,
        });
        let started = Instant::now();
        let bounded = c.until(started + Duration::from_millis(700));
        let error = match operation {
            "submit job" => bounded
                .submit_job(SALES, &JobRequest::default())
                .await
                .map(|_| ()),
            "list jobs" => bounded
                .list_jobs(SALES, &JobQuery::default())
                .await
                .map(|_| ()),
            "get job" => bounded.get_job("job-1").await.map(|_| ()),
            _ => bounded.list_workflows().await.map(|_| ()),
        }
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{operation}: took {:?} with a deadline 700 ms away ({error:?})",
            started.elapsed()
        );
        assert!(
            matches!(
                error,
                AlteryxError::Timeout { .. } | AlteryxError::Deadline { .. }
            ),
            "{operation}: {error:?}"
        );
        // Let the hung request end before the next fault.
        tokio::time::sleep(Duration::from_secs(4).saturating_sub(started.elapsed())).await;
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn bad_answers_are_clear_errors() {
    let emu = emulator().await;
    let c = client(&emu.gallery_url(), None, SECRET);
    emu.inject(Fault::Html { count: 1 });
    let e = c.list_workflows().await.unwrap_err();
    assert!(
        std::error::Error::source(&e).is_some(),
        "the JSON error is kept: {e:?}"
    );
    let e = e.to_string();
    assert!(e.contains("HTML") && e.contains("ALTERYX_URL"), "{e}");
    emu.inject(Fault::Empty { count: 1 });
    let e = c.get_job("x").await.unwrap_err().to_string();
    assert!(e.contains("empty body"), "{e}");
    let bad = JobRequest {
        questions: vec![QuestionValue {
            name: "Nope".into(),
            value: "1".into(),
        }],
        ..Default::default()
    };
    match c.submit_job(SALES, &bad).await.unwrap_err() {
        AlteryxError::Api {
            status: 400,
            message,
            ..
        } => assert!(message.contains("Nope"), "{message}"),
        other => panic!("{other:?}"),
    }
    match c
        .submit_job("unknown-workflow", &JobRequest::default())
        .await
        .unwrap_err()
    {
        AlteryxError::Api {
            status: 404,
            message,
            ..
        } => assert!(message.contains("unknown-workflow")),
        other => panic!("{other:?}"),
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_are_refused_in_both_modes() {
    let emu = emulator().await;
    match client(&emu.gallery_url(), None, "wrong")
        .list_workflows()
        .await
        .unwrap_err()
    {
        AlteryxError::Unauthorized {
            status: 401,
            message,
            ..
        } => assert!(message.contains("invalid signature"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The token endpoint refusing the client secret is final: no second token request.
    let before = emu.request_count();
    let refused = client(&emu.webapi_url(), None, "wrong")
        .list_workflows()
        .await
        .unwrap_err();
    assert_eq!(
        emu.request_count() - before,
        1,
        "a refused secret is asked once"
    );
    match refused {
        AlteryxError::Unauthorized {
            status: 401,
            message,
            ..
        } => assert!(
            message.contains("invalid_client") || message.contains("unknown client"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    let other_key = ServerConfig::from_parts(
        &emu.gallery_url(),
        "who",
        SecretString::new(SECRET),
        None,
        None,
    )
    .unwrap();
    let e = AlteryxClient::new(other_key, fast())
        .unwrap()
        .list_workflows()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown consumer key"), "{e}");
    emu.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(
        &format!("http://127.0.0.1:{port}/gallery/api/"),
        None,
        SECRET,
    );
    let e = c.list_workflows().await.unwrap_err();
    assert!(
        matches!(e, AlteryxError::Transport { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "list workflows: cannot reach Alteryx");
    // The cause (reqwest's error and what it wraps) is kept, without the signed URL.
    let chain = error_chain(&e);
    assert!(
        chain.starts_with("list workflows: cannot reach Alteryx: ") && chain.len() > 60,
        "{chain}"
    );
    for text in [e.to_string(), chain, format!("{e:?}")] {
        assert!(!text.contains("oauth_signature"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[test]
fn config_picks_auth_and_api_from_the_url() {
    let c = ServerConfig::from_parts(
        "https://alteryx.example.com/gallery/api/",
        "k",
        SecretString::new("s"),
        None,
        None,
    )
    .unwrap();
    assert_eq!((c.auth, c.api), (AuthScheme::OAuth1, ApiVersion::V1));
    let c = ServerConfig::from_parts(
        "https://alteryx.example.com/webapi/",
        "k",
        SecretString::new("s"),
        None,
        None,
    )
    .unwrap();
    assert_eq!((c.auth, c.api), (AuthScheme::OAuth2, ApiVersion::V3));
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_appears_in_logs_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let emu = emulator().await;
    let mut texts = Vec::new();
    for (_, c) in clients(&emu) {
        texts.push(format!("{c:?} {:?}", c.config()));
        c.list_workflows().await.unwrap();
        emu.inject(Fault::Status {
            status: 503,
            count: 1,
        });
        c.list_workflows().await.unwrap();
        emu.inject(Fault::Html { count: 1 });
        let e = c.list_workflows().await.unwrap_err();
        texts.push(format!("{e} {e:?} {}", error_chain(&e)));
        emu.inject(Fault::Hang {
            duration: Duration::from_secs(2),
            count: 4,
        });
        let e = c.list_workflows().await.unwrap_err();
        assert!(matches!(e, AlteryxError::Timeout { .. }), "{e:?}");
        texts.push(format!("{e} {e:?} {}", error_chain(&e)));
    }
    for bad in [
        client(&emu.gallery_url(), None, &format!("{SECRET}-x")),
        client(&emu.webapi_url(), None, &format!("{SECRET}-x")),
    ] {
        let e = bad.list_workflows().await.unwrap_err();
        texts.push(format!("{e} {e:?} {}", error_chain(&e)));
    }
    emu.shutdown().await;
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("alteryx call"), "the capture works: {logs}");
    for text in texts.iter().chain([&logs]) {
        assert!(!text.contains(SECRET), "secret leaked in: {text}");
        assert!(
            !text.contains("oauth_signature="),
            "signature leaked in: {text}"
        );
        assert!(!text.contains("emu-"), "token leaked in: {text}");
    }
}

#[tokio::test]
async fn worker_tag_and_credential_id_reach_v3_and_are_never_sent_to_v1() {
    let emu = emulator_with(EmulatorConfig {
        worker_tags: vec!["gpu".into()],
        credential_ids: vec!["6543210fedcba98765430001".into()],
        ..Default::default()
    })
    .await;
    let asking = |tag: &str, credential: &str| JobRequest {
        worker_tag: Some(tag.into()),
        credential_id: Some(credential.into()),
        rule_id: Some("sales-gpu".into()),
        ..Default::default()
    };
    let v3 = client(&emu.webapi_url(), None, SECRET);
    v3.submit_job(SALES, &asking("gpu", "6543210fedcba98765430001"))
        .await
        .unwrap();
    let received = emu.jobs();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].worker_tag.as_deref(), Some("gpu"));
    assert_eq!(
        received[0].credential_id.as_deref(),
        Some("6543210fedcba98765430001")
    );
    assert!(received[0].ignored_fields.is_empty());

    // A tag the server does not know: Alteryx's 400, not retried, nothing queued.
    let e = v3
        .submit_job(SALES, &asking("cpu", "6543210fedcba98765430001"))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(error_chain(&e).contains("Invalid workerTag 'cpu'"), "{e}");

    // v1 (both auth schemes) cannot carry them: refused before any request, naming the rule,
    // the fields and the API version.
    for c in [
        client(&emu.gallery_url(), None, SECRET),
        client(&emu.webapi_url(), Some("v1"), SECRET),
    ] {
        let before = emu.request_count();
        let e = c
            .submit_job(SALES, &asking("gpu", "6543210fedcba98765430001"))
            .await
            .unwrap_err();
        assert!(matches!(e, AlteryxError::Unsupported { .. }), "{e:?}");
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(
            text.starts_with("submit job: rule `sales-gpu` asks for `worker_tag` (workerTag) and `credential_id` (credentialId), which API v1 cannot carry"),
            "{text}"
        );
        assert_eq!(emu.request_count(), before, "nothing was sent");
        let only_tag = JobRequest {
            worker_tag: Some("gpu".into()),
            ..Default::default()
        };
        let text = c
            .submit_job(SALES, &only_tag)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with(
                "submit job: the request asks for `worker_tag` (workerTag), which API v1"
            ),
            "{text}"
        );
    }
    assert_eq!(emu.jobs().len(), 1);
}
