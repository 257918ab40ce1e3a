//! Every fault kind, injected over the admin API and from Rust; the submission faults leave
//! polls and token requests alone; credential rotation; settings; reset.

mod common;

use std::time::{Duration, Instant};

use alteryx_router_emulator::Fault;
use common::{Base, Client, KEY, OK_WF, SECRET, config, sign, start};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn api_faults_answer_instead_of_the_server_token_requests_included() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    let queued = |a: common::Answer| assert_eq!(a.json()["status"], "queued", "{}", a.text);
    queued(
        c.admin_post("faults", json!({"status": 503, "count": 2}))
            .await,
    );
    for _ in 0..2 {
        let a = c.get(Base::Gallery, "v1/workflows/subscription/").await;
        assert_eq!(
            (a.status, a.message()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Injected fault: 503".into()
            )
        );
    }
    assert_eq!(
        c.get(Base::Gallery, "v1/workflows/subscription/")
            .await
            .status,
        StatusCode::OK
    );

    // A token request uses up an API fault like any other request.
    emu.inject(Fault::Status {
        status: 500,
        count: 1,
    });
    let token = c
        .send(
            c.http
                .post(format!("{}/webapi/oauth2/token", c.root))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", KEY),
                    ("client_secret", SECRET),
                ]),
        )
        .await;
    assert_eq!(token.status, StatusCode::INTERNAL_SERVER_ERROR);
    c.login(KEY, SECRET).await;

    queued(c.admin_post("faults", json!({"html": 1})).await);
    let a = c.get(Base::WebApi, "v3/workflows").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.content_type.starts_with("text/html") && a.text.contains("login"),
        "{a:?}"
    );

    queued(c.admin_post("faults", json!({"empty": 1})).await);
    let a = c.get(Base::WebApi, "v3/workflows").await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""));

    // A maintenance proxy's 404 page, unlike Alteryx's own JSON 404.
    queued(c.admin_post("faults", json!({"html_404": 2})).await);
    for path in [
        "v1/jobs/0123456789abcdef01234567/",
        "v1/workflows/subscription/",
    ] {
        let a = c.get(Base::Gallery, path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert!(a.content_type.starts_with("text/html"), "{a:?}");
        assert!(serde_json::from_str::<serde_json::Value>(&a.text).is_err());
    }

    queued(
        c.admin_post("faults", json!({"hang_ms": 300, "count": 1}))
            .await,
    );
    let started = Instant::now();
    let a = c.get(Base::Gallery, "v1/workflows/subscription/").await;
    assert_eq!(
        (a.status, a.message()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Injected fault: hung".into()
        )
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    let a = c.admin_post("faults", json!({"explode": 1})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.message().starts_with("expected {\"status\":N"));
    assert_eq!(
        c.get(Base::Gallery, "v1/workflows/subscription/")
            .await
            .status,
        StatusCode::OK
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_slow_submission_is_queued_at_once_and_answered_late() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    c.admin_post("faults", json!({"submit_delay_ms": 800, "count": 1}))
        .await;
    // The client gives up first: it saw no answer, yet the job exists.
    let url = format!("{}/gallery/api/v1/workflows/{OK_WF}/jobs/", c.root);
    let impatient = c
        .http
        .post(sign("POST", &url, &[], KEY, SECRET))
        .json(&json!({}))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(impatient.is_err_and(|e| e.is_timeout()));
    assert_eq!(emu.jobs().len(), 1, "queued although unanswered");

    emu.inject(Fault::SlowSubmit {
        delay: Duration::from_millis(300),
        count: 1,
    });
    // Polls and token requests do not use up a submission fault.
    assert_eq!(
        c.get(Base::WebApi, "v3/workflows").await.status,
        StatusCode::OK
    );
    let started = Instant::now();
    let a = c.submit(Base::WebApi, true, OK_WF, json!({})).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(emu.jobs().len(), 2);
    let a = c.submit(Base::WebApi, true, OK_WF, json!({})).await;
    assert_eq!(a.status, StatusCode::OK, "spent after one");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_lost_answer_queues_the_job_and_a_swallowed_request_queues_nothing() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    let url = format!("{}/gallery/api/v1/workflows/{OK_WF}/jobs/", c.root);
    let submit = |c: &Client| {
        c.http
            .post(sign("POST", &url, &[], KEY, SECRET))
            .json(&json!({"questions": [{"name": "InputPath", "value": "s3://b/k"}]}))
            .timeout(Duration::from_secs(10))
            .send()
    };

    c.admin_post("faults", json!({"submit_lose_answer": 1}))
        .await;
    let lost = submit(&c).await;
    let e = lost.expect_err("no answer");
    assert!(
        !e.is_timeout(),
        "the connection was dropped, not left hanging: {e}"
    );
    assert_eq!(emu.jobs().len(), 1, "the job was queued");

    emu.inject(Fault::SwallowSubmit { count: 2 });
    // Polls are not submissions.
    let id = emu.jobs()[0].id.clone();
    assert_eq!(
        c.get(Base::Gallery, &format!("v1/jobs/{id}/")).await.status,
        StatusCode::OK
    );
    for _ in 0..2 {
        let e = submit(&c).await.expect_err("no answer");
        assert!(!e.is_timeout(), "{e}");
    }
    assert_eq!(emu.jobs().len(), 1, "swallowed: nothing queued");
    assert_eq!(
        submit(&c).await.map(|r| r.status()).ok(),
        Some(StatusCode::OK)
    );
    assert_eq!(emu.jobs().len(), 2);
    assert_eq!(emu.stats().operations.submit, 4);
    emu.shutdown().await;
}

#[tokio::test]
async fn rotating_credentials_refuses_the_old_secret_and_revokes_tokens() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    assert_eq!(
        c.get(Base::WebApi, "v3/workflows").await.status,
        StatusCode::OK
    );
    let a = c
        .admin_post("credentials", json!({"credentials": [{"key": KEY, "secret": "rotated"}, {"key": "k2", "secret": "s2"}]}))
        .await;
    assert_eq!(
        a.json(),
        json!({"status": "replaced", "credentials": 2, "tokens_revoked": 1})
    );
    assert!(!a.text.contains("rotated"), "secrets are not echoed");

    let a = c.get(Base::WebApi, "v3/workflows").await;
    assert_eq!(
        (a.status, a.message()),
        (StatusCode::UNAUTHORIZED, "invalid access token".into())
    );
    let a = c.get(Base::Gallery, "v1/workflows/subscription/").await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "signed with the old secret"
    );
    let url = format!("{}/gallery/api/v1/workflows/subscription/", c.root);
    let a = c
        .send(c.http.get(sign("GET", &url, &[], KEY, "rotated")))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    c.login("k2", "s2").await;
    assert_eq!(
        c.get(Base::WebApi, "v3/workflows").await.status,
        StatusCode::OK
    );

    emu.set_credentials(vec![(KEY.into(), SECRET.into())]);
    let a = c.get(Base::WebApi, "v3/workflows").await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "Rust rotation revokes too"
    );

    for bad in [
        json!({"credentials": [{"key": "", "secret": "s"}]}),
        json!({"key": "k"}),
    ] {
        assert_eq!(
            c.admin_post("credentials", bad).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn settings_change_slots_and_run_time_while_running() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    assert_eq!(
        c.admin_get("settings").await,
        json!({"slots": null, "job_seconds": 0.2})
    );
    let a = c
        .admin_post("settings", json!({"slots": 0, "job_seconds": 0.05}))
        .await;
    assert_eq!(a.json(), json!({"slots": 0, "job_seconds": 0.05}));
    c.submit(Base::Gallery, false, OK_WF, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(emu.jobs()[0].status, "Queued", "no worker slot");
    emu.set_slots(Some(2));
    common::eventually("the job to finish", || emu.jobs()[0].status == "Completed").await;
    for bad in [
        json!({"slots": -1}),
        json!({"job_seconds": "x"}),
        json!({"workers": 2}),
    ] {
        let a = c.admin_post("settings", bad.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn reset_forgets_jobs_faults_and_statistics() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    c.submit(Base::Gallery, false, OK_WF, json!({})).await;
    emu.inject(Fault::Status {
        status: 502,
        count: 5,
    });
    emu.inject(Fault::SwallowSubmit { count: 5 });
    assert_eq!(
        c.admin_post("reset", json!({})).await.json()["status"],
        "reset"
    );
    assert!(emu.jobs().is_empty());
    let stats = emu.stats();
    assert_eq!(
        (
            stats.requests,
            stats.jobs.jobs_received,
            stats.operations.submit
        ),
        (0, 0, 0)
    );
    let a = c
        .call(
            Base::Gallery,
            Method::POST,
            &format!("v1/workflows/{OK_WF}/jobs/"),
            &[],
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "faults are gone");
    assert_eq!(c.admin_get("health").await, json!({"status": "ok"}));
    let a = c.raw(Method::GET, "/_emulator/nothing/", None).await;
    assert_eq!(
        (a.status, a.message()),
        (
            StatusCode::NOT_FOUND,
            "unknown emulator endpoint nothing".into()
        )
    );
    let a = c.raw(Method::POST, "/_emulator/health", None).await;
    assert_eq!(a.message(), "unknown emulator endpoint health");
    emu.shutdown().await;
}
