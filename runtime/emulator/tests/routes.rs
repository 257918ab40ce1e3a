//! Every Gallery API route at both bases, with and without a trailing slash; what is not a
//! route; OAuth1 and OAuth2 refusals; question validation. Real HTTP against `start()`.

mod common;

use common::{BASES, Base, Client, ERR_WF, KEY, OK_WF, SECRET, config, sign, start};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn v1_routes_answer_at_both_bases_with_or_without_the_slash() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    for base in BASES {
        for slash in ["", "/"] {
            let list = c
                .get(base, &format!("v1/workflows/subscription{slash}"))
                .await;
            assert_eq!(
                list.status,
                StatusCode::OK,
                "{base:?}{slash}: {}",
                list.text
            );
            let list = list.json();
            assert_eq!(list.as_array().map(Vec::len), Some(2));
            assert_eq!(list[0]["id"], OK_WF);
            assert_eq!(list[0]["metaInfo"]["name"], "Works");

            let q = c
                .get(base, &format!("v1/workflows/{OK_WF}/questions{slash}"))
                .await;
            assert_eq!(q.status, StatusCode::OK, "{base:?}: {}", q.text);
            assert_eq!(q.json()[1]["name"], "Region");
            assert_eq!(q.json()[1]["type"], "QuestionTextBox");

            let path = format!("v1/workflows/{OK_WF}/jobs{slash}");
            let job = c
                .call(
                    base,
                    Method::POST,
                    &path,
                    &[],
                    Some(json!({"questions": []})),
                )
                .await;
            assert_eq!(job.status, StatusCode::OK, "{base:?}: {}", job.text);
            let id = job.json()["id"].as_str().expect("an id").to_string();
            assert_eq!(job.json()["appId"], OK_WF);

            let got = c.get(base, &format!("v1/jobs/{id}{slash}")).await;
            assert_eq!(got.status, StatusCode::OK, "{base:?}: {}", got.text);
            assert_eq!(got.json()["id"], id);

            let listed = c.get(base, &path).await;
            assert_eq!(listed.status, StatusCode::OK);
            assert!(
                listed
                    .json()
                    .as_array()
                    .is_some_and(|l| l.iter().any(|j| j["id"] == id))
            );
        }
    }
    assert_eq!(emu.jobs().len(), 4);
    emu.shutdown().await;
}

#[tokio::test]
async fn v3_routes_answer_at_webapi_only() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    for slash in ["", "/"] {
        let list = c.get(Base::WebApi, &format!("v3/workflows{slash}")).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        assert_eq!(list.json()[1]["name"], "Fails");

        let one = c
            .get(Base::WebApi, &format!("v3/workflows/{ERR_WF}{slash}"))
            .await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(one.json()["questions"][0]["name"], "InputPath");

        let q = c
            .get(
                Base::WebApi,
                &format!("v3/workflows/{OK_WF}/questions{slash}"),
            )
            .await;
        assert_eq!(q.json().as_array().map(Vec::len), Some(2));

        let path = format!("v3/workflows/{OK_WF}/jobs{slash}");
        let job = c
            .call(
                Base::WebApi,
                Method::POST,
                &path,
                &[],
                Some(json!({"priority": "High"})),
            )
            .await;
        assert_eq!(job.status, StatusCode::OK, "{}", job.text);
        let id = job.json()["id"].as_str().expect("an id").to_string();
        assert_eq!(job.json()["priority"], "High");

        let got = c.get(Base::WebApi, &format!("v3/jobs/{id}{slash}")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.json()["appId"], OK_WF);
        assert!(got.json()["createDateTime"].is_string());

        let listed = c.get(Base::WebApi, &path).await;
        assert!(
            listed
                .json()
                .as_array()
                .is_some_and(|l| l.iter().any(|j| j["id"] == id))
        );
    }
    for path in ["v3/workflows", "v3/workflows/x/questions", "v3/jobs/x"] {
        let a = c.get(Base::Gallery, path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.message(), "v3 is served under /webapi/ only");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn what_is_not_an_operation_is_a_404_that_says_so() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    for base in BASES {
        let a = c.get(base, "v1/nothing/here").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(
            a.message(),
            "GET /v1/nothing/here is not an Alteryx API operation the emulator knows"
        );
        let a = c.call(base, Method::DELETE, "v1/jobs/x/", &[], None).await;
        assert_eq!(
            a.message(),
            "DELETE /v1/jobs/x is not an Alteryx API operation the emulator knows",
            "a known path with another method"
        );
        let a = c.get(base, "v1/workflows/nope/questions").await;
        assert_eq!(
            (a.status, a.message()),
            (StatusCode::NOT_FOUND, "Workflow not found: nope".into())
        );
    }
    let a = c.raw(Method::GET, "/api/v1/workflows", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.message(),
        "no Alteryx API at /api/v1/workflows; use /gallery/api/ or /webapi/"
    );
    let a = c.raw(Method::GET, "/webapi/oauth2/token", None).await;
    assert_eq!(
        (a.status, a.message()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST for oauth2/token".into()
        )
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn oauth1_refusals_say_why() {
    let emu = start(config()).await;
    let c = Client::new(&emu);
    let url = format!("{}/gallery/api/v1/workflows/subscription/", c.root);
    let refused = |a: &common::Answer, expected: &str| {
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
        assert!(
            a.message().contains(expected),
            "{:?} should say {expected:?}",
            a.message()
        );
    };
    let a = c.send(c.http.get(&url)).await;
    refused(&a, "missing parameter oauth_consumer_key");
    let a = c
        .send(c.http.get(sign("GET", &url, &[], "other-key", SECRET)))
        .await;
    refused(&a, "unknown consumer key \"other-key\"");
    let a = c
        .send(c.http.get(sign("GET", &url, &[], KEY, "wrong")))
        .await;
    refused(
        &a,
        "invalid signature. The server's signature base string was: GET&http%3A%2F%2F127.0.0.1",
    );
    // Signed for one path, sent to another (the usual trailing-slash mistake).
    let signed = sign("GET", &url, &[], KEY, SECRET);
    let a = c
        .send(
            c.http
                .get(signed.replacen("subscription/", "subscription", 1)),
        )
        .await;
    refused(&a, "invalid signature");
    // A replay: the same signed URL twice.
    let signed = sign("GET", &url, &[], KEY, SECRET);
    assert_eq!(c.send(c.http.get(&signed)).await.status, StatusCode::OK);
    refused(&c.send(c.http.get(&signed)).await, "was already used");
    // The Authorization header form is accepted too.
    let credentials = oauth1_request::Credentials::new(KEY, SECRET);
    let header = oauth1_request::Builder::<_, _>::new(credentials, oauth1_request::HMAC_SHA1)
        .authorize("GET", &url, &());
    let a = c
        .send(c.http.get(&url).header("Authorization", header))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    emu.shutdown().await;
}

#[tokio::test]
async fn oauth2_refusals_say_why() {
    let emu = start(short_token_config()).await;
    let c = Client::new(&emu);
    let token_url = format!("{}/webapi/oauth2/token", c.root);
    let a = c
        .send(c.http.post(&token_url).form(&[("grant_type", "password")]))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"], "unsupported_grant_type");
    let a = c
        .send(
            c.http
                .post(&token_url)
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(
        (a.status, a.json()["error_description"].clone()),
        (StatusCode::UNAUTHORIZED, json!("no client credentials"))
    );
    let a = c
        .send(c.http.post(&token_url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", KEY),
            ("client_secret", "wrong"),
        ]))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["error"], "invalid_client");
    // HTTP Basic with only the grant type in the body.
    let a = c
        .send(
            c.http
                .post(&token_url)
                .basic_auth(KEY, Some(SECRET))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["expires_in"], 1);
    let token = a.json()["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let workflows = format!("{}/webapi/v3/workflows", c.root);
    let a = c.send(c.http.get(&workflows)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.message().contains("Bearer token required"));
    let a = c.send(c.http.get(&workflows).bearer_auth("made-up")).await;
    assert_eq!(a.message(), "invalid access token");
    assert_eq!(
        c.send(c.http.get(&workflows).bearer_auth(&token))
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let a = c.send(c.http.get(&workflows).bearer_auth(&token)).await;
    assert_eq!(
        (a.status, a.message()),
        (StatusCode::UNAUTHORIZED, "access token expired".into())
    );
    assert_eq!(emu.tokens_issued(), 1);
    emu.shutdown().await;
}

/// Tokens that expire after a second.
fn short_token_config() -> alteryx_router_emulator::EmulatorConfig {
    alteryx_router_emulator::EmulatorConfig {
        token_ttl: std::time::Duration::from_secs(1),
        ..config()
    }
}

#[tokio::test]
async fn job_requests_are_validated_like_a_careful_server() {
    let emu = start(config()).await;
    let mut c = Client::new(&emu);
    let cases = [
        (
            OK_WF,
            json!({"questions": [{"name": "Regoin", "value": "EU"}]}),
            false,
            "Invalid question name 'Regoin' for workflow aaaaaaaaaaaaaaaaaaaaaa01; its questions are: InputPath, Region",
        ),
        (
            OK_WF,
            json!({"questions": [{"name": "Region", "value": 3}]}),
            false,
            "Question 'Region': value must be a string",
        ),
        (
            OK_WF,
            json!({"questions": [{"name": "Region"}]}),
            false,
            "Each question needs a name and a value",
        ),
        (
            OK_WF,
            json!({"questions": {"Region": "EU"}}),
            false,
            "questions must be a list of {name, value}",
        ),
        (
            OK_WF,
            json!(["Region"]),
            false,
            "The request body must be a JSON object with a questions list",
        ),
        (
            OK_WF,
            json!({"priority": "urgent"}),
            false,
            "Invalid priority 'urgent'",
        ),
        (
            OK_WF,
            json!({"priority": "high"}),
            true,
            "Invalid priority 'high'",
        ),
        (
            OK_WF,
            json!({"priority": 2}),
            false,
            "priority must be a string",
        ),
    ];
    for (workflow, body, v3, expected) in cases {
        let a = c.submit(Base::WebApi, v3, workflow, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text);
        assert_eq!(a.message(), expected, "{body}");
    }
    let a = c
        .submit(Base::Gallery, false, "unknown-workflow", json!({}))
        .await;
    assert_eq!(
        (a.status, a.message()),
        (
            StatusCode::NOT_FOUND,
            "Workflow not found: unknown-workflow".into()
        )
    );
    let a = c
        .call(
            Base::Gallery,
            Method::POST,
            &format!("v1/workflows/{OK_WF}/jobs/"),
            &[],
            None,
        )
        .await;
    assert_eq!(a.message(), "The request body is not valid JSON");
    assert!(emu.jobs().is_empty(), "nothing refused was queued");

    let a = c
        .submit(
            Base::Gallery,
            false,
            OK_WF,
            json!({"questions": [{"name": "Region", "value": "EU"}], "priority": "low"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let [job] = &emu.jobs()[..] else {
        panic!("one job")
    };
    assert_eq!(
        job.questions,
        vec![("Region".to_string(), "EU".to_string())]
    );
    assert_eq!(
        (job.api.as_str(), job.priority.as_deref()),
        ("v1", Some("low"))
    );
    emu.shutdown().await;
}
