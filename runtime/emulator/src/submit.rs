//! Job submission (`POST v1/workflows/{appId}/jobs/`, `POST v3/workflows/{id}/jobs`): the
//! request is checked as strictly as a careful server would (every question name must be one
//! the workflow declares, values are strings, priority, worker tag and credential id are
//! known), queued, and answered with the job; submission faults may delay the answer, lose it,
//! or swallow the request.

use std::time::Instant;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use crate::faults::Fault;
use crate::jobs::{Api, NewJob};
use crate::server::ConnectionControl;
use crate::state::{Shared, State};
use crate::stats::Operation;
use crate::{message, reply, views};

/// Handle a submission, applying the next submission fault if one is pending.
pub(crate) async fn submit(
    state: &Shared,
    connection: Option<ConnectionControl>,
    api: Api,
    workflow_id: &str,
    body: &Bytes,
) -> Response {
    let fault = {
        let mut s = state.lock();
        s.stats.count(Operation::Submit);
        s.faults.next_submission()
    };
    match fault {
        Some(Fault::SwallowSubmit { .. }) => drop_connection(connection).await,
        Some(Fault::LoseSubmitAnswer { .. }) => {
            let _queued = queue(&mut state.lock(), api, workflow_id, body);
            drop_connection(connection).await
        }
        Some(Fault::SlowSubmit { delay, .. }) => {
            let answer = queue(&mut state.lock(), api, workflow_id, body);
            tokio::time::sleep(delay).await;
            answer
        }
        _ => queue(&mut state.lock(), api, workflow_id, body),
    }
}

/// Close the request's connection and never answer.
async fn drop_connection(connection: Option<ConnectionControl>) -> Response {
    if let Some(connection) = connection {
        connection.drop_connection();
    }
    std::future::pending().await
}

/// Validate and queue; the answer is the new job or why it was refused.
fn queue(s: &mut State, api: Api, workflow_id: &str, body: &Bytes) -> Response {
    match validate(s, api, workflow_id, body) {
        Ok(request) => {
            let index = s.jobs.submit(api, request, Instant::now());
            reply(StatusCode::OK, views::job(s.jobs.get(index), api, true))
        }
        Err(refusal) => refusal,
    }
}

fn bad(text: impl Into<String>) -> Response {
    message(StatusCode::BAD_REQUEST, text)
}

#[allow(clippy::result_large_err)]
fn validate(s: &State, api: Api, workflow_id: &str, body: &Bytes) -> Result<NewJob, Response> {
    let Some(workflow) = s.workflow(workflow_id) else {
        return Err(crate::api::workflow_not_found(workflow_id));
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return Err(bad("The request body is not valid JSON"));
    };
    let Some(request) = request.as_object() else {
        return Err(bad(
            "The request body must be a JSON object with a questions list",
        ));
    };
    let mut questions = Vec::new();
    match request.get("questions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let name = item.get("name").and_then(Value::as_str);
                let (Some(name), Some(value)) = (name, item.get("value")) else {
                    return Err(bad("Each question needs a name and a value"));
                };
                let Some(value) = value.as_str() else {
                    return Err(bad(format!("Question '{name}': value must be a string")));
                };
                if !workflow.questions.iter().any(|q| q.name == name) {
                    let known: Vec<&str> =
                        workflow.questions.iter().map(|q| q.name.as_str()).collect();
                    return Err(bad(format!(
                        "Invalid question name '{name}' for workflow {workflow_id}; its questions are: {}",
                        known.join(", ")
                    )));
                }
                questions.push((name.to_string(), value.to_string()));
            }
        }
        Some(_) => return Err(bad("questions must be a list of {name, value}")),
    }
    let priority = match request.get("priority") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            let known: &[&str] = match api {
                Api::V3 => &["Default", "Low", "Medium", "High", "Critical"],
                Api::V1 => &[
                    "low", "medium", "high", "critical", "Low", "Medium", "High", "Critical",
                ],
            };
            if !known.contains(&p.as_str()) {
                return Err(bad(format!("Invalid priority '{p}'")));
            }
            Some(p.clone())
        }
        Some(_) => return Err(bad("priority must be a string")),
    };
    let mut job = NewJob {
        workflow_id: workflow_id.to_string(),
        questions,
        priority,
        outcome: workflow.outcome,
        run_time: s.config.run_time(workflow_id),
        ..NewJob::default()
    };
    match api {
        // v1's job request has no such fields (not confirmed either way): a server ignores
        // them, and the record shows they were sent.
        Api::V1 => {
            for field in ["workerTag", "credentialId"] {
                if request.get(field).is_some_and(|v| !v.is_null()) {
                    job.ignored_fields.push(field.to_string());
                }
            }
        }
        Api::V3 => {
            job.worker_tag = known_value(
                request,
                "workerTag",
                &s.config.worker_tags,
                "no worker has this tag",
            )?;
            job.credential_id = known_value(
                request,
                "credentialId",
                &s.config.credential_ids,
                "no such credential",
            )?;
        }
    }
    Ok(job)
}

/// An optional string field that must name something the server knows (empty means absent).
#[allow(clippy::result_large_err)]
fn known_value(
    request: &Map<String, Value>,
    field: &str,
    known: &[String],
    unknown: &str,
) -> Result<Option<String>, Response> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if v.is_empty() => Ok(None),
        Some(Value::String(v)) if known.contains(v) => Ok(Some(v.clone())),
        Some(Value::String(v)) => Err(bad(format!("Invalid {field} '{v}': {unknown}"))),
        Some(_) => Err(bad(format!("{field} must be a string"))),
    }
}
