//! A local Alteryx Server for tests, `demo` and people debugging rules.
//!
//! It speaks the Gallery API at two bases: `/gallery/api/` (v1, OAuth1 signatures in the query
//! string or an `Authorization: OAuth` header, verified per RFC 5849 by [`oauth1`]) and
//! `/webapi/` (v1 and v3 with OAuth2 client-credentials tokens from `/webapi/oauth2/token`).
//! It validates question names and values, moves jobs Queued → Running → Completed with the
//! workflow's disposition, injects faults (status codes, hangs, HTML, empty bodies) and shows
//! what it received at `/_emulator/jobs`. See `docs/emulator.md`.

pub mod oauth1;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the emulator serves and accepts.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    pub workflows: Vec<EmulatedWorkflow>,
    /// Accepted (key, secret) pairs, for OAuth1 and OAuth2 alike.
    pub credentials: Vec<(String, String)>,
    pub token_ttl: Duration,
    /// How long a job takes from queued to completed.
    pub job_duration: Duration,
    pub max_clock_skew: Duration,
}

/// The demo's built-in key; printed by `alteryx-router emulator`.
pub const DEMO_KEY: &str = "demo-key";
/// The demo's built-in secret (not a real credential: it only opens the local emulator).
pub const DEMO_SECRET: &str = "demo-secret";

impl Default for EmulatorConfig {
    fn default() -> Self {
        let q = |name: &str| EmulatedQuestion {
            name: name.to_string(),
            question_type: "QuestionTextBox".to_string(),
        };
        Self {
            workflows: vec![
                EmulatedWorkflow {
                    id: "5f3c0e5a2c1b0a0001d1e001".into(),
                    name: "Daily Sales Cleanup".into(),
                    questions: vec![
                        q("InputPath"),
                        q("FileName"),
                        q("Region"),
                        q("Columns"),
                        q("ColumnNames"),
                        q("ReportDate"),
                    ],
                    outcome: JobOutcome::Success,
                },
                EmulatedWorkflow {
                    id: "5f3c0e5a2c1b0a0001d1e002".into(),
                    name: "Invoice Intake".into(),
                    questions: vec![q("InputPath"), q("Vendor"), q("ReceivedOn")],
                    outcome: JobOutcome::Success,
                },
                EmulatedWorkflow {
                    id: "5f3c0e5a2c1b0a0001d1e003".into(),
                    name: "Partner Feed Validation".into(),
                    questions: vec![q("InputPath"), q("Partner")],
                    outcome: JobOutcome::Error,
                },
            ],
            credentials: vec![(DEMO_KEY.into(), DEMO_SECRET.into())],
            token_ttl: Duration::from_secs(3600),
            job_duration: Duration::from_secs(2),
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

/// The workflows file: a list of workflows, or an object with `workflows` and settings.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConfigFile {
    List(Vec<EmulatedWorkflow>),
    Full {
        workflows: Vec<EmulatedWorkflow>,
        #[serde(default)]
        token_ttl_seconds: Option<u64>,
        #[serde(default)]
        job_seconds: Option<f64>,
    },
}

impl EmulatorConfig {
    /// Read workflows (and optionally settings) from a YAML or JSON file.
    pub fn from_yaml_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ConfigFile = serde_yaml::from_str(&text)
            .with_context(|| format!("{}: not a workflows file", path.display()))?;
        let mut config = EmulatorConfig::default();
        match file {
            ConfigFile::List(w) => config.workflows = w,
            ConfigFile::Full {
                workflows,
                token_ttl_seconds,
                job_seconds,
            } => {
                config.workflows = workflows;
                if let Some(t) = token_ttl_seconds {
                    config.token_ttl = Duration::from_secs(t);
                }
                if let Some(j) = job_seconds {
                    config.job_duration = Duration::from_secs_f64(j.max(0.0));
                }
            }
        }
        Ok(config)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmulatedWorkflow {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub questions: Vec<EmulatedQuestion>,
    #[serde(default)]
    pub outcome: JobOutcome,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmulatedQuestion {
    pub name: String,
    #[serde(rename = "type", default = "text_box")]
    pub question_type: String,
}

fn text_box() -> String {
    "QuestionTextBox".into()
}

/// How an emulated workflow's jobs end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOutcome {
    #[default]
    Success,
    Error,
    /// Stays Running forever (for "stuck job" tests).
    Stuck,
}

/// A fault applied to the next API requests.
#[derive(Clone, Debug)]
pub enum Fault {
    Status {
        status: u16,
        count: u32,
    },
    Hang {
        duration: Duration,
        count: u32,
    },
    /// 200 with an HTML login page, like a misconfigured proxy.
    Html {
        count: u32,
    },
    /// 200 with an empty body.
    Empty {
        count: u32,
    },
}

/// A job as the emulator received it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceivedJob {
    pub id: String,
    pub workflow_id: String,
    pub api: String,
    pub questions: Vec<(String, String)>,
    pub priority: Option<String>,
    pub status: String,
    pub disposition: Option<String>,
    pub created_at: String,
    /// When the request arrived, in Unix milliseconds (µs precision), so a harness on the same
    /// machine can time "process started → job received" without polling.
    #[serde(default)]
    pub received_unix_ms: f64,
}

struct JobRecord {
    received: ReceivedJob,
    started: Instant,
    outcome: JobOutcome,
}

impl JobRecord {
    fn status(&self, duration: Duration) -> (&'static str, &'static str) {
        let elapsed = self.started.elapsed();
        match self.outcome {
            _ if elapsed < duration / 10 => ("Queued", "None"),
            JobOutcome::Stuck => ("Running", "None"),
            _ if elapsed < duration => ("Running", "None"),
            JobOutcome::Success => ("Completed", "Success"),
            JobOutcome::Error => ("Completed", "Error"),
        }
    }

    fn refreshed(&self, duration: Duration) -> ReceivedJob {
        let (status, disposition) = self.status(duration);
        let mut r = self.received.clone();
        r.status = status.into();
        r.disposition = (disposition != "None").then(|| disposition.to_string());
        r
    }

    fn json(&self, duration: Duration, v3: bool) -> Value {
        let (status, disposition) = self.status(duration);
        let messages = if disposition == "Error" {
            json!([
                {"status": 3, "text": "Error: Input Data (1): File not found", "toolId": 1},
                {"status": 3, "text": "Finished running in 0.8 seconds with 1 error", "toolId": -1}
            ])
        } else if disposition == "Success" {
            json!([{"status": 1, "text": "Finished running in 0.6 seconds", "toolId": -1}])
        } else {
            json!([])
        };
        let mut job = json!({
            "id": self.received.id,
            "createDate": self.received.created_at,
            "status": status,
            "disposition": disposition,
            "outputs": [],
            "messages": messages,
            "priority": self.received.priority.clone().unwrap_or_else(|| "Low".into()),
        });
        job[if v3 { "workflowId" } else { "appId" }] = json!(self.received.workflow_id);
        job
    }
}

struct EmuState {
    config: EmulatorConfig,
    credentials: HashMap<String, String>,
    jobs: Vec<JobRecord>,
    tokens: HashMap<String, Instant>,
    nonces: oauth1::NonceCache,
    faults: VecDeque<(Fault, u32)>,
    requests: usize,
    tokens_issued: usize,
    next_job: u64,
}

#[derive(Clone)]
struct Shared(Arc<Mutex<EmuState>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, EmuState> {
        // A panic while holding the lock would be a bug in the emulator; keep serving.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running emulator. Dropping it does not stop the server; call [`EmulatorHandle::shutdown`].
pub struct EmulatorHandle {
    addr: SocketAddr,
    state: Shared,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl EmulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn gallery_url(&self) -> String {
        format!("http://{}/gallery/api/", self.addr)
    }
    pub fn webapi_url(&self) -> String {
        format!("http://{}/webapi/", self.addr)
    }
    pub fn inject(&self, fault: Fault) {
        let count = match &fault {
            Fault::Status { count, .. }
            | Fault::Hang { count, .. }
            | Fault::Html { count }
            | Fault::Empty { count } => *count,
        };
        self.state.lock().faults.push_back((fault, count));
    }
    pub fn jobs(&self) -> Vec<ReceivedJob> {
        let s = self.state.lock();
        let d = s.config.job_duration;
        s.jobs.iter().map(|j| j.refreshed(d)).collect()
    }
    pub fn request_count(&self) -> usize {
        self.state.lock().requests
    }
    pub fn tokens_issued(&self) -> usize {
        self.state.lock().tokens_issued
    }
    /// Invalidate every OAuth2 token issued so far (as a server restart or revocation would).
    pub fn revoke_tokens(&self) {
        self.state.lock().tokens.clear();
    }
    pub fn set_job_outcome(&self, job_id: &str, outcome: JobOutcome) -> bool {
        let mut s = self.state.lock();
        match s.jobs.iter_mut().find(|j| j.received.id == job_id) {
            Some(j) => {
                j.outcome = outcome;
                true
            }
            None => false,
        }
    }
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Start the emulator on `addr` (port 0: any free port).
pub async fn start(config: EmulatorConfig, addr: SocketAddr) -> anyhow::Result<EmulatorHandle> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    let credentials = config.credentials.iter().cloned().collect();
    let state = Shared(Arc::new(Mutex::new(EmuState {
        config,
        credentials,
        jobs: Vec::new(),
        tokens: HashMap::new(),
        nonces: oauth1::NonceCache::default(),
        faults: VecDeque::new(),
        requests: 0,
        tokens_issued: 0,
        next_job: 1,
    })));
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "emulator stopped");
        }
    });
    Ok(EmulatorHandle {
        addr,
        state,
        stop,
        task,
    })
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    reply(status, json!({ "message": text.into() }))
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let response = route(&state, &method, &uri, &headers, &body).await;
    tracing::info!(method = %method, path = %path, status = response.status().as_u16(), "emulator request");
    response
}

async fn route(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let path = uri.path();
    if let Some(admin) = path.strip_prefix("/_emulator/") {
        return admin_route(state, method, admin.trim_end_matches('/'), body);
    }
    let (base, rest) = if let Some(r) = path.strip_prefix("/gallery/api/") {
        ("gallery", r)
    } else if let Some(r) = path.strip_prefix("/webapi/") {
        ("webapi", r)
    } else {
        return message(
            StatusCode::NOT_FOUND,
            format!("no Alteryx API at {path}; use /gallery/api/ or /webapi/"),
        );
    };
    // Faults apply to every API request, token requests included.
    let fault = {
        let mut s = state.lock();
        s.requests += 1;
        let fault = s.faults.front_mut().map(|(f, left)| {
            *left -= 1;
            (f.clone(), *left)
        });
        if let Some((_, 0)) = fault {
            s.faults.pop_front();
        }
        fault.map(|(f, _)| f)
    };
    match fault {
        Some(Fault::Status { status, .. }) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return message(code, format!("Injected fault: {status}"));
        }
        Some(Fault::Hang { duration, .. }) => {
            tokio::time::sleep(duration).await;
            return message(StatusCode::SERVICE_UNAVAILABLE, "Injected fault: hung");
        }
        Some(Fault::Html { .. }) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Alteryx Server login</body></html>",
            )
                .into_response();
        }
        Some(Fault::Empty { .. }) => return (StatusCode::OK, "").into_response(),
        None => {}
    }
    if base == "webapi" && rest.trim_end_matches('/') == "oauth2/token" {
        return token(state, method, headers, body);
    }
    let authorised = match base {
        "gallery" => check_oauth1(state, method, uri, headers, body),
        _ => check_bearer(state, headers),
    };
    if let Err(r) = authorised {
        return r;
    }
    let decoded: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    api_route(state, method, base, &segments, uri, body)
}

fn admin_route(state: &Shared, method: &Method, path: &str, body: &Bytes) -> Response {
    match (method.as_str(), path) {
        ("GET", "health") => reply(StatusCode::OK, json!({"status": "ok"})),
        ("GET", "jobs") => {
            let s = state.lock();
            let d = s.config.job_duration;
            let jobs: Vec<ReceivedJob> = s.jobs.iter().map(|j| j.refreshed(d)).collect();
            reply(StatusCode::OK, json!(jobs))
        }
        ("POST", "reset") => {
            let mut s = state.lock();
            s.jobs.clear();
            s.faults.clear();
            reply(StatusCode::OK, json!({"status": "reset"}))
        }
        ("POST", "faults") => {
            let Ok(spec) = serde_json::from_slice::<Value>(body) else {
                return message(StatusCode::BAD_REQUEST, "fault spec must be JSON");
            };
            let count = spec.get("count").and_then(Value::as_u64).unwrap_or(1) as u32;
            let fault = if let Some(status) = spec.get("status").and_then(Value::as_u64) {
                Fault::Status {
                    status: status as u16,
                    count,
                }
            } else if let Some(ms) = spec.get("hang_ms").and_then(Value::as_u64) {
                Fault::Hang {
                    duration: Duration::from_millis(ms),
                    count,
                }
            } else if let Some(n) = spec.get("html").and_then(Value::as_u64) {
                Fault::Html { count: n as u32 }
            } else if let Some(n) = spec.get("empty").and_then(Value::as_u64) {
                Fault::Empty { count: n as u32 }
            } else {
                return message(
                    StatusCode::BAD_REQUEST,
                    "expected {\"status\":N,\"count\":N} | {\"hang_ms\":N,\"count\":N} | {\"html\":N} | {\"empty\":N}",
                );
            };
            let n = match &fault {
                Fault::Status { count, .. }
                | Fault::Hang { count, .. }
                | Fault::Html { count }
                | Fault::Empty { count } => *count,
            };
            state.lock().faults.push_back((fault, n));
            reply(StatusCode::OK, json!({"status": "queued"}))
        }
        _ => message(
            StatusCode::NOT_FOUND,
            format!("unknown emulator endpoint {path}"),
        ),
    }
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn token(state: &Shared, method: &Method, headers: &HeaderMap, body: &Bytes) -> Response {
    if method != Method::POST {
        return message(StatusCode::METHOD_NOT_ALLOWED, "use POST for oauth2/token");
    }
    let form: HashMap<String, String> = form_pairs(body).into_iter().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    // Credentials in the form body, or as HTTP Basic with only grant_type in the body.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let (id, secret) = match (form.get("client_id"), form.get("client_secret"), basic) {
        (Some(id), Some(secret), _) => (id.clone(), secret.clone()),
        (_, _, Some(pair)) => pair,
        _ => {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_client", "error_description": "no client credentials"}),
            );
        }
    };
    let mut s = state.lock();
    if s.credentials.get(&id) != Some(&secret) {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "unknown client id or wrong secret"}),
        );
    }
    let token = format!("emu-{:032x}", rand::random::<u128>());
    let ttl = s.config.token_ttl;
    s.tokens.insert(token.clone(), Instant::now() + ttl);
    s.tokens_issued += 1;
    reply(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "bearer", "expires_in": ttl.as_secs()}),
    )
}

#[allow(clippy::result_large_err)]
fn check_bearer(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            message(
                StatusCode::UNAUTHORIZED,
                "Authorization: Bearer token required (POST /webapi/oauth2/token first)",
            )
        })?;
    let s = state.lock();
    match s.tokens.get(token.trim()) {
        Some(expiry) if Instant::now() < *expiry => Ok(()),
        Some(_) => Err(message(StatusCode::UNAUTHORIZED, "access token expired")),
        None => Err(message(StatusCode::UNAUTHORIZED, "invalid access token")),
    }
}

#[allow(clippy::result_large_err)]
fn check_oauth1(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(), Response> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_ascii_lowercase();
    let host = host.strip_suffix(":80").unwrap_or(&host);
    let base_url = format!("http://{host}{}", uri.path());
    let mut params: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        params.extend(oauth1::header_params(auth));
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(form_pairs(body));
    }
    let mut s = state.lock();
    let EmuState {
        credentials,
        nonces,
        config,
        ..
    } = &mut *s;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    oauth1::verify(
        method.as_str(),
        &base_url,
        &params,
        credentials,
        nonces,
        now,
        config.max_clock_skew,
    )
    .map(|_| ())
    .map_err(|r| message(StatusCode::UNAUTHORIZED, r.to_string()))
}

fn api_route(
    state: &Shared,
    method: &Method,
    base: &str,
    seg: &[&str],
    uri: &Uri,
    body: &Bytes,
) -> Response {
    let m = method.as_str();
    match (m, seg) {
        ("GET", ["v1", "workflows", "subscription"]) => {
            let s = state.lock();
            let list: Vec<Value> = s.config.workflows.iter().map(|w| json!({
                "id": w.id, "subscriptionId": "emulated", "public": false, "runDisabled": false,
                "packageType": 0, "uploadDate": "2026-01-05T10:00:00.000Z", "fileName": format!("{}.yxwz", w.name),
                "metaInfo": {"name": w.name, "description": format!("Emulated workflow {}", w.name), "author": "alteryx-router emulator"},
                "isChained": false, "version": 1, "runCount": s.jobs.iter().filter(|j| j.received.workflow_id == w.id).count(),
            })).collect();
            reply(StatusCode::OK, json!(list))
        }
        ("GET", ["v3", "workflows"]) if base == "webapi" => {
            let s = state.lock();
            let list: Vec<Value> = s.config.workflows.iter().map(|w| json!({
                "id": w.id, "sourceAppId": w.id, "name": w.name, "ownerId": "emulated", "dateCreated": "2026-01-05T10:00:00Z",
                "runCount": 0, "versions": [{"versionId": "1", "versionNumber": 1}], "publishedVersionNumber": 1, "isAmp": true,
                "executionMode": "Standard", "workerTag": "", "districtTags": [], "comments": "", "isPublic": false, "isReadyForMigration": false,
            })).collect();
            reply(StatusCode::OK, json!(list))
        }
        ("GET", ["v3", "workflows", id]) if base == "webapi" => match find_workflow(state, id) {
            Some(w) => reply(
                StatusCode::OK,
                json!({"id": w.id, "name": w.name, "questions": questions_json(&w)}),
            ),
            None => workflow_404(id),
        },
        ("GET", ["v1", "workflows", id, "questions"])
        | ("GET", ["v3", "workflows", id, "questions"]) => {
            if seg[0] == "v3" && base != "webapi" {
                return message(StatusCode::NOT_FOUND, "v3 is served under /webapi/ only");
            }
            match find_workflow(state, id) {
                Some(w) => reply(StatusCode::OK, questions_json(&w)),
                None => workflow_404(id),
            }
        }
        ("POST", ["v1", "workflows", id, "jobs"]) => submit(state, id, body, false),
        ("POST", ["v3", "workflows", id, "jobs"]) if base == "webapi" => {
            submit(state, id, body, true)
        }
        ("GET", [api @ ("v1" | "v3"), "workflows", id, "jobs"]) => {
            let v3 = *api == "v3";
            if find_workflow(state, id).is_none() {
                return workflow_404(id);
            }
            let query: HashMap<String, String> = uri
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            let offset = query
                .get("offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0usize);
            let limit = query
                .get("limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX);
            let s = state.lock();
            let d = s.config.job_duration;
            let mut jobs: Vec<Value> = s
                .jobs
                .iter()
                .filter(|j| j.received.workflow_id == *id)
                .map(|j| j.json(d, v3))
                .collect();
            if query
                .get("direction")
                .is_some_and(|d| d.eq_ignore_ascii_case("desc"))
            {
                jobs.reverse();
            }
            let page: Vec<Value> = jobs.into_iter().skip(offset).take(limit).collect();
            reply(StatusCode::OK, json!(page))
        }
        ("GET", [api @ ("v1" | "v3"), "jobs", id]) => {
            let v3 = *api == "v3";
            let s = state.lock();
            let d = s.config.job_duration;
            match s.jobs.iter().find(|j| j.received.id == *id) {
                Some(j) => reply(StatusCode::OK, j.json(d, v3)),
                None => message(StatusCode::NOT_FOUND, format!("Job not found: {id}")),
            }
        }
        _ => message(
            StatusCode::NOT_FOUND,
            format!(
                "{m} /{} is not an Alteryx API operation the emulator knows",
                seg.join("/")
            ),
        ),
    }
}

fn find_workflow(state: &Shared, id: &str) -> Option<EmulatedWorkflow> {
    state
        .lock()
        .config
        .workflows
        .iter()
        .find(|w| w.id == id)
        .cloned()
}

fn workflow_404(id: &str) -> Response {
    message(StatusCode::NOT_FOUND, format!("Workflow not found: {id}"))
}

fn questions_json(w: &EmulatedWorkflow) -> Value {
    json!(w.questions.iter().map(|q| json!({
        "name": q.name, "type": q.question_type, "description": format!("{} (emulated)", q.name),
        "value": null, "multiple": false, "items": null,
    })).collect::<Vec<_>>())
}

fn submit(state: &Shared, workflow_id: &str, body: &Bytes, v3: bool) -> Response {
    let Some(workflow) = find_workflow(state, workflow_id) else {
        return workflow_404(workflow_id);
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return message(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        );
    };
    let Some(request) = request.as_object() else {
        return message(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object with a questions list",
        );
    };
    let mut questions = Vec::new();
    match request.get("questions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let name = item.get("name").and_then(Value::as_str);
                let value = item.get("value");
                let (Some(name), Some(value)) = (name, value) else {
                    return message(
                        StatusCode::BAD_REQUEST,
                        "Each question needs a name and a value",
                    );
                };
                let Some(value) = value.as_str() else {
                    return message(
                        StatusCode::BAD_REQUEST,
                        format!("Question '{name}': value must be a string"),
                    );
                };
                if !workflow.questions.iter().any(|q| q.name == name) {
                    let known: Vec<&str> =
                        workflow.questions.iter().map(|q| q.name.as_str()).collect();
                    return message(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "Invalid question name '{name}' for workflow {workflow_id}; its questions are: {}",
                            known.join(", ")
                        ),
                    );
                }
                questions.push((name.to_string(), value.to_string()));
            }
        }
        Some(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                "questions must be a list of {name, value}",
            );
        }
    }
    let priority = match request.get("priority") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            let ok = if v3 {
                ["Low", "Medium", "High", "Critical"].contains(&p.as_str())
            } else {
                [
                    "low", "medium", "high", "critical", "Low", "Medium", "High", "Critical",
                ]
                .contains(&p.as_str())
            };
            if !ok {
                return message(StatusCode::BAD_REQUEST, format!("Invalid priority '{p}'"));
            }
            Some(p.clone())
        }
        Some(_) => return message(StatusCode::BAD_REQUEST, "priority must be a string"),
    };
    let mut s = state.lock();
    let id = format!("{:024x}", (0x6a0b_0000_u128 << 64) | s.next_job as u128);
    s.next_job += 1;
    let now = time::OffsetDateTime::now_utc();
    let received_unix_ms = now.unix_timestamp_nanos() as f64 / 1e6;
    let created_at = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let record = JobRecord {
        received: ReceivedJob {
            id,
            workflow_id: workflow_id.to_string(),
            api: if v3 { "v3".into() } else { "v1".into() },
            questions,
            priority,
            status: "Queued".into(),
            disposition: None,
            created_at,
            received_unix_ms,
        },
        started: Instant::now(),
        outcome: workflow.outcome,
    };
    let d = s.config.job_duration;
    let body = record.json(d, v3);
    s.jobs.push(record);
    reply(StatusCode::OK, body)
}
