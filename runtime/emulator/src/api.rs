//! The Gallery API routes. v1 is served at both bases, `/gallery/api/` (OAuth1) and
//! `/webapi/` (OAuth2); v3 at `/webapi/` only. Every path works with or without its trailing
//! slash. In front of each base: the fault gate, then authentication.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use crate::jobs::{Api, Job, priority_rank};
use crate::server::ConnectionControl;
use crate::state::Shared;
use crate::stats::Operation;
use crate::{auth, faults, message, reply, submit, views};

const GALLERY: &str = "/gallery/api";
const WEBAPI: &str = "/webapi";

/// Both bases, each behind its fault gate and authentication.
pub(crate) fn routes(state: &Shared) -> Router<Shared> {
    let gallery = operations(GALLERY)
        .route(&format!("{GALLERY}/v3/{{*rest}}"), any_method(v3_not_here))
        .layer(from_fn_with_state(state.clone(), auth::oauth1))
        .layer(from_fn_with_state(state.clone(), faults::gate));
    let mut webapi = operations(WEBAPI);
    webapi = at(
        webapi,
        &format!("{WEBAPI}/v3/workflows"),
        get(list_workflows_v3),
    );
    webapi = at(
        webapi,
        &format!("{WEBAPI}/v3/workflows/{{id}}"),
        get(get_workflow_v3),
    );
    webapi = at(
        webapi,
        &format!("{WEBAPI}/v3/workflows/{{id}}/questions"),
        get(questions),
    );
    webapi = at(
        webapi,
        &format!("{WEBAPI}/v3/workflows/{{id}}/jobs"),
        get(list_jobs_v3).post(submit_v3),
    );
    webapi = at(webapi, &format!("{WEBAPI}/v3/jobs/{{id}}"), get(get_job_v3));
    let webapi = webapi.layer(from_fn_with_state(state.clone(), auth::bearer));
    let token = both(
        Router::new(),
        &format!("{WEBAPI}/oauth2/token"),
        post(auth::token).fallback(auth::token_method),
    );
    let webapi = webapi
        .merge(token)
        .layer(from_fn_with_state(state.clone(), faults::gate));
    gallery.merge(webapi)
}

/// The v1 operations under `base`, and a catch-all for paths that are none of them.
fn operations(base: &str) -> Router<Shared> {
    let mut r = Router::new()
        .route(&format!("{base}/"), any_method(unknown_operation))
        .route(&format!("{base}/{{*rest}}"), any_method(unknown_operation));
    r = at(
        r,
        &format!("{base}/v1/workflows/subscription"),
        get(list_workflows_v1),
    );
    r = at(
        r,
        &format!("{base}/v1/workflows/{{id}}/questions"),
        get(questions),
    );
    r = at(
        r,
        &format!("{base}/v1/workflows/{{id}}/jobs"),
        get(list_jobs_v1).post(submit_v1),
    );
    r = at(r, &format!("{base}/v1/jobs/{{id}}"), get(get_job_v1));
    at(
        r,
        &format!("{base}/v1/jobs/{{id}}/output/{{output}}"),
        get(job_output),
    )
}

/// Route `path` with and without a trailing slash; other methods are unknown operations.
fn at(router: Router<Shared>, path: &str, route: MethodRouter<Shared>) -> Router<Shared> {
    both(router, path, route.fallback(unknown_operation))
}

fn both(router: Router<Shared>, path: &str, route: MethodRouter<Shared>) -> Router<Shared> {
    router
        .route(path, route.clone())
        .route(&format!("{path}/"), route)
}

fn any_method<H, T>(handler: H) -> MethodRouter<Shared>
where
    H: axum::handler::Handler<T, Shared>,
    T: 'static,
{
    MethodRouter::new().fallback(handler)
}

/// The path after the base, decoded segment by segment, for messages.
fn operation_path(uri: &Uri) -> String {
    let path = uri.path();
    let rest = path
        .strip_prefix(GALLERY)
        .or_else(|| path.strip_prefix(WEBAPI))
        .unwrap_or(path);
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    segments.join("/")
}

async fn unknown_operation(method: Method, uri: Uri) -> Response {
    message(
        StatusCode::NOT_FOUND,
        format!(
            "{method} /{} is not an Alteryx API operation the emulator knows",
            operation_path(&uri)
        ),
    )
}

async fn v3_not_here() -> Response {
    message(StatusCode::NOT_FOUND, "v3 is served under /webapi/ only")
}

pub(crate) fn workflow_not_found(id: &str) -> Response {
    message(StatusCode::NOT_FOUND, format!("Workflow not found: {id}"))
}

fn job_not_found(id: &str) -> Response {
    message(StatusCode::NOT_FOUND, format!("Job not found: {id}"))
}

fn bad(text: impl Into<String>) -> Response {
    message(StatusCode::BAD_REQUEST, text)
}

fn query_pairs(query: Option<&str>) -> HashMap<String, String> {
    auth::form_pairs(query.unwrap_or_default().as_bytes())
        .into_iter()
        .collect()
}

async fn list_workflows_v1(State(state): State<Shared>) -> Response {
    let mut s = state.lock();
    s.stats.count(Operation::ListWorkflows);
    let list: Vec<Value> = s.config.workflows.iter().map(|w| json!({
        "id": w.id, "subscriptionId": "emulated", "public": false, "runDisabled": false,
        "packageType": 0, "uploadDate": "2026-01-05T10:00:00.000Z", "fileName": format!("{}.yxwz", w.name),
        "metaInfo": {"name": w.name, "description": format!("Emulated workflow {}", w.name), "author": "alteryx-router emulator"},
        "isChained": false, "version": 1,
        "runCount": s.jobs.all().iter().filter(|j| j.request.workflow_id == w.id).count(),
    })).collect();
    reply(StatusCode::OK, json!(list))
}

async fn list_workflows_v3(State(state): State<Shared>) -> Response {
    let mut s = state.lock();
    s.stats.count(Operation::ListWorkflows);
    let list: Vec<Value> = s.config.workflows.iter().map(|w| json!({
        "id": w.id, "sourceAppId": w.id, "name": w.name, "ownerId": "emulated", "dateCreated": "2026-01-05T10:00:00Z",
        "runCount": 0, "versions": [{"versionId": "1", "versionNumber": 1}], "publishedVersionNumber": 1, "isAmp": true,
        "executionMode": "Standard", "workerTag": "", "districtTags": [], "comments": "", "isPublic": false, "isReadyForMigration": false,
    })).collect();
    reply(StatusCode::OK, json!(list))
}

async fn get_workflow_v3(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut s = state.lock();
    s.stats.count(Operation::GetWorkflow);
    match s.workflow(&id) {
        Some(w) => reply(
            StatusCode::OK,
            json!({"id": w.id, "name": w.name, "questions": questions_json(w)}),
        ),
        None => workflow_not_found(&id),
    }
}

async fn questions(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut s = state.lock();
    s.stats.count(Operation::Questions);
    match s.workflow(&id) {
        Some(w) => reply(StatusCode::OK, questions_json(w)),
        None => workflow_not_found(&id),
    }
}

fn questions_json(w: &crate::EmulatedWorkflow) -> Value {
    json!(w.questions.iter().map(|q| json!({
        "name": q.name, "type": q.question_type, "description": format!("{} (emulated)", q.name),
        "value": null, "multiple": false, "items": null,
    })).collect::<Vec<_>>())
}

async fn submit_v1(
    State(state): State<Shared>,
    connection: Option<Extension<ConnectionControl>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    submit::submit(&state, connection.map(|c| c.0), Api::V1, &id, &body).await
}

async fn submit_v3(
    State(state): State<Shared>,
    connection: Option<Extension<ConnectionControl>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    submit::submit(&state, connection.map(|c| c.0), Api::V3, &id, &body).await
}

async fn list_jobs_v1(state: State<Shared>, id: Path<String>, query: RawQuery) -> Response {
    list_jobs(state, id, query, Api::V1)
}

async fn list_jobs_v3(state: State<Shared>, id: Path<String>, query: RawQuery) -> Response {
    list_jobs(state, id, query, Api::V3)
}

/// A workflow's jobs: `sortField` (`createDate`, `status`, `priority`), `direction` (`asc`,
/// `desc`), `offset`, `limit`; v3 also filters by `status` and `resultCode` (comma-separated).
fn list_jobs(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    api: Api,
) -> Response {
    let mut s = state.lock();
    s.stats.count(Operation::ListJobs);
    if s.workflow(&id).is_none() {
        return workflow_not_found(&id);
    }
    let query = query_pairs(query.as_deref());
    let number = |name: &str| -> Result<Option<usize>, String> {
        match query.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("Invalid {name} '{v}': expected a whole number >= 0")),
        }
    };
    let (offset, limit) = match (number("offset"), number("limit")) {
        (Ok(o), Ok(l)) => (o.unwrap_or(0), l.unwrap_or(usize::MAX)),
        (Err(why), _) | (_, Err(why)) => return bad(why),
    };
    let descending = match query
        .get("direction")
        .map(|d| d.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return bad("Invalid direction: use asc or desc"),
    };
    let sort_field = query.get("sortField").map(|f| f.to_ascii_lowercase());
    let key: fn(&Job) -> (u8, &'static str, u64) = match sort_field.as_deref() {
        None | Some("createdate") => |j| (0, "", j.seq),
        Some("status") => |j| (0, j.status().0, j.seq),
        Some("priority") => |j| (priority_rank(j.request.priority.as_deref()), "", j.seq),
        Some(other) => {
            return bad(format!(
                "Invalid sortField '{other}': use createDate, status or priority"
            ));
        }
    };
    let wanted = |name: &str| -> Option<Vec<String>> {
        let list = query.get(name).filter(|_| api == Api::V3)?;
        Some(
            list.split(',')
                .map(|v| v.trim().to_ascii_lowercase())
                .collect(),
        )
    };
    let (statuses, results) = (wanted("status"), wanted("resultCode"));
    let mut jobs: Vec<&Job> = s
        .jobs
        .all()
        .iter()
        .filter(|j| j.request.workflow_id == id)
        .filter(|j| {
            let (status, disposition) = j.status();
            statuses
                .as_ref()
                .is_none_or(|w| w.contains(&status.to_ascii_lowercase()))
                && results
                    .as_ref()
                    .is_none_or(|w| w.contains(&disposition.to_ascii_lowercase()))
        })
        .collect();
    jobs.sort_by_key(|j| key(j));
    if descending {
        jobs.reverse();
    }
    let page: Vec<Value> = jobs
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(views::list_entry)
        .collect();
    reply(StatusCode::OK, json!(page))
}

async fn get_job_v1(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut s = state.lock();
    s.stats.count(Operation::GetJob);
    match s.jobs.find(&id) {
        Some(i) => reply(StatusCode::OK, views::job(s.jobs.get(i), Api::V1, true)),
        None => job_not_found(&id),
    }
}

/// `GET v3/jobs/{id}`; `includeMessages=false` answers the reduced object (no `messages`).
async fn get_job_v3(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut s = state.lock();
    s.stats.count(Operation::GetJob);
    let include_messages = match query_pairs(query.as_deref())
        .get("includeMessages")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return bad(format!(
                "The value '{other}' is not valid for includeMessages: use true or false"
            ));
        }
    };
    match s.jobs.find(&id) {
        Some(i) => reply(
            StatusCode::OK,
            views::job(s.jobs.get(i), Api::V3, include_messages),
        ),
        None => job_not_found(&id),
    }
}

/// `GET v1/jobs/{id}/output/{outputId}/?format=Csv`: a finished job's output file.
async fn job_output(
    State(state): State<Shared>,
    Path((id, output)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut s = state.lock();
    s.stats.count(Operation::JobOutput);
    let Some(i) = s.jobs.find(&id) else {
        return job_not_found(&id);
    };
    let job = s.jobs.get(i);
    if !views::has_output(job) || output != views::output_id(job) {
        return message(
            StatusCode::NOT_FOUND,
            format!("Output not found: {output} (job {id})"),
        );
    }
    let available = views::OUTPUT_FORMATS.join(", ");
    let content_type = match query_pairs(query.as_deref())
        .get("format")
        .map(String::as_str)
    {
        Some("Csv") => "text/csv; charset=utf-8",
        Some("Raw") => "application/octet-stream",
        Some(other) => {
            return bad(format!(
                "Format '{other}' is not available for output {output}; available: {available}"
            ));
        }
        None => return bad(format!("format is required; available: {available}")),
    };
    let disposition = format!("attachment; filename=\"{}\"", views::OUTPUT_NAME);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        views::output_csv(job),
    )
        .into_response()
}
