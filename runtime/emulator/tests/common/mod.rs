//! Helpers for the emulator's tests: a server on an ephemeral port, and requests signed the way
//! clients sign them (OAuth1 by the `oauth1-request` crate, independent of the emulator's
//! verifier; OAuth2 through the token endpoint).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use alteryx_router_emulator::{
    self as emulator, EmulatedQuestion, EmulatedWorkflow, EmulatorConfig, EmulatorHandle,
    JobOutcome,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";
pub const OK_WF: &str = "aaaaaaaaaaaaaaaaaaaaaa01";
pub const ERR_WF: &str = "aaaaaaaaaaaaaaaaaaaaaa02";

/// Two workflows (`OK_WF` succeeds, `ERR_WF` fails), jobs of 200 ms, the test credentials.
pub fn config() -> EmulatorConfig {
    let q = |name: &str| EmulatedQuestion {
        name: name.into(),
        question_type: "QuestionTextBox".into(),
    };
    EmulatorConfig {
        workflows: vec![
            EmulatedWorkflow {
                id: OK_WF.into(),
                name: "Works".into(),
                questions: vec![q("InputPath"), q("Region")],
                outcome: JobOutcome::Success,
            },
            EmulatedWorkflow {
                id: ERR_WF.into(),
                name: "Fails".into(),
                questions: vec![q("InputPath")],
                outcome: JobOutcome::Error,
            },
        ],
        credentials: vec![(KEY.into(), SECRET.into())],
        job_duration: Duration::from_millis(200),
        ..EmulatorConfig::default()
    }
}

pub async fn start(config: EmulatorConfig) -> EmulatorHandle {
    emulator::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("the emulator starts")
}

/// The two bases and how to authenticate at each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// `/gallery/api/`, OAuth1 in the query string.
    Gallery,
    /// `/webapi/`, OAuth2 bearer token.
    WebApi,
}

pub const BASES: [Base; 2] = [Base::Gallery, Base::WebApi];

/// An HTTP client for one emulator.
pub struct Client {
    pub http: reqwest::Client,
    pub root: String,
    token: Option<String>,
}

/// An answer: status, content type and body (JSON when it parses).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// The `message` of an Alteryx error answer.
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {}", self.text))
            .to_string()
    }
}

impl Client {
    pub fn new(emu: &EmulatorHandle) -> Self {
        Self {
            http: reqwest::Client::new(),
            root: format!("http://{}", emu.addr()),
            token: None,
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.expect("a body");
        Answer {
            status,
            content_type,
            text,
        }
    }

    /// A raw request to `path` on the emulator (no authentication).
    pub async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.root));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let a = self
            .raw(Method::GET, &format!("/_emulator/{path}"), None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        a.json()
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Answer {
        self.raw(Method::POST, &format!("/_emulator/{path}"), Some(body))
            .await
    }

    /// A bearer token for `key`/`secret` (panics when refused).
    pub async fn login(&mut self, key: &str, secret: &str) {
        let a = self
            .send(
                self.http
                    .post(format!("{}/webapi/oauth2/token", self.root))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", key),
                        ("client_secret", secret),
                    ]),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "token: {}", a.text);
        self.token = Some(a.json()["access_token"].as_str().expect("a token").into());
    }

    /// An authenticated API call: `path` after the base (e.g. `v1/jobs/ID/`), query pairs
    /// signed with the test credentials at the gallery base.
    pub async fn call(
        &mut self,
        base: Base,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let request = match base {
            Base::Gallery => {
                let url = format!("{}/gallery/api/{path}", self.root);
                let signed = sign(method.as_str(), &url, query, KEY, SECRET);
                self.http.request(method, signed)
            }
            Base::WebApi => {
                if self.token.is_none() {
                    self.login(KEY, SECRET).await;
                }
                let url = format!("{}/webapi/{path}", self.root);
                self.http
                    .request(method, url)
                    .query(query)
                    .bearer_auth(self.token.clone().unwrap_or_default())
            }
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        self.send(request).await
    }

    pub async fn get(&mut self, base: Base, path: &str) -> Answer {
        self.call(base, Method::GET, path, &[], None).await
    }

    /// Submit a job through v1 (either base) or v3 (`/webapi/`).
    pub async fn submit(&mut self, base: Base, v3: bool, workflow: &str, body: Value) -> Answer {
        let path = if v3 {
            format!("v3/workflows/{workflow}/jobs")
        } else {
            format!("v1/workflows/{workflow}/jobs/")
        };
        self.call(base, Method::POST, &path, &[], Some(body)).await
    }
}

/// The URL with an OAuth1 HMAC-SHA1 signature (and the query pairs) in its query string.
pub fn sign(method: &str, url: &str, query: &[(&str, &str)], key: &str, secret: &str) -> String {
    let credentials = oauth1_request::Credentials::new(key, secret);
    let builder = oauth1_request::Builder::<_, _>::new(credentials, oauth1_request::HMAC_SHA1);
    let params = oauth1_request::ParameterList::new(query.to_vec());
    let mut signed = builder.to_query(method, url.to_string(), &params);
    let encode = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    for (k, v) in query {
        let pair = format!("{}={}", encode(k), encode(v));
        if !signed.contains(&pair) {
            signed.push('&');
            signed.push_str(&pair);
        }
    }
    signed
}

/// Poll until `done` holds (a condition on the emulator's state), at most 10 s.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut done: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
