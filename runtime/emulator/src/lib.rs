//! A local Alteryx Server for tests, `demo` and people debugging rules. See `docs/emulator.md`.
//!
//! It speaks the Gallery API at two bases: `/gallery/api/` (v1, OAuth1 signatures in the query
//! string or an `Authorization: OAuth` header) and `/webapi/` (v1 and v3 with OAuth2
//! client-credentials tokens from `/webapi/oauth2/token`). It validates question names and
//! values, runs jobs on a simulated worker pool, injects faults, and shows what it received at
//! `/_emulator/`. The modules, by concern:
//!
//! - `config`: workflows, credentials and settings, and the workflows file;
//! - `state`: everything behind the one lock; `jobs`: jobs and the worker pool;
//! - `api` (Gallery API routes) with `submit` (job requests) and `views` (job JSON);
//! - `auth` (tokens, OAuth1 and bearer middleware) with `oauth1` (the signature verifier);
//! - `faults`: injected faults; `admin`: `/_emulator/*`; `stats`: request counts;
//! - `server`: the HTTP server, which lets a handler drop its connection unanswered.

mod admin;
mod api;
mod auth;
pub mod config;
mod faults;
mod jobs;
pub mod oauth1;
mod server;
mod state;
mod stats;
mod submit;
mod views;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use config::{
    DEMO_KEY, DEMO_SECRET, EmulatedQuestion, EmulatedWorkflow, EmulatorConfig, JobOutcome,
};
pub use faults::Fault;
pub use jobs::JobCounts;
pub use stats::{EmulatorStats, OperationCounts};
pub use views::ReceivedJob;

use state::{Shared, State};

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

    /// The v1 + OAuth1 base, `http://ADDR/gallery/api/`.
    pub fn gallery_url(&self) -> String {
        format!("http://{}/gallery/api/", self.addr)
    }

    /// The v1/v3 + OAuth2 base, `http://ADDR/webapi/`.
    pub fn webapi_url(&self) -> String {
        format!("http://{}/webapi/", self.addr)
    }

    /// Queue a fault (`POST /_emulator/faults`).
    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Every job received, with its current state (`GET /_emulator/jobs`).
    pub fn jobs(&self) -> Vec<ReceivedJob> {
        self.state
            .lock()
            .jobs
            .all()
            .iter()
            .map(ReceivedJob::of)
            .collect()
    }

    /// API requests since the start or the last reset, token requests included.
    pub fn request_count(&self) -> usize {
        self.state.lock().stats.requests as usize
    }

    pub fn tokens_issued(&self) -> usize {
        self.state.lock().stats.tokens_issued as usize
    }

    /// Requests, tokens, job counts and peaks, requests per operation (`GET /_emulator/stats`).
    pub fn stats(&self) -> EmulatorStats {
        self.state.lock().stats()
    }

    /// Invalidate every OAuth2 token issued so far (as a server restart or revocation would).
    pub fn revoke_tokens(&self) {
        self.state.lock().tokens.clear();
    }

    /// Replace the accepted (key, secret) pairs and revoke every issued OAuth2 token, as a
    /// secret rotation does (`POST /_emulator/credentials`).
    pub fn set_credentials(&self, credentials: Vec<(String, String)>) {
        self.state.lock().set_credentials(credentials);
    }

    /// Change how a job ends (a running job's end moves with it). False if the id is unknown.
    pub fn set_job_outcome(&self, job_id: &str, outcome: JobOutcome) -> bool {
        let mut s = self.state.lock();
        match s.jobs.find(job_id) {
            Some(i) => {
                s.jobs.set_outcome(i, outcome, Instant::now());
                true
            }
            None => false,
        }
    }

    /// End a queued or running job now with disposition `Cancelled`
    /// (`POST /_emulator/jobs/{id}/cancel`). False if it is unknown or has finished.
    pub fn cancel_job(&self, job_id: &str) -> bool {
        let mut s = self.state.lock();
        match s.jobs.find(job_id) {
            Some(i) => s.jobs.cancel(i, Instant::now()),
            None => false,
        }
    }

    /// At most `slots` jobs Running from now on (`None`: no limit); `POST /_emulator/settings`.
    pub fn set_slots(&self, slots: Option<usize>) {
        let mut s = self.state.lock();
        s.jobs.set_slots(slots, Instant::now());
        s.config.slots = slots;
    }

    /// The run time of jobs queued from now on, for workflows without their own.
    pub fn set_job_duration(&self, duration: Duration) {
        self.state.lock().config.job_duration = duration;
    }

    /// Forget jobs, faults and statistics (`POST /_emulator/reset`).
    pub fn reset(&self) {
        self.state.lock().reset();
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
    let state = Shared::new(State::new(config));
    let app = Router::new()
        .merge(api::routes(&state))
        .merge(admin::routes())
        .fallback(no_api)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, app, stopped));
    Ok(EmulatorHandle {
        addr,
        state,
        stop,
        task,
    })
}

async fn no_api(uri: axum::http::Uri) -> Response {
    message(
        StatusCode::NOT_FOUND,
        format!(
            "no Alteryx API at {}; use /gallery/api/ or /webapi/",
            uri.path()
        ),
    )
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    tracing::info!(method = %method, path = %path, status = response.status().as_u16(), "emulator request");
    response
}

pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Alteryx's error shape: `{"message": ...}`.
pub(crate) fn message(status: StatusCode, text: impl Into<String>) -> Response {
    reply(status, json!({ "message": text.into() }))
}
