//! Jobs through the API: their life, their shape in v1 and v3, outputs, a workflow's job list
//! (sort, paging, filters, "created since"), an unknown job, worker slots and run times, worker
//! tags and credential ids, cancelling and statistics.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use alteryx_router_emulator::{EmulatorConfig, JobOutcome};
use common::{BASES, Base, Client, ERR_WF, OK_WF, config, eventually, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_job_is_queued_runs_and_ends_with_messages_and_outputs() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    let body = json!({"questions": [{"name": "InputPath", "value": "s3://b/k \"1\".csv"}]});
    let ok = c
        .submit(Base::Gallery, false, OK_WF, body.clone())
        .await
        .json();
    let failed = c.submit(Base::WebApi, true, ERR_WF, body).await.json();
    assert_eq!(
        (ok["status"].clone(), ok["disposition"].clone()),
        (json!("Queued"), json!("None"))
    );
    assert_eq!(
        keys(&ok),
        set(&[
            "id",
            "appId",
            "createDate",
            "status",
            "disposition",
            "outputs",
            "messages",
            "priority",
            "workerTag"
        ]),
        "v1 job fields"
    );
    assert_eq!(
        keys(&failed),
        set(&[
            "id",
            "appId",
            "createDateTime",
            "status",
            "disposition",
            "outputs",
            "messages",
            "priority",
            "workerTag",
            "runWithE2",
        ]),
        "v3 job fields (Alteryx help, Job Endpoints)"
    );
    assert_eq!(
        (ok["priority"].clone(), failed["priority"].clone()),
        (json!("Low"), json!("Default"))
    );
    eventually("both jobs to finish", || {
        emu.jobs().iter().all(|j| j.status == "Completed")
    })
    .await;

    let ok_id = ok["id"].as_str().unwrap_or_default();
    let done = c
        .get(Base::Gallery, &format!("v1/jobs/{ok_id}/"))
        .await
        .json();
    assert_eq!(
        (done["status"].clone(), done["disposition"].clone()),
        (json!("Completed"), json!("Success"))
    );
    assert_eq!(
        done["messages"][0]["text"],
        "Finished running in 0.2 seconds"
    );
    let output = &done["outputs"][0];
    assert_eq!(keys(output), set(&["id", "formats", "name"]));

    let failed_id = failed["id"].as_str().unwrap_or_default();
    let done = c
        .get(Base::WebApi, &format!("v3/jobs/{failed_id}"))
        .await
        .json();
    assert_eq!(done["disposition"], "Error");
    assert_eq!(done["messages"][0]["status"], 3);
    assert_eq!(
        done["messages"][0]["text"],
        "Error: Input Data (1): File not found"
    );
    assert_eq!(
        keys(&done["outputs"][0]),
        set(&["id", "availableFormats", "fileName"])
    );
    let reduced = c
        .call(
            Base::WebApi,
            Method::GET,
            &format!("v3/jobs/{failed_id}"),
            &[("includeMessages", "false")],
            None,
        )
        .await
        .json();
    assert!(
        reduced.get("messages").is_none(),
        "includeMessages=false: {reduced}"
    );
    assert_eq!(reduced["disposition"], "Error");
    let a = c
        .call(
            Base::WebApi,
            Method::GET,
            &format!("v3/jobs/{failed_id}"),
            &[("includeMessages", "maybe")],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // The output, as CSV, at both bases.
    let output_id = output["id"].as_str().unwrap_or_default();
    for base in BASES {
        let path = format!("v1/jobs/{ok_id}/output/{output_id}/");
        let csv = c
            .call(base, Method::GET, &path, &[("format", "Csv")], None)
            .await;
        assert_eq!(csv.status, StatusCode::OK, "{base:?}: {}", csv.text);
        assert!(csv.content_type.starts_with("text/csv"));
        assert_eq!(
            csv.text,
            "name,value\r\n\"InputPath\",\"s3://b/k \"\"1\"\".csv\"\r\n"
        );
        let a = c.call(base, Method::GET, &path, &[], None).await;
        assert_eq!(
            (a.status, a.message()),
            (
                StatusCode::BAD_REQUEST,
                "format is required; available: Raw, Csv".into()
            )
        );
        let a = c
            .call(
                base,
                Method::GET,
                &format!("v1/jobs/{ok_id}/output/nope/"),
                &[("format", "Csv")],
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn an_unknown_job_is_a_json_404_not_an_html_page() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    for (base, path) in [
        (Base::Gallery, "v1/jobs/0123456789abcdef01234567/"),
        (Base::WebApi, "v1/jobs/0123456789abcdef01234567/"),
        (Base::WebApi, "v3/jobs/0123456789abcdef01234567"),
    ] {
        let a = c.get(base, path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            a.content_type.starts_with("application/json"),
            "{}",
            a.content_type
        );
        assert_eq!(a.message(), "Job not found: 0123456789abcdef01234567");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn a_workflows_jobs_sort_page_filter_and_select_since_a_time() {
    let emu = start(EmulatorConfig {
        job_duration: Duration::from_secs(60),
        ..config()
    })
    .await;
    let mut c = Client::new(&emu);
    let mut ids = Vec::new();
    for (i, priority) in ["low", "critical", "medium", "high"].iter().enumerate() {
        let body = json!({"priority": priority});
        ids.push(c.submit(Base::Gallery, false, OK_WF, body).await.json()["id"].clone());
        if i == 1 {
            // "Since T": T taken between the second and third submissions.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    c.submit(Base::Gallery, false, ERR_WF, json!({})).await;
    let path = format!("v1/workflows/{OK_WF}/jobs/");
    let list = |a: common::Answer| -> Vec<Value> {
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.json().as_array().cloned().unwrap_or_default()
    };
    let all = list(c.get(Base::Gallery, &path).await);
    assert_eq!(
        all.iter().map(|j| j["id"].clone()).collect::<Vec<_>>(),
        ids,
        "oldest first, this workflow only"
    );
    assert_eq!(
        keys(&all[0]),
        set(&[
            "id",
            "createDate",
            "status",
            "priority",
            "workerTag",
            "runWithE2"
        ])
    );
    let dates: Vec<&str> = all
        .iter()
        .filter_map(|j| j["createDate"].as_str())
        .collect();
    for d in &dates {
        assert!(
            d.ends_with('Z') && d.len() == "2026-01-05T10:00:00.1234567Z".len(),
            "{d}"
        );
    }
    assert!(
        dates.windows(2).all(|w| w[0] < w[1]),
        "sub-second, increasing: {dates:?}"
    );

    // A client selecting "created since T" by newest first and paging.
    let since = dates[2];
    let newest = list(
        c.call(
            Base::Gallery,
            Method::GET,
            &path,
            &[
                ("sortField", "createdate"),
                ("direction", "desc"),
                ("limit", "3"),
            ],
            None,
        )
        .await,
    );
    let recent: Vec<Value> = newest
        .iter()
        .filter(|j| j["createDate"].as_str() >= Some(since))
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(recent, vec![ids[3].clone(), ids[2].clone()]);
    let page = list(
        c.call(
            Base::WebApi,
            Method::GET,
            &format!("v3/workflows/{OK_WF}/jobs"),
            &[("offset", "1"), ("limit", "2")],
            None,
        )
        .await,
    );
    assert_eq!(
        page.iter().map(|j| j["id"].clone()).collect::<Vec<_>>(),
        ids[1..3]
    );
    let by_priority = list(
        c.call(
            Base::WebApi,
            Method::GET,
            &path,
            &[("sortField", "priority"), ("direction", "desc")],
            None,
        )
        .await,
    );
    let priorities: Vec<&str> = by_priority
        .iter()
        .filter_map(|j| j["priority"].as_str())
        .collect();
    assert_eq!(priorities, ["critical", "high", "medium", "low"]);

    // v3 filters by status and result; v1 has no such filters.
    emu.cancel_job(ids[0].as_str().unwrap_or_default());
    let v3 = format!("v3/workflows/{OK_WF}/jobs");
    let running = list(
        c.call(
            Base::WebApi,
            Method::GET,
            &v3,
            &[("status", "Running,Queued")],
            None,
        )
        .await,
    );
    assert_eq!(running.len(), 3);
    let cancelled = list(
        c.call(
            Base::WebApi,
            Method::GET,
            &v3,
            &[("resultCode", "cancelled")],
            None,
        )
        .await,
    );
    assert_eq!(
        cancelled
            .iter()
            .map(|j| j["id"].clone())
            .collect::<Vec<_>>(),
        vec![ids[0].clone()]
    );
    assert_eq!(
        list(
            c.call(
                Base::WebApi,
                Method::GET,
                &path,
                &[("status", "Running")],
                None
            )
            .await
        )
        .len(),
        4
    );

    for (name, value, expected) in [
        (
            "sortField",
            "colour",
            "Invalid sortField 'colour': use createDate, status or priority",
        ),
        ("direction", "up", "Invalid direction: use asc or desc"),
        (
            "limit",
            "-1",
            "Invalid limit '-1': expected a whole number >= 0",
        ),
    ] {
        let a = c
            .call(Base::Gallery, Method::GET, &path, &[(name, value)], None)
            .await;
        assert_eq!(
            (a.status, a.message()),
            (StatusCode::BAD_REQUEST, expected.to_string())
        );
    }
    let a = c.get(Base::WebApi, "v3/workflows/nope/jobs").await;
    assert_eq!(a.message(), "Workflow not found: nope");
    emu.shutdown().await;
}

#[tokio::test]
async fn slots_queue_jobs_by_priority_and_stats_report_the_peaks() {
    let mut cfg = config();
    cfg.slots = Some(1);
    cfg.job_durations
        .insert(OK_WF.into(), Duration::from_millis(300));
    cfg.job_duration = Duration::from_millis(100);
    let emu = start(cfg).await;
    let mut c = Client::new(&emu);
    c.submit(Base::Gallery, false, ERR_WF, json!({})).await; // takes the slot
    for priority in ["low", "high", "medium"] {
        let a = c
            .submit(Base::Gallery, false, OK_WF, json!({"priority": priority}))
            .await;
        assert_eq!(a.json()["status"], "Queued");
    }
    let running_now = emu.jobs().iter().filter(|j| j.status == "Running").count();
    assert!(running_now <= 1);
    eventually("all jobs to finish", || {
        emu.jobs().iter().all(|j| j.status == "Completed")
    })
    .await;
    let jobs = emu.jobs();
    let mut by_start: Vec<_> = jobs.iter().collect();
    by_start.sort_by(|a, b| {
        a.started_unix_ms
            .partial_cmp(&b.started_unix_ms)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let order: Vec<Option<&str>> = by_start.iter().map(|j| j.priority.as_deref()).collect();
    assert_eq!(order, [None, Some("high"), Some("medium"), Some("low")]);
    for pair in by_start.windows(2) {
        let (ended, started) = (
            pair[0].finished_unix_ms.unwrap_or(f64::MAX),
            pair[1].started_unix_ms.unwrap_or(0.0),
        );
        assert!(
            started >= ended - 0.001,
            "one slot: a job starts when the previous ends"
        );
    }
    let ok = jobs
        .iter()
        .find(|j| j.priority.as_deref() == Some("high"))
        .expect("the high job");
    let ran = ok.finished_unix_ms.unwrap_or(0.0) - ok.started_unix_ms.unwrap_or(0.0);
    assert!(
        (ran - 300.0).abs() < 1.0,
        "the workflow's own run time, counted from its start: {ran}"
    );

    c.get(Base::WebApi, &format!("v3/jobs/{}", ok.id)).await;
    c.get(Base::Gallery, &format!("v1/workflows/{OK_WF}/jobs/"))
        .await;
    c.get(Base::Gallery, "v1/workflows/subscription/").await;
    let stats = c.admin_get("stats").await;
    assert_eq!(stats["max_running"], 1);
    assert_eq!(stats["max_unfinished"], 4);
    assert_eq!(
        (
            stats["jobs_received"].clone(),
            stats["jobs_completed"].clone()
        ),
        (json!(4), json!(4))
    );
    assert_eq!(
        (stats["jobs_queued"].clone(), stats["jobs_running"].clone()),
        (json!(0), json!(0))
    );
    let ops = &stats["operations"];
    assert_eq!(
        [
            &ops["submit"],
            &ops["get_job"],
            &ops["list_jobs"],
            &ops["list_workflows"],
            &ops["token"]
        ],
        [&json!(4), &json!(1), &json!(1), &json!(1), &json!(1)]
    );
    assert_eq!(stats["requests"], 8);
    assert_eq!(emu.stats().jobs.max_running, 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn worker_tags_and_credential_ids_must_be_known_on_v3_and_are_ignored_on_v1() {
    let mut cfg = config();
    cfg.worker_tags = vec!["gpu".into()];
    cfg.credential_ids = vec!["cred-finance".into()];
    let emu = start(cfg).await;
    let mut c = Client::new(&emu);
    let a = c
        .submit(
            Base::WebApi,
            true,
            OK_WF,
            json!({"workerTag": "gpu", "credentialId": "cred-finance"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["workerTag"], "gpu");
    let a = c
        .submit(Base::WebApi, true, OK_WF, json!({"workerTag": "cpu"}))
        .await;
    assert_eq!(
        (a.status, a.message()),
        (
            StatusCode::BAD_REQUEST,
            "Invalid workerTag 'cpu': no worker has this tag".into()
        )
    );
    let a = c
        .submit(
            Base::WebApi,
            true,
            OK_WF,
            json!({"credentialId": "cred-hr"}),
        )
        .await;
    assert_eq!(
        a.message(),
        "Invalid credentialId 'cred-hr': no such credential"
    );
    let a = c
        .submit(Base::WebApi, true, OK_WF, json!({"workerTag": 1}))
        .await;
    assert_eq!(a.message(), "workerTag must be a string");
    let a = c
        .submit(
            Base::Gallery,
            false,
            OK_WF,
            json!({"workerTag": "cpu", "credentialId": "x"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "v1 ignores them: {}", a.text);

    let jobs = c.admin_get("jobs").await;
    assert_eq!(jobs.as_array().map(Vec::len), Some(2));
    assert_eq!(
        (
            jobs[0]["worker_tag"].clone(),
            jobs[0]["credential_id"].clone()
        ),
        (json!("gpu"), json!("cred-finance"))
    );
    assert_eq!(jobs[1]["worker_tag"], Value::Null);
    assert_eq!(
        jobs[1]["ignored_fields"],
        json!(["workerTag", "credentialId"])
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_cancels_jobs_and_changes_how_they_end() {
    let mut cfg = config();
    cfg.slots = Some(1);
    cfg.job_duration = Duration::from_secs(60);
    let emu = start(cfg).await;
    let mut c = Client::new(&emu);
    let running = c
        .submit(Base::Gallery, false, OK_WF, json!({}))
        .await
        .json()["id"]
        .clone();
    let queued = c
        .submit(Base::Gallery, false, OK_WF, json!({}))
        .await
        .json()["id"]
        .clone();
    let running = running.as_str().unwrap_or_default();
    let queued = queued.as_str().unwrap_or_default();

    let a = c
        .admin_post(&format!("jobs/{queued}/cancel"), json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        (a.json()["status"].clone(), a.json()["disposition"].clone()),
        (json!("Completed"), json!("Cancelled"))
    );
    let seen = c
        .get(Base::WebApi, &format!("v3/jobs/{queued}"))
        .await
        .json();
    assert_eq!(seen["disposition"], "Cancelled");
    assert_eq!(seen["outputs"], json!([]));
    let a = c
        .admin_post(&format!("jobs/{queued}/cancel"), json!({}))
        .await;
    assert_eq!(
        (a.status, a.message()),
        (
            StatusCode::CONFLICT,
            format!("job {queued} has already finished (Completed, Cancelled)")
        )
    );
    let a = c.admin_post("jobs/nope/cancel", json!({})).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let a = c
        .admin_post(
            &format!("jobs/{running}/outcome"),
            json!({"outcome": "Stuck"}),
        )
        .await;
    assert_eq!(a.json()["status"], "Running");
    let a = c
        .admin_post(
            &format!("jobs/{running}/outcome"),
            json!({"outcome": "Later"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(emu.set_job_outcome(running, JobOutcome::Warning));
    assert!(!emu.set_job_outcome("nope", JobOutcome::Warning));
    assert!(emu.cancel_job(running));
    assert!(!emu.cancel_job(running));
    emu.shutdown().await;
}
