//! The admin API under `/_emulator/` (no authentication, no faults): what the server received,
//! its statistics, and the knobs tests and benchmarks turn while it runs (faults, credentials,
//! worker slots and run time, cancelling a job or changing how it ends, reset).

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{JobOutcome, seconds};
use crate::faults::Fault;
use crate::state::Shared;
use crate::views::ReceivedJob;
use crate::{message, reply};

pub(crate) fn routes() -> Router<Shared> {
    let mut r = Router::new()
        .route("/_emulator", MethodRouter::new().fallback(unknown))
        .route("/_emulator/{*rest}", MethodRouter::new().fallback(unknown));
    r = at(r, "/_emulator/health", get(health));
    r = at(r, "/_emulator/jobs", get(jobs));
    r = at(r, "/_emulator/jobs/{id}/cancel", post(cancel));
    r = at(r, "/_emulator/jobs/{id}/outcome", post(outcome));
    r = at(r, "/_emulator/reset", post(reset));
    r = at(r, "/_emulator/faults", post(faults));
    r = at(r, "/_emulator/stats", get(stats));
    r = at(r, "/_emulator/credentials", post(credentials));
    at(
        r,
        "/_emulator/settings",
        get(settings).post(change_settings),
    )
}

fn at(router: Router<Shared>, path: &str, route: MethodRouter<Shared>) -> Router<Shared> {
    let route = route.fallback(unknown);
    router
        .route(path, route.clone())
        .route(&format!("{path}/"), route)
}

async fn unknown(uri: Uri) -> Response {
    let path = uri
        .path()
        .trim_start_matches("/_emulator")
        .trim_matches('/');
    message(
        StatusCode::NOT_FOUND,
        format!("unknown emulator endpoint {path}"),
    )
}

fn bad(text: impl Into<String>) -> Response {
    message(StatusCode::BAD_REQUEST, text)
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes, shape: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("expected {shape}: {e}"))
}

async fn health() -> Response {
    reply(StatusCode::OK, json!({"status": "ok"}))
}

async fn jobs(State(state): State<Shared>) -> Response {
    let s = state.lock();
    let jobs: Vec<ReceivedJob> = s.jobs.all().iter().map(ReceivedJob::of).collect();
    reply(StatusCode::OK, json!(jobs))
}

async fn cancel(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut s = state.lock();
    let Some(i) = s.jobs.find(&id) else {
        return message(StatusCode::NOT_FOUND, format!("unknown job {id}"));
    };
    if !s.jobs.cancel(i, Instant::now()) {
        let (status, disposition) = s.jobs.get(i).status();
        return message(
            StatusCode::CONFLICT,
            format!("job {id} has already finished ({status}, {disposition})"),
        );
    }
    reply(StatusCode::OK, json!(ReceivedJob::of(s.jobs.get(i))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    outcome: JobOutcome,
}

async fn outcome(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let body: OutcomeBody = match json_body(&body, "{\"outcome\": \"Success|Warning|Error|Stuck\"}")
    {
        Ok(b) => b,
        Err(why) => return bad(why),
    };
    let mut s = state.lock();
    let Some(i) = s.jobs.find(&id) else {
        return message(StatusCode::NOT_FOUND, format!("unknown job {id}"));
    };
    s.jobs.set_outcome(i, body.outcome, Instant::now());
    reply(StatusCode::OK, json!(ReceivedJob::of(s.jobs.get(i))))
}

async fn reset(State(state): State<Shared>) -> Response {
    state.lock().reset();
    reply(StatusCode::OK, json!({"status": "reset"}))
}

async fn faults(State(state): State<Shared>, body: Bytes) -> Response {
    let Ok(spec) = serde_json::from_slice::<Value>(&body) else {
        return bad("fault spec must be JSON");
    };
    match Fault::from_json(&spec) {
        Ok(fault) => {
            state.lock().faults.push(fault);
            reply(StatusCode::OK, json!({"status": "queued"}))
        }
        Err(why) => bad(why),
    }
}

async fn stats(State(state): State<Shared>) -> Response {
    reply(StatusCode::OK, json!(state.lock().stats()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credential {
    key: String,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsBody {
    credentials: Vec<Credential>,
}

/// Replace the accepted (key, secret) pairs and revoke every issued token (a rotation).
async fn credentials(State(state): State<Shared>, body: Bytes) -> Response {
    let body: CredentialsBody = match json_body(
        &body,
        "{\"credentials\": [{\"key\": \"...\", \"secret\": \"...\"}]}",
    ) {
        Ok(b) => b,
        Err(why) => return bad(why),
    };
    if let Some(i) = body
        .credentials
        .iter()
        .position(|c| c.key.is_empty() || c.secret.is_empty())
    {
        return bad(format!(
            "credentials[{i}]: key and secret must not be empty"
        ));
    }
    let pairs: Vec<(String, String)> = body
        .credentials
        .into_iter()
        .map(|c| (c.key, c.secret))
        .collect();
    let count = pairs.len();
    let revoked = state.lock().set_credentials(pairs);
    reply(
        StatusCode::OK,
        json!({"status": "replaced", "credentials": count, "tokens_revoked": revoked}),
    )
}

fn settings_json(state: &Shared) -> Value {
    let s = state.lock();
    json!({
        "slots": s.jobs.slots(),
        "job_seconds": s.config.job_duration.as_secs_f64(),
    })
}

async fn settings(State(state): State<Shared>) -> Response {
    reply(StatusCode::OK, settings_json(&state))
}

/// `{"slots": N | null, "job_seconds": S}`, each optional: what is given changes from now on.
async fn change_settings(State(state): State<Shared>, body: Bytes) -> Response {
    let shape = "{\"slots\": N | null, \"job_seconds\": S}";
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return bad(format!("expected {shape}"));
    };
    if let Some(name) = body.keys().find(|k| *k != "slots" && *k != "job_seconds") {
        return bad(format!("unknown setting {name:?}; expected {shape}"));
    }
    let slots = match body.get("slots") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Some(Some(n)),
            None => {
                return bad(format!(
                    "slots must be a whole number >= 0 or null, not {v}"
                ));
            }
        },
    };
    let job_duration: Option<Duration> = match body.get("job_seconds") {
        None => None,
        Some(v) => match v.as_f64().map(|j| seconds("job_seconds", j)) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => return bad(e.to_string()),
            None => return bad(format!("job_seconds must be a number, not {v}")),
        },
    };
    {
        let mut s = state.lock();
        if let Some(slots) = slots {
            s.jobs.set_slots(slots, Instant::now());
            s.config.slots = slots;
        }
        if let Some(d) = job_duration {
            s.config.job_duration = d;
        }
    }
    reply(StatusCode::OK, settings_json(&state))
}
